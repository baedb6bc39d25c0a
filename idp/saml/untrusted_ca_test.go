package saml_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/idpcheck"
	"github.com/caddy-sso/caddy-sso/idp/saml"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/testidp"
)

type noSessions struct{}

func (noSessions) EndSessions(context.Context, string, string, []string, *idp.SingleUse) (int, error) {
	return 0, nil
}

// TestUntrustedMetadataCertificate: a metadata_url whose TLS certificate
// this host does not trust (an internal CA) fails sign-in as
// idp_misconfigured with the fix and the URL, not as "unavailable, try
// again"; `caddy sso check` gives the same hint.
func TestUntrustedMetadataCertificate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := samltest.NewServer("https://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	testidp.ServeUntrustedTLS(t, ln, srv)

	kp, err := saml.GenerateKeyPair("sp.test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := saml.Config{Name: "corp", MetadataURL: srv.MetadataURL(), SPKeys: []saml.KeyPair{kp}}
	p, err := saml.New(cfg) // the default client: the system's roots
	if err != nil {
		t.Fatal(err)
	}
	flows, err := idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), idp.Runtime{Flows: flows, Sessions: noSessions{}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	err = p.Begin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://site.test/login", nil),
		"http://site.test/.sso/saml/corp/", idp.SignInRequest{ReturnTo: "/"})
	if code := idp.ErrorCode(err, ""); code != idp.CodeMisconfigured {
		t.Errorf("code %q, want %q (trying again does not help): %v", code, idp.CodeMisconfigured, err)
	}
	if err == nil || !strings.Contains(err.Error(), idp.UntrustedCertificateFix) || !strings.Contains(err.Error(), srv.MetadataURL()) {
		t.Errorf("error %v, want it to name %s and the fix %q", err, srv.MetadataURL(), idp.UntrustedCertificateFix)
	}

	fs := idpcheck.SAML(context.Background(), &http.Client{Timeout: 10 * time.Second}, cfg, time.Now())
	if len(fs) == 0 || !strings.Contains(fs[0].Message, idp.UntrustedCertificateFix) {
		t.Errorf("caddy sso check says %v, want the fix %q", fs, idp.UntrustedCertificateFix)
	}
}
