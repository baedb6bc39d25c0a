package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestVerifyTokenRenewalFails: forward-auth on a route that passes tokens,
// for a session whose access token has expired and whose IdP cannot renew
// it, answers the proxy the IdP's status, 502, not 200 (the proxy would
// pass the request on without a token) nor a bare 500, as the store's
// failures are answered: Retry-After at the session's next attempt, the
// token_refresh_failed page for a navigation, JSON for a script. The
// answer carries no token and no sign-in redirect (the session is kept:
// the next attempt may succeed), and the requests that repeat it make one
// ERROR line, not one each.
func TestVerifyTokenRenewalFails(t *testing.T) {
	for _, tc := range []struct {
		name        string
		headers     map[string]string
		contentType string
		body        []string
	}{
		{"navigation", map[string]string{"X-Forwarded-Uri": "/reports", "Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
			"text/html; charset=utf-8", []string{"Temporarily unavailable", "could not renew your access", CodeTokenRefreshFailed}},
		{"script", map[string]string{"X-Forwarded-Uri": "/api/reports", "Accept": "application/json"},
			"application/json", []string{`{"error":"the identity provider could not renew the access token; try again shortly"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := newTestRuntime(t)
			core, logs := observer.New(zapcore.ErrorLevel)
			rt := tokenRoute(t, core, func(context.Context, *idp.Tokens) (*idp.Tokens, error) {
				return nil, errors.New("the IdP is away")
			})
			rt.PathPrefix, rt.Mode, rt.Default = "/.sso/", ModeForwardAuth, rt.IdPs[0]
			if err := rt.PassTokens(TokenConfig{AccessHeader: DefaultAccessTokenHeader, Bearer: true}); err != nil {
				t.Fatal(err)
			}
			var err error
			if rt.Access, err = NewAccessPolicy(nil, nil); err != nil {
				t.Fatal(err)
			}
			expired := &session.Tokens{AccessToken: "at-0", RefreshToken: "rt-0", Expiry: time.Now().Add(-time.Minute)}
			token := verifyTokenSession(t, run, "okta", expired)

			for i := range 3 {
				r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
				for k, v := range tc.headers {
					r.Header.Set(k, v)
				}
				w := httptest.NewRecorder()
				if err := rt.Verify(w, r, run, dutyOrigin(), []string{token}, true); err != nil {
					t.Fatal(err)
				}
				h := w.Header()
				if w.Code != http.StatusBadGateway || h.Get("Retry-After") != "10" || h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != tc.contentType {
					t.Errorf("request %d: answer %d, headers %v; want 502 with Retry-After 10, no-store, %s", i, w.Code, h, tc.contentType)
				}
				for _, want := range tc.body {
					if !strings.Contains(w.Body.String(), want) {
						t.Errorf("request %d: body %q, want %q in it", i, w.Body.String(), want)
					}
				}
				if strings.Contains(w.Body.String(), "the IdP is away") {
					t.Errorf("request %d: body %q shows the internal error", i, w.Body.String())
				}
				if h.Get(DefaultAccessTokenHeader) != "" || h.Get("Authorization") != "" || h.Get("Location") != "" {
					t.Errorf("request %d: answer headers %v: want no token and no Location", i, h)
				}
			}
			if all := logs.All(); len(all) != 1 || all[0].ContextMap()["idp"] != "okta" || !strings.Contains(all[0].Message, "answering 502") {
				t.Errorf("ERROR lines %v: want one, of the IdP okta, for the three requests", all)
			}
		})
	}
}

// verifyTokenSession signs a new user in at the IdP named, keeping
// tokens, and returns the session's cookie token.
func verifyTokenSession(t *testing.T, run *Runtime, idpName string, tokens *session.Tokens) string {
	t.Helper()
	n, err := run.Sessions.Prepare(idpName, store.LogoutInfo{}, tokens)
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Email: "ada@corp.example", Groups: []string{"eng"}, Active: true, Source: store.SourceJIT}
	err = run.Store.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return n.Write(tx, u)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n.Token
}

// failingViews is a store whose reads fail while fail is set.
type failingViews struct {
	store.Store
	fail *atomic.Bool
}

func (s failingViews) View(ctx context.Context, fn func(store.Tx) error) error {
	if s.fail.Load() {
		return errors.New("disk on fire")
	}
	return s.Store.View(ctx, fn)
}

// TestVerifyTokensStoreAway: a session this instance has cached, on a route
// that passes tokens, whose tokens it has not read yet when the store goes
// away, is answered as every request the store fails: 503 with
// Retry-After, so that the proxy, the person and a script try again. It
// is not the 502 of an IdP that could not renew the token (its access
// token is valid for an hour), and it is not logged as one.
func TestVerifyTokensStoreAway(t *testing.T) {
	base := newTestRuntime(t)
	var fail atomic.Bool
	db := failingViews{base.Store, &fail}
	sessions := session.New(db, session.Config{}, nil, nil)
	run := &Runtime{Store: db, Sessions: sessions, SignIn: base.SignIn, Refusals: base.Refusals, Flows: base.Flows}
	core, logs := observer.New(zapcore.ErrorLevel)
	rt := tokenRoute(t, core, func(context.Context, *idp.Tokens) (*idp.Tokens, error) {
		t.Error("a valid access token was refreshed")
		return nil, errors.New("unexpected refresh")
	})
	rt.PathPrefix, rt.Mode, rt.Default = "/.sso/", ModeForwardAuth, rt.IdPs[0]
	if err := rt.PassTokens(TokenConfig{AccessHeader: DefaultAccessTokenHeader}); err != nil {
		t.Fatal(err)
	}
	var err error
	if rt.Access, err = NewAccessPolicy(nil, nil); err != nil {
		t.Fatal(err)
	}
	token := verifyTokenSession(t, run, "okta", &session.Tokens{AccessToken: "at-0", Expiry: time.Now().Add(time.Hour)})
	if _, err := sessions.Resolve(context.Background(), token); err != nil { // cached, its tokens not read
		t.Fatal(err)
	}
	fail.Store(true)

	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/verify", nil)
	r.Header.Set("X-Forwarded-Uri", "/api/reports")
	r.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	if err := rt.Verify(w, r, run, dutyOrigin(), []string{token}, true); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != StoreRetryAfter {
		t.Errorf("answer %d, Retry-After %q; want 503, %s", w.Code, w.Header().Get("Retry-After"), StoreRetryAfter)
	}
	if h := w.Header(); h.Get(DefaultAccessTokenHeader) != "" || h.Get("Location") != "" {
		t.Errorf("answer headers %v: want no token and no Location", h)
	}
	for _, e := range logs.All() {
		if e.Message != "the store failed; answering 503" {
			t.Errorf("logged %q %v; want the store's failure alone", e.Message, e.ContextMap())
		}
	}
}
