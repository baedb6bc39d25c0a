package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestLinkByEmailRefusesSCIMUserOfAnotherSubjectAtThisIdP: a user SCIM
// provisioned at okta (externalId old-sub, the person's ID there) who has
// not signed in yet has no link, but is old-sub's: link_by_email must not
// hand them to new-sub, another person at the same IdP with the address
// (README: never "to a user who already has a subject at this IdP"). At
// another IdP the same user still links.
func TestLinkByEmailRefusesSCIMUserOfAnotherSubjectAtThisIdP(t *testing.T) {
	link := provision.Rules{JIT: true, LinkByEmail: true}
	seedSCIM := func(e *env) *store.User {
		u := scimUser("old-sub")
		u.IdP, u.Groups = "okta", []string{"finance-admins"}
		return e.seed(u)
	}
	t.Run("another subject at the SCIM user's IdP", func(t *testing.T) {
		e := newEnv(t)
		seeded := seedSCIM(e)
		prof := full("new-sub")
		prof.Email = seeded.Email
		_, ev := e.expectDenied("okta", link, prof, true, provision.ReasonEmailConflict, store.EventJITConflict)
		if ev.Detail["not_linked"] != "scim externalId differs from the sign-in's user ID" || ev.UserID != seeded.ID {
			t.Errorf("conflict event %+v", ev)
		}
		if _, err := e.byLink("okta", "new-sub"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("new-sub was linked: %v", err)
		}
		// The person SCIM provisioned adopts their user, the only link.
		old := e.mustLogin("okta", link, full("old-sub"))
		if want := []store.Link{{IdP: "okta", Subject: "old-sub"}}; old.ID != seeded.ID || !slices.Equal(e.user(old.ID).Links, want) {
			t.Errorf("old-sub signed in as %s (want %s), links %v", old.ID, seeded.ID, e.user(old.ID).Links)
		}
	})
	t.Run("a subject at another IdP links once the SCIM user's own sign-in vouched for the address", func(t *testing.T) {
		e := newEnv(t)
		seeded := seedSCIM(e)
		prof := full("entra-sub")
		prof.Email = seeded.Email
		// okta's SCIM client wrote the address: nobody vouched for it.
		_, ev := e.expectDenied("entra", link, prof, true, provision.ReasonEmailConflict, store.EventJITConflict)
		if ev.Detail["not_linked"] != "owner email not verified" {
			t.Errorf("conflict event %+v", ev)
		}
		old := full("old-sub")
		old.Email = seeded.Email
		e.mustLogin("okta", link, old)
		if u := e.mustLogin("entra", link, prof); u.ID != seeded.ID {
			t.Errorf("entra-sub signed in as %s, want the SCIM user %s", u.ID, seeded.ID)
		}
	})
}

// leaver is a person who signs in through entra (SCIM-managed) and, with
// the same corporate address, through google (jit + link_by_email): one
// user with two links.
func leaver(e *env) (u *store.User, corp, social provision.Rules, p, g mapping.Profile) {
	e.t.Helper()
	corp = provision.Rules{JIT: true, SCIMManaged: true}
	social = provision.Rules{JIT: true, LinkByEmail: true}
	p, g = full("corp-sub"), full("google-sub")
	p.Email, g.Email = "leaver@corp.example", "leaver@corp.example"
	u = e.mustLogin("entra", corp, p)
	if got := e.mustLogin("google", social, g); got.ID != u.ID {
		e.t.Fatalf("premise: google linked to %s, want %s", got.ID, u.ID)
	}
	return u, corp, social, p, g
}

// TestSCIMDeletedLeaverRefusedAtEveryIdP: a leaver SCIM deleted at the
// corporate IdP does not come back through a second IdP that still vouches
// for the corporate address (a new user with it would pass allowed_domains
// and `allow domain` rules): the deletion tombstones their identity there
// too, heeded while the corporate tombstone stands.
func TestSCIMDeletedLeaverRefusedAtEveryIdP(t *testing.T) {
	e := newEnv(t)
	u, corp, social, p, g := leaver(e)
	svc := &account.Service{Store: e.db, SCIMManaged: func(idp string) bool { return idp == "entra" }}
	res, err := svc.Delete(context.Background(), u.ID, account.BySCIM)
	if err != nil || res.Tombstones != 2 {
		t.Fatalf("delete = %+v, %v; want 2 tombstones", res, err)
	}
	e.expectDenied("entra", corp, p, true, provision.ReasonDeprovisioned, store.EventLoginDenied)
	_, ev := e.expectDenied("google", social, g, true, provision.ReasonDeprovisioned, store.EventLoginDenied)
	if ev.Detail["deleted_user"] != u.ID || ev.Detail["home_idp"] != "entra" {
		t.Errorf("google denial detail %v", ev.Detail)
	}
	// However the second IdP is configured.
	e.expectDenied("google", provision.Rules{JIT: true}, g, true, provision.ReasonDeprovisioned, store.EventLoginDenied)
	// Lifted with the corporate tombstone (a SCIM create there clears it;
	// provision/scim's TestSCIMRecreateLiftsSecondIdPTombstone does it
	// through SCIM).
	e.put(func(tx store.Tx) error { return tx.DeleteTombstone("entra", "corp-sub") })
	if back := e.mustLogin("google", social, g); back.ID == u.ID {
		t.Errorf("signed in as the deleted user %s", u.ID)
	}
}

// TestSecondIdPUnaffectedWithoutSCIMDeletion: an IdP whose users were
// never SCIM-deprovisioned behaves as before. An administrator's delete
// keeps its documented policy (docs/scim.md: at an IdP without SCIM, a
// later JIT sign-in creates the user anew), online or offline (tombstones
// everywhere, heeded only where SCIM is on), and a plain tombstone at an
// IdP without SCIM is ignored.
func TestSecondIdPUnaffectedWithoutSCIMDeletion(t *testing.T) {
	for _, c := range []struct {
		name    string
		managed func(string) bool
		tombs   int
	}{
		{"admin delete", func(idp string) bool { return idp == "entra" }, 1},
		{"offline admin delete", nil, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			u, corp, social, p, g := leaver(e)
			svc := &account.Service{Store: e.db, SCIMManaged: c.managed}
			if res, err := svc.Delete(context.Background(), u.ID, account.ByAdmin); err != nil || res.Tombstones != c.tombs {
				t.Fatalf("delete = %+v, %v; want %d tombstones", res, err, c.tombs)
			}
			e.expectDenied("entra", corp, p, true, provision.ReasonDeprovisioned, store.EventLoginDenied)
			if back := e.mustLogin("google", social, g); back.ID == u.ID {
				t.Errorf("signed in as the deleted user %s", u.ID)
			}
		})
	}
	t.Run("SCIM delete of a user of another IdP", func(t *testing.T) {
		e := newEnv(t)
		social := provision.Rules{JIT: true, LinkByEmail: true}
		other := e.mustLogin("google", social, full("bystander"))
		u, _, _, _, _ := leaver(e)
		svc := &account.Service{Store: e.db, SCIMManaged: func(idp string) bool { return idp == "entra" }}
		if _, err := svc.Delete(context.Background(), u.ID, account.BySCIM); err != nil {
			t.Fatal(err)
		}
		if got := e.mustLogin("google", social, full("bystander")); got.ID != other.ID {
			t.Errorf("bystander signed in as %s, want %s", got.ID, other.ID)
		}
	})
	t.Run("plain tombstone at an IdP without SCIM", func(t *testing.T) {
		e := newEnv(t)
		e.put(func(tx store.Tx) error {
			return tx.PutTombstone(&store.Tombstone{IdP: "google", Subject: "google-sub", UserID: "gone", Deleted: t0})
		})
		e.mustLogin("google", provision.Rules{JIT: true}, full("google-sub"))
	})
}

// TestForceUpdateMovesEmailTheIdPReassigned: with update force, an address
// this IdP gives a user that another user of this IdP alone still holds
// (the IdP swapped two people's addresses, or re-issued one) moves to the
// user signing in, audited on the previous holder without the address;
// the holder gets their new one at their own next sign-in. Before, each
// kept the stale one on every sign-in, and no admin operation could
// change it.
func TestForceUpdateMovesEmailTheIdPReassigned(t *testing.T) {
	t.Run("swapped addresses", func(t *testing.T) {
		e := newEnv(t)
		a, b := full("a"), full("b")
		a.Email, b.Email = "one@example.com", "two@example.com"
		ua, ub := e.mustLogin("okta", jit, a), e.mustLogin("okta", jit, b)
		n := len(e.audit())
		a.Email, b.Email = "two@example.com", "one@example.com"
		e.mustLogin("okta", jit, a)
		if ga, gb := e.user(ua.ID), e.user(ub.ID); ga.Email != "two@example.com" || ga.UserName != "two@example.com" ||
			gb.Email != "" || gb.UserName != ub.ID {
			t.Errorf("after a's sign-in: a=%q/%q b=%q/%q; want a=two, b no email yet and its ID as userName", ga.Email, ga.UserName, gb.Email, gb.UserName)
		}
		e.mustLogin("okta", jit, b)
		if ga, gb := e.user(ua.ID).Email, e.user(ub.ID).Email; ga != "two@example.com" || gb != "one@example.com" {
			t.Errorf("after both signed in: a=%s b=%s; want a=two b=one", ga, gb)
		}
		var released []store.Event
		for _, ev := range e.audit()[n:] {
			if ev.Reason == "email_released" {
				released = append(released, ev)
			}
			b, _ := json.Marshal(ev)
			if strings.Contains(string(b), "@") {
				t.Errorf("audit event holds an address: %s", b)
			}
		}
		if len(released) != 1 || released[0].Type != store.EventUserUpdated || released[0].UserID != ub.ID ||
			released[0].Subject != "b" || released[0].Detail["released_to"] != ua.ID || released[0].Detail["fields"] != "email,user_name" {
			t.Errorf("release events %+v", released)
		}
		if e.logs.FilterMessage("sso user email taken from another user: the IdP gives the address to this user now").Len() != 1 {
			t.Error("no log line for the release")
		}
	})
	t.Run("SCIM user of this IdP", func(t *testing.T) {
		e := newEnv(t)
		holder := scimUser("old-oid")
		holder.IdP = "okta"
		holder.Emails = []store.Email{{Value: holder.Email, Primary: true}, {Value: "ada@home.example"}}
		e.seed(holder)
		a := e.mustLogin("okta", jit, full("a"))
		prof := full("a")
		prof.Email = "ADA@example.com"
		e.mustLogin("okta", jit, prof)
		got := e.user(holder.ID)
		if e.user(a.ID).Email != "ADA@example.com" || got.Email != "" || got.UserName != holder.UserName ||
			!slices.Equal(got.Emails, []store.Email{{Value: "ada@home.example"}}) {
			t.Errorf("a %q; holder %q %q %v", e.user(a.ID).Email, got.Email, got.UserName, got.Emails)
		}
	})
	kept := []struct {
		name     string
		holder   *store.User
		email    string
		verified bool
	}{
		{"holder linked at another IdP too", &store.User{Email: "taken@example.com", Active: true, Source: store.SourceJIT,
			Links: []store.Link{{IdP: "okta", Subject: "h"}, {IdP: "entra", Subject: "h"}}}, "taken@example.com", true},
		{"holder of another IdP", &store.User{Email: "taken@example.com", Active: true, Source: store.SourceSCIM,
			IdP: "entra", ExternalID: "h"}, "taken@example.com", true},
		{"holder with no link", &store.User{Email: "taken@example.com", Active: true, Source: store.SourceJIT}, "taken@example.com", true},
		{"email not verified", &store.User{Email: "taken@example.com", Active: true, Source: store.SourceJIT,
			Links: []store.Link{{IdP: "okta", Subject: "h"}}}, "taken@example.com", false},
		{"another mailbox equal only under case folding", &store.User{Email: "admin@strasse.de", Active: true, Source: store.SourceJIT,
			Links: []store.Link{{IdP: "okta", Subject: "h"}}}, "admin@straße.de", true},
	}
	for _, k := range kept {
		t.Run("kept: "+k.name, func(t *testing.T) {
			e := newEnv(t)
			holder := e.seed(k.holder)
			a := e.mustLogin("okta", jit, full("a"))
			prof := full("a")
			prof.Email = k.email
			if _, err := e.login("okta", jit, prof, k.verified); err != nil {
				t.Fatal(err)
			}
			if ga, gh := e.user(a.ID).Email, e.user(holder.ID).Email; ga != "a@example.com" || gh != k.holder.Email {
				t.Errorf("a=%s holder=%s; want both kept", ga, gh)
			}
			if e.logs.FilterMessage("sso user email not updated: address belongs to another user").Len() != 1 {
				t.Error("no conflict log line")
			}
		})
	}
}

// TestEmailConflictMessagePromisesNoLink: the email_conflict page names
// the problem and who can resolve it, and promises no linking of
// accounts: no admin operation links them, and where the address was
// re-issued the owner is another person.
func TestEmailConflictMessagePromisesNoLink(t *testing.T) {
	msg := (&provision.Denial{Reason: provision.ReasonEmailConflict}).Message()
	if strings.Contains(msg, "link") || !strings.Contains(msg, "already belongs to another account") || !strings.Contains(msg, "administrator") {
		t.Errorf("message %q: want the conflict and the administrator named, and no link promised", msg)
	}
}

// TestOneMailboxInTwoSpellingsIsOneUser: the xn-- and Unicode spellings of
// a domain, and a trailing dot, name one mailbox (CanonEmail, which the
// routes' user rules compare in), though the store's email index keeps
// them apart: a second IdP's sign-in with the other spelling links to
// the user holding the address (link_by_email, verified) or is an email
// conflict, never a second user with the same mailbox.
func TestOneMailboxInTwoSpellingsIsOneUser(t *testing.T) {
	for _, tc := range []struct{ name, first, second string }{
		{"Unicode, then xn--", "ada@bücher.example", "ada@xn--bcher-kva.example"},
		{"xn--, then Unicode", "ada@xn--bcher-kva.example", "Ada@Bücher.example"},
		{"no dot, then a trailing dot", "ada@example.com", "ada@example.com."},
		{"a trailing dot, then none", "ada@bücher.example.", "ada@xn--bcher-kva.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			link := provision.Rules{JIT: true, LinkByEmail: true}
			p1 := full("entra-sub")
			p1.Email = tc.first
			u1 := e.mustLogin("entra", link, p1)
			p2 := full("okta-sub")
			p2.Email = tc.second
			if u2 := e.mustLogin("okta", link, p2); u2.ID != u1.ID {
				t.Errorf("%q and %q are two users %s and %s; want okta linked to %s", tc.first, tc.second, u1.ID, u2.ID, u1.ID)
			}
			p3 := full("google-sub")
			p3.Email = tc.second
			_, ev := e.expectDenied("google", jit, p3, true, provision.ReasonEmailConflict, store.EventJITConflict)
			if ev.UserID != u1.ID {
				t.Errorf("conflict names %s, want %s", ev.UserID, u1.ID)
			}
			// The holder's own IdP changing the spelling is no conflict.
			p1.Email = tc.second
			if got := e.mustLogin("entra", link, p1); got.ID != u1.ID || e.user(u1.ID).Email != tc.second {
				t.Errorf("entra re-spelling: user %s email %q", got.ID, e.user(u1.ID).Email)
			}
		})
	}
}
