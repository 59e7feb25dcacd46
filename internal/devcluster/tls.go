package devcluster

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hallpass/hallpass/internal/localca"
)

// servingCertValidity is how long a dev serving certificate lasts; each `hallpass dev`
// run issues new ones.
const servingCertValidity = 30 * 24 * time.Hour

// ServeHTTPS does for every SSOServer among objs whose issuer is https on a loopback host,
// and that names no certificate of its own, what cert-manager would do in a cluster: it
// sets spec.tls to a Secret <server>-tls and adds that kubernetes.io/tls Secret, issued by
// ca for the issuer's host, before the server in the returned list.
func ServeHTTPS(objs []*unstructured.Unstructured, ca *localca.CA) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		host, ok := loopbackHTTPSIssuerHost(obj)
		if _, named, _ := unstructured.NestedString(obj.Object, "spec", "tls", "secretName"); !ok || named {
			out = append(out, obj)
			continue
		}
		name := obj.GetName() + "-tls"
		names := []string{host}
		for _, n := range []string{"localhost", "127.0.0.1", "::1"} {
			if n != host {
				names = append(names, n)
			}
		}
		certPEM, keyPEM, err := ca.Issue(servingCertValidity, names...)
		if err != nil {
			return nil, fmt.Errorf("issue the serving certificate of SSOServer %s: %w", obj.GetName(), err)
		}
		secret := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Secret", "type": string(corev1.SecretTypeTLS),
			"metadata": map[string]any{"name": name, "namespace": obj.GetNamespace()},
			// The chain ends with the CA, as cert-manager's does, so that a browser can be told
			// to trust the CA's key alone (Chromium's --ignore-certificate-errors-spki-list).
			"stringData": map[string]any{corev1.TLSCertKey: string(certPEM) + string(ca.CertPEM), corev1.TLSPrivateKeyKey: string(keyPEM)},
		}}
		if obj.GetNamespace() == "" {
			unstructured.RemoveNestedField(secret.Object, "metadata", "namespace")
		}
		if err := unstructured.SetNestedField(obj.Object, name, "spec", "tls", "secretName"); err != nil {
			return nil, fmt.Errorf("set spec.tls of SSOServer %s: %w", obj.GetName(), err)
		}
		out = append(out, secret, obj)
	}
	return out, nil
}

// loopbackHTTPSIssuerHost is the host of an SSOServer's issuer when it is https on
// localhost, a name under it, or a loopback address.
func loopbackHTTPSIssuerHost(obj *unstructured.Unstructured) (string, bool) {
	if obj.GetKind() != "SSOServer" {
		return "", false
	}
	issuer, _, _ := unstructured.NestedString(obj.Object, "spec", "issuer")
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" {
		return "", false
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		return host, ip.IsLoopback()
	}
	return host, host == "localhost" || strings.HasSuffix(host, ".localhost")
}
