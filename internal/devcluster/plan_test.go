package devcluster

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hallpass/hallpass/internal/localca"
)

func TestRewriteListenArgs(t *testing.T) {
	ports := map[int]int{8080: 5556, 9090: 40000}
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"a --flag=:port listen address moves to its loopback port",
			[]string{"server", "--listen=:8080", "--metrics-listen=:9090"},
			[]string{"server", "--listen=127.0.0.1:5556", "--metrics-listen=127.0.0.1:40000"}},
		{"a listen address given as a separate argument moves too",
			[]string{"--listen", "0.0.0.0:8080"}, []string{"--listen", "127.0.0.1:5556"}},
		{"a port that is not a container port is left alone",
			[]string{"--listen=:7070"}, []string{"--listen=:7070"}},
		{"a namespace/name argument is not an address",
			[]string{"--config-secret", "ns/name", "--keys-secret=ns/keys"}, []string{"--config-secret", "ns/name", "--keys-secret=ns/keys"}},
		{"a URL with a port is not a listen address",
			[]string{"--issuer=http://host:8080"}, []string{"--issuer=http://host:8080"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rewriteListenArgs(tc.in, ports); !slices.Equal(got, tc.want) {
				t.Errorf("rewriteListenArgs(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMapURLs(t *testing.T) {
	objs := []*unstructured.Unstructured{
		{Object: map[string]any{"kind": "SSOServer", "spec": map[string]any{"issuer": "https://sso.example.com"}}},
		{Object: map[string]any{"kind": "SSOClient", "spec": map[string]any{
			"redirectURIs": []any{"https://app1.example.com/callback", "https://app1.example.com.evil/x"},
			"webOrigins":   []any{"https://app1.example.com"},
		}}},
	}
	MapURLs(objs, map[string]string{"https://sso.example.com": "http://127.0.0.1:5556", "https://app1.example.com": "http://localhost:3001"})
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"the issuer is mapped", objs[0].Object["spec"].(map[string]any)["issuer"], "http://127.0.0.1:5556"},
		{"an http URL puts the server in devMode", objs[0].Object["spec"].(map[string]any)["devMode"], true},
		{"a URL under a mapped prefix keeps its path", objs[1].Object["spec"].(map[string]any)["redirectURIs"].([]any)[0], "http://localhost:3001/callback"},
		{"a host that merely starts with a mapped one is left alone", objs[1].Object["spec"].(map[string]any)["redirectURIs"].([]any)[1], "https://app1.example.com.evil/x"},
		{"an origin equal to a prefix is mapped", objs[1].Object["spec"].(map[string]any)["webOrigins"].([]any)[0], "http://localhost:3001"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestMapURLsLeavesAnAllHTTPSServerOutOfDevMode(t *testing.T) {
	server := &unstructured.Unstructured{Object: map[string]any{"kind": "SSOServer", "spec": map[string]any{"issuer": "https://sso.example.com"}}}
	MapURLs([]*unstructured.Unstructured{server}, map[string]string{"https://sso.example.com": "https://localhost:5556"})
	if dev, found, _ := unstructured.NestedBool(server.Object, "spec", "devMode"); found || dev {
		t.Errorf("devMode = %v, want unset when every URL stays https", dev)
	}
}

func TestServeHTTPSGivesLoopbackHTTPSIssuersACertificate(t *testing.T) {
	ca, err := localca.New("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server := func(name, issuer string, tls map[string]any) *unstructured.Unstructured {
		spec := map[string]any{"issuer": issuer}
		if tls != nil {
			spec["tls"] = tls
		}
		return &unstructured.Unstructured{Object: map[string]any{"kind": "SSOServer", "metadata": map[string]any{"name": name, "namespace": "sso"}, "spec": spec}}
	}
	objs, err := ServeHTTPS([]*unstructured.Unstructured{
		server("local", "https://localhost:5556", nil),
		server("plain", "http://127.0.0.1:5556", nil),
		server("public", "https://sso.example.com", nil),
		server("own", "https://127.0.0.1:5557", map[string]any{"secretName": "mine"}),
	}, ca)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+" "+o.GetName())
	}
	if want := []string{"Secret local-tls", "SSOServer local", "SSOServer plain", "SSOServer public", "SSOServer own"}; !slices.Equal(kinds, want) {
		t.Fatalf("objects %q, want %q: only the https loopback issuer without a Secret of its own gets one, before its server", kinds, want)
	}
	if name, _, _ := unstructured.NestedString(objs[1].Object, "spec", "tls", "secretName"); name != "local-tls" {
		t.Errorf("spec.tls.secretName = %q, want local-tls", name)
	}
	certPEM, _, _ := unstructured.NestedString(objs[0].Object, "stringData", "tls.crt")
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		t.Fatalf("tls.crt is not PEM: %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("the certificate does not verify for localhost with the CA: %v", err)
	}
	if objs[0].GetNamespace() != "sso" || objs[0].Object["type"] != "kubernetes.io/tls" {
		t.Errorf("secret namespace %q type %v, want sso and kubernetes.io/tls", objs[0].GetNamespace(), objs[0].Object["type"])
	}
}

func TestPrefixWriterPrefixesWholeLines(t *testing.T) {
	var out bytes.Buffer
	w := newPrefixWriter(&out, "[ns/a] ")
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\nthree"))
	if got, want := out.String(), "[ns/a] one\n[ns/a] two\n"; got != want {
		t.Errorf("output %q, want %q (an unfinished line waits for its end)", got, want)
	}
	if !strings.HasSuffix(string(w.buf), "three") {
		t.Errorf("buffer %q should hold the unfinished line", w.buf)
	}
}

func TestPodNamesAreUniquePerStartAndNameTheDeployment(t *testing.T) {
	a, b := podName("sso", "0123456789abcdef"), podName("sso", "0123456789abcdef")
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a pod name starts with its Deployment and template hash", strings.HasPrefix(a, "sso-0123456789-")},
		{"two starts of the same template are two pods", a != b},
		{"a pod name is lower case, as Kubernetes names are", a == strings.ToLower(a)},
	} {
		if !tc.ok {
			t.Errorf("%s: got %q and %q", tc.name, a, b)
		}
	}
}
