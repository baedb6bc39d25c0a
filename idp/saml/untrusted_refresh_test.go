package saml

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// TestMetadataRefreshUntrustedCertificate: when the metadata_url's TLS
// certificate stops verifying on this host (the IdP moved to a
// certificate from an internal CA), the metadata load's WARN line, which
// is all a background refresh leaves, carries the fix and the URL, whether
// a last good copy is kept or there is none yet.
func TestMetadataRefreshUntrustedCertificate(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		loadFirst  bool // a good copy before the certificate changes
	}{
		{"refresh, last good copy kept", "saml idp metadata refresh failed; keeping the last good copy", true},
		{"no copy yet", "saml idp metadata unavailable", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			h := newHarness(t)
			front, untrusted := switchableTLSFront(t, h.idp)
			h.cfg.MetadataURL = front.URL + samltest.PathMetadata
			h.cfg.HTTPClient = front.Client() // trusts httptest's certificate only
			h.cfg.Logger = zap.New(core)
			h.p = h.newProvider()

			if tc.loadFirst {
				if err := h.p.loadMetadata(context.Background()); err != nil {
					t.Fatalf("loading over the trusted certificate: %v", err)
				}
			}
			untrusted.Store(true)
			if err := h.p.loadMetadata(context.Background()); err == nil {
				t.Fatal("loaded metadata over a certificate the client does not trust")
			}
			lines := logs.FilterMessage(tc.line).All()
			if len(lines) != 1 {
				t.Fatalf("%d %q lines, want 1 (all: %v)", len(lines), tc.line, logs.All())
			}
			msg, _ := lines[0].ContextMap()["error"].(string)
			if !strings.Contains(msg, idp.UntrustedCertificateFix) || !strings.Contains(msg, h.cfg.MetadataURL) {
				t.Errorf("logged error %q, want it to name %s and the fix %q", msg, h.cfg.MetadataURL, idp.UntrustedCertificateFix)
			}
		})
	}
}

// switchableTLSFront is an https server in front of srv that presents
// httptest's certificate (which its Client trusts) until the returned
// flag is set, then a self-signed one for the same address, as an IdP
// that moved to an internal CA would. It closes every connection after
// its response, so each fetch makes a new handshake.
func switchableTLSFront(t *testing.T, srv *samltest.Server) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, key, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Internal CA-issued IdP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	internal := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	var untrusted atomic.Bool
	ts := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	ts.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if untrusted.Load() {
			return internal, nil
		}
		return nil, nil // httptest's certificate
	}}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	ts.Config.SetKeepAlivesEnabled(false)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts, &untrusted
}
