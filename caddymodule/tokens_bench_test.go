package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

// BenchmarkTokenRoute measures what passing the session's tokens adds to an
// authenticated request (pass_access_token and set_authorization_header,
// the tokens fresh in memory): "sso" is the same route without them.
//
//	go test -run '^$' -bench TokenRoute -benchmem ./caddymodule/
func BenchmarkTokenRoute(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "sso.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	u := &store.User{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Groups: []string{"eng"}, Active: true}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		b.Fatal(err)
	}
	sessions := session.New(db, session.Config{}, nil, nil)
	sessions.Derive = placeholderLookup
	token, s, err := sessions.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		b.Fatal(err)
	}
	if err := sessions.PutTokens(ctx, s.Hash, &session.Tokens{IDToken: "eyJ.eyJ.sig", AccessToken: "at-0123456789",
		RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	plan, err := newHeaderPlan("", nil)
	if err != nil {
		b.Fatal(err)
	}
	h := &Handler{PathPrefix: DefaultPathPrefix, app: startedApp(db, sessions), plan: plan, logger: zap.NewNop(), names: []string{"okta"}}
	withTokens := &Handler{PathPrefix: h.PathPrefix, app: h.app, logger: h.logger, names: h.names,
		PassAccessToken: defaultAccessTokenHeader, SetAuthorizationHeader: true}
	if withTokens.plan, err = newHeaderPlan("", nil); err != nil {
		b.Fatal(err)
	}
	withTokens.tokens = &routeTokens{access: defaultAccessTokenHeader, bearer: true, margin: time.Minute,
		refresh: map[string]session.RefreshFunc{"okta": func(context.Context, *session.Tokens) (*session.Tokens, error) {
			return nil, errors.New("no refresh due")
		}}}
	withTokens.plan.strip.add("Authorization")
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.Header.Get("Authorization") == "" && r.Header.Get(defaultAccessTokenHeader) != "" {
			return errors.New("token headers missing")
		}
		return nil
	})
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/app/page?q=1", nil)
	inbound := http.Header{
		"Accept":     {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Cookie":     {"theme=dark; " + sessionCookiePlain + "=" + token + "; lang=en"},
		"User-Agent": {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"},
	}
	noVars := caddy.ReplacerFunc(func(string) (any, bool) { return nil, false })
	w := httptest.NewRecorder()
	for _, bc := range []struct {
		name string
		h    *Handler
	}{{"sso", h}, {"sso+tokens", withTokens}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				repl := caddy.NewReplacer()
				repl.Map(noVars)
				r := req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
				r.Header = inbound.Clone()
				if err := bc.h.ServeHTTP(w, r, next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
