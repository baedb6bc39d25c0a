package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// TestFlowCookiesKeptInTheStore: flow cookies made over the same store (a
// restart, another instance) open each other's cookies; over another
// store they do not.
func TestFlowCookiesKeptInTheStore(t *testing.T) {
	ctx := context.Background()
	db, other := backendtest.OpenBolt(t), backendtest.OpenBolt(t)
	begin, err := gateway.FlowKeys{DB: db}.Cookies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/login", nil)
	if err := begin.Save(w, r, "flow-1", "state-1", time.Minute, http.SameSiteLaxMode); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		db    *bolt.DB
		opens bool
	}{
		{"same store", db, true},
		{"another store", other, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			end, err := gateway.FlowKeys{DB: tt.db}.Cookies(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cb := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/x/callback", nil)
			for _, c := range w.Result().Cookies() {
				cb.AddCookie(c)
			}
			var got string
			err = end.Take(httptest.NewRecorder(), cb, "flow-1", &got)
			if opened := err == nil && got == "state-1"; opened != tt.opens {
				t.Errorf("opened = %v (%q, %v), want %v", opened, got, err, tt.opens)
			}
		})
	}
}

// TestSignIdentityProtectsItsHeader: a route that signs the identity
// strips a client's own copy of the token's header, in any spelling,
// whatever header the token is configured to travel in.
func TestSignIdentityProtectsItsHeader(t *testing.T) {
	for _, header := range []string{"", "X-Identity"} {
		plan, err := gateway.NewHeaderPlan("none", nil)
		if err != nil {
			t.Fatal(err)
		}
		rt := &gateway.Route{Headers: plan}
		rt.SignIdentity(gateway.SignerConfig{Header: header})
		name := rt.Signer.Header()
		in := http.Header{}
		in[name] = []string{"forged"}
		in[strings.ToLower(name)] = []string{"forged"}
		rt.Headers.StripInbound(in)
		if len(in) != 0 {
			t.Errorf("header %q: inbound copies left: %v", name, in)
		}
	}
}
