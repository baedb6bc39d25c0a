package caddymodule

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/gateway"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// BenchmarkAuthenticatedRequest measures what the sso handler adds to a
// request that carries a valid session (docs/architecture.md, "Performance
// budgets": under 2 µs):
// inbound header stripping, the session cache, identity headers and
// placeholders. "bare" is the same request through the next handler alone.
// The proxied/ variants end in what reverse_proxy then does with the
// request's headers (proxyHeaders), which grows with what the handler
// hands on: the identity headers cost there too, and again in the
// upstream that parses them. "verify" is the same session asked about by
// Caddy's forward_auth (docs/forward-auth.md), answered 200 with the
// identity headers; its recorder is new each time, so its count holds the
// answer's header map as the server's would grow it.
// TestHotPathAllocations pins what the handler allocates on each.
//
//	go test -run '^$' -bench AuthenticatedRequest -benchmem ./caddymodule/
func BenchmarkAuthenticatedRequest(b *testing.B) {
	hp := newHotPath(b)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	proxied := proxyHeaders()
	w := httptest.NewRecorder()

	type variant struct {
		name string
		h    caddyhttp.Handler
	}
	var variants []variant
	for _, n := range []struct {
		prefix string
		next   caddyhttp.Handler
	}{{"", next}, {"proxied/", proxied}} {
		variants = append(variants, variant{n.prefix + "bare", n.next})
		for _, sh := range []struct {
			name string
			h    *Handler
		}{{"sso", hp.sso}, {"sso+rules", hp.ruled}, {"sso+jwt", hp.signed}, {"sso+tokens", hp.withTokens}} {
			variants = append(variants, variant{n.prefix + sh.name,
				caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return sh.h.ServeHTTP(w, r, n.next) })})
		}
	}
	for _, bc := range variants {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.h.ServeHTTP(w, hp.request()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			vw := httptest.NewRecorder()
			if err := hp.verify.ServeHTTP(vw, hp.verifyRequest(), next); err != nil || vw.Code != http.StatusOK || vw.Header().Get("Cookie") != "theme=dark; lang=en" {
				b.Fatalf("verify: %v, %d, Cookie %q", err, vw.Code, vw.Header().Get("Cookie"))
			}
		}
	})
}

// hotPath is a signed-in browser's request and the handlers it goes
// through: BenchmarkAuthenticatedRequest times them and
// TestHotPathAllocations pins their allocations.
type hotPath struct {
	// sso is the handler as configured by default; ruled has access
	// rules; signed the signed identity token (signed once, then served
	// from the per-identity cache), which needs the site's origin
	// vouched for: a base_url; withTokens passes the session's tokens
	// (pass_access_token and set_authorization_header), fresh in memory;
	// verify answers Caddy's forward_auth.
	sso, ruled, signed, withTokens, verify *Handler

	req, vreq      *http.Request
	inbound, asked http.Header
	noVars         caddy.ReplacerFunc
}

func newHotPath(tb testing.TB) *hotPath {
	db := backendtest.OpenBolt(tb)
	ctx := context.Background()
	u := &store.User{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Groups: []string{"eng", "admins"}, Active: true}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		tb.Fatal(err)
	}
	sessions := session.New(db, session.Config{}, nil, nil)
	sessions.Derive = placeholderLookup
	token, s, err := sessions.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := sessions.PutTokens(ctx, s.Hash, &session.Tokens{IDToken: "eyJ.eyJ.sig", AccessToken: "at-0123456789",
		RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	app := startedApp(tb, db, sessions)
	// As App.start builds it: every signed-in request passes Streams.
	run, err := app.live.Running(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	run.Streams = gateway.NewStreams(sessions)
	okta := &gateway.IdP{Name: "okta", Protocol: "oidc", Provider: noRefreshDue{}}
	handler := func(edit func(*gateway.Route)) *Handler {
		plan, err := gateway.NewHeaderPlan("", nil)
		if err != nil {
			tb.Fatal(err)
		}
		rt := &gateway.Route{PathPrefix: DefaultPathPrefix, IdPs: []*gateway.IdP{okta}, Default: okta,
			Headers: plan, Logger: zap.NewNop()}
		if edit != nil {
			edit(rt)
		}
		return &Handler{PathPrefix: DefaultPathPrefix, app: app, logger: zap.NewNop(), route: rt}
	}
	hp := &hotPath{sso: handler(nil)}
	hp.ruled = handler(func(rt *gateway.Route) {
		var err error
		if rt.Access, err = gateway.NewAccessPolicy(
			[]gateway.AccessRule{{Kind: "group", Values: []string{"admins"}}, {Kind: "domain", Values: []string{"example.org"}}},
			[]gateway.AccessRule{{Kind: "user", Values: []string{"mallory@example.com"}}}); err != nil {
			tb.Fatal(err)
		}
	})
	hp.signed = handler(func(rt *gateway.Route) { rt.SignIdentity(gateway.SignerConfig{}) })
	base, err := gateway.BaseOrigin("http://127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	hp.signed.base = &base
	hp.withTokens = handler(func(rt *gateway.Route) {
		if err := rt.PassTokens(gateway.TokenConfig{AccessHeader: gateway.DefaultAccessTokenHeader, Bearer: true}); err != nil {
			tb.Fatal(err)
		}
	})
	hp.verify = handler(func(rt *gateway.Route) { rt.Mode = gateway.ModeForwardAuth })

	hp.req = httptest.NewRequest(http.MethodGet, "http://127.0.0.1/app/page?q=1", nil)
	hp.noVars = caddy.ReplacerFunc(func(string) (any, bool) { return nil, false })
	// What Chromium sends on a navigation, plus one spoofed identity header.
	hp.inbound = http.Header{
		"Accept":                    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding":           {"gzip, deflate, br, zstd"},
		"Accept-Language":           {"en-GB,en;q=0.9"},
		"Cache-Control":             {"max-age=0"},
		"Connection":                {"keep-alive"},
		"Cookie":                    {"theme=dark; " + gateway.SessionCookiePlain + "=" + token + "; lang=en"},
		"Sec-Ch-Ua":                 {`"Chromium";v="156", "Not)A;Brand";v="24"`},
		"Sec-Ch-Ua-Mobile":          {"?0"},
		"Sec-Ch-Ua-Platform":        {`"Linux"`},
		"Sec-Fetch-Dest":            {"document"},
		"Sec-Fetch-Mode":            {"navigate"},
		"Sec-Fetch-Site":            {"none"},
		"Sec-Fetch-User":            {"?1"},
		"Upgrade-Insecure-Requests": {"1"},
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"},
		"X-Forwarded-User":          {"mallory"},
	}
	// forward_auth's subrequest: the browser's headers, the original
	// method and URI, from a trusted proxy (Caddy's vars say so).
	hp.asked = hp.inbound.Clone()
	hp.asked["X-Forwarded-Method"] = []string{http.MethodGet}
	hp.asked["X-Forwarded-Uri"] = []string{"/app/page?q=1"}
	hp.vreq = httptest.NewRequest(http.MethodGet, "http://127.0.0.1/verify", nil)
	hp.vreq = hp.vreq.WithContext(context.WithValue(hp.vreq.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: true}))
	return hp
}

// request is the browser's request as the server hands it on: its own
// headers (the handler rewrites them) and a fresh placeholder replacer,
// with one provider added as Caddy's HTTP server adds its own. Every
// variant pays for it, so their difference is the handler's own cost.
func (hp *hotPath) request() *http.Request {
	repl := caddy.NewReplacer()
	repl.Map(hp.noVars)
	r := hp.req.WithContext(context.WithValue(hp.req.Context(), caddy.ReplacerCtxKey, repl))
	r.Header = hp.inbound.Clone()
	return r
}

// verifyRequest is forward_auth's subrequest as the server hands it on.
func (hp *hotPath) verifyRequest() *http.Request {
	r := hp.vreq.WithContext(context.WithValue(hp.vreq.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	r.Header = hp.asked.Clone()
	return r
}

// noRefreshDue is an OIDC provider whose tokens never need refreshing in
// the benchmark: Refresh is what a route passing tokens requires of it.
type noRefreshDue struct{ idp.Provider }

func (noRefreshDue) Refresh(context.Context, *idp.Tokens) (*idp.Tokens, error) {
	return nil, errors.New("no refresh due")
}

// proxyHeaders is the part of reverse_proxy (Caddy v2.11.9,
// modules/caddyhttp/reverseproxy/reverseproxy.go) whose cost depends on the
// request's headers: prepareRequest clones the header map and removes the
// hop-by-hop headers and adds its own; reverseProxy's "upstream roundtrip"
// logger encodes every header as JSON on every request, whatever the log
// level (zap's With encodes at once); the transport writes the request
// (sorted headers) into the connection's buffered writer.
func proxyHeaders() caddyhttp.Handler {
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.ErrorLevel))
	conn := bufio.NewWriter(io.Discard)
	hopByHop := []string{"Alt-Svc", "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		out := r.Clone(r.Context())
		for _, k := range hopByHop {
			delete(out.Header, k)
		}
		out.Header["X-Forwarded-For"] = []string{"127.0.0.1"}
		out.Header["X-Forwarded-Proto"] = []string{"http"}
		out.Header["X-Forwarded-Host"] = []string{r.Host}
		out.Header["Via"] = []string{"1.1 Caddy"}
		out.URL.Scheme, out.URL.Host = "", ""
		log := logger.With(zap.String("upstream", "127.0.0.1:8080"), zap.Duration("duration", time.Millisecond),
			zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: out}))
		if c := log.Check(zapcore.DebugLevel, "upstream roundtrip"); c != nil {
			c.Write()
		}
		if err := out.Write(conn); err != nil {
			return err
		}
		return conn.Flush()
	})
}

// BenchmarkHotPathExtras isolates what access rules and the cached
// identity token add to an authenticated request, and what a latency
// histogram would.
func BenchmarkHotPathExtras(b *testing.B) {
	db := backendtest.OpenBolt(b)
	ctx := context.Background()
	u := &store.User{Email: "Ada@Example.com", FirstName: "Ada", LastName: "Lovelace", Groups: []string{"eng", "admins"}, Active: true}
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		b.Fatal(err)
	}
	sessions := session.New(db, session.Config{}, nil, nil)
	sessions.Derive = placeholderLookup
	token, _, err := sessions.Create(ctx, u, "okta", store.LogoutInfo{})
	if err != nil {
		b.Fatal(err)
	}
	id, err := sessions.Resolve(ctx, token)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("access", func(b *testing.B) {
		p, err := gateway.NewAccessPolicy(
			[]gateway.AccessRule{{Kind: "group", Values: []string{"ops", "admins"}}, {Kind: "domain", Values: []string{"example.org"}}},
			[]gateway.AccessRule{{Kind: "user", Values: []string{"mallory@example.com", "u-123"}}})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if !p.Permits(id) {
				b.Fatal("denied")
			}
		}
	})
	b.Run("jwt_cached", func(b *testing.B) {
		s := gateway.NewIdentitySigner(gateway.SignerConfig{})
		o := gateway.Origin{Site: idp.Origin{Scheme: "https", Host: "app.example.com"}, Vouched: true}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Token(ctx, db, id, o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("histogram", func(b *testing.B) {
		hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: prometheus.DefBuckets})
		b.ReportAllocs()
		for b.Loop() {
			start := time.Now()
			hist.Observe(time.Since(start).Seconds())
		}
	})
}
