package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

// TestServerGetsEverythingItsPodsNeed follows one SSOServer from apply to Ready: RBAC
// limited to its own Secrets, signing keys, the config, storage, a hardened Deployment and
// a Service, and a status that tells where discovery lives.
func TestServerGetsEverythingItsPodsNeed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"))

	eventually(t, func(g Gomega) {
		s := get(g, ns, "sso", &hallpassv1.SSOServer{})
		// KeysGenerated is the reason of the reconcile that generated them; the next one (the
		// keys Secret's creation brings it) says Reconciled. The Event stays.
		g.Expect(condition(s.Status.Conditions, hallpassv1.SSOServerKeysReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(eventReasons(g, ns, "sso")).To(ContainElement("KeysGenerated"))
		g.Expect(condition(s.Status.Conditions, hallpassv1.SSOServerConfigRendered)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		g.Expect(condition(s.Status.Conditions, hallpassv1.SSOServerAvailable)).To(haveCondition(metav1.ConditionFalse, "NoReadyReplicas"))
		g.Expect(condition(s.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(s.Status.Issuer).To(Equal("https://sso.example.com/" + ns))
		g.Expect(s.Status.DiscoveryURL).To(Equal("https://sso.example.com/" + ns + "/.well-known/openid-configuration"))
		g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
	})

	role := get(g, ns, "sso", &rbacv1.Role{})
	g.Expect(role.Rules).To(ConsistOf(rbacv1.PolicyRule{
		APIGroups: []string{""}, Resources: []string{"secrets"},
		ResourceNames: []string{"sso-config", "sso-signing-keys"}, Verbs: []string{"get", "list", "watch"},
	}, rbacv1.PolicyRule{
		APIGroups: []string{""}, Resources: []string{"configmaps"},
		ResourceNames: []string{"sso-status"}, Verbs: []string{"patch"},
	}), "server pods may read only their own config and keys, and write only their status reports")
	binding := get(g, ns, "sso", &rbacv1.RoleBinding{})
	g.Expect(binding.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: "sso", Namespace: ns}))
	get(g, ns, "sso", &corev1.ServiceAccount{})

	keys, err := config.ParseSigningKeys(get(g, ns, "sso-signing-keys", &corev1.Secret{}).Data[config.KeysSecretKey])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys.Current.Algorithm).To(Equal("RS256"))
	g.Expect(keys.Next.KeyID).NotTo(Equal(keys.Current.KeyID))

	cfg := renderedConfig(g, ns, "sso")
	g.Expect(cfg.Issuer).To(Equal("https://sso.example.com/" + ns))
	g.Expect(cfg.Session.AbsoluteLifetime.Duration).To(Equal(168 * time.Hour))
	g.Expect(cfg.Storage.Type).To(Equal(config.StorageSQLite))

	d := get(g, ns, "sso", &appsv1.Deployment{})
	g.Expect(d.Spec.Strategy.Type).To(Equal(appsv1.RecreateDeploymentStrategyType), "SQLite has one writer")
	pod := d.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("sso"))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal(testServerImage))
	g.Expect(c.Args).To(Equal([]string{"server", "--config-secret", ns + "/sso-config", "--keys-secret", ns + "/sso-signing-keys", "--status-configmap", ns + "/sso-status", "--listen=:8080", "--metrics-listen=:9090", "--log-level=warn"}))
	g.Expect(c.Env).To(ContainElement(And(HaveField("Name", "POD_NAME"), HaveField("ValueFrom.FieldRef.FieldPath", "metadata.name"))))
	g.Expect(get(g, ns, "sso-status", &corev1.ConfigMap{}).Data).To(BeEmpty(), "the operator creates the status ConfigMap empty")
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("256Mi"))
	g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/var/lib/hallpass")))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("VolumeSource.PersistentVolumeClaim.ClaimName", "sso-data")))
	get(g, ns, "sso-data", &corev1.PersistentVolumeClaim{})

	svc := get(g, ns, "sso", &corev1.Service{})
	g.Expect(svc.Spec.Selector).To(Equal(d.Spec.Selector.MatchLabels))
	g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Name", "http")))

	markDeploymentReady(t, ns, "sso")
	eventually(t, func(g Gomega) {
		s := get(g, ns, "sso", &hallpassv1.SSOServer{})
		g.Expect(s.Status.ReadyReplicas).To(Equal(int32(1)))
		g.Expect(condition(s.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
	})
	eventually(t, func(g Gomega) {
		g.Expect(eventReasons(g, ns, "sso")).To(ContainElements("KeysGenerated", "NoReadyReplicas", hallpassv1.ReasonReconciled))
	})
}

// TestPostgresServerKeepsLastGoodConfig checks that a server whose DSN Secret is missing
// reports why and leaves the config it last rendered in place, and recovers by itself when
// the Secret appears.
func TestPostgresServerKeepsLastGoodConfig(t *testing.T) {
	ns := newNamespace(t, nil)
	s := newServer(ns, "pg")
	s.Spec.Replicas = 3
	s.Spec.Storage = hallpassv1.Storage{Type: hallpassv1.StoragePostgres, Postgres: &hallpassv1.PostgresStorage{
		DSNSecretRef: hallpassv1.SecretKeyReference{Name: "pg-dsn", Key: "dsn"},
	}}
	create(t, s)
	eventually(t, func(g Gomega) {
		s := get(g, ns, "pg", &hallpassv1.SSOServer{})
		c := condition(s.Status.Conditions, hallpassv1.SSOServerConfigRendered)
		g.Expect(c).To(haveCondition(metav1.ConditionFalse, "RenderFailed"))
		g.Expect(c.Message).To(ContainSubstring(`spec.storage.postgres.dsnSecretRef: Secret "pg-dsn" has no key "dsn"`))
	})
	g := NewWithT(t)
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "pg-config"}, &corev1.Secret{})).NotTo(Succeed(), "no config may be written without storage")

	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-dsn"}, StringData: map[string]string{"dsn": "postgres://hallpass@db:5432/sso"}})
	eventually(t, func(g Gomega) {
		g.Expect(renderedConfig(g, ns, "pg").Storage).To(Equal(config.Storage{Type: config.StoragePostgres, PostgresDSN: "postgres://hallpass@db:5432/sso"}))
	})
	d := get(g, ns, "pg", &appsv1.Deployment{})
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(3))))
	g.Expect(d.Spec.Strategy.Type).To(Equal(appsv1.RollingUpdateDeploymentStrategyType))
	g.Expect(d.Spec.Template.Spec.Volumes).NotTo(ContainElement(HaveField("Name", "data")))
	eventually(t, func(g Gomega) {
		s := get(g, ns, "pg", &hallpassv1.SSOServer{})
		g.Expect(condition(s.Status.Conditions, hallpassv1.SSOServerConfigRendered).Status).To(Equal(metav1.ConditionTrue))
	})

	// Deleting the DSN Secret must not erase the working config.
	g.Expect(k8s.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-dsn"}})).To(Succeed())
	eventually(t, func(g Gomega) {
		s := get(g, ns, "pg", &hallpassv1.SSOServer{})
		g.Expect(condition(s.Status.Conditions, hallpassv1.SSOServerConfigRendered).Status).To(Equal(metav1.ConditionFalse))
	})
	g.Expect(renderedConfig(g, ns, "pg").Storage.PostgresDSN).To(Equal("postgres://hallpass@db:5432/sso"))
}

// TestTheSMTPPasswordFollowsItsSecret checks that the SMTP password reaches the config from
// the referenced Secret, and that changing the Secret alone re-renders it.
func TestTheSMTPPasswordFollowsItsSecret(t *testing.T) {
	ns := newNamespace(t, nil)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "smtp"}, StringData: map[string]string{"password": "first"}})
	s := newServer(ns, "mail")
	s.Spec.Email = &hallpassv1.Email{Host: "smtp.example.com", Port: 465, Security: hallpassv1.EmailTLS, From: "sso@example.com",
		Username: "sso", PasswordSecretRef: &hallpassv1.SecretKeyReference{Name: "smtp", Key: "password"}}
	create(t, s)
	eventually(t, func(g Gomega) {
		g.Expect(renderedConfig(g, ns, "mail").Email).To(HaveValue(Equal(config.Email{Host: "smtp.example.com", Port: 465,
			Security: config.EmailTLS, From: "sso@example.com", Username: "sso", Password: "first"})))
	})
	g := NewWithT(t)
	secret := get(g, ns, "smtp", &corev1.Secret{})
	secret.Data["password"] = []byte("second")
	g.Expect(k8s.Update(context.Background(), secret)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(renderedConfig(g, ns, "mail").Email.Password).To(Equal("second"))
	})
}

// TestSigningKeysRotateOnSchedule crosses the rotation interval with the operator's clock:
// the pre-published next key becomes current and the old current stays as previous.
func TestSigningKeysRotateOnSchedule(t *testing.T) {
	ns := newNamespace(t, nil)
	s := newServer(ns, "rotating")
	s.Spec.SigningKeys.RotationInterval = "24h"
	create(t, s)
	var before *config.SigningKeys
	eventually(t, func(g Gomega) {
		var err error
		before, err = config.ParseSigningKeys(get(g, ns, "rotating-signing-keys", &corev1.Secret{}).Data[config.KeysSecretKey])
		g.Expect(err).NotTo(HaveOccurred())
	})

	clock.Advance(25 * time.Hour)
	touch(t, s)
	eventually(t, func(g Gomega) {
		after, err := config.ParseSigningKeys(get(g, ns, "rotating-signing-keys", &corev1.Secret{}).Data[config.KeysSecretKey])
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(after.Current.KeyID).To(Equal(before.Next.KeyID), "the pre-published key signs next")
		g.Expect(after.Previous.KeyID).To(Equal(before.Current.KeyID), "the old key stays published")
		g.Expect(after.Next.KeyID).NotTo(BeElementOf(before.Current.KeyID, before.Next.KeyID))
	})
	eventually(t, func(g Gomega) {
		g.Expect(eventReasons(g, ns, "rotating")).To(ContainElement("KeysRotated"))
	})
}

// TestCorruptSigningKeysAreNotReplaced checks that the operator never silently replaces
// keys it cannot read, which would invalidate every token in circulation.
func TestCorruptSigningKeysAreNotReplaced(t *testing.T) {
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"))
	eventually(t, func(g Gomega) {
		keys := get(g, ns, "sso-signing-keys", &corev1.Secret{})
		patch := client.MergeFrom(keys.DeepCopy())
		keys.Data[config.KeysSecretKey] = []byte("{not json")
		g.Expect(k8s.Patch(context.Background(), keys, patch)).To(Succeed())
	})
	eventually(t, func(g Gomega) {
		s := get(g, ns, "sso", &hallpassv1.SSOServer{})
		c := condition(s.Status.Conditions, hallpassv1.SSOServerKeysReady)
		g.Expect(c).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonInvalidSecret))
		g.Expect(c.Message).To(ContainSubstring("delete it to generate new keys"))
	})
	g := NewWithT(t)
	g.Expect(get(g, ns, "sso-signing-keys", &corev1.Secret{}).Data[config.KeysSecretKey]).To(Equal([]byte("{not json")))
}
