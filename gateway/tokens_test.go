package gateway

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// tokenIdP is an OpenID Connect provider as PassTokens sees it: one that
// refreshes tokens (refresh), and nothing else this test calls.
type tokenIdP struct {
	idp.Provider
	refresh func(context.Context, *idp.Tokens) (*idp.Tokens, error)
}

func (p tokenIdP) Refresh(ctx context.Context, t *idp.Tokens) (*idp.Tokens, error) {
	return p.refresh(ctx, t)
}

// samlIdP has no tokens.
type samlIdP struct{ idp.Provider }

func tokenRoute(t *testing.T, core zapcore.Core, refresh func(context.Context, *idp.Tokens) (*idp.Tokens, error)) *Route {
	t.Helper()
	plan, err := NewHeaderPlan("default", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Route{
		IdPs: []*IdP{
			{Name: "okta", Protocol: idp.ProtocolOIDC, Provider: tokenIdP{refresh: refresh}, OfflineAccess: true},
			{Name: "entra", Protocol: idp.ProtocolOIDC, Provider: tokenIdP{refresh: refresh}},
		},
		Headers: plan,
		Logger:  zap.New(core),
	}
}

// TestPassTokensReadiesTheRoute: a route that passes tokens has its IdPs
// keep the access token (and the refresh token where offline_access asks
// for one), protects every header it sets from a client's copy, refreshes
// a minute ahead unless told, and refuses an IdP without tokens (SAML).
func TestPassTokensReadiesTheRoute(t *testing.T) {
	rt := tokenRoute(t, zapcore.NewNopCore(), nil)
	if err := rt.PassTokens(TokenConfig{AccessHeader: "X-Upstream-At", IDHeader: "x-upstream-id", Bearer: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range rt.IdPs {
		if !p.SignIn.KeepAccessToken || p.SignIn.KeepRefreshToken != p.OfflineAccess {
			t.Errorf("IdP %s keeps access %v, refresh %v; want true, %v", p.Name, p.SignIn.KeepAccessToken, p.SignIn.KeepRefreshToken, p.OfflineAccess)
		}
	}
	if rt.tokens.margin != DefaultTokenRefreshMargin {
		t.Errorf("margin %v, want %v", rt.tokens.margin, DefaultTokenRefreshMargin)
	}
	h := http.Header{"X-Upstream-At": {"forged"}, "X-Upstream-Id": {"forged"}, "Authorization": {"Bearer forged"}, "X-Other": {"kept"}}
	rt.Headers.StripInbound(h)
	if len(h) != 1 || h.Get("X-Other") != "kept" {
		t.Errorf("inbound headers after stripping: %v, want X-Other alone", h)
	}

	saml := tokenRoute(t, zapcore.NewNopCore(), nil)
	saml.IdPs = append(saml.IdPs, &IdP{Name: "corp", Protocol: idp.ProtocolSAML, Provider: samlIdP{}})
	if err := saml.PassTokens(TokenConfig{AccessHeader: DefaultAccessTokenHeader}); err == nil ||
		!strings.Contains(err.Error(), `IdP "corp" is saml: only OpenID Connect IdPs issue tokens`) {
		t.Errorf("SAML IdP: %v", err)
	}

	if err := (TokenConfig{RefreshMargin: time.Minute}).Validate(); err == nil || !strings.Contains(err.Error(), "token_refresh_margin needs") {
		t.Errorf("a margin on a route passing no token: %v", err)
	}
}

// TestPassTokensWarnsWhereTokensAreLogged: the operator is told when the
// tokens will appear in a log: at DEBUG (reverse_proxy logs the headers it
// sends), and in a verify mode (they are headers of the answer, which the
// access log records).
func TestPassTokensWarnsWhereTokensAreLogged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level zapcore.Level
		mode  string
		want  string
	}{
		{"debug", zapcore.DebugLevel, ModeProtect, "DEBUG logging is on: tokens passed upstream in X-Forwarded-Access-Token"},
		{"verify mode", zapcore.InfoLevel, ModeForwardAuth, "filter resp_headers>X-Forwarded-Access-Token"},
		{"quiet", zapcore.InfoLevel, ModeProtect, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(tc.level)
			rt := tokenRoute(t, core, nil)
			rt.Mode = tc.mode
			if err := rt.PassTokens(TokenConfig{AccessHeader: DefaultAccessTokenHeader}); err != nil {
				t.Fatal(err)
			}
			warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if tc.want == "" {
				if len(warns) != 0 {
					t.Errorf("warned %v", warns)
				}
				return
			}
			if len(warns) != 1 || !strings.Contains(warns[0].Message, tc.want) {
				t.Errorf("warnings %v, want one saying %q", warns, tc.want)
			}
		})
	}
}

// tokenSession signs a new user (email, in group) in at the IdP named,
// keeping tokens (nil for none), and returns the session's identity.
func tokenSession(t *testing.T, m *session.Manager, db store.Store, idpName, email, group string, tokens *session.Tokens) *session.Identity {
	t.Helper()
	ctx := context.Background()
	u := &store.User{Email: email, Groups: []string{group}, Active: true, Source: store.SourceJIT}
	n, err := m.Prepare(idpName, store.LogoutInfo{}, tokens)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return n.Write(tx, u)
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Resolve(ctx, n.Token)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestAuthorizeSetsTokensOnlyForAdmittedSessions: the token headers go
// upstream for a session of one of the route's IdPs that its rules admit;
// a session of another IdP counts as signed out, one the rules refuse is
// forbidden and carries no token, one without a valid access token signs
// in again, and an IdP that cannot renew an expired token is a 502.
func TestAuthorizeSetsTokensOnlyForAdmittedSessions(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m := session.New(db, session.Config{}, nil, nil)
	run := &Runtime{Store: db, Sessions: m}
	rt := tokenRoute(t, zapcore.NewNopCore(), func(context.Context, *idp.Tokens) (*idp.Tokens, error) {
		return nil, errors.New("the IdP is away")
	})
	if err := rt.PassTokens(TokenConfig{AccessHeader: DefaultAccessTokenHeader, IDHeader: DefaultIDTokenHeader, Bearer: true}); err != nil {
		t.Fatal(err)
	}
	if rt.Access, err = NewAccessPolicy(nil, []AccessRule{{Kind: "group", Values: []string{"contractors"}}}); err != nil {
		t.Fatal(err)
	}
	fresh := &session.Tokens{AccessToken: "at-1", IDToken: "idt-1", Expiry: time.Now().Add(time.Hour)}

	hd := http.Header{}
	id, forbidden, err := rt.Authorize(ctx, run, nil, tokenSession(t, m, db, "okta", "a@corp.example", "eng", fresh), hd)
	if err != nil || forbidden || id == nil {
		t.Fatalf("admitted session: %v, forbidden %v", err, forbidden)
	}
	if hd.Get(DefaultAccessTokenHeader) != "at-1" || hd.Get(DefaultIDTokenHeader) != "idt-1" || hd.Get("Authorization") != "Bearer at-1" {
		t.Errorf("token headers %v", hd)
	}

	hd = http.Header{}
	if _, _, err := rt.Authorize(ctx, run, nil, tokenSession(t, m, db, "google", "b@corp.example", "eng", fresh), hd); !errors.Is(err, session.ErrNoSession) || len(hd) != 0 {
		t.Errorf("another IdP's session: %v, headers %v; want ErrNoSession and none", err, hd)
	}

	contractor := tokenSession(t, m, db, "okta", "c@corp.example", "contractors", fresh)
	hd = http.Header{}
	if _, forbidden, err := rt.Authorize(ctx, run, nil, contractor, hd); err != nil || !forbidden || len(hd) != 0 {
		t.Errorf("refused session: %v, forbidden %v, headers %v; want forbidden and no token", err, forbidden, hd)
	}

	hd = http.Header{}
	if _, _, err := rt.Authorize(ctx, run, nil, tokenSession(t, m, db, "entra", "d@corp.example", "eng", nil), hd); !errors.Is(err, session.ErrNoSession) || len(hd) != 0 {
		t.Errorf("session without tokens: %v, headers %v; want ErrNoSession", err, hd)
	}

	expired := &session.Tokens{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: time.Now().Add(-time.Minute)}
	hd = http.Header{}
	_, _, err = rt.Authorize(ctx, run, nil, tokenSession(t, m, db, "okta", "e@corp.example", "eng", expired), hd)
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusBadGateway || len(hd) != 0 {
		t.Errorf("renewal failed: %v, headers %v; want a 502", err, hd)
	}
}
