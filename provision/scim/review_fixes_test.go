package scim_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/store"
)

const urnEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// TestValueHeldByAnotherIdPSaysSo: userName and email are unique across
// the store, but a handler's filters see only its own IdP's users, so the
// directory's match finds nobody and its create is refused on every
// cycle. The 409 must tell it that another identity provider holds the
// value (and no more: not the holder, not its IdP), and the log must tell
// the admin which IdP and user hold it.
func TestValueHeldByAnotherIdPSaysSo(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	holder := &store.User{IdP: "google", UserName: "alice@corp.com", Email: "alice@corp.com", ExternalID: "g-1",
		Active: true, Source: store.SourceJIT, Created: t0, Updated: t0}
	if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(holder) }); err != nil {
		t.Fatal(err)
	}
	if n := total(t, e.must(200, "GET", "/Users?filter="+q(`userName eq "alice@corp.com"`), "")); n != 0 {
		t.Fatalf("entra's filter found google's user: %d", n)
	}
	e.vars["own"] = e.must(201, "POST", "/Users", `{"userName":"bob@corp.com","externalId":"oid-b"}`).body["id"].(string)
	for _, tt := range []struct {
		name, method, path, body, attr string
	}{
		{"create with its userName", "POST", "/Users", `{"userName":"ALICE@corp.com","externalId":"oid-1"}`, "userName"},
		{"create with its email", "POST", "/Users", `{"userName":"carol@corp.com","externalId":"oid-2",
			"emails":[{"value":"alice@CORP.com","type":"work","primary":true}]}`, "email"},
		{"rename to its userName", "PATCH", "/Users/{{own}}", patchBody(`{"op":"replace","path":"userName","value":"alice@corp.com"}`), "userName"},
		{"PUT its email", "PUT", "/Users/{{own}}", `{"userName":"bob@corp.com","emails":[{"value":"alice@corp.com","primary":true}]}`, "email"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.logs.Len()
			r := e.do(tt.method, tt.path, tt.body)
			scimError(t, r, 409, "uniqueness")
			detail, _ := r.body["detail"].(string)
			if !strings.Contains(detail, tt.attr+" is held by a user of another identity provider") {
				t.Errorf("detail %q does not say another identity provider holds the %s", detail, tt.attr)
			}
			for _, secret := range []string{"google", holder.ID, "alice"} {
				if strings.Contains(strings.ToLower(r.raw), strings.ToLower(secret)) {
					t.Errorf("the 409 reveals %q: %s", secret, r.raw)
				}
			}
			var logged bool
			for _, l := range e.logs.All()[before:] {
				m := l.ContextMap()
				if l.Message == "scim write refused: a user of another identity provider holds the value" &&
					m["holder_idp"] == "google" && m["holder_user_id"] == holder.ID && m["attribute"] == tt.attr {
					logged = true
					if strings.Contains(strings.ToLower(fmt.Sprint(m)), "alice") {
						t.Errorf("the log holds the value: %v", m)
					}
				}
			}
			if !logged {
				t.Error("no WARN names the IdP and user that hold the value")
			}
		})
	}
	// A value held by a user of this IdP is the plain duplicate it was.
	r := e.do("POST", "/Users", `{"userName":"bob@corp.com","externalId":"oid-3"}`)
	scimError(t, r, 409, "uniqueness")
	if strings.Contains(r.raw, "another identity provider") {
		t.Errorf("a duplicate within the IdP blamed another: %s", r.raw)
	}
}

// TestCreateAppliesAttributesParameter: RFC 7644 3.9, attributes and
// excludedAttributes shape the resource a POST returns as they do for the
// other writes; its id stays (returned always).
func TestCreateAppliesAttributesParameter(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	r := e.must(201, "POST", "/Users?attributes=userName", `{"userName":"c@x.com","displayName":"C"}`)
	if _, ok := r.body["displayName"]; ok || r.body["userName"] != "c@x.com" || r.body["id"] == nil {
		t.Errorf("POST ?attributes=userName: %s", r.raw)
	}
	r = e.must(201, "POST", "/Users?excludedAttributes=displayName", `{"userName":"d@x.com","displayName":"D"}`)
	if _, ok := r.body["displayName"]; ok || r.body["userName"] != "d@x.com" {
		t.Errorf("POST ?excludedAttributes=displayName: %s", r.raw)
	}
}

// TestRemovingLastExtensionAttributeDropsExtension: a user without any
// enterprise attribute has no enterprise extension, neither an empty
// object nor its URN in schemas.
func TestRemovingLastExtensionAttributeDropsExtension(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"a@x.com","`+urnEnterprise+`":{"department":"R&D"}}`).body["id"].(string)
	r := e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"Remove","path":"`+urnEnterprise+`:department"}`))
	for _, got := range []resp{r, e.must(200, "GET", "/Users/{{u}}", "")} {
		if _, ok := got.body[urnEnterprise]; ok {
			t.Errorf("extension object left after its last attribute went: %s", got.raw)
		}
		if slices.Contains(got.body["schemas"].([]any), any(urnEnterprise)) {
			t.Errorf("schemas still lists the extension: %v", got.body["schemas"])
		}
	}
	if raw := e.user("{{u}}").SCIMAttributes; len(raw) != 0 {
		t.Errorf("stored attributes %s, want none", raw)
	}
	// Sent empty, it is not kept either.
	r = e.must(201, "POST", "/Users", `{"userName":"b@x.com","`+urnEnterprise+`":{}}`)
	if slices.Contains(r.body["schemas"].([]any), any(urnEnterprise)) {
		t.Errorf("an empty extension is announced: %s", r.raw)
	}
}

// TestEmailAddDifferingOnlyByCase: emails.value is not case-exact (RFC
// 7643), and the store folds it: adding the address in other case adds
// nothing. Members' values (IDs) stay compared exactly.
func TestEmailAddDifferingOnlyByCase(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"a@x.com","emails":[{"value":"j@corp.com","type":"work","primary":true}]}`).body["id"].(string)
	r := e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"add","path":"emails","value":[{"value":"J@CORP.com","type":"work"}]}`))
	if emails := r.body["emails"].([]any); len(emails) != 1 || at(emails, 0, "value") != "j@corp.com" {
		t.Errorf("emails after adding the same address in other case: %v", emails)
	}
	// Entra's legacy removal by value list finds it in any case too.
	r = e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"add","path":"emails","value":[{"value":"k@corp.com","type":"home"}]}`))
	if n := len(r.body["emails"].([]any)); n != 2 {
		t.Fatalf("a second address was not added: %s", r.raw)
	}
	r = e.must(200, "PATCH", "/Users/{{u}}", patchBody(`{"op":"remove","path":"emails","value":[{"value":"K@Corp.COM"}]}`))
	if emails := r.body["emails"].([]any); len(emails) != 1 || at(emails, 0, "value") != "j@corp.com" {
		t.Errorf("emails after removing an address in other case: %v", emails)
	}
}

// TestUnknownGroupMembersNamedInWarn: member IDs that are no user of this
// IdP are skipped with 204 (refusing would block the other members'
// changes); the WARN is where the admin learns which, bounded in size.
func TestUnknownGroupMembersNamedInWarn(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"a@x.com"}`).body["id"].(string)
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"G"}`).body["id"].(string)
	var members []string
	for i := range 30 {
		members = append(members, fmt.Sprintf(`{"value":"no-such-user-%02d"}`, i))
	}
	members = append(members, `{"value":"{{u}}"}`)
	e.must(204, "PATCH", "/Groups/{{g}}", patchBody(`{"op":"Add","path":"members","value":[`+strings.Join(members, ",")+`]}`))
	if g := e.must(200, "GET", "/Groups/{{g}}", ""); len(g.body["members"].([]any)) != 1 {
		t.Errorf("the known member was not added: %s", g.raw)
	}
	warns := e.logs.FilterMessage("scim group members skipped: not users of this IdP").All()
	if len(warns) != 1 {
		t.Fatalf("%d WARNs for the skipped members, want 1", len(warns))
	}
	m := warns[0].ContextMap()
	ids, _ := m["member_ids"].([]any)
	if m["skipped"] != int64(30) || len(ids) != 20 || ids[0] != "no-such-user-00" {
		t.Errorf("WARN fields %v: want skipped=30 and the first 20 IDs", m)
	}
}

// TestConfiguredTokenWithWhiteSpaceRefused: the presented token is trimmed
// and a header cannot end in white space, so a configured token with a
// stray CR (a CRLF env file) could never match: refused at provisioning,
// naming the IdP and never the token.
func TestConfiguredTokenWithWhiteSpaceRefused(t *testing.T) {
	accounts := newAccounts(t)
	for _, tok := range []string{entraToken + "\r", " " + entraToken, entraToken + "\n"} {
		_, err := scim.New(scim.Config{IdP: "entra", Token: tok, Accounts: accounts, Logger: zap.NewNop()})
		if err == nil || !strings.Contains(err.Error(), "IdP entra") || !strings.Contains(err.Error(), "white space") {
			t.Errorf("New with token %q: %v, want a white-space refusal naming IdP entra", tok, err)
		} else if strings.Contains(err.Error(), entraToken) {
			t.Errorf("the error reveals the token: %v", err)
		}
		err = scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra", Token: tok}}}.CheckSettings(braced)
		if err == nil || !strings.Contains(err.Error(), "idp entra") || strings.Contains(err.Error(), entraToken) {
			t.Errorf("CheckSettings with a literal token %q: %v", tok, err)
		}
	}
}

// TestBasePathRule: a base path is "/" (under handle_path) or a path whose
// segments request paths, decoded and cleaned, can match; anything else
// is refused by the config check and by New.
func TestBasePathRule(t *testing.T) {
	accounts := newAccounts(t)
	for p, ok := range map[string]bool{
		"": true, "/": true, "/scim/v2": true, "/scim/v2/": true, "/v2": true, "/.well-known/scim": true,
		"scim/v2": false, "/scim v2": false, "/scim/v2?x=1": false, "/scim/../v2": false, "/scim/./v2": false,
		"/scim%2Fv2": false, "/scim//v2": false, "//": false, "/scim#v2": false, "/scim\tv2": false,
	} {
		err := scim.CheckBasePath(p)
		if (err == nil) != ok {
			t.Errorf("CheckBasePath(%q) = %v, want accepted %v", p, err, ok)
			continue
		}
		if !ok && !strings.Contains(err.Error(), "base_path") {
			t.Errorf("CheckBasePath(%q): %v does not name base_path", p, err)
		}
		if err := (scim.Endpoint{BasePath: p}).CheckSettings(braced); (err == nil) != ok {
			t.Errorf("CheckSettings with base_path %q: %v", p, err)
		}
		if _, err := scim.New(scim.Config{IdP: "entra", Token: entraToken, Accounts: accounts, BasePath: p}); (err == nil) != ok {
			t.Errorf("New with base path %q: %v", p, err)
		}
	}
}

// TestNormalBasePath: the one place the default applies; a trailing /
// goes, and "/" is the root. The handler serves what it says.
func TestNormalBasePath(t *testing.T) {
	for in, want := range map[string]string{"": scim.DefaultBasePath, "/": "/", "/scim/v2/": "/scim/v2", "/x": "/x"} {
		if got := scim.NormalBasePath(in); got != want {
			t.Errorf("NormalBasePath(%q) = %q, want %q", in, got, want)
		}
	}
	accounts := newAccounts(t)
	for bp, path := range map[string]string{"": "/scim/v2/Users", "/": "/Users", "/v2/": "/v2/Users"} {
		h, err := scim.New(scim.Config{IdP: "entra", Token: entraToken, Accounts: accounts, BasePath: bp})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Authorization", "Bearer "+entraToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("base path %q: GET %s answered %d", bp, path, w.Code)
		}
	}
}
