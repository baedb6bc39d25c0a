package portable

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
	"github.com/caddy-sso/caddy-sso/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openPostgres(t testing.TB) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), postgres.Config{DSN: pgtest.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// fill writes n users and some of every other kind of record, with
// fixed times so that two fills compare equal.
func fill(t testing.TB, st store.Store, n int) {
	t.Helper()
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
	ctx := context.Background()
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, name := range []string{"flow-key", "saml-sp-okta"} {
			if _, err := tx.LoadOrStoreSecret(name, []byte("value of "+name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 1000
	var ids []string
	for start := 0; start < n; start += chunk {
		err := st.Update(ctx, func(tx store.Tx) error {
			ids = ids[:start]
			for i := start; i < min(start+chunk, n); i++ {
				u := &store.User{
					Email: fmt.Sprintf("User%d@Example.com", i), FirstName: "Zoë", LastName: fmt.Sprint("Last", i),
					Groups: []string{"staff"}, Active: i%7 != 0, Pending: i%11 == 0, Source: store.SourceJIT,
					Links:    []store.Link{{IdP: "okta", Subject: fmt.Sprintf("00u%08d", i)}},
					UserName: fmt.Sprintf("user%d@example.com", i), IdP: "okta", ExternalID: fmt.Sprintf("00u%08d", i),
					Created: t0, Updated: t0.Add(time.Duration(i)), LastLogin: t0.Add(time.Hour),
				}
				if i%3 == 0 {
					u.Emails = []store.Email{{Value: u.Email, Type: "work", Primary: true}}
					u.SCIMAttributes = json.RawMessage(`{"title":"Engineer","phoneNumbers":[{"value":"+1 555"}]}`)
					u.Source = store.SourceSCIM
				}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				ids = append(ids, u.ID)
				if i%2 == 0 {
					s := &store.Session{Hash: fmt.Sprintf("%064x", i), UserID: u.ID, IdP: "okta", Created: t0,
						Expires: t0.Add(8 * time.Hour), LastSeen: t0.Add(time.Minute),
						Logout: store.LogoutInfo{Subject: fmt.Sprintf("00u%08d", i), SessionID: fmt.Sprint("sid-", i)}}
					if err := tx.PutSession(s); err != nil {
						return err
					}
					if i%4 == 0 {
						if err := tx.PutSessionTokens(s.Hash, []byte(fmt.Sprint("sealed-", i))); err != nil {
							return err
						}
					}
				}
				if err := tx.Audit(store.Event{Time: t0.Add(time.Duration(i) * time.Second), Type: store.EventUserCreated,
					IdP: "okta", UserID: u.ID, Detail: map[string]string{"source": "jit"}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		for g := range 3 {
			grp := &store.Group{IdP: "okta", DisplayName: fmt.Sprint("Group ", g), ExternalID: fmt.Sprint("g-", g), Created: t0, Updated: t0}
			for i := g; i < len(ids) && len(grp.Members) < 50; i += 3 {
				grp.Members = append(grp.Members, ids[i])
			}
			if err := tx.PutGroup(grp); err != nil {
				return err
			}
		}
		if err := tx.PutTombstone(&store.Tombstone{IdP: "okta", Subject: "gone", UserID: "old-user", Deleted: t0}); err != nil {
			return err
		}
		for i := range 5 {
			if _, err := tx.Consume("saml", fmt.Sprint("assertion-", i), t0.Add(time.Duration(i)*time.Hour)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dump exports st and returns the lines without the header (whose
// creation time differs), decompressed: two stores with identical records
// dump identically.
func dump(t testing.TB, st store.Store) (string, Counts) {
	t.Helper()
	var buf bytes.Buffer
	c, err := Export(context.Background(), st, &buf, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(raw), "\n")
	return rest, c
}

func export(t testing.TB, st store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Export(context.Background(), st, &buf, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportImportRoundTrip(t *testing.T) {
	src := openPostgres(t)
	fill(t, src, 300)
	want, wc := dump(t, src)
	if wc.Users != 300 || wc.Sessions != 150 || wc.SessionTokens != 75 || wc.Groups != 3 || wc.Tombstones != 1 ||
		wc.Consumed != 5 || wc.Secrets != 2 || wc.AuditEvents != 300 {
		t.Errorf("export counts %+v", wc)
	}
	dst := openPostgres(t)
	var progress []string
	got, err := Import(context.Background(), dst, bytes.NewReader(export(t, src)), ImportOptions{
		BatchSize: 64, Progress: func(kind string, n int) { progress = append(progress, fmt.Sprint(kind, n)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != wc {
		t.Errorf("import counts %+v, want %+v", got, wc)
	}
	if d, _ := dump(t, dst); d != want {
		t.Errorf("the imported store differs from the source:\n%s", storetest.FirstLineDiff(want, d, 2))
	}
}

func TestMigrateCopiesEverything(t *testing.T) {
	src, dst := openPostgres(t), openPostgres(t)
	fill(t, src, 120)
	want, _ := dump(t, src)
	rep, err := Migrate(context.Background(), src, dst, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != rep.Target || rep.Copied.Users != 120 {
		t.Errorf("report %+v", rep)
	}
	if d, _ := dump(t, dst); d != want {
		t.Errorf("the copy differs:\n%s", storetest.FirstLineDiff(want, d, 2))
	}
	// Audit numbering goes on after the copied events.
	err = dst.Update(context.Background(), func(tx store.Tx) error { return tx.Audit(store.Event{Type: "after"}) })
	if err != nil {
		t.Fatal(err)
	}
	_ = dst.View(context.Background(), func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{After: 120})
		if err != nil || len(ev) != 1 || ev[0].Seq != 121 {
			t.Errorf("the next event after the copy: %+v, %v", ev, err)
		}
		return nil
	})
}

func TestImportRefusals(t *testing.T) {
	src := openPostgres(t)
	fill(t, src, 20)
	backup := export(t, src)
	raw := gunzip(t, backup)

	t.Run("non-empty target", func(t *testing.T) {
		dst := openPostgres(t)
		if err := dst.Update(context.Background(), func(tx store.Tx) error {
			_, err := tx.Secret("cookie", 32) // a store that Caddy has started on
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_, err := Import(context.Background(), dst, bytes.NewReader(backup), ImportOptions{})
		if !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("import into a store with a secret: %v, want ErrNotEmpty", err)
		}
		// Forced, the key the backup does not have is deleted: the target
		// holds exactly the backup.
		var removed []string
		_, err = Import(context.Background(), dst, bytes.NewReader(backup), ImportOptions{Force: true,
			Progress: func(kind string, n int) { removed = append(removed, fmt.Sprint(kind, ": ", n)) }})
		if err != nil {
			t.Fatalf("forced import into a store with its own key: %v", err)
		}
		if want, _ := dump(t, src); !strings.Contains(want, `"secret"`) {
			t.Fatal("the source holds no secret")
		} else if d, _ := dump(t, dst); d != want {
			t.Errorf("the target differs from the backup:\n%s", storetest.FirstLineDiff(want, d, 2))
		}
		if !slices.Contains(removed, "removed secrets: 1") {
			t.Errorf("progress %v, want removed secrets: 1", removed)
		}
	})
	t.Run("secret replaced", func(t *testing.T) {
		dst := openPostgres(t)
		if err := dst.Update(context.Background(), func(tx store.Tx) error {
			_, err := tx.LoadOrStoreSecret("flow-key", []byte("another value"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Forced, the target's value gives way to the backup's.
		_, err := Import(context.Background(), dst, bytes.NewReader(backup), ImportOptions{Force: true})
		if err != nil {
			t.Fatalf("forced import over a different secret: %v", err)
		}
		if want, _ := dump(t, src); !strings.Contains(want, `"flow-key"`) {
			t.Fatal("the source holds no flow-key")
		} else if d, _ := dump(t, dst); d != want {
			t.Errorf("the target differs from the backup:\n%s", storetest.FirstLineDiff(want, d, 2))
		}
	})
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"truncated before the end line", gz(t, raw[:strings.LastIndex(string(raw[:len(raw)-1]), "\n")+1])},
		{"cut mid-stream", backup[:len(backup)/2]},
		{"not gzip", raw},
		{"no header", gz(t, raw[strings.Index(string(raw), "\n")+1:])},
		{"other format", gz(t, []byte(strings.Replace(string(raw), Format, "something-else", 1)))},
		{"newer version", gz(t, []byte(strings.Replace(string(raw), `"version":2`, `"version":3`, 1)))},
		{"unknown record", gz(t, []byte(strings.Replace(string(raw), `{"user":`, `{"usr":`, 1)))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := openPostgres(t)
			_, err := Import(context.Background(), dst, bytes.NewReader(tt.data), ImportOptions{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("interrupted import runs again with force", func(t *testing.T) {
		dst := openPostgres(t)
		cut := gz(t, raw[:strings.LastIndex(string(raw[:len(raw)-1]), "\n")+1])
		if _, err := Import(context.Background(), dst, bytes.NewReader(cut), ImportOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("first run: %v", err)
		}
		if _, err := Import(context.Background(), dst, bytes.NewReader(backup), ImportOptions{Force: true}); err != nil {
			t.Fatalf("second run: %v", err)
		}
		want, _ := dump(t, src)
		if d, _ := dump(t, dst); d != want {
			t.Errorf("after the rerun the store differs:\n%s", storetest.FirstLineDiff(want, d, 2))
		}
	})
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func gz(t testing.TB, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bolt -> PostgreSQL -> bolt, through a backup file one way and a direct
// copy the other: every record comes back identical.
func TestBoltPostgresBoltRoundTrip(t *testing.T) {
	first := backendtest.OpenBolt(t)
	fill(t, first, 200)
	want, wc := dump(t, first)

	pg := openPostgres(t)
	if _, err := Import(context.Background(), pg, bytes.NewReader(export(t, first)), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if d, _ := dump(t, pg); d != want {
		t.Fatalf("PostgreSQL differs from the bolt source:\n%s", storetest.FirstLineDiff(want, d, 2))
	}
	last := backendtest.OpenBolt(t)
	rep, err := Migrate(context.Background(), pg, last, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Copied != wc {
		t.Errorf("copied %+v, want %+v", rep.Copied, wc)
	}
	if d, _ := dump(t, last); d != want {
		t.Errorf("bolt after the round trip differs:\n%s", storetest.FirstLineDiff(want, d, 2))
	}
}

// A large bolt store moves to PostgreSQL, and a user looked up by IdP link
// afterwards (what a sign-in does) is the same user. 5,000 users here
// (1,000 with -short); BenchmarkMigrateBoltToPostgres moves 100,000.
func TestMigrateLargeBoltStore(t *testing.T) {
	n := 5_000
	if testing.Short() {
		n = 1_000
	}
	migrateLarge(t, n)
}

// BenchmarkMigrateBoltToPostgres moves a 100,000-user bolt store (with
// half as many sessions and an audit event per user) to PostgreSQL and
// reports the time per user:
//
//	go test -run '^$' -bench MigrateBoltToPostgres -benchtime 1x ./store/portable/
func BenchmarkMigrateBoltToPostgres(b *testing.B) {
	for b.Loop() {
		migrateLarge(b, 100_000)
	}
}

func migrateLarge(t testing.TB, n int) {
	src := backendtest.OpenBolt(t)
	start := time.Now()
	fill(t, src, n)
	t.Logf("filled a bolt store with %d users in %v", n, time.Since(start).Round(time.Millisecond))
	dst := openPostgres(t)
	start = time.Now()
	rep, err := Migrate(context.Background(), src, dst, ImportOptions{
		BatchSize: 1000,
		Progress: func(kind string, done int) {
			t.Logf("migrated %d %s (%v)", done, kind, time.Since(start).Round(time.Millisecond))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("migrated %+v in %v", rep.Copied, took.Round(time.Millisecond))
	if b, ok := t.(*testing.B); ok {
		b.ReportMetric(float64(took.Microseconds())/float64(n), "µs/user")
	}
	for _, i := range []int{0, n / 2, n - 1} {
		sub := fmt.Sprintf("00u%08d", i)
		var before, after *store.User
		_ = src.View(context.Background(), func(tx store.Tx) (err error) { before, err = tx.UserByLink("okta", sub); return })
		_ = dst.View(context.Background(), func(tx store.Tx) (err error) { after, err = tx.UserByLink("okta", sub); return })
		if before == nil || after == nil || before.ID != after.ID {
			t.Fatalf("user %s: %v before, %v after", sub, before, after)
		}
		b, _ := json.Marshal(before)
		a, _ := json.Marshal(after)
		if !bytes.Equal(a, b) {
			t.Errorf("user %s differs after the migration:\n%s\n%s", sub, b, a)
		}
	}
}

// TestVerify: a complete backup verifies with the counts Export reported;
// a truncated one, or one whose end line lies, does not.
func TestVerify(t *testing.T) {
	src := backendtest.OpenBolt(t)
	fill(t, src, 20)
	var buf bytes.Buffer
	exported, err := Export(context.Background(), src, &buf, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(bytes.NewReader(buf.Bytes()))
	if err != nil || got != exported {
		t.Fatalf("Verify = %+v, %v; Export said %+v", got, err, exported)
	}
	if _, err := Verify(bytes.NewReader(buf.Bytes()[:buf.Len()/2])); !errors.Is(err, ErrCorrupt) {
		t.Errorf("half a backup: %v", err)
	}
	if _, err := Verify(strings.NewReader("not gzip")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("not gzip: %v", err)
	}
}
