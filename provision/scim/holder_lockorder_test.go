package scim_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/postgres"
	"github.com/caddy-sso/caddy-sso/store/postgres/pgtest"
)

// TestRefusedWriteReadsHolderUnlocked: a SCIM write to user hi refused
// because another user lo holds the userName or email it sets (a PUT or
// PATCH: PutUser refuses, putUser then reads the holder to word the 409;
// a POST adopting hi, a JIT user holding its externalId: createUser checks
// the userName's holder) holds hi's row, and reads lo only to say which
// IdP holds the value. That read must not lock lo's row: lo's ID is the
// lower, so the lock would be out of the store's order (users in ID
// order, see store/postgres syncMembers), and a group change adding both,
// holding lo and waiting for hi, deadlocked with it (40P01, a rerun after
// deadlock_timeout, and the 409 repeats as directories retry it).
//
// A third connection holds lo so that the two meet in that order: B's
// group POST (members lo, hi) queues on lo first; A's write then locks hi
// and either queues on lo too (the read locked lo) or ends; the third
// connection then lets go.
func TestRefusedWriteReadsHolderUnlocked(t *testing.T) {
	const userSchema = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`
	for _, tc := range []struct {
		name string
		// jit: hi is a JIT user of the IdP holding externalId ext-hi,
		// with an ID above every SCIM one; else a SCIM user.
		jit bool
		// write is A's request to hi (id) given the values lo and hi
		// hold (userName and email alike: "lo@example.com", "hi@…").
		write func(id string) (method, path, body string)
	}{
		{"PUT, userName taken", false, func(id string) (string, string, string) {
			return http.MethodPut, "/Users/" + id, `{` + userSchema + `,"userName":"lo@example.com","emails":[{"value":"hi@example.com","primary":true}]}`
		}},
		{"PUT, email taken", false, func(id string) (string, string, string) {
			return http.MethodPut, "/Users/" + id, `{` + userSchema + `,"userName":"hi@example.com","emails":[{"value":"lo@example.com","primary":true}]}`
		}},
		{"PUT, email taken in another spelling", false, func(id string) (string, string, string) {
			// The holder is found by provision.EmailHolder before PutUser.
			return http.MethodPut, "/Users/" + id, `{` + userSchema + `,"userName":"hi@example.com","emails":[{"value":"LO@example.com.","primary":true}]}`
		}},
		{"PATCH, userName taken", false, func(id string) (string, string, string) {
			return http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],` +
				`"Operations":[{"op":"replace","path":"userName","value":"lo@example.com"}]}`
		}},
		{"POST adopting a JIT user, userName taken", true, func(string) (string, string, string) {
			return http.MethodPost, "/Users", `{` + userSchema + `,"userName":"lo@example.com","externalId":"ext-hi"}`
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := pgtest.NewDatabase(t)
			a, b := openPostgres(t, dsn), openPostgres(t, dsn)
			srvA, srvB := indexedServer(t, a), indexedServer(t, b)
			user := func(name string) string {
				return postID(t, srvA, "/Users", fmt.Sprintf(`{`+userSchema+`,"userName":%q,"emails":[{"value":%q,"primary":true}]}`, name, name))
			}
			var lo, hi string
			if tc.jit {
				lo, hi = user("lo@example.com"), "zzzz-jit"
				putJIT(t, a, &store.User{ID: hi, IdP: "entra", ExternalID: "ext-hi", Email: "hi@example.com", Active: true, Source: store.SourceJIT})
			} else {
				// The IDs are random: name the users by them.
				if lo, hi = user("x1@example.com"), user("x2@example.com"); hi < lo {
					lo, hi = hi, lo
				}
				for id, v := range map[string]string{lo: "lo@example.com", hi: "hi@example.com"} {
					doc := fmt.Sprintf(`{`+userSchema+`,"userName":%q,"emails":[{"value":%q,"primary":true}]}`, v, v)
					if status, body := scimRequest(t, srvA, http.MethodPut, "/Users/"+id, doc); status != http.StatusOK {
						t.Fatalf("PUT %s: %d %s", id, status, body)
					}
				}
			}

			watch := connect(t, dsn)
			waiters := func() int {
				t.Helper()
				var n int
				if err := watch.QueryRow(ctx, `SELECT count(*)::int FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			// waitUntil polls pg_stat_activity until n transactions wait
			// for a lock, or done is closed.
			waitUntil := func(n int, done chan struct{}) {
				t.Helper()
				for waiters() < n {
					select {
					case <-done:
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}
			r0 := a.Reruns() + b.Reruns()

			holder := connect(t, dsn)
			htx, err := holder.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := htx.Exec(ctx, "SELECT 1 FROM sso_users WHERE id = $1 FOR NO KEY UPDATE", lo); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var groupStatus, writeStatus int
			var writeBody []byte
			groupDone, writeDone := make(chan struct{}), make(chan struct{})
			wg.Go(func() {
				defer close(groupDone)
				groupStatus, _ = scimRequest(t, srvB, http.MethodPost, "/Groups",
					fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"staff","members":[{"value":%q},{"value":%q}]}`, lo, hi))
			})
			waitUntil(1, groupDone)
			method, path, body := tc.write(hi)
			wg.Go(func() {
				defer close(writeDone)
				writeStatus, writeBody = scimRequest(t, srvA, method, path, body)
			})
			waitUntil(2, writeDone) // the write waits for lo, or is done
			if err := htx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			reruns := a.Reruns() + b.Reruns() - r0
			t.Logf("group POST %d; %s %d %s; reruns A %d B %d", groupStatus, method, writeStatus, writeBody, a.Reruns(), b.Reruns())
			if groupStatus != http.StatusCreated || writeStatus != http.StatusConflict {
				t.Errorf("statuses %d and %d, want 201 and 409", groupStatus, writeStatus)
			}
			if reruns != 0 {
				t.Errorf("%d rerun(s): the write held %s and locked the holder %s (lower ID) to word its 409, while the group change held %s and waited for %s",
					reruns, hi, lo, lo, hi)
			}
		})
	}
}

// putJIT stores a user as a sign-in would have.
func putJIT(t *testing.T, db *postgres.DB, u *store.User) {
	t.Helper()
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
}
