package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"
)

func init() {
	commands["kubeconfig"] = command{
		summary: "print the kubeconfig user that signs in with `hallpass login`, or with --apiserver-config the kube-apiserver's AuthenticationConfiguration",
		run:     func(_ context.Context, args []string) error { return runKubeconfig(args, os.Stdout) },
	}
}

// runKubeconfig prints one of the two halves of signing kubectl in with Hallpass: the user
// entry a user adds to their kubeconfig, or the JWT authenticator a cluster admin gives
// kube-apiserver (--authentication-config).
func runKubeconfig(args []string, out io.Writer) error {
	var f loginFlags
	fs := flag.NewFlagSet("kubeconfig", flag.ContinueOnError)
	f.bind(fs)
	user := fs.String("user", "hallpass", "name of the kubeconfig user")
	command := fs.String("command", "hallpass", "the hallpass binary as kubectl will run it")
	apiserver := fs.Bool("apiserver-config", false, "print the kube-apiserver AuthenticationConfiguration instead")
	prefix := fs.String("prefix", "hallpass:", "prefix of usernames and groups in the cluster, so they cannot collide with other authenticators' (RBAC subjects then carry it)")
	usernameClaim := fs.String("username-claim", "sub", "ID token claim that becomes the Kubernetes username (sub is unique per connection; email needs verified addresses)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	var doc any
	if *apiserver {
		if *usernameClaim == "" {
			return errors.New("--username-claim must not be empty")
		}
		var err error
		if doc, err = authenticationConfiguration(f, *prefix, *usernameClaim); err != nil {
			return err
		}
	} else {
		doc = kubeconfigUser(f, *user, *command)
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	_, err = out.Write(b)
	return err
}

// kubeconfigUser is a kubeconfig with the one user entry: kubectl runs `hallpass login`
// as an exec credential plugin (client.authentication.k8s.io/v1).
func kubeconfigUser(f loginFlags, user, command string) map[string]any {
	args := []string{"login", "--issuer", f.issuer, "--client-id", f.clientID}
	if f.scopes != "" && f.scopes != defaultLoginScopes {
		args = append(args, "--scopes", f.scopes)
	}
	if f.device {
		args = append(args, "--device")
	}
	if f.caFile != "" {
		args = append(args, "--ca-file", f.caFile)
	}
	return map[string]any{
		"users": []any{map[string]any{
			"name": user,
			"user": map[string]any{"exec": map[string]any{
				"apiVersion":         "client.authentication.k8s.io/v1",
				"command":            command,
				"args":               args,
				"interactiveMode":    "IfAvailable",
				"provideClusterInfo": false,
			}},
		}},
	}
}

// authenticationConfiguration is kube-apiserver's structured authentication config
// (apiserver.config.k8s.io/v1, Kubernetes 1.34 and later) with one JWT authenticator for the
// server: ID tokens of the kubectl client, username and groups prefixed.
func authenticationConfiguration(f loginFlags, prefix, usernameClaim string) (map[string]any, error) {
	issuer := map[string]any{"url": f.issuer, "audiences": []string{f.clientID}}
	if f.caFile != "" {
		ca, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("read --ca-file: %w", err)
		}
		issuer["certificateAuthority"] = string(ca)
	}
	return map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1",
		"kind":       "AuthenticationConfiguration",
		"jwt": []any{map[string]any{
			"issuer": issuer,
			"claimMappings": map[string]any{
				"username": map[string]any{"claim": usernameClaim, "prefix": prefix},
				"groups":   map[string]any{"claim": "groups", "prefix": prefix},
			},
		}},
	}, nil
}
