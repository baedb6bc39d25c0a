package gateway

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

// TestStripOwnCookies checks what the upstream gets of the Cookie header:
// never one of ours (session or sign-in flow, in any position, on any
// line), everything else unchanged.
func TestStripOwnCookies(t *testing.T) {
	const tok = "sso_session=TOKEN"
	tests := []struct {
		name string
		in   []string
		want []string // nil: no Cookie header at all
	}{
		{"no cookie header", nil, nil},
		{"only ours", []string{tok}, nil},
		{"only ours, secure name", []string{"__Host-sso_session=TOKEN"}, nil},
		{"ours first", []string{tok + "; theme=dark; lang=en"}, []string{"theme=dark; lang=en"}},
		{"ours last", []string{"theme=dark; lang=en; " + tok}, []string{"theme=dark; lang=en"}},
		{"ours between", []string{"theme=dark; " + tok + "; lang=en"}, []string{"theme=dark; lang=en"}},
		{"ours between, two after", []string{"theme=dark; " + tok + "; lang=en; tz=utc"}, []string{"theme=dark; lang=en; tz=utc"}},
		{"ours between, two before and two after", []string{"a=1; b=2; " + tok + "; c=3; d=4"}, []string{"a=1; b=2; c=3; d=4"}},
		{"ours at both ends", []string{tok + "; theme=dark;lang=en; sso_flow_abc=x"}, []string{"theme=dark;lang=en"}},
		{"several of ours between", []string{"a=1;" + tok + ";__Secure-sso_flow_x=2; b=2 ;sso_flow_y=3;c=3"}, []string{"a=1; b=2; c=3"}},
		{"spaces around the name", []string{"a=1; sso_session =TOKEN ;b=2"}, []string{"a=1; b=2"}},
		{"not ours: lookalikes", []string{"my_sso_session=1; sso_sessions=2; x=sso_session"}, []string{"my_sso_session=1; sso_sessions=2; x=sso_session"}},
		{"app cookie keeps its spelling", []string{"a=1;b=2 ; " + tok}, []string{"a=1;b=2"}},
		{"several lines", []string{"a=1", tok, "b=2; " + tok, "c=3"}, []string{"a=1", "b=2", "c=3"}},
		{"empty line kept", []string{"", "a=1"}, []string{"", "a=1"}},
		{"only separators and ours", []string{" ; " + tok + " ;; "}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Accept": {"*/*"}}
			if tt.in != nil {
				h["Cookie"] = slices.Clone(tt.in)
			}
			StripOwnCookies(h)
			got, ok := h["Cookie"]
			if tt.want == nil {
				if ok {
					t.Fatalf("Cookie = %q, want no Cookie header", got)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Cookie = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStripOwnCookiesAllocations: the usual request (our session cookie at
// either end of the line, or no cookie of ours) costs no allocation.
func TestStripOwnCookiesAllocations(t *testing.T) {
	for _, line := range []string{"theme=dark; lang=en", "theme=dark; sso_session=TOKEN", "sso_session=TOKEN; lang=en", "sso_session=TOKEN"} {
		lines := []string{line}
		h := http.Header{"Cookie": lines}
		allocs := testing.AllocsPerRun(100, func() {
			lines[0] = line
			h["Cookie"] = lines[:1]
			StripOwnCookies(h)
		})
		if allocs != 0 {
			t.Errorf("%q: %v allocations, want 0", line, allocs)
		}
	}
}

// longHeaderName returns a header name of exactly n bytes (n >= 2) that
// ends in a letter, for names around and past the 64-byte buffer has
// folds short names into.
func longHeaderName(n int) string {
	s := "X-Example-Corp-Application-Authenticated"
	for len(s) < n {
		s += "-Principal"
	}
	s = s[:n]
	if s[n-1] == '-' {
		s = s[:n-1] + "z"
	}
	return s
}

// clientSpellings are the ways a client may spell a protected name that
// the folding rule (ASCII case, '_' or '.' for '-') must all catch: CGI
// and FastCGI merge '_' with '-', and PHP's $_SERVER merges '.' too.
func clientSpellings(name string) []string {
	mixed := []byte(strings.ToLower(name))
	for i := range mixed {
		switch {
		case i%2 == 0 && mixed[i] >= 'a' && mixed[i] <= 'z':
			mixed[i] -= 'a' - 'A'
		case i%3 == 0 && mixed[i] == '-':
			mixed[i] = '_'
		case i%3 == 1 && mixed[i] == '-':
			mixed[i] = '.'
		}
	}
	underscored := strings.ReplaceAll(name, "-", "_")
	dotted := strings.ReplaceAll(name, "-", ".")
	return []string{
		name,
		strings.ToLower(name),
		strings.ToUpper(name),
		underscored,
		strings.ToLower(underscored),
		dotted,
		strings.ToUpper(dotted),
		string(mixed),
	}
}

// protectedNameCases are configured header names of every length that
// matters to has: short ones, exactly the 64 bytes of its stack buffer,
// one past it, the reviewer's 66-byte name and a very long one.
var protectedNameCases = []struct {
	name   string
	header string
}{
	{"short", "X-App-User"},
	{"leading dash", "-App-User"},
	{"63 bytes", longHeaderName(63)},
	{"64 bytes", longHeaderName(64)},
	{"65 bytes", longHeaderName(65)},
	{"66 bytes", "X-Example-Corp-Application-Authenticated-Principal-User-Identifier"},
	{"300 bytes", longHeaderName(300)},
}

// protectedPlans configures header the two ways a route can: as an
// identity header (the header directive) and as a token's header
// (identity_jwt header, pass_*_token), which go through Protect.
func protectedPlans(t *testing.T, header string) map[string]*HeaderPlan {
	t.Helper()
	set, err := NewHeaderPlan("none", map[string]string{"user": header})
	if err != nil {
		t.Fatal(err)
	}
	protected, err := NewHeaderPlan("none", nil)
	if err != nil {
		t.Fatal(err)
	}
	protected.Protect(header)
	return map[string]*HeaderPlan{"header": &set, "protect": &protected}
}

// TestStripInboundAnyLength: a client's copy of a configured header, in any
// letter case and with '_' or '.' for '-', is stripped whatever the name's
// length (docs/security.md); names that only look alike pass.
func TestStripInboundAnyLength(t *testing.T) {
	for _, tt := range protectedNameCases {
		if n, ok := strings.CutSuffix(tt.name, " bytes"); ok && n != strconv.Itoa(len(tt.header)) {
			t.Fatalf("case %q: header is %d bytes", tt.name, len(tt.header))
		}
		for how, plan := range protectedPlans(t, tt.header) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				h := http.Header{"Accept": {"*/*"}}
				for _, s := range clientSpellings(tt.header) {
					h[s] = []string{"admin"}
				}
				lookalikes := []string{tt.header + "s", tt.header[:len(tt.header)-1], "Y" + tt.header[1:]}
				for _, s := range lookalikes {
					h[s] = []string{"kept"}
				}
				plan.StripInbound(h)
				for _, s := range clientSpellings(tt.header) {
					if _, ok := h[s]; ok {
						t.Errorf("client's %q survived StripInbound", s)
					}
				}
				for _, s := range append(lookalikes, "Accept") {
					if _, ok := h[s]; !ok {
						t.Errorf("%q was stripped, but is not protected", s)
					}
				}
			})
		}
	}
}

// TestProtectedHeadersDotSpelling: every always-stripped name spelled with
// '.' for '-' is stripped from the headers, removed from Connection and
// deleted from the trailers, as PHP's $_SERVER would read
// X.Forwarded.User as the gateway's X-Forwarded-User (FastCGI passes
// HTTP_X.FORWARDED.USER, PHP turns '.' into '_'); and a route cannot set
// two headers that differ only so.
func TestProtectedHeadersDotSpelling(t *testing.T) {
	plan, err := NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Keys as written, not canonicalized: StripInbound must fold any
	// spelling it is handed.
	unprotected := strings.ReplaceAll("X-Forwarded-For", "-", ".")
	for _, name := range ProtectedHeaders() {
		dotted := strings.ReplaceAll(name, "-", ".")
		h := http.Header{dotted: {"admin"}, unprotected: {"kept"}}
		plan.StripInbound(h)
		if _, ok := h[dotted]; ok {
			t.Errorf("%s survived StripInbound", dotted)
		}
		if _, ok := h[unprotected]; !ok {
			t.Errorf("%s, not protected, was stripped", unprotected)
		}
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/app", nil)
		r.Header["Connection"] = []string{"keep-alive, " + strings.ToLower(dotted)}
		r.Trailer = http.Header{dotted: {"admin"}}
		plan.GuardHopByHop(r)
		if got := r.Header["Connection"]; !slices.Equal(got, []string{"keep-alive"}) {
			t.Errorf("Connection token %s: Connection = %q, want [keep-alive]", strings.ToLower(dotted), got)
		}
		if _, ok := r.Trailer[dotted]; ok {
			t.Errorf("trailer %s survived", dotted)
		}
	}
	err = CheckUpstreamHeaders(UpstreamHeader{Setting: SettingHeader, Field: "user", Name: "X-App-User"},
		UpstreamHeader{Setting: SettingHeader, Field: "email", Name: "X.App.User"})
	if err == nil || !strings.Contains(err.Error(), "name one header") {
		t.Errorf("X-App-User and X.App.User: %v, want them to name one header", err)
	}
}

// TestGuardHopByHopAnyLength: a Connection token or a trailer naming a
// configured header, in any spelling, is removed whatever the name's
// length, so a proxy cannot delete the header the gateway set; other
// tokens and trailers stay.
func TestGuardHopByHopAnyLength(t *testing.T) {
	for _, tt := range protectedNameCases {
		for how, plan := range protectedPlans(t, tt.header) {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				for _, s := range clientSpellings(tt.header) {
					r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/app", nil)
					r.Header["Connection"] = []string{"keep-alive, " + s, "Upgrade"}
					r.Trailer = http.Header{s: {"admin"}, "Content-Digest": {"sha-256=:x:"}}
					plan.GuardHopByHop(r)
					if got := r.Header["Connection"]; !slices.Equal(got, []string{"keep-alive, Upgrade"}) {
						t.Errorf("Connection token %q: Connection = %q, want [keep-alive, Upgrade]", s, got)
					}
					if _, ok := r.Trailer[s]; ok {
						t.Errorf("trailer %q survived", s)
					}
					if _, ok := r.Trailer["Content-Digest"]; !ok {
						t.Error("unprotected trailer Content-Digest was deleted")
					}

					r.Header["Connection"] = []string{s}
					plan.GuardHopByHop(r)
					if got, ok := r.Header["Connection"]; ok {
						t.Errorf("Connection: %s: Connection = %q, want none", s, got)
					}
				}
				r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/app", nil)
				lookalike := tt.header + "s"
				r.Header["Connection"] = []string{"keep-alive, " + lookalike}
				plan.GuardHopByHop(r)
				if got := r.Header["Connection"]; !slices.Equal(got, []string{"keep-alive, " + lookalike}) {
					t.Errorf("unprotected token %q: Connection = %q", lookalike, got)
				}
			})
		}
	}
}

// TestProtectedNamesAllocations: looking up a name that fits has's stack
// buffer (every usual header name) does not allocate, protected or not.
func TestProtectedNamesAllocations(t *testing.T) {
	plan, err := NewHeaderPlan("", map[string]string{"email": longHeaderName(100)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x_forwarded_user", "X-Forwarded-For", "Accept", longHeaderName(64)} {
		allocs := testing.AllocsPerRun(100, func() { plan.strip.has(name) })
		if allocs != 0 {
			t.Errorf("has(%q): %v allocations, want 0", name, allocs)
		}
	}
}

// TestCheckUpstreamHeaders holds the names of the headers a route sets
// for its upstream to the one rule: an HTTP field name, not a reserved
// one (in any letter case, with _ or . for -), Authorization only as
// set_authorization_header's, and no two settings naming one header.
// NewHeaderPlan and TokenConfig.Validate apply it to their own headers,
// CheckRouteHeaders to all of a route's together.
func TestCheckUpstreamHeaders(t *testing.T) {
	user := func(name string) UpstreamHeader {
		return UpstreamHeader{Setting: SettingHeader, Field: "user", Name: name}
	}
	access := func(name string) UpstreamHeader { return UpstreamHeader{Setting: SettingAccessToken, Name: name} }
	bearer := UpstreamHeader{Setting: SettingBearer, Name: "Authorization"}
	tests := []struct {
		name    string
		headers []UpstreamHeader
		want    string // "" accepts
		at      int    // settings at fault
	}{
		{"usual names", []UpstreamHeader{user("X-App-User"), access("X-App-Token"), bearer}, "", 0},
		{"token characters", []UpstreamHeader{user("X_App.User~1!#$%&'*+^`|")}, "", 0},
		{"leading dash", []UpstreamHeader{user("-App-User")}, "", 0},
		{"long name", []UpstreamHeader{user(longHeaderName(300))}, "", 0},
		{"empty", []UpstreamHeader{access("")}, `pass_access_token: "" is not a header name`, 1},
		{"space", []UpstreamHeader{user("X Bad")}, `header user: "X Bad" is not a header name`, 1},
		{"parentheses", []UpstreamHeader{access("X(A)")}, `"X(A)" is not a header name`, 1},
		{"colon", []UpstreamHeader{user("X-A:b")}, "is not a header name", 1},
		{"non-ASCII", []UpstreamHeader{user("X-Üser")}, "is not a header name", 1},
		{"control character", []UpstreamHeader{user("X-A\r\nX-B")}, "is not a header name", 1},
		{"Cookie", []UpstreamHeader{user("Cookie")}, "header user Cookie: Cookie is reserved", 1},
		{"Cookie in capitals", []UpstreamHeader{access("COOKIE")}, "COOKIE is reserved", 1},
		{"Set-Cookie", []UpstreamHeader{user("set_cookie")}, "set_cookie is reserved", 1},
		{"Host", []UpstreamHeader{user("Host")}, "is reserved", 1},
		{"Connection", []UpstreamHeader{user("Connection")}, "is reserved", 1},
		{"Content-Length", []UpstreamHeader{user("content-length")}, "is reserved", 1},
		{"Transfer-Encoding", []UpstreamHeader{user("Transfer_Encoding")}, "is reserved", 1},
		{"Te", []UpstreamHeader{user("TE")}, "is reserved", 1},
		{"Trailer", []UpstreamHeader{user("Trailer")}, "is reserved", 1},
		{"Upgrade", []UpstreamHeader{user("Upgrade")}, "is reserved", 1},
		{"Keep-Alive", []UpstreamHeader{user("Keep-Alive")}, "is reserved", 1},
		{"Proxy-Authorization", []UpstreamHeader{user("Proxy-Authorization")}, "is reserved", 1},
		{"Proxy-Connection", []UpstreamHeader{user("proxy_connection")}, "is reserved", 1},
		{"X-Forwarded-Host", []UpstreamHeader{user("X-Forwarded-Host")}, "is reserved", 1},
		{"Origin", []UpstreamHeader{user("Origin")}, "is reserved", 1},
		{"Sec-Fetch-Site", []UpstreamHeader{user("Sec-Fetch-Site")}, "is reserved", 1},
		{"X-Original-Uri", []UpstreamHeader{user("X-Original-URI")}, "is reserved", 1},
		{"X-Original-Forwarded-For", []UpstreamHeader{user("x_original_forwarded_for")}, "is reserved", 1},
		{"Authorization for a token header", []UpstreamHeader{access("authorization")}, "Authorization is set only by set_authorization_header", 1},
		{"Authorization for the identity JWT", []UpstreamHeader{{Setting: SettingIdentityJWT, Name: "Authorization"}}, "identity_jwt header Authorization: Authorization is set only by set_authorization_header", 1},
		{"two fields, one header", []UpstreamHeader{user("X-A"), {Setting: SettingHeader, Field: "email", Name: "x_a"}},
			"header user X-A and header email x_a name one header: they need two header names", 2},
		{"token and identity header", []UpstreamHeader{{Setting: SettingHeaderSet, Set: "default", Field: "user", Name: "X-Forwarded-User"}, access("X-Forwarded-User")},
			"headers default (user: X-Forwarded-User) and pass_access_token X-Forwarded-User name one header", 2},
		{"identity JWT and token header", []UpstreamHeader{access("X-T"), {Setting: SettingIdentityJWT, Name: "x-t"}},
			"pass_access_token X-T and identity_jwt header x-t name one header", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckUpstreamHeaders(tt.headers...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("error %v is not a *HeaderError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
			if len(he.At) != tt.at {
				t.Errorf("error names %d settings, want %d: %v", len(he.At), tt.at, he.At)
			}
		})
	}
}

// TestRouteHeadersAllChecked: the rule reaches every header of a route,
// through the functions that take them: NewHeaderPlan (identity headers),
// TokenConfig.Validate (token headers), SignerConfig.Validate (the
// identity JWT's) and CheckRouteHeaders (all of them together).
func TestRouteHeadersAllChecked(t *testing.T) {
	if _, err := NewHeaderPlan("", map[string]string{"user": "Cookie"}); err == nil {
		t.Error("NewHeaderPlan: header user Cookie accepted")
	}
	if _, err := NewHeaderPlan("", map[string]string{"email": "x_forwarded_user"}); err == nil || !strings.Contains(err.Error(), "name one header") {
		t.Errorf("NewHeaderPlan: email in the user header: %v", err)
	}
	if _, err := NewHeaderPlan("", map[string]string{"email": "X-Forwarded-User", "user": "X-App-User"}); err != nil {
		t.Errorf("NewHeaderPlan: fields trading names: %v", err)
	}
	if err := (TokenConfig{AccessHeader: "X-T", IDHeader: "x_t"}).Validate(); err == nil || !strings.Contains(err.Error(), "two header names") {
		t.Errorf("TokenConfig: one header for both tokens: %v", err)
	}
	if err := (TokenConfig{IDHeader: "Host"}).Validate(); err == nil {
		t.Error("TokenConfig: pass_id_token Host accepted")
	}
	if err := (TokenConfig{AccessHeader: "Authorization"}).Validate(); err == nil || !strings.Contains(err.Error(), "set_authorization_header") {
		t.Errorf("TokenConfig: pass_access_token Authorization: %v", err)
	}
	if err := (TokenConfig{Bearer: true}).Validate(); err != nil {
		t.Errorf("TokenConfig: set_authorization_header: %v", err)
	}
	if err := (SignerConfig{Header: "Set-Cookie"}).Validate(); err == nil {
		t.Error("SignerConfig: identity_jwt header Set-Cookie accepted")
	}
	plan, err := NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		tokens TokenConfig
		signer *SignerConfig
		want   string
	}{
		{"defaults", TokenConfig{AccessHeader: DefaultAccessTokenHeader, IDHeader: DefaultIDTokenHeader, Bearer: true}, &SignerConfig{}, ""},
		{"token in an identity header", TokenConfig{AccessHeader: "X-Forwarded-Email"}, nil, "headers default (email: X-Forwarded-Email) and pass_access_token X-Forwarded-Email"},
		{"identity JWT in an identity header", TokenConfig{}, &SignerConfig{Header: "x-forwarded-idp"}, "headers default (idp: X-Forwarded-Idp) and identity_jwt header x-forwarded-idp"},
		{"identity JWT in the default token header", TokenConfig{AccessHeader: DefaultAccessTokenHeader}, &SignerConfig{Header: "X-Forwarded-Access-Token"}, "name one header"},
		{"identity JWT in Authorization", TokenConfig{Bearer: true}, &SignerConfig{Header: "Authorization"}, "Authorization is set only by set_authorization_header"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRouteHeaders(plan, tt.tokens, tt.signer)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// identityOf is the identity of a real session (bolt, session.Manager) of
// a user whose every field is distinct, so that a header carrying the
// wrong field shows.
func identityOf(t *testing.T) *session.Identity {
	t.Helper()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, time.Now)
	u := &store.User{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Groups: []string{"eng", "ops"},
		Active: true, Source: store.SourceJIT}
	if err := db.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(u) }); err != nil {
		t.Fatal(err)
	}
	token, _, err := m.Create(context.Background(), u, "okta", store.LogoutInfo{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Resolve(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if id.UserID == "" || id.UserID == id.Email {
		t.Fatalf("user id %q must differ from the email", id.UserID)
	}
	return id
}

// TestHeaderSetsCarryTheirFields: each header set (docs/configuration.md)
// sends exactly its headers, each with its own field's value
// (preferred_username is the email, as oauth2-proxy sends it); "" is the
// default set; an override renames a field's header, and "" or "-" sends
// that field in none; an unknown set or field fails the configuration.
func TestHeaderSetsCarryTheirFields(t *testing.T) {
	id := identityOf(t)
	oauth2Proxy := map[string]string{
		"X-Forwarded-User":               id.UserID,
		"X-Forwarded-Email":              "ada@example.com",
		"X-Forwarded-Preferred-Username": "ada@example.com",
		"X-Forwarded-Groups":             "eng,ops",
	}
	withDefault := func(edit func(map[string]string)) map[string]string {
		m := maps.Clone(oauth2Proxy)
		m["X-Forwarded-First-Name"] = "Ada"
		m["X-Forwarded-Last-Name"] = "Lovelace"
		m["X-Forwarded-Idp"] = "okta"
		if edit != nil {
			edit(m)
		}
		return m
	}
	for _, tt := range []struct {
		name      string
		set       string
		overrides map[string]string
		want      map[string]string
	}{
		{"default", "default", nil, withDefault(nil)},
		{"no set named is the default", "", nil, withDefault(nil)},
		{"oauth2_proxy", "oauth2_proxy", nil, oauth2Proxy},
		{"none", "none", nil, map[string]string{}},
		{"renamed", "", map[string]string{"user": "X-App-User"}, withDefault(func(m map[string]string) {
			delete(m, "X-Forwarded-User")
			m["X-App-User"] = id.UserID
		})},
		{"dash sends none", "", map[string]string{"groups": "-"}, withDefault(func(m map[string]string) { delete(m, "X-Forwarded-Groups") })},
		{"empty sends none", "", map[string]string{"idp": ""}, withDefault(func(m map[string]string) { delete(m, "X-Forwarded-Idp") })},
		{"added to none", "none", map[string]string{"last_name": "X-Surname"}, map[string]string{"X-Surname": "Lovelace"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := NewHeaderPlan(tt.set, tt.overrides)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			plan.SetIdentity(h, id)
			got := make(map[string]string, len(h))
			for k, v := range h {
				got[k] = strings.Join(v, "|")
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("headers %v, want %v", got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		set       string
		overrides map[string]string
		want      string
	}{
		{"oauth2-proxy", nil, `unknown header set "oauth2-proxy"`},
		{"", map[string]string{"username": "X-App-User"}, `unknown identity field "username"`},
		{"none", map[string]string{"mail": "-"}, `unknown identity field "mail"`},
	} {
		if _, err := NewHeaderPlan(tt.set, tt.overrides); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewHeaderPlan(%q, %v) = %v, want an error naming %s", tt.set, tt.overrides, err, tt.want)
		}
	}
}

// TestReservedHeaderNames: every name the rule reserves (headers.go,
// reservedHeaders) is refused as a header a route sets, in any letter
// case and with _ for -, whichever setting names it; names that merely
// start alike are not. Without it, dropping X-Forwarded-For (a route
// overwriting the client address the app logs) from the list passed
// every test.
func TestReservedHeaderNames(t *testing.T) {
	reserved := []string{
		"Connection", "Content-Length", "Content-Type", "Content-Encoding", "Expect", "Host", "Keep-Alive",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Via", "Date",
		"Accept-Charset", "Accept-Encoding", "Access-Control-Request-Headers", "Access-Control-Request-Method",
		"Cookie2", "Dnt", "Origin", "Referer",
		"Cookie", "Set-Cookie",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Method", "X-Forwarded-Uri",
		"X-Real-Ip", "X-Requested-With", "Accept",
		"Proxy-Authorization", "Proxy-Authenticate", "Sec-Fetch-Site", "Sec-Ch-Ua",
	}
	for _, name := range reserved {
		for _, spelling := range []string{name, strings.ToUpper(name), strings.ToLower(strings.ReplaceAll(name, "-", "_"))} {
			for _, u := range []UpstreamHeader{
				{Setting: SettingHeader, Field: "user", Name: spelling},
				{Setting: SettingAccessToken, Name: spelling},
				{Setting: SettingIdentityJWT, Name: spelling},
			} {
				err := CheckUpstreamHeaders(u)
				if err == nil || !strings.Contains(err.Error(), spelling+" is reserved") {
					t.Errorf("%s: %v, want %s refused as reserved", u, err, spelling)
				}
			}
		}
		if _, err := NewHeaderPlan("none", map[string]string{"email": name}); err == nil {
			t.Errorf("NewHeaderPlan: header email %s accepted", name)
		}
	}
	for _, name := range []string{"X-Forwarded-Fort", "Accepted", "X-Real-Ip-Country", "Hosts", "Dates", "X-Sec-User", "X-Proxy-User", "Cookies"} {
		if err := CheckUpstreamHeaders(UpstreamHeader{Setting: SettingHeader, Field: "user", Name: name}); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

// TestStripInboundFoldsEveryLetter: a configured name is stripped in a
// client's spelling whatever letters it holds, A and Z included: the
// folding rule lowercases the whole ASCII range.
func TestStripInboundFoldsEveryLetter(t *testing.T) {
	const name = "X-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	plan, err := NewHeaderPlan("none", map[string]string{"user": name})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{name, strings.ToLower(name), "x_abcdefghijklmnopqrstuvwxyZ", "X.Abcdefghijklmnopqrstuvwxyz"} {
		h := http.Header{s: {"admin"}, "X-Abcdefghijklmnopqrstuvwxy": {"kept"}}
		plan.StripInbound(h)
		if _, ok := h[s]; ok {
			t.Errorf("client's %q survived StripInbound", s)
		}
		if _, ok := h["X-Abcdefghijklmnopqrstuvwxy"]; !ok {
			t.Errorf("a shorter name was stripped along with %q", s)
		}
	}
}

// TestProtectedHeadersIsACopy: a caller that edits the list it got (the
// examples' tests append Cookie to it) cannot change what routes strip.
func TestProtectedHeadersIsACopy(t *testing.T) {
	got := ProtectedHeaders()
	for i := range got {
		got[i] = "X-Not-Protected"
	}
	plan, err := NewHeaderPlan("none", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Forwarded-User": {"admin"}}
	plan.StripInbound(h)
	if _, ok := h["X-Forwarded-User"]; ok {
		t.Error("X-Forwarded-User reaches the upstream after a caller edited ProtectedHeaders' answer")
	}
	if again := ProtectedHeaders(); again[0] != "X-Forwarded-User" {
		t.Errorf("ProtectedHeaders()[0] = %q after a caller edited its answer", again[0])
	}
}

// TestSetIdentityAllocations: setting the identity headers on a request
// allocates nothing: the value slices are the session's, built once.
func TestSetIdentityAllocations(t *testing.T) {
	id := identityOf(t)
	plan, err := NewHeaderPlan("", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := make(http.Header, 16)
	allocs := testing.AllocsPerRun(100, func() { plan.SetIdentity(h, id) })
	if allocs != 0 {
		t.Errorf("SetIdentity: %v allocations, want 0", allocs)
	}
}

// TestHeaderPlanUpstreamNamesTheSetting: each header a plan sets names the
// setting it comes from, so that a config error points at the right line:
// the set's own names "headers <set>", a renamed field "header <field>".
func TestHeaderPlanUpstreamNamesTheSetting(t *testing.T) {
	plan, err := NewHeaderPlan("oauth2_proxy", map[string]string{"email": "X-App-Email", "groups": "-"})
	if err != nil {
		t.Fatal(err)
	}
	want := []UpstreamHeader{
		{Setting: SettingHeaderSet, Field: "user", Set: "oauth2_proxy", Name: "X-Forwarded-User"},
		{Setting: SettingHeader, Field: "email", Name: "X-App-Email"},
		{Setting: SettingHeaderSet, Field: "preferred_username", Set: "oauth2_proxy", Name: "X-Forwarded-Preferred-Username"},
	}
	if got := plan.Upstream(); !slices.Equal(got, want) {
		t.Errorf("Upstream() = %+v, want %+v", got, want)
	}

	// Two settings naming one header: the error points at both lines.
	_, err = NewHeaderPlan("default", map[string]string{"email": "x_forwarded_user"})
	var he *HeaderError
	if !errors.As(err, &he) || len(he.At) != 2 {
		t.Fatalf("header email x_forwarded_user: %v, want a HeaderError at two settings", err)
	}
	if k0, k1 := he.At[0].Key(), he.At[1].Key(); k0 != "headers" || k1 != "header email" {
		t.Errorf("the error is at %q and %q, want \"headers\" and \"header email\"", k0, k1)
	}
}
