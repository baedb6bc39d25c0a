package idp_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

type flowState struct {
	Nonce    string `json:"n"`
	ReturnTo string `json:"r"`
}

var testKey = bytes.Repeat([]byte{7}, 32)

// testFlows is FlowCookies plus the kind of site the test's requests reach:
// an https one, or a plain-http loopback one.
type testFlows struct {
	*idp.FlowCookies
	secure bool
}

func (f *testFlows) req() *http.Request {
	if f.secure {
		return httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/x/callback", nil)
	}
	return httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/.sso/oidc/x/callback", nil)
}

func newFlows(t *testing.T, key []byte, secure bool, now *time.Time) *testFlows {
	t.Helper()
	f, err := idp.NewFlowCookies(key)
	if err != nil {
		t.Fatal(err)
	}
	f.Now = func() time.Time { return *now }
	return &testFlows{f, secure}
}

// save runs Save and returns the cookie it set.
func save(t *testing.T, f *testFlows, flowID string, v any, sameSite http.SameSite) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := f.Save(rec, f.req(), flowID, v, 10*time.Minute, sameSite); err != nil {
		t.Fatal(err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("Save set %d cookies, want 1", len(cs))
	}
	return cs[0]
}

// take runs Take with the given cookies and returns the decoded state, the
// Set-Cookie headers it wrote and its error.
func take(f *testFlows, flowID string, cookies ...*http.Cookie) (flowState, []*http.Cookie, error) {
	req := f.req()
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	var got flowState
	err := f.Take(rec, req, flowID, &got)
	return got, rec.Result().Cookies(), err
}

// TestFlowCookieRoundTripAndAttributes: on https a flow cookie is
// __Host- (Secure, Path=/, no Domain); a SameSite=None one (SAML) is Secure
// with None even on a plain-http loopback site, so a cross-site POST does
// not depend on a browser's grace period for cookies without SameSite.
func TestFlowCookieRoundTripAndAttributes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name       string
		secure     bool
		sameSite   http.SameSite
		wantSecure bool
		wantPrefix string
	}{
		{"oidc lax on https", true, http.SameSiteLaxMode, true, "__Host-sso_flow_"},
		{"saml none on https", true, http.SameSiteNoneMode, true, "__Host-sso_flow_"},
		{"saml none on loopback stays none, and so secure", false, http.SameSiteNoneMode, true, "sso_flow_"},
		{"oidc lax on loopback", false, http.SameSiteLaxMode, false, "sso_flow_"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlows(t, testKey, tc.secure, &now)
			want := flowState{Nonce: "nonce-secret-1", ReturnTo: "/app?x=1"}
			c := save(t, f, "flow-1", want, tc.sameSite)
			if !c.HttpOnly || c.Secure != tc.wantSecure || c.Path != "/" || c.Domain != "" || c.MaxAge != 600 || c.SameSite != tc.sameSite {
				t.Errorf("cookie attributes = %+v", c)
			}
			if !strings.HasPrefix(c.Name, tc.wantPrefix) || !idp.IsFlowCookie(c.Name) || c.Name != f.CookieName(f.req(), "flow-1") {
				t.Errorf("cookie name %q, want prefix %q", c.Name, tc.wantPrefix)
			}
			raw, err := base64.RawURLEncoding.DecodeString(c.Value)
			if err != nil || bytes.Contains(raw, []byte(want.Nonce)) || bytes.Contains(raw, []byte(want.ReturnTo)) {
				t.Errorf("cookie value is not encrypted: %q", c.Value)
			}
			got, set, err := take(f, "flow-1", c)
			if err != nil || got != want {
				t.Fatalf("Take = %+v, %v; want %+v", got, err, want)
			}
			if len(set) != 1 || set[0].Name != c.Name || set[0].MaxAge >= 0 || set[0].Path != "/" || !set[0].Secure {
				t.Errorf("Take did not clear the cookie: %+v", set)
			}
		})
	}
}

func TestFlowCookieRejects(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name    string
		cookies func(t *testing.T, f *testFlows) []*http.Cookie
		advance time.Duration
		want    error
	}{
		{"missing", func(t *testing.T, f *testFlows) []*http.Cookie { return nil }, 0, idp.ErrFlowMissing},
		{"expired", func(t *testing.T, f *testFlows) []*http.Cookie {
			return []*http.Cookie{save(t, f, "flow-1", flowState{}, http.SameSiteLaxMode)}
		}, 10*time.Minute + time.Second, idp.ErrFlowExpired},
		{"tampered", func(t *testing.T, f *testFlows) []*http.Cookie {
			c := save(t, f, "flow-1", flowState{Nonce: "n"}, http.SameSiteLaxMode)
			b := []byte(c.Value)
			b[len(b)/2] ^= 1
			if b[len(b)/2] == '-' || b[len(b)/2] == '_' { // keep it base64url
				b[len(b)/2] = 'A'
			}
			c.Value = string(b)
			return []*http.Cookie{c}
		}, 0, idp.ErrFlowInvalid},
		{"garbage", func(t *testing.T, f *testFlows) []*http.Cookie {
			return []*http.Cookie{{Name: f.CookieName(f.req(), "flow-1"), Value: "not-base64!"}}
		}, 0, idp.ErrFlowInvalid},
		{"swapped from another flow", func(t *testing.T, f *testFlows) []*http.Cookie {
			c := save(t, f, "flow-2", flowState{Nonce: "other tab"}, http.SameSiteLaxMode)
			c.Name = f.CookieName(f.req(), "flow-1")
			return []*http.Cookie{c}
		}, 0, idp.ErrFlowInvalid},
		{"other key", func(t *testing.T, f *testFlows) []*http.Cookie {
			now := start
			other := newFlows(t, bytes.Repeat([]byte{8}, 32), false, &now)
			return []*http.Cookie{save(t, other, "flow-1", flowState{}, http.SameSiteLaxMode)}
		}, 0, idp.ErrFlowInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := start
			f := newFlows(t, testKey, false, &now)
			cs := tc.cookies(t, f)
			now = now.Add(tc.advance)
			_, set, err := take(f, "flow-1", cs...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Take error = %v, want %v", err, tc.want)
			}
			if len(cs) > 0 && (len(set) != 1 || set[0].MaxAge >= 0) {
				t.Errorf("a rejected cookie must still be cleared, Set-Cookie: %+v", set)
			}
		})
	}
}

func TestFlowCookieSeveralTabsAndDuplicates(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFlows(t, testKey, true, &now)
	a := save(t, f, "tab-a", flowState{Nonce: "a"}, http.SameSiteLaxMode)
	b := save(t, f, "tab-b", flowState{Nonce: "b"}, http.SameSiteLaxMode)
	if a.Name == b.Name {
		t.Fatal("two flows share a cookie name")
	}
	// A tossed cookie of the same name arrives first; the genuine one wins.
	tossed := &http.Cookie{Name: b.Name, Value: "AAAA"}
	for _, tc := range []struct {
		id      string
		cookies []*http.Cookie
		want    string
	}{
		{"tab-b", []*http.Cookie{a, tossed, b}, "b"},
		{"tab-a", []*http.Cookie{a, b}, "a"},
	} {
		got, _, err := take(f, tc.id, tc.cookies...)
		if err != nil || got.Nonce != tc.want {
			t.Errorf("Take(%s) = %+v, %v", tc.id, got, err)
		}
	}
}

// TestFlowCookiesBounded: sign-ins started and never finished (or started
// in a loop by another site's page) leave a cookie each; the browser's
// Cookie header for the site must not grow until servers refuse it
// (431), so Save expires the largest flow cookies beyond 8 KiB or 8
// flows, and leaves a few ordinary ones alone.
func TestFlowCookiesBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFlows(t, testKey, true, &now)
	long := "/" + strings.Repeat("a", 2000)
	// held plays the browser: it keeps what Save sets and drops what
	// Save expires.
	held := map[string]*http.Cookie{}
	begin := func(flowID, returnTo string) {
		t.Helper()
		req := f.req()
		for _, c := range held {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		if err := f.Save(rec, req, flowID, flowState{ReturnTo: returnTo}, 10*time.Minute, http.SameSiteNoneMode); err != nil {
			t.Fatal(err)
		}
		for _, c := range rec.Result().Cookies() {
			if c.MaxAge < 0 {
				delete(held, c.Name)
			} else {
				held[c.Name] = c
			}
		}
	}
	headerSize := func() int {
		n := 0
		for _, c := range held {
			n += len(c.Name) + len(c.Value) + 2
		}
		return n
	}

	begin("small-1", "/inbox")
	begin("small-2", "/reports?q=1")
	small := map[string]bool{}
	for name := range held {
		small[name] = true
	}
	for i := range 50 {
		begin(fmt.Sprintf("planted-%d", i), long)
		// makeRoom's bound: at most 8 KiB of names and values (headerSize
		// adds the two bytes of "; " each cookie takes in the header).
		if n := headerSize(); n > 8<<10+2*len(held) {
			t.Fatalf("after %d large sign-ins the flow cookies take %d bytes of the Cookie header", i+1, n)
		}
	}
	for name := range small {
		if held[name] == nil {
			t.Errorf("an ordinary sign-in's small cookie was expired to make room for large ones")
		}
	}

	// The count bound holds after every sign-in, not only on average:
	// with 8 held, the ninth sign-in expires one.
	for i := range 20 {
		begin(fmt.Sprintf("tab-%d", i), "/")
		if len(held) > 8 {
			t.Fatalf("after tab %d the browser holds %d flow cookies, want at most 8", i, len(held))
		}
	}
	// The newest sign-in still finishes.
	got, _, err := take(f, "tab-19", slices.Collect(maps.Values(held))...)
	if err != nil || got.ReturnTo != "/" {
		t.Errorf("the newest sign-in: %+v, %v", got, err)
	}
}

// TestFlowCookieReturnPathFullSize: a return path's & < > cost the flow
// cookie a byte each, not JSON's six-byte HTML escape (\u0026), so a
// 2.5 KB deep link whose query is full of them fits, and comes back
// unchanged.
func TestFlowCookieReturnPathFullSize(t *testing.T) {
	now := time.Now()
	f := newFlows(t, testKey, true, &now)
	want := flowState{Nonce: "nonce", ReturnTo: "/reports?" + strings.Repeat("q=a<b>&", 360)}
	got, _, err := take(f, "long", save(t, f, "long", want, http.SameSiteLaxMode))
	if err != nil || got != want {
		t.Errorf("a %d-byte return path: Take = %.60v, %v", len(want.ReturnTo), got, err)
	}
}

func TestFlowCookieConfig(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		key  []byte
		ok   bool
	}{
		{"short key", make([]byte, 16), false},
		{"32-byte key", testKey, true},
		{"long key", make([]byte, 64), true},
	} {
		_, err := idp.NewFlowCookies(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}

	f := newFlows(t, testKey, true, &now)
	rec := httptest.NewRecorder()
	if err := f.Save(rec, f.req(), "big", flowState{ReturnTo: strings.Repeat("x", 4000)}, time.Minute, http.SameSiteLaxMode); !errors.Is(err, idp.ErrFlowTooLarge) {
		t.Errorf("oversized flow: err = %v, want ErrFlowTooLarge", err)
	}
	if len(rec.Result().Cookies()) != 0 {
		t.Error("oversized flow still set a cookie")
	}
	if err := f.Save(rec, f.req(), "", flowState{}, time.Minute, http.SameSiteLaxMode); err == nil {
		t.Error("empty flow ID accepted")
	}
	// A ttl under a second would set a cookie that has expired by the
	// callback, so every sign-in would fail as flow expired.
	for _, ttl := range []time.Duration{0, 999 * time.Millisecond, -time.Minute} {
		rec := httptest.NewRecorder()
		if err := f.Save(rec, f.req(), "flow", flowState{Nonce: "n"}, ttl, http.SameSiteLaxMode); err == nil {
			t.Errorf("ttl %v accepted", ttl)
		}
		if len(rec.Result().Cookies()) != 0 {
			t.Errorf("ttl %v: a cookie was set", ttl)
		}
	}
}

// TestIsLoopbackHost: only this machine's names count as loopback (they
// get cookies without Secure); anything else, however spelled, does not.
func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost:8080": true, "127.0.0.1": true, "127.1.2.3:443": true,
		"[::1]": true, "[::1]:8443": true, "::1": true, "[::ffff:127.0.0.1]:80": true,
		"example.com": false, "example.com:80": false, "10.0.0.1": false, "[::2]:80": false,
		"127.0.0.1.example.com": false, "localhost.example.com": false, "[fe80::1%25eth0]": false,
		"[::1%eth0]:80": false, "": false, "[]": false, ":80": false,
	} {
		if got := idp.IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
	for _, host := range []string{"127.0.0.1:8080", "127.0.0.1", "localhost"} {
		if n := testing.AllocsPerRun(100, func() { idp.IsLoopbackHost(host) }); n != 0 {
			t.Errorf("IsLoopbackHost(%q) allocates %v times per call", host, n)
		}
	}
}
