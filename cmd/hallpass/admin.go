package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/server/configsource"
)

func init() {
	commands["admin"] = command{summary: "administer a server's sessions (revoke-sessions)", run: runAdmin}
}

// adminUsage documents the admin subcommands; `hallpass admin` prints it.
const adminUsage = `usage: hallpass admin <subcommand> [flags]

subcommands:
  revoke-sessions   end every SSO session of one user, with back-channel logout

hallpass admin revoke-sessions signs a user out everywhere: it ends every central session of
the user in the server's storage, revokes the refresh and access tokens issued in them, and
sends a logout token to every application of those sessions that registered a back-channel
logout URI. It reads the same config and signing keys as "hallpass server", from files or
from the operator's Secrets, and can run while the server runs (for SQLite, on the same
volume, e.g. with kubectl exec into a server pod).

  hallpass admin revoke-sessions --config config.yaml --keys keys.json \
      --connection people --subject 'people|alice'
  hallpass admin revoke-sessions --config-secret sso/hallpass-config --keys-secret sso/hallpass-signing-keys \
      --connection corp-oidc --subject 'corp-oidc|248289761001'

--subject is the user's "sub" claim as the server issues it: "<connection>|<username>" for a
Database connection, "<connection>|<upstream user ID>" for the others.
`

func runAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, adminUsage)
		if len(args) == 0 {
			return errors.New("a subcommand is required")
		}
		return nil
	}
	switch args[0] {
	case "revoke-sessions":
		return runRevokeSessions(ctx, args[1:], os.Stdout, os.Stderr)
	}
	fmt.Fprint(os.Stderr, adminUsage)
	return fmt.Errorf("unknown admin subcommand %q", args[0])
}

// revokeDeliveryWait is how long revoke-sessions waits by default for the logout tokens
// to reach the applications before exiting.
const revokeDeliveryWait = time.Minute

func runRevokeSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f configSourceFlags
	var connection, subject string
	var wait time.Duration
	fs := flag.NewFlagSet("admin revoke-sessions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.bind(fs)
	fs.StringVar(&connection, "connection", "", "connection the user signed in with (required)")
	fs.StringVar(&subject, "subject", "", "the user's sub claim (required)")
	fs.DurationVar(&wait, "wait", revokeDeliveryWait, "how long to wait for back-channel logout deliveries before exiting")
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage+"\nflags:\n"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if connection == "" || subject == "" {
		return errors.New("revoke-sessions: --connection and --subject are required")
	}
	source, err := f.open()
	if err != nil {
		return fmt.Errorf("revoke-sessions: %w", err)
	}
	configData, keysData, err := source.read(ctx)
	if err != nil {
		return fmt.Errorf("revoke-sessions: %w", err)
	}
	cfg, keys, err := configsource.Parse(configData, keysData)
	if err != nil {
		return fmt.Errorf("revoke-sessions: load config: %w", err)
	}
	store, err := openStorage(ctx, cfg.Storage, f.dataDir)
	if err != nil {
		return fmt.Errorf("revoke-sessions: %w", err)
	}
	defer store.Close()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := server.New(cfg, keys, store, server.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("revoke-sessions: %w", err)
	}
	n, revokeErr := srv.RevokeUserSessions(ctx, connection, subject)
	// Whatever was ended is announced, even if a later session failed to end.
	waitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	drainErr := srv.Shutdown(waitCtx)
	fmt.Fprintf(stdout, "ended %d session(s) of %s (connection %s)\n", n, subject, connection)
	if revokeErr != nil {
		return fmt.Errorf("revoke-sessions: %w", revokeErr)
	}
	if drainErr != nil {
		return fmt.Errorf("revoke-sessions: the sessions are ended, but some applications were not told in time: %w", drainErr)
	}
	return nil
}
