package signin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSessionNotOnOrAfterCapsLifetime: an assertion whose IdP bounds the
// session (SAML SessionNotOnOrAfter) 30 minutes ahead makes a session that
// ends then, in the cache and in the store, not after the 8 hour default
// lifetime; a bound beyond the lifetime, or none, leaves the lifetime.
func TestSessionNotOnOrAfterCapsLifetime(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		bound time.Time
		want  time.Time
	}{
		{"bound 30 minutes ahead", t0.Add(30 * time.Minute), t0.Add(30 * time.Minute)},
		{"bound beyond the lifetime", t0.Add(10 * time.Hour), t0.Add(session.DefaultLifetime)},
		{"no bound", time.Time{}, t0.Add(session.DefaultLifetime)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			now := t0
			clock := func() time.Time { return now }
			// No idle timeout: only the absolute expiry is under test.
			sessions := session.New(db, session.Config{IdleTimeout: -1}, nil, clock)
			svc := &signin.Service{Store: db, Sessions: sessions, Now: clock}
			ctx := context.Background()

			a := samlAssertion("bounded", "Lovelace", false)
			a.SessionNotOnOrAfter = tc.bound
			out, err := svc.SignIn(ctx, (&env{t: t}).idp(idp.ProtocolSAML, "okta"), a, "")
			if err != nil || out.Session == nil {
				t.Fatalf("sign-in: %+v %v", out, err)
			}
			if got := out.Session.Session.Expires; !got.Equal(tc.want) {
				t.Errorf("session expires %v, want %v", got, tc.want)
			}
			err = db.View(ctx, func(tx store.Tx) error {
				s, err := tx.Session(out.Session.Session.Hash)
				if err == nil && !s.Expires.Equal(tc.want) {
					t.Errorf("stored session expires %v, want %v", s.Expires, tc.want)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}

			now = tc.want.Add(-time.Minute)
			if id, err := sessions.Resolve(ctx, out.Session.Token); err != nil || !id.Expires.Equal(tc.want) {
				t.Fatalf("a minute before the end: %+v, %v", id, err)
			}
			now = tc.want
			if _, err := sessions.Resolve(ctx, out.Session.Token); !errors.Is(err, session.ErrNoSession) {
				t.Fatalf("at the end: %v, want ErrNoSession", err)
			}
		})
	}
}
