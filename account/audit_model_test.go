package account_test

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestEveryEndingOfSessionsIsRevoked: each operation writes its own event
// with the number of sessions it ended, and one session.revoked naming it
// as the reason, delete as disable (a delete wrote only user.deleted, so
// `audit --type session.revoked` missed the sessions it ended).
func TestEveryEndingOfSessionsIsRevoked(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	disabled, _ := e.signIn("okta", "sub-1", jit)
	e.signIn("okta", "sub-1", jit)
	deleted, _ := e.signIn("okta", "sub-2", jit)
	e.signIn("okta", "sub-2", jit)
	e.signIn("okta", "sub-2", jit)
	if _, err := e.acc.Deactivate(ctx, disabled.ID, account.ByAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.acc.Delete(ctx, deleted.ID, account.BySCIM); err != nil {
		t.Fatal(err)
	}
	revoked := map[string]store.Event{}
	for _, ev := range e.events(store.EventSessionRevoked) {
		revoked[ev.UserID] = ev
	}
	if ev := revoked[disabled.ID]; ev.Reason != account.ReasonDeactivated || ev.Detail["sessions"] != "2" || ev.Detail["by"] != account.ByAdmin {
		t.Errorf("session.revoked of the disable: %+v", ev)
	}
	if ev := revoked[deleted.ID]; ev.Reason != account.ReasonDeleted || ev.Detail["sessions"] != "3" || ev.Detail["by"] != account.BySCIM {
		t.Errorf("session.revoked of the delete: %+v", ev)
	}
	if ev := e.events(store.EventUserDeactivated); len(ev) != 1 || ev[0].Detail["sessions"] != "2" {
		t.Errorf("user.deactivated: %+v", ev)
	}
	if ev := e.events(store.EventUserDeleted); len(ev) != 1 || ev[0].Detail["sessions"] != "3" {
		t.Errorf("user.deleted: %+v", ev)
	}

	// Nothing ended, nothing revoked.
	none, _ := e.signIn("okta", "sub-3", jit)
	if _, err := e.acc.EndSessions(ctx, none.ID, account.ByAdmin); err != nil {
		t.Fatal(err)
	}
	before := len(e.events(store.EventSessionRevoked))
	if _, err := e.acc.Delete(ctx, none.ID, account.ByAdmin); err != nil {
		t.Fatal(err)
	}
	if n := len(e.events(store.EventSessionRevoked)); n != before {
		t.Errorf("a delete that ended no session wrote %d session.revoked", n-before)
	}
}

// TestDisablePendingKeepsItUnapproved: disabling a pending user (refusing
// the request) leaves them never approved, and a later enable approves
// them, said so in its event: not a silent approval.
func TestDisablePendingKeepsItUnapproved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var u store.User
	err := e.db.Update(ctx, func(tx store.Tx) error {
		u = store.User{Email: "p@example.com", Active: true, Pending: true, Source: store.SourceJIT, IdP: "okta", ExternalID: "sub-p"}
		return tx.PutUser(&u)
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.acc.Deactivate(ctx, u.ID, account.ByAdmin)
	if err != nil || !res.Changed || res.User.Active || !res.User.Pending {
		t.Fatalf("disable of a pending user = %+v, %v", res, err)
	}
	res, err = e.acc.Activate(ctx, u.ID, account.ByAdmin)
	if err != nil || !res.User.Active || res.User.Pending {
		t.Fatalf("enable = %+v, %v", res, err)
	}
	if ev := e.events(store.EventUserActivated); len(ev) != 1 || ev[0].Detail["approved"] != "true" {
		t.Errorf("the enable of a disabled pending user is not audited as an approval: %+v", ev)
	}
}

// TestOfflineDeleteSaysSCIMManagementUnknown: the offline CLI's delete
// (SCIMManaged nil) leaves tombstones at every IdP, where the same delete
// online leaves none at an IdP SCIM does not manage; its user.deleted
// event says why the counts differ.
func TestOfflineDeleteSaysSCIMManagementUnknown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	online, _ := e.signIn("okta", "sub-1", jit)
	offline, _ := e.signIn("okta", "sub-2", jit)
	if _, err := e.acc.Delete(ctx, online.ID, account.ByAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := (&account.Service{Store: e.db}).Delete(ctx, offline.ID, account.ByAdmin); err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Event{}
	for _, ev := range e.events(store.EventUserDeleted) {
		got[ev.UserID] = ev
	}
	if ev := got[online.ID]; ev.Detail["tombstones"] != "0" || ev.Detail["scim_managed"] != "" {
		t.Errorf("online delete: %+v", ev)
	}
	if ev := got[offline.ID]; ev.Detail["tombstones"] != "1" || ev.Detail["scim_managed"] != "unknown" {
		t.Errorf("offline delete: %+v", ev)
	}
}
