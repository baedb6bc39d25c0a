//go:build unix

// Unix only: the harness stops Caddy with SIGTERM, which Windows cannot send.

package stresstest_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/stresstest"
)

// TestGracefulStopUnderSCIMLoad: SIGTERM (systemd's stop) while SCIM
// clients keep writing over kept-alive connections. A graceful stop may
// refuse or close connections once the servers stop, but a request Caddy
// takes and answers must not fail because the sso app gave its store back
// first. Caddy stops its apps in map order, so the sso app stops before
// the http app about every other time; shutdown_delay keeps the http app's
// servers answering for a while after its Stop began (so after the sso
// app's, in those rounds), which makes each such round fail without the
// fix, not only the few whose requests hit a gap of microseconds.
// caddymodule's TestStopAnswersUntilTheServersStop forces that order in
// process; this is the real process, several rounds.
func TestGracefulStopUnderSCIMLoad(t *testing.T) {
	rounds := envInt(t, "STRESS_STOP_ROUNDS", 8)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := startWorld(t, func(w *stresstest.World) { w.Global = "\tshutdown_delay 300ms\n" })
	for round := range rounds {
		if round > 0 {
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu       sync.Mutex
			failures []string
			acked    atomic.Int64
			wg       sync.WaitGroup
			done     = make(chan struct{})
		)
		for k := range 4 {
			wg.Go(func() {
				s := w.SCIM(&http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second})
				for n := 0; ; n++ {
					select {
					case <-done:
						return
					default:
					}
					name := fmt.Sprintf("g%d-%d-%d@example.com", round, k, n)
					_, st, err := s.CreateUser(ctx, name, "ext-"+name, name)
					switch {
					case st == http.StatusCreated:
						acked.Add(1)
					case st != 0: // an answer, and not the one asked for
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
					default: // no answer: the servers stopped
						time.Sleep(10 * time.Millisecond)
					}
				}
			})
		}
		time.Sleep(400 * time.Millisecond)
		err := w.Caddy.Stop()
		close(done)
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: stop: %v", round, err)
		}
		if len(failures) > 0 {
			t.Errorf("round %d: %d answers failed during a graceful stop (%d acknowledged): %q",
				round, len(failures), acked.Load(), failures[:min(3, len(failures))])
		}
	}
	t.Log(checkStore(t, w))
}
