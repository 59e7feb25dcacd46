// Package connectors is the list of every upstream connector type Hallpass has, and opens
// the connector of a connection. The list is explicit, as in Dex, so that a reader sees
// which connectors exist; a new one is added here.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/connector/github"
	"github.com/hallpass/hallpass/internal/connector/ldap"
	"github.com/hallpass/hallpass/internal/connector/oidc"
	"github.com/hallpass/hallpass/internal/connector/saml"
)

// opener builds the connector of one connection of its type.
type opener func(ctx context.Context, conn config.Connection, opts connector.Options) (any, error)

// openers are the connector types. The Database connection has none: the server checks
// its users itself.
var openers = map[string]opener{
	config.ConnectionOIDC:   openOIDC,
	config.ConnectionGoogle: openOIDC,
	config.ConnectionGitHub: openGitHub,
	config.ConnectionSAML:   openSAML,
	config.ConnectionLDAP:   openLDAP,
}

// Open builds the connector of a connection. The result implements
// connector.CallbackConnector or connector.PasswordConnector (and optionally
// connector.MetadataConnector and connector.Origins).
func Open(ctx context.Context, conn config.Connection, opts connector.Options) (any, error) {
	open, ok := openers[conn.Type]
	if !ok {
		return nil, fmt.Errorf("open connection %s: type %q has no connector", conn.Name, conn.Type)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c, err := open(ctx, conn, opts)
	if err != nil {
		return nil, fmt.Errorf("open connection %s: %w", conn.Name, err)
	}
	return c, nil
}

func openOIDC(ctx context.Context, conn config.Connection, opts connector.Options) (any, error) {
	if conn.OIDC == nil {
		return nil, errors.New("no oidc block")
	}
	return oidc.Open(ctx, *conn.OIDC, conn.Type == config.ConnectionGoogle, opts)
}

func openGitHub(_ context.Context, conn config.Connection, opts connector.Options) (any, error) {
	if conn.GitHub == nil {
		return nil, errors.New("no github block")
	}
	return github.Open(*conn.GitHub, opts)
}

func openSAML(ctx context.Context, conn config.Connection, opts connector.Options) (any, error) {
	if conn.SAML == nil {
		return nil, errors.New("no saml block")
	}
	return saml.Open(ctx, *conn.SAML, opts)
}

func openLDAP(_ context.Context, conn config.Connection, opts connector.Options) (any, error) {
	if conn.LDAP == nil {
		return nil, errors.New("no ldap block")
	}
	return ldap.Open(*conn.LDAP, opts)
}
