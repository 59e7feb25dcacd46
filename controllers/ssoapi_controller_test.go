package controllers

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

func newAPI(ns, name, server, identifier string, grants ...hallpassv1.APIGrant) *hallpassv1.SSOAPI {
	return &hallpassv1.SSOAPI{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: hallpassv1.SSOAPISpec{
			ServerRef:  hallpassv1.LocalServerReference{Name: server},
			Identifier: identifier,
			Scopes:     []hallpassv1.APIScope{{Name: "orders:read"}, {Name: "orders:admin", Description: "refunds and cancellations"}},
			Grants:     grants,
		},
	}
}

// clientCredentialsGrant lets the named clients of namespace get scopes for themselves.
func clientCredentialsGrant(namespace string, names []string, scopes ...string) hallpassv1.APIGrant {
	return hallpassv1.APIGrant{
		Clients:           hallpassv1.GrantedClients{Namespace: namespace, Names: names},
		ClientCredentials: &hallpassv1.GrantedScopes{Scopes: scopes},
	}
}

// TestATenantCannotGrantItselfAnotherTeamsAPI is the regression test of self-granted
// audiences and scopes: an application team, with only the rights of its namespace, sets
// the orders team's API as its client's access token audience and asks for orders:admin.
// Its client still works, but gets no grant: only the platform team's SSOAPI decides, and
// the tenant can neither write one nor edit the one that exists.
func TestATenantCannotGrantItselfAnotherTeamsAPI(t *testing.T) {
	ctx := context.Background()
	platform, ordersTeam, attacker := newNamespace(t, nil), newNamespace(t, nil), newNamespace(t, nil)
	server := newServer(platform, "sso")
	server.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{Names: []string{ordersTeam, attacker}}
	const identifier = "https://orders.example.com/api"
	create(t, server, newClient(ordersTeam, "batch", platform, "sso", hallpassv1.MachineToMachine),
		newAPI(platform, "orders", "sso", identifier, clientCredentialsGrant(ordersTeam, []string{"batch"}, "orders:read", "orders:admin")))

	tenant := asTenant(t, attacker)
	thief := newClient(attacker, "thief", platform, "sso", hallpassv1.MachineToMachine)
	thief.Spec.AccessTokenAudience = identifier
	thief.Spec.AllowedScopes = []string{"orders:admin"}
	if err := tenant.Create(ctx, thief); err != nil {
		t.Fatalf("the tenant cannot create its own SSOClient: %v", err)
	}
	// Neither a grant of its own nor a change to the orders team's.
	own := newAPI(attacker, "mine", "sso", identifier, clientCredentialsGrant(attacker, nil, "orders:admin"))
	if err := tenant.Create(ctx, own); !apierrors.IsForbidden(err) {
		t.Errorf("the tenant created an SSOAPI in its namespace: %v", err)
	}
	theirs := newAPI(platform, "orders-too", "sso", identifier, clientCredentialsGrant(attacker, nil, "orders:admin"))
	if err := tenant.Create(ctx, theirs); !apierrors.IsForbidden(err) {
		t.Errorf("the tenant created an SSOAPI in the server's namespace: %v", err)
	}
	orders := get(NewWithT(t), platform, "orders", &hallpassv1.SSOAPI{})
	orders.Spec.Grants = append(orders.Spec.Grants, clientCredentialsGrant(attacker, nil, "orders:admin"))
	if err := tenant.Update(ctx, orders); !apierrors.IsForbidden(err) {
		t.Errorf("the tenant edited the orders team's SSOAPI: %v", err)
	}

	eventually(t, func(g Gomega) {
		actAsServerPods(g, platform, "sso")
		victim := get(g, ordersTeam, "batch", &hallpassv1.SSOClient{})
		got := get(g, attacker, "thief", &hallpassv1.SSOClient{})
		g.Expect(victim.Status.ClientID).NotTo(BeEmpty())
		g.Expect(got.Status.ClientID).NotTo(BeEmpty())
		g.Expect(condition(got.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		deprecated := condition(got.Status.Conditions, hallpassv1.SSOClientDeprecated)
		g.Expect(deprecated).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonIgnoredFields))
		g.Expect(deprecated.Message).To(ContainSubstring("SSOAPI"))

		cfg := renderedConfig(g, platform, "sso")
		_, served := cfg.Client(got.Status.ClientID)
		g.Expect(served).To(BeTrue(), "the thief's client is served, without the API")
		api, ok := cfg.API(identifier)
		g.Expect(ok).To(BeTrue())
		_, stolen := api.Grant(got.Status.ClientID)
		g.Expect(stolen).To(BeFalse(), "the tenant's own fields granted it the orders API")
		grant, ok := api.Grant(victim.Status.ClientID)
		g.Expect(ok).To(BeTrue())
		g.Expect(grant.ClientCredentials.Scopes).To(Equal([]string{"orders:admin", "orders:read"}))
	})
	eventually(t, func(g Gomega) {
		g.Expect(eventReasons(g, attacker, "thief")).To(ContainElement(hallpassv1.ReasonIgnoredFields))
	})
}

// TestSSOAPIStatus walks an API through the refusals the operator alone can see, and the
// count of the clients it grants.
func TestSSOAPIStatus(t *testing.T) {
	ctx := context.Background()
	platform, team := newNamespace(t, nil), newNamespace(t, map[string]string{"hallpass.test/team": "orders"})
	server := newServer(platform, "sso")
	server.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{Names: []string{team}}
	byLabel := hallpassv1.APIGrant{
		Clients:   hallpassv1.GrantedClients{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"hallpass.test/team": "orders"}}},
		UserFlows: &hallpassv1.GrantedScopes{Scopes: []string{"orders:read"}},
	}
	older := newAPI(platform, "orders", "sso", "urn:example:orders", byLabel)
	create(t, server, newClient(team, "web", platform, "sso", hallpassv1.RegularWebApp),
		newClient(team, "batch", platform, "sso", hallpassv1.MachineToMachine), older)
	eventually(t, func(g Gomega) {
		a := get(g, platform, "orders", &hallpassv1.SSOAPI{})
		g.Expect(condition(a.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		g.Expect(a.Status.Clients).To(Equal(int32(2)))
		g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
	})

	// A second SSOAPI for the same audience cannot take it over; one for the issuer's is
	// refused outright.
	create(t, newAPI(platform, "orders-again", "sso", "urn:example:orders"),
		newAPI(platform, "issuer", "sso", server.Spec.Issuer))
	eventually(t, func(g Gomega) {
		again := get(g, platform, "orders-again", &hallpassv1.SSOAPI{})
		ready := condition(again.Status.Conditions, hallpassv1.ConditionReady)
		g.Expect(ready).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonDuplicateIdentifier))
		g.Expect(ready.Message).To(ContainSubstring("SSOAPI orders"))
		issuer := get(g, platform, "issuer", &hallpassv1.SSOAPI{})
		g.Expect(condition(issuer.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonIdentifierIsIssuer))
		cfg := renderedConfig(g, platform, "sso")
		g.Expect(cfg.APIs).To(HaveLen(1))
		g.Expect(cfg.APIs[0].Grants).To(HaveLen(2))
	})

	// When the namespace leaves the grant's selector, its clients lose the API.
	ns := &corev1.Namespace{}
	NewWithT(t).Expect(k8s.Get(ctx, client.ObjectKey{Name: team}, ns)).To(Succeed())
	patch := client.MergeFrom(ns.DeepCopy())
	ns.Labels["hallpass.test/team"] = "billing"
	NewWithT(t).Expect(k8s.Patch(ctx, ns, patch)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(get(g, platform, "orders", &hallpassv1.SSOAPI{}).Status.Clients).To(BeZero())
		g.Expect(renderedConfig(g, platform, "sso").APIs[0].Grants).To(BeEmpty())
	})

	// Once the older SSOAPI goes, the newer one serves the identifier.
	NewWithT(t).Expect(k8s.Delete(ctx, older)).To(Succeed())
	eventually(t, func(g Gomega) {
		again := get(g, platform, "orders-again", &hallpassv1.SSOAPI{})
		g.Expect(condition(again.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	})
}

// TestAdmissionRejectsInvalidSSOAPIs: the API server refuses a malformed SSOAPI with a
// message naming the field.
func TestAdmissionRejectsInvalidSSOAPIs(t *testing.T) {
	ns := newNamespace(t, nil)
	api := func(mutate func(*hallpassv1.SSOAPI)) *hallpassv1.SSOAPI {
		a := newAPI(ns, "invalid", "sso", "https://api.example.com/orders", clientCredentialsGrant(ns, nil, "orders:read"))
		mutate(a)
		return a
	}
	cases := map[string]struct {
		obj     *hallpassv1.SSOAPI
		message string
	}{
		"an identifier that is no URI, as a client ID is": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Identifier = "x4Qb0v2Lr9mH1sT7kW3yZg" }),
			"spec.identifier must be an absolute URI",
		},
		"an identifier with whitespace": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Identifier = "urn:orders api" }),
			"spec.identifier must be an absolute URI",
		},
		"an identifier with a fragment": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Identifier = "https://api.example.com/orders#v2" }),
			"spec.identifier must be an absolute URI",
		},
		"an https identifier without host": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Identifier = "https:orders" }),
			"spec.identifier: an http(s) identifier must be a URL with a host",
		},
		"an identifier over 512 characters": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Identifier = "urn:" + strings.Repeat("o", 510) }),
			"spec.identifier",
		},
		"a scope named like an OpenID scope": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Scopes = append(a.Spec.Scopes, hallpassv1.APIScope{Name: "openid"}) }),
			"spec.scopes[].name must not be an OpenID scope",
		},
		"a scope with a space": {
			api(func(a *hallpassv1.SSOAPI) {
				a.Spec.Scopes = append(a.Spec.Scopes, hallpassv1.APIScope{Name: "orders read"})
			}),
			"spec.scopes[2].name",
		},
		"a grant of a scope the API does not declare": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Grants[0].ClientCredentials.Scopes = []string{"orders:delete"} }),
			"spec.grants[].clientCredentials.scopes: every granted scope must be declared in spec.scopes",
		},
		"a user-flow grant of a scope the API does not declare": {
			api(func(a *hallpassv1.SSOAPI) {
				a.Spec.Grants[0].UserFlows = &hallpassv1.GrantedScopes{Scopes: []string{"orders:delete"}}
			}),
			"spec.grants[].userFlows.scopes: every granted scope must be declared in spec.scopes",
		},
		"a grant of neither flow": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Grants[0].ClientCredentials = nil }),
			"spec.grants[]: set userFlows, clientCredentials or both",
		},
		"a grant naming clients of no namespace": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Grants[0].Clients.Namespace = "" }),
			"spec.grants[].clients: set exactly one of namespace or namespaceSelector",
		},
		"a grant naming a namespace and a namespace selector": {
			api(func(a *hallpassv1.SSOAPI) {
				a.Spec.Grants[0].Clients.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
			}),
			"spec.grants[].clients: set exactly one of namespace or namespaceSelector",
		},
		"a grant with client names and a client selector": {
			api(func(a *hallpassv1.SSOAPI) {
				a.Spec.Grants[0].Clients.Names = []string{"web"}
				a.Spec.Grants[0].Clients.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
			}),
			"spec.grants[].clients: set names or selector, not both",
		},
		"a token lifetime over a day": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Token.Lifetime = "25h" }),
			"spec.token.lifetime must be between 1m and 24h",
		},
		"a token format that does not exist": {
			api(func(a *hallpassv1.SSOAPI) { a.Spec.Token.Format = "SAML" }),
			"spec.token.format",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := k8s.Create(context.Background(), tc.obj)
			g := NewWithT(t)
			g.Expect(err).To(HaveOccurred(), "the API server accepted the SSOAPI")
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}

	t.Run("the identifier and server are immutable", func(t *testing.T) {
		a := api(func(*hallpassv1.SSOAPI) {})
		create(t, a)
		for field, mutate := range map[string]func(*hallpassv1.SSOAPI){
			"spec.identifier is immutable": func(a *hallpassv1.SSOAPI) { a.Spec.Identifier = "urn:other" },
			"spec.serverRef is immutable":  func(a *hallpassv1.SSOAPI) { a.Spec.ServerRef.Name = "other" },
		} {
			changed := a.DeepCopy()
			mutate(changed)
			err := k8s.Patch(context.Background(), changed, client.MergeFrom(a))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(field)))
		}
	})
}
