package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-io/switchyard/internal/httpserve"
)

// Option configures a Server.
type Option func(*Server)

// WithMetrics registers the gateway's metrics on reg and serves reg on GET
// /metrics (without a token, like the probes: it holds counts, never
// jobs): requests by status code and their duration, and the requests in
// flight. A 202 stored jobs; a 503 means JetStream could not take them.
func WithMetrics(reg *prometheus.Registry) Option {
	return func(s *Server) { s.metrics = reg }
}

// requestBuckets span a request from a single job (milliseconds) to a
// long NDJSON stream.
var requestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// instrument registers the request metrics on reg and wraps h with them.
func instrument(reg *prometheus.Registry, h http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_gateway_requests_total",
		Help: "HTTP requests answered by the gateway, by status code."}, []string{"code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchyard_gateway_request_duration_seconds",
		Help: "How long the gateway took to answer, by status code.", Buckets: requestBuckets}, []string{"code"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_gateway_requests_in_flight",
		Help: "HTTP requests being served."})
	reg.MustRegister(requests, duration, inFlight)
	return promhttp.InstrumentHandlerInFlight(inFlight,
		promhttp.InstrumentHandlerDuration(duration, promhttp.InstrumentHandlerCounter(requests, h)))
}

// metricsHandler serves reg, and everything else through h.
func metricsHandler(reg *prometheus.Registry, h http.Handler) http.Handler {
	m := httpserve.MetricsHandler(reg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			m.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
