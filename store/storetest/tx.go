package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	register(
		testCase{"WritesInViewAreReadOnly", testReadOnly},
		testCase{"ErrorInUpdateRollsBack", testRollback},
		testCase{"CancelledContext", testCancelled},
		testCase{"ConcurrentUpdatesAllLand", testConcurrentUpdates},
		testCase{"ConcurrentUpdatesWithFailures", testConcurrentFailures},
		testCase{"ConcurrentReadModifyWrite", testReadModifyWrite},
		testCase{"ConsumeIsSingleUseUnderConcurrency", testConsumeConcurrent},
		testCase{"Counting", testCounting},
	)
}

func testReadOnly(e *env) {
	u := e.putUser(&store.User{ID: "u", Email: "a@x.io"})
	e.putSession(sess("h", u.ID))
	e.putGroup(&store.Group{ID: "g", IdP: "okta", DisplayName: "G"})
	e.update(func(tx store.Tx) error { _, err := tx.Consume("k", "old", t0); return err })
	e.update(func(tx store.Tx) error { _, err := tx.LoadOrStoreSecret("old", []byte("v")); return err })
	before := e.dump()
	writes := []struct {
		name string
		fn   func(store.Tx) error
	}{
		{"PutUser", func(tx store.Tx) error { return tx.PutUser(&store.User{}) }},
		{"DeleteUser", func(tx store.Tx) error { return tx.DeleteUser(u.ID) }},
		{"PutGroup", func(tx store.Tx) error { return tx.PutGroup(&store.Group{DisplayName: "x"}) }},
		{"DeleteGroup", func(tx store.Tx) error { return tx.DeleteGroup("g") }},
		{"PutTombstone", func(tx store.Tx) error { return tx.PutTombstone(&store.Tombstone{IdP: "okta", Subject: "s"}) }},
		{"DeleteTombstone", func(tx store.Tx) error { return tx.DeleteTombstone("okta", "s") }},
		{"PutSession", func(tx store.Tx) error { return tx.PutSession(sess("x", u.ID)) }},
		{"DeleteSession", func(tx store.Tx) error { return tx.DeleteSession("h") }},
		{"PutSessionTokens", func(tx store.Tx) error { return tx.PutSessionTokens("h", []byte("t")) }},
		{"DeleteUserSessions", func(tx store.Tx) error { _, err := tx.DeleteUserSessions(u.ID); return err }},
		{"DeleteExpiredSessions", func(tx store.Tx) error { _, err := tx.DeleteExpiredSessions(t0.Add(1e6*time.Hour), 0, 10); return err }},
		{"TouchSessions", func(tx store.Tx) error {
			return tx.TouchSessions([]store.SessionTouch{{Hash: "h", At: t0.Add(time.Hour)}})
		}},
		{"Consume", func(tx store.Tx) error { _, err := tx.Consume("k", "i", time.Now().Add(time.Hour)); return err }},
		{"PruneConsumed", func(tx store.Tx) error { _, err := tx.PruneConsumed(time.Now(), 10); return err }},
		{"Secret (new)", func(tx store.Tx) error { _, err := tx.Secret("new", 32); return err }},
		{"LoadOrStoreSecret (new)", func(tx store.Tx) error { _, err := tx.LoadOrStoreSecret("new", []byte("v")); return err }},
		{"DeleteSecret", func(tx store.Tx) error { return tx.DeleteSecret("old") }},
		{"Audit", func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventLoginFailed}) }},
		{"PruneAudit", func(tx store.Tx) error { _, err := tx.PruneAudit(time.Now(), time.Now(), 10); return err }},
		{"ImportAuditEvent", func(tx store.Tx) error { return tx.ImportAuditEvent(store.Event{Seq: 99, Type: "x"}) }},
	}
	for _, w := range writes {
		if err := e.st.View(e.Context(), w.fn); !errors.Is(err, store.ErrReadOnly) {
			e.Errorf("%s in a View: %v, want ErrReadOnly", w.name, err)
		}
	}
	e.sameDump("writes in a View", before, e.dump())
}

func testRollback(e *env) {
	keep := e.putUser(&store.User{Email: "keep@x.io", Links: []store.Link{{IdP: "okta", Subject: "keep"}}})
	e.putSession(sess("h0", keep.ID))
	e.update(func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventUserCreated, Time: t0}) })
	e.update(func(tx store.Tx) error { _, err := tx.LoadOrStoreSecret("kept", []byte("v")); return err })
	before := e.dump()
	boom := errors.New("boom")
	err := e.st.Update(e.Context(), func(tx store.Tx) error {
		u := &store.User{Email: "gone@x.io", UserName: "gone", Links: []store.Link{{IdP: "okta", Subject: "gone"}}}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		keep.FirstName = "changed"
		if err := tx.PutUser(keep); err != nil {
			return err
		}
		if err := tx.PutGroup(&store.Group{IdP: "okta", DisplayName: "G", Members: []string{u.ID, keep.ID}}); err != nil {
			return err
		}
		if err := tx.PutSession(sess("h1", u.ID)); err != nil {
			return err
		}
		if err := tx.PutSessionTokens("h0", []byte("t")); err != nil {
			return err
		}
		if err := tx.TouchSessions([]store.SessionTouch{{Hash: "h0", At: t0.Add(time.Hour)}}); err != nil {
			return err
		}
		if err := tx.PutTombstone(&store.Tombstone{IdP: "okta", Subject: "x"}); err != nil {
			return err
		}
		if _, err := tx.Consume("state", "s", time.Now().Add(time.Hour)); err != nil {
			return err
		}
		if _, err := tx.Secret("k", 16); err != nil {
			return err
		}
		if err := tx.DeleteSecret("kept"); err != nil {
			return err
		}
		if err := tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		e.Fatalf("Update = %v, want fn's error", err)
	}
	e.sameDump("rolled-back Update", before, e.dump())
	// The audit sequence number the failed Update drew is not skipped
	// by... anything observable: later events still number upwards.
	e.update(func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventUserCreated}) })
	e.view(func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		if len(ev) != 2 || ev[1].Seq <= ev[0].Seq {
			e.Errorf("audit after rollback: %+v", ev)
		}
		return nil
	})
}

func testCancelled(e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	fn := func(store.Tx) error { ran = true; return nil }
	if err := e.st.Update(ctx, fn); !errors.Is(err, context.Canceled) {
		e.Errorf("Update on a cancelled context: %v", err)
	}
	if err := e.st.View(ctx, fn); !errors.Is(err, context.Canceled) {
		e.Errorf("View on a cancelled context: %v", err)
	}
	if ran {
		e.Error("fn ran on a cancelled context")
	}
}

func testConcurrentUpdates(e *env) {
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = e.st.Update(context.Background(), func(tx store.Tx) error {
				u := &store.User{Email: fmt.Sprintf("u%d@x.io", i), Links: []store.Link{{IdP: "okta", Subject: strconv.Itoa(i)}}}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				if err := tx.PutSession(sess(fmt.Sprint("h", i), u.ID)); err != nil {
					return err
				}
				return tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID})
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.Errorf("Update %d: %v", i, err)
		}
	}
	e.view(func(tx store.Tx) error {
		for i := range n {
			u, err := tx.UserByLink("okta", strconv.Itoa(i))
			if err != nil {
				e.Errorf("user %d: %v", i, err)
				continue
			}
			if ss, _ := tx.UserSessions(u.ID); len(ss) != 1 {
				e.Errorf("user %d has %d sessions", i, len(ss))
			}
		}
		return nil
	})
	if c := e.counts(); c.Users != n || c.Sessions != n || c.AuditEvents != n {
		e.Errorf("Counts = %+v, want %d of each", c, n)
	}
}

// testConcurrentFailures: a backend that batches Updates must keep a
// failing fn's writes out of the others' commit, and the others in.
func testConcurrentFailures(e *env) {
	const n = 40
	boom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i] = e.st.Update(context.Background(), func(tx store.Tx) error {
				u := &store.User{Links: []store.Link{{IdP: "okta", Subject: strconv.Itoa(i)}}}
				if err := tx.PutUser(u); err != nil {
					return err
				}
				if err := tx.Audit(store.Event{Type: store.EventUserCreated, UserID: u.ID}); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom
				}
				return nil
			})
		})
	}
	wg.Wait()
	e.view(func(tx store.Tx) error {
		for i, err := range results {
			_, lookErr := tx.UserByLink("okta", strconv.Itoa(i))
			switch {
			case i%3 == 0 && (!errors.Is(err, boom) || !errors.Is(lookErr, store.ErrNotFound)):
				e.Errorf("%d: failing Update returned %v, lookup %v", i, err, lookErr)
			case i%3 != 0 && (err != nil || lookErr != nil):
				e.Errorf("%d: Update %v, lookup %v", i, err, lookErr)
			}
		}
		return nil
	})
	want := n - (n+2)/3
	if c := e.counts(); c.Users != want || c.AuditEvents != want {
		e.Errorf("Counts = %+v, want %d users and events", c, want)
	}
}

// testReadModifyWrite: 50 concurrent Updates each read a counter and write
// it back incremented. A backend that reruns fn (batching, serialization
// retries) must give each run the state as of its own transaction, so no
// increment is lost and none is applied twice.
func testReadModifyWrite(e *env) {
	e.putUser(&store.User{ID: "counter", FirstName: "0"})
	const n = 50
	var runs atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := e.st.Update(context.Background(), func(tx store.Tx) error {
				runs.Add(1)
				u, err := tx.User("counter")
				if err != nil {
					return err
				}
				v, _ := strconv.Atoi(u.FirstName)
				u.FirstName = strconv.Itoa(v + 1)
				return tx.PutUser(u)
			})
			if err != nil {
				e.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	if got := e.user("counter").FirstName; got != strconv.Itoa(n) {
		e.Errorf("counter = %s after %d increments (%d runs of fn)", got, n, runs.Load())
	}
}

func testConsumeConcurrent(e *env) {
	const n = 50
	var fresh atomic.Int64
	var wg sync.WaitGroup
	until := time.Now().Add(time.Hour)
	for range n {
		wg.Go(func() {
			var ok bool
			err := e.st.Update(context.Background(), func(tx store.Tx) error {
				var err error
				ok, err = tx.Consume("saml", "assertion-1", until)
				return err
			})
			if err != nil {
				e.Errorf("Consume: %v", err)
			}
			if ok {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if got := fresh.Load(); got != 1 {
		e.Errorf("%d of %d concurrent Consumes of one ID reported it fresh, want 1", got, n)
	}
}

func testCounting(e *env) {
	c := NewCounting(e.st)
	if err := c.Update(e.Context(), func(tx store.Tx) error { return tx.PutUser(&store.User{ID: "u"}) }); err != nil {
		e.Fatal(err)
	}
	_ = c.Update(e.Context(), func(store.Tx) error { return errors.New("no") })
	_ = c.View(e.Context(), func(store.Tx) error { return nil })
	if got := c.Commits(); got != 1 {
		e.Errorf("Commits = %d, want 1 (a failed Update and a View do not count)", got)
	}
	if got := c.Reset(); got != 1 || c.Commits() != 0 {
		e.Errorf("Reset = %d, then %d", got, c.Commits())
	}
}
