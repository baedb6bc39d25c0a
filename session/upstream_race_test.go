package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// tokenEndpoint is an OAuth 2.0 token endpoint over HTTP with strict
// refresh-token rotation (Okta, Auth0, PingOne, Keycloak): a refresh
// retires the refresh token it was given the moment it is answered, and a
// retired (or revoked) one gets invalid_grant. Its refresh is a
// session.RefreshFunc talking to it as idp/oidc's Provider.Refresh does
// (golang.org/x/oauth2, invalid_grant wrapping idp.ErrGrantRevoked).
type tokenEndpoint struct {
	srv *httptest.Server
	clk *clock

	mu      sync.Mutex
	current string // the refresh token it accepts; "": the grant is revoked
	n       int
	used    []string
	// answer, when set, runs once a refresh has rotated the grant to rt-n,
	// before the answer is written: an answer on the wire.
	answer func(n int)
	// refused, when set, runs after an invalid_grant answer was written.
	refused func()
}

func newTokenEndpoint(t *testing.T, clk *clock) *tokenEndpoint {
	t.Helper()
	e := &tokenEndpoint{clk: clk, current: "rt-1", n: 1}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	rt := r.PostForm.Get("refresh_token")
	e.mu.Lock()
	e.used = append(e.used, rt)
	if e.current == "" || rt != e.current {
		refused := e.refused
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "refresh token rotated out or revoked"})
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if refused != nil {
			refused()
		}
		return
	}
	e.n++
	n := e.n
	e.current = fmt.Sprintf("rt-%d", n)
	answer := e.answer
	e.mu.Unlock()
	if answer != nil {
		answer(n)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", n), "token_type": "Bearer",
		"expires_in": 60, "refresh_token": fmt.Sprintf("rt-%d", n)})
}

func (e *tokenEndpoint) refresh(ctx context.Context, t *session.Tokens) (*session.Tokens, error) {
	cfg := oauth2.Config{ClientID: "gw", ClientSecret: "secret",
		Endpoint: oauth2.Endpoint{TokenURL: e.srv.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: idp.DefaultHTTPTimeout})
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: t.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, fmt.Errorf("refresh refused (invalid_grant %q): %w", re.ErrorDescription, idp.ErrGrantRevoked)
		}
		return nil, err
	}
	// The session's clock is a fake one: the expiry is on it.
	return &session.Tokens{IDToken: t.IDToken, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		Expiry: e.clk.now().Add(time.Minute)}, nil
}

func (e *tokenEndpoint) usedTokens() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.used)
}

func (e *tokenEndpoint) revoke() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.current = ""
}

func revokedReasons(t *testing.T, db store.Store) []string {
	t.Helper()
	var reasons []string
	err := db.View(context.Background(), func(tx store.Tx) error {
		events, err := tx.AuditEvents(store.AuditQuery{Type: store.EventSessionRevoked})
		for _, e := range events {
			reasons = append(reasons, e.Reason)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return reasons
}

// TestUpstreamTokensConcurrentRefreshOnTwoInstancesKeepsSession: two
// instances share the store (two Managers over one store) and an IdP with
// strict rotation. Both find the access token expired at the same moment
// (the parallel requests of one page, spread by the balancer; with a token
// still valid B would pass it meanwhile instead of waiting:
// TestUpstreamTokensClaimLostValidTokenPassed). A claims the
// refresh, and the IdP rotates rt-1 to rt-2; while A's answer is still on
// the wire (A has stored nothing), B finds the refresh claimed: it does
// not present rt-1 again (which an IdP with reuse detection would answer
// by revoking the grant), but waits for A's tokens, takes them when they
// land, and the session lives on, with no session.revoked in the audit
// trail.
func TestUpstreamTokensConcurrentRefreshOnTwoInstancesKeepsSession(t *testing.T) {
	w := newTokenWorld(t, nil)
	ep := newTokenEndpoint(t, w.clk)
	const margin = 10 * time.Second
	w.clk.advance(61 * time.Second) // at-1 has expired on both
	a, b, idA, idB := w.resolvedOnTwo(t, newHub())
	rotated, release := make(chan struct{}), make(chan struct{})
	ep.answer = func(n int) {
		if n == 2 {
			close(rotated)
			<-release
		}
	}

	type result struct {
		at  string
		err error
		in  time.Duration
	}
	get := func(m *session.Manager, id *session.Identity, out chan<- result) {
		start := time.Now()
		u, err := m.UpstreamTokens(w.ctx, id, margin, ep.refresh)
		r := result{err: err, in: time.Since(start)}
		if err == nil {
			r.at = u.Access[0]
		}
		out <- r
	}
	resA, resB := make(chan result, 1), make(chan result, 1)
	go get(a, idA, resA)
	<-rotated // the IdP has rotated to rt-2; A's answer is on the wire
	go get(b, idB, resB)
	// B has had time to find the refresh claimed and to re-read the
	// store (rt-1 still); A's answer is still on the wire.
	time.Sleep(200 * time.Millisecond)
	close(release)
	ra, rb := <-resA, <-resB

	t.Logf("A: %q %v; B: %q %v in %v; IdP asked with %v", ra.at, ra.err, rb.at, rb.err, rb.in, ep.usedTokens())
	if ra.err != nil || ra.at != "at-2" {
		t.Errorf("instance A: %q, %v, want its refreshed at-2", ra.at, ra.err)
	}
	if rb.err != nil || rb.at != "at-2" {
		t.Errorf("instance B: %q, %v, want A's at-2 (its own refresh lost the race, the grant is alive)", rb.at, rb.err)
	}
	if rb.in >= session.DefaultRefreshRaceWindow {
		t.Errorf("instance B took %v, the whole window (%v): A's tokens were not seen when they landed", rb.in, session.DefaultRefreshRaceWindow)
	}
	for name, m := range map[string]*session.Manager{"A": a, "B": b} {
		if _, err := m.Resolve(w.ctx, w.token); err != nil {
			t.Errorf("the session on instance %s after the race: %v, want it alive", name, err)
		}
	}
	if s := w.stored(t); s.AccessToken != "at-2" || s.RefreshToken != "rt-2" {
		t.Errorf("stored %q/%q, want A's at-2/rt-2", s.AccessToken, s.RefreshToken)
	}
	if got := revokedReasons(t, w.db); len(got) != 0 {
		t.Errorf("audit session.revoked %v: a revocation that never happened", got)
	}
	if used := ep.usedTokens(); !slices.Equal(used, []string{"rt-1"}) {
		t.Errorf("IdP asked with %v, want [rt-1]: one refresh, B waiting for A's", used)
	}
	// B goes on with rt-2: its next refresh is accepted.
	w.clk.advance(55 * time.Second)
	if u, err := b.UpstreamTokens(w.ctx, idB, margin, ep.refresh); err != nil || u.Access[0] != "at-3" {
		t.Errorf("B's next refresh: %v, %v, want at-3", u, err)
	}
}

// TestUpstreamTokensRevokedGrantWaitsOutTheWindow: a grant revoked for
// good still ends the session, audited grant_revoked, once the stored
// tokens have stayed the same for the window, and no later; meanwhile the
// session's other requests on this instance are passed the still valid
// access token at once instead of waiting for the verdict.
func TestUpstreamTokensRevokedGrantWaitsOutTheWindow(t *testing.T) {
	const window = 800 * time.Millisecond
	w := newTokenWorld(t, nil)
	m := w.instance(1, newHub(), window)
	ep := newTokenEndpoint(t, w.clk)
	ep.revoke()
	refused := make(chan struct{})
	var once sync.Once
	ep.refused = func() { once.Do(func() { close(refused) }) }
	const margin = 10 * time.Second
	w.clk.advance(55 * time.Second)
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := m.UpstreamTokens(w.ctx, id, margin, ep.refresh)
		done <- err
	}()
	<-refused
	time.Sleep(100 * time.Millisecond) // the flight is waiting now
	other := time.Now()
	if u, err := m.UpstreamTokens(w.ctx, id, margin, ep.refresh); err != nil || u.Access[0] != "at-1" {
		t.Errorf("another request while the refresh waits: %v, %v, want the still valid at-1", u, err)
	}
	if d := time.Since(other); d > window/2 {
		t.Errorf("another request while the refresh waits took %v: it waited for the flight", d)
	}

	err = <-done
	took := time.Since(start)
	if !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("revoked grant: %v, want ErrNoSession", err)
	}
	if took < window || took > window+time.Second {
		t.Errorf("revoked grant ended the session after %v, want the window (%v) and little more", took, window)
	}
	if _, err := m.Resolve(w.ctx, w.token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("the session still resolves: %v", err)
	}
	if _, err := m.UpstreamTokens(w.ctx, id, margin, ep.refresh); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("a request still holding the ended session's identity: %v, want ErrNoSession", err)
	}
	if got := revokedReasons(t, w.db); !slices.Equal(got, []string{session.ReasonGrantRevoked}) {
		t.Errorf("audit session.revoked reasons = %v, want [%s]", got, session.ReasonGrantRevoked)
	}
	if used := ep.usedTokens(); !slices.Equal(used, []string{"rt-1"}) {
		t.Errorf("IdP asked with %v, want [rt-1] (one refresh)", used)
	}
}

// TestUpstreamTokensRevokedGrantWaitEndsWithRequest: the request that
// waits for another instance's refresh gives up (its client went away):
// the wait ends at once, and the session is not ended on a guess; a later
// request asks again and reaches the verdict.
func TestUpstreamTokensRevokedGrantWaitEndsWithRequest(t *testing.T) {
	w := newTokenWorld(t, nil)
	h := newHub()
	const window = time.Second // cut short well before its end
	m := w.instance(1, h, window)
	ep := newTokenEndpoint(t, w.clk)
	ep.revoke()
	refused := make(chan struct{}, 2)
	ep.refused = func() { refused <- struct{}{} }
	const margin = 10 * time.Second
	w.clk.advance(55 * time.Second)
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := m.UpstreamTokens(ctx, id, margin, ep.refresh)
		done <- err
	}()
	<-refused
	time.Sleep(100 * time.Millisecond)
	cancelled := time.Now()
	cancel()
	err = <-done
	if d := time.Since(cancelled); d > 500*time.Millisecond {
		t.Errorf("the wait went on %v after the request ended", d)
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, session.ErrNoSession) || errors.Is(err, idp.ErrGrantRevoked) {
		t.Errorf("request ended while waiting: %v, want context.Canceled (and no verdict)", err)
	}
	if _, err := m.Resolve(w.ctx, w.token); err != nil {
		t.Errorf("the session after a wait cut short: %v, want it alive", err)
	}
	if got := revokedReasons(t, w.db); len(got) != 0 {
		t.Errorf("audit session.revoked %v after a wait cut short", got)
	}

	// The access token expires; the next request (at an instance with a
	// shorter window) refreshes again, once the first instance's claim on
	// the refresh has lapsed, and waits the window out.
	time.Sleep(time.Until(start.Add(window)))
	w.clk.advance(6 * time.Second)
	m2 := w.instance(2, h, 200*time.Millisecond)
	id2, err := m2.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.UpstreamTokens(w.ctx, id2, margin, ep.refresh); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("the next request: %v, want ErrNoSession", err)
	}
	if got := revokedReasons(t, w.db); !slices.Equal(got, []string{session.ReasonGrantRevoked}) {
		t.Errorf("audit session.revoked reasons = %v, want [%s]", got, session.ReasonGrantRevoked)
	}
}

// instance is another instance over w's store, shared as a PostgreSQL store
// is (a store.Broadcaster on hub h): a refresh it sees refused as revoked
// waits window (0: the default) for another instance's to land.
func (w *tokenWorld) instance(self int, h *hub, window time.Duration) *session.Manager {
	return session.New(&broadcastStore{Store: w.db, hub: h, self: self}, session.Config{RefreshRaceWindow: window}, nil, w.clk.now)
}

// resolvedOnTwo starts two instances sharing w's store over h and
// resolves w's session on each.
func (w *tokenWorld) resolvedOnTwo(t *testing.T, h *hub) (a, b *session.Manager, idA, idB *session.Identity) {
	t.Helper()
	a, b = w.instance(1, h, 0), w.instance(2, h, 0)
	return a, b, w.resolve(t, a), w.resolve(t, b)
}

// resolve resolves w's session on instance m.
func (w *tokenWorld) resolve(t *testing.T, m *session.Manager) *session.Identity {
	t.Helper()
	id, err := m.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newHub() *hub { return &hub{listeners: map[int]func(store.Invalidation){}} }
