package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// These tests cover what is particular to this backend's encoding (times,
// text, groups kept in a member table, audit numbering). The behaviour
// both backends share is store/storetest's.

func sameJSON(t testing.TB, what string, want, got any) {
	t.Helper()
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if !bytes.Equal(w, g) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestTimesRoundTripExactly(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC),
		time.Unix(0, 1).UTC(),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond),
	}
	for _, tm := range times {
		if got := fromNanos(nanos(tm)); !got.Equal(tm) || got.IsZero() != tm.IsZero() {
			t.Errorf("nanos round trip of %v gave %v", tm, got)
		}
	}
	// Out of UnixNano's range: clamped, still ordered.
	if !(nanos(time.Time{}) < nanos(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC))) ||
		nanos(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)) != math.MaxInt64 {
		t.Error("times outside 1678..2262 are not clamped in order")
	}

	db := openTest(t)
	u := &store.User{Email: "a@x.io", Created: times[1], LastLogin: times[1].Add(time.Nanosecond)}
	putUser(t, db, u)
	s := &store.Session{Hash: "h", UserID: u.ID, IdP: "okta", Created: times[1], Expires: times[1].Add(8 * time.Hour),
		LastSeen: times[1].Add(time.Minute + 7), Logout: store.LogoutInfo{Subject: "sub", SubjectFormat: "fmt", SessionID: "sid"}}
	zero := &store.Session{Hash: "z", UserID: u.ID}
	update(t, db, func(tx store.Tx) error {
		if err := tx.PutSession(s); err != nil {
			return err
		}
		return tx.PutSession(zero)
	})
	view(t, db, func(tx store.Tx) error {
		got, err := tx.User(u.ID)
		if err != nil {
			return err
		}
		sameJSON(t, "user", u, got)
		for _, want := range []*store.Session{s, zero} {
			got, err := tx.Session(want.Hash)
			if err != nil {
				return err
			}
			sameJSON(t, "session", want, got)
		}
		return nil
	})
}

// Text PostgreSQL cannot hold (NUL bytes, invalid UTF-8) is refused on
// write with ErrInvalidValue and found nowhere on read, without breaking
// the transaction.
func TestUnstorableText(t *testing.T) {
	db := openTest(t)
	u := &store.User{Email: "ok@x.io"}
	putUser(t, db, u)
	bad := []string{"a\x00b", "\xff\xfe", "tab\there@x.io"} // the last: store.CheckIndexed, as bolt
	for _, v := range bad {
		update(t, db, func(tx store.Tx) error {
			for _, w := range []*store.User{
				{Email: v},
				{Links: []store.Link{{IdP: "okta", Subject: v}}},
			} {
				if err := tx.PutUser(w); !errors.Is(err, store.ErrInvalidValue) {
					t.Errorf("PutUser(%q): %v, want ErrInvalidValue", v, err)
				}
			}
			if _, err := tx.UserByEmail(v); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByEmail(%q): %v", v, err)
			}
			if _, err := tx.UserByLink("okta", v); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByLink(%q): %v", v, err)
			}
			if _, err := tx.Session(v); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Session(%q): %v", v, err)
			}
			// The transaction still works.
			_, err := tx.User(u.ID)
			return err
		})
	}
	// Other strings, control characters in a name the store does not
	// index among them, are kept as they are in the record; JSON carries
	// them.
	w := &store.User{Email: "tab.here@x.io", FirstName: "Zoë \u2028 ✓\tx"}
	putUser(t, db, w)
	view(t, db, func(tx store.Tx) error {
		got, err := tx.UserByEmail("TAB.HERE@x.io")
		if err != nil {
			return err
		}
		sameJSON(t, "user", w, got)
		return nil
	})
}

func TestFoldedKeys(t *testing.T) {
	db := openTest(t)
	u := &store.User{Email: "Straße@Example.com", UserName: "ÅSA"}
	putUser(t, db, u)
	g := &store.Group{IdP: "okta", DisplayName: "Straße"}
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(g) })
	view(t, db, func(tx store.Tx) error {
		for _, e := range []string{"STRASSE@example.com", "strasse@EXAMPLE.com", "Stra\u00dfe@example.com"} {
			if got, err := tx.UserByEmail(e); err != nil || got.ID != u.ID {
				t.Errorf("UserByEmail(%q): %v", e, err)
			}
		}
		// Å as A + combining ring: NFC makes it one.
		if got, err := tx.UserByUserName("a\u030asa"); err != nil || got.ID != u.ID {
			t.Errorf("UserByUserName(decomposed): %v", err)
		}
		if got, err := tx.GroupByName("okta", "STRASSE"); err != nil || got.ID != g.ID {
			t.Errorf("GroupByName: %v", err)
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		if err := tx.PutUser(&store.User{Email: "strasse@example.com"}); !errors.Is(err, store.ErrEmailTaken) {
			t.Errorf("folded email collision: %v", err)
		}
		if err := tx.PutGroup(&store.Group{IdP: "okta", DisplayName: "STRASSE"}); !errors.Is(err, store.ErrGroupNameTaken) {
			t.Errorf("folded group name collision: %v", err)
		}
		return nil
	})
}

// Group members live in their own table; the members' Groups follow
// joins, leaves, renames and deletion as in the bolt backend.
func TestGroupMembership(t *testing.T) {
	db := openTest(t)
	ann := &store.User{Email: "ann@x.io", Groups: []string{"login-group"}}
	bob := &store.User{Email: "bob@x.io"}
	putUser(t, db, ann)
	putUser(t, db, bob)
	g := &store.Group{IdP: "okta", DisplayName: "eng", Members: []string{bob.ID, ann.ID, ann.ID}}
	update(t, db, func(tx store.Tx) error { return tx.PutGroup(g) })
	wantMembers := []string{ann.ID, bob.ID}
	slices.Sort(wantMembers)
	if !slices.Equal(g.Members, wantMembers) {
		t.Errorf("members set on g = %v, want %v", g.Members, wantMembers)
	}
	if got := userGroups(t, db, ann.ID); !slices.Equal(got, []string{"eng", "login-group"}) {
		t.Errorf("ann's groups = %v", got)
	}
	// Rename, and bob leaves.
	update(t, db, func(tx store.Tx) error {
		cur, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		cur.DisplayName, cur.Members = "engineering", []string{ann.ID}
		return tx.PutGroup(cur)
	})
	if got := userGroups(t, db, ann.ID); !slices.Equal(got, []string{"engineering", "login-group"}) {
		t.Errorf("ann's groups after rename = %v", got)
	}
	if got := userGroups(t, db, bob.ID); len(got) != 0 {
		t.Errorf("bob's groups after leaving = %v", got)
	}
	view(t, db, func(tx store.Tx) error {
		refs, err := tx.GroupsOfUser(ann.ID)
		if err != nil || len(refs) != 1 || refs[0].DisplayName != "engineering" {
			t.Errorf("GroupsOfUser = %+v, %v", refs, err)
		}
		return err
	})
	// Deleting a member user takes them out of the group.
	update(t, db, func(tx store.Tx) error {
		cur, err := tx.Group(g.ID)
		if err != nil {
			return err
		}
		cur.Members = []string{ann.ID, bob.ID}
		return tx.PutGroup(cur)
	})
	update(t, db, func(tx store.Tx) error { return tx.DeleteUser(bob.ID) })
	view(t, db, func(tx store.Tx) error {
		cur, err := tx.Group(g.ID)
		if err != nil || !slices.Equal(cur.Members, []string{ann.ID}) {
			t.Errorf("members after deleting bob = %v, %v", cur, err)
		}
		return err
	})
	update(t, db, func(tx store.Tx) error {
		if err := tx.PutGroup(&store.Group{IdP: "okta", DisplayName: "x", Members: []string{"ghost"}}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing member: %v", err)
		}
		return tx.DeleteGroup(g.ID)
	})
	if got := userGroups(t, db, ann.ID); !slices.Equal(got, []string{"login-group"}) {
		t.Errorf("ann's groups after group deletion = %v", got)
	}
}

func TestSessionHousekeeping(t *testing.T) {
	db := openTest(t)
	u := &store.User{}
	putUser(t, db, u)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var all []string
	update(t, db, func(tx store.Tx) error {
		for i := range 25 {
			s := &store.Session{Hash: fmt.Sprintf("old-%02d", i), UserID: u.ID, Created: now.Add(-9 * time.Hour), Expires: now.Add(-time.Minute)}
			all = append(all, s.Hash)
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		for _, s := range []*store.Session{
			{Hash: "fresh", Created: now.Add(-time.Hour), Expires: now.Add(time.Hour), LastSeen: now.Add(-time.Minute)},
			{Hash: "idle", Created: now.Add(-3 * time.Hour), Expires: now.Add(5 * time.Hour), LastSeen: now.Add(-2 * time.Hour)},
			{Hash: "idle-edge", Created: now.Add(-3 * time.Hour), Expires: now.Add(5 * time.Hour), LastSeen: now.Add(-time.Hour)},
		} {
			s.UserID = u.ID
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		return tx.PutSessionTokens("idle", []byte("sealed"))
	})
	// Bounded: at most limit per call.
	var deleted []string
	for {
		var got []string
		update(t, db, func(tx store.Tx) (err error) {
			got, err = tx.DeleteExpiredSessions(now, time.Hour, 10)
			return err
		})
		if len(got) > 10 {
			t.Fatalf("deleted %d with limit 10", len(got))
		}
		deleted = append(deleted, got...)
		if len(got) < 10 {
			break
		}
	}
	slices.Sort(deleted)
	want := append(slices.Clone(all), "idle")
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Errorf("deleted %q, want %q", deleted, want)
	}
	view(t, db, func(tx store.Tx) error {
		if _, err := tx.SessionTokens("idle"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("tokens of a deleted session: %v", err)
		}
		return nil
	})
	// Touch moves forward only, and keeps "idle-edge" alive.
	update(t, db, func(tx store.Tx) error {
		return tx.TouchSessions([]store.SessionTouch{
			{Hash: "idle-edge", At: now.Add(-time.Minute)},
			{Hash: "idle-edge", At: now.Add(-2 * time.Minute)},
			{Hash: "fresh", At: now.Add(-time.Hour)}, // older than stored: ignored
			{Hash: "missing", At: now},
		})
	})
	view(t, db, func(tx store.Tx) error {
		for hash, want := range map[string]time.Time{"idle-edge": now.Add(-time.Minute), "fresh": now.Add(-time.Minute)} {
			s, err := tx.Session(hash)
			if err != nil || !s.LastSeen.Equal(want) {
				t.Errorf("%s last seen %v (%v), want %v", hash, s.LastSeen, err, want)
			}
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		if _, err := tx.DeleteExpiredSessions(now, 0, 0); err == nil {
			t.Error("limit 0 accepted")
		}
		got, err := tx.DeleteExpiredSessions(now.Add(30*time.Minute), time.Hour, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("after touch: deleted %q (%v)", got, err)
		}
		return err
	})
}

func TestSessionTokens(t *testing.T) {
	db := openTest(t)
	u := &store.User{}
	putUser(t, db, u)
	update(t, db, func(tx store.Tx) error {
		if err := tx.PutSessionTokens("none", []byte("x")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("tokens for a missing session: %v", err)
		}
		if err := tx.PutSession(&store.Session{Hash: "h", UserID: u.ID}); err != nil {
			return err
		}
		if got, err := tx.SessionTokens("h"); got != nil || err != nil {
			t.Errorf("no tokens yet: %q %v", got, err)
		}
		if err := tx.PutSessionTokens("h", []byte("sealed-1")); err != nil {
			return err
		}
		// Re-putting the session (a last-seen rewrite) keeps the tokens.
		if err := tx.PutSession(&store.Session{Hash: "h", UserID: u.ID, IdP: "okta"}); err != nil {
			return err
		}
		if got, err := tx.SessionTokens("h"); string(got) != "sealed-1" || err != nil {
			t.Errorf("tokens after re-put: %q %v", got, err)
		}
		if err := tx.PutSessionTokens("h", nil); err != nil {
			return err
		}
		if got, err := tx.SessionTokens("h"); got != nil || err != nil {
			t.Errorf("tokens after delete: %q %v", got, err)
		}
		if err := tx.PutSessionTokens("gone", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleting tokens of a missing session: %v", err)
		}
		return nil
	})
}

func TestAuditNumbering(t *testing.T) {
	db := openTest(t)
	update(t, db, func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventUserCreated}) })
	boom := errors.New("boom")
	err := db.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Audit(store.Event{Type: store.EventUserCreated}); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update returned %v, want fn's own error", err)
	}
	// Read-your-writes inside one transaction, and no gap from the rollback.
	update(t, db, func(tx store.Tx) error {
		if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: "u1"}); err != nil {
			return err
		}
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		if len(ev) != 2 || ev[0].Seq != 1 || ev[1].Seq != 2 || ev[1].UserID != "u1" {
			t.Errorf("events = %+v", ev)
		}
		return tx.Audit(store.Event{Type: store.EventLoginFailed})
	})
	// Import keeps Seq and Time; later events number after it.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	update(t, db, func(tx store.Tx) error {
		if err := tx.ImportAuditEvent(store.Event{Seq: 3, Type: "x", Time: old}); err == nil {
			t.Error("import of a seq that is not after the last one accepted")
		}
		return nil
	})
	update(t, db, func(tx store.Tx) error {
		if err := tx.ImportAuditEvent(store.Event{Seq: 100, Type: "imported", Time: old}); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: "after"})
	})
	view(t, db, func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{After: 3})
		if err != nil {
			return err
		}
		if len(ev) != 2 || ev[0].Seq != 100 || !ev[0].Time.Equal(old) || ev[1].Seq != 101 {
			t.Errorf("after import: %+v", ev)
		}
		ev, err = tx.AuditEvents(store.AuditQuery{Until: old.Add(time.Second)})
		if err != nil || len(ev) != 1 || ev[0].Seq != 100 {
			t.Errorf("until: %+v %v", ev, err)
		}
		return nil
	})
	// Prune stops at the first event that is not old enough.
	update(t, db, func(tx store.Tx) error {
		n, err := tx.PruneAudit(old.Add(time.Hour), time.Now(), 10)
		if err != nil || n != 0 {
			t.Errorf("pruned %d (%v): seq 1 is new and comes first", n, err)
		}
		n, err = tx.PruneAudit(time.Now().Add(time.Hour), time.Now().Add(time.Hour), 2)
		if err != nil || n != 2 {
			t.Errorf("pruned %d (%v), want 2", n, err)
		}
		ev, _ := tx.AuditEvents(store.AuditQuery{})
		if len(ev) != 3 || ev[0].Seq != 3 {
			t.Errorf("left after prune: %+v", ev)
		}
		return nil
	})
}

// Audit numbers follow commit order, so a follower paging with After
// never skips an event that commits late.
func TestAuditSeqFollowsCommitOrder(t *testing.T) {
	db := openTest(t)
	slow := make(chan struct{})
	first := make(chan error)
	go func() {
		first <- db.Update(t.Context(), func(tx store.Tx) error {
			if err := tx.Audit(store.Event{Type: "slow"}); err != nil {
				return err
			}
			<-slow // hold the transaction open before its commit
			return nil
		})
	}()
	time.Sleep(50 * time.Millisecond)
	update(t, db, func(tx store.Tx) error { return tx.Audit(store.Event{Type: "fast"}) })
	close(slow)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	view(t, db, func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		var order []string
		for _, e := range ev {
			order = append(order, fmt.Sprint(e.Seq, e.Type))
		}
		if strings.Join(order, " ") != "1fast 2slow" {
			t.Errorf("events in seq order: %v, want the commit order 1fast 2slow", order)
		}
		return nil
	})
}

// The audit lock is held from the drawing of the numbers to the commit: a
// transaction that has drawn its numbers (here early, by Counts, as a
// read of the audit table in an Update does) makes a later one wait, so
// no reader sees seq n+1 while n is still to come (a follower paging with
// After would skip n for good).
func TestAuditSeqNoGapWhileEarlierCommitPending(t *testing.T) {
	db := openTest(t)
	drawn, slow := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Update(t.Context(), func(tx store.Tx) error {
			if err := tx.Audit(store.Event{Type: "slow"}); err != nil {
				return err
			}
			if _, err := tx.Counts(); err != nil { // draws and inserts seq 1
				return err
			}
			select {
			case <-drawn: // a rerun: already told
			default:
				close(drawn)
			}
			<-slow // hold the transaction open before its commit
			return nil
		})
	}()
	<-drawn
	second := make(chan error, 1)
	go func() {
		second <- db.Update(t.Context(), func(tx store.Tx) error { return tx.Audit(store.Event{Type: "fast"}) })
	}()
	select {
	case err := <-second:
		t.Errorf("an audited Update committed (%v) while an earlier one held its numbers", err)
	case <-time.After(500 * time.Millisecond):
	}
	view(t, db, func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		for i, e := range ev {
			if e.Seq != uint64(i+1) {
				t.Errorf("visible events %v: seq %d is visible while %d is still to come", seqTypes(ev), e.Seq, i+1)
				break
			}
		}
		return nil
	})
	close(slow)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	view(t, db, func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		if got := strings.Join(seqTypes(ev), " "); got != "1slow 2fast" {
			t.Errorf("events in seq order: %v, want 1slow 2fast", got)
		}
		return nil
	})
}

// seqTypes lists events as seq and type, for messages.
func seqTypes(ev []store.Event) []string {
	var out []string
	for _, e := range ev {
		out = append(out, fmt.Sprint(e.Seq, e.Type))
	}
	return out
}

func TestWritesInViewAreReadOnly(t *testing.T) {
	db := openTest(t)
	err := db.View(t.Context(), func(tx store.Tx) error {
		for name, err := range map[string]error{
			"PutUser":  tx.PutUser(&store.User{}),
			"Audit":    tx.Audit(store.Event{Type: "x"}),
			"Touch":    tx.TouchSessions(nil),
			"Secret":   func() error { _, err := tx.Secret("new", 8); return err }(),
			"Consume":  func() error { _, err := tx.Consume("k", "i", time.Now()); return err }(),
			"PutGroup": tx.PutGroup(&store.Group{DisplayName: "g"}),
		} {
			if !errors.Is(err, store.ErrReadOnly) {
				t.Errorf("%s in View: %v, want ErrReadOnly", name, err)
			}
		}
		_, err := tx.LoadOrStoreSecret("missing", nil)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LoadOrStoreSecret look-only: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestListAndForEachPaging(t *testing.T) {
	db := openTest(t)
	const n = pageSize*2 + 7
	update(t, db, func(tx store.Tx) error {
		for i := range n {
			u := &store.User{ID: fmt.Sprintf("u%04d", i), IdP: "okta"}
			if err := tx.PutUser(u); err != nil {
				return err
			}
			if err := tx.PutSession(&store.Session{Hash: fmt.Sprintf("h%04d", i), UserID: u.ID}); err != nil {
				return err
			}
			if _, err := tx.Consume("state", fmt.Sprint(i), time.Now().Add(time.Hour)); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx store.Tx) error {
		var ids []string
		if err := tx.ForEachUser("u0009", func(u *store.User) error { ids = append(ids, u.ID); return nil }); err != nil {
			return err
		}
		if len(ids) != n-10 || ids[0] != "u0010" || !slices.IsSorted(ids) {
			t.Errorf("ForEachUser after u0009: %d users from %s", len(ids), ids[0])
		}
		var hashes int
		if err := tx.ForEachSession("", func(*store.Session) error { hashes++; return nil }); err != nil {
			return err
		}
		var consumed int
		if err := tx.ForEachConsumed(func(string, string, time.Time) error { consumed++; return nil }); err != nil {
			return err
		}
		if hashes != n || consumed != n {
			t.Errorf("ForEachSession %d, ForEachConsumed %d, want %d", hashes, consumed, n)
		}
		users, total, err := tx.ListUsers("okta", 501, 3)
		if err != nil || total != n || len(users) != 3 || users[0].ID != "u0500" {
			t.Errorf("ListUsers page: %d users, total %d, %v", len(users), total, err)
		}
		// fn may use the transaction while iterating.
		return tx.ForEachUser("u1000", func(u *store.User) error {
			_, err := tx.UserSessions(u.ID)
			return err
		})
	})
}
