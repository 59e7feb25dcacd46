package render

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

func api(name, identifier string, created int64, grants ...hallpassv1.APIGrant) *hallpassv1.SSOAPI {
	return &hallpassv1.SSOAPI{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sso", Name: name, CreationTimestamp: metav1.Unix(created, 0)},
		Spec: hallpassv1.SSOAPISpec{
			Identifier: identifier,
			Scopes:     []hallpassv1.APIScope{{Name: "r"}, {Name: "w"}, {Name: "admin"}},
			Grants:     grants,
		},
	}
}

// grant lets clients of namespace (all of them when names is nil) get scopes with client
// credentials.
func grant(namespace string, names, scopes []string) hallpassv1.APIGrant {
	return hallpassv1.APIGrant{
		Clients:           hallpassv1.GrantedClients{Namespace: namespace, Names: names},
		ClientCredentials: &hallpassv1.GrantedScopes{Scopes: scopes},
	}
}

func TestAPIs(t *testing.T) {
	m2m := func(namespace, name string, labels map[string]string) Client {
		c := client(name, name, hallpassv1.MachineToMachine, 1)
		c.Client.Namespace, c.Client.Labels, c.Client.Spec.RedirectURIs = namespace, labels, nil
		return c
	}
	clients := []Client{
		m2m("shop", "cart", map[string]string{"tier": "gold"}),
		m2m("shop", "ledger", nil),
		m2m("blog", "feed", map[string]string{"tier": "gold"}),
	}
	namespaceLabels := map[string]map[string]string{"shop": {"team": "commerce"}, "blog": {"team": "content"}}
	cases := map[string]struct {
		apis []*hallpassv1.SSOAPI
		// deprecatedFields sets SSOClient.spec.accessTokenAudience and allowedScopes.
		deprecatedFields bool
		want             map[string]string // identifier -> grants, as "clientID=cc scopes|user scopes;..."
		refus            map[string]string // SSOAPI name -> reason
	}{
		"a client's own audience and scopes grant nothing": {
			deprecatedFields: true,
			want:             map[string]string{},
		},
		"grants select by namespace and names, and the union of several grants is granted": {
			apis: []*hallpassv1.SSOAPI{api("orders", "https://api.example.com/orders", 1,
				grant("shop", []string{"cart"}, []string{"r"}),
				grant("shop", []string{"cart", "ledger"}, []string{"w"}),
				grant("elsewhere", nil, []string{"admin"}))},
			want: map[string]string{"https://api.example.com/orders": "cart=[r w]|<nil>;ledger=[w]|<nil>"},
		},
		"a namespace selector and a client label selector choose among trusted namespaces only": {
			apis: []*hallpassv1.SSOAPI{api("orders", "urn:orders", 1, hallpassv1.APIGrant{
				Clients: hallpassv1.GrantedClients{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "commerce"}},
					Selector:          &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}},
				},
				UserFlows: &hallpassv1.GrantedScopes{},
			})},
			want: map[string]string{"urn:orders": "cart=<nil>|[]"},
		},
		"of two APIs with one identifier the older is served": {
			apis:  []*hallpassv1.SSOAPI{api("newer", "urn:orders", 5, grant("blog", nil, []string{"r"})), api("older", "urn:orders", 1, grant("shop", []string{"ledger"}, []string{"r"}))},
			want:  map[string]string{"urn:orders": "ledger=[r]|<nil>"},
			refus: map[string]string{"newer": hallpassv1.ReasonDuplicateIdentifier},
		},
		"an API named like the issuer or a client ID is left out": {
			apis: []*hallpassv1.SSOAPI{api("issuer", "https://sso.example.com/", 1), api("client", "cart", 1), api("fine", "urn:fine", 1)},
			want: map[string]string{"urn:fine": ""},
			refus: map[string]string{
				"issuer": hallpassv1.ReasonIdentifierIsIssuer,
				"client": hallpassv1.ReasonIdentifierIsClientID,
			},
		},
		"a selector that does not parse leaves its API out": {
			apis: []*hallpassv1.SSOAPI{api("bad", "urn:bad", 1, hallpassv1.APIGrant{
				Clients:   hallpassv1.GrantedClients{Namespace: "shop", Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}}},
				UserFlows: &hallpassv1.GrantedScopes{},
			})},
			want:  map[string]string{},
			refus: map[string]string{"bad": hallpassv1.ReasonInvalidSpec},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := Input{Server: server(), APIs: tc.apis, NamespaceLabels: namespaceLabels}
			for _, c := range clients {
				c.Client = c.Client.DeepCopy()
				if tc.deprecatedFields {
					c.Client.Spec.AccessTokenAudience, c.Client.Spec.AllowedScopes = "urn:orders", []string{"orders:admin"}
				}
				in.Clients = append(in.Clients, c)
			}
			out, err := Render(in)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			got := map[string]string{}
			for _, a := range out.Config.APIs {
				var grants []string
				for _, g := range a.Grants {
					grants = append(grants, fmt.Sprintf("%s=%s|%s", g.ClientID, scopesOf(g.ClientCredentials), scopesOf(g.UserFlows)))
				}
				got[a.Identifier] = strings.Join(grants, ";")
			}
			expect(t, fmt.Sprint(got) == fmt.Sprint(tc.want), "APIs %v, want %v", got, tc.want)
			refused := RefuseAPIs(server().Spec.Issuer, tc.apis, []string{"cart", "ledger", "feed"})
			reasons := map[string]string{}
			for n, r := range refused {
				reasons[n] = r.Reason
			}
			expect(t, fmt.Sprint(reasons) == fmt.Sprint(tc.refus), "refused %v, want %v", reasons, tc.refus)
			var names []string
			for n := range tc.refus {
				names = append(names, n)
			}
			slices.Sort(names)
			expect(t, slices.Equal(out.RefusedAPIs, names), "render left out %v, want %v", out.RefusedAPIs, names)
		})
	}
}

func TestAPITokenDefaults(t *testing.T) {
	a := api("orders", "urn:orders", 1)
	b := api("billing", "urn:billing", 1)
	b.Spec.Token = hallpassv1.APIToken{Format: hallpassv1.APITokenOpaque, Lifetime: "5m"}
	out, err := Render(Input{Server: server(), APIs: []*hallpassv1.SSOAPI{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	orders, _ := out.Config.API("urn:orders")
	billing, _ := out.Config.API("urn:billing")
	expect(t, orders.TokenFormat == config.TokenJWT && orders.TokenLifetime.String() == "1h0m0s", "default token %s %s, want JWT for the server's hour", orders.TokenFormat, orders.TokenLifetime)
	expect(t, billing.TokenFormat == config.TokenOpaque && billing.TokenLifetime.String() == "5m0s", "token %s %s, want Opaque for 5m", billing.TokenFormat, billing.TokenLifetime)
}

func scopesOf(g *config.GrantedScopes) string {
	if g == nil {
		return "<nil>"
	}
	return fmt.Sprint(append([]string{}, g.Scopes...))
}
