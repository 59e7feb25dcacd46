package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

func TestKubeconfigPrintsAUserThatRunsHallpassLogin(t *testing.T) {
	var out bytes.Buffer
	if err := runKubeconfig([]string{"--issuer", "https://sso.example.com", "--client-id", "kubectl-abc", "--device", "--user", "corp"}, &out); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(out.Bytes())
	if err != nil {
		t.Fatalf("kubectl cannot read the output: %v\n%s", err, out.String())
	}
	exec := cfg.AuthInfos["corp"].Exec
	if exec == nil || exec.APIVersion != "client.authentication.k8s.io/v1" || exec.Command != "hallpass" ||
		!slices.Equal(exec.Args, []string{"login", "--issuer", "https://sso.example.com", "--client-id", "kubectl-abc", "--device"}) ||
		exec.InteractiveMode != "IfAvailable" {
		t.Errorf("user entry:\n%s", out.String())
	}

	out.Reset()
	if err := runKubeconfig([]string{"--issuer", "https://sso.example.com", "--client-id", "kubectl-abc", "--scopes", "openid groups offline_access"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "- --scopes\n      - openid groups offline_access\n") {
		t.Errorf("the user entry does not pass the scopes asked for on to hallpass login:\n%s", out.String())
	}
}

func TestKubeconfigPrintsTheAPIServersJWTAuthenticator(t *testing.T) {
	var out bytes.Buffer
	if err := runKubeconfig([]string{"--apiserver-config", "--issuer", "https://sso.example.com", "--client-id", "kubectl-abc"}, &out); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		JWT        []struct {
			Issuer struct {
				URL       string   `json:"url"`
				Audiences []string `json:"audiences"`
			} `json:"issuer"`
			ClaimMappings struct {
				Username struct{ Claim, Prefix string } `json:"username"`
				Groups   struct{ Claim, Prefix string } `json:"groups"`
			} `json:"claimMappings"`
		} `json:"jwt"`
	}
	if err := yaml.UnmarshalStrict(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if doc.APIVersion != "apiserver.config.k8s.io/v1" || doc.Kind != "AuthenticationConfiguration" || len(doc.JWT) != 1 {
		t.Fatalf("output:\n%s", out.String())
	}
	j := doc.JWT[0]
	if j.Issuer.URL != "https://sso.example.com" || !slices.Equal(j.Issuer.Audiences, []string{"kubectl-abc"}) ||
		j.ClaimMappings.Username.Claim != "sub" || j.ClaimMappings.Username.Prefix != "hallpass:" ||
		j.ClaimMappings.Groups.Claim != "groups" || j.ClaimMappings.Groups.Prefix != "hallpass:" {
		t.Errorf("authenticator:\n%s", out.String())
	}
	if err := runKubeconfig([]string{"--apiserver-config"}, &out); err == nil {
		t.Error("no issuer and client ID were accepted")
	}
}
