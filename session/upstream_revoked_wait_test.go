package session_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
)

// TestUpstreamTokensClaimThenRevokedWait pins the longest wait
// docs/cluster.md and docs/operations.md give for a request whose grant
// was revoked: the window (waiting out another instance's claim), the
// IdP's answer (up to its timeout), then the window again (watching the
// store for another instance's tokens before ending the session): 34 s
// with the defaults. Instance A claims the refresh and stops; B's request
// goes through all three. Scaled down to a 300 ms window and an IdP that
// takes 400 ms to answer invalid_grant; a wait added or taken away fails it.
func TestUpstreamTokensClaimThenRevokedWait(t *testing.T) {
	if got := 2*session.DefaultRefreshRaceWindow + idp.DefaultHTTPTimeout; got != 34*time.Second {
		t.Errorf("window + IdP timeout + window = %v with the defaults; the docs say 34 s", got)
	}
	const window, idpTook = 300 * time.Millisecond, 400 * time.Millisecond
	const slack = 250 * time.Millisecond // store reads and polls, under -race
	w := newTokenWorld(t, nil)
	h := newHub()
	a, b := w.instance(1, h, window), w.instance(2, h, window)
	const margin = 10 * time.Second
	w.clk.advance(61 * time.Second) // the access token has expired
	claimAndStop(t, w, a, margin)   // A holds the claim and will store nothing
	revoked := func(context.Context, *session.Tokens) (*session.Tokens, error) {
		time.Sleep(idpTook)
		return nil, fmt.Errorf("invalid_grant: %w", idp.ErrGrantRevoked)
	}
	idB, err := b.Resolve(w.ctx, w.token)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = b.UpstreamTokens(w.ctx, idB, margin, revoked)
	took := time.Since(start)
	t.Logf("B's session ended after %v", took.Round(time.Millisecond))
	if !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("B: %v, want ErrNoSession (grant revoked)", err)
	}
	if bound := 2*window + idpTook; took < bound || took > bound+slack {
		t.Errorf("B's session ended after %v, want window + IdP answer + window = %v (up to %v more)", took.Round(time.Millisecond), bound, slack)
	}
}
