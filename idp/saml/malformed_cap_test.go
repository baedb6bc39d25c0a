package saml

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestMalformedRefusalCapped: anyone may post to the ACS, or send the SLO
// endpoint, a document with "<!" and a 100 KB entity reference, no flow
// cookie needed; the saml_malformed refusal's error, which goes to a WARN
// line, is capped (as crewjam's errors are) and cut at a newline, not the
// attacker's text whole.
func TestMalformedRefusalCapped(t *testing.T) {
	h := newHarness(t)
	doc := "<!-- x --><Response>&" + strings.Repeat("A", 100000) + "\x1b[2J\nFAKE;</Response>"
	check := func(where string, err error) {
		t.Helper()
		if codeOf(err) != CodeMalformed {
			t.Fatalf("%s: got %v, want %s", where, err, CodeMalformed)
		}
		if msg := err.Error(); len(msg) > 600 || strings.Contains(msg, "\nFAKE") {
			t.Errorf("%s: the refusal's error is %d bytes: %.120q…", where, len(msg), msg)
		}
	}
	_, _, err := h.callback(t, pending{}, url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(doc))}})
	check("ACS", err)
	r := httptest.NewRequest(http.MethodGet, h.slo()+"?"+url.Values{"SAMLRequest": {deflateB64(t, doc)}}.Encode(), nil)
	check("SLO", h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions))
}
