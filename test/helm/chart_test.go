package helm_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/hallpass/hallpass/internal/devcluster"
)

// nonDefaultValues sets every value the chart documents to something other than its default.
const nonDefaultValues = `
replicas: 3
image:
  repository: acme/hallpass
  tag: v9.8.7
  pullPolicy: Always
imagePullSecrets: [{name: regcred}]
serverImage: acme/hallpass-server:v9.8.7
allowedServerImages: [acme/hallpass-server, registry.example.com/sso/hallpass]
fullnameOverride: sso
serviceAccount:
  create: false
  name: platform-sso
leaderElection:
  enabled: true
logLevel: debug
serverLogLevel: warn
extraArgs: [--zap-encoder=console]
resources:
  requests: {cpu: 200m, memory: 128Mi}
  limits: {memory: 512Mi}
podAnnotations: {example.com/scrape: "true"}
podLabels: {team: platform}
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations:
  - {key: dedicated, operator: Equal, value: platform, effect: NoSchedule}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]
`

func TestChartLintsAndRendersItsValues(t *testing.T) {
	appVersion := chartAppVersion(t)
	cases := []struct {
		name  string
		rel   release
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{{
		name: "with the default values, one operator runs the image of the chart's appVersion",
		rel:  release{name: "hallpass", namespace: "hallpass-system"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := operatorDeployment(t, objs, "hallpass-operator")
			c := d.Spec.Template.Spec.Containers[0]
			if want := "hallpass/hallpass:" + appVersion; c.Image != want {
				t.Errorf("image = %q, want %q", c.Image, want)
			}
			if *d.Spec.Replicas != 1 {
				t.Errorf("replicas = %d, want 1", *d.Spec.Replicas)
			}
			if env := envValue(c, "HALLPASS_SERVER_IMAGE"); env != c.Image {
				t.Errorf("HALLPASS_SERVER_IMAGE = %q, want the operator's image %q", env, c.Image)
			}
			find(t, objs, "ServiceAccount", "hallpass-operator")
		},
	}, {
		name: "with every value set, the Deployment carries each of them",
		rel:  release{name: "platform", namespace: "sso", values: nonDefaultValues},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := operatorDeployment(t, objs, "sso-operator")
			pod := d.Spec.Template.Spec
			c := pod.Containers[0]
			for _, got := range []struct {
				field     string
				got, want any
			}{
				{"replicas", *d.Spec.Replicas, int32(3)},
				{"image", c.Image, "acme/hallpass:v9.8.7"},
				{"imagePullPolicy", c.ImagePullPolicy, corev1.PullAlways},
				{"imagePullSecrets", pod.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "regcred"}}},
				{"HALLPASS_SERVER_IMAGE", envValue(c, "HALLPASS_SERVER_IMAGE"), "acme/hallpass-server:v9.8.7"},
				{"serviceAccountName", pod.ServiceAccountName, "platform-sso"},
				{"--zap-log-level=debug in args", slices.Contains(c.Args, "--zap-log-level=debug"), true},
				{"--server-log-level=warn in args", slices.Contains(c.Args, "--server-log-level=warn"), true},
				{"extraArgs last", c.Args[len(c.Args)-1], "--zap-encoder=console"},
				{"allowedServerImages in args", slices.Contains(c.Args, "--allowed-server-images=acme/hallpass-server,registry.example.com/sso/hallpass"), true},
				{"--leader-elect in args", slices.Contains(c.Args, "--leader-elect"), true},
				{"resources.limits.memory", c.Resources.Limits.Memory().String(), "512Mi"},
				{"podAnnotations", d.Spec.Template.Annotations["example.com/scrape"], "true"},
				{"podLabels", d.Spec.Template.Labels["team"], "platform"},
				{"priorityClassName", pod.PriorityClassName, "system-cluster-critical"},
				{"nodeSelector", pod.NodeSelector, map[string]string{"kubernetes.io/os": "linux"}},
				{"tolerations", len(pod.Tolerations), 1},
				{"affinity", pod.Affinity != nil && pod.Affinity.NodeAffinity != nil, true},
			} {
				if !reflect.DeepEqual(got.got, got.want) {
					t.Errorf("%s = %v, want %v", got.field, got.got, got.want)
				}
			}
			for _, obj := range objs {
				if obj.GetKind() == "ServiceAccount" {
					t.Errorf("serviceAccount.create=false still renders ServiceAccount %s", obj.GetName())
				}
			}
			var binding rbacv1.ClusterRoleBinding
			convert(t, find(t, objs, "ClusterRoleBinding", "sso-manager-rolebinding"), &binding)
			if s := binding.Subjects[0]; s.Name != "platform-sso" || s.Namespace != "sso" {
				t.Errorf("the operator's ClusterRole is bound to %s/%s, want sso/platform-sso", s.Namespace, s.Name)
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := runHelm(t, tc.rel.args(t, "lint", "--strict", "--namespace", tc.rel.namespace)...); err != nil {
				t.Fatalf("helm lint failed: %v", err)
			} else if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint did not pass:\n%s", out)
			}
			tc.check(t, tc.rel.render(t))
		})
	}
}

func TestInvalidValuesAreRefusedNamingTheField(t *testing.T) {
	cases := []struct {
		name, values string
		// message is what helm's error must say, naming the field.
		message string
	}{
		{"zero replicas", "replicas: 0", "/replicas"},
		{"replicas that are not a number", "replicas: many", "/replicas"},
		{"an image tag that is a number, not a string", "image: {tag: 5}", "/image/tag"},
		{"an unknown image pull policy", "image: {pullPolicy: Sometimes}", "/image/pullPolicy"},
		{"an unknown top-level key", "replica: 2", "'replica' not allowed"},
		{"a misspelt nested key", "serviceAccount: {annotation: {a: b}}", "'annotation' not allowed"},
		{"an unknown log level", "logLevel: verbose", "/logLevel"},
		{"an unknown server log level", "serverLogLevel: verbose", "/serverLogLevel"},
		{"a nameOverride that is not a DNS label", "nameOverride: Hall_Pass", "/nameOverride"},
		{"a ServiceAccount name that is not a DNS name", "serviceAccount: {name: Platform-SSO}", "/serviceAccount/name"},
		{"a nameOverride longer than a label value may be", "nameOverride: " + strings.Repeat("a", 64), "/nameOverride"},
		{"a nameOverride ending in a dash", "nameOverride: hallpass-", "/nameOverride"},
		{"a fullnameOverride with a dot, which no DNS label has", "fullnameOverride: sso.platform", "/fullnameOverride"},
		{"a ServiceAccount name to use that is not a DNS name", "serviceAccount: {create: false, name: sso_operator}", "/serviceAccount/name"},
		{"a ServiceAccount name longer than a DNS name may be", "serviceAccount: {name: " + strings.Repeat("a", 254) + "}", "/serviceAccount/name"},
		{"a pod label the chart sets itself, which would break the Deployment's selector", "podLabels: {app.kubernetes.io/name: mine}", "podLabels.app.kubernetes.io/name"},
		{"the chart's instance label as a pod label", "podLabels: {app.kubernetes.io/instance: mine}", "podLabels.app.kubernetes.io/instance"},
		{"the chart's component label as a pod label, beside one of the user's own", "podLabels: {team: platform, app.kubernetes.io/component: sso}", "podLabels.app.kubernetes.io/component"},
		{"an extra argument that is not a flag", "extraArgs: [operator]", "/extraArgs/0"},
		{"an allowed server image that smuggles a second one", "allowedServerImages: [\"a/b,c/d\"]", "/allowedServerImages/0"},
		{"several replicas without leader election", "{replicas: 2, leaderElection: {enabled: false}}", "leaderElection.enabled"},
		{"no ServiceAccount to create nor to use", "serviceAccount: {create: false}", "serviceAccount.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rel := release{name: "hallpass", namespace: "hallpass-system", values: tc.values}
			out, err := runHelm(t, rel.args(t, "template")...)
			if err == nil {
				t.Fatalf("helm template accepted %q; it rendered:\n%s", tc.values, out)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("helm template refused %q without naming the field (want %q in the message):\n%v", tc.values, tc.message, err)
			}
		})
	}
}

// TestChartInstallsWhatConfigDefaultInstalls installs the chart as release "hallpass" in
// hallpass-system, where config/default installs, and compares it with config/.
func TestChartInstallsWhatConfigDefaultInstalls(t *testing.T) {
	ctx := context.Background()
	const namespace = "hallpass-system"
	rel := release{name: "hallpass", namespace: namespace}
	objs := rel.render(t)
	install(t, namespace, objs)

	t.Run("the same objects as config/default, under the same names", func(t *testing.T) {
		var want []string
		for _, dir := range []string{"crd", "rbac", "manager", "webhook"} {
			config, err := devcluster.ReadManifests(filepath.Join(env.repo, "config", dir))
			if err != nil {
				t.Fatal(err)
			}
			for _, obj := range config {
				switch {
				case obj.GetKind() == "Namespace":
					// helm install --create-namespace makes the release namespace.
				case obj.GetKind() == "CustomResourceDefinition":
					want = append(want, obj.GetKind()+" "+obj.GetName())
				default:
					// config/default's namePrefix.
					want = append(want, obj.GetKind()+" hallpass-"+obj.GetName())
				}
			}
		}
		var got []string
		for _, obj := range objs {
			got = append(got, obj.GetKind()+" "+obj.GetName())
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("the chart installs\n  %s\nconfig/default installs\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})

	t.Run("the CRDs are config/crd/bases, byte for byte, and the API server serves them", func(t *testing.T) {
		bases, _ := filepath.Glob(filepath.Join(env.repo, "config", "crd", "bases", "*.yaml"))
		chartCRDs, _ := filepath.Glob(filepath.Join(env.chart, "crds", "*.yaml"))
		if len(bases) == 0 || len(bases) != len(chartCRDs) {
			t.Fatalf("config/crd/bases has %d CRDs, the chart's crds/ %d; run make manifests", len(bases), len(chartCRDs))
		}
		for _, base := range bases {
			want, err := os.ReadFile(base)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(env.chart, "crds", filepath.Base(base)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("charts/hallpass/crds/%s differs from config/crd/bases (error: %v); run make manifests", filepath.Base(base), err)
			}
		}
		for _, obj := range objs {
			if obj.GetKind() == "CustomResourceDefinition" {
				waitEstablished(ctx, t, obj.GetName())
			}
		}
	})

	t.Run("the ClusterRole's rules are config/rbac/role.yaml's", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(env.repo, "config", "rbac", "role.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var want rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(raw, &want); err != nil {
			t.Fatal(err)
		}
		var got rbacv1.ClusterRole
		if err := env.k8s.Get(ctx, client.ObjectKey{Name: "hallpass-manager-role"}, &got); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(got.Rules, want.Rules) {
			t.Errorf("installed ClusterRole rules:\n%s\nconfig/rbac/role.yaml:\n%s", toYAML(t, got.Rules), toYAML(t, want.Rules))
		}
		var binding rbacv1.ClusterRoleBinding
		if err := env.k8s.Get(ctx, client.ObjectKey{Name: "hallpass-manager-rolebinding"}, &binding); err != nil {
			t.Fatal(err)
		}
		if want := (rbacv1.Subject{Kind: "ServiceAccount", Name: "hallpass-operator", Namespace: namespace}); binding.RoleRef.Name != got.Name || !slices.Equal(binding.Subjects, []rbacv1.Subject{want}) {
			t.Errorf("ClusterRoleBinding binds %s to %v, want %s to %v", binding.RoleRef.Name, binding.Subjects, got.Name, want)
		}
	})

	t.Run("the operator Deployment is config/manager's, non-root with a read-only root filesystem", func(t *testing.T) {
		var got appsv1.Deployment
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hallpass-operator"}, &got); err != nil {
			t.Fatal(err)
		}
		pod := got.Spec.Template.Spec
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext = %s, want runAsNonRoot and seccomp RuntimeDefault", toYAML(t, sc))
		}
		c := pod.Containers[0]
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container securityContext = %s, want a read-only root filesystem, no privilege escalation, all capabilities dropped", toYAML(t, sc))
		}

		// The rendered Deployment, before the API server's defaults, against config/manager.
		var rendered appsv1.Deployment
		convert(t, find(t, objs, "Deployment", "hallpass-operator"), &rendered)
		config := configManagerDeployment(t)
		want, have := config.Spec.Template.Spec, rendered.Spec.Template.Spec
		wc, hc := want.Containers[0], have.Containers[0]
		// The chart names the webhook Service after the release, and says the log level.
		wantArgs := append(slices.Clone(wc.Args), "--webhook-service=hallpass-webhook-service", "--zap-log-level=info", "--server-log-level=info")
		for _, field := range []struct {
			name       string
			got, wantV any
		}{
			{"container name", hc.Name, wc.Name},
			{"command", hc.Command, wc.Command},
			{"args", hc.Args, wantArgs},
			{"ports", hc.Ports, wc.Ports},
			{"livenessProbe", hc.LivenessProbe, wc.LivenessProbe},
			{"readinessProbe", hc.ReadinessProbe, wc.ReadinessProbe},
			{"resources", hc.Resources, wc.Resources},
			{"container securityContext", hc.SecurityContext, wc.SecurityContext},
			{"pod securityContext", have.SecurityContext, want.SecurityContext},
			{"volumeMounts", hc.VolumeMounts, wc.VolumeMounts},
			{"volumes", have.Volumes, want.Volumes},
			{"terminationGracePeriodSeconds", have.TerminationGracePeriodSeconds, want.TerminationGracePeriodSeconds},
			{"env names", envNames(hc), envNames(wc)},
			{"POD_NAMESPACE", envSource(hc, "POD_NAMESPACE"), envSource(wc, "POD_NAMESPACE")},
		} {
			if !equality.Semantic.DeepEqual(field.got, field.wantV) {
				t.Errorf("%s differs from config/manager/manager.yaml:\nchart:  %s\nconfig: %s", field.name, toYAML(t, field.got), toYAML(t, field.wantV))
			}
		}
		if got.Spec.Template.Spec.ServiceAccountName != "hallpass-operator" {
			t.Errorf("serviceAccountName = %q, want hallpass-operator", got.Spec.Template.Spec.ServiceAccountName)
		}
	})

	t.Run("the webhook reaches the operator through the names the operator patches", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(env.repo, "config", "webhook", "manifests.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var generated admissionregistrationv1.ValidatingWebhookConfiguration
		if err := yaml.UnmarshalStrict(raw, &generated); err != nil {
			t.Fatal(err)
		}
		var rendered admissionregistrationv1.ValidatingWebhookConfiguration
		convert(t, find(t, objs, "ValidatingWebhookConfiguration", "hallpass-validating-webhook-configuration"), &rendered)
		if len(rendered.Webhooks) != len(generated.Webhooks) {
			t.Fatalf("the chart has %d webhooks, config/webhook %d", len(rendered.Webhooks), len(generated.Webhooks))
		}
		for i, w := range rendered.Webhooks {
			g := generated.Webhooks[i]
			g.ClientConfig.Service.Name, g.ClientConfig.Service.Namespace = "hallpass-webhook-service", namespace
			if !equality.Semantic.DeepEqual(w, g) {
				t.Errorf("webhook %s:\nchart:  %s\nconfig/webhook (names prefixed): %s", w.Name, toYAML(t, w), toYAML(t, g))
			}
		}

		// The operator may patch the caBundle of this configuration only (resourceNames).
		var role rbacv1.ClusterRole
		if err := env.k8s.Get(ctx, client.ObjectKey{Name: "hallpass-manager-role"}, &role); err != nil {
			t.Fatal(err)
		}
		patchable := false
		for _, rule := range role.Rules {
			if slices.Contains(rule.Resources, "validatingwebhookconfigurations") && slices.Contains(rule.Verbs, "patch") {
				patchable = slices.Contains(rule.ResourceNames, rendered.Name)
			}
		}
		if !patchable {
			t.Errorf("the operator's ClusterRole does not let it patch the caBundle of %s", rendered.Name)
		}

		var svc corev1.Service
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hallpass-webhook-service"}, &svc); err != nil {
			t.Fatalf("the webhook configuration names a Service that is not installed: %v", err)
		}
		var d appsv1.Deployment
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hallpass-operator"}, &d); err != nil {
			t.Fatal(err)
		}
		for k, v := range svc.Spec.Selector {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("the webhook Service selects %s=%s, which the operator pods do not have (%v)", k, v, d.Spec.Template.Labels)
			}
		}
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--webhook-service="+svc.Name) {
			t.Errorf("the operator is not told the webhook Service %s (args %v)", svc.Name, d.Spec.Template.Spec.Containers[0].Args)
		}
	})
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(env.chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml has no appVersion (error: %v)", err)
	}
	return chart.AppVersion
}

func operatorDeployment(t *testing.T, objs []*unstructured.Unstructured, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	convert(t, find(t, objs, "Deployment", name), &d)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", name, len(d.Spec.Template.Spec.Containers))
	}
	return &d
}

func configManagerDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	objs, err := devcluster.ReadManifests(filepath.Join(env.repo, "config", "manager"))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if obj.GetKind() == "Deployment" {
			var d appsv1.Deployment
			convert(t, obj, &d)
			return &d
		}
	}
	t.Fatal("config/manager has no Deployment")
	return nil
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func envSource(c corev1.Container, name string) *corev1.EnvVarSource {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom
		}
	}
	return nil
}

func envNames(c corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return names
}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
