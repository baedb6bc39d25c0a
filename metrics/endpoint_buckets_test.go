package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/metrics"
)

// TestEndpointBucketsResolveFastEndpoints: the endpoints that do not call
// the IdP (sign-in start, metadata, whoami) answer in well under a
// millisecond; the histogram tells 0.3 ms from 0.8 ms, so that a slowdown
// there (a store that got slow) shows before it reaches a millisecond.
func TestEndpointBucketsResolveFastEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Endpoint("login", 300*time.Microsecond)
	m.Endpoint("login", 800*time.Microsecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[float64]uint64{.0005: 1, .001: 2}
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
