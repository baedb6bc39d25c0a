package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func init() {
	register(
		testCase{"ConsumeAndPrune", testConsume},
		testCase{"PruneConsumedIsBounded", testPruneConsumedBounded},
		testCase{"PruneConsumedBoundaries", testPruneConsumedBoundaries},
		testCase{"Secrets", testSecrets},
		testCase{"SecretNeedsAPositiveSize", testSecretSize},
		testCase{"DeleteSecret", testDeleteSecret},
		testCase{"AuditQueries", testAuditQueries},
		testCase{"PruneAudit", testPruneAudit},
		testCase{"PruneAuditPassesOverAClockThatRanAhead", testPruneAuditClockAhead},
		testCase{"ImportAuditEvent", testImportAuditEvent},
		testCase{"AuditStoresUTC", testAuditStoresUTC},
		testCase{"CountsInAnUpdateSeeItsOwnAuditEvents", testCountsSeeOwnAudit},
	)
}

func testConsume(e *env) {
	now := time.Now()
	steps := []struct {
		kind, id string
		until    time.Time
		want     bool
	}{
		{"state", "a", now.Add(time.Hour), true},
		{"state", "a", now.Add(time.Hour), false},
		{"saml", "a", now.Add(time.Hour), true},  // kinds are separate namespaces
		{"sta", "tea", now.Add(time.Hour), true}, // no concatenation clash with ("state","a")
		{"state", "old", now.Add(-time.Second), true},
		{"state", "old", now.Add(time.Hour), true}, // an expired entry is used again
		{"state", "old", now.Add(time.Hour), false},
		{"state", "gone", now.Add(-time.Minute), true},
	}
	for i, s := range steps {
		e.update(func(tx store.Tx) error {
			got, err := tx.Consume(s.kind, s.id, s.until)
			if err != nil {
				return err
			}
			if got != s.want {
				e.Errorf("step %d: Consume(%s, %s) = %v, want %v", i, s.kind, s.id, got, s.want)
			}
			return nil
		})
	}
	e.view(func(tx store.Tx) error {
		var got []string
		err := tx.ForEachConsumed(func(kind, id string, until time.Time) error {
			got = append(got, kind+"/"+id)
			if kind == "state" && id == "gone" && until.After(now) {
				e.Errorf("ForEachConsumed until = %v", until)
			}
			return nil
		})
		if sort.Strings(got); err != nil || !slices.Equal(got, []string{"saml/a", "sta/tea", "state/a", "state/gone", "state/old"}) {
			e.Errorf("ForEachConsumed = %v, %v", got, err)
		}
		return nil
	})
	e.update(func(tx store.Tx) error {
		if n, err := tx.PruneConsumed(now, 100); err != nil || n != 1 {
			e.Errorf("PruneConsumed(now) = %d, %v; want 1", n, err)
		}
		if n, err := tx.PruneConsumed(now.Add(2*time.Hour), 100); err != nil || n != 4 {
			e.Errorf("PruneConsumed(later) = %d, %v; want 4", n, err)
		}
		return nil
	})
	// Refusals.
	for _, c := range []struct{ kind, id string }{{"", "x"}, {"state", ""}, {"state", long(store.MaxKeyBytes + 1)}} {
		err := e.st.Update(e.Context(), func(tx store.Tx) error {
			_, err := tx.Consume(c.kind, c.id, now.Add(time.Hour))
			return err
		})
		if err == nil {
			e.Errorf("Consume(%q, %d bytes) succeeded", c.kind, len(c.id))
		}
		if len(c.id) > store.MaxKeyBytes && !errors.Is(err, store.ErrValueTooLong) {
			e.Errorf("Consume of a long ID: %v, want ErrValueTooLong", err)
		}
	}
	// The limit is the ID's, whatever the kind: an ID of MaxKeyBytes is
	// taken, and used once.
	for i, want := range []bool{true, false} {
		var first bool
		err := e.st.Update(e.Context(), func(tx store.Tx) error {
			var err error
			first, err = tx.Consume("oidc_state", long(store.MaxKeyBytes), now.Add(time.Hour))
			return err
		})
		if err != nil || first != want {
			e.Errorf("Consume %d of an ID of MaxKeyBytes = %v, %v; want %v", i+1, first, err, want)
		}
	}
	// One transaction per ID, first use wins: a second transaction that
	// consumes the same ID is told it was used.
	consume := func() (bool, error) {
		var fresh bool
		err := e.st.Update(e.Context(), func(tx store.Tx) error {
			var err error
			fresh, err = tx.Consume("state", "x", now.Add(time.Hour))
			return err
		})
		return fresh, err
	}
	first, err := consume()
	again, err2 := consume()
	if err != nil || err2 != nil || !first || again {
		e.Errorf("Consume in two transactions: %v %v, %v %v", first, err, again, err2)
	}
}

func testPruneConsumedBounded(e *env) {
	now := time.Now()
	e.update(func(tx store.Tx) error {
		for i := range 25 {
			if _, err := tx.Consume("state", fmt.Sprint(i), now.Add(-time.Duration(i+1)*time.Second)); err != nil {
				return err
			}
		}
		_, err := tx.Consume("state", "live", now.Add(time.Hour))
		return err
	})
	var counts []int
	for range 5 {
		var n int
		e.update(func(tx store.Tx) error {
			var err error
			n, err = tx.PruneConsumed(now, 10)
			return err
		})
		counts = append(counts, n)
		if n < 10 {
			break
		}
	}
	if !slices.Equal(counts, []int{10, 10, 5}) {
		e.Errorf("PruneConsumed(limit 10) calls deleted %v, want [10 10 5]", counts)
	}
	e.update(func(tx store.Tx) error {
		if ok, err := tx.Consume("state", "live", now.Add(time.Hour)); ok || err != nil {
			e.Errorf("pruning removed a live ID: %v, %v", ok, err)
		}
		if _, err := tx.PruneConsumed(now, 0); err == nil {
			e.Error("PruneConsumed with limit 0 succeeded")
		}
		return nil
	})
}

// testPruneConsumedBoundaries: PruneConsumed deletes the IDs whose until
// is not after now (Consume already takes such an ID as unused) and counts
// them; an ID consumed again after it expired is due at its new until
// only, so a bounded prune that finds it due deletes it, and Housekeep,
// which stops at a batch that comes back short, leaves nothing due behind.
func testPruneConsumedBoundaries(e *env) {
	now := time.Now()
	e.update(func(tx store.Tx) error {
		for _, c := range []struct {
			id    string
			until time.Time
		}{
			{"at-now", now},
			{"just-after", now.Add(time.Nanosecond)},
			{"again", now.Add(-2 * time.Second)},
			{"again", now.Add(-time.Second)}, // expired: taken again
		} {
			if fresh, err := tx.Consume("state", c.id, c.until); err != nil || !fresh {
				e.Errorf("Consume(%s, %v) = %v, %v; want it taken", c.id, c.until.Sub(now), fresh, err)
			}
		}
		return nil
	})
	left := func() []string {
		var got []string
		e.view(func(tx store.Tx) error {
			return tx.ForEachConsumed(func(kind, id string, until time.Time) error {
				got = append(got, kind+"/"+id)
				return nil
			})
		})
		return sorted(got)
	}
	var counts []int
	for range 4 {
		var n int
		e.update(func(tx store.Tx) error {
			var err error
			n, err = tx.PruneConsumed(now, 1)
			return err
		})
		if counts = append(counts, n); n < 1 {
			break
		}
	}
	if !slices.Equal(counts, []int{1, 1, 0}) {
		e.Errorf("PruneConsumed(now, 1) calls deleted %v, want [1 1 0] (again and at-now, one each)", counts)
	}
	if got := left(); !slices.Equal(got, []string{"state/just-after"}) {
		e.Errorf("after pruning at now, single-use IDs left: %v; want [state/just-after]", got)
	}
	e.update(func(tx store.Tx) error {
		if n, err := tx.PruneConsumed(now.Add(time.Nanosecond), 10); err != nil || n != 1 {
			e.Errorf("PruneConsumed(now+1ns) = %d, %v; want 1", n, err)
		}
		return nil
	})
	if got := left(); len(got) != 0 {
		e.Errorf("single-use IDs left: %v", got)
	}
}

func testSecrets(e *env) {
	var a, b []byte
	e.update(func(tx store.Tx) (err error) {
		a, err = tx.Secret("hmac", 32)
		return err
	})
	e.view(func(tx store.Tx) (err error) {
		b, err = tx.Secret("hmac", 32)
		return err
	})
	if len(a) != 32 || !bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 32)) {
		e.Errorf("Secret not stable and random: %x vs %x", a, b)
	}
	a[0] ^= 0xff // the caller's copy
	e.view(func(tx store.Tx) error {
		if c, _ := tx.Secret("hmac", 32); !bytes.Equal(c, b) {
			e.Error("changing a returned secret changed the store")
		}
		if _, err := tx.LoadOrStoreSecret("sp-key", nil); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("LoadOrStoreSecret lookup of a missing secret: %v", err)
		}
		if _, err := tx.Secret("missing", 32); !errors.Is(err, store.ErrReadOnly) {
			e.Errorf("creating a secret in a View: %v", err)
		}
		return nil
	})
	e.update(func(tx store.Tx) error {
		got, err := tx.LoadOrStoreSecret("sp-key", []byte("first"))
		if err != nil || string(got) != "first" {
			e.Errorf("first LoadOrStoreSecret = %q, %v", got, err)
		}
		got[0] = 'X'
		got, err = tx.LoadOrStoreSecret("sp-key", []byte("second"))
		if err != nil || string(got) != "first" {
			e.Errorf("second LoadOrStoreSecret = %q, %v; want the first value kept", got, err)
		}
		return nil
	})
	e.view(func(tx store.Tx) error {
		var names []string
		err := tx.ForEachSecret(func(name string, value []byte) error {
			names = append(names, name)
			if name == "sp-key" && string(value) != "first" {
				e.Errorf("ForEachSecret value = %q", value)
			}
			value[0] = 0 // a copy
			return nil
		})
		if err != nil || !slices.Equal(names, []string{"hmac", "sp-key"}) {
			e.Errorf("ForEachSecret = %v, %v", names, err)
		}
		if got, _ := tx.LoadOrStoreSecret("sp-key", nil); string(got) != "first" {
			e.Errorf("secret changed through ForEachSecret's value: %q", got)
		}
		return nil
	})
}

// testSecretSize: Secret refuses a size below 1 and stores nothing, rather
// than an empty secret that every later call, of any size, would return:
// an HMAC or cookie key of zero bytes.
func testSecretSize(e *env) {
	for _, size := range []int{0, -1} {
		err := e.st.Update(e.Context(), func(tx store.Tx) error {
			_, err := tx.Secret("key", size)
			return err
		})
		if err == nil {
			e.Errorf("Secret(name, %d) succeeded", size)
		}
	}
	e.view(func(tx store.Tx) error {
		if got, err := tx.LoadOrStoreSecret("key", nil); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("after refused Secret calls, the secret is %q, %v; want ErrNotFound", got, err)
		}
		return nil
	})
	e.update(func(tx store.Tx) error {
		if got, err := tx.Secret("key", 16); err != nil || len(got) != 16 {
			e.Errorf("Secret(name, 16) after refused calls = %d bytes, %v", len(got), err)
		}
		return nil
	})
}

func testDeleteSecret(e *env) {
	e.update(func(tx store.Tx) error {
		for _, n := range []string{"a", "b", "c"} {
			if _, err := tx.LoadOrStoreSecret(n, []byte("old "+n)); err != nil {
				return err
			}
		}
		return nil
	})
	e.update(func(tx store.Tx) error {
		if err := tx.DeleteSecret("b"); err != nil {
			e.Errorf("DeleteSecret: %v", err)
		}
		// Gone inside the transaction that deleted it.
		if _, err := tx.LoadOrStoreSecret("b", nil); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("lookup after DeleteSecret in its transaction: %v, want ErrNotFound", err)
		}
		if err := tx.DeleteSecret("b"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("second DeleteSecret: %v, want ErrNotFound", err)
		}
		if err := tx.DeleteSecret("never"); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("DeleteSecret of a missing secret: %v, want ErrNotFound", err)
		}
		return nil
	})
	e.view(func(tx store.Tx) error {
		var names []string
		err := tx.ForEachSecret(func(name string, value []byte) error {
			names = append(names, name)
			return nil
		})
		if err != nil || !slices.Equal(names, []string{"a", "c"}) {
			e.Errorf("ForEachSecret after DeleteSecret = %v, %v; want [a c]", names, err)
		}
		if _, err := tx.LoadOrStoreSecret("b", nil); !errors.Is(err, store.ErrNotFound) {
			e.Errorf("lookup of a deleted secret: %v, want ErrNotFound", err)
		}
		return nil
	})
	e.update(func(tx store.Tx) error {
		got, err := tx.LoadOrStoreSecret("b", []byte("new b"))
		if err != nil || string(got) != "new b" {
			e.Errorf("LoadOrStoreSecret after DeleteSecret = %q, %v; want the new value stored", got, err)
		}
		// Delete and store again in one transaction.
		if err := tx.DeleteSecret("c"); err != nil {
			return err
		}
		got, err = tx.LoadOrStoreSecret("c", []byte("new c"))
		if err != nil || string(got) != "new c" {
			e.Errorf("LoadOrStoreSecret after DeleteSecret in one transaction = %q, %v", got, err)
		}
		return nil
	})
	e.view(func(tx store.Tx) error {
		got := map[string]string{}
		err := tx.ForEachSecret(func(name string, value []byte) error {
			got[name] = string(value)
			return nil
		})
		want := map[string]string{"a": "old a", "b": "new b", "c": "new c"}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			e.Errorf("secrets = %v, %v; want %v", got, err, want)
		}
		return nil
	})
}

func auditEvents(e *env) {
	events := []store.Event{
		{Type: store.EventUserCreated, UserID: "u1"},
		{Type: store.EventLoginSucceeded, UserID: "u1"},
		{Type: store.EventLoginDenied, Reason: "jit_disabled", Subject: "x"},
		{Type: store.EventUserCreated, UserID: "u2"},
		{Type: store.EventLoginSucceeded, UserID: "u2"},
		{Type: store.EventLoginSucceeded, UserID: "u1", Detail: map[string]string{"k": "v"}},
		{Type: store.EventJITConflict, UserID: "u1"},
		{Type: store.EventLoginSucceeded, UserID: "u10"}, // "u1" must not match it
	}
	e.update(func(tx store.Tx) error {
		for i, ev := range events {
			ev.Time = t0.Add(time.Duration(i) * time.Hour)
			if err := tx.Audit(ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// testPruneAuditClockAhead: a host that booted with its clock a year
// ahead wrote one event before NTP stepped it back. Retention still prunes
// the events written after it, and prunes it once its own time is due.
func testPruneAuditClockAhead(e *env) {
	ahead := t0.Add(365 * 24 * time.Hour)
	e.update(func(tx store.Tx) error {
		if err := tx.Audit(store.Event{Type: store.EventUserCreated, UserID: "u1", Time: ahead}); err != nil {
			return err
		}
		for i := range 3 {
			if err := tx.Audit(store.Event{Type: store.EventLoginSucceeded, UserID: "u1", Time: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
				return err
			}
		}
		return nil
	})
	now := t0.Add(100 * 24 * time.Hour)
	e.update(func(tx store.Tx) error {
		n, err := tx.PruneAudit(now.Add(-90*24*time.Hour), now, 10)
		if err != nil || n != 3 {
			e.Errorf("PruneAudit past an event stamped a year ahead = %d, %v; want the 3 due after it", n, err)
		}
		return nil
	})
	e.view(func(tx store.Tx) error {
		u1, _ := tx.AuditEvents(store.AuditQuery{UserID: "u1"})
		if !slices.Equal(seqs(u1), []uint64{1}) {
			e.Errorf("after pruning, u1's events %v, want the one stamped ahead", seqs(u1))
		}
		return nil
	})
	later := ahead.Add(91 * 24 * time.Hour)
	e.update(func(tx store.Tx) error {
		if n, err := tx.PruneAudit(later.Add(-90*24*time.Hour), later, 10); err != nil || n != 1 {
			e.Errorf("PruneAudit once the event stamped ahead is due = %d, %v; want 1", n, err)
		}
		return nil
	})
}

func seqs(ev []store.Event) []uint64 {
	var out []uint64
	for _, e := range ev {
		out = append(out, e.Seq)
	}
	return out
}

func testAuditQueries(e *env) {
	auditEvents(e)
	for _, tt := range []struct {
		name string
		q    store.AuditQuery
		want []uint64
	}{
		{"all", store.AuditQuery{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"after", store.AuditQuery{After: 5}, []uint64{6, 7, 8}},
		{"after last", store.AuditQuery{After: 8}, nil},
		{"after max", store.AuditQuery{After: ^uint64(0)}, nil},
		// Past what a signed 64-bit sequence holds (PostgreSQL's bigint):
		// still after every event, not wrapped round to before them all.
		{"after max int64", store.AuditQuery{After: math.MaxInt64}, nil},
		{"after 2^63", store.AuditQuery{After: 1 << 63}, nil},
		{"after 2^64-2", store.AuditQuery{After: ^uint64(0) - 1}, nil},
		{"limit", store.AuditQuery{Limit: 3}, []uint64{1, 2, 3}},
		{"after and limit", store.AuditQuery{After: 2, Limit: 2}, []uint64{3, 4}},
		{"user", store.AuditQuery{UserID: "u1"}, []uint64{1, 2, 6, 7}},
		{"user after", store.AuditQuery{UserID: "u1", After: 2}, []uint64{6, 7}},
		{"user limit", store.AuditQuery{UserID: "u1", Limit: 2}, []uint64{1, 2}},
		{"user unknown", store.AuditQuery{UserID: "nobody"}, nil},
		{"type", store.AuditQuery{Type: store.EventLoginSucceeded}, []uint64{2, 5, 6, 8}},
		{"type and user", store.AuditQuery{Type: store.EventLoginSucceeded, UserID: "u2"}, []uint64{5}},
		{"type limit", store.AuditQuery{Type: store.EventLoginSucceeded, Limit: 2}, []uint64{2, 5}},
		{"since inclusive", store.AuditQuery{Since: t0.Add(5 * time.Hour)}, []uint64{6, 7, 8}},
		{"until exclusive", store.AuditQuery{Until: t0.Add(2 * time.Hour)}, []uint64{1, 2}},
		{"window", store.AuditQuery{Since: t0.Add(time.Hour), Until: t0.Add(4 * time.Hour)}, []uint64{2, 3, 4}},
		{"window user", store.AuditQuery{UserID: "u1", Since: t0.Add(time.Hour), Until: t0.Add(6 * time.Hour)}, []uint64{2, 6}},
	} {
		e.view(func(tx store.Tx) error {
			ev, err := tx.AuditEvents(tt.q)
			if err != nil {
				return err
			}
			if got := seqs(ev); !slices.Equal(got, tt.want) {
				e.Errorf("%s: seqs = %v, want %v", tt.name, got, tt.want)
			}
			return nil
		})
	}
	e.view(func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{After: 5, Limit: 1})
		if err != nil {
			return err
		}
		want := store.Event{Seq: 6, Time: t0.Add(5 * time.Hour), Type: store.EventLoginSucceeded, UserID: "u1", Detail: map[string]string{"k": "v"}}
		e.sameJSON("event", []store.Event{want}, ev)
		ev[0].Detail["k"] = "changed" // a copy
		return nil
	})
	// Time is filled in when zero; the default limit is 100.
	e.update(func(tx store.Tx) error {
		for range 150 {
			if err := tx.Audit(store.Event{Type: store.EventLoginFailed}); err != nil {
				return err
			}
		}
		return nil
	})
	e.view(func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{After: 5})
		if err != nil {
			return err
		}
		if len(ev) != 100 || ev[0].Detail["k"] != "v" {
			e.Errorf("default limit returned %d events; first %+v", len(ev), ev[0])
		}
		if last := ev[len(ev)-1]; last.Time.IsZero() || time.Since(last.Time) > time.Minute {
			e.Errorf("zero Time not filled: %v", last.Time)
		}
		return nil
	})
	if c := e.counts(); c.AuditEvents != 158 {
		e.Errorf("Counts.AuditEvents = %d, want 158", c.AuditEvents)
	}
}

func testPruneAudit(e *env) {
	auditEvents(e) // seq i+1 at t0 + i hours
	e.update(func(tx store.Tx) error {
		n, err := tx.PruneAudit(t0.Add(150*time.Minute), t0.Add(24*time.Hour), 2) // events 1-3 are older; limit 2
		if err != nil || n != 2 {
			e.Errorf("PruneAudit(limit 2) = %d, %v", n, err)
		}
		n, err = tx.PruneAudit(t0.Add(150*time.Minute), t0.Add(24*time.Hour), 10)
		if err != nil || n != 1 {
			e.Errorf("PruneAudit again = %d, %v; want 1", n, err)
		}
		n, err = tx.PruneAudit(t0.Add(150*time.Minute), t0.Add(24*time.Hour), 10)
		if err != nil || n != 0 {
			e.Errorf("PruneAudit with nothing due = %d, %v", n, err)
		}
		// Event 4, stamped exactly at before, is not before it: it stays.
		n, err = tx.PruneAudit(t0.Add(3*time.Hour), t0.Add(24*time.Hour), 10)
		if err != nil || n != 0 {
			e.Errorf("PruneAudit(before = the next event's time) = %d, %v; want 0", n, err)
		}
		if _, err := tx.PruneAudit(t0, t0, 0); err == nil {
			e.Error("PruneAudit with limit 0 succeeded")
		}
		return nil
	})
	e.view(func(tx store.Tx) error {
		all, _ := tx.AuditEvents(store.AuditQuery{})
		u1, _ := tx.AuditEvents(store.AuditQuery{UserID: "u1"})
		if !slices.Equal(seqs(all), []uint64{4, 5, 6, 7, 8}) || !slices.Equal(seqs(u1), []uint64{6, 7}) {
			e.Errorf("after pruning: all %v, u1 %v", seqs(all), seqs(u1))
		}
		return nil
	})
	if c := e.counts(); c.AuditEvents != 5 {
		e.Errorf("Counts.AuditEvents after pruning = %d, want 5", c.AuditEvents)
	}
	// Numbering goes on after pruning.
	e.update(func(tx store.Tx) error { return tx.Audit(store.Event{Type: store.EventUserUpdated}) })
	e.view(func(tx store.Tx) error {
		ev, _ := tx.AuditEvents(store.AuditQuery{After: 8})
		if !slices.Equal(seqs(ev), []uint64{9}) {
			e.Errorf("seq after pruning = %v", seqs(ev))
		}
		return nil
	})
}

func testImportAuditEvent(e *env) {
	in := []store.Event{
		{Seq: 3, Time: t0, Type: store.EventUserCreated, UserID: "u1"},
		{Seq: 7, Time: t0.Add(time.Hour), Type: store.EventLoginSucceeded, UserID: "u1", Detail: map[string]string{"a": "b"}},
	}
	e.update(func(tx store.Tx) error {
		for _, ev := range in {
			if err := tx.ImportAuditEvent(ev); err != nil {
				return err
			}
		}
		return nil
	})
	for _, seq := range []uint64{7, 5, 0} {
		before := e.dump()
		err := e.st.Update(e.Context(), func(tx store.Tx) error {
			return tx.ImportAuditEvent(store.Event{Seq: seq, Time: t0, Type: store.EventUserCreated})
		})
		if err == nil {
			e.Errorf("ImportAuditEvent(seq %d) after seq 7 succeeded", seq)
		}
		e.sameDump(fmt.Sprint("refused import of seq ", seq), before, e.dump())
	}
	e.update(func(tx store.Tx) error {
		return tx.Audit(store.Event{Type: store.EventUserUpdated, Time: t0.Add(2 * time.Hour)})
	})
	e.view(func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		want := append(slices.Clone(in), store.Event{Seq: 8, Time: t0.Add(2 * time.Hour), Type: store.EventUserUpdated})
		e.sameJSON("imported events", want, ev)
		u1, _ := tx.AuditEvents(store.AuditQuery{UserID: "u1"})
		if !slices.Equal(seqs(u1), []uint64{3, 7}) {
			e.Errorf("imported events by user: %v", seqs(u1))
		}
		return nil
	})
	if c := e.counts(); c.AuditEvents != 3 {
		e.Errorf("Counts.AuditEvents = %d, want 3", c.AuditEvents)
	}
}

// testAuditStoresUTC: an event stamped by the store, and one whose caller
// gave a time in another zone, both read back in UTC at the same instant.
func testAuditStoresUTC(e *env) {
	kolkata := time.FixedZone("IST", 5*3600+1800)
	given := t0.In(kolkata)
	before := time.Now()
	e.update(func(tx store.Tx) error {
		if err := tx.Audit(store.Event{Type: store.EventUserCreated, UserID: "u1", Time: given}); err != nil {
			return err
		}
		return tx.Audit(store.Event{Type: store.EventUserUpdated, UserID: "u1"})
	})
	e.view(func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		if len(ev) != 2 {
			e.Errorf("events = %d, want 2", len(ev))
			return nil
		}
		for _, got := range ev {
			if got.Time.Location() != time.UTC {
				e.Errorf("event %d time %v is in %v, want UTC", got.Seq, got.Time, got.Time.Location())
			}
		}
		if !ev[0].Time.Equal(given) {
			e.Errorf("given time read back as %v, want %v", ev[0].Time, given)
		}
		if ev[1].Time.Before(before.Add(-time.Second)) || ev[1].Time.After(time.Now().Add(time.Second)) {
			e.Errorf("stamped time %v is not about now", ev[1].Time)
		}
		return nil
	})
}

// testCountsSeeOwnAudit: Counts inside an Update counts the events that
// Update has audited so far, as it counts the records it has written
// (a backend that queues audit events until commit must write them out
// before it counts), both before and after a read of the audit log in the
// same Update; the events are counted once, and the commit writes each
// once.
func testCountsSeeOwnAudit(e *env) {
	e.update(func(tx store.Tx) error {
		return tx.Audit(store.Event{Type: store.EventUserCreated, UserID: "u0"})
	})
	counts := func(tx store.Tx, step string, want int) error {
		c, err := tx.Counts()
		if err != nil {
			return err
		}
		if c.AuditEvents != want {
			e.Errorf("%s: Counts.AuditEvents = %d, want %d", step, c.AuditEvents, want)
		}
		return nil
	}
	e.update(func(tx store.Tx) error {
		if err := tx.Audit(store.Event{Type: store.EventUserUpdated, UserID: "u1"}); err != nil {
			return err
		}
		if err := counts(tx, "after one Audit", 2); err != nil {
			return err
		}
		if err := counts(tx, "counted again", 2); err != nil {
			return err
		}
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		if len(ev) != 2 {
			e.Errorf("AuditEvents in the Update = %d events, want 2", len(ev))
		}
		for _, u := range []string{"u2", "u3"} {
			if err := tx.Audit(store.Event{Type: store.EventUserUpdated, UserID: u}); err != nil {
				return err
			}
		}
		return counts(tx, "after a read of the log and two more", 4)
	})
	if c := e.counts(); c.AuditEvents != 4 {
		e.Errorf("Counts.AuditEvents after the commit = %d, want 4", c.AuditEvents)
	}
	e.view(func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{})
		if err != nil {
			return err
		}
		var users []string
		for _, x := range ev {
			users = append(users, x.UserID)
		}
		if !slices.Equal(users, []string{"u0", "u1", "u2", "u3"}) {
			e.Errorf("committed events of users %v, want u0 u1 u2 u3 once each", users)
		}
		return nil
	})
}
