package caddymodule_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/store"
)

// adaClaims are the test IdP's claims for ada (caddytest.NewOIDC) with
// groups instead of hers.
func adaClaims(groups ...string) map[string]any {
	return map[string]any{
		"sub": "sub-ada", "given_name": "Ada", "family_name": "Lovelace",
		"email": "ada@example.com", "email_verified": true, "groups": groups,
	}
}

// allowAdminsOnly puts `allow group admins` on the world's protected site
// and reloads.
func (w *scimWorld) allowAdminsOnly(t *testing.T) {
	t.Helper()
	sites := strings.Replace(w.sites, "\tsso test\n", "\tsso test {\n\t\tallow group admins\n\t}\n", 1)
	if sites == w.sites {
		t.Fatal("no `sso test` line to put the rule on")
	}
	w.sites = sites
	w.gw.reload(w.caddyfile())
}

// TestAdoptedUserLosesGroupRemovedAtIdP: ada signs in through JIT with
// token groups eng and admins; SCIM is turned on and the IdP's first
// cycle adopts her (a PATCH, as Entra and Okta send it); the IdP then
// removes her from admins. Her next sign-in (update force) takes the
// token's groups, SCIM's being only another source: the app no longer
// hears admins, and an `allow group admins` route refuses her.
func TestAdoptedUserLosesGroupRemovedAtIdP(t *testing.T) {
	w := newSCIMWorld(t)
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	if got := saw.header("X-Forwarded-Groups"); got != "admins,eng" {
		t.Fatalf("first sign-in: X-Forwarded-Groups = %q", got)
	}
	id := userBySubject(t, "sub-ada").ID
	w.scim.must(200, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Replace","path":"displayName","value":"Ada Lovelace"}]}`)
	if u := userBySubject(t, "sub-ada"); u.Source != store.SourceSCIM {
		t.Fatalf("the PATCH did not adopt her: source %q", u.Source)
	}

	if err := w.idp.SetClaims("ada", adaClaims("eng")); err != nil {
		t.Fatal(err)
	}
	w.allowAdminsOnly(t)
	resp := newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("`allow group admins` after the IdP removed her from admins: %s, want 403: %.300s", resp.Status, body)
	}
	if got := userBySubject(t, "sub-ada").Groups; len(got) != 1 || got[0] != "eng" {
		t.Errorf("stored groups %v, want [eng]", got)
	}
}

// TestSCIMCreatedUserGetsTokenGroups: a directory that provisions users
// only (Okta without Push Groups, Entra without group provisioning)
// creates ada; her sign-in carries groups in the token, and the app
// hears them, merged with the SCIM groups she is a member of.
func TestSCIMCreatedUserGetsTokenGroups(t *testing.T) {
	w := newSCIMWorld(t)
	r := w.scim.must(201, "POST", "/Users", scimAda)
	id := r.body["id"].(string)
	w.scim.must(201, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"displayName":"scim-team","members":[{"value":"`+id+`"}]}`)
	saw := upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	if saw.header("X-Forwarded-User") != id {
		t.Fatalf("signed in as %q, want the SCIM user %s", saw.header("X-Forwarded-User"), id)
	}
	if got := saw.header("X-Forwarded-Groups"); got != "admins,eng,scim-team" {
		t.Errorf("X-Forwarded-Groups = %q, want the token's and SCIM's: admins,eng,scim-team", got)
	}
}

// TestReissuedAddressGoesToNewSubject: Okta deactivates ada over SCIM
// (active=false) and keeps her, holding ada@example.com; it later gives
// the address to bob, a new person (sub-bob) whose first sign-in vouches
// for it. Bob is created with the address, ada's is released (audited
// email_released), and ada stays deactivated.
func TestReissuedAddressGoesToNewSubject(t *testing.T) {
	w := newSCIMWorld(t)
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	ada := userBySubject(t, "sub-ada")
	w.scim.must(200, "PATCH", "/Users/"+ada.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","value":{"active":false}}]}`)
	w.idp.AddUser("bob", "bob-pw", map[string]any{"sub": "sub-bob", "given_name": "Bob", "family_name": "Byron",
		"email": "ada@example.com", "email_verified": true})

	resp := newBrowser(t).signIn(w.gw.base+"/", "bob", "bob-pw")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's first sign-in: %s (jit.conflict %v): %.300s", resp.Status, auditReasons(t, store.EventJITConflict), readBody(t, resp))
	}
	saw := upstreamSaw(t, resp)
	bob := userBySubject(t, "sub-bob")
	if bob.ID == ada.ID || saw.header("X-Forwarded-User") != bob.ID || saw.header("X-Forwarded-Email") != "ada@example.com" {
		t.Errorf("bob signed in as %q with %q; ada is %s, bob %s", saw.header("X-Forwarded-User"), saw.header("X-Forwarded-Email"), ada.ID, bob.ID)
	}
	if got := userBySubject(t, "sub-ada"); got.Email != "" || got.Active {
		t.Errorf("ada after: email %q, active %v", got.Email, got.Active)
	}
	if got := auditReasons(t, store.EventUserUpdated); !slices.Contains(got, "email_released") {
		t.Errorf("user.updated reasons %v, want email_released", got)
	}
}

// TestAddressOfAnotherIdPsUserStillConflicts: the same address from
// another IdP's new subject is refused as before: one IdP cannot say what
// another gives its users.
func TestAddressOfAnotherIdPsUserStillConflicts(t *testing.T) {
	w := newTwoIdPWorld(t)
	w.gw.start(w.twoIdPCaddyfile("sso other"))
	upstreamSaw(t, newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw"))
	w.idp.AddUser("bob", "bob-pw", map[string]any{"sub": "sub-bob", "given_name": "Bob", "family_name": "Byron",
		"email": "ada@example.com", "email_verified": true})
	w.gw.reload(w.twoIdPCaddyfile("sso test"))
	resp := newBrowser(t).signIn(w.gw.base+"/", "bob", "bob-pw")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob at test with other's user's address: %s, want 403: %.300s", resp.Status, body)
	}
	if got := auditReasons(t, store.EventJITConflict); len(got) != 1 || got[0] != "email_conflict" {
		t.Errorf("jit.conflict reasons %v", got)
	}
	view(t, func(tx store.Tx) error {
		ada, err := tx.UserByLink("other", "sub-ada")
		if err == nil && ada.Email != "ada@example.com" {
			t.Errorf("ada's address moved: %q", ada.Email)
		}
		return err
	})
}

// TestSCIMExternalIDMismatchNamedInLog: Entra's default SCIM mapping
// sends mailNickname ("ada") as externalId, while the sign-in's user ID is
// the objectId ("sub-ada" here): the sign-in is refused (email_conflict),
// and the WARN line and the audit detail name the cause, not
// link_by_email.
func TestSCIMExternalIDMismatchNamedInLog(t *testing.T) {
	w := newSCIMWorld(t)
	w.scim.must(201, "POST", "/Users", `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"externalId": "ada", "userName": "ada@example.com", "active": true,
		"name": {"givenName": "Ada", "familyName": "Lovelace"},
		"emails": [{"primary": true, "type": "work", "value": "ada@example.com"}]}`)
	resp := newBrowser(t).signIn(w.gw.base+"/", "ada", "ada-pw")
	readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in: %s, want 403", resp.Status)
	}
	const why = "scim externalId differs from the sign-in's user ID"
	var line string
	for _, l := range strings.Split(w.gw.logs(), "\n") {
		if strings.Contains(l, "email belongs to another user") {
			line = l
		}
	}
	if !strings.Contains(line, `"not_linked":"`+why+`"`) {
		t.Errorf("the refusal's log line does not name the externalId: %s", line)
	}
	var detail string
	view(t, func(tx store.Tx) error {
		evs, err := tx.AuditEvents(store.AuditQuery{Type: store.EventJITConflict, Limit: 10})
		if len(evs) == 1 {
			detail = evs[0].Detail["not_linked"]
		}
		return err
	})
	if detail != why {
		t.Errorf("jit.conflict not_linked = %q, want %q", detail, why)
	}
}
