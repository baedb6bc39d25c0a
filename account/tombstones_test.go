package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// scimUserAtTwoIdPs writes a user as SCIM would have at "entra", who
// signed in at entra and at google.
func (e *env) scimUserAtTwoIdPs(ext string) *store.User {
	e.t.Helper()
	u := &store.User{Email: ext + "@corp.example", Active: true, Source: store.SourceSCIM, IdP: "entra", ExternalID: ext,
		Links: []store.Link{{IdP: "entra", Subject: ext}, {IdP: "google", Subject: "g-" + ext}}}
	if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) tombstoneKeys() []string {
	e.t.Helper()
	var out []string
	err := e.db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachTombstone(func(t *store.Tombstone) error { out = append(out, t.IdP+"/"+t.Subject); return nil })
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func liftedKeys(res *account.LiftResult) []string {
	var out []string
	for _, t := range res.Lifted {
		out = append(out, t.IdP+"/"+t.Subject)
	}
	slices.Sort(out)
	return out
}

// TestFollowingTombstonesOnlyOnSCIMDelete: SCIM's delete also tombstones
// the user's links at IdPs without SCIM (the person left the directory);
// an administrator's delete does not, so that JIT at such an IdP may
// create the person anew (docs/scim.md).
func TestFollowingTombstonesOnlyOnSCIMDelete(t *testing.T) {
	for _, c := range []struct {
		by   string
		want []string
	}{
		{account.BySCIM, []string{"entra/oid-ada", "google/g-oid-ada"}},
		{account.ByAdmin, []string{"entra/oid-ada"}},
	} {
		t.Run(c.by, func(t *testing.T) {
			e := newEnv(t)
			u := e.scimUserAtTwoIdPs("oid-ada")
			res, err := e.acc.Delete(context.Background(), u.ID, c.by)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.tombstoneKeys(); !slices.Equal(got, c.want) || res.Tombstones != len(c.want) {
				t.Errorf("tombstones %v (result %d), want %v", got, res.Tombstones, c.want)
			}
			if del := e.events(store.EventUserDeleted); len(del) != 1 || del[0].Detail["tombstones"] != fmt.Sprint(len(c.want)) {
				t.Errorf("deletion events %+v", del)
			}
		})
	}
}

// TestLiftRemovesHomeAndFollowing: lifting a deleted user's tombstones
// removes the one at the SCIM-managed IdP and the ones that follow it,
// and a following tombstone of someone else whose home is the same
// identity (deleted again since), none left behind; others stay. Each
// lifted tombstone is audited, identifiers only.
func TestLiftRemovesHomeAndFollowing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ada := e.scimUserAtTwoIdPs("oid-ada")
	bob := e.scimUserAtTwoIdPs("oid-bob")
	for _, u := range []*store.User{ada, bob} {
		if res, err := e.acc.Delete(ctx, u.ID, account.BySCIM); err != nil || res.Tombstones != 2 {
			t.Fatalf("delete %s = %+v, %v", u.ID, res, err)
		}
	}
	// A following tombstone of another deleted user whose home is ada's
	// entra identity (that identity was held by someone else before).
	stray := store.Tombstone{IdP: "okta", Subject: "okta-x", UserID: "earlier-user", Deleted: t0,
		Home: &store.Link{IdP: "entra", Subject: "oid-ada"}}
	if err := e.db.Update(ctx, func(tx store.Tx) error { return tx.PutTombstone(&stray) }); err != nil {
		t.Fatal(err)
	}

	res, err := e.acc.Lift(ctx, ada.ID, account.ByAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := liftedKeys(res), []string{"entra/oid-ada", "google/g-oid-ada", "okta/okta-x"}; !slices.Equal(got, want) {
		t.Errorf("lifted %v, want %v", got, want)
	}
	if got, want := e.tombstoneKeys(), []string{"entra/oid-bob", "google/g-oid-bob"}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	evs := e.events(account.EventTombstoneLifted)
	if len(evs) != 3 {
		t.Fatalf("%d %s events, want 3: %+v", len(evs), account.EventTombstoneLifted, evs)
	}
	for _, ev := range evs {
		if ev.Reason != account.ByAdmin || ev.Detail["tombstones"] != "3" || ev.IdP == "" || ev.Subject == "" {
			t.Errorf("event %+v", ev)
		}
		if wantUser := map[bool]string{true: "earlier-user", false: ada.ID}[ev.IdP == "okta"]; ev.UserID != wantUser {
			t.Errorf("event %+v: user %q, want %q", ev, ev.UserID, wantUser)
		}
		if (ev.IdP == "entra") != (ev.Detail["home_idp"] == "") {
			t.Errorf("event %+v: home_idp on a following tombstone only", ev)
		}
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), "@") {
			t.Errorf("event %s holds an email", b)
		}
	}

	// Lifting one tombstone: the home takes its followers with it.
	res, err = e.acc.LiftTombstone(ctx, "entra", "oid-bob", account.ByAdmin)
	if err != nil || !slices.Equal(liftedKeys(res), []string{"entra/oid-bob", "google/g-oid-bob"}) {
		t.Errorf("lift entra/oid-bob = %v, %v", res, err)
	}
	if left := e.tombstoneKeys(); len(left) != 0 {
		t.Errorf("left %v", left)
	}

	// Nothing to lift is not found; nothing named is a bad query.
	for _, op := range []func() (*account.LiftResult, error){
		func() (*account.LiftResult, error) { return e.acc.Lift(ctx, ada.ID, account.ByAdmin) },
		func() (*account.LiftResult, error) {
			return e.acc.LiftTombstone(ctx, "entra", "oid-bob", account.ByAdmin)
		},
	} {
		var nf *account.TombstoneNotFoundError
		if _, err := op(); !errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lift again: %v, want not found", err)
		}
	}
	if _, err := e.acc.Lift(ctx, "", account.ByAdmin); !errors.Is(err, account.ErrBadQuery) {
		t.Errorf("lift of no user: %v", err)
	}
	if _, err := e.acc.LiftTombstone(ctx, "entra", "", account.ByAdmin); !errors.Is(err, account.ErrBadQuery) {
		t.Errorf("lift of no subject: %v", err)
	}
}

// TestListTombstones: filtered by deleted user and IdP, paged in (IdP,
// subject) order whatever the subjects hold, and a following tombstone
// whose home is gone is shown as such.
func TestListTombstones(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var want []string
	err := e.db.Update(ctx, func(tx store.Tx) error {
		for i := range 7 {
			// Subjects with the separators a cursor must survive.
			ts := &store.Tombstone{IdP: []string{"entra", "google"}[i%2], Subject: fmt.Sprintf("s/%d\"|,%d", i, i),
				UserID: fmt.Sprint("user-", i%3), Deleted: t0}
			if i == 3 {
				ts.Home = &store.Link{IdP: "entra", Subject: "gone"}
			}
			if err := tx.PutTombstone(ts); err != nil {
				return err
			}
			want = append(want, ts.IdP+"/"+ts.Subject)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	list := func(q account.TombstoneQuery) (keys []string, homeLifted []string) {
		t.Helper()
		for pages := 0; ; pages++ {
			page, err := e.acc.ListTombstones(ctx, q)
			if err != nil || pages > 10 || len(page.Tombstones) > max(q.Limit, 1) {
				t.Fatalf("page %d: %+v, %v", pages, page, err)
			}
			for _, ts := range page.Tombstones {
				keys = append(keys, ts.IdP+"/"+ts.Subject)
				if ts.HomeLifted {
					homeLifted = append(homeLifted, ts.IdP+"/"+ts.Subject)
				}
			}
			if page.Next == "" {
				return keys, homeLifted
			}
			q.After = page.Next
		}
	}
	got, lifted := list(account.TombstoneQuery{Limit: 2})
	if !slices.Equal(got, want) {
		t.Errorf("paged by 2: %v, want %v", got, want)
	}
	if !slices.Equal(lifted, []string{"google/s/3\"|,3"}) {
		t.Errorf("home lifted: %v", lifted)
	}
	if got, _ := list(account.TombstoneQuery{UserID: "user-1", Limit: 1}); !slices.Equal(got, []string{"entra/s/4\"|,4", "google/s/1\"|,1"}) {
		t.Errorf("user-1: %v", got)
	}
	if got, _ := list(account.TombstoneQuery{UserID: "user-0", IdP: "google", Limit: 5}); !slices.Equal(got, []string{"google/s/3\"|,3"}) {
		t.Errorf("user-0 at google: %v", got)
	}
	if _, err := e.acc.ListTombstones(ctx, account.TombstoneQuery{After: "not a cursor"}); !errors.Is(err, account.ErrBadQuery) {
		t.Errorf("after=not a cursor: %v", err)
	}
}
