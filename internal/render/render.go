// Package render turns the cluster resources of one SSO server into the server's config.
//
// Render is a pure function: no clients, no clock, no randomness. The operator collects the
// inputs (the server, its ready connections, its accepted clients with their credentials,
// and the values of every Secret key they reference), and the same inputs always give the
// same bytes, so an unchanged cluster never rewrites the config Secret.
package render

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

// Paths inside the server pod.
const (
	// DataDir is where the SQLite volume is mounted.
	DataDir = "/var/lib/hallpass"
	// SQLitePath is the database file on that volume.
	SQLitePath = DataDir + "/hallpass.db"
)

// Input is everything the config of one server depends on.
type Input struct {
	Server *hallpassv1.SSOServer
	// Connections are the server's connections. Those whose credentials do not resolve are
	// left out, so one broken connection never takes the others down.
	Connections []*hallpassv1.IdentityConnection
	// Clients are the server's accepted clients.
	Clients []Client
	// APIs are the server's SSOAPIs; RefuseAPIs decides which are served.
	APIs []*hallpassv1.SSOAPI
	// NamespaceLabels holds the labels of the clients' namespaces, for the grants'
	// namespace selectors.
	NamespaceLabels map[string]map[string]string
	// Values holds every Secret and ConfigMap key the server and its connections reference.
	Values Values
}

// Client is an accepted SSOClient with the credentials the operator gave it.
type Client struct {
	Client *hallpassv1.SSOClient
	ID     string
	// SecretDigests are config.SecretDigest values of the accepted client secrets.
	SecretDigests []string
}

// Output is the rendered config and what had to be left out of it.
type Output struct {
	Config *config.Config
	// Bytes is the config as written to the config Secret.
	Bytes []byte
	// Dropped names ("namespace/name") clients left out because an older client has the same
	// client ID. The SSOClient controller reports these; dropping here keeps one bad client
	// from breaking the whole server.
	Dropped []string
	// SkippedConnections names connections left out because their credentials do not
	// resolve; the IdentityConnection controller reports why.
	SkippedConnections []string
	// RefusedAPIs names SSOAPIs left out (RefuseAPIs); the SSOAPI controller reports why.
	RefusedAPIs []string
}

// Render builds the server config.
func Render(in Input) (*Output, error) {
	s := in.Server
	durations, err := parseDurations(s)
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{
		Issuer:  s.Spec.Issuer,
		DevMode: s.Spec.DevMode,
		Session: config.Session{
			AbsoluteLifetime: durations["session.absoluteLifetime"],
			IdleTimeout:      durations["session.idleTimeout"],
		},
		Tokens: config.Tokens{
			IDToken:              durations["tokens.idToken"],
			AccessToken:          durations["tokens.accessToken"],
			RefreshToken:         durations["tokens.refreshToken"],
			RefreshReuseInterval: durations["tokens.refreshReuseInterval"],
			AuthorizationCode:    durations["tokens.authorizationCode"],
		},
		Signing:        config.Signing{Algorithm: cmp.Or(s.Spec.SigningKeys.Algorithm, "RS256")},
		TrustedProxies: sortedCopy(s.Spec.TrustedProxies),
		MFA:            config.MFA{Policy: string(s.Spec.MFA.Policy), Factors: mfaFactors(s.Spec.MFA.Factors)},
		Branding: config.Branding{
			Title:           s.Spec.Branding.Title,
			LogoURL:         s.Spec.Branding.LogoURL,
			PrimaryColor:    s.Spec.Branding.PrimaryColor,
			BackgroundColor: s.Spec.Branding.BackgroundColor,
		},
	}
	if cfg.Storage, err = renderStorage(s, in.Values); err != nil {
		return nil, err
	}
	if cfg.Email, err = renderEmail(s, in.Values); err != nil {
		return nil, err
	}

	var skipped []string
	for _, c := range in.Connections {
		rc, err := Connection(c, in.Values)
		if err != nil {
			skipped = append(skipped, c.Name)
			continue
		}
		cfg.Connections = append(cfg.Connections, rc)
	}
	slices.Sort(skipped)
	slices.SortFunc(cfg.Connections, func(a, b config.Connection) int { return cmp.Compare(a.Name, b.Name) })
	if i := duplicateConnection(cfg.Connections); i >= 0 {
		return nil, fmt.Errorf("render connections: two connections are named %q", cfg.Connections[i].Name)
	}
	connectionNames := make([]string, len(cfg.Connections))
	for i, c := range cfg.Connections {
		connectionNames[i] = c.Name
	}

	clients, dropped := uniqueClients(in.Clients)
	for _, c := range clients {
		cfg.Clients = append(cfg.Clients, renderClient(c, connectionNames))
	}
	slices.SortFunc(cfg.Clients, func(a, b config.Client) int { return cmp.Compare(a.ID, b.ID) })
	var refusedAPIs []string
	cfg.APIs, refusedAPIs = renderAPIs(in, clients, cfg.Tokens.AccessToken.Duration)

	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	b, err := config.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return &Output{Config: cfg, Bytes: b, Dropped: dropped, SkippedConnections: skipped, RefusedAPIs: refusedAPIs}, nil
}

func parseDurations(s *hallpassv1.SSOServer) (map[string]config.Duration, error) {
	fields := map[string]struct {
		value hallpassv1.Duration
		def   time.Duration
	}{
		"session.absoluteLifetime":    {s.Spec.Session.AbsoluteLifetime, 168 * time.Hour},
		"session.idleTimeout":         {s.Spec.Session.IdleTimeout, 72 * time.Hour},
		"tokens.idToken":              {s.Spec.Tokens.IDToken, time.Hour},
		"tokens.accessToken":          {s.Spec.Tokens.AccessToken, time.Hour},
		"tokens.refreshToken":         {s.Spec.Tokens.RefreshToken, 720 * time.Hour},
		"tokens.refreshReuseInterval": {s.Spec.Tokens.RefreshReuseInterval, 3 * time.Second},
		"tokens.authorizationCode":    {s.Spec.Tokens.AuthorizationCode, time.Minute},
	}
	out := make(map[string]config.Duration, len(fields))
	for name, f := range fields {
		d := f.def
		if f.value != "" {
			var err error
			if d, err = time.ParseDuration(string(f.value)); err != nil {
				return nil, fmt.Errorf("spec.%s: %w", name, err)
			}
		}
		out[name] = config.Duration{Duration: d}
	}
	return out, nil
}

func renderStorage(s *hallpassv1.SSOServer, values Values) (config.Storage, error) {
	if s.Spec.Storage.Type != hallpassv1.StoragePostgres {
		return config.Storage{Type: config.StorageSQLite, SQLitePath: SQLitePath}, nil
	}
	dsn, err := values.Secret(s.Namespace, s.Spec.Storage.Postgres.DSNSecretRef)
	if err != nil {
		return config.Storage{}, fmt.Errorf("spec.storage.postgres.dsnSecretRef: %w", err)
	}
	return config.Storage{Type: config.StoragePostgres, PostgresDSN: dsn}, nil
}

func renderEmail(s *hallpassv1.SSOServer, values Values) (*config.Email, error) {
	e := s.Spec.Email
	if e == nil {
		return nil, nil
	}
	out := &config.Email{
		Host:     e.Host,
		Port:     int(cmp.Or(e.Port, 587)),
		Security: string(cmp.Or(e.Security, hallpassv1.EmailSTARTTLS)),
		From:     e.From,
		Username: e.Username,
	}
	if e.PasswordSecretRef != nil {
		password, err := values.Secret(s.Namespace, *e.PasswordSecretRef)
		if err != nil {
			return nil, fmt.Errorf("spec.email.passwordSecretRef: %w", err)
		}
		out.Password = password
	}
	return out, nil
}

// uniqueClients keeps, for each client ID, the oldest client, and names the others.
func uniqueClients(clients []Client) (kept []Client, dropped []string) {
	sorted := slices.Clone(clients)
	slices.SortFunc(sorted, func(a, b Client) int {
		return cmp.Or(
			cmp.Compare(a.ID, b.ID),
			a.Client.CreationTimestamp.Compare(b.Client.CreationTimestamp.Time),
			cmp.Compare(a.Client.Namespace, b.Client.Namespace),
			cmp.Compare(a.Client.Name, b.Client.Name),
		)
	})
	for i, c := range sorted {
		if i > 0 && sorted[i-1].ID == c.ID {
			dropped = append(dropped, c.Client.Namespace+"/"+c.Client.Name)
			continue
		}
		kept = append(kept, c)
	}
	slices.Sort(dropped)
	return kept, dropped
}

func renderClient(c Client, connections []string) config.Client {
	spec := c.Client.Spec
	allowed := connections
	if len(spec.Connections) > 0 {
		allowed = nil
		for _, name := range spec.Connections {
			if _, ok := slices.BinarySearch(connections, name); ok {
				allowed = append(allowed, name)
			}
		}
	}
	return config.Client{
		ID:                      c.ID,
		Name:                    cmp.Or(spec.DisplayName, c.Client.Name),
		Type:                    string(spec.Type),
		SecretSHA256:            sortedCopy(c.SecretDigests),
		RedirectURIs:            sortedCopy(spec.RedirectURIs),
		PostLogoutRedirectURIs:  sortedCopy(spec.PostLogoutRedirectURIs),
		WebOrigins:              sortedCopy(spec.WebOrigins),
		SingleSignOn:            spec.SSOEnabled(),
		RequireMFA:              spec.RequireMFA,
		RequirePKCE:             spec.PKCERequired(),
		Connections:             sortedCopy(allowed),
		BackchannelLogoutURI:    spec.BackchannelLogoutURI,
		FrontchannelLogoutURI:   spec.FrontchannelLogoutURI,
		IDTokenSigningAlgorithm: spec.IDTokenSigningAlgorithm,
		GrantTypes:              grantTypes(spec.GrantTypes),
	}
}

// grantTypes are the client's declared grants, sorted; none declared renders as none, which
// the server reads as the defaults of the client's type.
func grantTypes(declared []hallpassv1.GrantType) []string {
	out := make([]string, 0, len(declared))
	for _, g := range declared {
		out = append(out, string(g))
	}
	return sortedCopy(out)
}

func duplicateConnection(cs []config.Connection) int {
	for i := 1; i < len(cs); i++ {
		if cs[i].Name == cs[i-1].Name {
			return i
		}
	}
	return -1
}

func sortedCopy(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func mfaFactors(kinds []hallpassv1.FactorKind) []string {
	var out []string
	for _, k := range kinds {
		out = append(out, string(k))
	}
	slices.Sort(out)
	return out
}
