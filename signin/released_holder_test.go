package signin_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// instance is one gateway instance: its store handle, session cache and
// sign-in service, as caddymodule wires them.
type instance struct {
	db       store.Store
	sessions *session.Manager
	svc      *signin.Service
}

// startInstance runs a session manager over db (with a store.Broadcaster,
// its listener) until the test ends, and returns once it listens.
func startInstance(t *testing.T, db store.Store) *instance {
	t.Helper()
	sessions := session.New(db, session.Config{}, nil, nil)
	listening := make(chan struct{}, 1)
	sessions.Forgotten = func(inv store.Invalidation) {
		if inv.All { // the listener subscribed (and forgot what it missed)
			select {
			case listening <- struct{}{}:
			default:
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sessions.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, ok := db.(store.Broadcaster); ok {
		select {
		case <-listening:
		case <-time.After(10 * time.Second):
			t.Fatal("the invalidation listener did not subscribe")
		}
	}
	return &instance{db: db, sessions: sessions, svc: &signin.Service{Store: db, Sessions: sessions}}
}

// instancePairs opens two instances on one store: on bolt, which one
// process owns, the same instance twice; on PostgreSQL two, each with its
// own connection pool and listener.
func instancePairs() []struct {
	name string
	open func(t *testing.T) (a, b *instance)
} {
	return []struct {
		name string
		open func(t *testing.T) (a, b *instance)
	}{
		{"bolt", func(t *testing.T) (a, b *instance) {
			db := backendtest.OpenBolt(t)
			a = startInstance(t, db)
			return a, a
		}},
		{"postgres", func(t *testing.T) (a, b *instance) {
			dsn := pgtest.NewDatabase(t)
			open := func() store.Store {
				db, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close() })
				return db
			}
			return startInstance(t, open()), startInstance(t, open())
		}},
	}
}

// TestReleasedHolderForgotten: the IdP re-issues ada@example.com to a new
// person, whose first sign-in (at instance B) takes the address from its
// holder (email_released). The holder's session, cached at both instances,
// must stop presenting the address at once at B and within a broadcast at
// A: else two sessions send one X-Forwarded-Email, and an `allow user
// ada@example.com` route (and a stream it admitted) keeps admitting the
// holder for up to the cache TTL.
func TestReleasedHolderForgotten(t *testing.T) {
	m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &signin.IdP{Name: "oidc-idp", Mapper: m, Rules: provision.Rules{JIT: true}}
	assertion := func(sub string) *idp.Assertion {
		a := oidcAssertion(sub, "Lovelace", false)
		a.Subject = sub
		a.Attributes["sub"] = []string{sub}
		return a
	}
	const email = "ada@example.com"
	for _, pair := range instancePairs() {
		t.Run(pair.name, func(t *testing.T) {
			a, b := pair.open(t)
			ctx := context.Background()
			holder, err := a.svc.SignIn(ctx, p, assertion("sub-leaver"), "")
			if err != nil || holder.Session == nil {
				t.Fatalf("holder: %+v %v", holder, err)
			}
			for _, in := range []*instance{a, b} {
				if id, err := in.sessions.Resolve(ctx, holder.Session.Token); err != nil || id.Email != email {
					t.Fatalf("holder's session: %+v %v", id, err)
				}
			}
			newcomer, err := b.svc.SignIn(ctx, p, assertion("sub-newcomer"), "")
			if err != nil || newcomer.Session == nil || newcomer.Result.ReleasedFrom != holder.User.ID {
				t.Fatalf("newcomer: %+v %v", newcomer, err)
			}
			presents := func(in *instance) bool {
				id, err := in.sessions.Resolve(ctx, holder.Session.Token)
				if err != nil {
					t.Fatal(err)
				}
				return id.Email == email
			}
			if presents(b) {
				t.Errorf("at the instance of the sign-in, the holder's session still presents %s, now user %s's", email, newcomer.User.ID)
			}
			deadline := time.Now().Add(3 * time.Second)
			for presents(a) {
				if time.Now().After(deadline) {
					t.Fatalf("at the other instance, the holder's session still presents %s after 3 s, now user %s's", email, newcomer.User.ID)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
