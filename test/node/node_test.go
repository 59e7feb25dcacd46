package node

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/loopback"
	testbrowser "github.com/hallpass/hallpass/internal/testutil/browser"
)

const (
	operatorNamespace = "hallpass-system"
	// serverNamespace holds the samples: the SSOServer, its users and three SSOClients.
	serverNamespace = "sso"
	serverName      = "hallpass"
	nodeName        = "hallpass-node"
	app2Host        = "app2.test"
)

// TestHelmInstallOnARealNode walks what a user does with the image and the chart on a
// cluster, in order; each step starts where the previous one left the cluster.
func TestHelmInstallOnARealNode(t *testing.T) {
	if !env.enabled {
		t.Skip("set HALLPASS_NODE=1 to run the real-node test (needs root, containerd, runc and the node binaries; see the package doc)")
	}
	ctx := context.Background()
	failed := false
	step := func(name string, f func(t *testing.T)) {
		if !failed && !t.Run(name, f) {
			failed = true
		}
	}
	var s scenario
	t.Cleanup(s.stop)

	step("namespaces that enforce the restricted Pod Security Standard refuse a pod that runs as root with its capabilities", func(t *testing.T) {
		for _, ns := range []string{operatorNamespace, serverNamespace} {
			err := env.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
				"pod-security.kubernetes.io/enforce": "restricted",
			}}})
			if err != nil {
				t.Fatalf("create namespace %s: %v", ns, err)
			}
		}
		// The controller manager's ServiceAccount controller gives each new namespace its
		// "default" ServiceAccount, which pods need before admission looks further.
		waitFor(ctx, t, time.Minute, "the default ServiceAccount in "+serverNamespace, func() (bool, string) {
			err := env.k8s.Get(ctx, client.ObjectKey{Namespace: serverNamespace, Name: "default"}, &corev1.ServiceAccount{})
			return err == nil, fmt.Sprint(err)
		})
		// Baseline allows this pod; restricted does not (no runAsNonRoot, capabilities kept,
		// privilege escalation allowed, no seccomp profile).
		unconfined := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "unconfined", Namespace: serverNamespace},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: imageRef}}},
		}
		err := env.k8s.Create(ctx, unconfined, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), `violates PodSecurity "restricted:latest"`) {
			t.Fatalf("a pod without a security context in %s: got %v, want the PodSecurity admission's refusal", serverNamespace, err)
		}
	})

	step("helm install runs the operator from the image on the node", func(t *testing.T) {
		out, err := s.helm("install", "hallpass", filepath.Join(env.repo, "charts", "hallpass"),
			"--namespace", operatorNamespace, "--set", "image.tag="+imageVersion, "--set", "image.pullPolicy=Never",
			"--wait", "--timeout", "5m")
		if err != nil {
			t.Fatal(err)
		}
		t.Log(out)
		pod := readyPod(ctx, t, operatorNamespace, "app.kubernetes.io/name=hallpass", 2*time.Minute)
		if pod.Spec.NodeName != nodeName {
			t.Errorf("the operator pod runs on %q, want the scheduler to have placed it on %s", pod.Spec.NodeName, nodeName)
		}
		if got := pod.Status.ContainerStatuses[0].ImageID; !strings.HasPrefix(got, "sha256:") && !strings.Contains(got, "@sha256:") {
			t.Errorf("the operator container's image ID is %q", got)
		}
	})

	step("kubectl apply -k config/samples makes a server pod that binds its volume and passes its probes", func(t *testing.T) {
		// The SQLite volume: a local PersistentVolume on the node, which the controller
		// manager binds to the claim the operator makes.
		s.pvDir = filepath.Join(env.work, "sqlite-volume")
		if err := os.MkdirAll(s.pvDir, 0o755); err != nil {
			t.Fatal(err)
		}
		createLocalPV(ctx, t, s.pvDir)
		if out, err := kubectl("apply", "-k", filepath.Join(env.repo, "config", "samples"), "--namespace", serverNamespace); err != nil {
			t.Fatal(err)
		} else {
			t.Log(out)
		}
		// Point the samples at what the browser reaches on this machine: the Service through
		// a port-forward on loopback, and App 2 as a process here.
		var err error
		if s.ssoPort, err = loopback.FreePort(); err != nil {
			t.Fatal(err)
		}
		if s.app2Port, err = loopback.FreePort(); err != nil {
			t.Fatal(err)
		}
		samples, err := devcluster.ReadManifests(filepath.Join(env.repo, "config", "samples"))
		if err != nil {
			t.Fatal(err)
		}
		devcluster.MapURLs(samples, map[string]string{
			"https://sso.example.com":  s.issuer(),
			"https://app1.example.com": "http://app1.test",
			"https://app2.example.com": s.app2URL(),
		})
		// The server first: the webhook admits http redirect URIs only once the server it
		// reads (from the operator's cache, so retried) is in devMode.
		serverFirst := func(o *unstructured.Unstructured) int {
			if o.GetKind() == "SSOServer" {
				return 0
			}
			return 1
		}
		slices.SortStableFunc(samples, func(a, b *unstructured.Unstructured) int { return cmp.Compare(serverFirst(a), serverFirst(b)) })
		waitFor(ctx, t, time.Minute, "the samples pointed at loopback to be admitted", func() (bool, string) {
			err := devcluster.Apply(ctx, env.k8s, serverNamespace, samples)
			return err == nil, fmt.Sprint(err)
		})
		waitServerReady(ctx, t)
		pod := readyPod(ctx, t, serverNamespace, "app.kubernetes.io/name=hallpass-server", 3*time.Minute)
		s.serverPod = pod.Name
		if pod.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("the server container restarted %d times", pod.Status.ContainerStatuses[0].RestartCount)
		}
		var pvc corev1.PersistentVolumeClaim
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: serverNamespace, Name: pod.Spec.Volumes[volumeIndex(t, pod, "data")].PersistentVolumeClaim.ClaimName}, &pvc); err != nil {
			t.Fatal(err)
		}
		if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName != "hallpass-sqlite" {
			t.Errorf("the server's claim is %s to %q, want Bound to the local volume hallpass-sqlite", pvc.Status.Phase, pvc.Spec.VolumeName)
		}
	})

	step("the runtime runs the server as 65532 with a read-only root, no capabilities and no privilege escalation", func(t *testing.T) {
		var pod corev1.Pod
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: serverNamespace, Name: s.serverPod}, &pod); err != nil {
			t.Fatal(err)
		}
		id, ok := strings.CutPrefix(pod.Status.ContainerStatuses[0].ContainerID, "containerd://")
		if !ok {
			t.Fatalf("container ID %q is not containerd's", pod.Status.ContainerStatuses[0].ContainerID)
		}
		state := runcState(t, id)
		if state.Status != "running" {
			t.Fatalf("runc says the container is %s", state.Status)
		}
		spec := bundleSpec(t, state.Bundle)
		if !spec.Root.Readonly {
			t.Error("runc was asked for a writable root filesystem")
		}
		if spec.Process.User.UID != 65532 || spec.Process.User.GID != 65532 {
			t.Errorf("runc was asked for user %d:%d", spec.Process.User.UID, spec.Process.User.GID)
		}
		if len(spec.Process.Capabilities.Bounding) != 0 || len(spec.Process.Capabilities.Effective) != 0 {
			t.Errorf("runc was asked for capabilities %+v", spec.Process.Capabilities)
		}

		// What the kernel enforces on the running process.
		status := procStatus(t, state.Pid)
		for field, want := range map[string]string{
			"Uid":        "65532\t65532\t65532\t65532",
			"Gid":        "65532\t65532\t65532\t65532",
			"CapEff":     "0000000000000000",
			"CapPrm":     "0000000000000000",
			"CapBnd":     "0000000000000000",
			"NoNewPrivs": "1",
			"Seccomp":    "2", // a filter: the runtime's default profile
		} {
			if status[field] != want {
				t.Errorf("/proc/%d/status %s: %q, want %q", state.Pid, field, status[field], want)
			}
		}
		if opts := rootMountOptions(t, state.Pid); !strings.Contains(","+opts+",", ",ro,") {
			t.Errorf("the server's / is mounted %q, want read-only", opts)
		}
		// The SQLite database is on the local volume, written by the server's user.
		db := findFile(t, s.pvDir, ".db")
		var st syscall.Stat_t
		if err := syscall.Stat(db, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 65532 {
			t.Errorf("%s is owned by uid %d, want the server's 65532", db, st.Uid)
		}
	})

	// One step, so that one browser (its cookies are the user's sessions) sees all of it.
	step("a user signs in through the Service, then silently, also after the server pod is replaced", func(t *testing.T) {
		s.portForward(t)
		s.startApp2(t)
		b := testbrowser.Start(t, testbrowser.Options{Hosts: []string{app2Host}})
		b.Run("open App 2's sign-in", chromedp.Navigate(s.ssoLink()))
		b.WaitLocation(s.issuer() + "/")
		b.Run("sign in on the SSO server",
			chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "demo"),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct-horse-battery"),
			chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		)
		b.WaitLocation(s.app2URL() + "/dashboard")
		if got := b.Text("#welcome"); !strings.Contains(got, "Welcome, Demo User") {
			t.Fatalf("App 2's dashboard shows %q after the sign-in", got)
		}

		t.Log("a silent sign-in uses the central session")
		s.signInSilently(t, b)

		t.Log("the pod that replaces a deleted server pod keeps the sessions on the SQLite volume")
		old := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: serverNamespace, Name: s.serverPod}}
		if err := env.k8s.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, 3*time.Minute, "a new server pod to be Ready", func() (bool, string) {
			pod, state := findReadyPod(ctx, serverNamespace, "app.kubernetes.io/name=hallpass-server")
			if pod == nil || pod.Name == s.serverPod {
				return false, state
			}
			s.serverPod = pod.Name
			return true, ""
		})
		s.portForward(t) // the old one forwarded to the deleted pod
		s.signInSilently(t, b)
	})

	step("helm uninstall removes the operator and keeps the CRDs, the resources and the server", func(t *testing.T) {
		if _, err := s.helm("uninstall", "hallpass", "--namespace", operatorNamespace, "--wait", "--timeout", "2m"); err != nil {
			t.Fatal(err)
		}
		var operator appsv1.DeploymentList
		if err := env.k8s.List(ctx, &operator, client.InNamespace(operatorNamespace)); err != nil {
			t.Fatal(err)
		}
		if len(operator.Items) != 0 {
			t.Errorf("%d Deployments remain in %s after helm uninstall", len(operator.Items), operatorNamespace)
		}
		for _, crd := range []string{"ssoservers.sso.hallpass.dev", "ssoclients.sso.hallpass.dev", "identityconnections.sso.hallpass.dev"} {
			if err := env.k8s.Get(ctx, client.ObjectKey{Name: crd}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
				t.Errorf("CRD %s after helm uninstall: %v", crd, err)
			}
		}
		for _, kept := range []struct {
			obj  client.Object
			name string
		}{
			{&hallpassv1.SSOServer{}, serverName},
			{&hallpassv1.IdentityConnection{}, "username-password"},
			{&hallpassv1.SSOClient{}, "app2"},
			{&appsv1.Deployment{}, serverName},
		} {
			if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: serverNamespace, Name: kept.name}, kept.obj); err != nil {
				t.Errorf("%T %s after helm uninstall: %v", kept.obj, kept.name, err)
			}
		}
		resp, err := http.Get(s.issuer() + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatalf("the server no longer answers after helm uninstall: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("discovery answers %s after helm uninstall", resp.Status)
		}
	})
}

// scenario holds what the steps share.
type scenario struct {
	ssoPort, app2Port int
	pvDir             string
	serverPod         string
	forward           *exec.Cmd
	app2              *exec.Cmd
}

func (s *scenario) issuer() string  { return "http://127.0.0.1:" + strconv.Itoa(s.ssoPort) }
func (s *scenario) app2URL() string { return fmt.Sprintf("http://%s:%d", app2Host, s.app2Port) }

// ssoLink is App 2's server-side SSO endpoint, as the seed's example links it.
func (s *scenario) ssoLink() string {
	return s.app2URL() + "/auth/sso?connection=username-password&target_url=%2Fdashboard"
}

func (s *scenario) helm(args ...string) (string, error) {
	cmd := exec.Command(env.helm, append(args, "--kubeconfig", env.kubeconfig)...)
	home := filepath.Join(env.work, "helm")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// portForward forwards the issuer's loopback port to the server's Service, as a user
// without an ingress would, replacing an earlier forward.
func (s *scenario) portForward(t *testing.T) {
	t.Helper()
	s.stopForward()
	s.forward = exec.Command(filepath.Join(env.nodeBin, "kubectl"), "--kubeconfig", env.kubeconfig,
		"port-forward", "--namespace", serverNamespace, "--address", "127.0.0.1", "service/"+serverName, fmt.Sprintf("%d:80", s.ssoPort))
	s.forward.Stdout, s.forward.Stderr = os.Stderr, os.Stderr
	if err := s.forward.Start(); err != nil {
		t.Fatalf("kubectl port-forward: %v", err)
	}
	waitFor(context.Background(), t, 30*time.Second, "the port-forward to the server's Service", func() (bool, string) {
		resp, err := http.Get(s.issuer() + "/.well-known/openid-configuration")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

func (s *scenario) stopForward() {
	if s.forward != nil {
		_ = s.forward.Process.Kill()
		_ = s.forward.Wait()
		s.forward = nil
	}
}

// startApp2 runs the example App 2 on this machine; it reads its credentials Secret through
// the API server.
func (s *scenario) startApp2(t *testing.T) {
	t.Helper()
	binary := filepath.Join(env.work, "app2")
	if out, err := exec.Command("go", "build", "-o", binary, filepath.Join(env.repo, "examples", "app2")).CombinedOutput(); err != nil {
		t.Fatalf("build app2: %v\n%s", err, out)
	}
	s.app2 = exec.Command(binary, "--listen", "127.0.0.1:"+strconv.Itoa(s.app2Port), "--kubeconfig", env.kubeconfig,
		"--namespace", serverNamespace, "--base-url", s.app2URL(), "--allow-insecure-http")
	s.app2.Env = append(os.Environ(), "HALLPASS_CLIENT_ID=", "KUBECONFIG=")
	s.app2.Stdout, s.app2.Stderr = os.Stderr, os.Stderr
	s.app2.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.app2.Start(); err != nil {
		t.Fatalf("start app2: %v", err)
	}
	waitFor(context.Background(), t, 2*time.Minute, "App 2 to answer", func() (bool, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", s.app2Port))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, ""
	})
}

func (s *scenario) stop() {
	s.stopForward()
	if s.app2 != nil {
		_ = s.app2.Process.Kill()
		_ = s.app2.Wait()
	}
}

// signInSilently ends App 2's own session and signs in again: the central session on the
// server signs the user in with no login page.
func (s *scenario) signInSilently(t *testing.T, b *testbrowser.Browser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), testbrowser.StepTimeout)
	defer cancel()
	for _, name := range []string{"ssoapp_session", "ssoapp_session_login"} {
		if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: name, URL: s.app2URL() + "/"}); err != nil {
			t.Fatalf("delete App 2's cookie %s: %v", name, err)
		}
	}
	pages := b.RecordPages()
	b.Run("open App 2's sign-in", chromedp.Navigate(s.ssoLink()))
	b.WaitLocation(s.app2URL() + "/dashboard")
	if got := b.Text("#welcome"); !strings.Contains(got, "Welcome, Demo User") {
		t.Errorf("App 2's dashboard shows %q", got)
	}
	for _, page := range pages() {
		if strings.HasPrefix(page, s.issuer()+"/") {
			t.Errorf("the browser showed the server's page %s; a silent sign-in shows none", page)
		}
	}
}

// createLocalPV makes the PersistentVolume the server's claim binds to: a directory on the
// node, with no storage class, like the claim.
func createLocalPV(ctx context.Context, t *testing.T, dir string) {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "hallpass-sqlite"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName}}},
			}}}},
		},
	}
	if err := env.k8s.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create the local PersistentVolume: %v", err)
	}
}

func kubectl(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(env.nodeBin, "kubectl"), append([]string{"--kubeconfig", env.kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func waitServerReady(ctx context.Context, t *testing.T) {
	t.Helper()
	waitFor(ctx, t, 3*time.Minute, "the sample SSOServer to be Ready", func() (bool, string) {
		var srv hallpassv1.SSOServer
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: serverNamespace, Name: serverName}, &srv); err != nil {
			return false, err.Error()
		}
		for _, c := range srv.Status.Conditions {
			if c.Type == hallpassv1.ConditionReady {
				return c.Status == metav1.ConditionTrue && c.ObservedGeneration == srv.Generation, c.Reason + ": " + c.Message
			}
		}
		return false, "no Ready condition yet"
	})
}

// readyPod waits for the one pod of selector in namespace to be Ready and returns it.
func readyPod(ctx context.Context, t *testing.T, namespace, selector string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(ctx, t, timeout, "a Ready pod "+selector+" in "+namespace, func() (bool, string) {
		var state string
		pod, state = findReadyPod(ctx, namespace, selector)
		return pod != nil, state
	})
	return pod
}

// findReadyPod returns the Ready pod of selector that is not being deleted, or nil and what
// the pods are doing.
func findReadyPod(ctx context.Context, namespace, selector string) (*corev1.Pod, string) {
	sel, err := metav1.ParseToLabelSelector(selector)
	if err != nil {
		return nil, err.Error()
	}
	labels, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err.Error()
	}
	var pods corev1.PodList
	if err := env.k8s.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: labels}); err != nil {
		return nil, err.Error()
	}
	var states []string
	for i := range pods.Items {
		p := &pods.Items[i]
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		if ready && p.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) > 0 {
			return p, ""
		}
		states = append(states, fmt.Sprintf("%s: %s %v", p.Name, p.Status.Phase, p.Status.ContainerStatuses))
	}
	return nil, fmt.Sprintf("%d pods: %s", len(pods.Items), strings.Join(states, "; "))
}

func volumeIndex(t *testing.T, pod *corev1.Pod, name string) int {
	t.Helper()
	for i, v := range pod.Spec.Volumes {
		if v.Name == name && v.PersistentVolumeClaim != nil {
			return i
		}
	}
	t.Fatalf("pod %s has no volume %s from a claim", pod.Name, name)
	return 0
}

// runcState asks runc, under containerd's runc root for Kubernetes' namespace, about a
// container.
func runcState(t *testing.T, id string) (state struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
	Bundle string `json:"bundle"`
}) {
	t.Helper()
	out, err := exec.Command("runc", "--root", "/run/containerd/runc/k8s.io", "state", id).Output()
	if err != nil {
		t.Fatalf("runc state %s: %v", id, err)
	}
	if err := json.Unmarshal(out, &state); err != nil {
		t.Fatalf("runc state %s: %v\n%s", id, err, out)
	}
	return state
}

// bundleSpec is the part of the OCI runtime spec that containerd gave runc.
func bundleSpec(t *testing.T, bundle string) (spec struct {
	Root    struct{ Readonly bool } `json:"root"`
	Process struct {
		User struct {
			UID int `json:"uid"`
			GID int `json:"gid"`
		} `json:"user"`
		Capabilities struct {
			Bounding  []string `json:"bounding"`
			Effective []string `json:"effective"`
		} `json:"capabilities"`
	} `json:"process"`
}) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("decode %s/config.json: %v", bundle, err)
	}
	return spec
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fields := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// rootMountOptions returns the mount options of / as the process sees it.
func rootMountOptions(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// ID parent major:minor root mountpoint options ...
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			return f[5]
		}
	}
	t.Fatalf("/proc/%d/mountinfo has no / mount", pid)
	return ""
}

func findFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	var found string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, suffix) && found == "" {
			found = path
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no *%s file in %s", suffix, dir)
	}
	return found
}

// waitFor polls check once a second until it reports done, or fails the test with its last
// word.
func waitFor(ctx context.Context, t *testing.T, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, state)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
