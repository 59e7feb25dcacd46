package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// renderCount is how many renders of server ns/name the operator's metrics report, and
// whether it reports that server at all.
func renderCount(g Gomega, ns, name string) (uint64, bool) {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "hallpass_operator_config_render_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["name"] == name {
				return m.GetHistogram().GetSampleCount(), true
			}
		}
	}
	return 0, false
}

// TestRenderTimesAreMetricsOfTheirServer checks that a platform team can watch how long its
// server's renders take, and that a deleted server leaves no series behind.
func TestRenderTimesAreMetricsOfTheirServer(t *testing.T) {
	ns := newNamespace(t, nil)
	srv := newServer(ns, "sso")
	create(t, srv)
	eventually(t, func(g Gomega) {
		n, ok := renderCount(g, ns, "sso")
		g.Expect(ok).To(BeTrue(), "no render metric for the server")
		g.Expect(n).To(BeNumerically(">=", 1))
	})
	NewWithT(t).Expect(k8s.Delete(context.Background(), srv)).To(Succeed())
	eventually(t, func(g Gomega) {
		_, ok := renderCount(g, ns, "sso")
		g.Expect(ok).To(BeFalse(), "the deleted server's render metric is still there")
	})
}
