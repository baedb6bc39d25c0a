//go:build unix

// Unix only: the harness stops Caddy with SIGTERM, which Windows cannot send.

package stresstest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/stresstest"
)

// signedIn is a sign-in whose response carried a session cookie.
type signedIn struct {
	cookie, email, idp string
}

// scimWrite is a SCIM write the gateway acknowledged with a 2xx status:
// the user exists, and is inactive when deactivated is set.
type scimWrite struct {
	id, userName string
	deactivated  bool
}

// TestCrashConsistency drives concurrent real sign-ins (OIDC and SAML) and
// SCIM writes against a Caddy process, kills it with SIGKILL at a random
// moment, and restarts it on the same store: the store opens, every
// sign-in whose response carried a session cookie still works as the same
// user, every SCIM write acknowledged with 2xx is there, and `caddy sso
// check --store` finds every index in step with the records.
//
// STRESS_CRASH_ROUNDS (default 1) repeats the kill and restart on the same
// store, STRESS_CRASH_LOGINS (default 200) sets the sign-ins per round,
// STRESS_SEED fixes the random kill points; bench/crash.sh runs many rounds.
func TestCrashConsistency(t *testing.T) {
	t.Parallel()
	rounds := envInt(t, "STRESS_CRASH_ROUNDS", 1)
	logins := max(envInt(t, "STRESS_CRASH_LOGINS", 200), 50)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("STRESS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("STRESS_SEED: %v", err)
		}
	}
	t.Logf("STRESS_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	w := startWorld(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	transport := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: time.Minute}

	var sessions []signedIn
	var writes []scimWrite
	for round := range rounds {
		// Kill once between a tenth and nine tenths of the sign-ins have
		// answered, while the rest and the SCIM writes are in flight.
		killAt := logins/10 + rng.IntN(logins*8/10)
		s, wr, stats := crashRound(ctx, t, w, round, logins, killAt, transport)
		sessions, writes = append(sessions, s...), append(writes, wr...)
		t.Logf("round %d: killed after %d answered sign-ins; %d sign-ins had a session cookie (%d failed), %d SCIM writes acknowledged (%d failed)",
			round, killAt, len(s), stats.loginErrors, len(wr), stats.scimErrors)

		if err := w.Start(); err != nil {
			t.Fatalf("round %d: Caddy did not start again on the store: %v", round, err)
		}
		verifyAfterCrash(ctx, t, w, client, sessions, writes)
		if t.Failed() {
			return
		}
	}
	// A sign-in after the crashes works too.
	w.AddUser(stresstest.User{Username: "after", Password: "pw", Subject: "sub-after", Email: "after@example.com"})
	b := stresstest.NewBrowser(transport)
	if p, err := b.SignIn(ctx, w.Base, stresstest.OIDCName, "after", "pw", "/after"); err != nil || p.Status != http.StatusOK {
		t.Fatalf("sign-in after the crashes: %v, %d %s", err, p.Status, p.Title())
	}
	if err := w.Caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Log(checkStore(t, w))
}

type roundStats struct{ loginErrors, scimErrors int }

// crashRound runs one round of load and kills Caddy when killAt sign-ins
// have answered. It returns what the gateway acknowledged.
func crashRound(ctx context.Context, t *testing.T, w *stresstest.World, round, logins, killAt int, transport http.RoundTripper) ([]signedIn, []scimWrite, roundStats) {
	t.Helper()
	var (
		mu       sync.Mutex
		sessions []signedIn
		writes   []scimWrite
		stats    roundStats
		answered atomic.Int64
		killed   = make(chan struct{})
		wg       sync.WaitGroup
	)
	kill := sync.OnceFunc(func() {
		if err := w.Caddy.Kill(); err != nil {
			t.Errorf("kill: %v", err)
		}
		close(killed)
	})
	for i := range logins {
		u := stresstest.User{Username: fmt.Sprintf("r%du%d", round, i), Password: "pw",
			Subject: fmt.Sprintf("sub-r%d-%d", round, i), Email: fmt.Sprintf("r%du%d@example.com", round, i)}
		w.AddUser(u)
		idpName := stresstest.OIDCName
		if i%4 == 3 {
			idpName = stresstest.SAMLName
		}
		wg.Go(func() {
			b := stresstest.NewBrowser(transport)
			p, err := b.SignIn(ctx, w.Base, idpName, u.Username, u.Password, "/r")
			cookie := b.SessionCookie(w.Base)
			mu.Lock()
			if cookie != "" {
				sessions = append(sessions, signedIn{cookie: cookie, email: u.Email, idp: idpName})
			}
			if err != nil || p.Status != http.StatusOK {
				if stats.loginErrors++; stats.loginErrors <= 3 && testing.Verbose() {
					t.Logf("%s sign-in of %s: %v, %d %s", idpName, u.Username, err, p.Status, p.Title())
				}
			}
			mu.Unlock()
			if answered.Add(1) >= int64(killAt) {
				kill()
			}
		})
	}
	// SCIM clients create users and deactivate them until the kill.
	for k := range 8 {
		wg.Go(func() {
			scim := w.SCIM(&http.Client{Transport: transport})
			for n := 0; ; n++ {
				select {
				case <-killed:
					return
				default:
				}
				name := fmt.Sprintf("scim-r%d-%d-%d@example.com", round, k, n)
				u, status, err := scim.CreateUser(ctx, name, fmt.Sprintf("ext-r%d-%d-%d", round, k, n), name)
				if err != nil || status != http.StatusCreated {
					mu.Lock()
					stats.scimErrors++
					mu.Unlock()
					continue
				}
				mu.Lock()
				writes = append(writes, scimWrite{id: u.ID, userName: name})
				mu.Unlock()
				if _, err := scim.SetActive(ctx, u.ID, false); err != nil {
					mu.Lock()
					stats.scimErrors++
					mu.Unlock()
					continue
				}
				mu.Lock()
				writes = append(writes, scimWrite{id: u.ID, userName: name, deactivated: true})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	kill() // every sign-in answered before killAt was reached: never, but be sure
	return sessions, writes, stats
}

// verifyAfterCrash checks every acknowledged sign-in and SCIM write against
// the restarted Caddy.
func verifyAfterCrash(ctx context.Context, t *testing.T, w *stresstest.World, client *http.Client, sessions []signedIn, writes []scimWrite) {
	t.Helper()
	lost := 0
	for _, s := range sessions {
		e, err := stresstest.WithSession(ctx, client, w.Base+"/after-crash", s.cookie)
		if err == nil && e.Header("X-Forwarded-Email") != s.email {
			err = fmt.Errorf("served as %q", e.Header("X-Forwarded-Email"))
		}
		if err != nil {
			if lost++; lost <= 5 {
				t.Errorf("the %s session of %s, whose cookie the browser got, does not work after the crash: %v", s.idp, s.email, err)
			}
		}
	}
	scim := w.SCIM(client)
	missing := 0
	for _, wr := range writes {
		u, _, err := scim.User(ctx, wr.id)
		switch {
		case err != nil:
		case u.UserName != wr.userName:
			err = fmt.Errorf("userName %q", u.UserName)
		case wr.deactivated && u.Active:
			err = fmt.Errorf("still active after an acknowledged deactivation")
		}
		if err != nil {
			if missing++; missing <= 5 {
				t.Errorf("acknowledged SCIM write of %s (deactivate: %v) lost: %v", wr.userName, wr.deactivated, err)
			}
		}
	}
	if lost+missing > 0 {
		t.Errorf("%d of %d sessions and %d of %d acknowledged SCIM writes lost", lost, len(sessions), missing, len(writes))
	}
	if len(sessions) == 0 {
		t.Error("no sign-in got a session before the kill: the crash tested nothing")
	}
}
