package bolt

import (
	"context"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// TestNumberAuditAfter: a replaced file's last number raises the new
// store's audit numbering and never lowers it: events numbered lower than
// the imported ones would overwrite them (an event's number is its key).
func TestNumberAuditAfter(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	next := func() uint64 {
		t.Helper()
		update(t, db, func(tx store.Tx) error {
			return tx.Audit(store.Event{Type: store.EventUserCreated, UserID: "u1"})
		})
		var evs []store.Event
		view(t, db, func(tx store.Tx) error {
			var err error
			evs, err = tx.AuditEvents(store.AuditQuery{Limit: 1000})
			return err
		})
		return evs[len(evs)-1].Seq
	}
	update(t, db, func(tx store.Tx) error {
		return tx.ImportAuditEvent(store.Event{Seq: 10, Time: time.Now(), Type: store.EventUserCreated, UserID: "u0"})
	})
	for _, c := range []struct {
		after, want uint64
	}{{3, 11}, {20, 21}, {21, 22}} {
		if err := db.NumberAuditAfter(ctx, c.after); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != c.want {
			t.Errorf("NumberAuditAfter(%d): the next event is %d, want %d", c.after, got, c.want)
		}
		if got, err := db.AuditSeq(ctx); err != nil || got != c.want {
			t.Errorf("AuditSeq = %d (%v), want %d", got, err, c.want)
		}
	}
}
