package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

func TestSchemaVersionMatchesMigrations(t *testing.T) {
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != SchemaVersion {
		t.Errorf("SchemaVersion = %d, but there are %d migrations", SchemaVersion, len(all))
	}
}

func TestOpenCreatesSchemaOnceAndReopens(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	db := openDSN(t, dsn)
	u := &store.User{Email: "a@x.io", Links: []store.Link{{IdP: "okta", Subject: "a"}}}
	putUser(t, db, u)
	db.Close()
	db = openDSN(t, dsn)
	view(t, db, func(tx store.Tx) error {
		got, err := tx.UserByLink("okta", "a")
		if err != nil || got.ID != u.ID {
			t.Errorf("after reopen: %v, %v", got, err)
		}
		return nil
	})
}

// Instances starting together must not both create the schema: the loser
// of the advisory lock finds it current.
func TestMigrationsRacing(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	dbs := make([]*DB, n)
	for i := range n {
		wg.Go(func() {
			dbs[i], errs[i] = Open(context.Background(), Config{DSN: dsn})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		defer dbs[i].Close()
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var rows, version int
	if err := conn.QueryRow(t.Context(), "SELECT count(*), max(version) FROM sso_schema").Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != SchemaVersion {
		t.Errorf("sso_schema has %d rows, version %d; want 1 row, version %d", rows, version, SchemaVersion)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	db := openDSN(t, dsn)
	if _, err := db.pool.Exec(t.Context(), "UPDATE sso_schema SET version = $1", SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(context.Background(), Config{DSN: dsn})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open on a newer schema: %v, want ErrNewerSchema", err)
	}
	for _, want := range []string{fmt.Sprintf("schema version %d", SchemaVersion+1), fmt.Sprintf("supports up to %d", SchemaVersion), "upgrade caddy-sso"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// The DSN (and its password) must appear in no error, whatever fails:
// parsing, connecting, authenticating.
func TestDSNAbsentFromErrors(t *testing.T) {
	admin := pgtest.AdminDSN(t)
	const password = "s3cret-Pa55word"
	conn, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	// A role with a password, on a server that asks for it over TCP.
	role := fmt.Sprintf("sso_pw_%d", time.Now().UnixNano())
	if _, err := conn.Exec(t.Context(), fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	// Over TCP, where the throwaway cluster checks passwords.
	var port string
	if err := conn.QueryRow(t.Context(), "SELECT current_setting('port')").Scan(&port); err != nil {
		t.Fatal(err)
	}
	tcp := func(pw, db string) string {
		return (&url.URL{Scheme: "postgres", User: url.UserPassword(role, pw), Host: "127.0.0.1:" + port, Path: "/" + db,
			RawQuery: "sslmode=disable"}).String()
	}
	tests := []struct{ name, dsn string }{
		{"unparseable URL", "postgres://" + role + ":" + password + "@127.0.0.1:notaport/db"},
		{"unparseable key=value", "host=127.0.0.1 password=" + password + " port=notaport"},
		{"quoted key=value", "host=127.0.0.1 password='" + password + "' sslmode=bogus"},
		{"nothing listens", "postgres://" + role + ":" + password + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"},
		{"unknown database", tcp(password, "no_such_db")},
		{"wrong password", tcp(password+"-wrong", "postgres")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			db, err := Open(ctx, Config{DSN: tt.dsn})
			if err == nil {
				db.Close()
				t.Skipf("Open succeeded: this server does not check passwords over TCP")
			}
			for _, form := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err.Error())} {
				if strings.Contains(form, password) || strings.Contains(form, tt.dsn) {
					t.Errorf("error carries the secret: %s", form)
				}
			}
			t.Logf("error: %v", err)
		})
	}
}

// Two instances consuming one assertion ID at once: exactly one accepts.
func TestConsumeRaceAcrossInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	until := time.Now().Add(time.Hour)
	for round := range 20 {
		id := fmt.Sprint("assertion-", round)
		fresh := make([]bool, 8)
		errs := updateOnTwo(a, b, len(fresh), func(i int, tx store.Tx) error {
			var err error
			fresh[i], err = tx.Consume("saml", id, until)
			return err
		})
		reportErrors(t, errs)
		if n := count(fresh); n != 1 {
			t.Fatalf("round %d: %d instances accepted one assertion ID", round, n)
		}
	}
}

// Two instances creating users with one email or one link at once: one
// wins, the other gets the …Taken error having written nothing.
func TestPutUserRaceAcrossInstances(t *testing.T) {
	tests := []struct {
		name string
		user func(i int) *store.User
		want error
	}{
		{"same email", func(i int) *store.User {
			return &store.User{Email: "Same@Example.com", Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint("s", i)}}}
		}, store.ErrEmailTaken},
		{"same link", func(i int) *store.User {
			return &store.User{Email: fmt.Sprintf("u%d@x.io", i), Links: []store.Link{{IdP: "okta", Subject: "same"}}}
		}, store.ErrLinkTaken},
		{"same user name", func(i int) *store.User {
			return &store.User{UserName: "SAME", Links: []store.Link{{IdP: "okta", Subject: fmt.Sprint("s", i)}}}
		}, store.ErrUserNameTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			a, b := openDSN(t, dsn), openDSN(t, dsn)
			results := updateOnTwo(a, b, 10, func(i int, tx store.Tx) error {
				if err := tx.PutUser(tt.user(i)); err != nil {
					return err
				}
				return tx.Audit(store.Event{Type: store.EventUserCreated})
			})
			won := 0
			for i, err := range results {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, tt.want):
					t.Errorf("%d: %v, want %v", i, err, tt.want)
				}
			}
			if won != 1 {
				t.Errorf("%d writers won, want 1", won)
			}
			t.Logf("%d transactions reran after conflicts", reruns(a, b))
			view(t, a, func(tx store.Tx) error {
				c, err := tx.Counts()
				if err != nil {
					return err
				}
				if c.Users != 1 || c.AuditEvents != 1 {
					t.Errorf("counts after the race: %+v, want 1 user and 1 event", c)
				}
				return nil
			})
			checkConsistent(t, a)
		})
	}
}

// A JIT-like read-then-create, as provision does it: of many concurrent
// first sign-ins of one subject across two instances, one creates the
// user and the others find it.
func TestFirstSignInRaceCreatesOneUser(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	const n = 20
	ids := make([]string, n)
	reportErrors(t, updateOnTwo(a, b, n, func(i int, tx store.Tx) error {
		u, err := tx.UserByLink("okta", "new-subject")
		if errors.Is(err, store.ErrNotFound) {
			u = &store.User{Email: "new@x.io", Active: true, Links: []store.Link{{IdP: "okta", Subject: "new-subject"}}}
			if err := tx.PutUser(u); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		ids[i] = u.ID
		return tx.PutSession(&store.Session{Hash: fmt.Sprint("h", i), UserID: u.ID, Expires: time.Now().Add(time.Hour)})
	}))
	t.Logf("%d transactions reran after conflicts", reruns(a, b))
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("sign-ins ended with different users: %q", ids)
		}
	}
	view(t, a, func(tx store.Tx) error {
		c, err := tx.Counts()
		if c.Users != 1 || c.Sessions != n {
			t.Errorf("counts %+v (%v), want 1 user, %d sessions", c, err, n)
		}
		return err
	})
}

// The first writer's secret wins in every instance.
func TestLoadOrStoreSecretFirstWriterWins(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	const n = 10
	got := make([][]byte, n)
	reportErrors(t, updateOnTwo(a, b, n, func(i int, tx store.Tx) error {
		v, err := tx.LoadOrStoreSecret("saml-sp-key", []byte(fmt.Sprint("key-of-writer-", i)))
		got[i] = v
		return err
	}))
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("writers saw different secrets: %q", got)
		}
	}
	for _, db := range []*DB{a, b} {
		view(t, db, func(tx store.Tx) error {
			v, err := tx.LoadOrStoreSecret("saml-sp-key", nil)
			if err != nil || !bytes.Equal(v, got[0]) {
				t.Errorf("stored secret %q (%v), want %q", v, err, got[0])
			}
			return nil
		})
	}
}

// updateOnTwo runs n Updates at once, the even ones on a and the odd ones
// on b (two instances of one database), fn(i, tx) being the i-th's, and
// returns their errors once all have returned.
func updateOnTwo(a, b *DB, n int, fn func(i int, tx store.Tx) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Go(func() {
			errs[i] = db.Update(context.Background(), func(tx store.Tx) error { return fn(i, tx) })
		})
	}
	wg.Wait()
	return errs
}

// reportErrors fails t, going on, with each error of errs.
func reportErrors(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// count is how many of bs are true.
func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// checkConsistent recomputes the key columns from the records and compares
// them with what is stored: the invariant every write must keep.
func checkConsistent(t testing.TB, db *DB) {
	t.Helper()
	view(t, db, func(stx store.Tx) error {
		return stx.ForEachUser("", func(u *store.User) error {
			tx := stx.(*tx)
			var email, name, ext *string
			var idp string
			if err := tx.row("SELECT idp, email_key, user_name_key, external_id FROM sso_users WHERE id = $1", []any{u.ID},
				&idp, &email, &name, &ext); err != nil {
				return err
			}
			eq := func(what string, got *string, want string) {
				if (got == nil) != (want == "") || got != nil && *got != want {
					t.Errorf("user %s: %s column %v, want %q", u.ID, what, got, want)
				}
			}
			eq("email_key", email, store.FoldName(u.Email))
			eq("user_name_key", name, store.FoldName(u.UserName))
			eq("external_id", ext, u.ExternalID)
			if idp != u.IdP {
				t.Errorf("user %s: idp column %q, want %q", u.ID, idp, u.IdP)
			}
			var links int
			if err := tx.row("SELECT count(*) FROM sso_links WHERE user_id = $1", []any{u.ID}, &links); err != nil {
				return err
			}
			if links != len(u.Links) {
				t.Errorf("user %s: %d link rows, want %d", u.ID, links, len(u.Links))
			}
			return nil
		})
	})
}

// reruns reports the reruns of the handles, so a race test can show it
// raced.
func reruns(dbs ...*DB) uint64 {
	var n uint64
	for _, db := range dbs {
		n += db.Reruns()
	}
	return n
}

// A panicking fn leaves no transaction open: the pool stays usable.
func TestPanicInUpdateRollsBack(t *testing.T) {
	db, err := Open(context.Background(), Config{DSN: pgtest.NewDatabase(t), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	func() {
		defer func() { _ = recover() }()
		_ = db.Update(t.Context(), func(tx store.Tx) error {
			if err := tx.PutUser(&store.User{Email: "p@x.io"}); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = db.View(ctx, func(tx store.Tx) error {
		_, err := tx.UserByEmail("p@x.io")
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the panicking Update's user: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the only connection was not given back: %v", err)
	}
}

// Read-modify-write of one user from two instances at once loses nothing:
// the read locks the row until the writer commits.
func TestNoLostUpdatesAcrossInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	u := &store.User{Email: "shared@x.io", Links: []store.Link{{IdP: "okta", Subject: "shared"}}}
	putUser(t, a, u)
	const n = 20
	reportErrors(t, updateOnTwo(a, b, n, func(i int, tx store.Tx) error {
		cur, err := tx.User(u.ID)
		if err != nil {
			return err
		}
		cur.Groups = append(cur.Groups, fmt.Sprint("g", i))
		return tx.PutUser(cur)
	}))
	view(t, a, func(tx store.Tx) error {
		got, err := tx.User(u.ID)
		if err != nil {
			return err
		}
		if len(got.Groups) != n {
			t.Errorf("%d of %d concurrent changes survived: %v", len(got.Groups), n, got.Groups)
		}
		return nil
	})
}

// TestNoLostSessionUpdatesAcrossInstances: a read of a session in an
// Update locks its row (package doc: "every read of a user, group or
// session by ID or key"), so read-modify-write changes to one session
// from two instances all land, as they do for users.
func TestNoLostSessionUpdatesAcrossInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	u := &store.User{}
	putUser(t, a, u)
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	update(t, a, func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Hash: "h", UserID: u.ID, Created: start, Expires: start, LastSeen: start})
	})
	const n = 10
	reportErrors(t, updateOnTwo(a, b, n, func(i int, tx store.Tx) error {
		cur, err := tx.Session("h")
		if err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond) // let the other instance read meanwhile
		cur.Expires = cur.Expires.Add(time.Minute)
		return tx.PutSession(cur)
	}))
	view(t, a, func(tx store.Tx) error {
		got, err := tx.Session("h")
		if err != nil {
			return err
		}
		if want := start.Add(n * time.Minute); !got.Expires.Equal(want) {
			t.Errorf("Expires = %v after %d concurrent one-minute extensions, want %v: %v of them lost",
				got.Expires, n, want, want.Sub(got.Expires))
		}
		return nil
	})
}

// TestSessionTokensSwapAcrossInstances: a read of a session's tokens in an
// Update locks them like any record read to be written back, so a
// compare-and-swap of the tokens (session/upstream.go's "first stored
// wins" after a refresh) holds across instances: of concurrent swaps from
// one version, exactly one wins and the others see its result.
func TestSessionTokensSwapAcrossInstances(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	u := &store.User{}
	putUser(t, a, u)
	update(t, a, func(tx store.Tx) error {
		if err := tx.PutSession(&store.Session{Hash: "h", UserID: u.ID}); err != nil {
			return err
		}
		return tx.PutSessionTokens("h", []byte("v0"))
	})
	const n = 10
	won := make([]bool, n) // in the attempt that committed
	reportErrors(t, updateOnTwo(a, b, n, func(i int, tx store.Tx) error {
		won[i] = false
		cur, err := tx.SessionTokens("h")
		if err != nil || string(cur) != "v0" {
			return err // another swap won: keep its tokens
		}
		time.Sleep(20 * time.Millisecond) // the refresh's round trip
		won[i] = true
		return tx.PutSessionTokens("h", fmt.Appendf(nil, "v1-%d", i))
	}))
	if wins := count(won); wins != 1 {
		t.Errorf("%d of %d swaps from one version committed, want 1", wins, n)
	}
}
