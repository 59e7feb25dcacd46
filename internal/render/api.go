package render

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

// APIRefusal says why an SSOAPI cannot be served.
type APIRefusal struct {
	Reason  string
	Message string
}

// RefuseAPIs decides which of one server's APIs cannot be served, by SSOAPI name. An
// identifier that is the issuer or a client ID would let an access token pass where only
// an ID token or the issuer itself should (CEL already keeps client-ID-shaped identifiers
// out; this holds for client IDs written by hand). Of two APIs with one identifier the
// older keeps it, so a new SSOAPI can never take an audience over from one in use. The
// SSOAPI controller reports exactly what Render leaves out, because both ask this function.
func RefuseAPIs(issuer string, apis []*hallpassv1.SSOAPI, clientIDs []string) map[string]APIRefusal {
	sorted := slices.Clone(apis)
	slices.SortFunc(sorted, func(a, b *hallpassv1.SSOAPI) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	refused := map[string]APIRefusal{}
	holder := map[string]string{}
	for _, api := range sorted {
		id := api.Spec.Identifier
		switch {
		case strings.TrimSuffix(id, "/") == strings.TrimSuffix(issuer, "/"):
			refused[api.Name] = APIRefusal{hallpassv1.ReasonIdentifierIsIssuer,
				fmt.Sprintf("spec.identifier %q is the server's issuer; an API needs an audience of its own", id)}
		case slices.Contains(clientIDs, id):
			refused[api.Name] = APIRefusal{hallpassv1.ReasonIdentifierIsClientID,
				fmt.Sprintf("spec.identifier %q is the client ID of a client of this server; its access tokens would pass as that client's ID tokens", id)}
		case holder[id] != "":
			refused[api.Name] = APIRefusal{hallpassv1.ReasonDuplicateIdentifier,
				fmt.Sprintf("spec.identifier %q is already the identifier of SSOAPI %s, which is older", id, holder[id])}
		default:
			if err := checkSpec(api); err != nil {
				refused[api.Name] = APIRefusal{hallpassv1.ReasonInvalidSpec, err.Error()}
				continue
			}
			holder[id] = api.Name
		}
	}
	return refused
}

// checkSpec finds what CEL cannot check: label selectors and durations that do not parse.
func checkSpec(api *hallpassv1.SSOAPI) error {
	if l := api.Spec.Token.Lifetime; l != "" {
		if _, err := time.ParseDuration(string(l)); err != nil {
			return fmt.Errorf("spec.token.lifetime: %w", err)
		}
	}
	for i, g := range api.Spec.Grants {
		for field, sel := range map[string]*metav1.LabelSelector{"namespaceSelector": g.Clients.NamespaceSelector, "selector": g.Clients.Selector} {
			if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
				return fmt.Errorf("spec.grants[%d].clients.%s: %w", i, field, err)
			}
		}
	}
	return nil
}

// Grants resolves the grants of an API to the clients they select, one per client ID,
// sorted; a client several grants select gets the union of their scopes.
// namespaceLabels holds the labels of the clients' namespaces.
func Grants(api *hallpassv1.SSOAPI, clients []Client, namespaceLabels map[string]map[string]string) []config.APIGrant {
	byID := map[string]*config.APIGrant{}
	for _, g := range api.Spec.Grants {
		for _, c := range clients {
			if !grantSelects(g.Clients, c.Client, namespaceLabels) {
				continue
			}
			out := byID[c.ID]
			if out == nil {
				out = &config.APIGrant{ClientID: c.ID}
				byID[c.ID] = out
			}
			out.UserFlows = unionScopes(out.UserFlows, g.UserFlows)
			out.ClientCredentials = unionScopes(out.ClientCredentials, g.ClientCredentials)
		}
	}
	grants := make([]config.APIGrant, 0, len(byID))
	for _, g := range byID {
		grants = append(grants, *g)
	}
	slices.SortFunc(grants, func(a, b config.APIGrant) int { return cmp.Compare(a.ClientID, b.ClientID) })
	return grants
}

// grantSelects reports whether a grant's client selection includes c. A selector that does
// not parse selects nothing (RefuseAPIs refuses the API before it gets here).
func grantSelects(sel hallpassv1.GrantedClients, c *hallpassv1.SSOClient, namespaceLabels map[string]map[string]string) bool {
	if sel.Namespace != "" && sel.Namespace != c.Namespace {
		return false
	}
	if sel.NamespaceSelector != nil && !matches(sel.NamespaceSelector, namespaceLabels[c.Namespace]) {
		return false
	}
	switch {
	case len(sel.Names) > 0:
		return slices.Contains(sel.Names, c.Name)
	case sel.Selector != nil:
		return matches(sel.Selector, c.Labels)
	}
	return true
}

func matches(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(set))
}

func unionScopes(have *config.GrantedScopes, add *hallpassv1.GrantedScopes) *config.GrantedScopes {
	if add == nil {
		return have
	}
	if have == nil {
		have = &config.GrantedScopes{}
	}
	have.Scopes = sortedCopy(append(slices.Clone(have.Scopes), add.Scopes...))
	return have
}

// renderAPIs renders the APIs RefuseAPIs lets through, with their grants, sorted by
// identifier, and names the ones it left out.
func renderAPIs(in Input, clients []Client, accessTokenLifetime time.Duration) ([]config.API, []string) {
	ids := make([]string, len(clients))
	for i, c := range clients {
		ids[i] = c.ID
	}
	refused := RefuseAPIs(in.Server.Spec.Issuer, in.APIs, ids)
	var out []config.API
	var left []string
	for _, api := range in.APIs {
		if _, ok := refused[api.Name]; ok {
			left = append(left, api.Name)
			continue
		}
		lifetime := accessTokenLifetime
		if api.Spec.Token.Lifetime != "" {
			lifetime, _ = time.ParseDuration(string(api.Spec.Token.Lifetime)) // checked by RefuseAPIs
		}
		scopes := make([]string, len(api.Spec.Scopes))
		for i, s := range api.Spec.Scopes {
			scopes[i] = s.Name
		}
		out = append(out, config.API{
			Identifier:    api.Spec.Identifier,
			Name:          cmp.Or(api.Spec.DisplayName, api.Name),
			Scopes:        sortedCopy(scopes),
			TokenFormat:   string(cmp.Or(api.Spec.Token.Format, hallpassv1.APITokenJWT)),
			TokenLifetime: config.Duration{Duration: lifetime},
			Grants:        Grants(api, clients, in.NamespaceLabels),
		})
	}
	slices.SortFunc(out, func(a, b config.API) int { return cmp.Compare(a.Identifier, b.Identifier) })
	slices.Sort(left)
	return out, left
}
