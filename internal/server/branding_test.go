package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
)

// A brand colour is the background of every button on the server's pages; its text takes
// whichever of white and near-black contrasts more with it (WCAG 2), so that a light brand
// colour does not leave white text unreadable.
func TestButtonTextStaysReadableOnTheBrandColour(t *testing.T) {
	for _, tt := range []struct {
		name, primary, wantText string
	}{
		{"a dark brand colour keeps white text", "#2f5bd3", "#fff"},
		{"a light brand colour gets dark text", "#ffcc00", "#1d1f23"},
		{"a short light colour gets dark text", "#fc0", "#1d1f23"},
		{"a pale grey gets dark text", "#a0a0a0", "#1d1f23"},
		{"the default is white on blue", "", "#fff"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(cfg *config.Config) { cfg.Branding.PrimaryColor = tt.primary })
			resp, err := http.Get(e.issuer + "/assets/login.css")
			if err != nil {
				t.Fatal(err)
			}
			css, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(css), "--on-primary:"+tt.wantText+";") || !strings.Contains(string(css), "color:var(--on-primary)") {
				t.Errorf("primary %q: the button text is not %s:\n%.200s", tt.primary, tt.wantText, css)
			}
		})
	}
}
