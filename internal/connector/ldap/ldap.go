// Package ldap is the connector of an LDAP directory: a service account searches for the
// user's entry, the user's password is checked by binding as that entry, and the service
// account then searches for the user's groups. Only LDAPS or StartTLS connections are
// made, so passwords never cross the network in clear text.
package ldap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
)

// Limits of one login: a username or password longer than maxInput is refused without
// asking the directory, and searches return at most maxGroups groups.
const (
	maxInput  = 1024
	maxGroups = 1000
)

// Connector is one directory.
type Connector struct {
	cfg config.LDAPConnection
	url *url.URL
	// serverName is the host name the directory's certificate must name.
	serverName string
	filter     string
	timeout    time.Duration
}

var (
	_ connector.PasswordConnector = (*Connector)(nil)
	_ connector.UsernameResolver  = (*Connector)(nil)
)

// Open checks the settings; it does not connect (the operator's health check does).
func Open(cfg config.LDAPConnection, _ connector.Options) (*Connector, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("parse url %q: not an ldap:// or ldaps:// URL", cfg.URL)
	}
	switch {
	case u.Scheme != "ldaps" && u.Scheme != "ldap":
		return nil, fmt.Errorf("url %q: scheme must be ldaps or ldap", cfg.URL)
	case u.Scheme == "ldap" && !cfg.StartTLS:
		return nil, errors.New("an ldap:// URL needs startTLS: passwords must not cross the network in clear text")
	case u.Scheme == "ldaps" && cfg.StartTLS:
		return nil, errors.New("startTLS applies to ldap:// URLs only")
	case cfg.BindDN == "" || cfg.BindPassword == "":
		// An empty password makes a simple bind anonymous (RFC 4513 §5.1.2).
		return nil, errors.New("bindDN and bindPassword are required: anonymous binds are refused")
	case cfg.UserBaseDN == "":
		return nil, errors.New("userBaseDN is required")
	}
	if _, err := connector.TLSConfig(cfg.RootCA); err != nil {
		return nil, err
	}
	filter := strings.TrimSpace(cfg.UserFilter)
	if filter != "" && !strings.HasPrefix(filter, "(") {
		filter = "(" + filter + ")"
	}
	if filter != "" {
		if _, err := goldap.CompileFilter(filter); err != nil {
			return nil, fmt.Errorf("userFilter %q: %w", cfg.UserFilter, err)
		}
	}
	if cfg.UsernameAttr == "" {
		cfg.UsernameAttr = "uid"
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		host = u.Host
	}
	return &Connector{cfg: cfg, url: u, serverName: host, filter: filter, timeout: connector.Timeout}, nil
}

// dial connects over TLS (LDAPS, or StartTLS before anything else is sent) and binds as
// the service account.
func (c *Connector) dial(ctx context.Context) (*goldap.Conn, error) {
	tlsCfg, err := connector.TLSConfig(c.cfg.RootCA)
	if err != nil {
		return nil, err
	}
	tlsCfg.ServerName = c.serverName
	d := &net.Dialer{Timeout: c.timeout}
	if deadline, ok := ctx.Deadline(); ok {
		d.Deadline = deadline
	}
	conn, err := goldap.DialURL(c.cfg.URL, goldap.DialWithDialer(d), goldap.DialWithTLSConfig(tlsCfg))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.url.Host, err)
	}
	conn.SetTimeout(c.timeout)
	if c.cfg.StartTLS {
		if err := conn.StartTLS(tlsCfg); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("start TLS with %s: %w", c.url.Host, err)
		}
	}
	if err := conn.Bind(c.cfg.BindDN, c.cfg.BindPassword); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bind as the service account: %w", err)
	}
	return conn, nil
}

// Ping binds as the service account: the operator's health check.
func (c *Connector) Ping(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}

// ResolveUsername returns the directory's own value of the username attribute of the one
// entry username matches, as the service account sees it. A directory matches by its
// attribute's rules (case, width and compatibility forms folded), so "ALICE" and "ａlice"
// can name alice's entry: the server throttles on what this returns. found is false when
// no single entry matches.
func (c *Connector) ResolveUsername(ctx context.Context, username string) (canonical string, found bool, err error) {
	if username == "" || len(username) > maxInput {
		return "", false, nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return "", false, err
	}
	defer conn.Close()
	entry, err := c.findUser(conn, username)
	if err != nil || entry == nil {
		return "", false, err
	}
	uid := entry.GetAttributeValue(c.cfg.UsernameAttr)
	return uid, uid != "", nil
}

// findUser searches for the one entry whose username attribute matches username; nil when
// there is none, or more than one (never pick one of several entries).
func (c *Connector) findUser(conn *goldap.Conn, username string) (*goldap.Entry, error) {
	// The username is escaped, so `*`, `)(uid=*` or `\` match nothing but themselves.
	filter := fmt.Sprintf("(%s=%s)", c.cfg.UsernameAttr, goldap.EscapeFilter(username))
	if c.filter != "" {
		filter = "(&" + filter + c.filter + ")"
	}
	attrs := []string{c.cfg.UsernameAttr, "mail", "displayName", "cn"}
	res, err := conn.Search(goldap.NewSearchRequest(c.cfg.UserBaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		2, int(c.timeout/time.Second), false, filter, attrs, nil))
	if err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("search for the user: %w", err)
	}
	if res == nil || len(res.Entries) != 1 {
		return nil, nil
	}
	return res.Entries[0], nil
}

// Login finds the user's entry, binds as it with password and reads its groups.
func (c *Connector) Login(ctx context.Context, username, password string) (connector.Identity, bool, error) {
	// An empty password would make the user bind anonymous and succeed on most servers.
	if username == "" || password == "" || len(username) > maxInput || len(password) > maxInput {
		return connector.Identity{}, false, nil
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return connector.Identity{}, false, err
	}
	defer conn.Close()
	entry, err := c.findUser(conn, username)
	if err != nil || entry == nil {
		return connector.Identity{}, false, err
	}
	if err := conn.Bind(entry.DN, password); err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
			return connector.Identity{}, false, nil
		}
		return connector.Identity{}, false, fmt.Errorf("bind as the user: %w", err)
	}
	// The canonical value from the directory, not what was typed: "Alice" and "alice"
	// are one user to a case-insensitive directory and must be one subject.
	uid := entry.GetAttributeValue(c.cfg.UsernameAttr)
	if uid == "" {
		return connector.Identity{}, false, fmt.Errorf("user entry has no %s attribute", c.cfg.UsernameAttr)
	}
	id := connector.Identity{
		UserID:   uid,
		Username: uid,
		Name:     firstNonEmpty(entry.GetAttributeValue("displayName"), entry.GetAttributeValue("cn")),
		Email:    entry.GetAttributeValue("mail"),
		// The directory's administrators set mail; the user cannot, so it is as
		// verified as it gets (Dex treats it the same way).
		EmailVerified: entry.GetAttributeValue("mail") != "",
	}
	if c.cfg.GroupBaseDN != "" {
		// Back to the service account: the user may not be allowed to read groups.
		if err := conn.Bind(c.cfg.BindDN, c.cfg.BindPassword); err != nil {
			return connector.Identity{}, false, fmt.Errorf("bind as the service account for the group search: %w", err)
		}
		if id.Groups, err = c.groups(conn, entry.DN, uid); err != nil {
			return connector.Identity{}, false, err
		}
	}
	return id, true, nil
}

// groups returns the cn of every group that lists the user as member or uniqueMember
// (by DN) or memberUid (by username).
func (c *Connector) groups(conn *goldap.Conn, dn, uid string) ([]string, error) {
	filter := fmt.Sprintf("(|(member=%s)(uniqueMember=%s)(memberUid=%s))",
		goldap.EscapeFilter(dn), goldap.EscapeFilter(dn), goldap.EscapeFilter(uid))
	if f := strings.TrimSpace(c.cfg.GroupFilter); f != "" {
		if !strings.HasPrefix(f, "(") {
			f = "(" + f + ")"
		}
		filter = "(&" + filter + f + ")"
	}
	res, err := conn.Search(goldap.NewSearchRequest(c.cfg.GroupBaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		maxGroups, int(c.timeout/time.Second), false, filter, []string{"cn"}, nil))
	if err != nil && !goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("search for the user's groups: %w", err)
	}
	var out []string
	if res != nil {
		for _, e := range res.Entries {
			if cn := e.GetAttributeValue("cn"); cn != "" {
				out = append(out, cn)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
