package provision_test

// Tests that pin JIT decisions no other test held (found by mutating
// provision.go: each fails on one such change and passes on the code).

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/store"
)

// idName stands for the holder's ID in a wanted userName: known only once
// the holder is stored.
const idName = "<holder's ID>"

// TestEmailReleaseAuditedOnTheHolder: the user.updated email_released
// event a re-issued address leaves is about the holder who lost it: it
// carries the holder's own subject at this IdP (their link there, else
// their SCIM externalId, never the subject of the person signing in), and
// the holder's record is stamped as changed, so that users show and
// SCIM's meta.lastModified and ETag report the write.
func TestEmailReleaseAuditedOnTheHolder(t *testing.T) {
	for _, tt := range []struct {
		name        string
		holder      *store.User
		signIn      string // the subject taking the address
		known       bool   // signIn is a known user (force update), else a first sign-in
		wantSubject string
		// wantUserName is the holder's userName after the release: one
		// JIT derived from the address goes with it, replaced by the
		// holder's ID (idName), any other stays.
		wantUserName string
	}{
		// A user from before SCIM matching (no externalId), linked here
		// under a subject of their own.
		{"holder linked here, no externalId", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceJIT, Links: []store.Link{{IdP: "okta", Subject: "h-link"}}, Created: t0, Updated: t0},
			"new-sub", false, "h-link", idName},
		// An admin renamed them: that userName is not the address.
		{"holder with an admin-set userName", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceJIT, UserName: "ada", Links: []store.Link{{IdP: "okta", Subject: "h-link"}}, Created: t0, Updated: t0},
			"new-sub", false, "h-link", "ada"},
		// The link, not the externalId, names them at this IdP.
		{"holder linked here, other externalId", &store.User{Email: "ada@example.com", EmailVerified: true, Active: true,
			Source: store.SourceJIT, IdP: "okta", ExternalID: "h-ext", Links: []store.Link{{IdP: "okta", Subject: "h-link"}},
			Created: t0, Updated: t0}, "new-sub", false, "h-link", idName},
		// This IdP's SCIM user, who never signed in: their externalId.
		{"SCIM user of this idp, no link", &store.User{Email: "ada@example.com", Active: true, Source: store.SourceSCIM,
			IdP: "okta", ExternalID: "old-oid", UserName: "ada@example.com", Created: t0, Updated: t0},
			"a", true, "old-oid", "ada@example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			holder := e.seed(tt.holder)
			if tt.known {
				e.mustLogin("okta", jit, full(tt.signIn))
			}
			n := len(e.audit())
			prof := full(tt.signIn)
			prof.Email = "ada@example.com"
			u := e.mustLogin("okta", jit, prof)
			if got := e.user(holder.ID); got.Email != "" {
				t.Fatalf("holder kept the address %q", got.Email)
			} else if !got.Updated.After(t0) {
				t.Errorf("holder's Updated = %v, want the release stamped (after %v)", got.Updated, t0)
			} else if want := strings.Replace(tt.wantUserName, idName, holder.ID, 1); got.UserName != want {
				t.Errorf("holder's userName = %q, want %q", got.UserName, want)
			}
			var released []store.Event
			for _, ev := range e.audit()[n:] {
				if ev.Reason == "email_released" {
					released = append(released, ev)
				}
			}
			if len(released) != 1 || released[0].UserID != holder.ID || released[0].Detail["released_to"] != u.ID {
				t.Fatalf("release events %+v", released)
			}
			if released[0].Subject != tt.wantSubject {
				t.Errorf("release event subject %q, want the holder's %q", released[0].Subject, tt.wantSubject)
			}
		})
	}
}

// TestCreatedWithoutEmailVouchesForNothing: a verified sign-in that
// sends no email (email optional) creates a user whose EmailVerified is
// false: the flag speaks of Email (store.User), and with no address
// nothing was vouched for; the admin API shows it.
func TestCreatedWithoutEmailVouchesForNothing(t *testing.T) {
	e := newEnv(t)
	rules := provision.Rules{JIT: true, Optional: []string{mapping.Email}}
	prof := full("s")
	prof.Email = ""
	u := e.mustLogin("okta", rules, prof)
	if got := e.user(u.ID); got.Email != "" || got.EmailVerified {
		t.Errorf("stored email %q, email_verified %v; want no address and nothing vouched for", got.Email, got.EmailVerified)
	}
	// Nor does a later verified sign-in that again sends none: nothing
	// changed, so nothing is written or audited.
	n := len(e.audit())
	e.mustLogin("okta", rules, prof)
	if got := e.user(u.ID); got.EmailVerified {
		t.Errorf("after a second sign-in without email: email_verified %v, want false", got.EmailVerified)
	}
	if got := types(e.audit()[n:]); !slices.Equal(got, []string{store.EventLoginSucceeded}) {
		t.Errorf("second sign-in audited %v, want only %s", got, store.EventLoginSucceeded)
	}
}

// TestCreationAuditSaysGroupsOverage: a first sign-in whose groups the IdP
// sent as an overage pointer creates the user with the defaults only, and
// its user.created event says so (groups_overage), next to the
// idp.groups_overage event, so that an admin reading the user's history
// knows why they have no IdP groups.
func TestCreationAuditSaysGroupsOverage(t *testing.T) {
	for _, overage := range []bool{false, true} {
		e := newEnv(t)
		prof := full("s")
		prof.GroupsOverage = overage
		u := e.mustLogin("entra", jit, prof)
		var created *store.Event
		var overageEvents int
		for _, ev := range e.audit() {
			switch {
			case ev.Type == store.EventUserCreated && ev.UserID == u.ID:
				created = &ev
			case ev.Type == store.EventGroupsOverage:
				overageEvents++
			}
		}
		if created == nil {
			t.Fatalf("overage %v: no user.created event", overage)
		}
		if got := created.Detail["groups_overage"] == "true"; got != overage {
			t.Errorf("overage %v: user.created detail %v", overage, created.Detail)
		}
		if want := map[bool]int{false: 0, true: 1}[overage]; overageEvents != want {
			t.Errorf("overage %v: %d idp.groups_overage events, want %d", overage, overageEvents, want)
		}
	}
}

// TestBackfillSkipsExternalIDAnotherUserHolds: a linked user from before
// SCIM (no externalId) signing in does not take the externalId their
// subject would give them when another user of this IdP already holds it
// (SCIM provisioned that user with it): the sign-in succeeds and leaves
// both records as they were, instead of failing on the taken index key.
func TestBackfillSkipsExternalIDAnotherUserHolds(t *testing.T) {
	e := newEnv(t)
	holder := e.seed(&store.User{Email: "other@example.com", Active: true, Source: store.SourceSCIM,
		IdP: "okta", ExternalID: "s", UserName: "other@example.com"})
	old := e.seed(&store.User{Email: "s@example.com", EmailVerified: true, FirstName: "Ada", LastName: "Lovelace",
		Active: true, Source: store.SourceJIT, Links: []store.Link{{IdP: "okta", Subject: "s"}}})
	u, err := e.login("okta", jit, full("s"), true)
	if err != nil {
		t.Fatalf("sign-in of the linked user: %v", err)
	}
	if u.ID != old.ID {
		t.Fatalf("signed in as %s, want the linked user %s", u.ID, old.ID)
	}
	if got := e.user(old.ID); got.ExternalID != "" || got.IdP != "" {
		t.Errorf("linked user IdP, ExternalID = %q, %q; want both empty (held by %s)", got.IdP, got.ExternalID, holder.ID)
	}
	if got := e.user(holder.ID); got.ExternalID != "s" {
		t.Errorf("holder's externalId = %q, want kept", got.ExternalID)
	}
}

// TestUnverifiedRespellingKeepsVouching: with update force, a sign-in
// that sends another spelling of the user's vouched-for address (case)
// without vouching for it itself updates the spelling and keeps the
// address vouched for: it is the same mailbox. Another mailbox sent
// unverified is not vouched for.
func TestUnverifiedRespellingKeepsVouching(t *testing.T) {
	for _, tt := range []struct {
		name, email  string
		wantVerified bool
	}{
		{"same mailbox, other case", "S@Example.COM", true},
		{"another mailbox", "s2@example.com", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			u := e.mustLogin("okta", jit, full("s"))
			if !e.user(u.ID).EmailVerified {
				t.Fatal("a verified first sign-in did not vouch for the address")
			}
			prof := full("s")
			prof.Email = tt.email
			if _, err := e.login("okta", jit, prof, false); err != nil {
				t.Fatal(err)
			}
			got := e.user(u.ID)
			if got.Email != tt.email || got.EmailVerified != tt.wantVerified {
				t.Errorf("email %q verified %v; want %q verified %v", got.Email, got.EmailVerified, tt.email, tt.wantVerified)
			}
		})
	}
}

// TestPendingCreationWithOverageAuditsNoOverageEvent: a first sign-in
// under create_as pending whose groups came as an overage pointer creates
// the pending user (user.created says groups_overage) and is denied; as
// for every denied sign-in, no idp.groups_overage event is written and
// metrics see the creation and the denial only.
func TestPendingCreationWithOverageAuditsNoOverageEvent(t *testing.T) {
	e := newEnv(t)
	prof := full("s")
	prof.GroupsOverage = true
	var observed []string
	e.p.Observe = func(_, action, reason string) { observed = append(observed, action+":"+reason) }
	if _, err := e.login("entra", provision.Rules{JIT: true, CreatePending: true}, prof, true); err == nil {
		t.Fatal("pending first sign-in let in")
	}
	ev := e.audit()
	if got := types(ev); !slices.Equal(got, []string{store.EventUserCreated, store.EventLoginDenied}) {
		t.Errorf("audit = %v, want user.created, login.denied", got)
	}
	if ev[0].Detail["groups_overage"] != "true" || ev[0].Detail["pending"] != "true" {
		t.Errorf("user.created detail %v", ev[0].Detail)
	}
	if want := []string{"create:", "deny:" + provision.ReasonPending}; !slices.Equal(observed, want) {
		t.Errorf("observed %v, want %v", observed, want)
	}
}

// TestProfileWhitespaceTrimmed: stray white space around the names and
// the email an IdP sends is not stored, and the trimmed email is what the
// allowed_domains gate and the email index see.
func TestProfileWhitespaceTrimmed(t *testing.T) {
	e := newEnv(t)
	rules := provision.Rules{JIT: true, AllowedDomains: []string{"example.com"}}
	prof := full("s")
	prof.FirstName, prof.LastName, prof.Email = "  Ada ", " Lovelace  ", "  s@example.com "
	u := e.mustLogin("okta", rules, prof)
	got := e.user(u.ID)
	if got.FirstName != "Ada" || got.LastName != "Lovelace" || got.Email != "s@example.com" || got.UserName != "s@example.com" {
		t.Errorf("stored %q %q %q userName %q; want the values trimmed", got.FirstName, got.LastName, got.Email, got.UserName)
	}
	// A later sign-in sending the same padded values changes nothing.
	n := len(e.audit())
	e.mustLogin("okta", rules, prof)
	if got := types(e.audit()[n:]); !slices.Equal(got, []string{store.EventLoginSucceeded}) {
		t.Errorf("padded repeat sign-in audited %v, want only %s", got, store.EventLoginSucceeded)
	}
}

// TestLinkByEmailGreekFinalSigma: an address whose local part ends in a
// capital sigma ("ΝΊΚΟΣ") is the mailbox written "νίκος" (final sigma),
// not another one: link_by_email links it into the user holding the
// lower-case spelling.
func TestLinkByEmailGreekFinalSigma(t *testing.T) {
	e := newEnv(t)
	owner := e.seed(&store.User{Email: "νίκος@example.com", EmailVerified: true, FirstName: "N", LastName: "K",
		Active: true, Source: store.SourceSCIM, Links: []store.Link{{IdP: "entra", Subject: "owner"}}})
	prof := full("okta-sub")
	prof.Email = "ΝΊΚΟΣ@example.com"
	u, err := e.login("okta", provision.Rules{JIT: true, LinkByEmail: true}, prof, true)
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if u.ID != owner.ID {
		t.Errorf("signed in as %s, want the owner %s", u.ID, owner.ID)
	}
}

// TestResultNamesTheUserTheAddressWasTakenFrom: Apply's Result says whom
// a re-issued address was taken from (ReleasedFrom), which the sign-in
// uses to forget that user's cached sessions, still carrying the address.
func TestResultNamesTheUserTheAddressWasTakenFrom(t *testing.T) {
	e := newEnv(t)
	holder := e.mustLogin("okta", jit, full("old-sub"))
	other := e.mustLogin("okta", jit, full("bystander"))
	for _, tt := range []struct {
		name, sub, email, want string
	}{
		{"unchanged sign-in releases nothing", "bystander", other.Email, ""},
		{"new subject takes the address", "new-sub", holder.Email, holder.ID},
	} {
		prof := full(tt.sub)
		prof.Email = tt.email
		e.now = e.now.Add(time.Minute)
		var res *provision.Result
		e.put(func(tx store.Tx) (err error) {
			res, err = provision.Apply(tx, "okta", jit, prof, true, e.now)
			return err
		})
		if res.Denial != nil || res.ReleasedFrom != tt.want {
			t.Errorf("%s: denial %v, ReleasedFrom %q, want %q", tt.name, res.Denial, res.ReleasedFrom, tt.want)
		}
	}
}

// TestOverageSignInLogsAWarning: a known user's sign-in whose groups came
// as an overage pointer logs the warning that tells the operator how to
// fix the IdP's claim, besides auditing it.
func TestOverageSignInLogsAWarning(t *testing.T) {
	e := newEnv(t)
	prof := full("s")
	prof.Groups, prof.HasGroups = []string{"g"}, true
	u := e.mustLogin("entra", jit, prof)
	prof.Groups, prof.GroupsOverage = nil, true
	e.mustLogin("entra", jit, prof)
	logs := e.logs.FilterMessageSnippet("sso groups overage").All()
	if len(logs) != 1 || logs[0].Level != zapcore.WarnLevel || logs[0].ContextMap()["user_id"] != u.ID {
		t.Errorf("overage log lines %+v, want one warning naming user %s", logs, u.ID)
	}
	if got := e.user(u.ID).Groups; !slices.Equal(got, []string{"g"}) {
		t.Errorf("groups = %v, want kept", got)
	}
}

// TestKeptEmailWarningNamesTheOwner: when a force update keeps a user's
// stored email because another user holds the new one, the warning names
// that owner (owner_id), as the jit.conflict event does, for the admin
// who sorts it out.
func TestKeptEmailWarningNamesTheOwner(t *testing.T) {
	e := newEnv(t)
	owner := e.seed(&store.User{Email: "taken@example.com", Active: true})
	u := e.mustLogin("okta", jit, full("s"))
	prof := full("s")
	prof.Email = "taken@example.com"
	e.mustLogin("okta", jit, prof)
	logs := e.logs.FilterMessage("sso user email not updated: address belongs to another user").All()
	if len(logs) != 1 || logs[0].ContextMap()["owner_id"] != owner.ID || logs[0].ContextMap()["user_id"] != u.ID {
		t.Errorf("kept-email log lines %+v, want one naming owner %s and user %s", logs, owner.ID, u.ID)
	}
}
