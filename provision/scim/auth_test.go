package scim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/provision/scim"
	"github.com/caddy-sso/caddy-sso/session"
)

func TestBearerTokenIsRequired(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	headers := []struct {
		name, value string
	}{
		{"no header", ""},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic ZW50cmE6c2VjcmV0"},
		{"right token, Basic scheme", "Basic " + entraToken},
		{"right token, Token scheme", "Token " + entraToken},
		{"right token, scheme with a suffix", "Bearer2 " + entraToken},
		{"token without scheme", entraToken},
		{"wrong token", "Bearer wrong-token-wrong-token-wrong"},
		{"prefix of the token", "Bearer " + entraToken[:len(entraToken)-1]},
		{"token with a suffix", "Bearer " + entraToken + "x"},
		{"token in another case", "Bearer " + strings.ToUpper(entraToken)},
		{"another IdP's token", "Bearer " + oktaToken},
	}
	requests := []struct{ method, path, body string }{
		{"GET", "/Users?filter=" + q(`userName eq "x"`), ""},
		{"POST", "/Users", `{"userName":"intruder","active":true}`},
		{"GET", "/ServiceProviderConfig", ""},
		{"GET", "/Schemas", ""},
		{"DELETE", "/Users/whatever", ""},
		{"GET", "/not-a-resource", ""}, // 401 before 404: nothing is revealed
		{"GET", "/../elsewhere", ""},
	}
	for _, h := range headers {
		for _, rq := range requests {
			t.Run(h.name+" "+rq.method+" "+rq.path, func(t *testing.T) {
				req, _ := http.NewRequest(rq.method, e.srv.URL+"/scim/v2"+rq.path, strings.NewReader(rq.body))
				if h.value != "" {
					req.Header.Set("Authorization", h.value)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("status %d, WWW-Authenticate %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}
	r := e.doWith("wrong-token-wrong-token-wrong", "GET", "/Users", "")
	scimError(t, r, 401, "")
	if n := total(t, e.must(200, "GET", "/Users", "")); n != 0 {
		t.Errorf("an unauthenticated POST created %d users", n)
	}
	// The scheme is case-insensitive (RFC 7235).
	req, _ := http.NewRequest("GET", e.srv.URL+"/scim/v2/ServiceProviderConfig", nil)
	req.Header.Set("Authorization", "bearer "+entraToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("lower-case scheme: %d", res.StatusCode)
	}
	// Refusals are logged without any part of any token.
	refusals := e.logs.FilterMessage("scim request refused: missing or wrong bearer token")
	if refusals.Len() == 0 {
		t.Fatal("refusals are not logged")
	}
	for _, l := range e.logs.All() {
		s := fmt.Sprint(l.Message, l.ContextMap())
		for _, secret := range []string{entraToken[:12], oktaToken[:12], "wrong-token", "ZW50cmE6"} {
			if strings.Contains(s, secret) {
				t.Errorf("log line %q reveals a token", s)
			}
		}
	}
}

// newAccounts is an account service over a fresh store, closed when the
// test ends.
func newAccounts(t *testing.T) *account.Service {
	t.Helper()
	db := backendtest.OpenBolt(t)
	return &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil)}
}

func TestNewValidatesConfig(t *testing.T) {
	accounts := newAccounts(t)
	db := accounts.Store
	good := scim.Config{IdP: "entra", Token: entraToken, Accounts: accounts}
	bad := map[string]func(*scim.Config){
		"no IdP":             func(c *scim.Config) { c.IdP = "" },
		"no token":           func(c *scim.Config) { c.Token = "" },
		"short token":        func(c *scim.Config) { c.Token = strings.Repeat("x", scim.MinTokenLength-1) },
		"no account service": func(c *scim.Config) { c.Accounts = nil },
		"no store":           func(c *scim.Config) { c.Accounts = &account.Service{} },
		"IdP not SCIM-managed": func(c *scim.Config) {
			c.Accounts = &account.Service{Store: db, SCIMManaged: func(idp string) bool { return idp != "entra" }}
		},
		"relative base URL":      func(c *scim.Config) { c.BaseURL = "/scim/v2" },
		"base URL of the scheme": func(c *scim.Config) { c.BaseURL = "ftp://x/scim/v2" },
	}
	for name, mutate := range bad {
		c := good
		mutate(&c)
		if _, err := scim.New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		} else if c.Token != "" && strings.Contains(err.Error(), c.Token) {
			t.Errorf("%s: error %q reveals the token", name, err)
		}
	}
	if _, err := scim.New(good); err != nil {
		t.Errorf("good config: %v", err)
	}
}

// TestMuxChoosesTheIdPByToken serves two IdPs from one site: each token
// reaches its own IdP's users only.
func TestMuxChoosesTheIdPByToken(t *testing.T) {
	db := backendtest.OpenBolt(t)
	sessions := session.New(db, session.Config{}, nil, nil)
	accounts := &account.Service{Store: db, Cache: sessions}
	mk := func(idp, token string) *scim.Handler {
		h, err := scim.New(scim.Config{IdP: idp, Token: token, Accounts: accounts, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	entra, okta := mk("entra", entraToken), mk("okta", oktaToken)
	if _, err := scim.NewMux(entra, mk("other", entraToken)); err == nil {
		t.Error("two IdPs sharing a token accepted")
	}
	if _, err := scim.NewMux(entra, mk("entra", "another-token-another-token")); err == nil {
		t.Error("one IdP twice accepted")
	}
	mux, err := scim.NewMux(entra, okta)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e := &env{t: t, db: db, srv: srv, vars: map[string]string{}, sessions: sessions}
	e.token = oktaToken
	e.vars["okta"] = e.must(201, "POST", "/Users", `{"userName":"o@x.io","externalId":"00u1","active":true}`).body["id"].(string)
	e.token = entraToken
	e.vars["entra"] = e.must(201, "POST", "/Users", `{"userName":"e@x.io","externalId":"oid-1","active":true}`).body["id"].(string)
	if u := e.user("{{okta}}"); u.IdP != "okta" {
		t.Errorf("okta token created a user of %q", u.IdP)
	}
	// Entra's token cannot see, change or delete Okta's user.
	scimError(t, e.do("GET", "/Users/{{okta}}", ""), 404, "")
	scimError(t, e.do("PATCH", "/Users/{{okta}}", patchBody(`{"op":"replace","path":"active","value":false}`)), 404, "")
	scimError(t, e.do("PUT", "/Users/{{okta}}", `{"userName":"o@x.io","active":false}`), 404, "")
	scimError(t, e.do("DELETE", "/Users/{{okta}}", ""), 404, "")
	if n := total(t, e.must(200, "GET", "/Users?filter="+q(`userName eq "o@x.io"`), "")); n != 0 {
		t.Errorf("entra's filter found okta's user")
	}
	if r := e.must(200, "GET", "/Users", ""); total(t, r) != 1 || at(r.body, "Resources", 0, "id") != e.vars["entra"] {
		t.Errorf("entra's listing: %s", r.raw)
	}
	if !e.user("{{okta}}").Active {
		t.Error("okta's user was deactivated through entra's token")
	}
	// Nor put Okta's user in its groups.
	e.vars["g"] = e.must(201, "POST", "/Groups", `{"displayName":"g","members":[{"value":"{{okta}}"},{"value":"{{entra}}"}]}`).body["id"].(string)
	if g := e.user("{{okta}}").Groups; len(g) != 0 {
		t.Errorf("okta's user joined entra's group: %v", g)
	}
	// Entra's token cannot see, change, delete or find Okta's group,
	// whose members are the groups header of Okta's users.
	e.token = oktaToken
	e.vars["og"] = e.must(201, "POST", "/Groups", `{"displayName":"okta-admins","members":[{"value":"{{okta}}"}]}`).body["id"].(string)
	e.token = entraToken
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/Groups/{{og}}", ""},
		{"PATCH", "/Groups/{{og}}", patchBody(`{"op":"replace","path":"displayName","value":"pwned"}`)},
		{"PUT", "/Groups/{{og}}", `{"displayName":"pwned"}`},
		{"DELETE", "/Groups/{{og}}", ""},
	} {
		r := e.do(rq.method, rq.path, rq.body)
		if r.status != http.StatusNotFound {
			t.Errorf("%s of okta's group with entra's token: status %d, want 404: %s", rq.method, r.status, r.raw)
			continue
		}
		scimError(t, r, http.StatusNotFound, "")
	}
	for _, f := range []string{`id eq "{{og}}"`, `members.value eq "{{okta}}"`, `members[value eq "{{okta}}"]`, `displayName eq "okta-admins"`} {
		if n := total(t, e.must(200, "GET", "/Groups?filter="+q(e.expand(f)), "")); n != 0 {
			t.Errorf("entra's filter %s found okta's group", e.expand(f))
		}
	}
	if r := e.must(200, "GET", "/Groups", ""); total(t, r) != 1 || at(r.body, "Resources", 0, "id") != e.vars["g"] {
		t.Errorf("entra's group listing: %s", r.raw)
	}
	e.token = oktaToken
	if r := e.must(200, "GET", "/Groups/{{og}}", ""); r.body["displayName"] != "okta-admins" || at(r.body, "members", 0, "value") != e.vars["okta"] {
		t.Errorf("okta's group changed through entra's token: %s", r.raw)
	}
	if g := e.user("{{okta}}").Groups; len(g) != 1 || g[0] != "okta-admins" {
		t.Errorf("okta's user's groups: %v", g)
	}
	e.token = entraToken
	// A userName is unique across the store, so reusing Okta's is a 409.
	scimError(t, e.do("POST", "/Users", `{"userName":"O@X.IO","active":true}`), 409, "uniqueness")
	// No token, or a third one: refused.
	e.token = "not-a-configured-token-at-all"
	scimError(t, e.do("GET", "/Users", ""), 401, "")
}
