package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestSignOutDoubleClickSweepBetween: the instance's sweep (at every Run
// start, so at every config reload, and every ten flushes) runs between
// the two POSTs of a double click. The second answer, the one the
// browser shows, still goes on to the IdP's logout: the sweep spares the
// signed-out session a while.
func TestSignOutDoubleClickSweepBetween(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
		Provider: originLogoutProvider{&logoutProvider{name: "corp"}}}}}
	o := dutyOrigin()
	o.Vouched = true
	post := func() int {
		r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		w := httptest.NewRecorder()
		if err := rt.ServeEndpoint(w, r, world.run, o, []string{world.token}, nil); err != nil {
			t.Fatal(err)
		}
		return w.Code
	}
	if c := post(); c != http.StatusSeeOther {
		t.Fatalf("first POST %d, want 303", c)
	}
	time.Sleep(5 * time.Millisecond) // the sign-out's end is in the past
	if n, err := world.run.Sessions.Sweep(context.Background()); err != nil || n != 0 {
		t.Errorf("the sweep between the clicks deleted %d session(s), %v", n, err)
	}
	if c := post(); c != http.StatusSeeOther {
		t.Errorf("second POST (the answer the browser shows) %d, want 303 on to the IdP's logout", c)
	}
}
