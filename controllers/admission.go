package controllers

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// refusal says why a server does not admit a client.
type refusal struct {
	reason, message string
}

// admitClient decides whether server admits client. Both the SSOClient controller (for its
// Accepted condition) and the SSOServer controller (for what it renders) ask, so a narrowed
// allow-list takes a client off the server without waiting for the client's status.
func admitClient(ctx context.Context, c client.Reader, server *hallpassv1.SSOServer, sc *hallpassv1.SSOClient) (*refusal, error) {
	allowed, err := namespaceAllowed(ctx, c, server, sc.Namespace)
	if err != nil {
		return nil, err
	}
	return admitClientFrom(server, sc, allowed), nil
}

// admitClientFrom is admitClient for a client whose namespace is known to be allowed or not:
// a render asks once per namespace, not once for each of its clients.
func admitClientFrom(server *hallpassv1.SSOServer, sc *hallpassv1.SSOClient, namespaceAllowed bool) *refusal {
	if !namespaceAllowed {
		return &refusal{hallpassv1.ReasonNamespaceNotAllowed, fmt.Sprintf(
			"SSOServer %s/%s does not admit clients from namespace %q (spec.allowedClientNamespaces)",
			server.Namespace, server.Name, sc.Namespace)}
	}
	if !server.Spec.DevMode {
		if field, uri := insecureURI(sc); field != "" {
			return &refusal{hallpassv1.ReasonInsecureRedirectURI, fmt.Sprintf(
				"%s %q uses http on a host that is not loopback; use https, or enable spec.devMode on SSOServer %s/%s for local development",
				field, uri, server.Namespace, server.Name)}
		}
	}
	return nil
}

func namespaceAllowed(ctx context.Context, c client.Reader, server *hallpassv1.SSOServer, namespace string) (bool, error) {
	sel := server.Spec.AllowedClientNamespaces
	if namespace == server.Namespace {
		return true, nil
	}
	if sel == nil {
		return false, nil
	}
	if slices.Contains(sel.Names, namespace) {
		return true, nil
	}
	if sel.Selector == nil {
		return false, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel.Selector)
	if err != nil {
		return false, fmt.Errorf("parse spec.allowedClientNamespaces.selector of SSOServer %s/%s: %w", server.Namespace, server.Name, err)
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		return false, fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	return selector.Matches(labels.Set(ns.Labels)), nil
}

// insecureURI returns the first URI of the client that uses plain http on a host other than
// loopback, and the field it is in.
func insecureURI(sc *hallpassv1.SSOClient) (field, uri string) {
	lists := []struct {
		field  string
		uris   []string
		isList bool
	}{
		{"spec.redirectURIs", sc.Spec.RedirectURIs, true},
		{"spec.postLogoutRedirectURIs", sc.Spec.PostLogoutRedirectURIs, true},
		{"spec.webOrigins", sc.Spec.WebOrigins, true},
		{"spec.backchannelLogoutURI", []string{sc.Spec.BackchannelLogoutURI}, false},
		{"spec.frontchannelLogoutURI", []string{sc.Spec.FrontchannelLogoutURI}, false},
	}
	for _, l := range lists {
		for i, raw := range l.uris {
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "http" || isLoopback(u.Hostname()) {
				continue
			}
			if l.isList {
				return fmt.Sprintf("%s[%d]", l.field, i), raw
			}
			return l.field, raw
		}
	}
	return "", ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
