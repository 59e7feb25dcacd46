package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// chunked hides a body's length, so the server cannot refuse it before reading.
type chunked struct{ io.Reader }

func TestOversizedRequestBodiesAreRefused(t *testing.T) {
	e := newEnv(t)
	big := func(n int) string { return "grant_type=client_credentials&x=" + strings.Repeat("a", n) }
	tests := []struct {
		name       string
		path       string
		body       string
		hideLength bool
		want       int
	}{
		{name: "a 2 MiB token request is refused as too large", path: "/token", body: big(2 << 20), want: http.StatusRequestEntityTooLarge},
		{name: "a 100 KiB login post is refused as too large", path: "/login", body: big(100 << 10), want: http.StatusRequestEntityTooLarge},
		{name: "a 2 MiB token request without a length is a protocol error", path: "/token", body: big(2 << 20), hideLength: true, want: http.StatusBadRequest},
		{name: "a 512 KiB SAML response may reach a connection's callback", path: "/connections/corp/callback", body: "SAMLResponse=" + strings.Repeat("a", 512<<10), want: http.StatusNotFound},
		{name: "a 2 MiB post to a connection's callback is refused as too large", path: "/connections/corp/callback", body: big(2 << 20), want: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.hideLength {
				body = chunked{body}
			}
			req, _ := http.NewRequest(http.MethodPost, e.issuer+tt.path, body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("m2m", "m2m-secret")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("the answer took %v", d)
			}
		})
	}
}
