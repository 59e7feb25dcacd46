package controllers

import "testing"

func TestServerImagesAreAllowedByRepository(t *testing.T) {
	allowed := []string{"hallpass/hallpass:v1", "registry.example.com:5000/sso/hallpass"}
	for _, tc := range []struct {
		name  string
		image string
		want  bool
	}{
		{"another tag of an allowed repository", "hallpass/hallpass:v2", true},
		{"a digest of an allowed repository", "hallpass/hallpass@sha256:0123", true},
		{"a registry with a port and a tag", "registry.example.com:5000/sso/hallpass:v3", true},
		{"a repository that only starts like an allowed one", "hallpass/hallpass-miner:v1", false},
		{"an allowed name under another registry", "evil.example.net/hallpass/hallpass:v1", false},
		{"the allowed registry's host without the repository", "registry.example.com:5000/other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := imageAllowed(tc.image, allowed); got != tc.want {
				t.Fatalf("imageAllowed(%q) = %v, want %v", tc.image, got, tc.want)
			}
		})
	}
}
