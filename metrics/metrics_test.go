package metrics_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/metrics"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
)

// TestSignIn: each kind of committed sign-in moves the login counter with
// its result and the reference code the person was shown, and an unmapped
// assertion also counts as a JIT denial.
func TestSignIn(t *testing.T) {
	denial := &provision.Denial{Reason: provision.ReasonMissingAttributes}
	tests := []struct {
		name    string
		outcome signin.Outcome
		result  string // logins_total's result label; "" counts no login
		reason  string // and its reason label
		jitDeny bool   // jit_total{action="deny"} counted
	}{
		{"session", signin.Outcome{Session: &session.NewSession{}}, "success", "", false},
		{"replay", signin.Outcome{Replay: &idp.LoginError{Code: saml.CodeReplayed}}, "failed", saml.CodeReplayed, false},
		{"denied", signin.Outcome{Denial: denial}, "denied", provision.ReasonMissingAttributes, false},
		{"unmapped", signin.Outcome{Denial: denial, Unmapped: &mapping.MissingError{}}, "denied", provision.ReasonMissingAttributes, true},
		{"nothing", signin.Outcome{}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			metrics.New(reg).SignIn("entra", "oidc", &tt.outcome)
			got := counters(t, reg)
			for _, result := range []string{"success", "failed", "denied"} {
				want := 0.0
				if result == tt.result {
					want = 1
				}
				if n := got["caddy_sso_logins_total/entra/oidc/"+tt.reason+"/"+result]; n != want {
					t.Errorf("logins_total{reason=%q,result=%q} = %v, want %v", tt.reason, result, n, want)
				}
			}
			want := 0.0
			if tt.jitDeny {
				want = 1
			}
			if n := got["caddy_sso_jit_total/deny/entra/"+provision.ReasonMissingAttributes]; n != want {
				t.Errorf("jit_total{action=deny} = %v, want %v", n, want)
			}
		})
	}
	// Without a registry there are no metrics, and counting does nothing.
	var none *metrics.Metrics
	none.SignIn("entra", "oidc", &signin.Outcome{Session: &session.NewSession{}})
}

// counters gathers reg's counters by name and label values (labels in
// name order), joined by /.
func counters(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	return gathered(t, reg, false)
}

// gauges gathers reg's gauges the same way.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	return gathered(t, reg, true)
}

// gathered maps the value of each gauge (or counter) sample to its
// family's name and label values, joined by /.
func gathered(t *testing.T, reg *prometheus.Registry, gauge bool) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case gauge && m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case !gauge && m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			default:
				continue
			}
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			out[key] = v
		}
	}
	return out
}

// TestEndpointNames: each endpoint of the gateway is timed under its own
// name, the OpenID Connect logout channels included; any other path under
// the prefix (a client picks it) counts as "other".
func TestEndpointNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	for _, rest := range []string{"login", "oidc/entra/callback", "oidc/entra/backchannel-logout",
		"oidc/entra/frontchannel-logout", "saml/corp/acs", "saml/corp/slo", "oidc/entra/x", "nothing-here"} {
		m.Endpoint(rest, time.Millisecond)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]uint64)
	for _, f := range families {
		for _, s := range f.GetMetric() {
			if h := s.GetHistogram(); h != nil {
				got[s.GetLabel()[0].GetValue()] = h.GetSampleCount()
			}
		}
	}
	want := map[string]uint64{"login": 1, "callback": 1, "backchannel-logout": 1, "frontchannel-logout": 1, "acs": 1, "slo": 1, "other": 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("endpoint_duration_seconds counts %v, want %v", got, want)
	}
}

// TestEndpointBucketsReachIdPTimeout: a callback that waits on the IdP
// for 4 s or 9.9 s (idp.DefaultHTTPTimeout is 10 s) lands in a bucket of
// its own, not in +Inf with everything slower than 2.5 s.
func TestEndpointBucketsReachIdPTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Endpoint("oidc/okta/callback", 4*time.Second)
	m.Endpoint("oidc/okta/callback", 9900*time.Millisecond)
	checkEndpointBuckets(t, reg, map[float64]uint64{2.5: 0, 5: 1, idp.DefaultHTTPTimeout.Seconds(): 2})
}

// TestEndpointBucketsResolveFastEndpoints: the endpoints that do not call
// the IdP (sign-in start, metadata, whoami) answer in well under a
// millisecond; the histogram tells 0.3 ms from 0.8 ms, so that a slowdown
// there (a store that got slow) shows before it reaches a millisecond.
func TestEndpointBucketsResolveFastEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Endpoint("login", 300*time.Microsecond)
	m.Endpoint("login", 800*time.Microsecond)
	checkEndpointBuckets(t, reg, map[float64]uint64{.0005: 1, .001: 2})
}

// checkEndpointBuckets checks the endpoint histogram's cumulative counts
// at the upper bounds want names, and that each of those bounds exists.
func checkEndpointBuckets(t *testing.T, reg *prometheus.Registry, want map[float64]uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "caddy_sso_endpoint_duration_seconds" {
			continue
		}
		for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
			if n, ok := want[b.GetUpperBound()]; ok {
				if b.GetCumulativeCount() != n {
					t.Errorf("le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
				}
				delete(want, b.GetUpperBound())
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("no bucket le=%v", want)
	}
}
