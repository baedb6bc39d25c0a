package session_test

import (
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestTokensOpenUnderPreviousKeyUntilResealed: after the tokens key is
// rotated (RotateTokensKey) and before the finish reseals every blob, a
// session's tokens sealed under the previous key still open: Tokens reads
// them, and a route passes (and refreshes) its access token, the renewed
// tokens sealed under the new key.
func TestTokensOpenUnderPreviousKeyUntilResealed(t *testing.T) {
	w := newTokenWorld(t, nil)
	rotateTokensKey(t, w.db)
	m := session.New(w.db, session.Config{}, nil, w.clk.now) // nothing cached
	tok, err := m.Tokens(w.ctx, w.hash)
	if err != nil || tok == nil || tok.AccessToken != "at-1" || tok.RefreshToken != "rt-1" {
		t.Fatalf("tokens sealed under the previous key: %+v, %v; want at-1/rt-1", tok, err)
	}
	if at, err := w.access(t, m, 10*time.Second); at != "at-1" || err != nil {
		t.Errorf("passed %q, %v; want at-1", at, err)
	}
	w.clk.advance(55 * time.Second)
	if at, err := w.access(t, m, 10*time.Second); at != "at-2" || err != nil {
		t.Errorf("refreshed: %q, %v; want at-2", at, err)
	}
	if got := w.stored(t); got.RefreshToken != "rt-2" {
		t.Errorf("stored %q after the refresh, want rt-2", got.RefreshToken)
	}
}

// TestTokensRefreshTokenAlone: tokens holding a refresh token and nothing
// else are still tokens: PutTokens stores them and Tokens gives them back
// (only a Tokens without any token deletes the blob).
func TestTokensRefreshTokenAlone(t *testing.T) {
	w := newTokenWorld(t, nil)
	if err := w.m.PutTokens(w.ctx, w.hash, &session.Tokens{RefreshToken: "rt-9"}); err != nil {
		t.Fatal(err)
	}
	if got := w.stored(t); got == nil || got.RefreshToken != "rt-9" {
		t.Errorf("stored %+v, want the refresh token rt-9", got)
	}
}
