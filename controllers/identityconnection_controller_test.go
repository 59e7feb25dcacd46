package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	limited := newClient(ns, "limited", ns, "later", hallpassv1.RegularWebApp)
	limited.Spec.Connections = []string{"other"}
	create(t, newServer(ns, "later"), newClient(ns, "all", ns, "later", hallpassv1.SinglePageApp), limited)
	eventually(t, func(g Gomega) {
		c := get(g, ns, "db", &hallpassv1.IdentityConnection{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Status.Clients).To(Equal(int32(1)), "only the client allowed to use it counts")
	})
}
