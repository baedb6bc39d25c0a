package gateway

// Tests of identity-JWT and header checks no other test caught taking out
// (a mutation pass): each fails when its check is removed or weakened as
// its comment says.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-sso/caddy-sso/session"
)

// TestIdentityJWTExpBoundBySessionEnd: the identity JWT never outlives
// the session's absolute end ("A token never outlives the session's
// absolute lifetime"), and one signed for a session at its very end still
// lives a second rather than being born expired. Taking the check out (ttl not
// bounded by id.Expires) signs it for the full identity_jwt ttl (5 m);
// without the one-second floor it is signed already expired.
func TestIdentityJWTExpBoundBySessionEnd(t *testing.T) {
	e := newSignerEnv(t)
	for _, tt := range []struct {
		name string
		left time.Duration // until the session's end
	}{
		{"a minute left", time.Minute},
		{"ended a minute ago", -time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Now()
			id := &session.Identity{UserID: "u1", Email: "a@example.com", IdP: "okta",
				SessionHash: strings.Repeat("ab", 32) + tt.name, Expires: now.Add(tt.left)}
			v, err := e.s.Token(context.Background(), e.db, id, e.o)
			if err != nil {
				t.Fatal(err)
			}
			var c jwt.Claims
			unverifiedClaims(t, v[0], &c)
			exp := c.Expiry.Time()
			if tt.left > 0 && exp.After(id.Expires) {
				t.Errorf("exp %v is after the session's end %v", exp, id.Expires)
			}
			if !exp.After(now.Add(-time.Second)) {
				t.Errorf("exp %v: the token was signed expired (now %v)", exp, now)
			}
		})
	}
}

// TestIdentityJWTGroupsIsAList: a user in no group gets "groups": [] in
// the identity JWT, not null (apps iterate it). Taking the check out (nil Groups
// kept) signs null.
func TestIdentityJWTGroupsIsAList(t *testing.T) {
	e := newSignerEnv(t)
	id := &session.Identity{UserID: "u1", IdP: "okta", SessionHash: strings.Repeat("cd", 32), Expires: time.Now().Add(time.Hour)}
	v, err := e.s.Token(context.Background(), e.db, id, e.o)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	unverifiedClaims(t, v[0], &raw)
	if g := string(raw["groups"]); g != "[]" {
		t.Errorf(`"groups": %s, want []`, g)
	}
}

// TestIdentityJWTAudience: with an audience configured, aud is that
// audience, not the site (iss). Taking the check out (aud = issuer) signs it for
// the site, which an app checking its own audience refuses.
func TestIdentityJWTAudience(t *testing.T) {
	e := newSignerEnv(t)
	e.s = NewIdentitySigner(SignerConfig{Audience: "my-app"})
	id := &session.Identity{UserID: "u1", IdP: "okta", SessionHash: strings.Repeat("ef", 32), Expires: time.Now().Add(time.Hour)}
	v, err := e.s.Token(context.Background(), e.db, id, e.o)
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	unverifiedClaims(t, v[0], &c)
	if !c.Audience.Contains("my-app") || len(c.Audience) != 1 {
		t.Errorf("aud %v, want [my-app]", c.Audience)
	}
	if c.Issuer != "https://app.example.com" {
		t.Errorf("iss %q", c.Issuer)
	}
}

// TestAlwaysStrippedNames: every identity header name docs/security.md
// promises no client can send is stripped by a route whatever its header
// set ("none" too), in any spelling. A frozen copy of the list: before it,
// taking one name (Remote-User) out of alwaysStripped passed every
// other test of the gateway, examples/nginx and examples/traefik.
func TestAlwaysStrippedNames(t *testing.T) {
	names := []string{
		"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username",
		"X-Forwarded-Groups", "X-Forwarded-First-Name", "X-Forwarded-Last-Name",
		"X-Forwarded-Idp", DefaultAccessTokenHeader, DefaultIDTokenHeader, DefaultIdentityJWTHeader,
		"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username",
		"X-Auth-Request-Groups", "X-Auth-Request-Access-Token",
		"Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "X-Remote-User",
		"X-Authentik-Username", "X-Authentik-Groups", "X-Authentik-Entitlements", "X-Authentik-Email",
		"X-Authentik-Name", "X-Authentik-Uid", "X-Authentik-Jwt",
		"X-Webauth-User", "X-Webauth-Email", "X-Webauth-Name", "X-Webauth-Role", "X-Webauth-Groups",
		"X-Authenticated-User",
	}
	plan, err := NewHeaderPlan("none", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		for _, spelling := range []string{n, strings.ToLower(strings.ReplaceAll(n, "-", "_"))} {
			h := map[string][]string{spelling: {"admin"}, "X-App": {"kept"}}
			plan.StripInbound(h)
			if _, ok := h[spelling]; ok {
				t.Errorf("%s reaches the upstream from the client", spelling)
			}
			if _, ok := h["X-App"]; !ok {
				t.Fatal("an app header was stripped")
			}
		}
	}
}

// TestIdentityJWTExpBoundWhileTheClockMoves: the keyring reads the clock
// a moment after the signer bounded the token by the session's end (a key
// read from the store between them), and exp is whole seconds: neither
// the moment nor a key read that stalls past a second (a loaded machine,
// a slow store) may carry exp past the session's end when that end falls
// just before a whole second.
func TestIdentityJWTExpBoundWhileTheClockMoves(t *testing.T) {
	for _, step := range []time.Duration{5 * time.Millisecond, 700 * time.Millisecond} {
		t.Run(fmt.Sprintf("reads %v apart", step), func(t *testing.T) {
			e := newSignerEnv(t)
			start := time.Now().Truncate(time.Second)
			var reads atomic.Int64
			// Each read of the clock is step after the one before.
			e.s = NewIdentitySigner(SignerConfig{Now: func() time.Time {
				return start.Add(time.Duration(reads.Add(1)) * step)
			}})
			id := &session.Identity{UserID: "u1", Email: "a@example.com", IdP: "okta",
				SessionHash: strings.Repeat("ef", 32), Expires: start.Add(time.Minute - time.Millisecond)}
			v, err := e.s.Token(context.Background(), e.db, id, e.o)
			if err != nil {
				t.Fatal(err)
			}
			var c jwt.Claims
			unverifiedClaims(t, v[0], &c)
			if exp := c.Expiry.Time(); exp.After(id.Expires) {
				t.Errorf("exp %v is after the session's end %v", exp, id.Expires)
			}
		})
	}
}
