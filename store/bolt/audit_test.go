package bolt

import (
	"slices"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

func TestAuditQueries(t *testing.T) {
	db := openTest(t)
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	// seq: 1..8, one hour apart.
	events := []store.Event{
		{Type: store.EventUserCreated, UserID: "u1"},
		{Type: store.EventLoginSucceeded, UserID: "u1"},
		{Type: store.EventLoginDenied, Reason: "jit_disabled", Subject: "x"},
		{Type: store.EventUserCreated, UserID: "u2"},
		{Type: store.EventLoginSucceeded, UserID: "u2"},
		{Type: store.EventLoginSucceeded, UserID: "u1"},
		{Type: store.EventJITConflict, UserID: "u1"},
		{Type: store.EventLoginSucceeded, UserID: "u10"}, // prefix of nothing: "u1" must not match it
	}
	update(t, db, func(tx store.Tx) error {
		for i, e := range events {
			e.Time = t0.Add(time.Duration(i) * time.Hour)
			if err := tx.Audit(e); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		name string
		q    store.AuditQuery
		want []uint64
	}{
		{"all", store.AuditQuery{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"after", store.AuditQuery{After: 5}, []uint64{6, 7, 8}},
		{"after last", store.AuditQuery{After: 8}, nil},
		{"after max", store.AuditQuery{After: ^uint64(0)}, nil},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view(t, db, func(tx store.Tx) error {
				ev, err := tx.AuditEvents(tt.q)
				if err != nil {
					return err
				}
				var got []uint64
				for _, e := range ev {
					got = append(got, e.Seq)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("seqs = %v, want %v", got, tt.want)
				}
				return nil
			})
		})
	}

	// Time is filled in when zero, and the default limit is 100.
	update(t, db, func(tx store.Tx) error {
		for range 150 {
			if err := tx.Audit(store.Event{Type: store.EventLoginFailed}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx store.Tx) error {
		ev, err := tx.AuditEvents(store.AuditQuery{After: 8})
		if err != nil {
			return err
		}
		if len(ev) != 100 {
			t.Errorf("default limit returned %d", len(ev))
		}
		if ev[0].Time.IsZero() || time.Since(ev[0].Time) > time.Minute {
			t.Errorf("zero Time not filled: %v", ev[0].Time)
		}
		return nil
	})
}
