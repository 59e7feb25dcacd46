package render

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

// GoogleIssuer is the issuer of the Google preset.
const GoogleIssuer = "https://accounts.google.com"

// Kinds of referenced objects.
const (
	KindSecret    = "Secret"
	KindConfigMap = "ConfigMap"
)

// Ref identifies one key of one Secret or ConfigMap.
type Ref struct {
	Kind, Namespace, Name, Key string
}

// Values holds the resolved referenced keys. A key absent from the map did not resolve.
type Values map[Ref]string

// MissingReferenceError reports a reference that did not resolve. Its message names the
// object and key but never a value.
type MissingReferenceError struct {
	Kind, Name, Key string
}

func (e *MissingReferenceError) Error() string {
	return fmt.Sprintf("%s %q has no key %q (or does not exist)", e.Kind, e.Name, e.Key)
}

// Secret returns the value of a Secret reference made from an object in namespace.
func (v Values) Secret(namespace string, ref hallpassv1.SecretKeyReference) (string, error) {
	return v.lookup(Ref{KindSecret, namespace, ref.Name, ref.Key})
}

// ConfigMap returns the value of a ConfigMap reference made from an object in namespace.
func (v Values) ConfigMap(namespace string, ref hallpassv1.ConfigMapKeyReference) (string, error) {
	return v.lookup(Ref{KindConfigMap, namespace, ref.Name, ref.Key})
}

func (v Values) lookup(r Ref) (string, error) {
	value, ok := v[r]
	if !ok {
		return "", &MissingReferenceError{Kind: r.Kind, Name: r.Name, Key: r.Key}
	}
	return value, nil
}

// Connection renders one IdentityConnection. Its errors are what the connection's
// CredentialsResolved condition reports: a *MissingReferenceError, or a description of
// unusable Secret content.
func Connection(c *hallpassv1.IdentityConnection, values Values) (config.Connection, error) {
	out := config.Connection{
		Name:             c.Name,
		Type:             string(c.Spec.Type),
		DisplayName:      cmp.Or(c.Spec.DisplayName, c.Name),
		TrustUpstreamMFA: c.Spec.TrustUpstreamMFA,
	}
	l := &secretLookup{namespace: c.Namespace, values: values}
	s := c.Spec
	switch {
	case s.Database != nil:
		out.Database = databaseConnection(s.Database, l)
	case s.OIDC != nil:
		out.OIDC = &config.OIDCConnection{
			Issuer:       s.OIDC.Issuer,
			ClientID:     l.get(&s.OIDC.ClientIDRef),
			ClientSecret: l.get(&s.OIDC.ClientSecretRef),
			Scopes:       scopesOrDefault(s.OIDC.Scopes),
			ClaimMapping: claimMapping(s.OIDC.ClaimMapping),
			RootCA:       l.get(s.OIDC.RootCARef),
		}
	case s.Google != nil:
		out.OIDC = &config.OIDCConnection{
			Issuer:       GoogleIssuer,
			ClientID:     l.get(&s.Google.ClientIDRef),
			ClientSecret: l.get(&s.Google.ClientSecretRef),
			Scopes:       scopesOrDefault(nil),
			HostedDomain: s.Google.HostedDomain,
		}
	case s.GitHub != nil:
		out.GitHub = gitHubConnection(s.GitHub, l)
	case s.SAML != nil:
		out.SAML = samlConnection(c, l)
	case s.LDAP != nil:
		out.LDAP = ldapConnection(s.LDAP, l)
	default:
		l.errs = append(l.errs, fmt.Errorf("no configuration block for type %s", s.Type))
	}
	if len(l.errs) > 0 {
		return config.Connection{}, errors.Join(l.errs...)
	}
	return out, nil
}

// secretLookup resolves the references of one connection and collects every one that
// fails, so that one status update names them all.
type secretLookup struct {
	namespace string
	values    Values
	errs      []error
}

func (l *secretLookup) get(ref *hallpassv1.SecretKeyReference) string {
	if ref == nil {
		return ""
	}
	v, err := l.values.Secret(l.namespace, *ref)
	if err != nil {
		l.errs = append(l.errs, err)
	}
	return v
}

func databaseConnection(db *hallpassv1.DatabaseConnection, l *secretLookup) *config.DatabaseConnection {
	out := &config.DatabaseConnection{SignupEnabled: db.SignupEnabled}
	if raw := l.get(db.UsersSecretRef); raw != "" {
		users, err := ParseUsers([]byte(raw))
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("Secret %q key %q: %w", db.UsersSecretRef.Name, db.UsersSecretRef.Key, err))
		}
		out.Users = users
	}
	return out
}

func gitHubConnection(gh *hallpassv1.GitHubConnection, l *secretLookup) *config.GitHubConnection {
	out := &config.GitHubConnection{
		ClientID:     l.get(&gh.ClientIDRef),
		ClientSecret: l.get(&gh.ClientSecretRef),
		BaseURL:      gh.BaseURL,
	}
	for _, o := range gh.Orgs {
		out.Orgs = append(out.Orgs, config.GitHubOrg{Name: o.Name, Teams: sortedCopy(o.Teams)})
	}
	slices.SortFunc(out.Orgs, func(a, b config.GitHubOrg) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func samlConnection(c *hallpassv1.IdentityConnection, l *secretLookup) *config.SAMLConnection {
	s, sp := c.Spec.SAML, c.SAMLServiceProviderSecretName()
	out := &config.SAMLConnection{
		MetadataURL:      s.MetadataURL,
		MetadataXML:      l.get(s.MetadataSecretRef),
		SPKeyPEM:         l.get(&hallpassv1.SecretKeyReference{Name: sp, Key: hallpassv1.SAMLServiceProviderKey}),
		SPCertificatePEM: l.get(&hallpassv1.SecretKeyReference{Name: sp, Key: hallpassv1.SAMLServiceProviderCertificate}),
		AttributeMapping: claimMapping(s.AttributeMapping),
	}
	if ref := s.MetadataConfigMapRef; ref != nil {
		xml, err := l.values.ConfigMap(c.Namespace, *ref)
		if err != nil {
			l.errs = append(l.errs, err)
		}
		out.MetadataXML = xml
	}
	return out
}

func ldapConnection(ld *hallpassv1.LDAPConnection, l *secretLookup) *config.LDAPConnection {
	out := &config.LDAPConnection{
		URL:          ld.URL,
		StartTLS:     ld.StartTLS,
		RootCA:       l.get(ld.RootCARef),
		BindDN:       ld.BindDN,
		BindPassword: l.get(&ld.BindPasswordRef),
		UserBaseDN:   ld.UserSearch.BaseDN,
		UserFilter:   ld.UserSearch.Filter,
		UsernameAttr: cmp.Or(ld.UserSearch.UsernameAttribute, "uid"),
	}
	if g := ld.GroupSearch; g != nil {
		out.GroupBaseDN, out.GroupFilter = g.BaseDN, g.Filter
	}
	return out
}

// ParseUsers reads the users Secret of a Database connection: a YAML list of users with
// argon2id (or bcrypt) password hashes. It returns the users sorted by username, and refuses
// duplicates and anything that is not a password hash (a plain-text password, say).
func ParseUsers(data []byte) ([]config.DatabaseUser, error) {
	var users []config.DatabaseUser
	if err := yaml.UnmarshalStrict(data, &users); err != nil {
		return nil, fmt.Errorf("parse users: %w", err)
	}
	for i, u := range users {
		switch {
		case strings.TrimSpace(u.Username) == "":
			return nil, fmt.Errorf("users[%d]: username is empty", i)
		case !IsPasswordHash(u.PasswordHash):
			return nil, fmt.Errorf("users[%d] (%s): passwordHash must be an argon2id ($argon2id$...) or bcrypt ($2a$, $2b$, $2y$) hash", i, u.Username)
		}
		users[i].Groups = sortedCopy(u.Groups)
	}
	slices.SortFunc(users, func(a, b config.DatabaseUser) int { return cmp.Compare(a.Username, b.Username) })
	for i := 1; i < len(users); i++ {
		if users[i].Username == users[i-1].Username {
			return nil, fmt.Errorf("parse users: username %q appears twice", users[i].Username)
		}
	}
	return users, nil
}

// IsPasswordHash reports whether s looks like a hash the server can verify.
func IsPasswordHash(s string) bool {
	for _, prefix := range []string{"$argon2id$", "$2a$", "$2b$", "$2y$"} {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func scopesOrDefault(scopes []string) []string {
	if len(scopes) == 0 {
		return []string{"email", "openid", "profile"}
	}
	return sortedCopy(scopes)
}

func claimMapping(m *hallpassv1.ClaimMapping) map[string]string {
	if m == nil {
		return nil
	}
	out := map[string]string{}
	for claim, upstream := range map[string]string{
		"sub": m.Subject, "email": m.Email, "email_verified": m.EmailVerified,
		"name": m.Name, "preferred_username": m.PreferredUsername, "groups": m.Groups,
	} {
		if upstream != "" {
			out[claim] = upstream
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
