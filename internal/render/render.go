// Package render turns the cluster resources of one SSO server into the server's config.
//
// Render is a pure function: no clients, no clock, no randomness. The operator collects the
// inputs (the server, its ready connections, its accepted clients with their credentials,
// and the values of every Secret key they reference), and the same inputs always give the
// same bytes, so an unchanged cluster never rewrites the config Secret.
package render

import (
	"cmp"
	"compress/gzip"
	"encoding/json"
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
	// MaxCompressedBytes bounds the compressed config; 0 means DefaultMaxCompressedBytes.
	MaxCompressedBytes int
}

// DefaultMaxCompressedBytes is the most the compressed config may take: a Secret holds at
// most 1 MiB, and the rest is left for its metadata and for growth between renders.
const DefaultMaxCompressedBytes = 900 << 10

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
	// Bytes is the serialized config, whose config.Hash the server pods report.
	Bytes []byte
	// Compressed is Bytes gzip-compressed, as written to the config Secret.
	Compressed []byte
	// LeftOut are the clients left out of the config, each with the reason, so that one bad
	// or oversized client never breaks the whole server. The operator reports each on its
	// SSOClient.
	LeftOut []LeftOut
	// SkippedConnections names connections left out because their credentials do not
	// resolve; the IdentityConnection controller reports why.
	SkippedConnections []string
	// RefusedAPIs names SSOAPIs left out (RefuseAPIs); the SSOAPI controller reports why.
	RefusedAPIs []string
}

// LeftOut is a client the config does not serve, and why.
type LeftOut struct {
	Client *hallpassv1.SSOClient
	// Reason is a condition reason (CamelCase); Message says what to do about it.
	Reason, Message string
}

// Reasons a client is left out.
const (
	// ReasonDuplicateClientID: another client holds the same client ID.
	ReasonDuplicateClientID = "DuplicateClientID"
	// ReasonOverBudget: the client's namespace is over spec.budgets, or the config is full.
	ReasonOverBudget = hallpassv1.ReasonOverBudget
)

// Render builds the server config.
func Render(in Input) (*Output, error) {
	s := in.Server
	durations, err := parseDurations(s)
	if err != nil {
		return nil, err
	}
	cfg := serverSettings(s, durations)
	if cfg.Storage, err = renderStorage(s, in.Values); err != nil {
		return nil, err
	}
	if cfg.Email, err = renderEmail(s, in.Values); err != nil {
		return nil, err
	}

	var skipped, connectionNames []string
	if cfg.Connections, skipped, err = renderConnections(in); err != nil {
		return nil, err
	}
	for _, c := range cfg.Connections {
		connectionNames = append(connectionNames, c.Name)
	}

	clients, leftOut := uniqueClients(in.Clients)
	served, overBudget, err := withinBudgets(s, clients, connectionNames)
	if err != nil {
		return nil, err
	}
	leftOut = append(leftOut, overBudget...)
	out := &Output{Config: cfg, SkippedConnections: skipped}
	var refusedAPIs []string
	maxBytes := cmp.Or(in.MaxCompressedBytes, DefaultMaxCompressedBytes)
	// The budgets bound each namespace; this bounds them all together. When the config does
	// not fit, the newest clients are left out, as many as the excess suggests, until it does.
	for attempt := 0; ; attempt++ {
		cfg.Clients = make([]config.Client, len(served))
		for i, c := range served {
			cfg.Clients[i] = c.rendered
		}
		slices.SortFunc(cfg.Clients, func(a, b config.Client) int { return cmp.Compare(a.ID, b.ID) })
		servedClients := make([]Client, len(served))
		for i, c := range served {
			servedClients[i] = c.Client
		}
		cfg.APIs, refusedAPIs = renderAPIs(in, servedClients, cfg.Tokens.AccessToken.Duration)
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("render config: %w", err)
		}
		if out.Bytes, err = config.MarshalJSON(cfg); err != nil {
			return nil, err
		}
		if out.Compressed, err = compress(out.Bytes, maxBytes); err != nil {
			return nil, err
		}
		excess := len(out.Compressed) - maxBytes
		if excess <= 0 {
			break
		}
		if len(served) == 0 || attempt == 8 {
			return nil, fmt.Errorf("render config: %d bytes compressed, over the limit of %d even without %d clients", len(out.Compressed), maxBytes, len(leftOut))
		}
		perClient := max(1, len(out.Compressed)/len(served))
		drop := min(len(served), excess/perClient+1)
		for _, c := range served[len(served)-drop:] {
			leftOut = append(leftOut, LeftOut{Client: c.Client.Client, Reason: ReasonOverBudget, Message: fmt.Sprintf(
				"the server's config is full (%d bytes compressed at most); the newest clients are left out. The platform team can lower spec.budgets or run another SSOServer", maxBytes)})
		}
		served = served[:len(served)-drop]
	}
	out.LeftOut, out.RefusedAPIs = leftOut, refusedAPIs
	return out, nil
}

// fastCompression is the gzip level a config is compressed at first. For 10,000 realistic
// clients (BenchmarkCompressionOf10000Clients) it takes a fifth of the time of the best
// compression for 6% more bytes: the random client IDs, digests and host names are what
// does not compress, at any level.
const fastCompression = 2

// compress gzips a config fast, and as small as gzip can only when that is over maxBytes, so
// that the cap holds as many clients as the best compression allows, and a config below it
// (nearly every one) is not compressed at the best level's cost, which was half of a render.
func compress(data []byte, maxBytes int) ([]byte, error) {
	out, err := config.Compress(data, fastCompression)
	if err != nil || len(out) <= maxBytes {
		return out, err
	}
	return config.Compress(data, gzip.BestCompression)
}

// serverSettings is the part of the config that comes from the SSOServer alone.
func serverSettings(s *hallpassv1.SSOServer, durations map[string]config.Duration) *config.Config {
	return &config.Config{
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
		MFA: config.MFA{Policy: string(s.Spec.MFA.Policy), Factors: mfaFactors(s.Spec.MFA.Factors),
			EnrolmentGrace: durations["mfa.enrolmentGrace"]},
		Branding: config.Branding{
			Title:           s.Spec.Branding.Title,
			LogoURL:         s.Spec.Branding.LogoURL,
			PrimaryColor:    s.Spec.Branding.PrimaryColor,
			BackgroundColor: s.Spec.Branding.BackgroundColor,
		},
	}
}

// renderConnections renders the connections whose credentials resolve, sorted by name, and
// names the ones it skipped.
func renderConnections(in Input) (conns []config.Connection, skipped []string, err error) {
	for _, c := range in.Connections {
		rc, err := Connection(c, in.Values)
		if err != nil {
			skipped = append(skipped, c.Name)
			continue
		}
		conns = append(conns, rc)
	}
	slices.Sort(skipped)
	slices.SortFunc(conns, func(a, b config.Connection) int { return cmp.Compare(a.Name, b.Name) })
	if i := duplicateConnection(conns); i >= 0 {
		return nil, nil, fmt.Errorf("render connections: two connections are named %q", conns[i].Name)
	}
	return conns, skipped, nil
}

// budgeted is a client that fits its namespace's budget, rendered.
type budgeted struct {
	Client
	rendered config.Client
}

// withinBudgets renders the clients oldest first and leaves out those over their
// namespace's spec.budgets, so that a new client never pushes out one already served. The
// result is in that order.
func withinBudgets(s *hallpassv1.SSOServer, clients []Client, connections []string) ([]budgeted, []LeftOut, error) {
	maxClients := int(cmp.Or(s.Spec.Budgets.ClientsPerNamespace, 100))
	maxBytes := int(cmp.Or(s.Spec.Budgets.ConfigBytesPerNamespace, 128<<10))
	sorted := slices.Clone(clients)
	slices.SortFunc(sorted, func(a, b Client) int {
		return cmp.Or(
			a.Client.CreationTimestamp.Compare(b.Client.CreationTimestamp.Time),
			cmp.Compare(a.Client.Namespace, b.Client.Namespace),
			cmp.Compare(a.Client.Name, b.Client.Name),
		)
	})
	type usage struct{ clients, bytes int }
	used := map[string]usage{}
	served := make([]budgeted, 0, len(sorted))
	var leftOut []LeftOut
	// Only each entry's size is needed: counted as it is encoded, not kept.
	var size countingWriter
	enc := json.NewEncoder(&size)
	for _, c := range sorted {
		rc := renderClient(c, connections)
		size = 0
		if err := enc.Encode(rc); err != nil {
			return nil, nil, fmt.Errorf("render client %s/%s: %w", c.Client.Namespace, c.Client.Name, err)
		}
		entry := int(size) - 1 // Encode ends each value with a newline
		u := used[c.Client.Namespace]
		switch {
		case u.clients+1 > maxClients:
			leftOut = append(leftOut, LeftOut{Client: c.Client, Reason: ReasonOverBudget, Message: fmt.Sprintf(
				"namespace %s already has %d clients served by SSOServer %s/%s, its spec.budgets.clientsPerNamespace", c.Client.Namespace, u.clients, s.Namespace, s.Name)})
		case u.bytes+entry > maxBytes:
			leftOut = append(leftOut, LeftOut{Client: c.Client, Reason: ReasonOverBudget, Message: fmt.Sprintf(
				"the client takes %d bytes of config and namespace %s already uses %d of the %d bytes of spec.budgets.configBytesPerNamespace of SSOServer %s/%s; shorten its URI lists or ask the platform team for a larger budget",
				entry, c.Client.Namespace, u.bytes, maxBytes, s.Namespace, s.Name)})
		default:
			used[c.Client.Namespace] = usage{u.clients + 1, u.bytes + entry}
			served = append(served, budgeted{c, rc})
		}
	}
	return served, leftOut, nil
}

// countingWriter counts the bytes written to it.
type countingWriter int

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
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
		"mfa.enrolmentGrace":          {s.Spec.MFA.EnrolmentGrace, 0},
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
	if e.RootCARef != nil {
		ca, err := values.Secret(s.Namespace, *e.RootCARef)
		if err != nil {
			return nil, fmt.Errorf("spec.email.rootCARef: %w", err)
		}
		out.RootCA = ca
	}
	return out, nil
}

// uniqueClients leaves out every client whose ID another client holds too. Client IDs come
// only from the operator's own records, so a duplicate means a record edited or restored by
// hand, and no client of it can be trusted with the ID.
func uniqueClients(clients []Client) (kept []Client, leftOut []LeftOut) {
	// Counted first: a duplicate is rare, and a list of holders for every ID would be ten
	// thousand allocations a render.
	count := make(map[string]int, len(clients))
	for _, c := range clients {
		count[c.ID]++
	}
	holders := map[string][]*hallpassv1.SSOClient{}
	for _, c := range clients {
		if count[c.ID] > 1 {
			holders[c.ID] = append(holders[c.ID], c.Client)
		}
	}
	kept = make([]Client, 0, len(clients))
	for _, c := range clients {
		if count[c.ID] == 1 {
			kept = append(kept, c)
			continue
		}
		var others []string
		for _, o := range holders[c.ID] {
			if o != c.Client {
				others = append(others, o.Namespace+"/"+o.Name)
			}
		}
		leftOut = append(leftOut, LeftOut{Client: c.Client, Reason: ReasonDuplicateClientID,
			Message: fmt.Sprintf("SSOClient %v holds the same client ID; the server serves neither until the platform team removes the wrong client record", others)})
	}
	return kept, leftOut
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
