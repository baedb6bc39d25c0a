package scim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// benchStore fills a store with n users of IdP "entra" the way SCIM
// creates them, in transactions of 10,000.
func benchStore(b *testing.B, n int) (*scim.Handler, store.Store) {
	b.Helper()
	db := backendtest.OpenBolt(b)
	putSCIMUsers(b, db, n)
	h, err := scim.New(scim.Config{IdP: "entra", Token: entraToken,
		Accounts: &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil)}})
	if err != nil {
		b.Fatal(err)
	}
	return h, db
}

// putSCIMUsers stores n users of IdP "entra" the way SCIM creates them,
// in transactions of 10,000.
func putSCIMUsers(tb testing.TB, db store.Store, n int) {
	tb.Helper()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < n; start += 10_000 {
		err := db.Update(context.Background(), func(tx store.Tx) error {
			for i := start; i < min(start+10_000, n); i++ {
				u := &store.User{
					UserName: fmt.Sprintf("user%d@example.com", i), Email: fmt.Sprintf("user%d@example.com", i),
					FirstName: "First", LastName: fmt.Sprint("Last", i), Active: true, Source: store.SourceSCIM,
					IdP: "entra", ExternalID: fmt.Sprintf("oid-%08d", i), Created: t0, Updated: t0,
					Emails: []store.Email{{Value: fmt.Sprintf("user%d@example.com", i), Type: "work", Primary: true}},
				}
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkFilterUserName is a whole SCIM request, filter=userName eq
// "…" (what Entra and Okta send before every create), through the handler:
// authentication, filter parsing, the index read, rendering. Its cost does
// not grow with the number of users; the scan baseline shows what a full
// scan of 100,000 users would cost instead.
func BenchmarkFilterUserName(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		h, db := benchStore(b, n)
		b.Run(fmt.Sprint(n, "users"), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				filter := fmt.Sprintf(`userName eq "USER%d@example.com"`, rng.IntN(n))
				req := httptest.NewRequest("GET", "/scim/v2/Users?filter="+url.QueryEscape(filter), nil)
				req.Header.Set("Authorization", "Bearer "+entraToken)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"totalResults":1`) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
		if n < 100_000 {
			continue
		}
		b.Run(fmt.Sprint("scan-baseline-", n, "users"), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				want := fmt.Sprintf("user%d@example.com", rng.IntN(n))
				found := false
				err := db.View(context.Background(), func(tx store.Tx) error {
					return tx.ForEachUser("", func(u *store.User) error {
						if strings.EqualFold(u.UserName, want) {
							found = true
						}
						return nil
					})
				})
				if err != nil || !found {
					b.Fatal(err, found)
				}
			}
		})
	}
}

// BenchmarkPatchDeactivate is Okta's deactivation, a write with its
// session revocation, against 100,000 users.
func BenchmarkPatchDeactivate(b *testing.B) {
	const n = 100_000
	h, _ := benchStore(b, n)
	ids := make([]string, 0, 64)
	for i := range 64 {
		req := httptest.NewRequest("GET", "/scim/v2/Users?filter="+url.QueryEscape(fmt.Sprintf(`externalId eq "oid-%08d"`, i*1000)), nil)
		req.Header.Set("Authorization", "Bearer "+entraToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		_, rest, _ := strings.Cut(rec.Body.String(), `"id":"`)
		id, _, _ := strings.Cut(rest, `"`)
		ids = append(ids, id)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		active := i/len(ids)%2 == 1 // alternate so that every request changes something
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":%t}}]}`, active)
		req := httptest.NewRequest("PATCH", "/scim/v2/Users/"+ids[i%len(ids)], strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+entraToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		i++
	}
}

// benchUserIDs lists the IDs of the users benchStore made.
func benchUserIDs(b *testing.B, db store.Store) []string {
	b.Helper()
	var ids []string
	err := db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(u *store.User) error {
			ids = append(ids, u.ID)
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	return ids
}

func memberList(ids []string) string {
	var sb strings.Builder
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"value":%q}`, id)
	}
	return sb.String()
}

// benchPatch sends one PATCH and fails on any status but want.
func benchPatch(b *testing.B, h http.Handler, path, body string, want int) {
	b.Helper()
	req := httptest.NewRequest("PATCH", "/scim/v2"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+entraToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("PATCH %s: %d, want %d: %.300s", path, rec.Code, want, rec.Body)
	}
}

var benchGroups int

// putBenchGroup stores a group of the IdP with the members, as a sync
// that has run for a while leaves it.
func putBenchGroup(b *testing.B, db store.Store, members []string) string {
	b.Helper()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	benchGroups++
	g := &store.Group{DisplayName: fmt.Sprint("big", benchGroups), IdP: "entra", Members: store.NormalMembers(members), Created: t0, Updated: t0}
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutGroup(g) }); err != nil {
		b.Fatal(err)
	}
	return g.ID
}

// BenchmarkGroupMembers is the work one group PATCH does inside the
// store's write transaction, during which sign-ins wait: Entra's initial
// sync of a large group in one Add (and the legacy Remove with a value
// list), and Okta's removals, one members[value eq "…"] operation per
// member, from a large group.
func BenchmarkGroupMembers(b *testing.B) {
	const big, n = 50_000, 20_000
	_, db := benchStore(b, big+1000)
	ids := benchUserIDs(b, db)
	h, err := scim.New(scim.Config{IdP: "entra", Token: entraToken, MaxBodyBytes: 64 << 20,
		Accounts: &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil)}})
	if err != nil {
		b.Fatal(err)
	}
	ops := func(op, members string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"` + op +
			`","path":"members","value":[` + members + `]}]}`
	}
	b.Run(fmt.Sprint("add-", n), func(b *testing.B) {
		body := ops("Add", memberList(ids[:n]))
		for b.Loop() {
			b.StopTimer()
			g := putBenchGroup(b, db, nil)
			b.StartTimer()
			benchPatch(b, h, "/Groups/"+g, body, http.StatusNoContent)
		}
	})
	b.Run(fmt.Sprint("legacy-remove-", n), func(b *testing.B) {
		body := ops("Remove", memberList(ids[:n]))
		for b.Loop() {
			b.StopTimer()
			g := putBenchGroup(b, db, ids[:n])
			b.StartTimer()
			benchPatch(b, h, "/Groups/"+g, body, http.StatusNoContent)
		}
	})
	b.Run(fmt.Sprint("filter-remove-1000-of-", big), func(b *testing.B) {
		var sb strings.Builder
		for i, id := range ids[:1000] {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"op":"remove","path":"members[value eq \"%s\"]"}`, id)
		}
		body := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + sb.String() + `]}`
		for b.Loop() {
			b.StopTimer()
			g := putBenchGroup(b, db, ids[:big])
			b.StartTimer()
			benchPatch(b, h, "/Groups/"+g, body, http.StatusNoContent)
		}
	})
}

// BenchmarkPatchManyKeys is a path-less value with many attributes the
// schema does not know, sent to one user.
func BenchmarkPatchManyKeys(b *testing.B) {
	h, db := benchStore(b, 1)
	id := benchUserIDs(b, db)[0]
	for _, n := range []int{5_000, 40_000} {
		var sb strings.Builder
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `"k%d":"v"`, i)
		}
		body := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":{` + sb.String() + `}}]}`
		b.Run(fmt.Sprint(n, "keys"), func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("PATCH", "/scim/v2/Users/"+id, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+entraToken)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code >= 500 {
					b.Fatalf("%d %.300s", rec.Code, rec.Body)
				}
				b.ReportMetric(float64(rec.Code), "status")
			}
		})
	}
}

// BenchmarkGroupCreate10k is a POST of a group with 10,000 members, what
// a directory's first sync of a large group sends: the write, and the
// audit events (one per member who joined, besides the group's), in one
// transaction. The group is deleted between runs, outside the timer.
//
//	go test -run '^$' -bench BenchmarkGroupCreate10k -benchtime 10x ./provision/scim/
func BenchmarkGroupCreate10k(b *testing.B) {
	const n = 10_000
	h, db := benchStore(b, n)
	members := memberList(benchUserIDs(b, db))
	for b.Loop() {
		body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"big","members":[` + members + `]}`
		req := httptest.NewRequest("POST", "/scim/v2/Groups", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+entraToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("POST /Groups: %d: %.300s", rec.Code, rec.Body)
		}
		b.StopTimer()
		err := db.Update(context.Background(), func(tx store.Tx) error {
			g, err := tx.GroupByName("entra", "big")
			if err != nil {
				return err
			}
			return tx.DeleteGroup(g.ID)
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
