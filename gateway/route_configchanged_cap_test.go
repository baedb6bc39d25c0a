package gateway

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
)

// countingBody is a request body: prefix, then fill bytes up to size bytes
// in all (size < 0: it never ends, but fails the request past
// neverEndsCeiling rather than hang the test run); read counts what the
// handler took of it.
type countingBody struct {
	prefix []byte
	size   int64
	read   int64
}

// neverEndsCeiling stops a body that never ends, so that a handler that
// reads without a bound fails the test instead of running forever.
const neverEndsCeiling = 64 << 20

var errNeverEnds = errors.New("the body never ends, and the handler kept reading")

func (b *countingBody) Read(p []byte) (int, error) {
	if b.size >= 0 && b.read >= b.size {
		return 0, io.EOF
	}
	if b.size < 0 && b.read >= neverEndsCeiling {
		return 0, errNeverEnds
	}
	if b.size >= 0 && int64(len(p)) > b.size-b.read {
		p = p[:b.size-b.read]
	}
	n := 0
	if b.read < int64(len(b.prefix)) {
		n = copy(p, b.prefix[b.read:])
	}
	for i := n; i < len(p); i++ {
		p[i] = 'A'
	}
	b.read += int64(len(p))
	return len(p), nil
}

func (b *countingBody) Close() error { return nil }

// TestConfigChangedReadsAtMostTheCap: the IdP's POST to the ACS of an IdP
// the route no longer has (a reload removed it) gets the
// signin_config_changed page, and configChanged reads at most staleACSBody
// of it looking for the RelayState: whatever anyone posts there, a form
// of megabytes or a multipart body that never ends, costs the gateway no
// more than a SAML response it would accept.
func TestConfigChangedReadsAtMostTheCap(t *testing.T) {
	multipartPrefix := func() (string, []byte) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("RelayState", "rs-1")
		if _, err := mw.CreateFormFile("SAMLResponse", "response.xml"); err != nil {
			t.Fatal(err)
		}
		return mw.FormDataContentType(), buf.Bytes()
	}
	mpType, mpPrefix := multipartPrefix()
	for _, tc := range []struct {
		name, contentType string
		body              *countingBody
	}{
		{"form of 4 MiB", "application/x-www-form-urlencoded",
			&countingBody{prefix: []byte("RelayState=rs-1&SAMLResponse="), size: 4 << 20}},
		{"multipart, never ends", mpType, &countingBody{prefix: mpPrefix, size: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &Route{PathPrefix: "/.sso/"} // the IdP "old" is gone
			flows, err := idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
			if err != nil {
				t.Fatal(err)
			}
			run := &Runtime{Flows: flows}
			o := Origin{Site: idp.Origin{Scheme: "https", Host: "app.example.com"}, Vouched: true}
			r := httptest.NewRequest(http.MethodPost, "https://app.example.com/.sso/saml/old/acs", nil)
			r.Body, r.ContentLength = tc.body, -1
			r.Header.Set("Content-Type", tc.contentType)
			r = idp.WithOrigin(r, o.Site)

			rec := httptest.NewRecorder()
			done := make(chan error, 1)
			go func() { done <- rt.ServeEndpoint(rec, r, run, o, nil, nil) }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("no answer after 30 s; %d bytes read so far", tc.body.read)
			}
			if tc.body.read > staleACSBody+1 {
				t.Errorf("read %d bytes of the body, more than the cap (%d)", tc.body.read, staleACSBody)
			}
			pe, ok := AsPageError(err)
			if !ok || pe.Status != http.StatusNotFound || pe.Code != CodeSignInConfigChanged {
				t.Fatalf("answer %v, want the %s page (404)", err, CodeSignInConfigChanged)
			}
			if err := pe.Write(rec); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), CodeSignInConfigChanged) {
				t.Errorf("page %d:\n%s", rec.Code, rec.Body)
			}
		})
	}
}
