package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestSignOutEndsTheSessionItCameWith: a sign-out ends the session the
// request comes with whether the request carries its cookie or an sso
// before this route's took the cookie (outer, a stricter route inside a
// protected site), and goes on to the IdP's logout. When the store cannot
// record the end (away, or refusing writes while it still answers reads),
// the answer is the 503 page that says so (signed out in this browser),
// and the session is refused here from then on all the same, so that a
// copy of the cookie does not go on working meanwhile.
func TestSignOutEndsTheSessionItCameWith(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outer  bool   // the session comes as outer, not as a cookie
		store  string // "", "away" (closed), "read-only" (writes fail)
		status int
	}{
		{"cookie", false, "", http.StatusSeeOther},
		{"outer session", true, "", http.StatusSeeOther},
		{"cookie, store away", false, "away", http.StatusServiceUnavailable},
		{"outer session, store away", true, "away", http.StatusServiceUnavailable},
		{"cookie, store read-only", false, "read-only", http.StatusServiceUnavailable},
		{"outer session, store read-only", true, "read-only", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			ctx := context.Background()
			id, err := world.run.Sessions.Resolve(ctx, world.token) // now in the session cache
			if err != nil {
				t.Fatal(err)
			}
			// A second session's cookie comes along (another IdP's, say):
			// when the store fails on the first, the second ends here too.
			second := verifyTokenSession(t, world.run, "corp", nil)
			switch tc.store {
			case "away":
				if err := world.run.Store.Close(); err != nil {
					t.Fatal(err)
				}
			case "read-only":
				// Reads reach the store: the session must be refused by
				// this instance, not merely unreadable.
				world.run.Store = readOnlyStore{world.run.Store}
				world.run.Sessions = session.New(world.run.Store, session.Config{}, nil, nil)
			}
			rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
				Provider: &logoutProvider{name: "corp"}}}}
			tokens, outer := []string{world.token, second}, (*session.Identity)(nil)
			if tc.outer {
				tokens, outer = nil, id
			}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			w := httptest.NewRecorder()
			err = rt.ServeEndpoint(w, r, world.run, dutyOrigin(), tokens, outer)
			status := w.Code
			if pe, ok := AsPageError(err); ok {
				status = pe.Status
				if pe.Name != PageStoreUnavailable || !pe.SignedOut {
					t.Errorf("page %s (signed out %v), want %s saying signed out", pe.Name, pe.SignedOut, PageStoreUnavailable)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Errorf("answer %d, want %d (Location %q)", status, tc.status, w.Header().Get("Location"))
			}
			if _, err := world.run.Sessions.Resolve(ctx, world.token); err == nil {
				t.Error("the session still resolves after the sign-out")
			}
			if _, err := world.run.Sessions.Resolve(ctx, second); err == nil && !tc.outer {
				t.Error("the second cookie's session still resolves after the sign-out")
			}
		})
	}
}

// readOnlyStore answers reads and refuses every write, as a store whose
// disk is full or whose database has failed over to a read-only replica.
type readOnlyStore struct{ store.Store }

func (readOnlyStore) Update(context.Context, func(store.Tx) error) error {
	return errors.New("test: the store refuses writes")
}

// TestCrossSiteSignOutLogBounded: a refused cross-site sign-out is logged
// (WARN, with the Origin and Sec-Fetch-Site the browser sent), each cut
// short: any site's page can post here, with headers of any length.
func TestCrossSiteSignOutLogBounded(t *testing.T) {
	world := newDutyWorld(t)
	core, logs := observer.New(zapcore.WarnLevel)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.New(core),
		IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC, Provider: &logoutProvider{name: "corp"}}}}
	r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/logout", nil)
	origin := "https://evil.example/" + strings.Repeat("x", 5000)
	r.Header.Set("Origin", origin)
	r.Header.Set("Sec-Fetch-Site", "cross-site"+strings.Repeat("y", 5000))
	err := rt.ServeEndpoint(httptest.NewRecorder(), r, world.run, dutyOrigin(), []string{world.token}, nil)
	if pe, ok := AsPageError(err); !ok || pe.Code != "cross_site_logout" {
		t.Fatalf("answer %v, want the cross_site_logout page", err)
	}
	lines := logs.FilterMessage("sign-out refused").All()
	if len(lines) != 1 {
		t.Fatalf("log %v, want one \"sign-out refused\" line", logs.All())
	}
	f := lines[0].ContextMap()
	if f["origin"] != origin[:100]+"…" || f["sec_fetch_site"] != ("cross-site"+strings.Repeat("y", 20)+"…") || f["reason"] != "cross_site_logout" {
		t.Errorf("log fields %v: want origin and sec_fetch_site cut to 100 and 30 bytes", f)
	}
}

// TestSignOutOnInternationalizedBaseURL: a base_url written with an
// internationalized name (https://bücher.example) is the site browsers
// send as its A-label in Origin; the site's own sign-out form is
// same-origin there, not refused as cross-site.
func TestSignOutOnInternationalizedBaseURL(t *testing.T) {
	o, err := BaseOrigin("https://bücher.example")
	if err != nil {
		t.Fatalf("base_url refused: %v", err)
	}
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC,
		Provider: &logoutProvider{name: "corp"}}}}
	r := httptest.NewRequest(http.MethodPost, "https://xn--bcher-kva.example/.sso/logout", nil)
	r.Header.Set("Origin", "https://xn--bcher-kva.example") // what browsers send from the site's own page
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	err = rt.ServeEndpoint(w, r, world.run, o, []string{world.token}, nil)
	if pe, ok := AsPageError(err); ok {
		t.Errorf("the site's own sign-out got page %s (%s); origin %s", pe.Name, pe.Code, o.Site)
	} else if w.Code != http.StatusSeeOther {
		t.Errorf("sign-out answered %d, want 303", w.Code)
	}
}
