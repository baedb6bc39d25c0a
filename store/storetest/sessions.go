package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	register(
		testCase{"Sessions", testSessions},
		testCase{"SessionRefusalsWriteNothing", testSessionRefusals},
		testCase{"SessionTokens", testSessionTokens},
		testCase{"SessionsBySubjectAndSessionID", testSessionsBySubject},
		testCase{"SessionNameIDQualifiers", testSessionQualifiers},
		testCase{"LockSessions", testLockSessions},
		testCase{"TouchSessions", testTouchSessions},
		testCase{"TouchSessionsRepeatedHashKeepsLatest", testTouchSessionsRepeatedHash},
		testCase{"DeleteExpiredSessions", testDeleteExpiredSessions},
		testCase{"DeleteExpiredSessionsIsBounded", testDeleteExpiredBounded},
		testCase{"DeleteExpiredSessionsBoundaries", testDeleteExpiredBoundaries},
		testCase{"ForEachSession", testForEachSession},
	)
}

func sess(hash, userID string) *store.Session {
	return &store.Session{Hash: hash, UserID: userID, IdP: "okta", Created: t0, Expires: t0.Add(8 * time.Hour), LastSeen: t0}
}

func (e *env) session(hash string) *store.Session {
	e.Helper()
	var s *store.Session
	err := e.st.View(e.Context(), func(tx store.Tx) error {
		var err error
		s, err = tx.Session(hash)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.Fatal(err)
	}
	return s
}

// testLockSessions: LockSessions reads and writes nothing, skips what is
// missing or not a session at all, and does nothing in a View; the
// sessions it locked are then deleted one at a time, in any order.
func testLockSessions(e *env) {
	alice := e.putUser(&store.User{ID: "alice"})
	bob := e.putUser(&store.User{ID: "bob"})
	for _, h := range []string{"h-a1", "h-a2", "h-a3"} {
		e.putSession(sess(h, alice.ID))
	}
	e.putSession(sess("h-b1", bob.ID))
	before := e.dump()
	for _, c := range []struct {
		userID string
		hashes []string
	}{
		{alice.ID, []string{"h-b1"}},
		{alice.ID, nil},
		{"", []string{"h-a2", "h-b1", "h-a1"}},
		{"nobody", []string{"missing", "", "bad\x00hash"}},
		{"", nil},
	} {
		e.view(func(tx store.Tx) error {
			if err := tx.LockSessions(c.userID, c.hashes); err != nil {
				e.Errorf("LockSessions(%q, %q) in a View: %v", c.userID, c.hashes, err)
			}
			return nil
		})
		e.update(func(tx store.Tx) error {
			if err := tx.LockSessions(c.userID, c.hashes); err != nil {
				e.Errorf("LockSessions(%q, %q): %v", c.userID, c.hashes, err)
			}
			return nil
		})
	}
	e.sameDump("LockSessions", before, e.dump())
	e.update(func(tx store.Tx) error {
		if err := tx.LockSessions(alice.ID, []string{"h-b1"}); err != nil {
			return err
		}
		for _, h := range []string{"h-b1", "h-a3", "h-a1"} {
			if err := tx.DeleteSession(h); err != nil {
				return fmt.Errorf("DeleteSession(%s) after LockSessions: %w", h, err)
			}
		}
		return nil
	})
	e.view(func(tx store.Tx) error {
		a, _ := tx.UserSessions(alice.ID)
		b, _ := tx.UserSessions(bob.ID)
		if !slices.Equal(hashes(a), []string{"h-a2"}) || len(b) != 0 {
			e.Errorf("after the deletions: alice %v, bob %v; want [h-a2], none", hashes(a), hashes(b))
		}
		return nil
	})
}

func testSessions(e *env) {
	alice := e.putUser(&store.User{ID: "alice"})
	bob := e.putUser(&store.User{ID: "bob"})
	s := sess("h-a1", alice.ID)
	s.Logout = store.LogoutInfo{Subject: "alice@idp", SubjectFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent", SessionID: "idx-1"}
	s.LastSeen = t0.Add(time.Minute)
	e.putSession(s)
	e.putSession(sess("h-a2", alice.ID))
	e.putSession(sess("h-b1", bob.ID))
	e.sameJSON("Session", s, e.session("h-a1"))
	if e.session("nope") != nil {
		e.Error("Session(missing) found something")
	}
	e.view(func(tx store.Tx) error {
		ss, err := tx.UserSessions(alice.ID)
		if err != nil || !slices.Equal(hashes(ss), []string{"h-a1", "h-a2"}) {
			e.Errorf("UserSessions(alice) = %v, %v (want hash order)", hashes(ss), err)
		}
		if ss, _ := tx.UserSessions("nobody"); len(ss) != 0 {
			e.Errorf("UserSessions(nobody) = %v", hashes(ss))
		}
		return nil
	})
	if c := e.counts(); c.Sessions != 3 {
		e.Errorf("Counts.Sessions = %d", c.Sessions)
	}
	// Re-putting a hash under another user moves it between the users.
	e.putSession(sess("h-a2", bob.ID))
	e.view(func(tx store.Tx) error {
		a, _ := tx.UserSessions(alice.ID)
		b, _ := tx.UserSessions(bob.ID)
		if !slices.Equal(hashes(a), []string{"h-a1"}) || !slices.Equal(hashes(b), []string{"h-a2", "h-b1"}) {
			e.Errorf("after moving h-a2: alice %v, bob %v", hashes(a), hashes(b))
		}
		return nil
	})
	if c := e.counts(); c.Sessions != 3 {
		e.Errorf("Counts.Sessions after a re-put = %d", c.Sessions)
	}
	// A returned session is a copy.
	e.view(func(tx store.Tx) error {
		got, err := tx.Session("h-a1")
		if err != nil {
			return err
		}
		got.UserID, got.Logout.Subject = "bob", "evil"
		return nil
	})
	e.sameJSON("Session after changing a copy", s, e.session("h-a1"))

	e.update(func(tx store.Tx) error {
		got, err := tx.DeleteUserSessions(bob.ID)
		if err != nil {
			return err
		}
		if slices.Sort(got); !slices.Equal(got, []string{"h-a2", "h-b1"}) {
			e.Errorf("DeleteUserSessions(bob) = %v", got)
		}
		if got, err := tx.DeleteUserSessions(bob.ID); err != nil || len(got) != 0 {
			e.Errorf("DeleteUserSessions again = %v, %v", got, err)
		}
		if err := tx.DeleteSession("h-a1"); err != nil {
			return err
		}
		if err := tx.DeleteSession("h-a1"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("DeleteSession twice: %v, want ErrNotFound", err)
		}
		return nil
	})
	if c := e.counts(); c.Sessions != 0 {
		e.Errorf("Counts.Sessions after deleting all = %d", c.Sessions)
	}
	e.view(func(tx store.Tx) error {
		if ss, _ := tx.SessionsBySubject("okta", "alice@idp"); len(ss) != 0 {
			e.Errorf("subject index kept a deleted session")
		}
		if ss, _ := tx.SessionsBySessionID("okta", "idx-1"); len(ss) != 0 {
			e.Errorf("session ID index kept a deleted session")
		}
		return nil
	})
}

func testSessionRefusals(e *env) {
	u := e.putUser(&store.User{ID: "u"})
	e.putSession(sess("h1", u.ID))
	tests := []struct {
		name string
		s    *store.Session
		want error // nil: any error
	}{
		{"missing user", sess("h2", "ghost"), store.ErrNotFound},
		{"no hash", sess("", u.ID), nil},
		{"no user", sess("h2", ""), nil},
		{"hash too long", sess(long(store.MaxKeyBytes+1), u.ID), store.ErrValueTooLong},
		{"subject too long", &store.Session{Hash: "h2", UserID: u.ID, Logout: store.LogoutInfo{Subject: long(store.MaxKeyBytes + 1)}}, store.ErrValueTooLong},
		{"session ID too long", &store.Session{Hash: "h2", UserID: u.ID, Logout: store.LogoutInfo{SessionID: long(store.MaxKeyBytes + 1)}}, store.ErrValueTooLong},
		{"replacing, subject too long", &store.Session{Hash: "h1", UserID: u.ID, Logout: store.LogoutInfo{Subject: long(store.MaxKeyBytes + 1)}}, store.ErrValueTooLong},
	}
	for _, tt := range tests {
		before := e.dump()
		err := e.st.Update(e.Context(), func(tx store.Tx) error {
			err := tx.PutSession(tt.s)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				e.Errorf("%s: PutSession = %v, want %v", tt.name, err, tt.want)
			}
			return nil
		})
		if err != nil {
			e.Fatal(err)
		}
		e.sameDump(tt.name, before, e.dump())
	}
}

func testSessionTokens(e *env) {
	u := e.putUser(&store.User{ID: "u"})
	e.putSession(sess("h1", u.ID))
	e.putSession(sess("h2", u.ID))
	e.view(func(tx store.Tx) error {
		if tok, err := tx.SessionTokens("h1"); tok != nil || err != nil {
			e.Errorf("SessionTokens of a session without: %q, %v; want nil, nil", tok, err)
		}
		if _, err := tx.SessionTokens("ghost"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("SessionTokens(missing session): %v", err)
		}
		return nil
	})
	blob := bytes.Repeat([]byte{1, 0, 0xff}, 500) // opaque, binary, over a kilobyte
	e.update(func(tx store.Tx) error { return tx.PutSessionTokens("h1", blob) })
	blob[0] = 9 // the store kept its own copy
	e.view(func(tx store.Tx) error {
		got, err := tx.SessionTokens("h1")
		if err != nil || len(got) != 1500 || got[0] != 1 {
			e.Errorf("SessionTokens = %d bytes starting %v, %v", len(got), got[:min(len(got), 1)], err)
		}
		got[1] = 7 // a copy for the caller
		if again, _ := tx.SessionTokens("h1"); again[1] != 0 {
			e.Error("SessionTokens returned the store's own bytes")
		}
		if tok, _ := tx.SessionTokens("h2"); tok != nil {
			e.Errorf("other session got tokens: %q", tok)
		}
		return nil
	})
	// PutSession keeps them; replacing works; nil deletes.
	s := sess("h1", u.ID)
	s.Logout.Subject = "changed"
	e.putSession(s)
	e.update(func(tx store.Tx) error {
		if tok, _ := tx.SessionTokens("h1"); len(tok) != 1500 {
			e.Errorf("PutSession dropped the tokens: %d bytes", len(tok))
		}
		if err := tx.PutSessionTokens("h1", []byte("second")); err != nil {
			return err
		}
		if tok, _ := tx.SessionTokens("h1"); string(tok) != "second" {
			e.Errorf("replaced tokens = %q", tok)
		}
		if err := tx.PutSessionTokens("h1", nil); err != nil {
			return err
		}
		if tok, err := tx.SessionTokens("h1"); tok != nil || err != nil {
			e.Errorf("deleted tokens = %q, %v", tok, err)
		}
		if err := tx.PutSessionTokens("ghost", []byte("x")); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("PutSessionTokens(missing session): %v", err)
		}
		return tx.PutSessionTokens("h2", []byte("h2 tokens"))
	})
	// Deleting a session deletes its tokens: a new session under the same
	// hash has none.
	e.update(func(tx store.Tx) error { return tx.DeleteSession("h2") })
	e.putSession(sess("h2", u.ID))
	e.view(func(tx store.Tx) error {
		if tok, err := tx.SessionTokens("h2"); tok != nil || err != nil {
			e.Errorf("tokens outlived their session: %q, %v", tok, err)
		}
		return nil
	})
}

// testSessionQualifiers: a session's SAML NameID qualifiers come back from
// every read of it (Session, SessionsBySubject), beside a session without
// them (the SP-initiated LogoutRequest names the NameID as it was issued).
func testSessionQualifiers(e *env) {
	u := e.putUser(&store.User{ID: "ada"})
	const persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	want := map[string]store.LogoutInfo{
		"q1": {Subject: "opaque-ada", SubjectFormat: persistent, SessionID: "idx-1",
			NameQualifier: "https://idp.example.com/idp/shibboleth", SPNameQualifier: "https://app.example.com/.sso/saml/shib/metadata"},
		"q2": {Subject: "opaque-ada", SubjectFormat: persistent, SessionID: "idx-2"},
	}
	for hash, l := range want {
		s := sess(hash, u.ID)
		s.IdP, s.Logout = "shib", l
		e.putSession(s)
	}
	if got := e.session("q1"); got == nil || got.Logout != want["q1"] {
		e.Errorf("Session: %+v, want logout %+v", got, want["q1"])
	}
	e.view(func(tx store.Tx) error {
		by, err := tx.SessionsBySubject("shib", "opaque-ada")
		if err != nil {
			return err
		}
		if len(by) != len(want) {
			e.Errorf("SessionsBySubject: %d sessions, want %d", len(by), len(want))
		}
		for _, s := range by {
			if s.Logout != want[s.Hash] {
				e.Errorf("SessionsBySubject: %s logout %+v, want %+v", s.Hash, s.Logout, want[s.Hash])
			}
		}
		return nil
	})
}

func testSessionsBySubject(e *env) {
	alice := e.putUser(&store.User{ID: "alice"})
	bob := e.putUser(&store.User{ID: "bob"})
	mk := func(hash, user, idp, subject, sid string) *store.Session {
		s := sess(hash, user)
		s.IdP, s.Logout = idp, store.LogoutInfo{Subject: subject, SessionID: sid}
		return s
	}
	for _, s := range []*store.Session{
		mk("a1", alice.ID, "entra", "alice@x.io", "i1"),
		mk("a2", alice.ID, "entra", "alice@x.io", "i2"),
		mk("a3", alice.ID, "okta", "alice@x.io", "i1"), // same subject and SID, other IdP
		mk("b1", bob.ID, "entra", "alice@x.io.evil", "i1x"),
		mk("b2", bob.ID, "entra", "alice", "i"), // prefixes of other values
		mk("o1", bob.ID, "oidc", "", ""),        // nothing to index
	} {
		e.putSession(s)
	}
	check := func(step string) func(idp, v string, bySID bool, want ...string) {
		return func(idp, v string, bySID bool, want ...string) {
			e.Helper()
			e.view(func(tx store.Tx) error {
				var ss []*store.Session
				var err error
				if bySID {
					ss, err = tx.SessionsBySessionID(idp, v)
				} else {
					ss, err = tx.SessionsBySubject(idp, v)
				}
				if err != nil {
					return err
				}
				if got := sorted(hashes(ss)); !slices.Equal(got, want) {
					e.Errorf("%s: by %s (%q, %q) = %v, want %v", step, map[bool]string{true: "session ID", false: "subject"}[bySID], idp, v, got, want)
				}
				return nil
			})
		}
	}
	c := check("initial")
	c("entra", "alice@x.io", false, "a1", "a2")
	c("okta", "alice@x.io", false, "a3")
	c("entra", "alice", false, "b2")
	c("entra", "nobody", false)
	c("oidc", "", false)
	c("entra", "i1", true, "a1")
	c("okta", "i1", true, "a3")
	c("entra", "i", true, "b2")
	c("oidc", "", true)
	// Re-putting with other logout data moves the entries.
	e.putSession(mk("a2", alice.ID, "entra", "alice2@x.io", "i9"))
	c = check("after re-put")
	c("entra", "alice@x.io", false, "a1")
	c("entra", "alice2@x.io", false, "a2")
	c("entra", "i2", true)
	c("entra", "i9", true, "a2")
	// Every way a session goes removes its entries.
	e.update(func(tx store.Tx) error { return tx.DeleteSession("a1") })
	e.update(func(tx store.Tx) error { _, err := tx.DeleteUserSessions(bob.ID); return err })
	c = check("after deletes")
	c("entra", "alice@x.io", false)
	c("entra", "alice", false)
	c("entra", "i1", true)
	e.update(func(tx store.Tx) error { return tx.DeleteUser(alice.ID) })
	c = check("after DeleteUser")
	c("entra", "alice2@x.io", false)
	c("okta", "i1", true)
}

func testTouchSessions(e *env) {
	u := e.putUser(&store.User{ID: "u"})
	s := sess("h1", u.ID)
	s.Logout.Subject = "sub"
	e.putSession(s)
	e.putSession(sess("h2", u.ID))
	e.update(func(tx store.Tx) error {
		return tx.TouchSessions([]store.SessionTouch{
			{Hash: "h1", At: t0.Add(10 * time.Minute)},
			{Hash: "ghost", At: t0.Add(time.Minute)}, // skipped
			{Hash: "h2", At: t0.Add(-time.Minute)},   // never back
		})
	})
	want := *s
	want.LastSeen = t0.Add(10 * time.Minute)
	e.sameJSON("touched session", &want, e.session("h1"))
	if got := e.session("h2").LastSeen; !got.Equal(t0) {
		e.Errorf("a touch moved LastSeen back to %v", got)
	}
	if e.session("ghost") != nil {
		e.Error("TouchSessions created a session")
	}
	e.update(func(tx store.Tx) error {
		return tx.TouchSessions([]store.SessionTouch{{Hash: "h1", At: t0.Add(5 * time.Minute)}})
	})
	if got := e.session("h1").LastSeen; !got.Equal(t0.Add(10 * time.Minute)) {
		e.Errorf("LastSeen = %v after an older touch", got)
	}
	// The idle timeout counts from the last touch.
	e.update(func(tx store.Tx) error {
		gone, err := tx.DeleteExpiredSessions(t0.Add(65*time.Minute), time.Hour, 10)
		if err != nil {
			return err
		}
		if !slices.Equal(gone, []string{"h2"}) {
			e.Errorf("idle sweep after touches removed %v, want [h2]", gone)
		}
		return nil
	})
	e.update(func(tx store.Tx) error { return tx.TouchSessions(nil) })
}

// testTouchSessionsRepeatedHash: a batch may name one session more than
// once (the session manager flushes a cached entry and an evicted one of
// the same session together); the latest time wins whatever the order, or
// the idle sweep signs the user out early.
func testTouchSessionsRepeatedHash(e *env) {
	u := e.putUser(&store.User{ID: "u"})
	for _, h := range []string{"later-first", "later-last"} {
		e.putSession(sess(h, u.ID))
	}
	e.update(func(tx store.Tx) error {
		return tx.TouchSessions([]store.SessionTouch{
			{Hash: "later-first", At: t0.Add(50 * time.Minute)},
			{Hash: "later-last", At: t0.Add(10 * time.Minute)},
			{Hash: "later-first", At: t0.Add(10 * time.Minute)},
			{Hash: "later-last", At: t0.Add(50 * time.Minute)},
		})
	})
	for _, h := range []string{"later-first", "later-last"} {
		if got := e.session(h).LastSeen; !got.Equal(t0.Add(50 * time.Minute)) {
			e.Errorf("session %s: LastSeen = %v, want the latest touch, %v", h, got, t0.Add(50*time.Minute))
		}
	}
	e.update(func(tx store.Tx) error {
		gone, err := tx.DeleteExpiredSessions(t0.Add(70*time.Minute), 30*time.Minute, 10)
		if err != nil {
			return err
		}
		if len(gone) != 0 {
			e.Errorf("idle sweep 20 minutes after the latest touch removed %v, want none", gone)
		}
		return nil
	})
}

func testDeleteExpiredSessions(e *env) {
	now := t0.Add(10 * time.Hour)
	sessions := []store.Session{
		{Hash: "fresh", Created: now.Add(-time.Hour), Expires: now.Add(time.Hour), LastSeen: now.Add(-time.Minute)},
		{Hash: "absolute", Created: now.Add(-9 * time.Hour), Expires: now.Add(-time.Second), LastSeen: now.Add(-time.Minute)},
		{Hash: "idle", Created: now.Add(-3 * time.Hour), Expires: now.Add(5 * time.Hour), LastSeen: now.Add(-2 * time.Hour)},
		{Hash: "idle-edge", Created: now.Add(-3 * time.Hour), Expires: now.Add(5 * time.Hour), LastSeen: now.Add(-time.Hour)},
		{Hash: "expires-now", Created: now.Add(-time.Hour), Expires: now, LastSeen: now},
		{Hash: "never-seen-new", Created: now.Add(-time.Minute), Expires: now.Add(time.Hour)},
		{Hash: "never-seen-old", Created: now.Add(-2 * time.Hour), Expires: now.Add(time.Hour)},
		{Hash: "no-expiry", Created: now.Add(-time.Minute), LastSeen: now},
	}
	tests := []struct {
		idle time.Duration
		want []string
	}{
		{0, []string{"absolute", "no-expiry"}},
		{time.Hour, []string{"absolute", "idle", "never-seen-old", "no-expiry"}},
		{30 * time.Second, []string{"absolute", "fresh", "idle", "idle-edge", "never-seen-new", "never-seen-old", "no-expiry"}},
	}
	for i, tt := range tests {
		uid := fmt.Sprint("u", i)
		e.putUser(&store.User{ID: uid})
		e.update(func(tx store.Tx) error {
			for _, s := range sessions {
				s.Hash = fmt.Sprint(i, "-", s.Hash)
				s.UserID = uid
				s.Logout.Subject = s.Hash
				if err := tx.PutSession(&s); err != nil {
					return err
				}
				if err := tx.PutSessionTokens(s.Hash, []byte("t")); err != nil {
					return err
				}
			}
			return nil
		})
		var want []string
		for _, h := range tt.want {
			want = append(want, fmt.Sprint(i, "-", h))
		}
		e.update(func(tx store.Tx) error {
			got, err := tx.DeleteExpiredSessions(now, tt.idle, 100)
			if err != nil {
				return err
			}
			if got = sorted(got); !slices.Equal(got, want) {
				e.Errorf("idle %v: deleted %v, want %v", tt.idle, got, want)
			}
			for _, h := range want {
				if _, err := tx.Session(h); !errors.Is(err, store.ErrNotFound) {
					e.Errorf("%s still there", h)
				}
				if _, err := tx.SessionTokens(h); !errors.Is(err, store.ErrNotFound) {
					e.Errorf("tokens of %s still there", h)
				}
				if ss, _ := tx.SessionsBySubject("", h); len(ss) != 0 {
					e.Errorf("subject index of %s still there", h)
				}
			}
			return nil
		})
		// Everything else goes with the next call; nothing is left over.
		e.update(func(tx store.Tx) error {
			if _, err := tx.DeleteExpiredSessions(now.Add(100*time.Hour), 0, 100); err != nil {
				return err
			}
			if got, _ := tx.DeleteExpiredSessions(now.Add(100*time.Hour), 0, 100); len(got) != 0 {
				e.Errorf("second sweep deleted %v", got)
			}
			return nil
		})
	}
	if c := e.counts(); c.Sessions != 0 {
		e.Errorf("Counts.Sessions after sweeping all = %d", c.Sessions)
	}
}

// testDeleteExpiredBounded: a sweep removes at most limit sessions per
// call, and callers loop until fewer come back.
func testDeleteExpiredBounded(e *env) {
	u := e.putUser(&store.User{ID: "u"})
	e.update(func(tx store.Tx) error {
		for i := range 25 {
			// Even ones are due by expiry only (seen within the idle
			// timeout), odd ones by idleness only, so that a sweep
			// that takes up to limit from each index, and not limit
			// in all, deletes more than limit.
			s := sess(fmt.Sprintf("h%02d", i), u.ID)
			s.Expires, s.LastSeen = t0.Add(45*time.Minute+time.Duration(i)*time.Second), t0.Add(45*time.Minute)
			if i%2 == 1 {
				s.Expires, s.LastSeen = t0.Add(24*time.Hour), t0.Add(time.Duration(i)*time.Second)
			}
			if err := tx.PutSession(s); err != nil {
				return err
			}
		}
		keep := sess("keep", u.ID) // expires t0+8h, seen at now
		keep.LastSeen = t0.Add(time.Hour)
		return tx.PutSession(keep)
	})
	now := t0.Add(time.Hour)
	var all []string
	calls := 0
	for {
		var got []string
		e.update(func(tx store.Tx) error {
			var err error
			got, err = tx.DeleteExpiredSessions(now, 30*time.Minute, 10)
			return err
		})
		calls++
		if len(got) > 10 {
			e.Fatalf("limit 10, deleted %d", len(got))
		}
		all = append(all, got...)
		if len(got) < 10 || calls > 10 {
			break
		}
	}
	if len(all) != 25 || calls != 3 || len(slices.Compact(sorted(all))) != 25 {
		e.Errorf("bounded sweep: %d sessions in %d calls (%v), want 25 in 3", len(all), calls, sorted(all))
	}
	if e.session("keep") == nil {
		e.Error("bounded sweep removed a live session")
	}
	for _, limit := range []int{0, -1} {
		err := e.st.Update(e.Context(), func(tx store.Tx) error {
			_, err := tx.DeleteExpiredSessions(now, 0, limit)
			return err
		})
		if err == nil {
			e.Errorf("DeleteExpiredSessions with limit %d succeeded", limit)
		}
	}
}

// testDeleteExpiredBoundaries: a session is due once its expiry is before
// now, or its last sign of life is more than the idle timeout ago; one
// that expires at now, or was seen exactly the timeout ago, stays, and
// goes a nanosecond later.
func testDeleteExpiredBoundaries(e *env) {
	now := t0.Add(10 * time.Hour)
	idle := 10 * time.Minute
	u := e.putUser(&store.User{ID: "u"})
	for _, s := range []*store.Session{
		{Hash: "expires-now", Created: now.Add(-time.Minute), Expires: now, LastSeen: now.Add(-time.Minute)},
		{Hash: "idle-now", Created: now.Add(-time.Hour), Expires: now.Add(time.Hour), LastSeen: now.Add(-idle)},
		{Hash: "created-idle-now", Created: now.Add(-idle), Expires: now.Add(time.Hour)},
	} {
		s.UserID = u.ID
		e.putSession(s)
	}
	sweep := func(at time.Time) []string {
		var got []string
		e.update(func(tx store.Tx) error {
			var err error
			got, err = tx.DeleteExpiredSessions(at, idle, 10)
			return err
		})
		return sorted(got)
	}
	if got := sweep(now); len(got) != 0 {
		e.Errorf("DeleteExpiredSessions(now) deleted %v; sessions on the boundary are not yet due", got)
	}
	if got, want := sweep(now.Add(time.Nanosecond)), []string{"created-idle-now", "expires-now", "idle-now"}; !slices.Equal(got, want) {
		e.Errorf("DeleteExpiredSessions(now+1ns) deleted %v, want %v", got, want)
	}
}

func testForEachSession(e *env) {
	u := e.putUser(&store.User{ID: "u"})
	for _, h := range []string{"c", "a", "b"} {
		e.putSession(sess(h, u.ID))
	}
	e.update(func(tx store.Tx) error {
		return tx.TouchSessions([]store.SessionTouch{{Hash: "b", At: t0.Add(time.Hour)}})
	})
	e.view(func(tx store.Tx) error {
		var got []string
		err := tx.ForEachSession("a", func(s *store.Session) error {
			got = append(got, s.Hash)
			if s.Hash == "b" && !s.LastSeen.Equal(t0.Add(time.Hour)) {
				e.Errorf("ForEachSession LastSeen = %v", s.LastSeen)
			}
			return nil
		})
		if err != nil || !slices.Equal(got, []string{"b", "c"}) {
			e.Errorf("ForEachSession(after a) = %v, %v", got, err)
		}
		return nil
	})
}
