package scim_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWritesInEarlyDataTooEarly: a SCIM request that would change
// something, sent in TLS early data (HTTP/3 0-RTT), which anyone on the
// path can replay, is answered 425 Too Early and changes nothing: a
// replayed PATCH active=true would otherwise enable again a user the IdP
// deactivated since. Reads in early data, and the same PATCH after the
// handshake, are served.
func TestWritesInEarlyDataTooEarly(t *testing.T) {
	e := newEnv(t, "okta", oktaToken)
	id := e.must(201, "POST", "/Users", `{"userName":"ada@x.io","externalId":"00u1","active":true}`).body["id"].(string)
	deactivate := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`
	send := func(method, path, body string, handshakeDone bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "https://scim.example.com/scim/v2"+path, strings.NewReader(body))
		r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: handshakeDone}
		r.Header.Set("Authorization", "Bearer "+oktaToken)
		r.Header.Set("Content-Type", "application/scim+json")
		w := httptest.NewRecorder()
		e.srv.Config.Handler.ServeHTTP(w, r)
		return w
	}

	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPatch, "/Users/" + id, deactivate},
		{http.MethodPut, "/Users/" + id, `{"userName":"ada@x.io","externalId":"00u1","active":false}`},
		{http.MethodDelete, "/Users/" + id, ""},
		{http.MethodPost, "/Users", `{"userName":"bob@x.io","externalId":"00u2"}`},
	} {
		w := send(tc.method, tc.path, tc.body, false)
		if w.Code != http.StatusTooEarly || !strings.Contains(w.Body.String(), "early data") {
			t.Errorf("%s %s in early data: %d %s, want 425 saying why", tc.method, tc.path, w.Code, w.Body)
		}
	}
	if u := e.user(id); u == nil || !u.Active {
		t.Fatalf("a write refused as too early changed the user: %+v", u)
	}
	if got := send(http.MethodGet, "/Users?filter="+q(`userName eq "bob@x.io"`), "", false); got.Code != http.StatusOK || !strings.Contains(got.Body.String(), `"totalResults":0`) {
		t.Errorf("a read in early data: %d %s, want 200 and no bob (his POST was refused)", got.Code, got.Body)
	}
	if w := send(http.MethodPatch, "/Users/"+id, deactivate, true); w.Code != http.StatusOK {
		t.Fatalf("the PATCH after the handshake: %d %s", w.Code, w.Body)
	}
	if u := e.user(id); u == nil || u.Active {
		t.Errorf("the PATCH after the handshake did not deactivate: %+v", u)
	}
}
