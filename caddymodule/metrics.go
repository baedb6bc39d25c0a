package caddymodule

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/provision/scim"
)

// ssoMetrics are the gateway's Prometheus metrics, registered in Caddy's
// registry (served by Caddy's metrics handler and admin /metrics). All
// methods are no-ops on a nil receiver. Label values are IdP names,
// protocol names, fixed result and reason codes: never a user, token or
// attribute value.
type ssoMetrics struct {
	logins *prometheus.CounterVec // idp, protocol, result
	jit    *prometheus.CounterVec // idp, action (create, update, deny), reason
	scim   *prometheus.CounterVec // method, resource, status
	// endpoints times the sso endpoints (login, callback, acs, logout…).
	// The protected hot path is not timed here: a histogram observation
	// costs about 0.1 µs of its 2 µs budget, and Caddy's own
	// caddy_http_request_duration_seconds already covers whole routes.
	endpoints *prometheus.HistogramVec // endpoint
}

const metricsNamespace = "caddy_sso"

// newMetrics registers the collectors in reg; a collector another config
// load already registered there is reused. sessions reports the number of
// sessions in the in-memory cache.
func newMetrics(reg *prometheus.Registry, sessions func() int) *ssoMetrics {
	if reg == nil {
		return nil
	}
	m := &ssoMetrics{
		logins: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "logins_total",
			Help: "Sign-ins completed at a callback, by IdP, protocol and result (success, failed, denied).",
		}, []string{"idp", "protocol", "result"})),
		jit: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "jit_total",
			Help: "Just-In-Time provisioning outcomes by IdP, action (create, update, deny) and denial reason.",
		}, []string{"idp", "action", "reason"})),
		scim: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "scim_requests_total",
			Help: "SCIM requests by method, resource type and status code.",
		}, []string{"method", "resource", "code"})),
	}
	m.endpoints = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "endpoint_duration_seconds",
		Help:    "Time the sso handler spends serving its own endpoints (sign-in start, callbacks, logout, metadata…), by endpoint.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"endpoint"}))
	if sessions != nil {
		register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "active_sessions",
			Help: "Sessions held in the in-memory session cache.",
		}, func() float64 { return float64(sessions()) }))
	}
	return m
}

func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (m *ssoMetrics) login(idpName, protocol, result string) {
	if m == nil {
		return
	}
	m.logins.WithLabelValues(idpName, protocol, result).Inc()
}

// endpointNames are the label values of endpoint_duration_seconds; any
// other path under the prefix counts as "other", so a client cannot grow
// the label set.
var endpointNames = map[string]bool{
	"login": true, "logout": true, "whoami": true, "jwks.json": true,
	"callback": true, "acs": true, "metadata": true, "slo": true,
}

// endpoint records how long serving one sso endpoint took; rest is the
// path after the prefix ("login", "saml/entra/acs"…).
func (m *ssoMetrics) endpoint(rest string, took time.Duration) {
	if m == nil {
		return
	}
	name := rest[strings.LastIndexByte(rest, '/')+1:]
	if !endpointNames[name] {
		name = "other"
	}
	m.endpoints.WithLabelValues(name).Observe(took.Seconds())
}

// provisioned counts one JIT outcome.
func (m *ssoMetrics) provisioned(idpName, action, reason string) {
	if m == nil {
		return
	}
	m.jit.WithLabelValues(idpName, action, reason).Inc()
}

func (m *ssoMetrics) scimRequest(r *http.Request, basePath string, status int) {
	if m == nil {
		return
	}
	if basePath == "" {
		basePath = scim.DefaultBasePath
	}
	rest := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(basePath, "/"))
	resource, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch resource {
	case "Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas", "Bulk", ".search":
	default:
		resource = "other"
	}
	m.scim.WithLabelValues(r.Method, resource, strconv.Itoa(status)).Inc()
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
