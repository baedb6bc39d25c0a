package idp

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFlowCookieTossedNamesIgnoredOnHTTPS plants, on an https site, flow
// cookies a sibling subdomain could set (Domain=.example.com): under the
// __Secure- name of earlier versions and under the plain name. Each is
// sealed with the gateway's own key for its name, the worst case (an
// attacker replaying a cookie the gateway issued to them). Take must read
// only the __Host- name, which browsers never accept from a sibling, so
// each is missing; the genuine __Host- cookie is accepted.
func TestFlowCookieTossedNamesIgnoredOnHTTPS(t *testing.T) {
	f, err := NewFlowCookies([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	const flowID = "saml/test/login/relay"
	req := func() *http.Request {
		return httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/saml/test/acs", nil)
	}
	genuine := f.CookieName(req(), flowID)
	if !strings.HasPrefix(genuine, hostPrefix+cookieBase) {
		t.Fatalf("https flow cookie is %q, want the %s prefix", genuine, hostPrefix)
	}
	bare := strings.TrimPrefix(genuine, hostPrefix)
	payload, _ := json.Marshal(map[string]string{"r": "/attacker"})
	for _, name := range []string{legacyPrefix + bare, bare, genuine} {
		t.Run(name[:strings.Index(name, cookieBase)+len(cookieBase)], func(t *testing.T) {
			value, err := f.seal(name, flowID, payload, time.Now().Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			r := req()
			r.AddCookie(&http.Cookie{Name: name, Value: value})
			var got map[string]string
			err = f.Take(httptest.NewRecorder(), r, flowID, &got)
			switch {
			case name == genuine && err != nil:
				t.Errorf("the genuine __Host- cookie was refused: %v", err)
			case name != genuine && !errors.Is(err, ErrFlowMissing):
				t.Errorf("a tossed cookie named %s was read: err = %v, state = %v", name, err, got)
			}
		})
	}
}

// TestMarshalFlowSpendsNoByteOnEscapes: the flow cookie's payload is the
// flow's JSON byte for byte, its & < > unescaped and nothing after it (no
// encoder's newline): every byte of the size-limited cookie is the return
// path's to use.
func TestMarshalFlowSpendsNoByteOnEscapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"a plain return path", FlowReturn{ReturnTo: "/reports"}, `{"r":"/reports"}`},
		{"a query's & < >", FlowReturn{ReturnTo: "/r?a=1&b=<2>"}, `{"r":"/r?a=1&b=<2>"}`},
		{"a quote still escaped", FlowReturn{ReturnTo: `/r?q="x"`}, `{"r":"/r?q=\"x\""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := marshalFlow(tc.v)
			if err != nil || string(got) != tc.want {
				t.Errorf("marshalFlow = %q, %v; want %q", got, err, tc.want)
			}
			var back FlowReturn
			if err := json.Unmarshal(got, &back); err != nil || back != tc.v {
				t.Errorf("read back %v, %v; want %v", back, err, tc.v)
			}
		})
	}
}
