package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
)

// TestJWKSOfEveryRouteOfTheConfig: the routes of one config share their
// signers' keys (IdentityKeys), so the route that answers jwks.json (the
// outer sso of a site, which serves the endpoints of a stricter one
// inside it) publishes the keys of every route's key_rotation, with a
// signer of its own or without, and lets the set be cached only as long
// as the shortest rotation allows. Each route's token verifies against
// the set the outer one serves.
func TestJWKSOfEveryRouteOfTheConfig(t *testing.T) {
	for _, tc := range []struct {
		name         string
		outer, inner *SignerConfig
		maxAge       string
	}{
		{"outer without identity_jwt", nil, &SignerConfig{}, "public, max-age=300"},
		{"outer with identity_jwt, inner with a shorter key_rotation", &SignerConfig{}, &SignerConfig{Rotation: 6 * time.Minute}, "public, max-age=180"},
		{"inner with a longer key_rotation", &SignerConfig{Rotation: 6 * time.Minute}, &SignerConfig{Rotation: 24 * time.Hour}, "public, max-age=180"},
		{"the same key_rotation", &SignerConfig{}, &SignerConfig{}, "public, max-age=300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			world := newDutyWorld(t)
			ctx := context.Background()
			keys := new(IdentityKeys)
			var routes []*Route
			var err error
			for _, c := range []*SignerConfig{tc.outer, tc.inner} {
				rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), Keys: keys, IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
				if rt.Headers, err = NewHeaderPlan("", nil); err != nil {
					t.Fatal(err)
				}
				if c != nil {
					rt.SignIdentity(*c)
				}
				routes = append(routes, rt)
			}
			id, err := world.run.Sessions.Resolve(ctx, world.token)
			if err != nil {
				t.Fatal(err)
			}
			var tokens []string
			for _, rt := range routes {
				if rt.Signer != nil {
					tok, err := rt.Signer.Token(ctx, world.run.Store, id, dutyOrigin())
					if err != nil {
						t.Fatal(err)
					}
					tokens = append(tokens, tok[0])
				}
			}
			// Asked after the tokens were signed: a set read before, at
			// the first use of each keyring, would hold them too.
			w := httptest.NewRecorder()
			err = routes[0].ServeEndpoint(w, httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/jwks.json", nil), world.run, dutyOrigin(), nil, nil)
			if err != nil || w.Code != http.StatusOK {
				t.Fatalf("the outer route's jwks.json: %d, %v", w.Code, err)
			}
			if got := w.Header().Get("Cache-Control"); got != tc.maxAge {
				t.Errorf("Cache-Control %q, want %q (the shortest key_rotation's)", got, tc.maxAge)
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, k := range set.Keys {
				if seen[k.KeyID] {
					t.Errorf("key %s published twice", k.KeyID)
				}
				seen[k.KeyID] = true
			}
			for i, tok := range tokens {
				parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
				if err != nil {
					t.Fatal(err)
				}
				var c jwt.Claims
				if err := parsed.Claims(&set, &c); err != nil {
					t.Errorf("token %d of %d does not verify against the served set: %v", i+1, len(tokens), err)
				}
			}
		})
	}
}

// TestNoJWKSWhereNoRouteSigns: the routes of a config none of which signs
// an identity token share an empty key set; none serves jwks.json, which
// is then a path like any other (passed on, for the app to answer).
func TestNoJWKSWhereNoRouteSigns(t *testing.T) {
	world := newDutyWorld(t)
	rt := &Route{PathPrefix: "/.sso/", Logger: zap.NewNop(), Keys: new(IdentityKeys), IdPs: []*IdP{{Name: "corp", Protocol: idp.ProtocolOIDC}}}
	w := httptest.NewRecorder()
	err := rt.ServeEndpoint(w, httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/jwks.json", nil), world.run, dutyOrigin(), nil, nil)
	if err == nil && w.Code == http.StatusOK {
		t.Errorf("jwks.json served (%d) %q where no route signs", w.Code, w.Body.String())
	}
}
