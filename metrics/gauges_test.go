package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/metrics"
)

// fakeSAML is a SAML provider as the gauges read it (*saml.Provider's
// MetadataHealth).
type fakeSAML saml.MetadataHealth

func (f fakeSAML) MetadataHealth() saml.MetadataHealth { return saml.MetadataHealth(f) }

// fakeOIDC is an OpenID Connect provider as the gauges read it
// (*oidc.Provider's RefreshHealth).
type fakeOIDC oidc.RefreshHealth

func (f fakeOIDC) RefreshHealth() oidc.RefreshHealth { return oidc.RefreshHealth(f) }

// TestActiveSessionsGauge: the gauge reads 0 before the app has started
// (a scrape between Provision and Start must not fail), then the size of
// the session cache it was given, at each scrape.
func TestActiveSessionsGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	if got := gauges(t, reg); got["caddy_sso_active_sessions"] != 0 || len(got) != 1 {
		t.Errorf("before SetCacheSize: gauges %v, want caddy_sso_active_sessions 0 alone", got)
	}
	n := 3
	m.SetCacheSize(func() int { return n })
	if got := gauges(t, reg)["caddy_sso_active_sessions"]; got != 3 {
		t.Errorf("caddy_sso_active_sessions = %v, want 3", got)
	}
	n = 5 // read at the scrape, not at SetCacheSize
	if got := gauges(t, reg)["caddy_sso_active_sessions"]; got != 5 {
		t.Errorf("caddy_sso_active_sessions = %v, want 5", got)
	}
}

// TestIdPRefreshGauges: each IdP watched gets one series per time it
// knows, as Unix seconds, under its name, by the gauges of its protocol
// (SAML metadata; OpenID Connect discovery document and JWKS, whose failed
// refreshes otherwise show only in the log); a time it does not know (no
// validUntil in the metadata, nothing loaded yet) has no series, rather
// than a 1 Jan 0001 an alert on "expires within 7 days" or "not
// refreshed for two days" would fire on; and a provider of neither
// protocol is not watched, so a scrape does not fail on it.
func TestIdPRefreshGauges(t *testing.T) {
	reg := prometheus.NewPedanticRegistry() // each series' descriptor described (Describe)
	m := metrics.New(reg)
	loaded := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	certs := loaded.AddDate(2, 0, 0)
	keys := loaded.Add(-3 * 24 * time.Hour)                                // JWKS refreshes failing for days
	m.WatchIdP("okta", fakeSAML{Loaded: loaded, CertificateExpiry: certs}) // no validUntil
	m.WatchIdP("entra", fakeSAML{})                                        // not loaded yet
	m.WatchIdP("google", fakeOIDC{DiscoveryLoaded: loaded, KeysLoaded: keys})
	m.WatchIdP("keycloak", fakeSAML{Loaded: loaded}) // replaced by the next line: a name's provider is the one watched last
	m.WatchIdP("keycloak", fakeOIDC{})               // nothing fetched yet
	m.WatchIdP("other", struct{}{})                  // neither protocol
	got := gauges(t, reg)
	want := map[string]float64{
		"caddy_sso_active_sessions":                                    0,
		"caddy_sso_saml_metadata_loaded_timestamp_seconds/okta":        float64(loaded.Unix()),
		"caddy_sso_saml_idp_certificate_expiry_timestamp_seconds/okta": float64(certs.Unix()),
		"caddy_sso_oidc_discovery_loaded_timestamp_seconds/google":     float64(loaded.Unix()),
		"caddy_sso_oidc_jwks_loaded_timestamp_seconds/google":          float64(keys.Unix()),
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("gauges %v, want only %v", got, want)
	}
}

// TestNewReusesRegisteredCollectors: the app and each handler of a config
// call New with the config's one registry; the counters they move are the
// same series, all of them scraped.
func TestNewReusesRegisteredCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, second := metrics.New(reg), metrics.New(reg)
	first.Login("entra", "oidc", "success", "")
	second.Login("entra", "oidc", "success", "")
	second.Provisioned("entra", "create", "")
	got := counters(t, reg)
	if n := got["caddy_sso_logins_total/entra/oidc//success"]; n != 2 {
		t.Errorf("logins_total{result=success} = %v, want 2 (both Metrics count into the registered counter)", n)
	}
	if n := got["caddy_sso_jit_total/create/entra/"]; n != 1 {
		t.Errorf("jit_total{action=create} = %v, want 1", n)
	}
}

// fakeDatabase is a PostgreSQL store as the store gauges read it
// (*postgres.DB's NotifyQueueUsage and Reruns).
type fakeDatabase struct {
	usage  float64
	read   bool // whether the listener has a reading
	reruns uint64
}

func (f *fakeDatabase) NotifyQueueUsage() (float64, bool) { return f.usage, f.read }
func (f *fakeDatabase) Reruns() uint64                    { return f.reruns }

// TestStoreGauges: a PostgreSQL store gives the NOTIFY queue's usage, read
// at each scrape, and the transactions rerun after a conflict; no queue
// series while the listener has no reading (not a 0 an alert would take
// for a healthy queue); a bbolt store, which has neither, gives no series.
func TestStoreGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.WatchStore(struct{}{}) // a bbolt store
	if got := gauges(t, reg); len(got) != 1 {
		t.Errorf("with a store that is no database: gauges %v, want caddy_sso_active_sessions alone", got)
	}
	if got := counters(t, reg); len(got) != 0 {
		t.Errorf("with a store that is no database: counters %v, want none", got)
	}

	db := &fakeDatabase{reruns: 2}
	m.WatchStore(db)
	if _, ok := gauges(t, reg)["caddy_sso_store_notify_queue_usage"]; ok {
		t.Error("caddy_sso_store_notify_queue_usage present before the listener read the queue")
	}
	if got := counters(t, reg)["caddy_sso_store_transaction_reruns_total"]; got != 2 {
		t.Errorf("caddy_sso_store_transaction_reruns_total = %v, want 2", got)
	}
	db.usage, db.read, db.reruns = 0.75, true, 5 // read at the scrape, not at WatchStore
	if got, ok := gauges(t, reg)["caddy_sso_store_notify_queue_usage"]; !ok || got != 0.75 {
		t.Errorf("caddy_sso_store_notify_queue_usage = %v (present %v), want 0.75", got, ok)
	}
	if got := counters(t, reg)["caddy_sso_store_transaction_reruns_total"]; got != 5 {
		t.Errorf("caddy_sso_store_transaction_reruns_total = %v, want 5", got)
	}
}
