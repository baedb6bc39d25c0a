package clustertest

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestStoreMetrics: each instance on PostgreSQL serves the store's series
// at /metrics: the NOTIFY queue's usage once its listener has read it (an
// alert on a filling queue finds the frozen listener before sign-outs
// fail everywhere) and the transactions rerun after a conflict.
func TestStoreMetrics(t *testing.T) {
	c := startCluster(t, pgtest.NewDatabase(t), clusterOptions{})
	c.addOIDCUser("mia")
	c.newBrowser(t).via("a").signInOIDC(t, "/", "mia")
	usage := regexp.MustCompile(`(?m)^caddy_sso_store_notify_queue_usage (\S+)$`)
	reruns := regexp.MustCompile(`(?m)^caddy_sso_store_transaction_reruns_total \d+$`)
	for _, name := range c.names {
		in := c.inst[name]
		// The listener reads the queue after a quiet while (5 s).
		deadline := time.Now().Add(30 * time.Second)
		m := in.metrics(t)
		for !usage.MatchString(m) && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			m = in.metrics(t)
		}
		got := usage.FindStringSubmatch(m)
		if got == nil {
			t.Fatalf("instance %s: no caddy_sso_store_notify_queue_usage within 30 s", name)
		}
		// Every listener of the cluster reads its notices: the queue holds
		// next to nothing.
		if v, err := strconv.ParseFloat(got[1], 64); err != nil || v < 0 || v > 0.01 {
			t.Errorf("instance %s: caddy_sso_store_notify_queue_usage %s, want about 0", name, got[1])
		}
		if !reruns.MatchString(m) {
			t.Errorf("instance %s: no caddy_sso_store_transaction_reruns_total", name)
		}
	}
}
