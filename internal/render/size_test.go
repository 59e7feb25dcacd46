package render

import (
	"compress/gzip"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
)

// realisticClients are n clients as application teams write them: spread over 100
// namespaces, mostly regular web apps with a secret, two callback URLs on their own host, a
// logout URL, an origin for single-page apps, a back-channel logout URL and one connection.
func realisticClients(n int) []Client {
	types := []hallpassv1.ClientType{hallpassv1.RegularWebApp, hallpassv1.RegularWebApp, hallpassv1.SinglePageApp, hallpassv1.MachineToMachine}
	clients := make([]Client, n)
	for i := range clients {
		ns, name := fmt.Sprintf("team-%03d", i%100), fmt.Sprintf("app-%05d", i)
		host := fmt.Sprintf("https://%s.%s.apps.example.com", name, ns)
		typ := types[i%len(types)]
		c := &hallpassv1.SSOClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.Unix(int64(i), 0)},
			Spec:       hallpassv1.SSOClientSpec{Type: typ, DisplayName: "Application " + name, Connections: []string{"corp-ldap"}},
		}
		if typ != hallpassv1.MachineToMachine {
			c.Spec.RedirectURIs = []string{host + "/auth/callback", host + "/oauth2/callback"}
			c.Spec.PostLogoutRedirectURIs = []string{host + "/"}
		}
		if typ == hallpassv1.SinglePageApp {
			c.Spec.WebOrigins = []string{host}
		}
		if typ == hallpassv1.RegularWebApp {
			c.Spec.BackchannelLogoutURI = host + "/auth/backchannel-logout"
		}
		id, err := config.RandomToken(16)
		if err != nil {
			panic(err)
		}
		clients[i] = Client{Client: c, ID: id}
		if !typ.Public() {
			secret, _ := config.RandomToken(32)
			clients[i].SecretDigests = []string{digest.Of(secret)}
		}
	}
	return clients
}

// BenchmarkConfigOf10000Clients measures what the config format must carry at the
// 10,000-client goal (docs/adr/0013): the bytes of the rendered config, as YAML and
// gzip-compressed, per client and in all, and the time to render it.
//
//	go test -run '^$' -bench ConfigOf10000Clients -benchtime 5x ./internal/render
func BenchmarkConfigOf10000Clients(b *testing.B) {
	const n = 10000
	in := Input{Server: server(), Clients: realisticClients(n), Values: Values{}}
	in.Server.Spec.Budgets = hallpassv1.NamespaceBudgets{ClientsPerNamespace: n, ConfigBytesPerNamespace: 1 << 23}
	in.MaxCompressedBytes = 1 << 30
	var out *Output
	for b.Loop() {
		var err error
		if out, err = Render(in); err != nil {
			b.Fatal(err)
		}
	}
	if len(out.Config.Clients) != n {
		b.Fatalf("rendered %d clients, want %d", len(out.Config.Clients), n)
	}
	best, err := config.Compress(out.Bytes, gzip.BestCompression)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(out.Bytes)), "yaml-bytes")
	b.ReportMetric(float64(len(out.Bytes))/n, "yaml-bytes/client")
	b.ReportMetric(float64(len(out.Compressed)), "gzip-bytes")
	b.ReportMetric(float64(len(out.Compressed))/n, "gzip-bytes/client")
	b.ReportMetric(float64(len(best)), "best-gzip-bytes")
}

// BenchmarkCompressionOf10000Clients measures what compressing the config of 10,000
// realistic clients costs at the render's fast level and at gzip's best: its time and bytes.
//
//	go test -run '^$' -bench CompressionOf10000Clients ./internal/render
func BenchmarkCompressionOf10000Clients(b *testing.B) {
	const n = 10000
	in := Input{Server: server(), Clients: realisticClients(n), Values: Values{}, MaxCompressedBytes: 1 << 30}
	in.Server.Spec.Budgets = hallpassv1.NamespaceBudgets{ClientsPerNamespace: n, ConfigBytesPerNamespace: 1 << 23}
	out, err := Render(in)
	if err != nil {
		b.Fatal(err)
	}
	for _, level := range []struct {
		name  string
		level int
	}{{"fast", fastCompression}, {"best", gzip.BestCompression}} {
		b.Run(level.name, func(b *testing.B) {
			var compressed []byte
			for b.Loop() {
				if compressed, err = config.Compress(out.Bytes, level.level); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(compressed)), "gzip-bytes")
		})
	}
}
