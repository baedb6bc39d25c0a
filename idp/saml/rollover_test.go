package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// redirectSigned is the URL of an HTTP-Redirect binding message to dest
// (field SAMLRequest or SAMLResponse) carrying el, with a query string
// signature made with key: what an IdP signing with key sends.
func redirectSigned(t *testing.T, dest, field string, el *etree.Element, relayState string, key *rsa.PrivateKey) string {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el)
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write(raw)
	_ = fw.Close()
	query := field + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relayState != "" {
		query += "&RelayState=" + url.QueryEscape(relayState)
	}
	query += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	sum := sha256.Sum256([]byte(query))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return dest + "?" + query + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

// beginLogout runs Logout for ada and returns the LogoutRequest's ID, its
// RelayState and the flow cookies: what the IdP's LogoutResponse answers.
func (h *harness) beginLogout(t *testing.T) (requestID, relayState string, cookies []*http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	if _, err := h.p.Logout(rec, httptest.NewRequest(http.MethodGet, h.site.URL+"/logout", nil), h.base, idp.LogoutInfo{Subject: "ada"}, "/bye"); err != nil {
		t.Fatal(err)
	}
	sent := sentLogoutRequest(t, rec)
	return sent.Request.ID, sent.RelayState, rec.Result().Cookies()
}

// TestSLOAfterIdPKeyRollover: after the IdP rolls its signing key over,
// the first message signed with the new key may be a logout. Like a
// sign-in, a LogoutRequest or LogoutResponse signed with a key the cached
// metadata lacks reloads the metadata (once, rate-limited) and is accepted
// when the new copy lists the key, on both bindings: the HTTP-Redirect
// binding carries no certificate, so there a failed signature reloads.
func TestSLOAfterIdPKeyRollover(t *testing.T) {
	logoutResponse := func(h *harness, inResponseTo string) *saml.LogoutResponse {
		return &saml.LogoutResponse{
			ID: "id-resp-" + newRelayState(), InResponseTo: inResponseTo, Version: "2.0", IssueInstant: time.Now(), Destination: h.slo(),
			Issuer: &saml.Issuer{Value: h.idp.EntityID()},
			Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
		}
	}
	cases := []struct {
		name string
		// req is the IdP's message signed with key (nil: the IdP's
		// current key), made after the rollover; nil if it makes none.
		req      func(t *testing.T, h *harness, key *rsa.PrivateKey) *http.Request
		response bool
	}{
		{name: "LogoutRequest, redirect", req: func(t *testing.T, h *harness, key *rsa.PrivateKey) *http.Request {
			if key == nil {
				return h.logoutRequest(t, samlLogoutSpec(h, "ada"), "rs", false)
			}
			lr := &saml.LogoutRequest{ID: "id-forged-" + newRelayState(), Version: "2.0", IssueInstant: time.Now(), Destination: h.slo(),
				Issuer: &saml.Issuer{Value: h.idp.EntityID()}, NameID: &saml.NameID{Value: "ada"}}
			return httptest.NewRequest(http.MethodGet, redirectSigned(t, h.slo(), "SAMLRequest", lr.Element(), "rs", key), nil)
		}},
		{name: "LogoutRequest, post", req: func(t *testing.T, h *harness, key *rsa.PrivateKey) *http.Request {
			if key != nil {
				return nil // the redirect cases cover forgeries
			}
			return h.logoutRequest(t, samlLogoutSpec(h, "ada"), "rs", true)
		}},
		{name: "LogoutResponse, redirect", response: true, req: func(t *testing.T, h *harness, key *rsa.PrivateKey) *http.Request {
			id, relayState, cookies := h.beginLogout(t)
			if key == nil {
				key, _ = h.idp.Key()
			}
			r := httptest.NewRequest(http.MethodGet, redirectSigned(t, h.slo(), "SAMLResponse", logoutResponse(h, id).Element(), relayState, key), nil)
			for _, c := range cookies {
				r.AddCookie(c)
			}
			return r
		}},
		{name: "LogoutResponse, post", response: true, req: func(t *testing.T, h *harness, key *rsa.PrivateKey) *http.Request {
			if key != nil {
				return nil // the redirect cases cover forgeries
			}
			id, relayState, cookies := h.beginLogout(t)
			return h.postSLO(url.Values{"SAMLResponse": {h.signedLogoutResponse(t, id)}, "RelayState": {relayState}}, cookies)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if _, err := h.p.metadata(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := h.idp.RotateKey(false); err != nil {
				t.Fatal(err)
			}
			before := h.idp.Requests(samltest.PathMetadata)
			rec := httptest.NewRecorder()
			if err := h.p.HandleSLO(rec, tc.req(t, h, nil), h.base, h.endSessions); err != nil {
				t.Fatalf("signed with the IdP's new key: %v", err)
			}
			if n := h.idp.Requests(samltest.PathMetadata); n != before+1 {
				t.Fatalf("%d metadata fetches, want %d", n, before+1)
			}
			h.mu.Lock()
			ended := h.ended
			h.mu.Unlock()
			if tc.response {
				if loc := rec.Header().Get("Location"); loc != "/bye" {
					t.Fatalf("LogoutResponse accepted, redirected to %q", loc)
				}
			} else if len(ended) != 1 || ended[0] != [2]string{"ada", "idx-1"} {
				t.Fatalf("sessions ended: %v", ended)
			}

			// A message signed with a key the IdP does not list reloads
			// nothing more within minRetry, and is refused.
			h.p.minRetry = time.Hour
			other, _, err := samltest.NewKeyPair("attacker")
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				r := tc.req(t, h, other)
				if r == nil {
					break
				}
				err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions)
				if codeOf(err) != CodeSignature {
					t.Fatalf("signed with another key: %v", err)
				}
			}
			if n := h.idp.Requests(samltest.PathMetadata); n != before+1 {
				t.Fatalf("%d metadata fetches after forged messages, want %d", n, before+1)
			}
		})
	}
}

// TestMetadataRefreshRefusesExpired: metadata whose validUntil has already
// passed is a failed load. A refresh that returns it keeps (and logs that
// it keeps) the last good copy, and the reload for an unknown signing key
// does not take a key from it; with no copy yet, sign-in says the metadata
// expired (TestMetadataMisconfigured).
func TestMetadataRefreshRefusesExpired(t *testing.T) {
	t.Run("refresh keeps the last good copy", func(t *testing.T) {
		core, logs := observer.New(zap.WarnLevel)
		h := newHarness(t, func(c *Config) { c.Logger = zap.New(core) })
		h.p = h.newProvider()
		good, err := h.p.metadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h.idp.SetMetadataValidity(-time.Minute)
		if err := h.p.loadMetadata(context.Background()); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("loading expired metadata: %v", err)
		}
		if h.p.md.Load() != good {
			t.Fatal("the last good copy was replaced by an expired one")
		}
		if _, err := h.p.signInMetadata(context.Background()); err != nil {
			t.Fatalf("sign-in after the refused refresh: %v", err)
		}
		if n := logs.FilterMessage("saml idp metadata refresh failed; keeping the last good copy").Len(); n != 1 {
			t.Fatalf("%d refresh-failed log lines, want 1", n)
		}
	})
	t.Run("unknown key found only in expired metadata", func(t *testing.T) {
		h := newHarness(t)
		pend := h.begin(t)
		if err := h.idp.RotateKey(false); err != nil {
			t.Fatal(err)
		}
		h.idp.SetMetadataValidity(-time.Minute)
		a, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil))
		if a != nil || codeOf(err) != CodeUntrustedKey {
			t.Fatalf("signed by a key listed only in expired metadata: accepted %v, %v", a != nil, err)
		}
		if _, err := h.p.signInMetadata(context.Background()); err != nil {
			t.Fatalf("sign-in after: %v", err)
		}
	})
	t.Run("the reload's copy expired before the retry", func(t *testing.T) {
		// The retry trusts the new copy only as signInMetadata would: here
		// the clock passes its validUntil while it is fetched.
		var skip atomic.Int64
		h := newHarness(t, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(time.Duration(skip.Load())) } })
		h.idp.SetMetadataValidity(time.Minute)
		pend := h.begin(t)
		if err := h.idp.RotateKey(false); err != nil {
			t.Fatal(err)
		}
		h.idp.SetHooks(samltest.Hooks{Metadata: func(*saml.EntityDescriptor) { skip.Store(int64(2 * time.Minute)) }})
		a, _, err := h.callback(t, pend, h.forge(t, h.spec(pend), pend.relayState, nil))
		if a != nil || codeOf(err) != idp.CodeMisconfigured || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("retried with expired metadata: accepted %v, %v", a != nil, err)
		}
	})
}

// expiredCert is a key pair whose certificate's NotAfter has passed.
func expiredCert(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "IdP signing, expired"},
		NotBefore: time.Now().Add(-2 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	cert := selfSigned(t, key, tmpl)
	return key, cert
}

// TestExpiredIdPCertificate: the metadata's keys are trusted because the
// metadata lists them (SAML V2.0 Metadata Interoperability Profile), not
// for their certificates' validity dates: a response or an HTTP-Redirect
// LogoutRequest signed with a listed certificate past its NotAfter is
// accepted, and reloads nothing.
func TestExpiredIdPCertificate(t *testing.T) {
	h := newHarness(t)
	key, cert := expiredCert(t)
	h.idp.SetHooks(samltest.Hooks{Metadata: func(ed *saml.EntityDescriptor) {
		ed.IDPSSODescriptors[0].KeyDescriptors = []saml.KeyDescriptor{{Use: "signing", KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
			X509Certificates: []saml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}},
		}}}}
	}})
	pend := h.begin(t)
	before := h.idp.Requests(samltest.PathMetadata)
	spec := h.spec(pend)
	spec.Key, spec.Certificate = key, cert
	if _, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil)); err != nil {
		t.Fatalf("response signed with the expired, listed certificate: %v", err)
	}
	lr := &saml.LogoutRequest{ID: "id-lr-expired-cert", Version: "2.0", IssueInstant: time.Now(), Destination: h.slo(),
		Issuer: &saml.Issuer{Value: h.idp.EntityID()}, NameID: &saml.NameID{Value: "ada"}}
	r := httptest.NewRequest(http.MethodGet, redirectSigned(t, h.slo(), "SAMLRequest", lr.Element(), "", key), nil)
	if err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions); err != nil {
		t.Fatalf("LogoutRequest signed with the expired, listed certificate: %v", err)
	}
	if n := h.idp.Requests(samltest.PathMetadata); n != before {
		t.Fatalf("%d metadata reloads", n-before)
	}
	// Another certificate is still refused.
	other, otherCert, err := samltest.NewKeyPair("attacker")
	if err != nil {
		t.Fatal(err)
	}
	pend = h.begin(t)
	spec = h.spec(pend)
	spec.Key, spec.Certificate = other, otherCert
	if _, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil)); codeOf(err) != CodeUntrustedKey {
		t.Fatalf("response signed with an unlisted certificate: %v", err)
	}
}

// TestACSRolloverWithoutKeyInfo: an IdP that signs without a certificate in
// KeyInfo gives no certificate to find unlisted; after its key rollover the
// signature simply fails against the cached keys, and the metadata is
// reloaded as for an unknown certificate.
func TestACSRolloverWithoutKeyInfo(t *testing.T) {
	h := newHarness(t)
	pend := h.begin(t)
	if err := h.idp.RotateKey(false); err != nil {
		t.Fatal(err)
	}
	before := h.idp.Requests(samltest.PathMetadata)
	// Only the Response is signed: its signature covers the assertion's,
	// KeyInfo and all.
	spec := h.spec(pend)
	spec.SignAssertion = false
	stripKeyInfo := func(el *etree.Element) {
		if ki := el.FindElement("./Signature/KeyInfo"); ki != nil {
			ki.Parent().RemoveChild(ki)
		}
	}
	if _, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, stripKeyInfo)); err != nil {
		t.Fatalf("signed with the new key, no KeyInfo: %v", err)
	}
	if n := h.idp.Requests(samltest.PathMetadata); n != before+1 {
		t.Fatalf("%d metadata fetches, want %d", n, before+1)
	}
}

// TestRolloverBothCertsListed: during an IdP's key rollover its metadata
// lists the old signing certificate and the new one. Messages signed with
// either verify against the cached copy, with no metadata reload: a
// Response with the certificate in KeyInfo, one without KeyInfo (tried
// against every listed key), and an HTTP-Redirect LogoutRequest, whose
// signature never carries one.
func TestRolloverBothCertsListed(t *testing.T) {
	h := newHarness(t)
	oldKey, oldCert := h.idp.Key()
	if err := h.idp.RotateKey(true); err != nil {
		t.Fatal(err)
	}
	newKey, newCert := h.idp.Key()
	if err := h.p.loadMetadata(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(signingCerts(h.p.md.Load().ed)); n != 2 {
		t.Fatalf("the metadata lists %d signing certificates, want the old and the new", n)
	}
	before := h.idp.Requests(samltest.PathMetadata)
	stripKeyInfo := func(el *etree.Element) {
		if ki := el.FindElement("./Signature/KeyInfo"); ki != nil {
			ki.Parent().RemoveChild(ki)
		}
	}
	for _, key := range []struct {
		name string
		key  *rsa.PrivateKey
		cert *x509.Certificate
	}{{"old key", oldKey, oldCert}, {"new key", newKey, newCert}} {
		t.Run(key.name+"/response", func(t *testing.T) {
			pend := h.begin(t)
			spec := h.spec(pend)
			spec.Key, spec.Certificate = key.key, key.cert
			if _, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil)); err != nil {
				t.Fatalf("signed with the %s: %v", key.name, err)
			}
		})
		t.Run(key.name+"/response without KeyInfo", func(t *testing.T) {
			pend := h.begin(t)
			spec := h.spec(pend)
			spec.Key, spec.Certificate, spec.SignAssertion = key.key, key.cert, false
			if _, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, stripKeyInfo)); err != nil {
				t.Fatalf("signed with the %s, no KeyInfo: %v", key.name, err)
			}
		})
		t.Run(key.name+"/LogoutRequest, redirect", func(t *testing.T) {
			lr := &saml.LogoutRequest{ID: "id-lr-rollover-" + newRelayState(), Version: "2.0", IssueInstant: time.Now(), Destination: h.slo(),
				Issuer: &saml.Issuer{Value: h.idp.EntityID()}, NameID: &saml.NameID{Value: "ada"}}
			r := httptest.NewRequest(http.MethodGet, redirectSigned(t, h.slo(), "SAMLRequest", lr.Element(), "rs", key.key), nil)
			if err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions); err != nil {
				t.Fatalf("signed with the %s: %v", key.name, err)
			}
		})
	}
	if n := h.idp.Requests(samltest.PathMetadata); n != before {
		t.Errorf("%d metadata reloads, want none: both keys are listed", n-before)
	}
}
