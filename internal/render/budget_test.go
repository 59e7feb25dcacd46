package render

import (
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

// maximal is the largest client a tenant can write: every URI list at its bound, each URI
// at its longest, random so that compression does not help.
func maximal(namespace, name, id string, created int64) Client {
	c := client(name, id, hallpassv1.RegularWebApp, created)
	c.Client.Namespace = namespace
	rng := rand.New(rand.NewPCG(uint64(created), 1))
	uri := func(n int) string {
		b := []byte("https://x.example.com/")
		for len(b) < n {
			b = append(b, "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)])
		}
		return string(b)
	}
	c.Client.Spec.RedirectURIs, c.Client.Spec.PostLogoutRedirectURIs = nil, nil
	for range 32 {
		c.Client.Spec.RedirectURIs = append(c.Client.Spec.RedirectURIs, uri(2048))
		c.Client.Spec.PostLogoutRedirectURIs = append(c.Client.Spec.PostLogoutRedirectURIs, uri(2048))
	}
	return c
}

func leftOutNames(out *Output) []string {
	var names []string
	for _, l := range out.LeftOut {
		names = append(names, l.Client.Namespace+"/"+l.Client.Name+":"+l.Reason)
	}
	slices.Sort(names)
	return names
}

func servedIDs(out *Output) []string {
	var ids []string
	for _, c := range out.Config.Clients {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestBudgets(t *testing.T) {
	withBudgets := func(clients, bytes int32) *hallpassv1.SSOServer {
		s := server()
		s.Spec.Budgets = hallpassv1.NamespaceBudgets{ClientsPerNamespace: clients, ConfigBytesPerNamespace: bytes}
		return s
	}
	inNamespace := func(ns string, c Client) Client { c.Client.Namespace = ns; return c }
	cases := map[string]struct {
		in    Input
		check func(t *testing.T, out *Output)
	}{
		"clients of a namespace beyond its count are left out newest first, other namespaces untouched": {
			in: Input{Server: withBudgets(2, 1<<20), Clients: []Client{
				client("c", "3", hallpassv1.SinglePageApp, 30), client("a", "1", hallpassv1.SinglePageApp, 10), client("b", "2", hallpassv1.SinglePageApp, 20),
				inNamespace("other", client("d", "4", hallpassv1.SinglePageApp, 40)),
			}},
			check: func(t *testing.T, out *Output) {
				expect(t, slices.Equal(servedIDs(out), []string{"1", "2", "4"}), "served %v", servedIDs(out))
				expect(t, slices.Equal(leftOutNames(out), []string{"apps/c:OverBudget"}), "left out %v", leftOutNames(out))
			},
		},
		"a client larger than its namespace's bytes is left out and its small neighbours served": {
			in: Input{Server: withBudgets(100, 64<<10), Clients: []Client{
				maximal("apps", "huge", "1", 10), client("small", "2", hallpassv1.SinglePageApp, 20),
			}},
			check: func(t *testing.T, out *Output) {
				expect(t, slices.Equal(servedIDs(out), []string{"2"}), "served %v", servedIDs(out))
				expect(t, slices.Equal(leftOutNames(out), []string{"apps/huge:OverBudget"}), "left out %v", leftOutNames(out))
			},
		},
		"fourteen maximal clients in fourteen namespaces no longer freeze the config: the newest wait, the rest are served": {
			in: func() Input {
				in := Input{Server: withBudgets(100, 8<<20), Clients: []Client{client("small", "0", hallpassv1.SinglePageApp, 1)}}
				for i := range 14 {
					in.Clients = append(in.Clients, maximal(fmt.Sprintf("tenant-%d", i), "big", fmt.Sprint(i+1), int64(10+i)))
				}
				return in
			}(),
			check: func(t *testing.T, out *Output) {
				expect(t, len(out.Compressed) <= DefaultMaxCompressedBytes, "compressed %d bytes", len(out.Compressed))
				expect(t, slices.Contains(servedIDs(out), "0") && slices.Contains(servedIDs(out), "1"), "the oldest clients are served: %v", servedIDs(out))
				expect(t, len(out.LeftOut) > 0 && out.LeftOut[0].Reason == ReasonOverBudget, "left out %v", leftOutNames(out))
				expect(t, !slices.Contains(servedIDs(out), "14"), "the newest maximal client waits: %v", servedIDs(out))
				back, err := config.FromSecretData(map[string][]byte{config.CompressedConfigSecretKey: out.Compressed})
				expect(t, err == nil && string(back) == string(out.Bytes), "the compressed config decompresses to the config: %v", err)
			},
		},
		"a config that fits the cap only at gzip's best compression serves every client": {
			in: func() Input {
				in := Input{Server: withBudgets(10000, 8<<20), Clients: realisticClients(2000)}
				plain, err := Render(Input{Server: in.Server, Clients: in.Clients, MaxCompressedBytes: 1 << 30})
				if err != nil {
					panic(err)
				}
				fast, _ := config.Compress(plain.Bytes, fastCompression)
				best, _ := config.Compress(plain.Bytes, gzip.BestCompression)
				if len(best) >= len(fast) {
					panic(fmt.Sprintf("the best compression (%d bytes) is no smaller than the fast one (%d)", len(best), len(fast)))
				}
				in.MaxCompressedBytes = (len(best) + len(fast)) / 2
				return in
			}(),
			check: func(t *testing.T, out *Output) {
				expect(t, len(out.Config.Clients) == 2000 && len(out.LeftOut) == 0, "served %d, left out %d", len(out.Config.Clients), len(out.LeftOut))
				back, err := config.FromSecretData(map[string][]byte{config.CompressedConfigSecretKey: out.Compressed})
				expect(t, err == nil && string(back) == string(out.Bytes), "the compressed config decompresses to the config: %v", err)
			},
		},
		"the defaults leave room for a hundred typical clients per namespace": {
			in: Input{Server: server(), Clients: realisticClients(100)},
			check: func(t *testing.T, out *Output) {
				expect(t, len(out.Config.Clients) == 100 && len(out.LeftOut) == 0, "served %d, left out %v", len(out.Config.Clients), leftOutNames(out))
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := Render(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, out)
		})
	}
}
