// Package storetest is the conformance suite of the store.Store contract:
// every backend runs it from its own tests,
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// and so behaves as every caller of package store expects: indexes kept in
// step with the records, errors that leave nothing written, records
// returned as copies, ErrReadOnly in a View, Update rerunning fn safely
// under concurrency, single-use IDs used once, housekeeping bounded by its
// limit. It uses only the store package's API, never a backend's internals.
//
// It also has Counting, a Store wrapper that counts committed Updates.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// Run runs every conformance test against fresh stores from open, which
// must return an empty store and arrange (with t.Cleanup) to close it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(&env{T: t, st: open(t)})
		})
	}
}

type testCase struct {
	name string
	fn   func(*env)
}

// cases is filled by the init functions of this package's files, one file
// per part of the contract.
var cases []testCase

func register(list ...testCase) { cases = append(cases, list...) }

// env is one test's store and helpers.
type env struct {
	*testing.T
	st store.Store
}

func (e *env) update(fn func(store.Tx) error) {
	e.Helper()
	if err := e.st.Update(context.Background(), fn); err != nil {
		e.Fatalf("Update: %v", err)
	}
}

func (e *env) view(fn func(store.Tx) error) {
	e.Helper()
	if err := e.st.View(context.Background(), fn); err != nil {
		e.Fatalf("View: %v", err)
	}
}

func (e *env) putUser(u *store.User) *store.User {
	e.Helper()
	e.update(func(tx store.Tx) error { return tx.PutUser(u) })
	return u
}

func (e *env) putGroup(g *store.Group) *store.Group {
	e.Helper()
	e.update(func(tx store.Tx) error { return tx.PutGroup(g) })
	return g
}

func (e *env) putSession(s *store.Session) *store.Session {
	e.Helper()
	e.update(func(tx store.Tx) error { return tx.PutSession(s) })
	return s
}

// user reads a user in its own View, nil when there is none.
func (e *env) user(id string) *store.User {
	e.Helper()
	var u *store.User
	err := e.st.View(context.Background(), func(tx store.Tx) error {
		var err error
		u, err = tx.User(id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.Fatal(err)
	}
	return u
}

// lookup runs one lookup in a View and returns the ID found, or "" for
// ErrNotFound; any other error fails the test.
func (e *env) lookup(fn func(store.Tx) (*store.User, error)) string {
	e.Helper()
	var id string
	err := e.st.View(context.Background(), func(tx store.Tx) error {
		u, err := fn(tx)
		if err == nil {
			id = u.ID
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		e.Fatalf("lookup: %v", err)
	}
	return id
}

func (e *env) counts() store.Counts {
	e.Helper()
	var c store.Counts
	e.view(func(tx store.Tx) error {
		var err error
		c, err = tx.Counts()
		return err
	})
	return c
}

// jsonOf is a record's JSON, which is how records are compared: time zones
// and monotonic clock readings do not survive a store, instants do.
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (e *env) sameJSON(what string, want, got any) {
	e.Helper()
	if w, g := jsonOf(want), jsonOf(got); w != g {
		e.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// dump is everything the store holds, as the Tx API shows it, including
// what every index answers for every stored value. Two equal dumps mean a
// failed write left nothing behind.
func (e *env) dump() map[string]string {
	e.Helper()
	out := map[string]string{}
	e.view(func(tx store.Tx) error {
		add := func(k string, v any) { out[k] = jsonOf(v) }
		err := tx.ForEachUser("", func(u *store.User) error {
			add("user "+u.ID, u)
			for _, l := range u.Links {
				add("link "+l.IdP+" "+l.Subject+" of "+u.ID, lookupID(tx.UserByLink(l.IdP, l.Subject)))
			}
			add("email of "+u.ID, lookupID(tx.UserByEmail(u.Email)))
			add("userName of "+u.ID, lookupID(tx.UserByUserName(u.UserName)))
			add("externalId of "+u.ID, lookupID(tx.UserByExternalID(u.IdP, u.ExternalID)))
			refs, err := tx.GroupsOfUser(u.ID)
			add("groups of "+u.ID, refs)
			add("groups of "+u.ID+" err", fmt.Sprint(err))
			ss, err := tx.UserSessions(u.ID)
			add("sessions of "+u.ID, hashes(ss))
			add("sessions of "+u.ID+" err", fmt.Sprint(err))
			return nil
		})
		if err != nil {
			return err
		}
		for _, idp := range []string{"", "okta", "entra"} {
			users, n, err := tx.ListUsers(idp, 1, 1000)
			add("list users "+idp, []any{ids(users), n, fmt.Sprint(err)})
			groups, n, err := tx.ListGroups(idp, 1, 1000)
			add("list groups "+idp, []any{groupIDs(groups), n, fmt.Sprint(err)})
		}
		err = tx.ForEachGroup("", func(g *store.Group) error {
			add("group "+g.ID, g)
			gn, err := tx.GroupByName(g.IdP, g.DisplayName)
			add("group name of "+g.ID, []any{groupID(gn), fmt.Sprint(err)})
			ge, err := tx.GroupByExternalID(g.IdP, g.ExternalID)
			add("group externalId of "+g.ID, []any{groupID(ge), fmt.Sprint(err)})
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEachSession("", func(s *store.Session) error {
			add("session "+s.Hash, s)
			tok, err := tx.SessionTokens(s.Hash)
			add("tokens "+s.Hash, []any{tok, fmt.Sprint(err)})
			bs, err := tx.SessionsBySubject(s.IdP, s.Logout.Subject)
			add("by subject "+s.Hash, []any{hashes(bs), fmt.Sprint(err)})
			bi, err := tx.SessionsBySessionID(s.IdP, s.Logout.SessionID)
			add("by session id "+s.Hash, []any{hashes(bi), fmt.Sprint(err)})
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEachTombstone(func(ts *store.Tombstone) error {
			add("tombstone "+ts.IdP+" "+ts.Subject, ts)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEachConsumed(func(kind, id string, until time.Time) error {
			add("consumed "+kind+" "+id, until.UnixNano())
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.ForEachSecret(func(name string, value []byte) error {
			add("secret "+name, value)
			return nil
		})
		if err != nil {
			return err
		}
		ev, err := tx.AuditEvents(store.AuditQuery{Limit: 100_000})
		if err != nil {
			return err
		}
		add("audit", ev)
		c, err := tx.Counts()
		add("counts", []any{c, fmt.Sprint(err)})
		return nil
	})
	return out
}

func (e *env) sameDump(what string, want, got map[string]string) {
	e.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			e.Errorf("%s changed %s:\nbefore %s\nafter  %s", what, k, want[k], got[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			e.Errorf("%s added %s: %s", what, k, got[k])
		}
	}
}

// lookupID is the ID a user lookup found, or its error's text.
func lookupID(u *store.User, err error) string {
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "not found"
		}
		return "error " + err.Error()
	}
	return u.ID
}

func groupID(g *store.Group) string {
	if g == nil {
		return ""
	}
	return g.ID
}

func ids(us []*store.User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.ID)
	}
	return out
}

func groupIDs(gs []*store.Group) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func hashes(ss []*store.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Hash)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Times used by the tests: whole microseconds in UTC, which every backend
// keeps exactly (PostgreSQL's timestamptz has microseconds).
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// long is a string of n bytes.
func long(n int) string { return strings.Repeat("x", n) }

// Counting wraps a Store and counts the Update calls that committed (that
// returned nil), so that a test can assert how many durable writes an
// operation costs, such as "one commit per sign-in". Views are not counted.
// It does not pass on store.Broadcaster.
type Counting struct {
	store.Store
	commits atomic.Int64
}

// NewCounting wraps st.
func NewCounting(st store.Store) *Counting { return &Counting{Store: st} }

// Update runs the wrapped Update and counts it when it committed.
func (c *Counting) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := c.Store.Update(ctx, fn)
	if err == nil {
		c.commits.Add(1)
	}
	return err
}

// Commits returns the number of committed Updates so far.
func (c *Counting) Commits() int64 { return c.commits.Load() }

// Reset sets the count back to zero and returns what it was.
func (c *Counting) Reset() int64 { return c.commits.Swap(0) }

// FirstLineDiff says where two multi-line texts, such as two stores'
// exports, first differ, numbering lines from first (2 for an export
// without its header line).
func FirstLineDiff(want, got string, first int) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\nwant %s\n got %s", i+first, a, b)
		}
	}
	return "(no difference)"
}
