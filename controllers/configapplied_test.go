package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/server/configsource"
)

// TestConfigAppliedFollowsThePodsReports writes pod reports into a server's status
// ConfigMap the way server pods do (a merge patch of one key, as the server's
// ServiceAccount with the Role the operator gave it), and checks what status makes of them.
func TestConfigAppliedFollowsThePodsReports(t *testing.T) {
	const oldHash = "def4560000000000000000000000000000000000000000000000000000000000"
	type report struct {
		pod  string
		hash string // "" means the current status.configHash
		age  time.Duration
	}
	for _, tc := range []struct {
		name        string
		reports     []report
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantApplied int32
		wantMessage []string
		wantPruned  []string
	}{
		{
			name:        "every ready pod reporting the current config recently makes it applied",
			reports:     []report{{pod: "sso-a", age: 30 * time.Second}, {pod: "sso-b", age: 2 * time.Minute}, {pod: "sso-gone", age: 11 * time.Minute}},
			wantStatus:  metav1.ConditionTrue,
			wantReason:  hallpassv1.ReasonConfigApplied,
			wantApplied: 2,
			wantMessage: []string{"2 of 2 ready pods serve config "},
			wantPruned:  []string{"sso-gone"},
		},
		{
			name:        "a ready pod serving an older config is named in the message",
			reports:     []report{{pod: "sso-a"}, {pod: "sso-b", hash: oldHash}},
			wantStatus:  metav1.ConditionFalse,
			wantReason:  hallpassv1.ReasonConfigPending,
			wantApplied: 1,
			wantMessage: []string{"1 of 2 ready pods serve config ", "pod sso-b serves def456000000"},
		},
		{
			name:        "a report older than the freshness window does not count",
			reports:     []report{{pod: "sso-a"}, {pod: "sso-b", age: reportFreshness + time.Minute}},
			wantStatus:  metav1.ConditionFalse,
			wantReason:  hallpassv1.ReasonConfigPending,
			wantApplied: 1,
			wantMessage: []string{"1 of 2 ready pods serve config ", "1 ready pods have not reported in ConfigMap sso-status within 3m0s"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, nil)
			create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dsn"}, StringData: map[string]string{"dsn": "postgres://hallpass@db:5432/sso"}})
			srv := newServer(ns, "sso")
			srv.Spec.Replicas = 2
			srv.Spec.Storage = hallpassv1.Storage{Type: hallpassv1.StoragePostgres, Postgres: &hallpassv1.PostgresStorage{
				DSNSecretRef: hallpassv1.SecretKeyReference{Name: "dsn", Key: "dsn"},
			}}
			create(t, srv)
			markDeploymentReady(t, ns, "sso")
			var hash string
			eventually(t, func(g Gomega) {
				s := get(g, ns, "sso", &hallpassv1.SSOServer{})
				g.Expect(s.Status.ReadyReplicas).To(Equal(int32(2)))
				g.Expect(s.Status.ConfigHash).NotTo(BeEmpty())
				g.Expect(condition(s.Status.Conditions, hallpassv1.SSOServerConfigApplied)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonConfigPending),
					"no pod has reported yet")
				hash = s.Status.ConfigHash
			})

			asPod := serverPodClient(t, ns, "sso")
			for _, r := range tc.reports {
				h := r.hash
				if h == "" {
					h = hash
				}
				value, err := json.Marshal(configsource.PodReport{ConfigHash: h, At: clock.Now().Add(-r.age).UTC().Truncate(time.Second)})
				if err != nil {
					t.Fatal(err)
				}
				patch, _ := json.Marshal(map[string]any{"data": map[string]string{r.pod: string(value)}})
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sso-status"}}
				eventually(t, func(g Gomega) {
					g.Expect(asPod.Patch(context.Background(), cm, client.RawPatch("application/merge-patch+json", patch))).To(Succeed())
				})
			}

			eventually(t, func(g Gomega) {
				s := get(g, ns, "sso", &hallpassv1.SSOServer{})
				c := condition(s.Status.Conditions, hallpassv1.SSOServerConfigApplied)
				g.Expect(c).To(haveCondition(tc.wantStatus, tc.wantReason))
				g.Expect(c.ObservedGeneration).To(Equal(s.Generation))
				for _, m := range tc.wantMessage {
					g.Expect(c.Message).To(ContainSubstring(m))
				}
				g.Expect(c.Message).To(ContainSubstring(hash[:12]))
				g.Expect(s.Status.AppliedReplicas).To(Equal(tc.wantApplied))
				if tc.wantStatus == metav1.ConditionTrue {
					g.Expect(s.Status.AppliedConfigHash).To(Equal(hash))
				} else {
					g.Expect(s.Status.AppliedConfigHash).To(BeEmpty())
				}
				g.Expect(eventReasons(g, ns, "sso")).To(ContainElement(tc.wantReason))
			})
			if len(tc.wantPruned) > 0 {
				eventually(t, func(g Gomega) {
					data := get(g, ns, "sso-status", &corev1.ConfigMap{}).Data
					for _, p := range tc.wantPruned {
						g.Expect(data).NotTo(HaveKey(p), "the report of a pod gone long ago is pruned")
					}
					g.Expect(len(data)).To(Equal(len(tc.reports)-len(tc.wantPruned)), "live reports stay: %s", strings.Join(keysOf(data), ","))
				})
			}
		})
	}
}

// serverPodClient acts as the server's ServiceAccount, with only the Role the operator wrote.
func serverPodClient(t *testing.T, ns, server string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + server}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: server + "-status"}, &corev1.ConfigMap{}); err == nil {
		t.Fatal("the server's Role is too broad: it may read its status ConfigMap, which it only needs to patch")
	}
	return c
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
