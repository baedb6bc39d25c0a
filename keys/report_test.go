package keys_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestParseKindsCommaList: --only takes a comma list as an operator
// types it, with spaces after the commas, and names the unknown part.
func TestParseKindsCommaList(t *testing.T) {
	got, err := keys.ParseKinds([]string{"upstream-jwt, flow", " tokens"})
	if err != nil || !slices.Equal(got, keys.Kinds()) {
		t.Errorf("ParseKinds(upstream-jwt, flow; tokens) = %v, %v; want %v", got, err, keys.Kinds())
	}
	if _, err := keys.ParseKinds([]string{"flow,sp"}); err == nil || err.Error() != `unknown key "sp" (known: flow, tokens, upstream-jwt)` {
		t.Errorf("an unknown kind: %v", err)
	}
}

// TestRotateReport: what Rotate and Finish report (the admin API's JSON,
// the CLI's lines) and what they audit. A store's first keys keep no
// previous key, so there is nothing to finish and no time for it; a
// rotation over them keeps the previous flow and tokens keys and gives
// the time. Committed hears the report once the store transaction has
// committed, before the re-seal (the admin API streams the re-seal's
// progress after it).
func TestRotateReport(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		var told []keys.Report
		opt := keys.Options{By: account.ByAdmin, Via: account.ViaAdminAPI, Remote: "192.0.2.7",
			Now: func() time.Time { return now }, Committed: func(r keys.Report) { told = append(told, r) }}

		first, err := keys.Rotate(ctx, db, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(first.Rotated, keys.Kinds()) || first.FlowPreviousKept || first.TokensPreviousKept ||
			!first.FinishAfter.IsZero() || first.UpstreamJWT == nil {
			t.Errorf("the store's first keys: %+v; want every kind rotated, nothing kept, no finish time", first)
		}
		if cur, _ := readFlowKeys(t, db); len(cur) != 32 {
			t.Errorf("the first flow key is %d bytes, want 32", len(cur))
		}
		if len(told) != 1 || !slices.Equal(told[0].Rotated, keys.Kinds()) || told[0].Tokens != nil {
			t.Errorf("Committed heard %+v; want once, the rotated keys, before the re-seal", told)
		}

		told = nil
		second, err := keys.Rotate(ctx, db, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !second.FlowPreviousKept || !second.TokensPreviousKept || second.UpstreamJWT == nil || second.Tokens == nil ||
			!second.FinishAfter.Equal(now.Add(idp.FlowKeyRecheckInterval+idp.DefaultLoginTimeout)) {
			t.Errorf("a rotation over the first keys: %+v", second)
		}
		if len(told) != 1 || !told[0].FlowPreviousKept || told[0].Tokens != nil {
			t.Errorf("Committed heard %+v", told)
		}
		flowOnly, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Flow}})
		if err != nil || flowOnly.UpstreamJWT != nil || flowOnly.Tokens != nil || !slices.Equal(flowOnly.Rotated, []keys.Kind{keys.Flow}) {
			t.Errorf("a rotation of the flow key only: %+v, %v", flowOnly, err)
		}

		told = nil
		opt.Early = true
		fin, err := keys.Finish(ctx, db, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !fin.FlowPreviousDeleted || !fin.TokensPreviousFound || len(fin.Rotated) != 0 {
			t.Errorf("finish: %+v", fin)
		}
		if len(told) != 1 || !told[0].FlowPreviousDeleted || told[0].Tokens != nil {
			t.Errorf("Committed heard %+v from the finish", told)
		}

		var events []store.Event
		if err := db.View(ctx, func(tx store.Tx) (err error) {
			events, err = tx.AuditEvents(store.AuditQuery{Type: account.EventStoreKeysRotated})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(events) != 4 {
			t.Fatalf("%d events, want 4", len(events))
		}
		for i, e := range events {
			remote, hasRemote := e.Detail["remote"]
			if i == 2 { // asked with no one named
				if e.Reason != "" || e.Detail["via"] != "" || hasRemote {
					t.Errorf("event %d: %+v; want no who, how or where", i, e)
				}
				continue
			}
			if e.Reason != account.ByAdmin || e.Detail["via"] != account.ViaAdminAPI || remote != "192.0.2.7" {
				t.Errorf("event %d: %+v; want who, how and where", i, e)
			}
		}
	})
}

// TestFinishAfterTheLastRotation: the finish waits for the time the last
// rotation gave, not an earlier one's: a flow key rotated again later
// sealed cookies that live until then.
func TestFinishAfterTheLastRotation(t *testing.T) {
	backends(t, func(t *testing.T, db store.Store) {
		ctx := context.Background()
		t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		at := func(t time.Time) func() time.Time { return func() time.Time { return t } }
		for _, when := range []time.Time{t0, t0, t0.Add(time.Hour)} { // the first makes the store's first key
			if _, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Flow}, Now: at(when)}); err != nil {
				t.Fatal(err)
			}
		}
		due := t0.Add(time.Hour + idp.FlowKeyRecheckInterval + idp.DefaultLoginTimeout)
		if rep, err := keys.Finish(ctx, db, keys.Options{Now: at(due.Add(-time.Second))}); !errors.Is(err, keys.ErrTooEarly) {
			t.Fatalf("finish a second before the last rotation's time: %+v, %v; want ErrTooEarly", rep, err)
		}
		if rep, err := keys.Finish(ctx, db, keys.Options{Now: at(due)}); err != nil || !rep.FlowPreviousDeleted {
			t.Fatalf("finish on time: %+v, %v", rep, err)
		}
	})
}
