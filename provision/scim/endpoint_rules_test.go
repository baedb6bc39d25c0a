package scim_test

import (
	"strings"
	"testing"

	"github.com/caddy-sso/caddy-sso/provision/scim"
)

// A literal token of MinTokenLength characters is long enough; one
// character fewer is refused, by the config check as by New.
func TestEndpointTokenLengthBoundary(t *testing.T) {
	at := strings.Repeat("k", scim.MinTokenLength)
	e := scim.Endpoint{IdPs: []scim.EndpointIdP{{Name: "entra", Token: at}}}
	if err := e.CheckSettings(braced); err != nil {
		t.Errorf("a token of %d characters refused: %v", scim.MinTokenLength, err)
	}
	e.IdPs[0].Token = at[1:]
	if err := e.CheckSettings(braced); err == nil || !strings.Contains(err.Error(), "at least 16 characters") {
		t.Errorf("a token of %d characters: %v, want refused", scim.MinTokenLength-1, err)
	}
}

// A body is JSON under any JSON media type (application/json,
// application/scim+json, another +json, with parameters); another type is
// 415 and nothing is created.
func TestBodyMediaTypes(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	for i, ct := range []string{"application/json", "application/scim+json; charset=utf-8", "application/vnd.example+json", "APPLICATION/JSON"} {
		body := `{"userName":"u` + string(rune('a'+i)) + `"}`
		if r := e.doHeaders("POST", "/Users", body, map[string]string{"Content-Type": ct}); r.status != 201 {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.raw)
		}
	}
	for _, ct := range []string{"text/plain", "application/xml", "application/x-www-form-urlencoded", "json"} {
		r := e.doHeaders("POST", "/Users", `{"userName":"refused"}`, map[string]string{"Content-Type": ct})
		scimError(t, r, 415, "")
	}
	if n := total(t, e.must(200, "GET", "/Users?filter="+q(`userName eq "refused"`), "")); n != 0 {
		t.Errorf("a refused body created a user")
	}
}

// If-None-Match is a condition of GET and HEAD only (RFC 7644 3.14): a
// write that carries one is done and answered with the resource, never a
// 304 that would tell the client nothing changed.
func TestIfNoneMatchIgnoredOnWrites(t *testing.T) {
	e := newEnv(t, "entra", entraToken)
	e.vars["u"] = e.must(201, "POST", "/Users", `{"userName":"ada"}`).body["id"].(string)
	r := e.doHeaders("PATCH", "/Users/{{u}}", patchBody(`{"op":"replace","path":"title","value":"One"}`), map[string]string{"If-None-Match": "*"})
	if r.status != 200 || r.body["title"] != "One" {
		t.Fatalf("PATCH with If-None-Match *: %d %s", r.status, r.raw)
	}
	ver := r.header.Get("ETag")
	r = e.doHeaders("PUT", "/Users/{{u}}", `{"userName":"ada","title":"One"}`, map[string]string{"If-None-Match": ver})
	if r.status != 200 || r.body["userName"] != "ada" {
		t.Fatalf("unchanged PUT with If-None-Match of its version: %d %s", r.status, r.raw)
	}
	r = e.doHeaders("POST", "/Users", `{"userName":"bob"}`, map[string]string{"If-None-Match": "*"})
	if r.status != 201 || r.body["id"] == nil {
		t.Fatalf("POST with If-None-Match *: %d %s", r.status, r.raw)
	}
}
