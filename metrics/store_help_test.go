package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-sso/caddy-sso/metrics"
)

// TestStoreMetricsHelp: the store metrics' help, which an operator reads
// in the scrape, says what the store does. The reruns counter counts every
// conflict the PostgreSQL store reruns a transaction for (postgres's
// retryable: serialization failures, deadlocks, unique-key and foreign-key
// violations), not only the first two; a full NOTIFY queue stops the
// notices to the other instances, while sign-outs themselves go through
// (the help said "every sign-out fails").
func TestStoreMetricsHelp(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg).WatchStore(&fakeDatabase{usage: 1, read: true})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	help := make(map[string]string, len(families))
	for _, f := range families {
		help[f.GetName()] = f.GetHelp()
	}
	for _, tt := range []struct {
		metric      string
		says, never []string
	}{
		{"caddy_sso_store_transaction_reruns_total",
			[]string{"serialization failure", "deadlock", "unique-key", "foreign-key"}, nil},
		{"caddy_sso_store_notify_queue_usage",
			[]string{"sign-outs still succeed", "30 s"}, []string{"sign-out fails"}},
	} {
		got, ok := help[tt.metric]
		if !ok {
			t.Errorf("%s: not gathered", tt.metric)
			continue
		}
		for _, w := range tt.says {
			if !strings.Contains(got, w) {
				t.Errorf("%s: help does not say %q: %s", tt.metric, w, got)
			}
		}
		for _, w := range tt.never {
			if strings.Contains(got, w) {
				t.Errorf("%s: help says %q: %s", tt.metric, w, got)
			}
		}
	}
}
