package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// TestSeedScenario walks the seed's server-side SSO scenario and the checks in
// order; each step starts from where the previous one left the browser.
func TestSeedScenario(t *testing.T) {
	requireE2E(t)
	b := newBrowser(t)
	// Each step builds on the previous one: after a failure the rest would only fail too.
	failed := false
	step := func(name string, f func(t *testing.T)) {
		if !failed && !t.Run(name, f) {
			failed = true
		}
	}

	step("signing in on App 1 then following its link signs in on App 2 with no login page", func(t *testing.T) {
		b.t = t
		b.open(app1URL() + "/")
		b.waitText("#who", "Not signed in")
		b.shot("app1-signed-out")
		b.Run("click Sign in on App 1", click("#login"))
		if !b.waitLoginPage() {
			t.Fatalf("App 1's sign-in should show the SSO server's login page, at %s", b.Location())
		}
		b.shot("server-login-page")
		b.signInOnServer()
		b.waitText("#who", "Signed in as Demo User")
		b.shot("app1-signed-in")

		b.Run("follow App 1's link to App 2", click("#app2-link"))
		b.waitLocation(app2URL() + "/dashboard")
		b.waitText("#welcome", "Welcome, Demo User")
		b.shot("app2-dashboard-through-sso")
	})

	step("turning singleSignOn off for App 2 shows the login page, and turning it back on is silent again", func(t *testing.T) {
		b.t = t
		setSingleSignOn(t, "app2", false)
		b.eventually("App 2 shows the login page once the server applies singleSignOn: false", func() bool {
			b.forgetApp(app2URL())
			b.open(ssoLink(app2URL(), "/dashboard"))
			return b.settle(app2URL()+"/dashboard") == "login"
		})
		b.shot("app2-sso-off-login-page")

		setSingleSignOn(t, "app2", true)
		b.eventually("App 2 signs in silently once the server applies singleSignOn: true", func() bool {
			b.forgetApp(app2URL())
			b.open(ssoLink(app2URL(), "/dashboard"))
			return b.settlesAt(app2URL() + "/dashboard")
		})
		b.waitText("#welcome", "Welcome, Demo User")
		b.shot("app2-sso-on-again")
	})

	step("a third SSOClient applied while everything runs works without restarting anything", func(t *testing.T) {
		b.t = t
		before, ok := env.cluster.Runner.Pod(env.ns, "hallpass")
		if !ok || before.PID == 0 {
			t.Fatal("the SSO server pod is not running")
		}
		app3 := &hallpassv1.SSOClient{
			ObjectMeta: metav1.ObjectMeta{Name: "app3", Namespace: env.ns},
			Spec: hallpassv1.SSOClientSpec{
				ServerRef:              hallpassv1.ServerReference{Name: "hallpass"},
				Type:                   hallpassv1.RegularWebApp,
				DisplayName:            "App 3",
				RedirectURIs:           []string{app3URL() + "/callback"},
				PostLogoutRedirectURIs: []string{app3URL() + "/"},
				BackchannelLogoutURI:   appBackchannelURL(env.app3Port),
				Connections:            []string{"username-password"},
			},
		}
		if err := env.cluster.Client.Create(context.Background(), app3); err != nil {
			t.Fatalf("create SSOClient app3: %v", err)
		}
		if err := startAppNamed("app3", "app2", env.app3Port, "--base-url", app3URL(), "--allow-insecure-http",
			"--title", "App 3", "--credentials-secret", "app3-sso-credentials"); err != nil {
			t.Fatal(err)
		}
		b.eventually("App 3 signs in through the central session once the server serves it", func() bool {
			b.open(ssoLink(app3URL(), "/dashboard"))
			return b.settlesAt(app3URL() + "/dashboard")
		})
		b.waitText("#welcome", "Welcome, Demo User")
		b.shot("app3-dashboard-through-sso")

		after, _ := env.cluster.Runner.Pod(env.ns, "hallpass")
		if after.PID != before.PID || after.Restarts != before.Restarts {
			t.Errorf("the SSO server restarted (pid %d -> %d, restarts %d -> %d); a new client must not restart it",
				before.PID, after.PID, before.Restarts, after.Restarts)
		}
	})

	step("signing out on App 2 ends App 3's session by back-channel and makes App 1's next silent renewal fail", func(t *testing.T) {
		b.t = t
		b.open(app1URL() + "/")
		b.waitText("#who", "Signed in as Demo User")
		b.Run("renew silently on App 1", click("#renew"))
		b.waitText("#renew-result", "Session renewed silently")
		b.shot("app1-silent-renewal-succeeds")

		b.open(app2URL() + "/dashboard")
		b.waitText("#welcome", "Welcome, Demo User")
		b.Run("sign out on App 2", click("#logout"))
		b.waitLocation(app2URL() + "/")
		b.waitText("#who", "Not signed in")
		b.shot("app2-signed-out")

		b.open(app1URL() + "/")
		b.waitText("#who", "Signed in as Demo User") // App 1 still holds its tokens
		b.Run("renew silently on App 1", click("#renew"))
		b.waitText("#renew-result", "login_required")
		b.shot("app1-silent-renewal-login-required")

		// App 3 kept its own session cookie; only the logout token the server sent to its
		// back-channel endpoint can have ended it. With its session and the central one
		// gone, its dashboard sends the browser to the server's login page.
		b.eventually("App 3's session is ended by the back-channel logout token", func() bool {
			b.open(app3URL() + "/dashboard")
			return b.onLoginPage()
		})
		b.shot("app3-signed-out-by-backchannel")
	})

	step("a returnTo that is not registered is not followed", func(t *testing.T) {
		b.t = t
		clientID := credentialsOf(t, "app2")
		b.open(issuer() + "/v2/logout?client_id=" + clientID + "&returnTo=" + "https%3A%2F%2Fevil.example%2F")
		time.Sleep(500 * time.Millisecond) // a redirect would have happened by now
		if loc := b.Location(); !strings.HasPrefix(loc, issuer()+"/") {
			t.Errorf("after /v2/logout with an unregistered returnTo the browser is at %s, want to stay on the SSO server", loc)
		}
		b.shot("v2-logout-unregistered-returnto")
	})
}

// TestOpenRedirectRefused is scenario 5: /auth/sso never sends the user to another site.
func TestOpenRedirectRefused(t *testing.T) {
	requireE2E(t)
	b := newBrowser(t)
	for i, target := range []string{"https://evil.example/", "//evil.example", `/\evil.example`} {
		t.Run("target_url="+target+" is refused", func(t *testing.T) {
			b.t = t
			b.open(ssoLink(app2URL(), target))
			b.waitLocation(app2URL() + "/auth/failure")
			b.waitText("#failure-message", "target_url must be a local path")
			b.shot("open-redirect-refused-" + strconv.Itoa(i+1))
		})
	}
	t.Run("a missing target_url goes to the failure page saying why", func(t *testing.T) {
		b.t = t
		b.open(app2URL() + "/auth/sso?connection=username-password")
		b.waitText("#failure-message", "target_url is required for this endpoint")
		b.shot("missing-target-url")
	})
	t.Run("a missing connection goes to the failure page saying why", func(t *testing.T) {
		b.t = t
		b.open(app2URL() + "/auth/sso?target_url=/dashboard")
		b.waitText("#failure-message", "connection is required for this endpoint")
		b.shot("missing-connection")
	})
}

// settle waits a little for the browser to come to rest on the server's login page or on
// an application page (target, without query), and says which: "login", "target", or ""
// when neither shows within the bound.
func (b *browser) settle(target string) string {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b.onLoginPage() {
			return "login"
		}
		if target != "" && stripQuery(b.Location()) == target {
			return "target"
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ""
}

func (b *browser) waitLoginPage() bool { return b.settle("") == "login" }

func (b *browser) settlesAt(want string) bool { return b.settle(want) == "target" }

// eventually retries check until it holds, within the propagation bound: a change applied
// to the API reaches the running server through the operator and the config Secret watch.
func (b *browser) eventually(what string, check func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(propagationTimeout)
	for time.Now().Before(deadline) {
		if check() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.shot("failed-eventually")
	b.t.Fatalf("%s: not within %s (at %s)", what, propagationTimeout, b.Location())
}

func setSingleSignOn(t *testing.T, name string, on bool) {
	t.Helper()
	var sc hallpassv1.SSOClient
	ctx := context.Background()
	if err := env.cluster.Client.Get(ctx, client.ObjectKey{Namespace: env.ns, Name: name}, &sc); err != nil {
		t.Fatalf("get SSOClient %s: %v", name, err)
	}
	patch := client.MergeFrom(sc.DeepCopy())
	sc.Spec.SingleSignOn = &on
	if err := env.cluster.Client.Patch(ctx, &sc, patch); err != nil {
		t.Fatalf("patch SSOClient %s singleSignOn=%v: %v", name, on, err)
	}
}

func credentialsOf(t *testing.T, ssoClient string) string {
	t.Helper()
	var s corev1.Secret
	if err := env.cluster.Client.Get(context.Background(), clientKey(ssoClient+"-sso-credentials"), &s); err != nil {
		t.Fatalf("get credentials of %s: %v", ssoClient, err)
	}
	return string(s.Data["client_id"])
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Namespace: env.ns, Name: name} }
