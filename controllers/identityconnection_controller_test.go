package controllers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

func usernames(c config.Connection) []string {
	var names []string
	for _, u := range c.Database.Users {
		names = append(names, u.Username)
	}
	return names
}

// TestConnectionFollowsItsSecret walks a connection through a missing Secret, a Secret with
// unusable content and a good one, and checks that editing the Secret reaches the server's
// config without touching the connection.
func TestConnectionFollowsItsSecret(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"), newDatabaseConnection(ns, "db", "sso", "users"))

	eventually(t, func(g Gomega) {
		c := get(g, ns, "db", &hallpassv1.IdentityConnection{})
		resolved := condition(c.Status.Conditions, hallpassv1.IdentityConnectionCredentialsResolved)
		g.Expect(resolved).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonSecretNotFound))
		g.Expect(resolved.Message).To(Equal(`Secret "users" has no key "users.yaml" (or does not exist)`))
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady).Reason).To(Equal(hallpassv1.ReasonSecretNotFound))
		g.Expect(renderedConfig(g, ns, "sso").Connections).To(BeEmpty())
	})

	plaintext := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"},
		StringData: map[string]string{"users.yaml": "- username: alice\n  passwordHash: hunter2\n"}}
	create(t, plaintext)
	eventually(t, func(g Gomega) {
		c := get(g, ns, "db", &hallpassv1.IdentityConnection{})
		resolved := condition(c.Status.Conditions, hallpassv1.IdentityConnectionCredentialsResolved)
		g.Expect(resolved).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonInvalidSecret))
		g.Expect(resolved.Message).To(ContainSubstring("passwordHash must be an argon2id"))
		g.Expect(resolved.Message).NotTo(ContainSubstring("hunter2"), "Secret values never reach status")
	})

	good := usersSecret(ns, "users", "alice")
	good.ResourceVersion = get(g, ns, "users", &corev1.Secret{}).ResourceVersion
	g.Expect(k8s.Update(ctx, good)).To(Succeed())
	eventually(t, func(g Gomega) {
		c := get(g, ns, "db", &hallpassv1.IdentityConnection{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		conn, ok := renderedConfig(g, ns, "sso").Connection("db")
		g.Expect(ok).To(BeTrue())
		g.Expect(usernames(conn)).To(Equal([]string{"alice"}))
	})

	// A new user in the Secret is served within seconds, with no change to any resource.
	secret := get(g, ns, "users", &corev1.Secret{})
	patch := client.MergeFrom(secret.DeepCopy())
	secret.Data["users.yaml"] = []byte(string(secret.Data["users.yaml"]) + "- username: bob\n  passwordHash: " + demoHash + "\n")
	g.Expect(k8s.Patch(ctx, secret, patch)).To(Succeed())
	eventually(t, func(g Gomega) {
		conn, _ := renderedConfig(g, ns, "sso").Connection("db")
		g.Expect(usernames(conn)).To(Equal([]string{"alice", "bob"}))
	})
	eventually(t, func(g Gomega) {
		g.Expect(eventReasons(g, ns, "db")).To(ContainElements(hallpassv1.ReasonSecretNotFound, hallpassv1.ReasonInvalidSecret, hallpassv1.ReasonReconciled))
	})
}

// TestConnectionWithoutServer reports a missing server on Ready, and counts the clients
// that may use the connection once the server exists.
func TestConnectionWithoutServer(t *testing.T) {
	ns := newNamespace(t, nil)
	create(t, usersSecret(ns, "users", "alice"), newDatabaseConnection(ns, "db", "later", "users"))
	eventually(t, func(g Gomega) {
		c := get(g, ns, "db", &hallpassv1.IdentityConnection{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonServerNotFound))
		g.Expect(condition(c.Status.Conditions, hallpassv1.IdentityConnectionCredentialsResolved).Status).To(Equal(metav1.ConditionTrue))
	})
	// The operator's log tells the same, under the object's key, for those who read logs.
	eventually(t, func(g Gomega) {
		g.Expect(operatorLog.String()).To(MatchRegexp(`"msg":"condition changed".*"namespace":%q,"name":"db".*"condition":"Ready","status":"False","reason":%q`,
			ns, hallpassv1.ReasonServerNotFound))
	})
	limited := newClient(ns, "limited", ns, "later", hallpassv1.RegularWebApp)
	limited.Spec.Connections = []string{"other"}
	create(t, newServer(ns, "later"), newClient(ns, "all", ns, "later", hallpassv1.SinglePageApp), limited)
	eventually(t, func(g Gomega) {
		c := get(g, ns, "db", &hallpassv1.IdentityConnection{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Status.Clients).To(Equal(int32(1)), "only the client allowed to use it counts")
	})
}

// TestSAMLConnectionGetsAServiceProviderKeyPair checks that the operator generates the SAML
// service provider's key and certificate once, serves them with the IdP metadata held in a
// ConfigMap, and follows edits of that ConfigMap.
func TestSAMLConnectionGetsAServiceProviderKeyPair(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	metadata := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp"}, Data: map[string]string{"metadata.xml": "<EntityDescriptor v1/>"}}
	conn := &hallpassv1.IdentityConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp"},
		Spec: hallpassv1.IdentityConnectionSpec{
			ServerRef: hallpassv1.LocalServerReference{Name: "sso"},
			Type:      hallpassv1.ConnectionSAML,
			SAML:      &hallpassv1.SAMLConnection{MetadataConfigMapRef: &hallpassv1.ConfigMapKeyReference{Name: "idp", Key: "metadata.xml"}},
		},
	}
	create(t, newServer(ns, "sso"), conn)
	eventually(t, func(g Gomega) {
		c := get(g, ns, "corp", &hallpassv1.IdentityConnection{})
		resolved := condition(c.Status.Conditions, hallpassv1.IdentityConnectionCredentialsResolved)
		g.Expect(resolved).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonSecretNotFound))
		g.Expect(resolved.Message).To(Equal(`ConfigMap "idp" has no key "metadata.xml" (or does not exist)`))
	})
	create(t, metadata)
	var sp *corev1.Secret
	eventually(t, func(g Gomega) {
		sp = get(g, ns, "corp-saml-sp", &corev1.Secret{})
		c, ok := renderedConfig(g, ns, "sso").Connection("corp")
		g.Expect(ok).To(BeTrue())
		g.Expect(c.SAML.MetadataXML).To(Equal("<EntityDescriptor v1/>"))
		g.Expect(c.SAML.SPCertificatePEM).To(Equal(string(sp.Data[hallpassv1.SAMLServiceProviderCertificate])))
		g.Expect(c.SAML.SPKeyPEM).To(HavePrefix("-----BEGIN PRIVATE KEY-----"))
	})
	block, _ := pem.Decode(sp.Data[hallpassv1.SAMLServiceProviderCertificate])
	cert, err := x509.ParseCertificate(block.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cert.NotAfter).To(BeTemporally(">", time.Now().Add(4*365*24*time.Hour)))
	g.Expect(metav1.GetControllerOf(sp)).To(HaveField("Name", "corp"))
	status := get(g, ns, "corp", &hallpassv1.IdentityConnection{}).Status
	g.Expect(status.CallbackURL).To(Equal("https://sso.example.com/" + ns + "/connections/corp/callback"))
	g.Expect(status.ServiceProviderMetadataURL).To(Equal("https://sso.example.com/" + ns + "/connections/corp/saml/metadata"))

	patch := client.MergeFrom(metadata.DeepCopy())
	metadata.Data["metadata.xml"] = "<EntityDescriptor v2/>"
	g.Expect(k8s.Patch(ctx, metadata, patch)).To(Succeed())
	eventually(t, func(g Gomega) {
		c, _ := renderedConfig(g, ns, "sso").Connection("corp")
		g.Expect(c.SAML.MetadataXML).To(Equal("<EntityDescriptor v2/>"))
	})
	touch(t, conn)
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, ns, "corp-saml-sp", &corev1.Secret{}).Data).To(Equal(sp.Data), "the key pair is never regenerated")
	}).WithTimeout(time.Second).Should(Succeed())
}

// TestAConnectionCountsABurstOfClientsInAFewWrites checks what `kubectl get
// identityconnection -w` shows while a GitOps sync applies 40 clients over four seconds:
// the count reaches 40 in a few status writes, not one every time it could have moved
// (each write is an update the API server pays for at ten thousand clients).
func TestAConnectionCountsABurstOfClientsInAFewWrites(t *testing.T) {
	const clients = 40
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, usersSecret(ns, "users", "alice"), newDatabaseConnection(ns, "db", "sso", "users"), newServer(ns, "sso"))
	eventually(t, func(g Gomega) {
		c := get(g, ns, "db", &hallpassv1.IdentityConnection{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	})

	watcher, err := client.NewWithWatch(restConfig, client.Options{Scheme: k8s.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := watcher.Watch(ctx, &hallpassv1.IdentityConnectionList{}, client.InNamespace(ns))
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	for i := range clients {
		create(t, newClient(ns, fmt.Sprintf("app-%02d", i), ns, "sso", hallpassv1.RegularWebApp))
		time.Sleep(100 * time.Millisecond)
	}
	writes, deadline := 0, time.After(waitTimeout)
	for counted := int32(0); counted < clients; {
		select {
		case e := <-w.ResultChan():
			if c, ok := e.Object.(*hallpassv1.IdentityConnection); ok && e.Type == watch.Modified {
				writes++
				counted = c.Status.Clients
			}
		case <-deadline:
			t.Fatalf("the connection did not count %d clients within %s (%d writes)", clients, waitTimeout, writes)
		}
	}
	// Counted every 5 s at most: the clients are accepted within about four seconds (the
	// count every 500 ms, and on every render and own write, took 10 writes).
	t.Logf("%d status writes", writes)
	g.Expect(writes).To(BeNumerically("<=", 4), "status writes of the connection while it counted %d clients", clients)
}
