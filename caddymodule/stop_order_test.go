package caddymodule_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

func init() { caddy.RegisterModule(stopSSOFirst{}) }

// onStopping is what the running test does when Caddy stops (nil: nothing).
var onStopping atomic.Pointer[func()]

// stopSSOFirst is an event handler for Caddy's "stopping" event, which
// caddy.Stop emits after it cleared the running config and before it stops
// the apps (in map order): it runs onStopping, so a test can stop the sso
// app first, as that order does about every other time, and send requests
// to the http app's servers, which serve until their own Stop.
type stopSSOFirst struct{}

func (stopSSOFirst) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.sso_test_stop_first", New: func() caddy.Module { return new(stopSSOFirst) }}
}

func (stopSSOFirst) UnmarshalCaddyfile(d *caddyfile.Dispenser) error { d.Next(); return nil }

func (stopSSOFirst) Handle(_ context.Context, e caddy.Event) error {
	if f := onStopping.Load(); f != nil && e.Name() == "stopping" {
		(*f)()
	}
	return nil
}

// TestStopAnswersUntilTheServersStop: Caddy's graceful stop may stop the
// sso app before the http app, whose servers take and answer requests
// until their own Stop. The sso app is stopped first here, on purpose;
// requests that arrive then (a SCIM write, a signed-in page) are answered
// normally, and their last-seen time is written by the final flush, not
// lost. SCIM clients write all through the stop: none gets a 5xx (a
// refused or closed connection, once the servers stop, is fine).
func TestStopAnswersUntilTheServersStop(t *testing.T) {
	w := newSCIMWorld(t)
	withEvents := strings.Replace(w.caddyfile(), "{\n", "{\n\tevents {\n\t\ton stopping sso_test_stop_first\n\t}\n", 1)
	w.gw.reload(withEvents)
	b := newBrowser(t)
	upstreamSaw(t, b.signIn(w.gw.base+"/dashboard", "ada", "ada-pw"))
	signedIn := time.Now()
	id := userBySubject(t, "sub-ada").ID
	app, err := caddy.ActiveContext().App("sso")
	if err != nil {
		t.Fatal(err)
	}

	// SCIM clients, each on its own kept-alive connection.
	create := func(c *http.Client, name string) (int, string, error) {
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":"ext-%s","active":true}`, name, name)
		req, _ := http.NewRequest(http.MethodPost, w.scimBase+"/scim/v2/Users", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+scimTokenTest)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw), nil
	}
	var (
		mu       sync.Mutex
		failures []string
		written  atomic.Int64
		wg       sync.WaitGroup
		done     = make(chan struct{})
	)
	for k := range 3 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
			defer c.CloseIdleConnections()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				st, raw, err := create(c, fmt.Sprintf("load%d-%d@example.com", k, n))
				switch {
				case err != nil: // the servers stopped: a refused or closed connection
					time.Sleep(10 * time.Millisecond)
				case st == http.StatusCreated:
					written.Add(1)
				default:
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%d %.200s", st, raw))
					mu.Unlock()
				}
			}
		})
	}
	// Past the Manager's one-second resolution of last-seen times.
	time.Sleep(1200 * time.Millisecond)

	var (
		gap                     time.Time
		probed                  bool
		scimSt, pageSt          int
		scimRaw                 string
		stopErr, scimErr, pgErr error
	)
	first := func() {
		stopErr = app.(caddy.App).Stop()
		gap, probed = time.Now(), true
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
		scimSt, scimRaw, scimErr = create(c, "during-stop@example.com")
		resp, err := b.noRedirects().Get(w.gw.base + "/dashboard")
		if pgErr = err; err == nil {
			pageSt = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	onStopping.Store(&first)
	defer onStopping.Store(nil)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	onStopping.Store(nil)
	close(done)
	wg.Wait()

	if !probed {
		t.Fatal("the stopping event did not run the test's handler")
	}
	if stopErr != nil {
		t.Errorf("the sso app's Stop: %v", stopErr)
	}
	if scimErr != nil || scimSt != http.StatusCreated {
		t.Errorf("a SCIM write after the sso app's Stop, before the http app's: %d %v %.300s", scimSt, scimErr, scimRaw)
	}
	if pgErr != nil || pageSt != http.StatusOK {
		t.Errorf("a signed-in page after the sso app's Stop, before the http app's: %d %v", pageSt, pgErr)
	}
	t.Logf("%d SCIM writes under load, %d failed", written.Load(), len(failures))
	if len(failures) > 0 {
		t.Errorf("answers that failed during the stop: %q", failures[:min(5, len(failures))])
	}

	db, err := bolt.Open(w.gw.StorePath(), bolt.Options{ReadOnly: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("the store after the stop: %v", err)
	}
	defer db.Close()
	if err := db.View(t.Context(), func(tx store.Tx) error {
		if _, err := tx.UserByUserName("during-stop@example.com"); err != nil && scimSt == http.StatusCreated {
			t.Errorf("the user created during the stop (201) is not in the store: %v", err)
		}
		ss, err := tx.UserSessions(id)
		if err != nil || len(ss) != 1 {
			return fmt.Errorf("sessions of ada: %d %v", len(ss), err)
		}
		if seen := ss[0].LastSeen; !seen.After(signedIn) {
			t.Errorf("the session's stored last-seen time is %v, from before the page seen during the stop (%v): the final flush ran before it",
				seen.Format(time.StampMilli), gap.Format(time.StampMilli))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
