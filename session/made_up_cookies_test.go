package session_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestMadeUpCookiesReadNothing: anyone can send up to four made-up session
// cookies on every request (docs/security.md, "Unauthenticated traffic").
// One that cannot be a token the Manager drew (43 base64url characters)
// costs no store read and no forget under the cache's lock, however many
// requests carry it; one of that shape that names no session still costs
// one read and one forget (what a guess at a real token costs); and the
// Manager's own tokens resolve as before.
func TestMadeUpCookiesReadNothing(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	c := &txCounter{Store: db}
	m := session.New(c, session.Config{}, nil, nil)
	var forgets atomic.Int64
	m.Forgotten = func(store.Invalidation) { forgets.Add(1) }
	user := addUser(t, db, activeUser())
	token, _, err := m.Create(ctx, user, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	other := session.New(c, session.Config{}, nil, nil) // has not cached it
	c.views.Store(0)
	madeUp := []string{
		"x", "not-a-token", rand.Text(), rand.Text() + rand.Text(),
		token[:42], token + "A", // one short, one long
		token[:42] + "=", token[:42] + ".", token[:41] + "+/", // padding, other alphabets
		" " + token[1:], token[:21] + "\x00" + token[22:], token[:41] + "é", // 43 bytes, outside the alphabet
	}
	const requests = 100
	for range requests {
		for _, tok := range madeUp {
			if _, err := m.Resolve(ctx, tok); !errors.Is(err, session.ErrNoSession) {
				t.Fatalf("Resolve(%q) = %v, want ErrNoSession", tok, err)
			}
		}
	}
	if v, f := c.views.Load(), forgets.Load(); v != 0 || f != 0 {
		t.Errorf("%d requests with %d made-up cookies: %d store reads and %d forgets; want none",
			requests, len(madeUp), v, f)
	}

	var raw [32]byte
	_, _ = rand.Read(raw[:])
	unknown := base64.RawURLEncoding.EncodeToString(raw[:])
	if _, err := m.Resolve(ctx, unknown); !errors.Is(err, session.ErrNoSession) {
		t.Fatalf("Resolve of a token naming no session = %v", err)
	}
	if v, f := c.views.Load(), forgets.Load(); v != 1 || f != 1 {
		t.Errorf("a well-formed token naming no session: %d reads and %d forgets, want 1 and 1", v, f)
	}

	// The Manager's own tokens resolve as before: one it drew, and one
	// stored by other means (as the bench fixtures store theirs) made of
	// the alphabet's edge characters.
	edge := strings.Repeat("-_", 10) + "AZaz09" + strings.Repeat("Zz9", 5) + "Aa"
	now := time.Now()
	err = db.Update(ctx, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: session.Hash(edge), UserID: user.ID, IdP: "okta",
			Created: now, Expires: now.Add(time.Hour), LastSeen: now})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{token, edge} {
		for _, mm := range []*session.Manager{m, other} {
			if id, err := mm.Resolve(ctx, tok); err != nil || id.IdP != "okta" {
				t.Errorf("Resolve(%q) = %+v, %v; want its session", tok, id, err)
			}
		}
	}
}
