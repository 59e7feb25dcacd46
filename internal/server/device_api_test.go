package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
)

// withOrdersGrantForTheCLI lets the device client get orders:read for its users.
func withOrdersGrantForTheCLI(cfg *config.Config) {
	for i := range cfg.APIs {
		if cfg.APIs[i].Identifier == ordersAPI {
			cfg.APIs[i].Grants = append(cfg.APIs[i].Grants, config.APIGrant{ClientID: cliClient, UserFlows: &config.GrantedScopes{Scopes: []string{"orders:read"}}})
			slices.SortFunc(cfg.APIs[i].Grants, func(a, b config.APIGrant) int { return strings.Compare(a.ClientID, b.ClientID) })
		}
	}
}

func TestADeviceAsksForAnAPIUnderItsGrants(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withDeviceClient(), withOrdersGrantForTheCLI)
	tests := []struct {
		name      string
		form      url.Values
		wantError string
	}{
		{name: "an API that grants the client nothing is access_denied by audience", form: url.Values{"audience": {reportsAPI}}, wantError: "access_denied"},
		{name: "an API that does not exist is invalid_target by resource", form: url.Values{"resource": {"https://api.example/payroll"}}, wantError: "invalid_target"},
		{name: "a scope the API does not grant is invalid_scope", form: url.Values{"audience": {ordersAPI}, "scope": {"openid orders:write"}}, wantError: "invalid_scope"},
		{name: "audience and resource naming different APIs are refused", form: url.Values{"audience": {ordersAPI}, "resource": {reportsAPI}}, wantError: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("client_id", cliClient)
			resp, err := http.PostForm(e.issuer+"/oauth/device/code", tt.form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusBadRequest || body["error"] != tt.wantError {
				t.Fatalf("status %d %v (%v), want 400 %s", resp.StatusCode, body, err, tt.wantError)
			}
		})
	}
}

// TestADeviceGetsTheAPIsTokenItAskedFor: a kubectl-like tool that also calls an API asks for
// it with the device code; the approved code gives a JWT access token for that API, which a
// refresh renews; a poll naming another API is refused.
func TestADeviceGetsTheAPIsTokenItAskedFor(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withDeviceClient(), withOrdersGrantForTheCLI)
	b := e.browser()
	e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)

	d := e.startDeviceWith(t, cliClient, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("audience", ordersAPI)},
		"openid", "groups", "offline_access", "orders:read")
	answer(t, b, d.confirmation(t, b), "allow")

	e.clock.Advance(5 * time.Second)
	status, body := tokenRequest(t, e, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {d.auth.DeviceCode}, "client_id": {cliClient}, "resource": {reportsAPI}}, "", "")
	if status != http.StatusBadRequest || body["error"] != "invalid_target" {
		t.Errorf("a poll naming another API: status %d %v, want invalid_target", status, body)
	}

	body, idt := d.tokens(t)
	accessToken, _ := body["access_token"].(string)
	c := verifyAsAPI(t, e, accessToken)
	if c.Subject != "people|alice" || c.ClientID != cliClient || !strings.Contains(c.Scope, "orders:read") || !slices.Contains(c.Groups, "admins") {
		t.Errorf("the API sees %+v, want alice's token for the CLI with orders:read and her groups", c)
	}
	if idt.Audience[0] != cliClient {
		t.Errorf("the ID token's aud is %v, want the client", idt.Audience)
	}

	refreshToken, _ := body["refresh_token"].(string)
	status, body = tokenRequest(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {cliClient}}, "", "")
	refreshed, _ := body["access_token"].(string)
	if status != http.StatusOK {
		t.Fatalf("refresh: status %d %v", status, body)
	}
	if c := verifyAsAPI(t, e, refreshed); c.Subject != "people|alice" || !strings.Contains(c.Scope, "orders:read") {
		t.Errorf("the refreshed token: %+v, want another token for the API", c)
	}
}

// TestADeviceCodeForAWithdrawnGrantGivesNothing: the platform team withdraws the grant
// between the approval and the device's next poll.
func TestADeviceCodeForAWithdrawnGrantGivesNothing(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withDeviceClient(), withOrdersGrantForTheCLI)
	b := e.browser()
	e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	d := e.startDeviceWith(t, cliClient, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("resource", ordersAPI)}, "openid", "orders:read")
	answer(t, b, d.confirmation(t, b), "allow")

	e.withdrawGrant(t, ordersAPI, cliClient)
	e.clock.Advance(5 * time.Second)
	d.pollError(t, "invalid_grant")
}

// TestTheDeviceConfirmationNamesTheAPIItAsksFor: the user who confirms a code sees which
// API the device will get a token for, by the SSOAPI's display name, before allowing it.
func TestTheDeviceConfirmationNamesTheAPIItAsksFor(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withDeviceClient(), withOrdersGrantForTheCLI)
	b := e.browser()
	e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	tests := []struct {
		name    string
		opts    []oauth2.AuthCodeOption
		wantAPI string
	}{
		{name: "a code for the API by audience names it", opts: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("audience", ordersAPI)},
			wantAPI: `with access to <strong id="api-name">Orders</strong>`},
		{name: "a code for the API by resource names it", opts: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("resource", ordersAPI)},
			wantAPI: `with access to <strong id="api-name">Orders</strong>`},
		{name: "a code for sign-in only names no API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.startDeviceWith(t, cliClient, tt.opts, "openid")
			p := d.confirmation(t, b)
			if !strings.Contains(p.body, "Cluster CLI") {
				t.Errorf("the confirmation does not name the application:\n%s", p.body)
			}
			if tt.wantAPI != "" && !strings.Contains(p.body, tt.wantAPI) {
				t.Errorf("the confirmation does not show %q:\n%s", tt.wantAPI, p.body)
			}
			if tt.wantAPI == "" && strings.Contains(p.body, "with access to") {
				t.Errorf("the confirmation of a sign-in names an API:\n%s", p.body)
			}
		})
	}
}
