package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/pkg/ssoapp"
)

func init() {
	commands["login"] = command{
		summary: "sign in to a Hallpass server and print a kubectl ExecCredential (a kubectl credential plugin)",
		run: func(ctx context.Context, args []string) error {
			return runLogin(ctx, args, os.Stdout, os.Stderr, openInBrowser)
		},
	}
}

// Bounds of an interactive sign-in and of a cached token's reuse.
const (
	loginTimeout = 10 * time.Minute
	// tokenMargin is how long before its expiry a cached ID token is no longer handed to
	// kubectl: the API server must still accept it when the request arrives.
	tokenMargin = 30 * time.Second
	// parentCheckInterval is how often a sign-in that waits for the user checks that the
	// command which ran the plugin (kubectl) is still there.
	parentCheckInterval = time.Second
)

// defaultLoginScopes are what kubectl needs: an ID token with the user's groups, and a
// refresh token so that it is renewed without the user.
const defaultLoginScopes = "openid profile email groups offline_access"

// loginFlags are the flags of `hallpass login` (and what `hallpass kubeconfig` writes).
type loginFlags struct {
	issuer, clientID string
	scopes           string
	device           bool
	caFile           string
	cacheDir         string
	timeout          time.Duration
}

func (f *loginFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.issuer, "issuer", "", "issuer URL of the Hallpass server (required)")
	fs.StringVar(&f.clientID, "client-id", "", "client ID of the Native SSOClient of kubectl (required)")
	fs.StringVar(&f.scopes, "scopes", defaultLoginScopes, "scopes to ask for")
	fs.BoolVar(&f.device, "device", false, "sign in with a code to confirm in any browser (device flow), instead of opening a browser here")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of the CA that signed the issuer's certificate, when the system's do not")
}

func (f *loginFlags) check() error {
	if f.issuer == "" || f.clientID == "" {
		return errors.New("--issuer and --client-id are required")
	}
	return nil
}

// execCredential is what a kubectl credential plugin prints (client.authentication.k8s.io/v1).
type execCredential struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Status     execCredentialStatus `json:"status"`
}

type execCredentialStatus struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp"`
}

// runLogin prints an ExecCredential with a valid ID token: the cached one, a refreshed one,
// or one from a new sign-in. Messages for the user go to stderr; stdout carries only the
// credential, as the plugin protocol requires.
func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer, open func(string) error) error {
	var f loginFlags
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.bind(fs)
	fs.StringVar(&f.cacheDir, "cache-dir", "", "directory of the token cache (default: hallpass under the user's cache directory)")
	fs.DurationVar(&f.timeout, "timeout", loginTimeout, "how long to wait for the user to sign in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	tok, err := loginToken(ctx, f, stderr, open)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(execCredential{
		APIVersion: "client.authentication.k8s.io/v1", Kind: "ExecCredential",
		Status: execCredentialStatus{Token: tok.IDToken, ExpirationTimestamp: tok.Expiry.UTC().Format(time.RFC3339)},
	})
}

// cachedToken is what the cache keeps per issuer and client.
type cachedToken struct {
	IDToken      string    `json:"id_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

// loginSession is one run of `hallpass login`: the provider, the client and the cache.
type loginSession struct {
	f         loginFlags
	ctx       context.Context // carries the HTTP client
	provider  *oidc.Provider
	oauth     oauth2.Config
	verifier  *oidc.IDTokenVerifier
	cachePath string
	stderr    io.Writer
}

func loginToken(ctx context.Context, f loginFlags, stderr io.Writer, open func(string) error) (*cachedToken, error) {
	client, err := ssoapp.HTTPClientTrusting(f.caFile, 30*time.Second)
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, client)
	cachePath, err := tokenCachePath(f.cacheDir, f.issuer, f.clientID)
	if err != nil {
		return nil, err
	}
	cached, _ := readTokenCache(cachePath)
	if cached != nil && time.Until(cached.Expiry) > tokenMargin {
		return cached, nil
	}
	provider, err := oidc.NewProvider(ctx, f.issuer)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", f.issuer, err)
	}
	s := &loginSession{
		f: f, ctx: ctx, provider: provider, cachePath: cachePath, stderr: stderr,
		oauth:    oauth2.Config{ClientID: f.clientID, Endpoint: provider.Endpoint(), Scopes: strings.Fields(f.scopes)},
		verifier: provider.Verifier(&oidc.Config{ClientID: f.clientID}),
	}
	if cached != nil && cached.RefreshToken != "" {
		tok, err := s.refresh(cached.RefreshToken)
		if err == nil {
			return tok, nil
		}
		if errors.Is(err, errNoAnswer) {
			// The sign-in may still be good: it is kept for the next try rather than asked
			// for again.
			return nil, fmt.Errorf("refresh the saved sign-in (kept for the next try): %w", err)
		}
		// A refresh token the server refuses (the user signed out everywhere, it expired or
		// was revoked), or an answer that cannot be used, is forgotten, and the user signs
		// in again.
		fmt.Fprintf(stderr, "hallpass: the saved sign-in is no longer valid (%s); sign in again.\n", describe(err))
		_ = os.Remove(cachePath)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	untilParentEnds(ctx, cancel)
	s.ctx = ctx
	if f.device {
		tok, err := s.deviceLogin()
		if err != nil {
			return nil, err
		}
		return s.keep(tok, "", "")
	}
	tok, nonce, err := s.browserLogin(open)
	if err != nil {
		return nil, err
	}
	return s.keep(tok, "", nonce)
}

// untilParentEnds cancels the sign-in when the process that ran the plugin ends (kubectl
// stopped by a script's timeout, say, which does not stop its children): nobody would read
// the answer, so the plugin stops polling the server and closes its loopback listener
// instead of waiting until --timeout. On systems where the parent of a process does not
// change when it ends, this never cancels.
func untilParentEnds(ctx context.Context, cancel context.CancelFunc) {
	parent := os.Getppid()
	if parent <= 1 {
		return
	}
	go func() {
		tick := time.NewTicker(parentCheckInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if os.Getppid() != parent {
					cancel()
					return
				}
			}
		}
	}()
}

// refresh trades the cached refresh token for new tokens.
// A refresh the server did not refuse but could not answer (down, overloaded, unreachable)
// fails with errNoAnswer.
func (s *loginSession) refresh(refreshToken string) (*cachedToken, error) {
	tok, err := s.oauth.TokenSource(s.ctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil && !refusedByServer(err) {
		return nil, fmt.Errorf("%w: %s", errNoAnswer, describe(err))
	}
	if err != nil {
		return nil, err
	}
	return s.keep(tok, refreshToken, "")
}

// errNoAnswer marks a token request the server could not answer.
var errNoAnswer = errors.New("the server could not answer")

// keep verifies the ID token of a token response (with the nonce of the sign-in, if it sent
// one) and caches it with its refresh token (the previous one when the server did not rotate
// it).
func (s *loginSession) keep(tok *oauth2.Token, previousRefresh, nonce string) (*cachedToken, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the server sent no ID token: the client needs the openid scope")
	}
	idt, err := s.verifier.Verify(s.ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("verify ID token: %w", err)
	}
	if idt.Nonce != nonce {
		return nil, errors.New("verify ID token: the nonce is not the one of this sign-in")
	}
	c := &cachedToken{IDToken: raw, RefreshToken: tok.RefreshToken, Expiry: idt.Expiry}
	if c.RefreshToken == "" {
		c.RefreshToken = previousRefresh
	}
	if err := writeTokenCache(s.cachePath, c); err != nil {
		return nil, err
	}
	return c, nil
}

// deviceLogin runs the device flow: the user confirms the code in any browser.
func (s *loginSession) deviceLogin() (*oauth2.Token, error) {
	if s.oauth.Endpoint.DeviceAuthURL == "" {
		return nil, errors.New("the server offers no device sign-in (no device_authorization_endpoint)")
	}
	auth, err := s.oauth.DeviceAuth(s.ctx)
	if err != nil {
		return nil, fmt.Errorf("start device sign-in: %s", describe(err))
	}
	fmt.Fprintf(s.stderr, "To sign in, open %s and enter the code %s\n(or open %s)\n", auth.VerificationURI, auth.UserCode, auth.VerificationURIComplete)
	tok, err := s.oauth.DeviceAccessToken(s.ctx, auth)
	if err != nil {
		return nil, fmt.Errorf("device sign-in: %s", describe(err))
	}
	return tok, nil
}

// browserLogin runs the authorization code flow with PKCE on a loopback redirect (RFC 8252):
// the browser comes back to a listener of this process on 127.0.0.1.
func (s *loginSession) browserLogin(open func(string) error) (*oauth2.Token, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen for the browser's return: %w", err)
	}
	defer ln.Close()
	s.oauth.RedirectURL = fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port)
	verifier, state, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	authURL := s.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	type result struct {
		code string
		err  error
	}
	results := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		res := result{code: q.Get("code")}
		switch {
		case q.Get("state") != state:
			// Not the answer to this sign-in (a stale tab, or another site): ignore it.
			http.Error(w, "This is not the sign-in hallpass is waiting for.", http.StatusBadRequest)
			return
		case q.Get("iss") != "" && q.Get("iss") != s.f.issuer:
			res.err = errors.New("the answer comes from another issuer")
		case q.Get("error") != "":
			res.err = fmt.Errorf("the server refused the sign-in: %s %s", q.Get("error"), q.Get("error_description"))
		case res.code == "":
			res.err = errors.New("the answer has no code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		msg := "You are signed in. You can close this window and return to the terminal."
		if res.err != nil {
			msg = "Signing in failed: " + res.err.Error()
		}
		fmt.Fprintf(w, "<!doctype html><title>hallpass</title><p id=\"result\">%s</p>\n", html.EscapeString(msg))
		select {
		case results <- res:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	fmt.Fprintf(s.stderr, "Opening the browser to sign in. If it does not open, visit:\n%s\n", authURL)
	if err := open(authURL); err != nil {
		fmt.Fprintf(s.stderr, "hallpass: could not open a browser (%v); open the address above, or use --device.\n", err)
	}
	select {
	case <-s.ctx.Done():
		return nil, "", errors.New("no answer from the browser in time")
	case res := <-results:
		if res.err != nil {
			return nil, "", res.err
		}
		tok, err := s.oauth.Exchange(s.ctx, res.code, oauth2.VerifierOption(verifier))
		if err != nil {
			return nil, "", fmt.Errorf("redeem the code: %s", describe(err))
		}
		return tok, nonce, nil
	}
}

// describe is an OAuth error as the user may see it: its code and description, never the
// request (which may carry a token).
func describe(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorDescription != "" {
			return re.ErrorCode + ": " + re.ErrorDescription
		}
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		return fmt.Sprintf("status %d", re.Response.StatusCode)
	}
	return err.Error()
}

// refusedByServer reports whether a token request failed because the server refused it
// (an OAuth error with a 4xx status: invalid_grant, invalid_client, ...), rather than
// because it could not answer (a 5xx, too many requests, no connection, or a proxy's page
// in front of it).
func refusedByServer(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil || re.ErrorCode == "" {
		return false
	}
	code := re.Response.StatusCode
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

// tokenCachePath is the cache file of one issuer and client: a digest of both under
// dir/tokens (dir defaults to hallpass under the user's cache directory).
func tokenCachePath(dir, issuer, clientID string) (string, error) {
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find the cache directory: %w", err)
		}
		dir = filepath.Join(base, "hallpass")
	}
	sum := sha256.Sum256([]byte(issuer + "\x00" + clientID))
	return filepath.Join(dir, "tokens", hex.EncodeToString(sum[:16])+".json"), nil
}

func readTokenCache(path string) (*cachedToken, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c cachedToken
	if err := json.Unmarshal(data, &c); err != nil || c.IDToken == "" {
		return nil, errors.New("unreadable token cache")
	}
	return &c, nil
}

// writeTokenCache replaces the cache file atomically; only its owner may read it.
func writeTokenCache(path string, c *cachedToken) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create token cache directory: %w", err)
	}
	// The cache holds the refresh token on purpose, in a file only its owner may read, as
	// kubectl's own caches do.
	data, err := json.Marshal(c) //nolint:gosec // G117: see above
	if err != nil {
		return fmt.Errorf("encode token cache: %w", err)
	}
	if err := replacePrivateFile(path, data); err != nil {
		return fmt.Errorf("write token cache: %w", err)
	}
	return nil
}

// openInBrowser opens url in the user's browser: $BROWSER if set, else the system's opener.
func openInBrowser(url string) error {
	if b := os.Getenv("BROWSER"); b != "" {
		// The user's own choice of program, given the URL as one argument (no shell).
		return exec.Command(b, url).Start() //nolint:gosec // G702: see above
	}
	switch runtime.GOOS {
	case "darwin":
		return exec.Command("open", url).Start()
	case "windows":
		return exec.Command("rundll32", "url.dll,FileProtocolHandler", url).Start()
	default:
		return exec.Command("xdg-open", url).Start()
	}
}
