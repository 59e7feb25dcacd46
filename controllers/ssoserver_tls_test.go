package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// TestAServerWithTLSServesHTTPSFromItsSecret checks what spec.tls changes in the workload: the
// pods read the named kubernetes.io/tls Secret (and may read it, and no other) and serve
// https on a port named so, behind a Service port 443.
func TestAServerWithTLSServesHTTPSFromItsSecret(t *testing.T) {
	ns := newNamespace(t, nil)
	srv := newServer(ns, "sso")
	srv.Spec.TLS = &hallpassv1.ServerTLS{SecretName: "sso-example-tls"}
	create(t, srv)

	// The reconcile applies the objects one after another: each is waited for.
	eventually(t, func(g Gomega) {
		c := get(g, ns, "sso", &appsv1.Deployment{}).Spec.Template.Spec.Containers[0]
		g.Expect(c.Args).To(ContainElements("--tls-secret", ns+"/sso-example-tls"))
		g.Expect(c.Ports).To(ContainElement(And(HaveField("Name", "https"), HaveField("ContainerPort", int32(8080)))))
		g.Expect(c.Ports).NotTo(ContainElement(HaveField("Name", "http")), "a mesh would take a port named http for clear text")
	})
	eventually(t, func(g Gomega) {
		role := get(g, ns, "sso", &rbacv1.Role{})
		g.Expect(role.Rules).To(ContainElement(rbacv1.PolicyRule{
			APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{"sso-config", "sso-signing-keys", "sso-example-tls"}, Verbs: []string{"get", "list", "watch"},
		}))
	})
	eventually(t, func(g Gomega) {
		svc := get(g, ns, "sso", &corev1.Service{})
		g.Expect(svc.Spec.Ports).To(ContainElement(And(HaveField("Name", "https"), HaveField("Port", int32(443)))))
		g.Expect(svc.Spec.Ports).NotTo(ContainElement(HaveField("Name", "http")))
	})
}
