package idp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/fuzzseed"
)

// The flow-cookie fuzz target decodes arbitrary Cookie headers for
// arbitrary flow IDs with a fixed key and a fixed clock, so that cookies
// sealed once (the committed seeds) stay valid.
var (
	fuzzFlowKey = bytes.Repeat([]byte{0x5a}, 32)
	fuzzFlowNow = time.Unix(1_750_000_000, 0)
)

// fuzzFlowState is what every cookie the fuzz target seals carries: the
// flow ID it was sealed for, so that a decode can be checked against it.
type fuzzFlowState struct {
	Flow string `json:"flow"`
	Data string `json:"data"`
}

// fuzzFlowIDs are flow IDs of the shapes the SAML and OIDC adapters use.
var fuzzFlowIDs = []string{
	"saml/okta/login/JBSWY3DPEHPK3PXPJBSWY3DPEH",
	"saml/okta/logout/JBSWY3DPEHPK3PXPJBSWY3DPEH",
	"oidc/entra/KRUGS4ZANFZSA5DIMUQGM3DP",
}

func fuzzFlowCookies(tb testing.TB, clock *time.Time) *idp.FlowCookies {
	tb.Helper()
	f, err := idp.NewFlowCookies(fuzzFlowKey)
	if err != nil {
		tb.Fatal(err)
	}
	f.Now = func() time.Time { return *clock }
	return f
}

func fuzzFlowRequest(secure bool) *http.Request {
	if secure {
		return httptest.NewRequest(http.MethodGet, "https://app.example.com/.sso/oidc/entra/callback", nil)
	}
	return httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/.sso/oidc/entra/callback", nil)
}

// sealFlow returns the Cookie header pair ("name=value") Save sets for
// flowID on a site like secure's.
func sealFlow(tb testing.TB, f *idp.FlowCookies, flowID, data string, secure bool) (string, error) {
	tb.Helper()
	rec := httptest.NewRecorder()
	if err := f.Save(rec, fuzzFlowRequest(secure), flowID, fuzzFlowState{Flow: flowID, Data: data}, 10*time.Minute, http.SameSiteLaxMode); err != nil {
		return "", err
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		tb.Fatalf("Save set %d cookies, want 1", len(cs))
	}
	return cs[0].Name + "=" + cs[0].Value, nil
}

// TestFlowCookieFuzzSeeds writes the genuine cookies of the committed corpus
// (with WRITE_FUZZ_SEEDS=1) and checks on every run that they still decode:
// a corpus whose cookies no longer open would only ever test refusals.
func TestFlowCookieFuzzSeeds(t *testing.T) {
	clock := fuzzFlowNow
	f := fuzzFlowCookies(t, &clock)
	dir := filepath.Join("testdata", "fuzz")
	if fuzzseed.Writing() {
		for i, id := range fuzzFlowIDs {
			for _, secure := range []bool{false, true} {
				pair, err := sealFlow(t, f, id, "state", secure)
				if err != nil {
					t.Fatal(err)
				}
				name := strings.NewReplacer("/", "-").Replace(id)
				if secure {
					name += "-secure"
				}
				if err := fuzzseed.Write(dir, "FuzzFlowCookieTake", "ok-"+name, "theme=dark; "+pair+"; lang=en", id, secure); err != nil {
					t.Fatal(err)
				}
				// The same sealed value under the cookie name of the next
				// flow ID: must be refused.
				other := fuzzFlowIDs[(i+1)%len(fuzzFlowIDs)]
				_, value, _ := strings.Cut(pair, "=")
				renamed := f.CookieName(fuzzFlowRequest(secure), other) + "=" + value
				if err := fuzzseed.Write(dir, "FuzzFlowCookieTake", "bad-other-flow-"+name, renamed, other, secure); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	seeds, err := filepath.Glob(filepath.Join(dir, "FuzzFlowCookieTake", "ok-*"))
	if err != nil || len(seeds) != 2*len(fuzzFlowIDs) {
		t.Fatalf("committed genuine flow cookie seeds: %d, %v (regenerate with %s=1)", len(seeds), err, fuzzseed.EnvWrite)
	}
	for _, path := range seeds {
		v, err := fuzzseed.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		header, id, secure := v[0].(string), v[1].(string), v[2].(bool)
		if got, err := takeFlow(f, header, id, secure); err != nil || got.Flow != id {
			t.Errorf("%s: committed genuine cookie: %+v, %v", filepath.Base(path), got, err)
		}
	}
}

// viaJSON is s as it comes back from JSON: invalid UTF-8 replaced.
func viaJSON(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func takeFlow(f *idp.FlowCookies, cookieHeader, flowID string, secure bool) (fuzzFlowState, error) {
	r := fuzzFlowRequest(secure)
	r.Header["Cookie"] = strings.Split(cookieHeader, "\n")
	var got fuzzFlowState
	err := f.Take(httptest.NewRecorder(), r, flowID, &got)
	return got, err
}

// FuzzFlowCookieTake feeds Take arbitrary Cookie headers (several header
// lines when the input has newlines) and flow IDs, and then round-trips a
// state through Save and Take. Properties:
//   - every failure is ErrFlowMissing, ErrFlowExpired or ErrFlowInvalid;
//     ErrFlowMissing exactly when no cookie of the flow's name was sent;
//   - a decoded state always belongs to the flow ID asked for, never to
//     another (the cookie name and flow ID are bound into the seal);
//   - a cookie of the flow's name, valid or not, is cleared in the answer
//     (single use per browser), on the path it was set for;
//   - Save then Take returns what was saved; the same cookie presented for
//     another flow ID, or after its lifetime, is refused.
func FuzzFlowCookieTake(f *testing.F) {
	clock := fuzzFlowNow
	fc := fuzzFlowCookies(f, &clock)
	for _, id := range fuzzFlowIDs {
		for _, secure := range []bool{false, true} {
			pair, err := sealFlow(f, fc, id, "state", secure)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(pair, id, secure)
			f.Add("a=b; "+pair+"\n"+pair, id, secure)
			f.Add(pair+"x", id, secure)
		}
	}
	f.Add("", "", false)
	f.Add("sso_flow_=", "x", false)
	f.Add(`__Secure-sso_flow_AAAAAAAAAAAAAAAAAAAAAA="AAAA"`, "oidc/x/y", true)

	f.Fuzz(func(t *testing.T, cookieHeader, flowID string, secure bool) {
		clock = fuzzFlowNow
		r := fuzzFlowRequest(secure)
		r.Header["Cookie"] = strings.Split(cookieHeader, "\n")
		name := fc.CookieName(r, flowID)
		sent := len(r.CookiesNamed(name)) > 0

		rec := httptest.NewRecorder()
		var got fuzzFlowState
		err := fc.Take(rec, r, flowID, &got)
		switch {
		case err == nil:
			if !sent {
				t.Fatalf("Take succeeded without a cookie named %q", name)
			}
			if got.Flow != viaJSON(flowID) {
				t.Fatalf("Take for flow %q decoded the state of flow %q", flowID, got.Flow)
			}
		case errors.Is(err, idp.ErrFlowMissing):
			if sent {
				t.Fatalf("ErrFlowMissing although %q was sent", name)
			}
		case errors.Is(err, idp.ErrFlowExpired), errors.Is(err, idp.ErrFlowInvalid):
			if !sent {
				t.Fatalf("%v without a cookie named %q", err, name)
			}
		default:
			t.Fatalf("untyped error: %v", err)
		}
		set := rec.Result().Cookies()
		if !sent {
			if len(set) != 0 {
				t.Fatalf("no flow cookie sent, but Take set %v", set)
			}
		} else if len(set) != 1 || set[0].Name != name || set[0].MaxAge >= 0 || set[0].Path != "/" || !set[0].HttpOnly {
			t.Fatalf("flow cookie %q not cleared: %v", name, set)
		}

		// Round trip of an arbitrary state under an arbitrary flow ID.
		pair, err := sealFlow(t, fc, flowID, cookieHeader, secure)
		switch {
		case flowID == "" || errors.Is(err, idp.ErrFlowTooLarge):
			if err == nil {
				t.Fatal("Save accepted an empty flow ID")
			}
			return
		case err != nil:
			t.Fatalf("Save: %v", err)
		}
		back, err := takeFlow(fc, pair, flowID, secure)
		if err != nil || back.Flow != viaJSON(flowID) || back.Data != viaJSON(cookieHeader) {
			t.Fatalf("round trip: got %+v, %v", back, err)
		}
		// The same sealed value under the name of another flow.
		other := flowID + "/other"
		_, value, _ := strings.Cut(pair, "=")
		if _, err := takeFlow(fc, fc.CookieName(fuzzFlowRequest(secure), other)+"="+value, other, secure); !errors.Is(err, idp.ErrFlowInvalid) {
			t.Fatalf("a cookie sealed for %q opened for %q: %v", flowID, other, err)
		}
		clock = fuzzFlowNow.Add(10 * time.Minute)
		if _, err := takeFlow(fc, pair, flowID, secure); !errors.Is(err, idp.ErrFlowExpired) {
			t.Fatalf("a cookie past its lifetime: %v", err)
		}
	})
}
