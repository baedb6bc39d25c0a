package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/keys"
)

// TestFlowCookiesAcrossRotation (docs/operations.md, "Rotating the store's
// keys"): a sign-in begun before `caddy sso keys rotate` completes after
// it, on an instance that read its keys afterwards; once the rotation is
// finished, only cookies of the new key open. (A running instance follows
// the keys too: TestRunningInstanceFollowsFlowKeys.)
func TestFlowCookiesAcrossRotation(t *testing.T) {
	ctx := t.Context() // ends each FlowCookies' following of the keys
	db := backendtest.OpenBolt(t)
	flows := func() *idp.FlowCookies {
		f, err := gateway.FlowKeys{DB: db}.Cookies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	before := flows()
	old := beginFlow(t, before, "begun-before")
	if _, err := keys.Rotate(ctx, db, keys.Options{Only: []keys.Kind{keys.Flow}}); err != nil {
		t.Fatal(err)
	}
	after := flows() // a reload after the rotation
	if err := completeFlow(t, after, "begun-before", old); err != nil {
		t.Errorf("a sign-in begun before the rotation, completed after it: %v", err)
	}
	fresh := beginFlow(t, after, "begun-after")
	if err := completeFlow(t, after, "begun-after", fresh); err != nil {
		t.Errorf("a sign-in begun after the rotation: %v", err)
	}

	if _, err := keys.Finish(ctx, db, keys.Options{Early: true}); err != nil {
		t.Fatal(err)
	}
	finished := flows()
	if err := completeFlow(t, finished, "begun-before", old); err == nil {
		t.Error("after finish, a cookie of the previous key still opens")
	}
	if err := completeFlow(t, finished, "begun-after", fresh); err != nil {
		t.Errorf("after finish, a cookie of the new key: %v", err)
	}
}

// beginFlow starts a sign-in's flow on f and returns its cookies.
func beginFlow(t *testing.T, f *idp.FlowCookies, flowID string) []*http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login", nil)
	if err := f.Save(w, r, flowID, "state-"+flowID, time.Minute, http.SameSiteLaxMode); err != nil {
		t.Fatal(err)
	}
	return w.Result().Cookies()
}

// completeFlow takes the flow back at the callback, with the cookies
// beginFlow gave: the error of a cookie f does not open.
func completeFlow(t *testing.T, f *idp.FlowCookies, flowID string, cookies []*http.Cookie) error {
	t.Helper()
	cb := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/x/callback", nil)
	for _, c := range cookies {
		cb.AddCookie(c)
	}
	var got string
	err := f.Take(httptest.NewRecorder(), cb, flowID, &got)
	if err == nil && got != "state-"+flowID {
		t.Fatalf("flow %s opened as %q", flowID, got)
	}
	return err
}
