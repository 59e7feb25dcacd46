package server_test

import (
	"context"
	"io"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
)

// smtpServer is Debian's aiosmtpd (python3-aiosmtpd, installed by hack/install-deps.sh),
// run as a process on a loopback port, storing every message it accepts in a Maildir.
type smtpServer struct {
	port    int
	maildir string
}

// startSMTPServer starts aiosmtpd with extra command-line options (TLS); it is stopped when
// the test ends.
func startSMTPServer(t *testing.T, extra ...string) *smtpServer {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import aiosmtpd").Run(); err != nil {
		t.Fatalf("Debian's python3-aiosmtpd is needed (hack/install-deps.sh installs it): %v", err)
	}
	s := &smtpServer{maildir: filepath.Join(t.TempDir(), "Maildir")}
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		args := append([]string{"-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + strconv.Itoa(s.port)}, extra...)
		cmd := exec.Command(python, append(args, "-c", "aiosmtpd.handlers.Mailbox", s.maildir)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start aiosmtpd: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Time{} // the port was taken meanwhile: try another
				continue
			default:
			}
			if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port)); err == nil {
				_ = c.Close()
				return s
			}
		}
	}
	t.Fatal("aiosmtpd did not start listening")
	return nil
}

// config is the server's email config for this SMTP server: clear text, which only a
// loopback host may have.
func (s *smtpServer) config() *config.Email {
	return &config.Email{Host: "127.0.0.1", Port: s.port, Security: config.EmailNone, From: "sso@example.com"}
}

// receivedMail is one message as the SMTP server stored it.
type receivedMail struct {
	header mail.Header
	body   string
}

// messagesTo reads every message the server accepted for one recipient.
func (s *smtpServer) messagesTo(t *testing.T, to string) []receivedMail {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
	var out []receivedMail
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		body, err := io.ReadAll(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("To") == to {
			out = append(out, receivedMail{header: m.Header, body: string(body)})
		}
	}
	return out
}

// waitForLink waits for the count-th message to a recipient and returns the link in it
// to path.
func (s *smtpServer) waitForLink(t *testing.T, to, path string, count int) string {
	t.Helper()
	linkRe := regexp.MustCompile(`https?://\S+` + regexp.QuoteMeta(path) + `\?token=[A-Za-z0-9_-]+`)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		msgs := s.messagesTo(t, to)
		if len(msgs) < count {
			continue
		}
		links := []string{}
		for _, m := range msgs {
			if link := linkRe.FindString(m.body); link != "" {
				links = append(links, link)
			}
		}
		if len(links) >= count {
			// Messages are files with unordered names: the newest link is the one not seen.
			return links[len(links)-1]
		}
	}
	t.Fatalf("no message %d with a link to %s arrived for %s", count, path, to)
	return ""
}

var sentMessageRe = regexp.MustCompile(`If an account with this address exists`)

// askForReset opens the login page of app2, follows "Forgot password?" and asks for a
// link to address, returning the answer.
func askForReset(t *testing.T, b *browser, rp *relyingParty, address string) page {
	t.Helper()
	p := b.get(rp.authURL(newLogin(), oauthConnection("people")))
	m := regexp.MustCompile(`<a href="([^"]*/login/forgot-password\?[^"]*)">Forgot password\?</a>`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("the login page has no \"Forgot password?\" link:\n%s", p.body)
	}
	action, form := formFields(t, b.get(unescapeHTML(m[1])))
	form.Set("email", address)
	return b.post(action, form)
}

func TestPasswordResetAndVerificationByEmail(t *testing.T) {
	smtp := startSMTPServer(t)
	app2Logouts := newLogoutReceiver(t, nil)
	e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app2": app2Logouts.url}), func(c *config.Config) { c.Email = smtp.config() })
	rp := e.rp("app2", "app2-secret")

	laptop := e.browser()
	dora, address, idToken := signUpWithEmail(t, e, laptop, "dora")

	t.Run("sign-up sends a verification link, and email_verified follows it", func(t *testing.T) {
		var claims struct {
			EmailVerified bool `json:"email_verified"`
		}
		if err := idToken.Claims(&claims); err != nil || claims.EmailVerified {
			t.Fatalf("email_verified right after sign-up: %v (%v), want false", claims.EmailVerified, err)
		}
		link := smtp.waitForLink(t, address, "/verify-email", 1)
		if p := e.browser().get(link); p.status != 200 || !strings.Contains(p.body, "Your email address is confirmed") {
			t.Fatalf("following the verification link: status %d\n%s", p.status, p.body)
		}
		if p := e.browser().get(link); p.status != 400 || !strings.Contains(p.body, "This link is not valid") {
			t.Fatalf("the verification link a second time: status %d, want 400", p.status)
		}
		_, idToken := rp.signIn(t, e.browser(), dora, "the first password")
		if err := idToken.Claims(&claims); err != nil || !claims.EmailVerified {
			t.Fatalf("email_verified after following the link: %v (%v), want true", claims.EmailVerified, err)
		}
	})

	t.Run("a reset link sets a new password and ends every session", func(t *testing.T) {
		phone := e.browser()
		p := askForReset(t, phone, rp, address)
		if p.status != 200 || !sentMessageRe.MatchString(p.body) {
			t.Fatalf("asking for a reset link: status %d\n%s", p.status, p.body)
		}
		link := smtp.waitForLink(t, address, "/reset-password", 1)
		resetForm := phone.get(link)
		action, form := formFields(t, resetForm)
		for _, tc := range []struct {
			name, csrf, next, confirm string
			status                    int
			message                   string
		}{
			{"a form without its CSRF token is refused", "", "a new password", "a new password", 403, "This form has expired"},
			{"a short password is refused as at sign-up", form.Get("csrf"), "short", "short", 400, "at least 8 characters"},
			{"a confirmation that differs is refused", form.Get("csrf"), "a new password", "a new passwore", 400, "differ"},
		} {
			p := phone.post(action, map[string][]string{"token": {form.Get("token")}, "csrf": {tc.csrf}, "new-password": {tc.next}, "confirm-password": {tc.confirm}})
			if p.status != tc.status || !strings.Contains(p.body, tc.message) {
				t.Fatalf("%s: status %d, want %d with %q", tc.name, p.status, tc.status, tc.message)
			}
		}
		form.Set("new-password", "the second password")
		form.Set("confirm-password", "the second password")
		if p := phone.post(action, form); p.status != 200 || !strings.Contains(p.body, "Your password was changed") {
			t.Fatalf("setting the new password: status %d\n%s", p.status, p.body)
		}
		// The laptop's session ended through the path of every logout: app2 got its token.
		lt := verifyLogoutToken(t, e, app2Logouts.next(t).token)
		if lt.claims["sub"] != "people|"+dora {
			t.Fatalf("the logout token names %v, want dora", lt.claims["sub"])
		}
		if _, _, errCode := rp.silent(t, laptop, oauthConnection("people")); errCode != "login_required" {
			t.Fatalf("the laptop after the reset: %q, want login_required", errCode)
		}
		if p := rp.passwordStep(t, e.browser(), newLogin(), dora, "the first password"); p.status != 401 {
			t.Fatalf("the old password after the reset: status %d, want 401", p.status)
		}
		rp.signIn(t, e.browser(), dora, "the second password")
		// The link is spent.
		if p := e.browser().get(link); p.status != 400 || !strings.Contains(p.body, "This link is not valid") {
			t.Fatalf("the reset link a second time: status %d, want 400", p.status)
		}
		form.Set("new-password", "a third password")
		form.Set("confirm-password", "a third password")
		if p := phone.post(action, form); p.status != 400 {
			t.Fatalf("posting the spent link's form again: status %d, want 400", p.status)
		}
	})

	t.Run("an unknown address, or one of the administrator's users, gets the same page and no mail", func(t *testing.T) {
		b := e.browser()
		// Each request is its own sign-in, whose transaction the "back" link carries.
		withoutTX := func(p page) string { return regexp.MustCompile(`tx=[A-Za-z0-9_-]+`).ReplaceAllString(p.body, "tx=") }
		known := askForReset(t, b, rp, address)
		for _, other := range []string{"nobody-" + dora + "@example.com", "alice@example.com"} {
			p := askForReset(t, b, rp, other)
			if p.status != known.status || withoutTX(p) != withoutTX(known) {
				t.Fatalf("%s: status %d, want the same page as for an existing address (%d)\n%s", other, p.status, known.status, p.body)
			}
		}
		// Two more requests for dora's address: one address gets at most three links within
		// the window (the first test's, the one above and one of these).
		askForReset(t, b, rp, address)
		askForReset(t, b, rp, address)
		// Ten requests per client address within the window; this browser made five.
		for range 5 {
			askForReset(t, b, rp, "someone@example.com")
		}
		if p := askForReset(t, b, rp, "someone@example.com"); p.status != 429 {
			t.Fatalf("the eleventh request from one address: status %d, want 429", p.status)
		}
		// Shutdown returns once the mail in flight is sent.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"nobody-" + dora + "@example.com", "alice@example.com", "someone@example.com"} {
			if n := len(smtp.messagesTo(t, other)); n != 0 {
				t.Fatalf("%s received %d messages, want none", other, n)
			}
		}
		resets := 0
		for _, m := range smtp.messagesTo(t, address) {
			if m.header.Get("Subject") == "Choose a new password" {
				resets++
			}
		}
		if resets != 3 {
			t.Fatalf("%s received %d reset links, want 3 (one address's share per window)", address, resets)
		}
	})
}

// A reset link mailed to a user works for 30 minutes and a verification link for a day:
// one found later in a mailbox, or in a forwarded mail, changes nothing.
func TestMailedLinksPastTheirLifetimeAreRefused(t *testing.T) {
	smtp := startSMTPServer(t)
	e := newEnv(t, func(c *config.Config) { c.Email = smtp.config() })
	rp := e.rp("app2", "app2-secret")
	erin, address, _ := signUpWithEmail(t, e, e.browser(), "erin")
	verify := smtp.waitForLink(t, address, "/verify-email", 1)
	askForReset(t, e.browser(), rp, address)
	reset := smtp.waitForLink(t, address, "/reset-password", 1)

	e.clock.Advance(31 * time.Minute)
	if p := e.browser().get(reset); p.status != 400 || !strings.Contains(p.body, "This link is not valid") {
		t.Errorf("a reset link 31 minutes old: status %d, want 400 saying it is not valid\n%s", p.status, p.body)
	}
	e.clock.Advance(24 * time.Hour)
	if p := e.browser().get(verify); p.status != 400 || !strings.Contains(p.body, "This link is not valid") {
		t.Errorf("a verification link a day old: status %d, want 400 saying it is not valid\n%s", p.status, p.body)
	}
	// Neither changed anything: the password is the first, the address still unverified.
	_, idToken := rp.signIn(t, e.browser(), erin, "the first password")
	var claims struct {
		EmailVerified bool `json:"email_verified"`
	}
	if err := idToken.Claims(&claims); err != nil || claims.EmailVerified {
		t.Errorf("email_verified after an expired link: %v (%v), want false", claims.EmailVerified, err)
	}
}
