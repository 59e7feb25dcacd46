package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
)

// TestRevokeSessionsEndsEverySessionOfTheUserAndTellsTheApplications runs the admin
// command on the config and SQLite storage a server uses. The sessions are put in storage
// directly, as logins would have left them (internal/server tests the same revocation after
// real logins).
func TestRevokeSessionsEndsEverySessionOfTheUserAndTellsTheApplications(t *testing.T) {
	var mu sync.Mutex
	var sids []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		parts := strings.Split(form.Get("logout_token"), ".")
		var claims struct {
			SID string `json:"sid"`
			Sub string `json:"sub"`
		}
		if len(parts) == 3 {
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			_ = json.Unmarshal(payload, &claims)
		}
		mu.Lock()
		sids = append(sids, claims.Sub+" "+claims.SID)
		mu.Unlock()
	}))
	t.Cleanup(receiver.Close)

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "hallpass.db")
	cfg := minimalConfig("http://127.0.0.1:5556", dir)
	cfg.Clients = []config.Client{{ID: "app1", Name: "App 1", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of("s")},
		RedirectURIs: []string{"http://127.0.0.1:3001/callback"}, BackchannelLogoutURI: receiver.URL + "/backchannel-logout", SingleSignOn: true}}
	cfgPath, keysPath := writeConfigFiles(t, dir, cfg)

	ctx := context.Background()
	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, s := range []struct{ sid, connection, subject string }{
		{"sid-alice-laptop", "people", "people|alice"},
		{"sid-alice-phone", "people", "people|alice"},
		{"sid-bob", "people", "people|bob"},
	} {
		err := store.CreateSession(ctx, storage.Session{IDHash: digest.Of(s.sid + "-cookie"), SID: s.sid, Connection: s.connection,
			Claims: storage.Claims{Subject: s.subject}, AuthTime: now, Reusable: true, CreatedAt: now, LastActivity: now,
			ExpiresAt: now.Add(time.Duration(i+1) * time.Hour), Clients: []string{"app1"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	store.Close()

	var stdout, stderr bytes.Buffer
	err = runRevokeSessions(ctx, []string{"--config", cfgPath, "--keys", keysPath, "--connection", "people", "--subject", "people|alice"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("revoke-sessions: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "ended 2 session(s) of people|alice") {
		t.Errorf("output %q does not say two sessions were ended", stdout.String())
	}
	mu.Lock()
	got := slices.Sorted(slices.Values(sids))
	mu.Unlock()
	if want := []string{"people|alice sid-alice-laptop", "people|alice sid-alice-phone"}; !slices.Equal(got, want) {
		t.Errorf("logout tokens for %q, want %q", got, want)
	}
	if strings.Contains(stderr.String(), "eyJ") {
		t.Error("the command logged a token")
	}

	store, err = sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for sid, wantGone := range map[string]bool{"sid-alice-laptop": true, "sid-alice-phone": true, "sid-bob": false} {
		_, err := store.GetSession(ctx, digest.Of(sid+"-cookie"))
		if gone := errors.Is(err, storage.ErrNotFound); gone != wantGone {
			t.Errorf("session %s gone = %v (%v), want %v", sid, gone, err, wantGone)
		}
	}
}

func TestRevokeSessionsRefusesIncompleteRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a missing subject is refused", []string{"--config", "c.yaml", "--keys", "k.json", "--connection", "people"}, "--subject"},
		{"a missing connection is refused", []string{"--config", "c.yaml", "--keys", "k.json", "--subject", "people|alice"}, "--connection"},
		{"two config sources are refused", []string{"--config", "c.yaml", "--keys", "k.json", "--config-secret", "ns/c", "--keys-secret", "ns/k",
			"--connection", "people", "--subject", "people|alice"}, "either"},
		{"a keys file without a config is refused", []string{"--keys", "k.json", "--connection", "people", "--subject", "people|alice"}, "either"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runRevokeSessions(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	if err := runAdmin(context.Background(), []string{"frobnicate"}); err == nil {
		t.Error("an unknown admin subcommand was accepted")
	}
}
