package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// renderSeconds is how long each render of a server's config took, from reading its
// clients to writing the config Secret: what a platform team watches as its clients grow.
var renderSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "hallpass_operator_config_render_seconds",
	Help:    "Time taken by each render of an SSOServer's config: reading its clients, rendering, compressing and writing the config Secret.",
	Buckets: prometheus.ExponentialBuckets(0.002, 2, 12), // 2 ms to about 4 s
}, []string{"namespace", "name"})

func init() {
	metrics.Registry.MustRegister(renderSeconds)
}
