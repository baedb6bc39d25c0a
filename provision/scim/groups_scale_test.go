package scim_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// longestHold keeps the longest write-lock hold a bolt store reported
// since its last reset (bolt.Options.OnWrite).
type longestHold struct {
	mu  sync.Mutex
	max bolt.WriteHold
}

func (h *longestHold) observe(w bolt.WriteHold) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.Held > h.max.Held {
		h.max = w
	}
}

func (h *longestHold) take() bolt.WriteHold {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.max
	h.max = bolt.WriteHold{}
	return w
}

// largeGroup is a SCIM endpoint over a bolt store of users SCIM made,
// one group holding the first members of them, and the rest free to join.
type largeGroup struct {
	h     *scim.Handler
	db    *bolt.DB
	holds *longestHold
	ids   []string // every user, in store (ID) order
	group string
}

// newLargeGroup builds it with n users, the first members of them in the
// group. 50,000 members take about a minute to build: only the benchmark
// does; tests use 2,000.
func newLargeGroup(tb testing.TB, n, members int) *largeGroup {
	tb.Helper()
	lg := &largeGroup{holds: &longestHold{}}
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "sso.db"), bolt.Options{OnWrite: lg.holds.observe})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	lg.db = db
	putSCIMUsers(tb, db, n)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	err = db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(u *store.User) error {
			lg.ids = append(lg.ids, u.ID)
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	g := &store.Group{DisplayName: "everyone", IdP: "entra", Members: lg.ids[:members], Created: at, Updated: at}
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutGroup(g) }); err != nil {
		tb.Fatal(err)
	}
	lg.group = g.ID
	lg.h, err = scim.New(scim.Config{IdP: "entra", Token: entraToken, MaxBodyBytes: 64 << 20,
		Accounts: &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil)}})
	if err != nil {
		tb.Fatal(err)
	}
	lg.holds.take()
	return lg
}

// do sends one request and fails on any status but want.
func (lg *largeGroup) do(tb testing.TB, method, path, body string, want int) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, "/scim/v2"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+entraToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	rec := httptest.NewRecorder()
	lg.h.ServeHTTP(rec, req)
	if rec.Code != want {
		tb.Fatalf("%s %s: %d, want %d: %.300s", method, path, rec.Code, want, rec.Body)
	}
	return rec
}

func (lg *largeGroup) patch(tb testing.TB, ops ...string) {
	tb.Helper()
	lg.do(tb, "PATCH", "/Groups/"+lg.group,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+strings.Join(ops, ",")+`]}`,
		http.StatusNoContent)
}

// members reads the group's member list from the store.
func (lg *largeGroup) members(tb testing.TB) []string {
	tb.Helper()
	var out []string
	err := lg.db.View(context.Background(), func(tx store.Tx) error {
		g, err := tx.Group(lg.group)
		if err == nil {
			out = g.Members
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// signInWait runs fn while small writes, one at a time as a sign-in's
// commit, go to the store, and returns the longest any of them took.
func (lg *largeGroup) signInWait(tb testing.TB, fn func()) time.Duration {
	done := make(chan struct{})
	worst := make(chan time.Duration)
	go func() {
		var w time.Duration
		for {
			start := time.Now()
			err := lg.db.Update(context.Background(), func(tx store.Tx) error {
				return tx.Audit(store.Event{Time: start, Type: store.EventLoginSucceeded, IdP: "entra", Subject: "s"})
			})
			if err != nil {
				tb.Error(err)
			}
			w = max(w, time.Since(start))
			select {
			case <-done:
				worst <- w
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(done)
	return <-worst
}

// BenchmarkLargeGroup is what the SCIM requests a directory sends about
// a group of 50,000 members cost, through the handler over a real bolt
// file: how long each held the store's write lock (hold-ms, and its work,
// disk parts), during which every sign-in waits (docs/operations.md, "A
// million users, over time": no write is to hold it over 50 ms), and the
// longest a small write (a sign-in's commit) sent meanwhile, one after
// another, took (signin-wait-ms). cpu-ms and the allocations count those
// writes too. Okta sends one PATCH per membership change, Entra patches
// its groups on every cycle.
//
//	go test -run '^$' -bench BenchmarkLargeGroup -benchtime 5x ./provision/scim/
func BenchmarkLargeGroup(b *testing.B) {
	const big, spare = 50_000, 20_000
	lg := newLargeGroup(b, big+spare, big)
	free := lg.ids[big:] // not members: each add takes the next ones
	taken := 0
	next := func(n int) []string {
		if taken+n > len(free) {
			b.Fatalf("out of spare users after %d: run with -benchtime 10x", taken)
		}
		taken += n
		return free[taken-n : taken]
	}
	removed := 0 // members removed from the front of lg.ids
	// run measures op; prepare, when given, runs before each op, its time
	// and CPU left out.
	run := func(name string, prepare func(b *testing.B), op func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			var held, work, disk, cpu, waited time.Duration
			lg.holds.take()
			b.ReportAllocs()
			for b.Loop() {
				if prepare != nil {
					b.StopTimer()
					prepare(b)
					lg.holds.take()
					b.StartTimer()
				}
				cpu0 := processCPU()
				waited += lg.signInWait(b, func() { op(b) })
				cpu += processCPU() - cpu0
				w := lg.holds.take()
				held, work, disk = held+w.Held, work+w.Work, disk+w.Disk
			}
			for unit, d := range map[string]time.Duration{"hold-ms/op": held, "work-ms/op": work, "disk-ms/op": disk,
				"cpu-ms/op": cpu, "signin-wait-ms/op": waited} {
				b.ReportMetric(float64(d.Microseconds())/1000/float64(b.N), unit)
			}
		})
	}
	add := func(ids []string) string {
		return `{"op":"add","path":"members","value":[` + memberList(ids) + `]}`
	}
	run("add-1", nil, func(b *testing.B) { lg.patch(b, add(next(1))) })
	run("add-1000", nil, func(b *testing.B) { lg.patch(b, add(next(1000))) })
	run("remove-1-filter", nil, func(b *testing.B) {
		removed++
		lg.patch(b, `{"op":"remove","path":"members[value eq \"`+lg.ids[removed-1]+`\"]"}`)
	})
	run("remove-1-value", nil, func(b *testing.B) {
		removed++
		lg.patch(b, `{"op":"remove","path":"members","value":[{"value":"`+lg.ids[removed-1]+`"}]}`)
	})
	flip := false
	run("replace-all", nil, func(b *testing.B) {
		// Alternates between two lists of 50,000 that differ in 1,000.
		flip = !flip
		from := 1000
		if flip {
			from = 0
		}
		lg.patch(b, `{"op":"replace","path":"members","value":[`+memberList(lg.ids[from:from+big])+`]}`)
	})
	run("rename", nil, func(b *testing.B) {
		flip = !flip
		lg.patch(b, fmt.Sprintf(`{"op":"replace","path":"displayName","value":"everyone %t"}`, flip))
	})
	lg.patch(b, `{"op":"replace","path":"displayName","value":"everyone"}`)
	for _, get := range []struct{ name, path string }{
		{"get-excluded", "/Groups/" + lg.group + "?excludedAttributes=members"},
		{"filter-excluded", "/Groups?filter=" + url.QueryEscape(`displayName eq "everyone"`) + "&excludedAttributes=members"},
		{"get-all", "/Groups/" + lg.group},
	} {
		run(get.name, nil, func(b *testing.B) { lg.do(b, "GET", get.path, "", http.StatusOK) })
	}
	var doomed *store.Group
	run("delete", func(b *testing.B) {
		doomed = &store.Group{DisplayName: "doomed", IdP: "entra", Members: lg.ids[:big]}
		if err := lg.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutGroup(doomed) }); err != nil {
			b.Fatal(err)
		}
	}, func(b *testing.B) { lg.do(b, "DELETE", "/Groups/"+doomed.ID, "", http.StatusNoContent) })
}

// putGroup stores a group of the IdP with the members and returns its ID.
func (lg *largeGroup) putGroup(tb testing.TB, name string, members []string) string {
	tb.Helper()
	g := &store.Group{DisplayName: name, IdP: "entra", Members: members}
	if err := lg.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutGroup(g) }); err != nil {
		tb.Fatal(err)
	}
	return g.ID
}

// allocsPerMember is what a request costs in allocations for each member
// of the group it names, from the same request about a group of 2,000
// members and about one of a single member.
func allocsPerMember(t *testing.T, lg *largeGroup, small string, request func(group, name string)) float64 {
	t.Helper()
	n := len(lg.members(t))
	big := testing.AllocsPerRun(4, func() { request(lg.group, "everyone") })
	one := testing.AllocsPerRun(4, func() { request(small, "small") })
	return (big - one) / float64(n-1)
}

// A group whose members the answer leaves out is rendered without them:
// Entra looks its groups up with excludedAttributes=members, and a group
// of 50,000 members cost 27.8 MiB (GET) and 55.6 MiB (the filter, which
// built them twice) to answer 359 bytes, 6 and 12 allocations a member.
// Now what the answer costs does not grow with the group (the store reads
// the member IDs in one allocation).
func TestGroupAnswerWithoutMembersDoesNotBuildThem(t *testing.T) {
	const n = 2000
	lg := newLargeGroup(t, n, n)
	small := lg.putGroup(t, "small", lg.ids[:1])
	for _, c := range []struct {
		name string
		path func(group, name string) string
	}{
		{"get", func(group, _ string) string { return "/Groups/" + group + "?excludedAttributes=members" }},
		{"get with attributes", func(group, _ string) string { return "/Groups/" + group + "?attributes=displayName,externalId" }},
		{"filter", func(_, name string) string {
			return "/Groups?filter=" + url.QueryEscape(`displayName eq "`+name+`"`) + "&excludedAttributes=members"
		}},
	} {
		per := allocsPerMember(t, lg, small, func(group, name string) {
			rec := lg.do(t, "GET", c.path(group, name), "", http.StatusOK)
			if strings.Contains(rec.Body.String(), `"members"`) {
				t.Fatalf("%s: members in the answer: %.300s", c.name, rec.Body)
			}
		})
		if per > 0.1 {
			t.Errorf("%s: %.2f allocations per member of the group, want none", c.name, per)
		}
	}
}

// Answers that show members, or filters that read them, still have them.
func TestGroupAnswerWithMembersWhereAsked(t *testing.T) {
	lg := newLargeGroup(t, 3, 2)
	member := lg.ids[1]
	for _, c := range []struct {
		query   string
		members int
	}{
		{"/Groups/%s", 2},
		{"/Groups/%s?attributes=members", 2},
		{"/Groups/%s?attributes=displayName,members.value", 2},
		{"/Groups/%s?excludedAttributes=members.display", 2},
		{"/Groups/%s?excludedAttributes=displayName", 2},
		{"/Groups/%s?attributes=urn:ietf:params:scim:schemas:core:2.0:Group:Members", 2},
		{"/Groups/%s?excludedAttributes=urn:ietf:params:scim:schemas:core:2.0:Group:members", 0},
		{"/Groups/%s?excludedAttributes=MEMBERS", 0},
		{"/Groups?filter=" + url.QueryEscape(`displayName eq "everyone"`), 2},
		{"/Groups?filter=" + url.QueryEscape(`members.value eq "`+member+`"`) + "&excludedAttributes=members", 0},
	} {
		body := lg.do(t, "GET", strings.Replace(c.query, "%s", lg.group, 1), "", http.StatusOK).Body.String()
		if got := strings.Count(body, `"value":`); got != c.members {
			t.Errorf("%s: %d members in %s, want %d", c.query, got, body, c.members)
		}
		if strings.Contains(c.query, "filter") && !strings.Contains(body, `"totalResults":1`) {
			t.Errorf("%s: the group was not found: %s", c.query, body)
		}
	}
	// A filter reading members alongside an indexed one is matched on a
	// document that has them.
	for filter, found := range map[string]bool{
		`displayName eq "everyone" and members.value eq "` + member + `"`:       true,
		`displayName eq "everyone" and members[value eq "` + member + `"]`:      true,
		`displayName eq "everyone" and not (members.value eq "` + member + `")`: false,
		`displayName eq "everyone" and members.value eq "` + lg.ids[2] + `"`:    false,
	} {
		body := lg.do(t, "GET", "/Groups?excludedAttributes=members&filter="+url.QueryEscape(filter), "", http.StatusOK).Body.String()
		if got := strings.Contains(body, `"totalResults":1`); got != found {
			t.Errorf("filter %s: found %v, want %v: %s", filter, got, found, body)
		}
	}
}

// A PATCH that adds or removes members, in the shapes directories send,
// changes the sorted member list without building a document of every
// member (a map each, 56 MiB for 50,000; 8 allocations a member): what it
// costs does not grow with the group.
func TestGroupMemberPatchDoesNotBuildMembers(t *testing.T) {
	const n = 2000
	lg := newLargeGroup(t, n+1, n)
	small := lg.putGroup(t, "small", lg.ids[:1])
	spare := lg.ids[n]
	joined := map[string]bool{}
	for _, c := range []struct{ name, add, remove string }{
		{"add, remove by filter",
			`{"op":"add","path":"members","value":[{"value":"%s"}]}`,
			`{"op":"remove","path":"members[value eq \"%s\"]"}`},
		{"add, remove by value list",
			`{"op":"Add","path":"members","value":[{"value":"%s","display":"x"}]}`,
			`{"op":"Remove","path":"members","value":[{"$ref":null,"value":"%s"}]}`},
	} {
		per := allocsPerMember(t, lg, small, func(group, _ string) {
			// Each run changes the group: the spare user joins, or leaves.
			op := c.add
			if joined[group] {
				op = c.remove
			}
			joined[group] = !joined[group]
			lg.do(t, "PATCH", "/Groups/"+group, patchBody(fmt.Sprintf(op, spare)), http.StatusNoContent)
		})
		if per > 0.1 {
			t.Errorf("%s: %.2f allocations per member of the group, want none", c.name, per)
		}
	}
	want := n
	if joined[lg.group] {
		want++
	}
	if got := lg.members(t); len(got) != want || slices.Contains(got, spare) != joined[lg.group] {
		t.Errorf("%d members, want %d (the spare user one: %v)", len(got), want, joined[lg.group])
	}
}
