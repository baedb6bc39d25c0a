package scim_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// These tests run SCIM and JIT against one store, as a gateway with both
// enabled for IdP "entra" does.

var scimAndJIT = provision.Rules{JIT: true, SCIMManaged: true}

func (e *env) login(rules provision.Rules, sub, first string) (*store.User, error) {
	p := &provision.Provisioner{Store: e.db, Now: func() time.Time { return e.now }}
	prof := mapping.Profile{UniqueUserID: sub, FirstName: first, LastName: "Lovelace", Email: sub + "@example.com"}
	return p.Login(context.Background(), "entra", rules, prof, true)
}

func denied(t *testing.T, err error, reason string) {
	t.Helper()
	var d *provision.Denial
	if !errors.As(err, &d) || d.Reason != reason {
		t.Fatalf("login: %v, want a %s denial", err, reason)
	}
}

func TestJITUserIsAdoptedBySCIM(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "oid-1", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	e.vars["id"] = u.ID
	// Entra's matching (objectId -> externalId) finds the JIT user...
	r := e.must(200, "GET", "/Users?filter="+q(`externalId eq "oid-1"`), "")
	if total(t, r) != 1 || at(r.body, "Resources", 0, "id") != u.ID || at(r.body, "Resources", 0, "userName") != "oid-1@example.com" {
		t.Fatalf("JIT user not matched: %s", r.raw)
	}
	// ...and so does Okta's (userName).
	if n := total(t, e.must(200, "GET", "/Users?filter="+q(`userName eq "OID-1@example.com"`), "")); n != 1 {
		t.Fatalf("userName match: %d", n)
	}
	// A create with the JIT user's userName but another externalId is
	// another person: refused, the JIT user left alone.
	scimError(t, e.do("POST", "/Users", `{"userName":"oid-1@example.com","externalId":"oid-2","active":true}`), 409, "uniqueness")
	if got := e.user("{{id}}"); got.Source != store.SourceJIT {
		t.Fatalf("the JIT user was written by a refused create: %+v", got)
	}

	// The first SCIM write takes the profile over.
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"name.givenName","value":"Augusta"}`))
	got := e.user("{{id}}")
	if got.Source != store.SourceSCIM || got.FirstName != "Augusta" {
		t.Fatalf("after PATCH %+v", got)
	}
	var adopted bool
	for _, ev := range e.audit() {
		if ev.Type == store.EventUserUpdated && ev.Detail["adopted_from"] == store.SourceJIT {
			adopted = true
		}
	}
	if !adopted {
		t.Error("no audit event records the adoption")
	}
	// From now on a login only records itself.
	again, err := e.login(scimAndJIT, "oid-1", "FromTheToken")
	if err != nil || again.ID != u.ID || again.FirstName != "Augusta" {
		t.Fatalf("login after adoption: %+v, %v", again, err)
	}
	// And an empty PATCH-like resend changes nothing.
	before := e.user("{{id}}")
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"name.givenName","value":"Augusta"}`))
	if after := e.user("{{id}}"); !after.Updated.Equal(before.Updated) {
		t.Error("a PATCH that changes nothing rewrote the user")
	}
	// SCIM owns the user now: a create with its externalId is a
	// duplicate, not another adoption.
	scimError(t, e.do("POST", "/Users", `{"userName":"other","externalId":"oid-1","active":true}`), 409, "uniqueness")
	if got := e.user("{{id}}"); got.UserName != "oid-1@example.com" {
		t.Errorf("a refused create changed the SCIM user: %+v", got)
	}
}

// TestCreateAdoptsJITUserByExternalID is Okta taking over a JIT user whose
// Okta username is not the email: its userName match finds nobody, so it
// POSTs with externalId = its user ID, the JIT user's subject. The create
// is the first SCIM write to that user (as a PATCH or PUT would be), not
// a 409 the directory can never get past.
func TestCreateAdoptsJITUserByExternalID(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "00uabc", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	if n := total(t, e.must(200, "GET", "/Users?filter="+q(`userName eq "ada"`), "")); n != 0 {
		t.Fatalf("userName match found %d", n)
	}
	r := e.must(201, "POST", "/Users", `{"userName":"ada","externalId":"00uabc","active":true,
		"name":{"givenName":"Augusta","familyName":"King"},"emails":[{"value":"00uabc@example.com","type":"work","primary":true}]}`)
	if r.body["id"] != u.ID || !strings.HasSuffix(r.header.Get("Location"), "/Users/"+u.ID) || r.body["userName"] != "ada" {
		t.Fatalf("create did not answer with the adopted user %s: %s (Location %s)", u.ID, r.raw, r.header.Get("Location"))
	}
	got := e.user(u.ID)
	if got.Source != store.SourceSCIM || got.UserName != "ada" || got.FirstName != "Augusta" || got.Email != "00uabc@example.com" {
		t.Fatalf("after the adopting create: %+v", got)
	}
	if n := total(t, e.must(200, "GET", "/Users", "")); n != 1 {
		t.Errorf("%d users after the adopting create, want the one", n)
	}
	var adopted bool
	for _, ev := range e.audit() {
		if ev.Type == store.EventUserUpdated && ev.UserID == u.ID && ev.Detail["adopted_from"] == store.SourceJIT {
			adopted = true
		}
		if ev.Type == store.EventUserCreated && ev.Detail["source"] == store.SourceSCIM {
			t.Errorf("the adoption was audited as a new user: %+v", ev)
		}
	}
	if !adopted {
		t.Error("no audit event records the adoption")
	}
	// The next sign-in is the same user, its profile SCIM's.
	again, err := e.login(scimAndJIT, "00uabc", "FromTheToken")
	if err != nil || again.ID != u.ID || again.FirstName != "Augusta" {
		t.Fatalf("login after adoption: %+v, %v", again, err)
	}
	// A resend of the create is now a duplicate of a SCIM user.
	scimError(t, e.do("POST", "/Users", `{"userName":"ada2","externalId":"00uabc","active":true}`), 409, "uniqueness")
}

// TestCreateAdoptionKeepsStateUnlessSent: adopting by create applies
// active only when the create sends it, as a PUT does, so that a
// deactivated JIT user is not reactivated by a create that does not say so.
func TestCreateAdoptionKeepsStateUnlessSent(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "00uxyz", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.accounts.Deactivate(context.Background(), u.ID, account.ByAdmin); err != nil {
		t.Fatal(err)
	}
	e.must(201, "POST", "/Users", `{"userName":"ada","externalId":"00uxyz"}`)
	if got := e.user(u.ID); got.Active || got.Source != store.SourceSCIM {
		t.Fatalf("adopted without active: %+v", got)
	}
}

func TestSCIMUserSignsInByExternalID(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	id := e.must(201, "POST", "/Users", `{"userName":"ada@example.com","externalId":"oid-7","active":true,
		"name":{"givenName":"Ada","familyName":"Lovelace"},"emails":[{"value":"oid-7@example.com","type":"work","primary":true}]}`).body["id"].(string)
	// JIT off: only provisioned users may sign in, and this one is.
	u, err := e.login(provision.Rules{SCIMManaged: true}, "oid-7", "Ada")
	if err != nil || u.ID != id {
		t.Fatalf("login: %+v, %v", u, err)
	}
	if !slices.Contains(e.user(id).Links, store.Link{IdP: "entra", Subject: "oid-7"}) {
		t.Error("no link written")
	}
	if _, err := e.login(provision.Rules{SCIMManaged: true}, "oid-8", "Bob"); err == nil {
		t.Error("an unprovisioned user signed in with JIT off")
	}
}

func TestDeactivationEndsSessionsAndLogins(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "oid-1", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	e.vars["id"] = u.ID
	cookies := []string{e.signIn(u.ID), e.signIn(u.ID)}
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"active","value":"False"}`))
	for _, c := range cookies {
		if _, err := e.sessions.Resolve(context.Background(), c); !errors.Is(err, session.ErrNoSession) {
			t.Errorf("session survived deactivation: %v", err)
		}
	}
	_, err = e.login(scimAndJIT, "oid-1", "Ada")
	denied(t, err, provision.ReasonDeactivated)
	var revoked *store.Event
	for _, ev := range e.audit() {
		if ev.Type == store.EventSessionRevoked {
			revoked = &ev
		}
	}
	if revoked == nil || revoked.Detail["sessions"] != "2" || revoked.Reason != account.ReasonDeactivated || revoked.Detail["by"] != account.BySCIM {
		t.Errorf("revocation audit = %+v", revoked)
	}
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"active","value":true}`))
	if _, err := e.login(scimAndJIT, "oid-1", "Ada"); err != nil {
		t.Errorf("login after SCIM reactivation: %v", err)
	}
}

func TestDeleteLeavesATombstone(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "oid-1", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	e.vars["id"] = u.ID
	cookie := e.signIn(u.ID)
	e.must(204, "DELETE", "/Users/{{id}}", "")
	e.must(404, "GET", "/Users/{{id}}", "")
	if _, err := e.sessions.Resolve(context.Background(), cookie); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("session survived deletion: %v", err)
	}
	var ts *store.Tombstone
	err = e.db.View(context.Background(), func(tx store.Tx) (err error) {
		ts, err = tx.Tombstone("entra", "oid-1")
		return err
	})
	if err != nil || ts.UserID != u.ID {
		t.Fatalf("tombstone: %+v, %v", ts, err)
	}

	// JIT does not bring the leaver back while SCIM runs the IdP.
	_, err = e.login(scimAndJIT, "oid-1", "Ada")
	denied(t, err, provision.ReasonDeprovisioned)
	scimError(t, e.do("DELETE", "/Users/{{id}}", ""), 404, "")

	// The directory provisions them again: the tombstone goes, and the
	// login adopts the new user.
	r := e.must(201, "POST", "/Users", `{"userName":"ada@example.com","externalId":"oid-1","active":true}`)
	if _, err := e.login(scimAndJIT, "oid-1", "Ada"); err != nil {
		t.Fatalf("login after re-provisioning: %v", err)
	}
	if got := e.user(r.body["id"].(string)); !slices.Contains(got.Links, store.Link{IdP: "entra", Subject: "oid-1"}) {
		t.Errorf("re-provisioned user not adopted: %+v", got)
	}
	var cleared bool
	for _, ev := range e.audit() {
		cleared = cleared || ev.Type == store.EventUserCreated && ev.Detail["tombstone_cleared"] == "true"
	}
	if !cleared {
		t.Error("clearing the tombstone is not audited")
	}
}

func TestGroupChangesReachTheSessionAtOnce(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	u, err := e.login(scimAndJIT, "oid-1", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	e.vars["id"] = u.ID
	cookie := e.signIn(u.ID)
	groups := func() []string {
		id, err := e.sessions.Resolve(context.Background(), cookie)
		if err != nil {
			t.Fatal(err)
		}
		return id.Groups
	}
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"Admins","members":[{"value":"{{id}}"}]}`).body["id"].(string)
	if g := groups(); !slices.Equal(g, []string{"Admins"}) {
		t.Errorf("after join: %v", g)
	}
	e.must(204, "PATCH", "/Groups/{{g}}", patchBody(`{"op":"replace","path":"displayName","value":"Operators"}`))
	if g := groups(); !slices.Equal(g, []string{"Operators"}) {
		t.Errorf("after rename: %v", g)
	}
	e.must(204, "PATCH", "/Groups/{{g}}", patchBody(`{"op":"remove","path":"members[value eq \"{{id}}\"]"}`))
	if g := groups(); len(g) != 0 {
		t.Errorf("after leave: %v", g)
	}
}

// TestActiveTrueApprovesPending: SCIM's active=true lets a user waiting for
// approval (create_as pending) in, as an administrator's enable does (one
// rule, package account). A write that does not name active leaves them
// waiting.
func TestActiveTrueApprovesPending(t *testing.T) {
	pending := provision.Rules{JIT: true, SCIMManaged: true, CreatePending: true}
	for _, c := range []struct{ name, method, body string }{
		{"PATCH", "PATCH", patchBody(`{"op":"replace","path":"active","value":true}`)},
		{"Okta PATCH", "PATCH", patchBody(`{"op":"replace","value":{"active":true}}`)},
		{"PUT", "PUT", `{"userName":"oid-1@example.com","externalId":"oid-1","active":true}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "entra", entraToken)
			_, err := e.login(pending, "oid-1", "Ada")
			denied(t, err, provision.ReasonPending)
			r := e.must(200, "GET", "/Users?filter="+q(`externalId eq "oid-1"`), "")
			e.vars["id"] = at(r.body, "Resources", 0, "id").(string)

			// Writes that leave active out change the profile, not the approval.
			e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"name.givenName","value":"Augusta"}`))
			e.must(200, "PUT", "/Users/{{id}}", `{"userName":"oid-1@example.com","externalId":"oid-1","name":{"givenName":"Augusta"}}`)
			if u := e.user("{{id}}"); !u.Pending {
				t.Fatalf("a write without active approved the user: %+v", u)
			}
			_, err = e.login(pending, "oid-1", "Ada")
			denied(t, err, provision.ReasonPending)

			e.must(200, c.method, "/Users/{{id}}", c.body)
			if u := e.user("{{id}}"); u.Pending || !u.Active {
				t.Fatalf("after active=true: %+v", u)
			}
			if _, err := e.login(pending, "oid-1", "Ada"); err != nil {
				t.Errorf("sign-in after SCIM approval: %v", err)
			}
			var approved bool
			for _, ev := range e.audit() {
				approved = approved || ev.Type == store.EventUserActivated && ev.Reason == account.BySCIM && ev.Detail["approved"] == "true"
			}
			if !approved {
				t.Error("the approval is not audited")
			}
		})
	}
}

// TestSCIMAuditCarriesNoProfile: whatever SCIM does to a user, no audit
// event holds their email or name.
func TestSCIMAuditCarriesNoProfile(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["id"] = e.must(201, "POST", "/Users", `{"userName":"ada.l@example.com","externalId":"oid-7","active":true,
		"name":{"givenName":"Augusta","familyName":"Byron"},"emails":[{"value":"ada.l@example.com","type":"work","primary":true}]}`).body["id"].(string)
	e.signIn(e.vars["id"])
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"countess@example.com"}`))
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"active","value":false}`))
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"active","value":true}`))
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"eng","members":[{"value":"{{id}}"}]}`).body["id"].(string)
	e.must(204, "DELETE", "/Users/{{id}}", "")
	events := e.audit()
	if len(events) < 6 {
		t.Fatalf("only %d events", len(events))
	}
	for _, ev := range events {
		b, _ := json.Marshal(ev)
		for _, v := range []string{"@", "Augusta", "Byron", "countess"} {
			if strings.Contains(string(b), v) {
				t.Errorf("event %s holds %q", b, v)
			}
		}
	}
}

// TestSCIMTakeoverDropsDefaultGroupsAtTheNextSignIn: a JIT user keeps the
// default_groups they were given, and the record of which groups those
// were (store.User.DefaultGroups), through SCIM's first write, which
// takes them over (docs/operations.md: "a JIT user SCIM adopted loses them
// at their next sign-in"); the next sign-in drops them even when the IdP
// sends no groups claim (a generic IdP), and keeps the SCIM groups.
func TestSCIMTakeoverDropsDefaultGroupsAtTheNextSignIn(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	rules := scimAndJIT
	rules.DefaultGroups = []string{"jit-guests"}
	u, err := e.login(rules, "oid-1", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	e.vars["id"] = u.ID
	e.must(200, "PATCH", "/Users/{{id}}", patchBody(`{"op":"Replace","path":"name.givenName","value":"Augusta"}`))
	e.must(201, "POST", "/Groups", `{"displayName":"Admins","members":[{"value":"{{id}}"}]}`)
	if got := e.user(u.ID); got.Source != store.SourceSCIM || !slices.Equal(got.Groups, []string{"Admins", "jit-guests"}) ||
		!slices.Equal(got.DefaultGroups, []string{"jit-guests"}) {
		t.Fatalf("after SCIM took the user over: source %s, groups %q, defaults %q", got.Source, got.Groups, got.DefaultGroups)
	}
	if _, err := e.login(rules, "oid-1", "Ada"); err != nil {
		t.Fatal(err)
	}
	if got := e.user(u.ID); !slices.Equal(got.Groups, []string{"Admins"}) || got.DefaultGroups != nil {
		t.Errorf("after the next sign-in (no groups claim): groups %q, defaults %q; want the SCIM group alone", got.Groups, got.DefaultGroups)
	}
}
