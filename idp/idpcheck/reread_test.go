package idpcheck

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sso/caddy-sso/idp/oidc"
	"github.com/caddy-sso/caddy-sso/idp/saml"
)

// Sign-in never reads scopes_supported: a document carrying it in another
// shape than a list of strings (a space-separated string) signs in, so the
// check must not call the whole document unreachable for it.
func TestScopesSupportedOfAnotherShape(t *testing.T) {
	doc := strings.Replace(entraDoc, `"scopes_supported":["openid","profile","email","offline_access"]`, `"scopes_supported":"openid profile email offline_access"`, 1)
	if doc == entraDoc {
		t.Fatal("the document has no scopes_supported to reshape")
	}
	srv := serveIdP(t, doc, entraKeys(t), nil)
	cfg := oidc.Config{Name: "entra", Issuer: srv.URL + "/v2.0", ClientID: "app", ClientSecret: "s"}
	p, err := oidc.New(oidc.Config{Name: "entra", Issuer: cfg.Issuer, ClientID: "app", ClientSecret: "s", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Discover(context.Background()); err != nil {
		t.Fatalf("sign-in's discovery: %v", err)
	}
	noProblems(t, "a document sign-in takes", OIDC(context.Background(), srv.Client(), cfg))
}

// dateShift answers with the Date of a clock by off from this host's.
type dateShift struct {
	next http.RoundTripper
	by   time.Duration
}

func (d *dateShift) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err == nil {
		resp.Header.Set("Date", time.Now().Add(d.by).UTC().Format(http.TimeFormat))
	}
	return resp, err
}

// An IdP 7 minutes behind whose ID tokens live 5 minutes (Keycloak's
// default) fails every sign-in with id_token_expired: the warning must not
// say sign-in breaks only from 11 minutes behind.
func TestClockBehindNamesExpiredTokens(t *testing.T) {
	srv := serveIdP(t, entraDoc, entraKeys(t), nil)
	client := &http.Client{Transport: &dateShift{next: srv.Client().Transport, by: -7 * time.Minute}}
	fs := OIDC(context.Background(), client, oidc.Config{Name: "kc", Issuer: srv.URL + "/v2.0", ClientID: "app", ClientSecret: "s"})
	has(t, fs, Warn, "behind this host's", "id_token_expired", "lifetime plus clock_skew")
}

// A metadata file is read again every metadata_refresh: with a refresh of
// 60 days, a validUntil 40 days out passes before the next read, and warns
// though it is beyond the 30 days a certificate is judged by.
func TestMetadataFileLongRefresh(t *testing.T) {
	now := time.Now()
	path := filepath.Join(t.TempDir(), "idp-metadata.xml")
	if err := os.WriteFile(path, []byte(shibbolethMetadata(t, now.Add(40*24*time.Hour))), 0o600); err != nil {
		t.Fatal(err)
	}
	has(t, SAML(context.Background(), nil, saml.Config{MetadataFile: path, MetadataRefresh: 60 * 24 * time.Hour}, now), Warn, "metadata valid until ")
}
