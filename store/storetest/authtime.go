package storetest

import (
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	register(testCase{"SessionAuthTime", testSessionAuthTime})
}

// testSessionAuthTime: a session's AuthTime (when the person last
// authenticated at the IdP) comes back from every read, to the
// nanosecond, and in the store's time zone (UTC) like the session's other
// times; a session without one reads back zero, also after a re-put clears
// it, and a touch or the sweep's neighbours leave it be.
func testSessionAuthTime(e *env) {
	u := e.putUser(&store.User{ID: "ada"})
	at := time.Date(2026, 2, 28, 23, 59, 58, 123_456_789, time.FixedZone("CET", 3600))
	want := map[string]time.Time{"at1": at, "none": {}}
	for hash, a := range want {
		s := sess(hash, u.ID)
		s.AuthTime = a
		s.Logout = store.LogoutInfo{Subject: "sub-ada", SessionID: "sid-" + hash}
		e.putSession(s)
	}
	check := func(step, via string, s *store.Session) {
		e.Helper()
		w := want[s.Hash]
		if !s.AuthTime.Equal(w) || s.AuthTime.IsZero() != w.IsZero() || (!w.IsZero() && s.AuthTime.Location() != time.UTC) {
			e.Errorf("%s: %s(%s).AuthTime = %v, want %v (UTC)", step, via, s.Hash, s.AuthTime, w)
		}
	}
	readAll := func(step string) {
		e.Helper()
		for hash := range want {
			if s := e.session(hash); s == nil {
				e.Errorf("%s: session %s not found", step, hash)
			} else {
				check(step, "Session", s)
			}
		}
		e.view(func(tx store.Tx) error {
			lists := map[string]func() ([]*store.Session, error){
				"UserSessions":      func() ([]*store.Session, error) { return tx.UserSessions(u.ID) },
				"SessionsBySubject": func() ([]*store.Session, error) { return tx.SessionsBySubject("okta", "sub-ada") },
			}
			for via, list := range lists {
				ss, err := list()
				if err != nil || len(ss) != len(want) {
					e.Errorf("%s: %s = %d sessions, %v", step, via, len(ss), err)
				}
				for _, s := range ss {
					check(step, via, s)
				}
			}
			ss, err := tx.SessionsBySessionID("okta", "sid-at1")
			if err != nil || len(ss) != 1 {
				e.Errorf("%s: SessionsBySessionID = %d sessions, %v", step, len(ss), err)
			}
			for _, s := range ss {
				check(step, "SessionsBySessionID", s)
			}
			n := 0
			err = tx.ForEachSession("", func(s *store.Session) error {
				n++
				check(step, "ForEachSession", s)
				return nil
			})
			if err != nil || n != len(want) {
				e.Errorf("%s: ForEachSession visited %d, %v", step, n, err)
			}
			return nil
		})
	}
	readAll("after PutSession")

	e.update(func(tx store.Tx) error {
		return tx.TouchSessions([]store.SessionTouch{{Hash: "at1", At: t0.Add(time.Hour)}, {Hash: "none", At: t0.Add(time.Hour)}})
	})
	readAll("after TouchSessions")

	// A re-put replaces it: with none, the session reads back without one.
	s := sess("at1", u.ID)
	s.Logout = store.LogoutInfo{Subject: "sub-ada", SessionID: "sid-at1"}
	e.putSession(s)
	want["at1"] = time.Time{}
	readAll("after a re-put without it")
}
