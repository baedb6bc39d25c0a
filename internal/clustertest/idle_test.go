package clustertest

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestShortIdleAcrossInstances: with an idle_timeout under the session
// cache's 30 s, a person whose requests alternate between the instances
// every 6 s (a balancer without stickiness) is never 10 s idle, and stays
// signed in, though each instance last served them 12 s ago: its cached
// copy knows only its own uses, and the store is asked before the session
// is ended (everywhere, as an end is).
func TestShortIdleAcrossInstances(t *testing.T) {
	c := startCluster(t, pgtest.NewDatabase(t), clusterOptions{session: "\t\t\tidle_timeout 10s\n"})
	c.addOIDCUser("alt")
	br := c.newBrowser(t).via("a")
	br.signInOIDC(t, "/", "alt")
	start := time.Now()
	for i, name := range []string{"b", "a", "b", "a", "b", "a"} {
		time.Sleep(6 * time.Second)
		resp, err := br.via(name).NoRedirects().Get(c.base + "/page")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d, on %s, %v after sign-in and 6 s after the previous one: %d, want 200",
				i+1, name, time.Since(start).Round(time.Second), resp.StatusCode)
		}
	}
}
