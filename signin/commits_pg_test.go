package signin_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestOneWriteTransactionPerSignInOnPostgres: on PostgreSQL too a sign-in
// is one durable commit, also when it tells the other instances to forget
// something (the user's changed groups, a session over the cap, the
// browser's previous session): the invalidation goes out with the commit,
// not as write transactions of its own after it (docs/architecture.md, "A
// sign-in's path"). The server counts: each write transaction takes a
// transaction ID.
func TestOneWriteTransactionPerSignInOnPostgres(t *testing.T) {
	ctx := context.Background()
	db, stats := openWithStats(t)
	xid := func() int64 { // takes one itself
		var n int64
		if err := stats.QueryRow(ctx, "SELECT txid_current()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	sessions := session.New(db, session.Config{MaxPerUser: 2}, nil, nil)
	svc := &signin.Service{Store: db, Sessions: sessions}
	e := &env{t: t}
	p := e.idp(idp.ProtocolOIDC, "generic")
	var last *signin.Outcome
	for _, step := range []struct {
		name, state string
		groups      []string
		previous    bool
	}{
		{"new user", "1", []string{"eng"}, false},
		{"groups changed", "2", []string{"ops"}, false},
		{"over the cap", "3", []string{"ops"}, false},
		{"previous session ended", "4", []string{"ops"}, true},
	} {
		a := oidcAssertion(step.state, "Lovelace", false)
		a.Attributes["groups"] = step.groups
		previous := ""
		if step.previous {
			previous = session.Hash(last.Session.Token)
		}
		before := xid()
		out, err := svc.SignIn(ctx, p, a, previous)
		if err != nil || out.Session == nil {
			t.Fatalf("%s: %+v %v", step.name, out, err)
		}
		if n := xid() - before - 1; n != 1 {
			t.Errorf("%s: %d write transactions, want 1", step.name, n)
		}
		last = out
	}
}

// TestReplayTakesNoTransactionIDOnPostgres: on PostgreSQL too a replayed
// assertion writes nothing: its transaction rolls back, and the single-use
// ID found live is not even locked (a row lock takes a transaction ID and
// writes WAL), so a replay costs reads alone. For SP-initiated (bound) and
// IdP-initiated (unbound) sign-ins, SAML and OIDC.
func TestReplayTakesNoTransactionIDOnPostgres(t *testing.T) {
	ctx := context.Background()
	db, stats := openWithStats(t)
	// The next transaction ID the server would assign: reading it takes
	// none.
	next := func() int64 {
		var n int64
		if err := stats.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	svc := &signin.Service{Store: db, Sessions: session.New(db, session.Config{}, nil, nil)}
	e := &env{t: t}
	oidc := oidcAssertion("pg-state", "Lovelace", false)
	oidc.Attributes["email"] = []string{"ada.oidc@example.com"} // another user than the SAML IdP's
	for _, tc := range []struct {
		name    string
		a       *idp.Assertion
		preset  string
		unbound bool
	}{
		{"saml", samlAssertion("pg-once", "Lovelace", false), "okta", false},
		{"saml unbound", samlAssertion("pg-unsolicited", "Lovelace", false), "okta", true},
		{"oidc", oidc, "generic", false},
	} {
		p := e.idp(tc.a.Protocol, tc.preset)
		tc.a.Unbound = tc.unbound
		if out, err := svc.SignIn(ctx, p, tc.a, ""); err != nil || out.Session == nil {
			t.Fatalf("%s: first: %+v %v", tc.name, out, err)
		}
		before := next()
		const n = 50
		for range n {
			if out, err := svc.SignIn(ctx, p, tc.a, ""); err != nil || out.Replay == nil {
				t.Fatalf("%s: replay: %+v %v", tc.name, out, err)
			}
		}
		if got := next() - before; got != 0 {
			t.Errorf("%s: %d replays took %d transaction IDs; want none (a replay writes nothing)", tc.name, n, got)
		}
	}
}

// openWithStats opens a PostgreSQL store on a new database, and a second
// connection to it of the test's own, from which to read the server's
// transaction counters: they count what the store's connections write.
func openWithStats(t *testing.T) (*postgres.DB, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	db, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	stats, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stats.Close(ctx) })
	return db, stats
}
