package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
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

// tokenRuntime is a Runtime on a new bbolt store, with its sessions.
func tokenRuntime(t *testing.T) (*bolt.DB, *session.Manager, *Runtime) {
	t.Helper()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	return db, m, &Runtime{Store: db, Sessions: m}
}

// TestAuthorizeSetsTokensOnlyForAdmittedSessions: the token headers go
// upstream for a session of one of the route's IdPs that its rules admit;
// a session of another IdP counts as signed out, one the rules refuse is
// forbidden and carries no token, one without a valid access token signs
// in again, and an IdP that cannot renew an expired token is a 502.
func TestAuthorizeSetsTokensOnlyForAdmittedSessions(t *testing.T) {
	ctx := context.Background()
	db, m, run := tokenRuntime(t)
	rt := tokenRoute(t, zapcore.NewNopCore(), func(context.Context, *idp.Tokens) (*idp.Tokens, error) {
		return nil, errors.New("the IdP is away")
	})
	if err := rt.PassTokens(TokenConfig{AccessHeader: DefaultAccessTokenHeader, IDHeader: DefaultIDTokenHeader, Bearer: true}); err != nil {
		t.Fatal(err)
	}
	var err error
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
	if !errors.Is(err, session.ErrRefreshFailed) || len(hd) != 0 {
		t.Errorf("renewal failed: %v, headers %v; want ErrRefreshFailed and no token", err, hd)
	}
}

// TestSessionUnavailableRefreshFailed: the sso handler answers Authorize's
// error for an expired access token the IdP could not renew with
// SessionUnavailable, which gives it the IdP's status, 502, and what the
// store's failures have (a bare 502 left the browser blank and scripts
// without a retry time): Retry-After at the session's next attempt, the
// unavailable page with reference token_refresh_failed for a navigation,
// JSON that no cache keeps for anything else. The internal error is
// logged, once a minute per IdP, never shown.
func TestSessionUnavailableRefreshFailed(t *testing.T) {
	ctx := context.Background()
	db, m, run := tokenRuntime(t)
	core, logs := observer.New(zapcore.DebugLevel)
	rt := tokenRoute(t, core, func(context.Context, *idp.Tokens) (*idp.Tokens, error) {
		return nil, errors.New("dial tcp: the IdP is away")
	})
	if err := rt.PassTokens(TokenConfig{AccessHeader: DefaultAccessTokenHeader}); err != nil {
		t.Fatal(err)
	}
	var err error
	if rt.Access, err = NewAccessPolicy(nil, nil); err != nil {
		t.Fatal(err)
	}
	expired := &session.Tokens{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: time.Now().Add(-time.Minute)}
	id := tokenSession(t, m, db, "okta", "e@corp.example", "eng", expired)

	for _, tc := range []struct {
		name     string
		accept   string
		page     bool
		wantBody string
	}{
		{"navigation", "text/html", true, "could not renew your access with the identity provider"},
		{"script", "application/json", false, `{"error":"the identity provider could not renew the access token; try again shortly"}`},
		{"navigation again", "text/html", true, CodeTokenRefreshFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, authErr := rt.Authorize(ctx, run, nil, id, http.Header{})
			r, _ := http.NewRequest(http.MethodGet, "https://app.example.com/reports", nil)
			r.Header.Set("Accept", tc.accept)
			w := httptest.NewRecorder()
			err := rt.SessionUnavailable(w, r, authErr)
			if pe, ok := AsPageError(err); ok != tc.page {
				t.Fatalf("got %v, want a page %v", err, tc.page)
			} else if ok {
				if pe.Name != PageUnavailable || pe.Status != http.StatusBadGateway || pe.Code != CodeTokenRefreshFailed || pe.IdP != "okta" || pe.SignedOut {
					t.Errorf("page %+v, want unavailable 502 token_refresh_failed of okta", pe.Page)
				}
				if err := pe.Write(w); err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, ErrAnswered) {
				t.Fatalf("got %v, want ErrAnswered", err)
			}
			h := w.Header()
			if w.Code != http.StatusBadGateway || h.Get("Retry-After") != "10" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("answer %d, headers %v; want 502 with Retry-After 10 and no-store", w.Code, h)
			}
			if body := w.Body.String(); !strings.Contains(body, tc.wantBody) || strings.Contains(body, "the IdP is away") {
				t.Errorf("body %q: want %q, and not the internal error", body, tc.wantBody)
			}
		})
	}
	var errorLines, debugLines int
	for _, e := range logs.FilterMessageSnippet("could not renew an expired access token").All() {
		switch e.Level {
		case zapcore.ErrorLevel:
			errorLines++
			if e.ContextMap()["idp"] != "okta" || !strings.Contains(e.ContextMap()["error"].(string), "the IdP is away") {
				t.Errorf("ERROR line %v: want the IdP and the cause", e.ContextMap())
			}
		case zapcore.DebugLevel:
			debugLines++
		}
	}
	if errorLines != 1 || debugLines != 2 {
		t.Errorf("%d ERROR and %d DEBUG lines for three answers, want 1 and 2", errorLines, debugLines)
	}
}

// TestTokenRefreshFailedRetryAfter: the 502's Retry-After is when the
// session asks the IdP again (session.RefreshFailedError.RetryAt), rounded
// up to whole seconds and at least 1: with instances sharing the store
// that is up to the race window (12 s), and a client obeying a shorter one
// met the same failure. A request whose own context ended while it waited
// for the refresh gets the same answer, logged at DEBUG only: it is no
// failure of the IdP's.
func TestTokenRefreshFailedRetryAfter(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name      string
		err       error
		ended     bool
		want      string
		errorLogs int
	}{
		{"shared store's hold-off", &session.RefreshFailedError{RetryAt: now.Add(11200 * time.Millisecond), Err: errors.New("503")}, false, "12", 1},
		{"one instance", &session.RefreshFailedError{RetryAt: now.Add(session.RefreshRetry), Err: errors.New("503")}, false, "10", 1},
		{"past", &session.RefreshFailedError{RetryAt: now.Add(-time.Second), Err: errors.New("503")}, false, "1", 1},
		{"request ended", fmt.Errorf("%w: %w", session.ErrRefreshFailed, context.DeadlineExceeded), true, "10", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			rt := tokenRoute(t, core, nil)
			w := httptest.NewRecorder()
			err := rt.sessionUnavailable(w, false, &refreshFailed{idp: "okta", err: tc.err, ended: tc.ended})
			if !errors.Is(err, ErrAnswered) || w.Code != http.StatusBadGateway {
				t.Fatalf("%v, status %d; want the JSON 502", err, w.Code)
			}
			if got := w.Header().Get("Retry-After"); got != tc.want {
				t.Errorf("Retry-After %q, want %q", got, tc.want)
			}
			if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != tc.errorLogs {
				t.Errorf("%d ERROR lines, want %d: %v", n, tc.errorLogs, logs.All())
			}
		})
	}
}

// TestTokenConfigCheckIdP: the one rule that only OpenID Connect IdPs pass
// tokens upstream, which caddy validate applies to the configured
// protocols and PassTokens to the route's IdPs, with the same words: a
// route passing no token takes any IdP.
func TestTokenConfigCheckIdP(t *testing.T) {
	passing := TokenConfig{AccessHeader: DefaultAccessTokenHeader}
	for _, tc := range []struct {
		c        TokenConfig
		protocol string
		refused  bool
	}{
		{passing, idp.ProtocolOIDC, false},
		{passing, idp.ProtocolSAML, true},
		{TokenConfig{IDHeader: DefaultIDTokenHeader}, idp.ProtocolSAML, true},
		{TokenConfig{Bearer: true}, idp.ProtocolSAML, true},
		{TokenConfig{}, idp.ProtocolSAML, false},
		{TokenConfig{}, idp.ProtocolOIDC, false},
	} {
		err := tc.c.CheckIdP("corp", tc.protocol)
		if (err != nil) != tc.refused {
			t.Errorf("%+v, %s: %v, want refused %v", tc.c, tc.protocol, err, tc.refused)
		}
	}
	// PassTokens refuses a SAML IdP with exactly CheckIdP's error.
	rt := tokenRoute(t, zapcore.NewNopCore(), nil)
	rt.IdPs = append(rt.IdPs, &IdP{Name: "corp", Protocol: idp.ProtocolSAML, Provider: samlIdP{}})
	want := passing.CheckIdP("corp", idp.ProtocolSAML)
	if err := rt.PassTokens(passing); err == nil || want == nil || err.Error() != want.Error() {
		t.Errorf("PassTokens: %v, want %v", err, want)
	}
}

// TestPassTokensWithoutTokensChangesNothing: the handler readies every
// route with its token settings, most of which pass none: such a route,
// SAML IdPs and all, is left as it was, with no token kept at sign-in and
// none asked of its sessions.
func TestPassTokensWithoutTokensChangesNothing(t *testing.T) {
	rt := tokenRoute(t, zapcore.NewNopCore(), nil)
	rt.IdPs = append(rt.IdPs, &IdP{Name: "corp", Protocol: idp.ProtocolSAML, Provider: samlIdP{}})
	if err := rt.PassTokens(TokenConfig{}); err != nil {
		t.Fatalf("a route that passes no token: %v", err)
	}
	if rt.tokens != nil {
		t.Error("a route that passes no token is readied to set token headers")
	}
	for _, p := range rt.IdPs {
		if p.SignIn.KeepAccessToken || p.SignIn.KeepRefreshToken {
			t.Errorf("IdP %s keeps access %v, refresh %v for a route that passes no token; want neither", p.Name, p.SignIn.KeepAccessToken, p.SignIn.KeepRefreshToken)
		}
	}
}
