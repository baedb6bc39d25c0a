package provision_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// scimUser is a user as the SCIM endpoint of IdP "entra" creates it,
// before their first login.
func scimUser(ext string) *store.User {
	return &store.User{
		Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Active: true, Source: store.SourceSCIM,
		UserName: "ada@example.com", IdP: "entra", ExternalID: ext, Created: t0, Updated: t0,
	}
}

func (e *env) put(fn func(store.Tx) error) {
	e.t.Helper()
	if err := e.db.Update(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

func TestLoginAdoptsSCIMUserByExternalID(t *testing.T) {
	for _, rules := range []provision.Rules{{}, jit, {JIT: true, SCIMManaged: true}} {
		t.Run(map[bool]string{false: "jit off", true: "jit on"}[rules.JIT], func(t *testing.T) {
			e := newEnv(t)
			seeded := e.seed(scimUser("oid-1"))
			prof := full("oid-1")
			prof.FirstName, prof.Email = "Augusta", "other@example.com" // SCIM owns the profile
			// The token's groups are a source of their own: they apply.
			prof.Groups, prof.HasGroups = []string{"from-token"}, true
			u := e.mustLogin("entra", rules, prof)
			if u.ID != seeded.ID || len(e.users()) != 1 {
				t.Fatalf("signed in as %s (seeded %s), %d users", u.ID, seeded.ID, len(e.users()))
			}
			got := e.user(u.ID)
			if !slices.Equal(got.Links, []store.Link{{IdP: "entra", Subject: "oid-1"}}) {
				t.Errorf("links = %v", got.Links)
			}
			if got.FirstName != "Ada" || got.Email != "ada@example.com" || got.Source != store.SourceSCIM {
				t.Errorf("login changed a SCIM-owned profile: %+v", got)
			}
			if !slices.Equal(got.Groups, []string{"from-token"}) {
				t.Errorf("Groups = %v, want the token's", got.Groups)
			}
			if !got.LastLogin.Equal(e.now) {
				t.Errorf("LastLogin = %v", got.LastLogin)
			}
			ev := e.audit()
			if !slices.Equal(types(ev), []string{store.EventJITLinked, store.EventUserUpdated, store.EventLoginSucceeded}) ||
				ev[0].Reason != "external_id" || ev[1].Detail["fields"] != "groups" {
				t.Errorf("audit = %+v", ev)
			}
			if e.logs.FilterMessage("sso identity linked to SCIM user by externalId").Len() != 1 {
				t.Error("no adoption log line")
			}
			// From now on the link finds the user; nothing more is linked.
			e.mustLogin("entra", rules, prof)
			if n := len(e.user(u.ID).Links); n != 1 {
				t.Errorf("%d links after second login", n)
			}
		})
	}
}

func TestAdoptionIsScopedToTheIdP(t *testing.T) {
	e := newEnv(t)
	seeded := e.seed(scimUser("same-sub"))
	prof := full("same-sub")
	prof.Email = "someone@example.com"
	u := e.mustLogin("okta", jit, prof)
	if u.ID == seeded.ID {
		t.Fatal("an okta login adopted entra's SCIM user")
	}
	if got := e.user(seeded.ID); len(got.Links) != 0 {
		t.Errorf("entra user got links %v", got.Links)
	}
}

func TestAdoptionStillPassesTheGates(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*store.User)
		rules  provision.Rules
		reason string
	}{
		{"deactivated by SCIM", func(u *store.User) { u.Active = false }, jit, provision.ReasonDeactivated},
		{"pending", func(u *store.User) { u.Pending = true }, jit, provision.ReasonPending},
		{"domain gate", func(*store.User) {}, provision.Rules{JIT: true, AllowedDomains: []string{"corp.example"}}, provision.ReasonDomainNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			u := scimUser("oid-1")
			tt.mutate(u)
			e.seed(u)
			d, _ := e.expectDenied("entra", tt.rules, full("oid-1"), true, tt.reason, store.EventLoginDenied)
			if d.UserID != u.ID {
				t.Errorf("denial user %q, want %q", d.UserID, u.ID)
			}
			if _, err := e.byLink("entra", "oid-1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("link written despite the denial: %v", err)
			}
		})
	}
}

func TestJITUsersCarrySCIMMatchingFields(t *testing.T) {
	e := newEnv(t)
	u := e.mustLogin("entra", jit, full("oid-9"))
	got := e.user(u.ID)
	if got.IdP != "entra" || got.ExternalID != "oid-9" || got.UserName != "oid-9@example.com" {
		t.Errorf("IdP, ExternalID, UserName = %q, %q, %q", got.IdP, got.ExternalID, got.UserName)
	}
}

// TestJITUserNameIsIndexedAndUnique: a JIT user always gets a userName the
// store indexes, its email when no one holds that as a userName, else its
// ID (also without an email), on creation and when a force update moves
// its email; the sign-in never fails over it. SCIM shows that userName, so
// what a list shows is what a filter finds and no two users show one
// (once such a user had none, and SCIM showed the email another user held
// as theirs). On both backends: PostgreSQL writes the new user twice.
func TestJITUserNameIsIndexedAndUnique(t *testing.T) {
	const id = "<its ID>"
	for _, tt := range []struct {
		name       string
		email      string // the sign-in's
		holder     string // another user's userName, if any
		moveTo     string // a later sign-in's email, if any
		stored     string // the userName JIT user had before the move ("" as stored before it got its ID)
		wantName   string
		wantChange bool // the move changed it (audited as user_name)
	}{
		{"email free", "free@example.com", "", "", "", "free@example.com", false},
		{"email held as another's userName", "taken@example.com", "taken@example.com", "", "", id, false},
		{"held in another spelling", "Taken@Example.com", "taken@example.com", "", "", id, false},
		{"no email", "", "", "", "", id, false},
		{"email moves to one held", "old@example.com", "new@example.com", "new@example.com", "", id, true},
		{"email moves off a held one", "taken@example.com", "taken@example.com", "free@example.com", "", "free@example.com", true},
		{"email moves, none stored", "old@example.com", "new@example.com", "new@example.com", "none", id, true},
		// Its ID stays when the email it gets is held: no change to audit.
		{"email comes, held as another's userName", "", "new@example.com", "new@example.com", "", id, false},
	} {
		for _, be := range backendtest.All() {
			t.Run(be.Name+"/"+tt.name, func(t *testing.T) {
				e := newEnvOn(t, be.Open(t))
				if tt.holder != "" {
					e.seed(&store.User{Email: "holder@example.com", UserName: tt.holder, Active: true, Source: store.SourceSCIM})
				}
				prof := full("oid-10")
				prof.Email = tt.email
				rules := jit
				rules.Optional = []string{mapping.Email}
				u := e.mustLogin("entra", rules, prof)
				if tt.stored == "none" {
					u = e.user(u.ID)
					u.UserName = ""
					e.seed(u)
				}
				if tt.moveTo != "" {
					prof.Email = tt.moveTo
					n := len(e.audit())
					e.mustLogin("entra", rules, prof)
					var fields string
					for _, ev := range e.audit()[n:] {
						if ev.Type == store.EventUserUpdated {
							fields = ev.Detail["fields"]
						}
					}
					if got := strings.Contains(fields, "user_name"); got != tt.wantChange {
						t.Errorf("update audited fields %q, want user_name changed: %v", fields, tt.wantChange)
					}
				}
				want := strings.Replace(tt.wantName, id, u.ID, 1)
				if got := e.user(u.ID); got.UserName != want || got.ExternalID != "oid-10" {
					t.Errorf("UserName %q, ExternalID %q; want %q, oid-10", got.UserName, got.ExternalID, want)
				}
				var found *store.User
				if err := e.db.View(context.Background(), func(tx store.Tx) (err error) { found, err = tx.UserByUserName(want); return err }); err != nil || found.ID != u.ID {
					t.Errorf("userName %q finds %v (%v), want the user %s", want, found, err, u.ID)
				}
			})
		}
	}
}

func TestLoginBackfillsExternalID(t *testing.T) {
	e := newEnv(t)
	// A user from before SCIM: linked, no SCIM fields.
	old := e.seed(&store.User{Email: "s@example.com", FirstName: "Ada", LastName: "Lovelace", Active: true,
		Source: store.SourceJIT, Links: []store.Link{{IdP: "entra", Subject: "s"}}})
	e.mustLogin("entra", jit, full("s"))
	got := e.user(old.ID)
	if got.IdP != "entra" || got.ExternalID != "s" {
		t.Errorf("IdP, ExternalID = %q, %q", got.IdP, got.ExternalID)
	}
	ev := e.audit()
	// Its sign-in vouched for the address it holds, which makes it
	// linkable (link_by_email) from now on.
	if ev[0].Type != store.EventUserUpdated || ev[0].Detail["fields"] != "external_id,email_verified" {
		t.Errorf("audit = %+v", ev)
	}
}

// TestBackfillSparesExternalIDOthersOwn: the externalId backfill writes
// only onto a user no directory speaks for. A SCIM user's externalId
// (none here: SCIM may leave it out) is the SCIM client's, and a user of
// another IdP holds that IdP's ID there: a sign-in at okta changes neither.
func TestBackfillSparesExternalIDOthersOwn(t *testing.T) {
	for _, tt := range []struct {
		name   string
		source string
		idp    string
	}{
		{"SCIM user without externalId", store.SourceSCIM, "okta"},
		{"user of another IdP without externalId", store.SourceJIT, "entra"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			u := e.seed(&store.User{Email: "s@example.com", EmailVerified: true, FirstName: "Ada", LastName: "Lovelace",
				Active: true, Source: tt.source, IdP: tt.idp, Links: []store.Link{{IdP: "okta", Subject: "s"}}})
			e.mustLogin("okta", jit, full("s"))
			if got := e.user(u.ID); got.IdP != tt.idp || got.ExternalID != "" {
				t.Errorf("IdP, ExternalID = %q, %q; want %q, \"\"", got.IdP, got.ExternalID, tt.idp)
			}
		})
	}
}

func TestTombstoneDeniesJITWhileSCIMManaged(t *testing.T) {
	scim := provision.Rules{JIT: true, SCIMManaged: true}
	tombstone := func(e *env, idp, sub string) {
		e.put(func(tx store.Tx) error {
			return tx.PutTombstone(&store.Tombstone{IdP: idp, Subject: sub, UserID: "deleted-user", Deleted: t0})
		})
	}
	t.Run("denied with its own reason", func(t *testing.T) {
		e := newEnv(t)
		tombstone(e, "entra", "oid-1")
		d, ev := e.expectDenied("entra", scim, full("oid-1"), true, provision.ReasonDeprovisioned, store.EventLoginDenied)
		if ev.Detail["deleted_user"] != "deleted-user" || d.UserID != "" {
			t.Errorf("audit detail %v, denial user %q", ev.Detail, d.UserID)
		}
		if d.Message() == (&provision.Denial{Reason: provision.ReasonJITDisabled}).Message() {
			t.Error("message does not tell a removed account from an unknown one")
		}
	})
	t.Run("link_by_email cannot get around it", func(t *testing.T) {
		e := newEnv(t)
		e.seed(&store.User{Email: "oid-1@example.com", Active: true, Links: []store.Link{{IdP: "okta", Subject: "x"}}})
		tombstone(e, "entra", "oid-1")
		rules := scim
		rules.LinkByEmail = true
		e.expectDenied("entra", rules, full("oid-1"), true, provision.ReasonDeprovisioned, store.EventLoginDenied)
	})
	t.Run("jit off is still told the account was removed", func(t *testing.T) {
		e := newEnv(t)
		tombstone(e, "entra", "oid-1")
		e.expectDenied("entra", provision.Rules{SCIMManaged: true}, full("oid-1"), true, provision.ReasonDeprovisioned, store.EventLoginDenied)
	})
	t.Run("ignored when SCIM is not enabled for the IdP", func(t *testing.T) {
		e := newEnv(t)
		tombstone(e, "entra", "oid-1")
		e.mustLogin("entra", jit, full("oid-1"))
	})
	t.Run("scoped to its IdP and exact subject", func(t *testing.T) {
		e := newEnv(t)
		tombstone(e, "entra", "oid-1")
		e.mustLogin("okta", scim, full("oid-1"))
		other := full("OID-1")
		other.Email = "other@example.com"
		e.mustLogin("entra", scim, other)
	})
	t.Run("cleared tombstone lets JIT create again", func(t *testing.T) {
		e := newEnv(t)
		tombstone(e, "entra", "oid-1")
		e.put(func(tx store.Tx) error { return tx.DeleteTombstone("entra", "oid-1") })
		e.mustLogin("entra", scim, full("oid-1"))
	})
	t.Run("an existing user is not affected", func(t *testing.T) {
		e := newEnv(t)
		u := e.mustLogin("entra", scim, full("oid-1"))
		tombstone(e, "entra", "oid-1") // e.g. a stale one
		if got := e.mustLogin("entra", scim, full("oid-1")); got.ID != u.ID {
			t.Errorf("got %s, want %s", got.ID, u.ID)
		}
	})
}

func TestSCIMGroupsSurviveLoginGroups(t *testing.T) {
	e := newEnv(t)
	prof := full("s")
	prof.Groups, prof.HasGroups = []string{"a", "b"}, true
	u := e.mustLogin("entra", jit, prof)
	e.put(func(tx store.Tx) error {
		return tx.PutGroup(&store.Group{IdP: "entra", DisplayName: "scim-team", Members: []string{u.ID}})
	})
	if got := e.user(u.ID).Groups; !slices.Equal(got, []string{"a", "b", "scim-team"}) {
		t.Fatalf("after SCIM membership Groups = %v", got)
	}
	prof.Groups = []string{"c"}
	got := e.mustLogin("entra", jit, prof)
	if !slices.Equal(got.Groups, []string{"c", "scim-team"}) || !slices.Equal(e.user(u.ID).Groups, got.Groups) {
		t.Errorf("after login Groups = %v", got.Groups)
	}
	// Same groups again: nothing to update.
	n := len(e.audit())
	e.mustLogin("entra", jit, prof)
	if ev := types(e.audit()[n:]); !slices.Equal(ev, []string{store.EventLoginSucceeded}) {
		t.Errorf("audit = %v", ev)
	}
}

// TestSCIMOwnedProfileKeepsNamesAndEmail: SCIM owns the names and the
// email of its users; the token's groups still apply (update force).
func TestSCIMOwnedProfileKeepsNamesAndEmail(t *testing.T) {
	e := newEnv(t)
	u := e.mustLogin("entra", jit, full("s"))
	// SCIM takes the user over (as its first write does).
	rec := e.user(u.ID)
	rec.Source = store.SourceSCIM
	e.seed(rec)
	before := e.user(u.ID)
	prof := mapping.Profile{UniqueUserID: "s", FirstName: "New", LastName: "Name", Email: "new@example.com",
		Groups: []string{"x"}, HasGroups: true}
	e.mustLogin("entra", jit, prof)
	after := e.user(u.ID)
	if after.FirstName != before.FirstName || after.LastName != before.LastName || after.Email != before.Email ||
		!slices.Equal(after.Groups, []string{"x"}) || !after.LastLogin.Equal(e.now) {
		t.Errorf("before %+v\nafter %+v", before, after)
	}
}
