// Package metrics holds the gateway's Prometheus metrics, registered in the
// registry Caddy gives its apps (served by Caddy's metrics handler and the
// admin endpoint's /metrics). Label values are IdP names, protocol names
// and fixed result and reason codes: never a user, token or attribute
// value.
//
// Caddy gives each loaded config a registry of its own, so the counters
// start again from zero at a config reload, as Caddy's own
// caddy_http_* counters do; Prometheus's rate() and increase() read a
// reset as one.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/signin"
)

// Metrics are the gateway's collectors. All methods are no-ops on a nil
// receiver (no registry).
type Metrics struct {
	logins *prometheus.CounterVec // idp, protocol, result, reason
	jit    *prometheus.CounterVec // idp, action (create, update, deny, overage), reason
	scim   *prometheus.CounterVec // method, resource, status, idp, token
	// endpoints times the sso endpoints (login, callback, acs, logout…).
	// The protected hot path is not timed here: a histogram observation
	// costs about 0.1 µs of its 2 µs budget, and Caddy's own
	// caddy_http_request_duration_seconds already covers whole routes.
	endpoints *prometheus.HistogramVec // endpoint
	sessions  *cacheGauge
	idps      *idpGauges
	store     *storeGauges
}

// cacheGauge reports the size of the running app's session cache, which
// exists only once the app has started: the app registers the gauge at
// Provision and tells it where to read at Start (SetCacheSize).
type cacheGauge struct {
	desc *prometheus.Desc
	size atomic.Pointer[func() int]
}

func (g *cacheGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *cacheGauge) Collect(ch chan<- prometheus.Metric) {
	n := 0
	if f := g.size.Load(); f != nil {
		n = (*f)()
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n))
}

// idpGauges report the health of what the IdPs fetch in the background
// (WatchIdP): a SAML IdP's metadata, an OpenID Connect IdP's discovery
// document and keys. Read at each scrape: Unix times, one series per IdP,
// none for a time unknown, whatever the protocol.
type idpGauges struct {
	samlLoaded, samlValidUntil, samlCertExpiry *prometheus.Desc
	oidcDiscovery, oidcKeys                    *prometheus.Desc

	mu sync.Mutex
	// times reads an IdP's times, by name, at a scrape.
	times map[string]func() map[*prometheus.Desc]time.Time
}

// samlProvider and oidcProvider are what the gauges read of an IdP
// (*saml.Provider, *oidc.Provider).
type (
	samlProvider interface{ MetadataHealth() saml.MetadataHealth }
	oidcProvider interface{ RefreshHealth() oidc.RefreshHealth }
)

func (g *idpGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.samlLoaded, g.samlValidUntil, g.samlCertExpiry, g.oidcDiscovery, g.oidcKeys} {
		ch <- d
	}
}

func (g *idpGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, times := range g.times {
		for desc, t := range times() {
			if !t.IsZero() {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(t.Unix()), name)
			}
		}
	}
}

// storeGauges report what a store shared by several instances knows of its
// database (WatchStore), read at each scrape; a store without it (bbolt)
// has no series.
type storeGauges struct {
	queue, reruns *prometheus.Desc
	db            atomic.Pointer[sharedDatabase]
}

// sharedDatabase is what the gauges read of a PostgreSQL store
// (*postgres.DB).
type sharedDatabase interface {
	NotifyQueueUsage() (float64, bool)
	Reruns() uint64
}

func (g *storeGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.queue
	ch <- g.reruns
}

func (g *storeGauges) Collect(ch chan<- prometheus.Metric) {
	db := g.db.Load()
	if db == nil {
		return
	}
	if u, ok := (*db).NotifyQueueUsage(); ok {
		ch <- prometheus.MustNewConstMetric(g.queue, prometheus.GaugeValue, u)
	}
	ch <- prometheus.MustNewConstMetric(g.reruns, prometheus.CounterValue, float64((*db).Reruns()))
}

const metricsNamespace = "caddy_sso"

// New registers the collectors in reg, reusing one of the same name
// already registered there. A nil reg gives nil Metrics.
func New(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		logins: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "logins_total",
			Help: "Sign-ins by IdP, protocol, result (success, failed, denied, not_saved: the store could not save it, or could not confirm it had) and reason, the reference code the person was shown (empty for success). A sign-in that could not start (the IdP away, or contradicting the configuration) counts as failed.",
		}, []string{"idp", "protocol", "result", "reason"})),
		jit: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "jit_total",
			Help: "Just-In-Time provisioning outcomes by IdP, action (create, update, deny, overage: the IdP sent a pointer in place of the groups, so the user's groups were kept) and denial reason.",
		}, []string{"idp", "action", "reason"})),
		scim: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "scim_requests_total",
			Help: "SCIM requests by method, resource type, status code, the IdP whose bearer token admitted the request (empty when none did: 401) and which of its tokens, by its place in the IdP's list (1, 2: the second while a token is rotated; empty when refused).",
		}, []string{"method", "resource", "code", "idp", "token"})),
	}
	m.endpoints = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "endpoint_duration_seconds",
		Help: "Time the sso handler spends serving its own endpoints (sign-in start, callbacks, logout, metadata…), by endpoint.",
		// Up to 10 s: a callback waits on the IdP (code exchange, JWKS)
		// up to idp.DefaultHTTPTimeout (10 s), which +Inf alone would hide.
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"endpoint"}))
	m.sessions = register(reg, &cacheGauge{desc: prometheus.NewDesc(metricsNamespace+"_active_sessions",
		"Sessions held in the in-memory session cache.", nil, nil)})
	m.store = register(reg, &storeGauges{
		queue: prometheus.NewDesc(metricsNamespace+"_store_notify_queue_usage",
			"PostgreSQL's NOTIFY queue usage (0 to 1, one queue for the whole server) as this instance's invalidation listener last read it (every 5 s): above 0, a listening session somewhere does not read its notices; at 1, no instance can tell the others about ended sessions (sign-ins and sign-outs still succeed; the others forget those sessions within their cache's 30 s). No series with bbolt, or while the role may not call pg_notification_queue_usage().", nil, nil),
		reruns: prometheus.NewDesc(metricsNamespace+"_store_transaction_reruns_total",
			"PostgreSQL transactions this instance ran again after a conflict with a concurrent transaction since the store was opened: a serialization failure, a deadlock, or a unique-key or foreign-key violation a concurrent commit caused. Write contention, between instances or between one instance's own requests. No series with bbolt.", nil, nil),
	})
	idpLabel := []string{"idp"}
	m.idps = register(reg, &idpGauges{
		samlLoaded: prometheus.NewDesc(metricsNamespace+"_saml_metadata_loaded_timestamp_seconds",
			"When the SAML IdP's metadata in use was loaded (each successful refresh loads it again): an old time means refreshes fail.", idpLabel, nil),
		samlValidUntil: prometheus.NewDesc(metricsNamespace+"_saml_metadata_valid_until_timestamp_seconds",
			"When the SAML IdP's metadata in use expires (validUntil); sign-in refuses expired metadata.", idpLabel, nil),
		samlCertExpiry: prometheus.NewDesc(metricsNamespace+"_saml_idp_certificate_expiry_timestamp_seconds",
			"When the last of the SAML IdP's signing certificates in its metadata expires: after it, the IdP must sign with a key the metadata lacks (sign-in ignores certificate dates).", idpLabel, nil),
		oidcDiscovery: prometheus.NewDesc(metricsNamespace+"_oidc_discovery_loaded_timestamp_seconds",
			"When the OpenID Connect IdP's discovery document in use was fetched (fetched again on use once a day old, the last good copy kept when that fails): an old time on an IdP in use means refreshes fail.", idpLabel, nil),
		oidcKeys: prometheus.NewDesc(metricsNamespace+"_oidc_jwks_loaded_timestamp_seconds",
			"When the OpenID Connect IdP's signing keys (JWKS) in use were fetched (fetched again on use once a day old, and for a key they lack; the last good keys kept when that fails): an old time on an IdP in use means refreshes fail, and a key the IdP withdrew is still trusted.", idpLabel, nil),
	})
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

// Login counts one sign-in that ended with result: at its callback, or at
// its start when it could not begin. reason is the reference code the
// person was shown ("" for success), so an alert can tell a rotated client
// secret (token_exchange_failed) or an IdP that is away (idp_unavailable)
// from callbacks anyone can forge (state_missing, flow_missing). The codes
// are the fixed constants of the protocol packages, provision's denial
// reasons and the gateway's, and an error that carries none is
// login_failed: the label set stays bounded whatever a client sends.
func (m *Metrics) Login(idpName, protocol, result, reason string) {
	if m == nil {
		return
	}
	m.logins.WithLabelValues(idpName, protocol, result, reason).Inc()
}

// Endpoint records how long serving one sso endpoint took; rest is the
// path after the prefix ("login", "saml/entra/acs"…). The gateway, which
// serves the endpoints, names them (gateway.EndpointLabel): any other path
// counts as "other".
func (m *Metrics) Endpoint(rest string, took time.Duration) {
	if m == nil {
		return
	}
	m.endpoints.WithLabelValues(gateway.EndpointLabel(rest)).Observe(took.Seconds())
}

// WatchIdP makes p, the provider of the IdP named name, a source of the
// gauges of its protocol: a SAML IdP's metadata, an OpenID Connect IdP's
// discovery document and keys. A provider of neither is skipped.
func (m *Metrics) WatchIdP(name string, p any) {
	if m == nil {
		return
	}
	g := m.idps
	var times func() map[*prometheus.Desc]time.Time
	switch p := p.(type) {
	case samlProvider:
		times = func() map[*prometheus.Desc]time.Time {
			h := p.MetadataHealth()
			return map[*prometheus.Desc]time.Time{g.samlLoaded: h.Loaded, g.samlValidUntil: h.ValidUntil, g.samlCertExpiry: h.CertificateExpiry}
		}
	case oidcProvider:
		times = func() map[*prometheus.Desc]time.Time {
			h := p.RefreshHealth()
			return map[*prometheus.Desc]time.Time{g.oidcDiscovery: h.DiscoveryLoaded, g.oidcKeys: h.KeysLoaded}
		}
	default:
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.times == nil {
		g.times = make(map[string]func() map[*prometheus.Desc]time.Time)
	}
	g.times[name] = times
}

// SetCacheSize makes size the source of the active-sessions gauge.
func (m *Metrics) SetCacheSize(size func() int) {
	if m == nil {
		return
	}
	m.sessions.size.Store(&size)
}

// WatchStore makes st, the store the app runs on, the source of the store
// gauges; a store that is not shared through a database (bbolt) is
// skipped. A config reload gives the new config's registry the same store.
func (m *Metrics) WatchStore(st any) {
	db, ok := st.(sharedDatabase)
	if m == nil || !ok {
		return
	}
	m.store.db.Store(&db)
}

// SignIn counts a committed sign-in (signin.Service.Observe): the login's
// result, and what the JIT rules did.
func (m *Metrics) SignIn(idpName, protocol string, o *signin.Outcome) {
	if m == nil {
		return
	}
	switch {
	case o.Session != nil:
		m.Login(idpName, protocol, "success", "")
	case o.Replay != nil:
		m.Login(idpName, protocol, "failed", o.Replay.Code)
	case o.Denial != nil:
		m.Login(idpName, protocol, "denied", o.Denial.Reason)
	}
	if o.Unmapped != nil {
		m.Provisioned(idpName, "deny", o.Denial.Reason)
	}
	if o.Result != nil {
		o.Result.Observe(func(action, reason string) { m.Provisioned(idpName, action, reason) })
	}
}

// Provisioned counts one JIT outcome.
func (m *Metrics) Provisioned(idpName, action, reason string) {
	if m == nil {
		return
	}
	m.jit.WithLabelValues(idpName, action, reason).Inc()
}

// SCIM returns h, a SCIM endpoint's handler (scim.Endpoint.Handler),
// counting each request it answers by method, resource, status, and the
// IdP and token that admitted it. h counts them itself (scim.Observer):
// only it knows which IdP's token, and which of that IdP's two, a request
// presented. basePath is where SCIM is served, as configured (its default
// is scim.NormalBasePath's). Without metrics (nil m), or for a handler
// that does not report what it answered, it returns h.
func (m *Metrics) SCIM(h http.Handler, basePath string) http.Handler {
	o, ok := h.(scimObservable)
	if m == nil || !ok {
		return h
	}
	basePath = strings.TrimSuffix(scim.NormalBasePath(basePath), "/")
	return o.Observed(func(r *http.Request, out scim.Outcome) { m.scimRequest(r, basePath, out) })
}

// scimObservable is a SCIM handler that tells of what it answered
// (*scim.Handler, *scim.Mux).
type scimObservable interface {
	Observed(scim.Observer) http.Handler
}

// scimRequest counts one SCIM request by method, resource, status, IdP
// and token, each from a fixed set: the configured IdPs, and the token's
// place in its IdP's list ("1", "2"; "" with idp "" for a request no
// token admitted).
func (m *Metrics) scimRequest(r *http.Request, basePath string, out scim.Outcome) {
	rest := strings.TrimPrefix(r.URL.Path, basePath)
	resource, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch resource {
	case "Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas", "Bulk", ".search":
	default:
		resource = "other"
	}
	method := r.Method
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
	default:
		// The method is the client's text, and Go's server takes any
		// token up to the header limit: as a label, each new one would
		// be a series kept for the life of the process, counted before
		// the token is checked.
		method = "other"
	}
	token := ""
	if out.Token != 0 {
		token = strconv.Itoa(out.Token)
	}
	m.scim.WithLabelValues(method, resource, strconv.Itoa(out.Status), out.IdP, token).Inc()
}
