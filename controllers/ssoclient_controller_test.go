package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
)

// readyClient waits for the client to be Ready, standing in for its server's pods (which
// envtest does not run): they apply every config the operator renders and report it.
func readyClient(t *testing.T, ns, name string) *hallpassv1.SSOClient {
	t.Helper()
	var c *hallpassv1.SSOClient
	eventually(t, func(g Gomega) {
		c = get(g, ns, name, &hallpassv1.SSOClient{})
		serverNS, server := c.ServerKey()
		actAsServerPods(g, serverNS, server)
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
	})
	return c
}

// TestClientsGetCredentialsTheServerCanCheck covers what an application team sees: a
// Secret with the client ID, a 256-bit client secret for confidential clients only, the
// issuer and the discovery URL, and a server config that knows the client but holds only a
// digest of its secret.
func TestClientsGetCredentialsTheServerCanCheck(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"),
		newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp),
		newClient(ns, "spa", ns, "sso", hallpassv1.SinglePageApp),
		newClient(ns, "batch", ns, "sso", hallpassv1.MachineToMachine))

	web := readyClient(t, ns, "web")
	spa := readyClient(t, ns, "spa")
	batch := readyClient(t, ns, "batch")
	g.Expect([]string{web.Status.ClientID, spa.Status.ClientID, batch.Status.ClientID}).To(HaveEach(HaveLen(22)))

	creds := get(g, ns, "web-sso-credentials", &corev1.Secret{})
	g.Expect(web.Status.CredentialsSecret).To(Equal("web-sso-credentials"))
	g.Expect(string(creds.Data[CredentialsClientID])).To(Equal(web.Status.ClientID))
	g.Expect(creds.Data[CredentialsClientSecret]).To(HaveLen(43), "32 random bytes, base64url")
	g.Expect(string(creds.Data[CredentialsIssuer])).To(Equal("https://sso.example.com/" + ns))
	g.Expect(string(creds.Data[CredentialsDiscoveryURL])).To(Equal("https://sso.example.com/" + ns + "/.well-known/openid-configuration"))
	g.Expect(metav1.GetControllerOf(creds)).To(HaveField("UID", web.UID))
	g.Expect(get(g, ns, "spa-sso-credentials", &corev1.Secret{}).Data).NotTo(HaveKey(CredentialsClientSecret), "a public client has no secret")
	g.Expect(get(g, ns, "batch-sso-credentials", &corev1.Secret{}).Data).To(HaveKey(CredentialsClientSecret))

	eventually(t, func(g Gomega) {
		cfg := renderedConfig(g, ns, "sso")
		served, ok := cfg.Client(web.Status.ClientID)
		g.Expect(ok).To(BeTrue())
		g.Expect(served.SecretSHA256).To(Equal([]string{digest.Of(string(creds.Data[CredentialsClientSecret]))}))
		g.Expect(served.SingleSignOn).To(BeTrue())
		g.Expect(served.RedirectURIs).To(Equal([]string{"https://web.example.com/callback"}))
		served, ok = cfg.Client(spa.Status.ClientID)
		g.Expect(ok).To(BeTrue())
		g.Expect(served.SecretSHA256).To(BeEmpty())
		g.Expect(served.RequirePKCE).To(BeTrue())
		g.Expect(cfg.Clients).To(HaveLen(3))
	})
	served, err := config.FromSecretData(get(g, ns, "sso-config", &corev1.Secret{}).Data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served).To(ContainSubstring(web.Status.ClientID))
	g.Expect(string(served)).NotTo(ContainSubstring(string(creds.Data[CredentialsClientSecret])))
}

// TestClientFromANamespaceTheServerDoesNotAllow checks that nothing of a refused client
// reaches the server, and that allowing its namespace later admits it without a re-apply.
func TestClientFromANamespaceTheServerDoesNotAllow(t *testing.T) {
	g := NewWithT(t)
	serverNS := newNamespace(t, nil)
	appNS := newNamespace(t, nil)
	s := newServer(serverNS, "sso")
	s.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"sso": "allowed"}},
	}
	create(t, s, newClient(appNS, "app", serverNS, "sso", hallpassv1.RegularWebApp))

	eventually(t, func(g Gomega) {
		c := get(g, appNS, "app", &hallpassv1.SSOClient{})
		accepted := condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)
		g.Expect(accepted).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonNamespaceNotAllowed))
		g.Expect(accepted.Message).To(ContainSubstring("spec.allowedClientNamespaces"))
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonNamespaceNotAllowed))
		g.Expect(c.Status.ClientID).To(BeEmpty())
		g.Expect(renderedConfig(g, serverNS, "sso").Clients).To(BeEmpty())
	})
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: appNS, Name: "app-sso-credentials"}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a refused client gets no credentials")

	var ns corev1.Namespace
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Name: appNS}, &ns)).To(Succeed())
	patch := client.MergeFrom(ns.DeepCopy())
	ns.Labels = map[string]string{"sso": "allowed"}
	g.Expect(k8s.Patch(context.Background(), &ns, patch)).To(Succeed())

	c := readyClient(t, appNS, "app")
	eventually(t, func(g Gomega) {
		_, ok := renderedConfig(g, serverNS, "sso").Client(c.Status.ClientID)
		g.Expect(ok).To(BeTrue())
	})
}

// TestPlainHTTPRedirectsNeedDevMode checks that http callbacks on real hosts are refused
// at admission unless the server is in dev mode, that a client admitted before dev mode was
// turned off is taken off the server, and that loopback http (native apps) is fine.
func TestPlainHTTPRedirectsNeedDevMode(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, nil)
	insecure := newClient(ns, "insecure", ns, "sso", hallpassv1.RegularWebApp)
	insecure.Spec.RedirectURIs = []string{"https://app.example.com/cb", "http://app.example.com/cb"}
	loopback := newClient(ns, "loopback", ns, "sso", hallpassv1.Native)
	loopback.Spec.RedirectURIs = []string{"http://127.0.0.1:8400/cb", "http://localhost/cb"}
	create(t, newServer(ns, "sso"), loopback)
	readyClient(t, ns, "loopback")

	err := k8s.Create(ctx, insecure.DeepCopy())
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring(
		`spec.redirectURIs[1]: Invalid value: "http://app.example.com/cb": uses http on a host that is not loopback; use https, or enable spec.devMode on SSOServer ` + ns + `/sso`)))

	// With dev mode on the same client is admitted; turning dev mode off again takes it off
	// the server, since the webhook cannot revisit clients that already exist.
	devMode(t, ns, "sso", true)
	// The webhook reads the server from the operator's cache, which follows within moments.
	eventually(t, func(g Gomega) { g.Expect(k8s.Create(ctx, insecure.DeepCopy())).To(Succeed()) })
	readyClient(t, ns, "insecure")
	devMode(t, ns, "sso", false)

	eventually(t, func(g Gomega) {
		c := get(g, ns, "insecure", &hallpassv1.SSOClient{})
		accepted := condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)
		g.Expect(accepted).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonInsecureRedirectURI))
		g.Expect(accepted.Message).To(ContainSubstring(`spec.redirectURIs[1] "http://app.example.com/cb" uses http`))
	})
	eventually(t, func(g Gomega) {
		c := get(g, ns, "insecure", &hallpassv1.SSOClient{})
		_, served := renderedConfig(g, ns, "sso").Client(c.Status.ClientID)
		g.Expect(served).To(BeFalse())
	})
}

func devMode(t *testing.T, ns, name string, on bool) {
	t.Helper()
	g := NewWithT(t)
	s := get(g, ns, name, &hallpassv1.SSOServer{})
	patch := client.MergeFrom(s.DeepCopy())
	s.Spec.DevMode = on
	g.Expect(k8s.Patch(context.Background(), s, patch)).To(Succeed())
}

// TestDeletionPolicies checks both policies: Delete ties the credentials Secret to the client
// by owner reference (the cluster's garbage collector removes it; envtest runs none, so the
// reference is what is checked), Orphan keeps it so that a recreated client gets the same
// credentials back. Either way the server stops serving the client at once.
func TestDeletionPolicies(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	orphan := newClient(ns, "kept", ns, "sso", hallpassv1.RegularWebApp)
	orphan.Spec.DeletionPolicy = hallpassv1.DeletionPolicyOrphan
	create(t, newServer(ns, "sso"), newClient(ns, "gone", ns, "sso", hallpassv1.RegularWebApp), orphan)
	gone := readyClient(t, ns, "gone")
	kept := readyClient(t, ns, "kept")
	keptCreds := get(g, ns, "kept-sso-credentials", &corev1.Secret{})
	g.Expect(keptCreds.OwnerReferences).To(BeEmpty())
	goneCreds := get(g, ns, "gone-sso-credentials", &corev1.Secret{})
	g.Expect(goneCreds.OwnerReferences).To(ConsistOf(And(
		HaveField("UID", gone.UID), HaveField("Controller", HaveValue(BeTrue())), HaveField("BlockOwnerDeletion", HaveValue(BeTrue())))))

	g.Expect(k8s.Delete(ctx, gone)).To(Succeed())
	g.Expect(k8s.Delete(ctx, kept)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(renderedConfig(g, ns, "sso").Clients).To(BeEmpty())
	})
	g.Expect(get(g, ns, "kept-sso-credentials", &corev1.Secret{}).Data).To(Equal(keptCreds.Data))

	again := newClient(ns, "kept", ns, "sso", hallpassv1.RegularWebApp)
	again.Spec.DeletionPolicy = hallpassv1.DeletionPolicyOrphan
	create(t, again)
	again = readyClient(t, ns, "kept")
	g.Expect(again.Status.ClientID).To(Equal(kept.Status.ClientID))
	g.Expect(get(g, ns, "kept-sso-credentials", &corev1.Secret{}).Data[CredentialsClientSecret]).To(Equal(keptCreds.Data[CredentialsClientSecret]))

	// Switching to Delete adopts the Secret, so it now goes with the client.
	patch := client.MergeFrom(again.DeepCopy())
	again.Spec.DeletionPolicy = hallpassv1.DeletionPolicyDelete
	g.Expect(k8s.Patch(ctx, again, patch)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(get(g, ns, "kept-sso-credentials", &corev1.Secret{}).OwnerReferences).To(ConsistOf(HaveField("UID", again.UID)))
	})

	// And back to Orphan: the Secret no longer goes with the client.
	again = get(g, ns, "kept", &hallpassv1.SSOClient{})
	patch = client.MergeFrom(again.DeepCopy())
	again.Spec.DeletionPolicy = hallpassv1.DeletionPolicyOrphan
	g.Expect(k8s.Patch(ctx, again, patch)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(get(g, ns, "kept-sso-credentials", &corev1.Secret{}).OwnerReferences).To(BeEmpty())
	})
	g.Expect(get(g, ns, "kept-sso-credentials", &corev1.Secret{}).Data).To(Equal(keptCreds.Data))
}

// TestACopiedCredentialsSecretGivesNoClientID copies a client's credentials Secret into
// another namespace, the way a careless GitOps migration would: the credentials Secret is an
// output, so the copy gives the new client nothing. It is reported as a conflict, the new
// client never shares the original's ID, and the server keeps serving only the original.
func TestACopiedCredentialsSecretGivesNoClientID(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	otherNS := newNamespace(t, nil)
	s := newServer(ns, "sso")
	s.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{Names: []string{otherNS}}
	create(t, s, newClient(ns, "app", ns, "sso", hallpassv1.RegularWebApp))
	original := readyClient(t, ns, "app")
	creds := get(g, ns, "app-sso-credentials", &corev1.Secret{})

	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: otherNS, Name: "app-sso-credentials", Labels: creds.Labels, Annotations: creds.Annotations},
		Data:       creds.Data,
	})
	create(t, newClient(otherNS, "app", ns, "sso", hallpassv1.RegularWebApp))
	eventually(t, func(g Gomega) {
		c := get(g, otherNS, "app", &hallpassv1.SSOClient{})
		g.Expect(c.Status.ClientID).NotTo(Equal(original.Status.ClientID))
		g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientCredentialsReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonSecretConflict))
		// A new client's record is written once its credentials Secret is its own: none here.
		var rec corev1.Secret
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: clientRecordName("sso", otherNS, "app")}, &rec)
		g.Expect(apierrors.IsNotFound(err) || string(rec.Data[recordClientIDKey]) != original.Status.ClientID).To(BeTrue(),
			"no record gives the copy's client the original's ID")
	})
	eventually(t, func(g Gomega) {
		cfg := renderedConfig(g, ns, "sso")
		g.Expect(cfg.Clients).To(HaveLen(1))
		g.Expect(cfg.Clients[0].ID).To(Equal(original.Status.ClientID))
	})
	readyClient(t, ns, "app")
}

// TestAPlantedClientIDIsNotAdopted plants a labelled credentials Secret whose client_id has
// the shape of a user's subject: adopted, the machine client's tokens would carry sub
// "db|alice" to every API. The Secret is not the operator's, so it is a conflict.
func TestAPlantedClientIDIsNotAdopted(t *testing.T) {
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"))
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "batch-sso-credentials", Labels: map[string]string{
			hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue, hallpassv1.LabelClient: "batch"}},
		Data: map[string][]byte{CredentialsClientID: []byte("db|alice"), CredentialsClientSecret: []byte("0123456789abcdef0123456789abcdef")},
	})
	create(t, newClient(ns, "batch", ns, "sso", hallpassv1.MachineToMachine))
	eventually(t, func(g Gomega) {
		c := get(g, ns, "batch", &hallpassv1.SSOClient{})
		ready := condition(c.Status.Conditions, hallpassv1.SSOClientCredentialsReady)
		g.Expect(ready).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonSecretConflict))
		g.Expect(ready.Message).To(ContainSubstring("was not written by Hallpass for this SSOClient"))
	})
	eventually(t, func(g Gomega) {
		g.Expect(renderedConfig(g, ns, "sso").Clients).To(BeEmpty())
	})
}

// TestClientNeverTakesOverSomeoneElsesSecret checks that a credentials Secret name that
// collides with an unrelated Secret is reported, and the Secret left untouched.
func TestClientNeverTakesOverSomeoneElsesSecret(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-sso-credentials"}, StringData: map[string]string{"password": "hunter2"}})
	create(t, newServer(ns, "sso"), newClient(ns, "app", ns, "sso", hallpassv1.RegularWebApp))
	eventually(t, func(g Gomega) {
		c := get(g, ns, "app", &hallpassv1.SSOClient{})
		creds := condition(c.Status.Conditions, hallpassv1.SSOClientCredentialsReady)
		g.Expect(creds).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonSecretConflict))
		g.Expect(creds.Message).To(ContainSubstring("choose another spec.credentials.secretName"))
	})
	g.Expect(get(g, ns, "app-sso-credentials", &corev1.Secret{}).Data).To(Equal(map[string][]byte{"password": []byte("hunter2")}))
}

// TestBringYourOwnClientSecret checks clientSecretRef: the brought secret is served, a
// short one is refused, and changing it in its Secret reaches the server, whether the
// operator watches the Secret by its metadata or, labelled as one it manages, whole.
func TestBringYourOwnClientSecret(t *testing.T) {
	for name, labels := range map[string]map[string]string{
		"a Secret of the team's own":                        nil,
		"a Secret that carries Hallpass's managed-by label": {hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			g := NewWithT(t)
			ns := newNamespace(t, nil)
			byo := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mine", Labels: labels}, StringData: map[string]string{"secret": "too-short"}}
			c := newClient(ns, "app", ns, "sso", hallpassv1.RegularWebApp)
			c.Spec.Credentials = &hallpassv1.ClientCredentials{ClientSecretRef: &hallpassv1.SecretKeyReference{Name: "mine", Key: "secret"}}
			create(t, byo, newServer(ns, "sso"), c)
			eventually(t, func(g Gomega) {
				c := get(g, ns, "app", &hallpassv1.SSOClient{})
				g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientCredentialsReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonInvalidSecret))
			})

			// Fixed, then changed once the client is served: only the Secret's change can
			// bring the second value to the server (which accepts the first one too for a
			// while, as after a rotation).
			for i, long := range []string{"a-secret-that-is-long-enough-0123456789", "another-secret-long-enough-9876543210"} {
				patch := client.MergeFrom(byo.DeepCopy())
				byo.StringData = map[string]string{"secret": long}
				g.Expect(k8s.Patch(ctx, byo, patch)).To(Succeed())
				if i == 0 {
					c = readyClient(t, ns, "app")
				}
				eventually(t, func(g Gomega) {
					served, ok := renderedConfig(g, ns, "sso").Client(c.Status.ClientID)
					g.Expect(ok).To(BeTrue())
					g.Expect(served.SecretSHA256).To(ContainElement(digest.Of(long)))
					g.Expect(string(get(g, ns, "app-sso-credentials", &corev1.Secret{}).Data[CredentialsClientSecret])).To(Equal(long))
				})
			}
		})
	}
}

// TestConnectionsAClientNames checks ConnectionsResolved, and that a client limited to
// some connections is served with only those.
func TestConnectionsAClientNames(t *testing.T) {
	ns := newNamespace(t, nil)
	c := newClient(ns, "app", ns, "sso", hallpassv1.RegularWebApp)
	c.Spec.Connections = []string{"staff"}
	create(t, newServer(ns, "sso"), c, usersSecret(ns, "users", "alice"), newDatabaseConnection(ns, "customers", "sso", "users"))
	eventually(t, func(g Gomega) {
		c := get(g, ns, "app", &hallpassv1.SSOClient{})
		resolved := condition(c.Status.Conditions, hallpassv1.SSOClientConnectionsResolved)
		g.Expect(resolved).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonConnectionNotFound))
		g.Expect(resolved.Message).To(ContainSubstring("has no IdentityConnection staff"))
	})
	create(t, newDatabaseConnection(ns, "staff", "sso", "users"))
	c = readyClient(t, ns, "app")
	eventually(t, func(g Gomega) {
		cfg := renderedConfig(g, ns, "sso")
		served, ok := cfg.Client(c.Status.ClientID)
		g.Expect(ok).To(BeTrue())
		g.Expect(served.Connections).To(Equal([]string{"staff"}))
		g.Expect(cfg.Connections).To(HaveLen(2))
	})
}

// TestAnInterruptedFirstReconcileIsNoConflict leaves behind what a first reconcile stopped
// between creating a client's credentials Secret and writing its record would: a Secret
// under Hallpass's labels for this very SSOClient holding an ID no record holds. The client
// is not reported as a conflict; it gets credentials the server serves, written into that
// Secret.
func TestAnInterruptedFirstReconcileIsNoConflict(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"))
	eventually(t, func(g Gomega) {
		g.Expect(get(g, ns, "sso", &hallpassv1.SSOServer{}).Status.ConfigRevision).NotTo(BeZero())
	})
	stopManager()
	sc := newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp)
	create(t, sc)
	const unrecorded = "0123456789abcdef0123456789abcdef"
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: "web-sso-credentials",
			Labels:      map[string]string{hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue, hallpassv1.LabelClient: "web"},
			Annotations: map[string]string{annotationRecordUID: string(sc.UID)},
		},
		Data: map[string][]byte{CredentialsClientID: []byte(unrecorded)},
	})
	g.Expect(startManager()).To(Succeed())

	c := readyClient(t, ns, "web")
	g.Expect(c.Status.ClientID).NotTo(Equal(unrecorded), "an ID no record holds is never taken")
	data := get(g, ns, "web-sso-credentials", &corev1.Secret{}).Data
	g.Expect(string(data[CredentialsClientID])).To(Equal(c.Status.ClientID))
	eventually(t, func(g Gomega) {
		_, served := renderedConfig(g, ns, "sso").Client(c.Status.ClientID)
		g.Expect(served).To(BeTrue())
	})
}
