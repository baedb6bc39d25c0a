package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/mapping"
	"github.com/caddy-sso/caddy-sso/provision"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/signin"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestAuthTimeReachesTheApp: when the IdP said when the person last
// authenticated (idp.Assertion.AuthTime), the session the sign-in creates
// keeps it, and the app learns it from the identity JWT's auth_time (in
// seconds) and whoami's auth_time, both from the cached session and from
// one read back from the store; when the IdP did not say, neither carries
// the claim.
func TestAuthTimeReachesTheApp(t *testing.T) {
	ctx := context.Background()
	m, err := mapping.New("generic", idp.ProtocolOIDC, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := Origin{Site: idp.Origin{Scheme: "https", Host: "app.example.com"}, Vouched: true}
	for _, tc := range []struct {
		name     string
		authTime time.Time
	}{
		{"the IdP said", time.Date(2026, 12, 3, 20, 1, 2, 345_000_000, time.UTC)},
		{"the IdP did not say", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := backendtest.OpenBolt(t)
			sessions := session.New(db, session.Config{}, nil, nil)
			svc := &signin.Service{Store: db, Sessions: sessions}
			p := &signin.IdP{Name: "corp", Mapper: m, Rules: provision.Rules{JIT: true}}
			a := &idp.Assertion{IdP: "corp", Protocol: idp.ProtocolOIDC, Subject: "sub-ada", EmailVerified: true,
				Attributes: map[string][]string{"sub": {"sub-ada"}, "email": {"ada@example.com"}, "given_name": {"Ada"}, "family_name": {"Lovelace"}},
				Logout:     idp.LogoutInfo{Subject: "sub-ada"}, AuthTime: tc.authTime}
			out, err := svc.SignIn(ctx, p, a, "")
			if err != nil || out.Session == nil {
				t.Fatalf("SignIn: %+v, %v", out, err)
			}
			hash := out.Session.Session.Hash
			var stored *store.Session
			if err := db.View(ctx, func(tx store.Tx) error {
				stored, err = tx.Session(hash)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !stored.AuthTime.Equal(tc.authTime) {
				t.Errorf("stored session's AuthTime %v, want %v", stored.AuthTime, tc.authTime)
			}

			signer := NewIdentitySigner(SignerConfig{})
			rt := &Route{PathPrefix: "/.sso/", IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
			run := &Runtime{Store: db, Sessions: sessions, SignIn: svc}
			for _, from := range []string{"the cache", "the store"} {
				if from == "the store" {
					sessions.ForgetSession(hash)
					signer = NewIdentitySigner(SignerConfig{}) // not the token signed before
				}
				id, err := sessions.Resolve(ctx, out.Session.Token)
				if err != nil {
					t.Fatal(err)
				}
				if !id.AuthTime.Equal(tc.authTime) {
					t.Errorf("from %s: Identity.AuthTime %v, want %v", from, id.AuthTime, tc.authTime)
				}
				tok, err := signer.Token(ctx, db, id, o)
				if err != nil {
					t.Fatal(err)
				}
				var claims map[string]any
				unverifiedClaims(t, tok[0], &claims)
				got, present := claims["auth_time"]
				switch {
				case tc.authTime.IsZero() && present:
					t.Errorf("from %s: identity JWT has auth_time %v, want none", from, got)
				case !tc.authTime.IsZero() && got != float64(tc.authTime.Unix()):
					t.Errorf("from %s: identity JWT auth_time %v (present %v), want %d", from, got, present, tc.authTime.Unix())
				}

				rec := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/whoami", nil)
				if err := rt.ServeEndpoint(rec, r, run, o, []string{out.Session.Token}, nil); err != nil || rec.Code != http.StatusOK {
					t.Fatalf("whoami: %d %s, %v", rec.Code, rec.Body, err)
				}
				var who map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &who); err != nil {
					t.Fatal(err)
				}
				whoAt, present := who["auth_time"]
				switch {
				case tc.authTime.IsZero() && present:
					t.Errorf("from %s: whoami has auth_time %v, want none", from, whoAt)
				case !tc.authTime.IsZero() && whoAt != tc.authTime.Format(time.RFC3339Nano):
					t.Errorf("from %s: whoami auth_time %v (present %v), want %s", from, whoAt, present, tc.authTime.Format(time.RFC3339Nano))
				}
			}
		})
	}
}
