package controllers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/digest"
)

var installTenantRole = sync.OnceValue(func() error {
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "tenant_role.yaml"))
	if err != nil {
		return err
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(raw, &role); err != nil {
		return err
	}
	return k8s.Create(context.Background(), &role)
})

// asTenant returns a client that acts as a member of the application team of namespace ns:
// a user bound there, and nowhere else, to config/rbac/tenant_role.yaml. Everything it does
// goes through the real API server's authorization.
func asTenant(t *testing.T, ns string) client.Client {
	t.Helper()
	if err := installTenantRole(); err != nil {
		t.Fatalf("install the tenant role: %v", err)
	}
	user := "team-of-" + ns
	create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hallpass-application-team"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "application-team"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("create tenant client: %v", err)
	}
	return c
}

// platform creates a server in a namespace of its own that admits clients from the given
// namespaces, as a platform team would.
func platform(t *testing.T, tenants ...string) (ns string) {
	ns = newNamespace(t, nil)
	s := newServer(ns, "sso")
	s.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{Names: tenants}
	create(t, s)
	return ns
}

// TestATenantRoleGrantsOnlyItsOwnNamespace checks the Role itself: an application team
// registers clients and reads their credentials in its namespace, and cannot touch another
// team's, the server's records, or its own clients' status.
func TestATenantRoleGrantsOnlyItsOwnNamespace(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	teamNS, otherNS := newNamespace(t, nil), newNamespace(t, nil)
	serverNS := platform(t, teamNS, otherNS)
	team := asTenant(t, teamNS)

	mine := newClient(teamNS, "app", serverNS, "sso", hallpassv1.RegularWebApp)
	g.Expect(team.Create(ctx, mine)).To(Succeed())
	readyClient(t, teamNS, "app")
	g.Expect(team.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: "app-sso-credentials"}, &corev1.Secret{})).To(Succeed())

	g.Expect(team.Create(ctx, newClient(otherNS, "app", serverNS, "sso", hallpassv1.RegularWebApp))).NotTo(Succeed())
	g.Expect(team.List(ctx, &corev1.SecretList{}, client.InNamespace(serverNS))).NotTo(Succeed())
	g.Expect(team.Get(ctx, client.ObjectKey{Namespace: serverNS, Name: clientRecordName("sso", teamNS, "app")}, &corev1.Secret{})).NotTo(Succeed())
	mine = get(g, teamNS, "app", &hallpassv1.SSOClient{})
	patch := client.MergeFrom(mine.DeepCopy())
	mine.Status.ClientID = "someone-elses-id"
	g.Expect(team.Status().Patch(ctx, mine, patch)).NotTo(Succeed(), "a tenant must not write its client's status")
}

// TestATenantCannotTakeOverAnotherTenantsClientID replays the takeover of issue 12 as the
// attacker would, with only an application team's rights: an SSOClient whose
// clientSecretRef names a missing Secret, then a hand-written credentials Secret carrying
// the victim's client ID, the managed-by labels, an issued-to annotation naming the
// attacker's own SSOClient and a secret of its choice. The operator must not adopt it: the
// attacker never holds the victim's ID, the server keeps serving the victim with the
// victim's redirect URIs and secret, and the victim stays Ready.
func TestATenantCannotTakeOverAnotherTenantsClientID(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	victimNS, attackerNS := newNamespace(t, nil), newNamespace(t, nil)
	serverNS := platform(t, victimNS, attackerNS)
	victimTeam, attacker := asTenant(t, victimNS), asTenant(t, attackerNS)

	g.Expect(victimTeam.Create(ctx, newClient(victimNS, "shop", serverNS, "sso", hallpassv1.RegularWebApp))).To(Succeed())
	victim := readyClient(t, victimNS, "shop")
	victimSecret := string(get(g, victimNS, "shop-sso-credentials", &corev1.Secret{}).Data[CredentialsClientSecret])
	eventually(t, func(g Gomega) {
		_, served := renderedConfig(g, serverNS, "sso").Client(victim.Status.ClientID)
		g.Expect(served).To(BeTrue())
	})

	evil := newClient(attackerNS, "evil", serverNS, "sso", hallpassv1.RegularWebApp)
	evil.Spec.RedirectURIs = []string{"https://attacker.example.net/callback"}
	evil.Spec.Credentials = &hallpassv1.ClientCredentials{ClientSecretRef: &hallpassv1.SecretKeyReference{Name: "chosen", Key: "secret"}}
	g.Expect(attacker.Create(ctx, evil)).To(Succeed())
	eventually(t, func(g Gomega) {
		c := get(g, attackerNS, "evil", &hallpassv1.SSOClient{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientCredentialsReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonSecretNotFound))
	})
	chosen := "the-attackers-own-secret-0123456789abcdef"
	g.Expect(attacker.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: attackerNS, Name: "evil-sso-credentials",
			Labels:      map[string]string{hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue, hallpassv1.LabelClient: "evil"},
			Annotations: map[string]string{"sso.hallpass.dev/issued-to": string(evil.UID)}},
		StringData: map[string]string{CredentialsClientID: victim.Status.ClientID, CredentialsClientSecret: chosen},
	})).To(Succeed())
	g.Expect(attacker.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: attackerNS, Name: "chosen"},
		StringData: map[string]string{"secret": chosen},
	})).To(Succeed())

	eventually(t, func(g Gomega) {
		c := get(g, attackerNS, "evil", &hallpassv1.SSOClient{})
		creds := condition(c.Status.Conditions, hallpassv1.SSOClientCredentialsReady)
		g.Expect(creds).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonSecretConflict))
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
	})
	g.Consistently(func(g Gomega) {
		c := get(g, attackerNS, "evil", &hallpassv1.SSOClient{})
		g.Expect(c.Status.ClientID).NotTo(Equal(victim.Status.ClientID))
		cfg := renderedConfig(g, serverNS, "sso")
		served, ok := cfg.Client(victim.Status.ClientID)
		g.Expect(ok).To(BeTrue(), "the victim is still served")
		g.Expect(served.RedirectURIs).To(Equal([]string{"https://shop.example.com/callback"}))
		g.Expect(served.SecretSHA256).To(Equal([]string{digest.Of(victimSecret)}))
		for _, cl := range cfg.Clients {
			g.Expect(cl.RedirectURIs).NotTo(ContainElement("https://attacker.example.net/callback"))
		}
	}).WithTimeout(2 * waitTimeout / 10).WithPolling(waitPoll).Should(Succeed())
	readyClient(t, victimNS, "shop")
}

// TestARecordRestoredWithAnotherClientsIDServesNeither checks the guard behind the records
// for records written by hand: a record restored from the wrong backup holds the client ID of
// another client of the server. Neither client gets the ID until the platform team removes
// the wrong record, each is refused naming the other, and the server serves the ID to no one.
func TestARecordRestoredWithAnotherClientsIDServesNeither(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	teamNS := newNamespace(t, nil)
	serverNS := platform(t, teamNS)
	create(t, newClient(teamNS, "shop", serverNS, "sso", hallpassv1.RegularWebApp), newClient(teamNS, "blog", serverNS, "sso", hallpassv1.RegularWebApp))
	shopID := readyClient(t, teamNS, "shop").Status.ClientID
	readyClient(t, teamNS, "blog")

	record := clientRecordOf(g, serverNS, "sso", teamNS, "blog")
	record.Data[recordClientIDKey] = []byte(shopID)
	g.Expect(k8s.Update(ctx, record)).To(Succeed())
	for name, other := range map[string]string{"blog": "shop", "shop": "blog"} {
		eventually(t, func(g Gomega) {
			c := get(g, teamNS, name, &hallpassv1.SSOClient{})
			accepted := condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)
			g.Expect(accepted).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonDuplicateClientID))
			g.Expect(accepted.Message).To(ContainSubstring("SSOClient %s/%s already has this client ID", teamNS, other))
		})
	}
	eventually(t, func(g Gomega) {
		_, served := renderedConfig(g, serverNS, "sso").Client(shopID)
		g.Expect(served).To(BeFalse())
	})
}

// TestClientIDsSurviveTheLossOfEveryTenantWrittenObject checks that the record in the
// server's namespace alone keeps a client's identity: a tenant that deletes its credentials
// Secret gets the same client ID and secret written back, and one that deletes and recreates
// an Orphan client gets them back even with the credentials Secret gone.
func TestClientIDsSurviveTheLossOfEveryTenantWrittenObject(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	teamNS := newNamespace(t, nil)
	serverNS := platform(t, teamNS)
	team := asTenant(t, teamNS)
	app := newClient(teamNS, "app", serverNS, "sso", hallpassv1.RegularWebApp)
	app.Spec.DeletionPolicy = hallpassv1.DeletionPolicyOrphan
	g.Expect(team.Create(ctx, app)).To(Succeed())
	id := readyClient(t, teamNS, "app").Status.ClientID
	secret := get(g, teamNS, "app-sso-credentials", &corev1.Secret{}).Data[CredentialsClientSecret]

	g.Expect(team.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "app-sso-credentials"}})).To(Succeed())
	eventually(t, func(g Gomega) {
		data := get(g, teamNS, "app-sso-credentials", &corev1.Secret{}).Data
		g.Expect(string(data[CredentialsClientID])).To(Equal(id))
		g.Expect(data[CredentialsClientSecret]).To(Equal(secret))
	})

	g.Expect(team.Delete(ctx, get(g, teamNS, "app", &hallpassv1.SSOClient{}))).To(Succeed())
	g.Expect(team.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "app-sso-credentials"}})).To(Succeed())
	again := newClient(teamNS, "app", serverNS, "sso", hallpassv1.RegularWebApp)
	again.Spec.DeletionPolicy = hallpassv1.DeletionPolicyOrphan
	g.Expect(team.Create(ctx, again)).To(Succeed())
	g.Expect(readyClient(t, teamNS, "app").Status.ClientID).To(Equal(id))
	g.Expect(get(g, teamNS, "app-sso-credentials", &corev1.Secret{}).Data[CredentialsClientSecret]).To(Equal(secret))
}

// TestAClientDeletedWithDeleteComesBackAsANewClient checks the other policy: a client
// recreated after deletionPolicy Delete gets a new client ID, never the old one.
func TestAClientDeletedWithDeleteComesBackAsANewClient(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	teamNS := newNamespace(t, nil)
	serverNS := platform(t, teamNS)
	team := asTenant(t, teamNS)
	g.Expect(team.Create(ctx, newClient(teamNS, "app", serverNS, "sso", hallpassv1.SinglePageApp))).To(Succeed())
	id := readyClient(t, teamNS, "app").Status.ClientID
	g.Expect(team.Delete(ctx, get(g, teamNS, "app", &hallpassv1.SSOClient{}))).To(Succeed())
	// envtest runs no garbage collector: delete the owned Secret as it would, also when a
	// reconcile still in flight for the deleted client writes it once more.
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "app-sso-credentials"}}
	g.Consistently(func(g Gomega) {
		g.Expect(client.IgnoreNotFound(k8s.Delete(ctx, creds))).To(Succeed())
	}).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	g.Expect(team.Create(ctx, newClient(teamNS, "app", serverNS, "sso", hallpassv1.SinglePageApp))).To(Succeed())
	g.Expect(readyClient(t, teamNS, "app").Status.ClientID).NotTo(Equal(id))
}

// TestClientsIssuedBeforeRecordsAreMigratedOnce replays an upgrade: clients whose records do
// not exist yet (an operator without records issued them) keep their client ID, from the
// status only the operator writes, and their secret. Two clients that claim one ID (a
// takeover done before the upgrade) get it neither.
func TestClientsIssuedBeforeRecordsAreMigratedOnce(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	teamNS, otherNS := newNamespace(t, nil), newNamespace(t, nil)
	serverNS := platform(t, teamNS, otherNS)
	create(t, newClient(teamNS, "app", serverNS, "sso", hallpassv1.RegularWebApp), newClient(otherNS, "app", serverNS, "sso", hallpassv1.RegularWebApp))
	id := readyClient(t, teamNS, "app").Status.ClientID
	secret := string(get(g, teamNS, "app-sso-credentials", &corev1.Secret{}).Data[CredentialsClientSecret])
	readyClient(t, otherNS, "app")

	stopManager()
	// What an earlier operator left: no records; and the other client's status claims the
	// same client ID, as after a takeover.
	for _, ns := range []string{teamNS, otherNS} {
		g.Expect(k8s.Delete(ctx, clientRecordOf(g, serverNS, "sso", ns, "app"))).To(Succeed())
	}
	other := get(g, otherNS, "app", &hallpassv1.SSOClient{})
	patch := client.MergeFrom(other.DeepCopy())
	other.Status.ClientID = id
	g.Expect(k8s.Status().Patch(ctx, other, patch)).To(Succeed())
	g.Expect(startManager()).To(Succeed())

	for _, ns := range []string{teamNS, otherNS} {
		eventually(t, func(g Gomega) {
			c := get(g, ns, "app", &hallpassv1.SSOClient{})
			g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonDuplicateClientID))
		})
	}
	eventually(t, func(g Gomega) {
		_, served := renderedConfig(g, serverNS, "sso").Client(id)
		g.Expect(served).To(BeFalse())
	})

	// The platform team settles it by deleting the wrong client; the right one is migrated
	// with its ID and secret.
	g.Expect(k8s.Delete(ctx, other)).To(Succeed())
	touch(t, get(g, teamNS, "app", &hallpassv1.SSOClient{}))
	c := readyClient(t, teamNS, "app")
	g.Expect(c.Status.ClientID).To(Equal(id))
	eventually(t, func(g Gomega) {
		served, ok := renderedConfig(g, serverNS, "sso").Client(id)
		g.Expect(ok).To(BeTrue())
		g.Expect(served.SecretSHA256).To(Equal([]string{digest.Of(secret)}))
		g.Expect(string(clientRecordOf(g, serverNS, "sso", teamNS, "app").Data[recordClientIDKey])).To(Equal(id))
	})
}

// TestAServerNeverTakesOverObjectsItDoesNotOwn names an SSOServer like an existing
// ServiceAccount and gives it an existing Secret's name for its config: the operator
// reports both, changes neither, and deploys nothing that would run as that ServiceAccount
// or read that Secret.
func TestAServerNeverTakesOverObjectsItDoesNotOwn(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci-runner"}}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci-runner-config"}, StringData: map[string]string{"token": "ci"}}
	create(t, sa, foreign, newServer(ns, "ci-runner"))

	eventually(t, func(g Gomega) {
		s := get(g, ns, "ci-runner", &hallpassv1.SSOServer{})
		owned := condition(s.Status.Conditions, hallpassv1.SSOServerObjectsOwned)
		g.Expect(owned).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonObjectConflict))
		g.Expect(owned.Message).To(And(ContainSubstring("ServiceAccount ci-runner"), ContainSubstring("Secret ci-runner-config")))
		ready := condition(s.Status.Conditions, hallpassv1.ConditionReady)
		g.Expect(ready).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonObjectConflict))
	})
	g.Expect(get(g, ns, "ci-runner", &corev1.ServiceAccount{}).OwnerReferences).To(BeEmpty())
	kept := get(g, ns, "ci-runner-config", &corev1.Secret{})
	g.Expect(kept.OwnerReferences).To(BeEmpty())
	g.Expect(kept.Data).To(Equal(map[string][]byte{"token": []byte("ci")}))
	for _, obj := range []client.Object{&rbacv1.Role{}, &rbacv1.RoleBinding{}, &appsv1.Deployment{}} {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ci-runner"}, obj)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T was created: %v", obj, err)
	}

	// Once the objects are out of the way, the server is deployed.
	g.Expect(k8s.Delete(ctx, sa)).To(Succeed())
	g.Expect(k8s.Delete(ctx, kept)).To(Succeed())
	touch(t, get(g, ns, "ci-runner", &hallpassv1.SSOServer{}))
	eventually(t, func(g Gomega) {
		s := get(g, ns, "ci-runner", &hallpassv1.SSOServer{})
		g.Expect(condition(s.Status.Conditions, hallpassv1.SSOServerObjectsOwned)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		g.Expect(get(g, ns, "ci-runner", &appsv1.Deployment{}).Spec.Template.Spec.ServiceAccountName).To(Equal("ci-runner"))
	})
}

// TestAServerRunsOnlyAllowedImages checks the operator's image allow-list: by default only
// the repository of its own server image, whatever tag.
func TestAServerRunsOnlyAllowedImages(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	s := newServer(ns, "sso")
	s.Spec.Image = "registry.example.net/miner:latest"
	create(t, s)
	eventually(t, func(g Gomega) {
		s := get(g, ns, "sso", &hallpassv1.SSOServer{})
		allowed := condition(s.Status.Conditions, hallpassv1.SSOServerImageAllowed)
		g.Expect(allowed).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonImageNotAllowed))
		g.Expect(allowed.Message).To(ContainSubstring(`spec.image "registry.example.net/miner:latest" is not in a repository the operator may run (hallpass/hallpass)`))
		g.Expect(condition(s.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
	})
	err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sso"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no Deployment runs the image: %v", err)

	s = get(g, ns, "sso", &hallpassv1.SSOServer{})
	patch := client.MergeFrom(s.DeepCopy())
	s.Spec.Image = "hallpass/hallpass:v2@sha256:" + strings.Repeat("0", 64)
	g.Expect(k8s.Patch(ctx, s, patch)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(get(g, ns, "sso", &appsv1.Deployment{}).Spec.Template.Spec.Containers[0].Image).To(Equal(s.Spec.Image))
	})
}

// TestAClientOverItsNamespacesBudgetIsReported fills a namespace's budget as its tenant:
// the client over it is left out of the config and says so (Accepted=False, OverBudget, an
// Event), never Ready, while the others are served; it is served by itself once there is
// room.
func TestAClientOverItsNamespacesBudgetIsReported(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	teamNS, otherNS := newNamespace(t, nil), newNamespace(t, nil)
	serverNS := newNamespace(t, nil)
	s := newServer(serverNS, "sso")
	s.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{Names: []string{teamNS, otherNS}}
	s.Spec.Budgets = hallpassv1.NamespaceBudgets{ClientsPerNamespace: 1}
	create(t, s)
	team, other := asTenant(t, teamNS), asTenant(t, otherNS)

	g.Expect(team.Create(ctx, newClient(teamNS, "first", serverNS, "sso", hallpassv1.SinglePageApp))).To(Succeed())
	first := readyClient(t, teamNS, "first")
	eventually(t, func(g Gomega) {
		_, served := renderedConfig(g, serverNS, "sso").Client(first.Status.ClientID)
		g.Expect(served).To(BeTrue())
	})
	g.Expect(team.Create(ctx, newClient(teamNS, "second", serverNS, "sso", hallpassv1.SinglePageApp))).To(Succeed())
	g.Expect(other.Create(ctx, newClient(otherNS, "neighbour", serverNS, "sso", hallpassv1.SinglePageApp))).To(Succeed())
	neighbour := readyClient(t, otherNS, "neighbour")

	eventually(t, func(g Gomega) {
		c := get(g, teamNS, "second", &hallpassv1.SSOClient{})
		accepted := condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)
		g.Expect(accepted).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonOverBudget))
		g.Expect(accepted.Message).To(ContainSubstring("spec.budgets.clientsPerNamespace"))
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(eventReasons(g, teamNS, "second")).To(ContainElement(hallpassv1.ReasonOverBudget))
		cfg := renderedConfig(g, serverNS, "sso")
		_, servedFirst := cfg.Client(first.Status.ClientID)
		_, servedNeighbour := cfg.Client(neighbour.Status.ClientID)
		g.Expect(servedFirst && servedNeighbour).To(BeTrue(), "the clients within their budgets are served")
		g.Expect(cfg.Clients).To(HaveLen(2))
	})

	g.Expect(team.Delete(ctx, first)).To(Succeed())
	second := readyClient(t, teamNS, "second")
	eventually(t, func(g Gomega) {
		_, served := renderedConfig(g, serverNS, "sso").Client(second.Status.ClientID)
		g.Expect(served).To(BeTrue())
	})
}
