package controllers

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/digest"
)

func TestTheCachesDropWhatTheOperatorNeverReads(t *testing.T) {
	applied := func(obj metav1.Object) {
		obj.SetAnnotations(map[string]string{
			corev1.LastAppliedConfigAnnotation:      `{"data":{"password":"c2VjcmV0"}}`,
			hallpassv1.AnnotationRotateClientSecret: "r1",
		})
		obj.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply"}})
	}
	sc := &hallpassv1.SSOClient{}
	applied(sc)
	secretMetadata := &metav1.PartialObjectMetadata{}
	applied(secretMetadata)
	for name, obj := range map[string]metav1.Object{"a kubectl-applied SSOClient": sc, "a kubectl-applied Secret's metadata": secretMetadata} {
		t.Run(name, func(t *testing.T) {
			out, err := stripUnread(obj)
			if err != nil {
				t.Fatal(err)
			}
			got := out.(metav1.Object)
			if _, ok := got.GetAnnotations()[corev1.LastAppliedConfigAnnotation]; ok {
				t.Errorf("the cache keeps kubectl's copy of the object: %v", got.GetAnnotations())
			}
			if got.GetAnnotations()[hallpassv1.AnnotationRotateClientSecret] != "r1" {
				t.Errorf("the cache lost an annotation the operator reads: %v", got.GetAnnotations())
			}
			if len(got.GetManagedFields()) > 0 {
				t.Errorf("the cache keeps managed fields")
			}
		})
	}
}

// TestAKubectlAppliedClientKeepsWhatKubectlNeeds: the cache does not hold kubectl's copy of
// an applied SSOClient, yet the operator acts on its annotations, and what it writes leaves
// the copy in place, so the next `kubectl apply` still computes its three-way merge.
func TestAKubectlAppliedClientKeepsWhatKubectlNeeds(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	sc := newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp)
	lastApplied, err := json.Marshal(sc)
	g.Expect(err).NotTo(HaveOccurred())
	sc.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: string(lastApplied)}
	create(t, newServer(ns, "sso"), sc)
	id := readyClient(t, ns, "web").Status.ClientID
	old := credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)

	annotate(t, sc, hallpassv1.AnnotationRotateClientSecret, "r1")
	eventually(t, func(g Gomega) {
		current := credentialSecret(g, ns, "web-sso-credentials", CredentialsClientSecret)
		g.Expect(current).NotTo(Equal(old))
		g.Expect(acceptedSecrets(g, ns, "sso", id)).To(ConsistOf(digest.Of(current), digest.Of(old)))
		g.Expect(get(g, ns, "web", &hallpassv1.SSOClient{}).Status.ClientSecret.RotationRequest).To(Equal("r1"))
	})
	g.Expect(get(g, ns, "web", &hallpassv1.SSOClient{}).Annotations).To(HaveKeyWithValue(corev1.LastAppliedConfigAnnotation, string(lastApplied)))
}
