package provision_test

import (
	"context"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// scimDeletedLeaver is leaver, deleted by SCIM at "entra": tombstones at
// entra (home) and google (following).
func scimDeletedLeaver(e *env) (u *store.User, svc *account.Service, corp, social provision.Rules) {
	e.t.Helper()
	u, corp, social, _, _ = leaver(e)
	svc = &account.Service{Store: e.db, SCIMManaged: func(idp string) bool { return idp == "entra" }}
	if res, err := svc.Delete(context.Background(), u.ID, account.BySCIM); err != nil || res.Tombstones != 2 {
		e.t.Fatalf("delete = %+v, %v; want 2 tombstones", res, err)
	}
	return u, svc, corp, social
}

// TestLiftLetsRehiredPersonInAtSecondIdP: the directory provisions the
// leaver's address again under a new externalId (a rehire gets a new
// object ID, or the mailbox goes to someone new). No SCIM create names
// the deleted externalId, so nothing lifted the tombstone the deletion
// left at the second IdP, which refused that person for good. The refusal
// stands until an administrator lifts the deleted user's tombstones
// (`caddy sso tombstones lift`, by the deleted_user detail); then the
// second IdP signs the person in, linked to the user the directory
// provisioned.
func TestLiftLetsRehiredPersonInAtSecondIdP(t *testing.T) {
	e := newEnv(t)
	u, svc, corp, social := scimDeletedLeaver(e)
	again := scimUser("corp-sub-2")
	again.Email, again.UserName = "leaver@corp.example", "leaver@corp.example"
	e.seed(again)
	p2 := full("corp-sub-2")
	p2.Email = "leaver@corp.example"
	if got := e.mustLogin("entra", corp, p2); got.ID != again.ID {
		t.Fatalf("entra: %s, want %s", got.ID, again.ID)
	}
	g := full("google-sub")
	g.Email = "leaver@corp.example"
	_, ev := e.expectDenied("google", social, g, true, provision.ReasonDeprovisioned, store.EventLoginDenied)
	if ev.Detail["deleted_user"] != u.ID {
		t.Fatalf("denial detail %v, want deleted_user %s", ev.Detail, u.ID)
	}

	res, err := svc.Lift(context.Background(), ev.Detail["deleted_user"], account.ByAdmin)
	if err != nil || len(res.Lifted) != 2 {
		t.Fatalf("lift = %+v, %v; want both tombstones", res, err)
	}
	if got := e.mustLogin("google", social, g); got.ID != again.ID {
		t.Errorf("google after lift: %s, want linked to %s", got.ID, again.ID)
	}
}

// TestLiftFollowingTombstoneWhenHomeSCIMTurnedOff: with SCIM turned off
// at the home IdP, its own tombstone is ignored there and JIT signs the
// person in anew, while the tombstone the deletion left at the second IdP
// is still heeded (its home stands): in at one IdP, refused at the other.
// Lifting the second IdP's tombstone alone (--idp --subject) lets them in
// there too, linked to the user JIT re-created.
func TestLiftFollowingTombstoneWhenHomeSCIMTurnedOff(t *testing.T) {
	e := newEnv(t)
	_, svc, _, social := scimDeletedLeaver(e)
	p, g := full("corp-sub"), full("google-sub")
	p.Email, g.Email = "leaver@corp.example", "leaver@corp.example"
	back := e.mustLogin("entra", provision.Rules{JIT: true}, p) // SCIM off at entra: JIT again
	e.expectDenied("google", social, g, true, provision.ReasonDeprovisioned, store.EventLoginDenied)

	res, err := svc.LiftTombstone(context.Background(), "google", "google-sub", account.ByAdmin)
	if err != nil || len(res.Lifted) != 1 || res.Lifted[0].IdP != "google" {
		t.Fatalf("lift = %+v, %v; want the google tombstone alone", res, err)
	}
	if got := e.mustLogin("google", social, g); got.ID != back.ID {
		t.Errorf("google after lift: %s, want linked to %s", got.ID, back.ID)
	}
}
