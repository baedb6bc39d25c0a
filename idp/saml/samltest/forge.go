package samltest

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// signer signs SAML elements the way crewjam's IdP does: enveloped
// signature, exclusive canonicalisation, the certificate in KeyInfo.
type signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func (sg *signer) context(sha1 bool) (*dsig.SigningContext, error) {
	ctx, err := dsig.NewSigningContext(sg.key, [][]byte{sg.cert.Raw})
	if err != nil {
		return nil, err
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	method := dsig.RSASHA256SignatureMethod
	if sha1 {
		method = dsig.RSASHA1SignatureMethod
	}
	if err := ctx.SetSignatureMethod(method); err != nil {
		return nil, err
	}
	return ctx, nil
}

func (sg *signer) sign(el *etree.Element, sha1 bool) (*etree.Element, error) {
	ctx, err := sg.context(sha1)
	if err != nil {
		return nil, err
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		return nil, err
	}
	return signed.ChildElements()[len(signed.ChildElements())-1], nil
}

func (sg *signer) signAssertion(a *saml.Assertion, sha1 bool) error {
	a.Signature = nil
	sig, err := sg.sign(a.Element(), sha1)
	if err != nil {
		return fmt.Errorf("samltest: signing assertion: %w", err)
	}
	a.Signature = sig
	return nil
}

func (sg *signer) signResponse(r *saml.Response, sha1 bool) error {
	r.Signature = nil
	sig, err := sg.sign(r.Element(), sha1)
	if err != nil {
		return fmt.Errorf("samltest: signing response: %w", err)
	}
	r.Signature = sig
	return nil
}

// encryptAssertion encrypts the (signed) assertion to cert as an
// EncryptedAssertion, with enc or, if nil, RSA-OAEP and AES-256-GCM.
func encryptAssertion(a *saml.Assertion, cert *x509.Certificate, enc xmlenc.Encrypter) (*etree.Element, error) {
	plain, err := docBytes(a.Element())
	if err != nil {
		return nil, err
	}
	if enc == nil {
		oaep := xmlenc.OAEP()
		oaep.BlockCipher = xmlenc.AES256GCM
		enc = oaep
	}
	data, err := enc.Encrypt(cert, plain, nil)
	if err != nil {
		return nil, fmt.Errorf("samltest: encrypting assertion: %w", err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	el := etree.NewElement("saml:EncryptedAssertion")
	el.AddChild(data)
	return el, nil
}

func parseCert(b64 string) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// ResponseSpec describes a Response to forge with Forge. The zero value of
// each field means "what a correct IdP would send", given ACS, Audience and
// InResponseTo.
type ResponseSpec struct {
	// ACS is the SP's assertion consumer service URL: Destination and
	// Recipient.
	ACS string
	// Audience is the SP's entity ID.
	Audience string
	// InResponseTo is the AuthnRequest ID ("" for IdP-initiated).
	InResponseTo string
	// User provides NameID, NameID Format and attributes.
	User User
	// SessionIndex is the AuthnStatement's SessionIndex; default random.
	SessionIndex string
	// Now is the issue time; default the server's clock.
	Now time.Time

	// Assertion and Response edit the messages before they are signed.
	Assertion func(*saml.Assertion)
	Response  func(*saml.Response)

	// SignAssertion and SignResponse choose what is signed.
	SignAssertion, SignResponse bool
	// SHA1 signs with RSA-SHA1 and SHA-1 digests.
	SHA1 bool
	// Key and Certificate sign instead of the IdP's key (a key the
	// metadata does not list); the certificate goes into KeyInfo.
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate

	// EncryptTo encrypts the assertion (after signing it) to this
	// certificate, with Encrypter (default RSA-OAEP + AES-256-GCM).
	EncryptTo *x509.Certificate
	Encrypter xmlenc.Encrypter
}

// NewAssertion builds the assertion a correct IdP would send for spec,
// unsigned.
func (s *Server) NewAssertion(spec ResponseSpec) *saml.Assertion {
	now := spec.Now
	if now.IsZero() {
		now = s.Now()
	}
	nameID, format := spec.User.NameID, spec.User.NameIDFormat
	if nameID == "" {
		nameID = spec.User.Username
	}
	if format == "" {
		format = string(saml.UnspecifiedNameIDFormat)
	}
	index := spec.SessionIndex
	if index == "" {
		index = hex.EncodeToString(randomBytes(16))
	}
	a := &saml.Assertion{
		ID:           "id-" + hex.EncodeToString(randomBytes(20)),
		IssueInstant: now,
		Version:      "2.0",
		Issuer:       saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: s.EntityID()},
		Subject: &saml.Subject{
			NameID: &saml.NameID{Format: format, Value: nameID},
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: spec.InResponseTo,
					NotOnOrAfter: now.Add(saml.MaxIssueDelay),
					Recipient:    spec.ACS,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore:            now.Add(-30 * time.Second),
			NotOnOrAfter:         now.Add(saml.MaxIssueDelay),
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: spec.Audience}}},
		},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: now,
			SessionIndex: index,
			AuthnContext: saml.AuthnContext{AuthnContextClassRef: &saml.AuthnContextClassRef{
				Value: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
			}},
		}},
	}
	if attrs := attributes(spec.User.Attributes); len(attrs) > 0 {
		a.AttributeStatements = []saml.AttributeStatement{{Attributes: attrs}}
	}
	return a
}

// Forge builds, signs and (optionally) encrypts a Response as spec says,
// and returns its element so that tests can tamper with it further.
func (s *Server) Forge(spec ResponseSpec) (*etree.Element, error) {
	now := spec.Now
	if now.IsZero() {
		now = s.Now()
		spec.Now = now
	}
	a := s.NewAssertion(spec)
	if spec.Assertion != nil {
		spec.Assertion(a)
	}
	sg := &signer{key: spec.Key, cert: spec.Certificate}
	if sg.key == nil {
		sg.key, sg.cert = s.Key()
	}
	if spec.SignAssertion {
		if err := sg.signAssertion(a, spec.SHA1); err != nil {
			return nil, err
		}
	}
	resp := &saml.Response{
		ID:           "id-" + hex.EncodeToString(randomBytes(20)),
		InResponseTo: spec.InResponseTo,
		Version:      "2.0",
		IssueInstant: now,
		Destination:  spec.ACS,
		Issuer:       &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: s.EntityID()},
		Status:       saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	if spec.EncryptTo != nil {
		el, err := encryptAssertion(a, spec.EncryptTo, spec.Encrypter)
		if err != nil {
			return nil, err
		}
		resp.EncryptedAssertion = el
	} else {
		resp.Assertion = a
	}
	if spec.Response != nil {
		spec.Response(resp)
	}
	if spec.SignResponse {
		if err := sg.signResponse(resp, spec.SHA1); err != nil {
			return nil, err
		}
	}
	return resp.Element(), nil
}

// SignElement adds an enveloped signature by the IdP's key to el (which must
// carry an ID attribute), for tests that assemble messages by hand.
func (s *Server) SignElement(el *etree.Element) (*etree.Element, error) {
	key, cert := s.Key()
	ctx, err := (&signer{key: key, cert: cert}).context(false)
	if err != nil {
		return nil, err
	}
	return ctx.SignEnveloped(el)
}

// Encode serialises el and base64-encodes it, as the SAMLResponse (or
// SAMLRequest) field of the HTTP-POST binding.
func Encode(el *etree.Element) (string, error) {
	b, err := docBytes(el)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// LogoutRequestSpec describes an IdP-initiated LogoutRequest to forge.
type LogoutRequestSpec struct {
	// Destination is the SP's SLO URL.
	Destination    string
	NameID         string
	NameIDFormat   string
	SessionIndexes []string
	// IssueInstant defaults to the server's clock.
	IssueInstant time.Time
	NotOnOrAfter *time.Time
	// Issuer defaults to the IdP's entity ID.
	Issuer string
	// Sign signs the request: a query string signature with the
	// HTTP-Redirect binding, an enveloped one with HTTP-POST.
	Sign bool
}

func (s *Server) logoutRequest(spec LogoutRequestSpec) *saml.LogoutRequest {
	now := spec.IssueInstant
	if now.IsZero() {
		now = s.Now()
	}
	issuer := spec.Issuer
	if issuer == "" {
		issuer = s.EntityID()
	}
	req := &saml.LogoutRequest{
		ID:           "id-" + hex.EncodeToString(randomBytes(20)),
		Version:      "2.0",
		IssueInstant: now,
		NotOnOrAfter: spec.NotOnOrAfter,
		Destination:  spec.Destination,
		Issuer:       &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: issuer},
		NameID:       &saml.NameID{Format: spec.NameIDFormat, Value: spec.NameID},
	}
	for i, si := range spec.SessionIndexes {
		if i == 0 {
			req.SessionIndex = &saml.SessionIndex{Value: si}
		} else {
			req.AdditionalSessionIndexes = append(req.AdditionalSessionIndexes, saml.SessionIndex{Value: si})
		}
	}
	return req
}

// LogoutRequestRedirectURL returns the SP SLO URL carrying a forged
// LogoutRequest with the HTTP-Redirect binding.
func (s *Server) LogoutRequestRedirectURL(spec LogoutRequestSpec, relayState string) (string, error) {
	req := s.logoutRequest(spec)
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return "", err
	}
	xmlBytes, err := docBytes(req.Element())
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(xmlBytes); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", err
	}
	query := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relayState != "" {
		query += "&RelayState=" + url.QueryEscape(relayState)
	}
	if spec.Sign {
		query += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
		key, _ := s.Key()
		sum := sha256.Sum256([]byte(query))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			return "", err
		}
		query += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	}
	if spec.Destination == "" {
		return "", errors.New("samltest: LogoutRequestSpec needs a Destination")
	}
	return spec.Destination + "?" + query, nil
}

// LogoutRequestForm returns the form fields of a forged LogoutRequest with
// the HTTP-POST binding.
func (s *Server) LogoutRequestForm(spec LogoutRequestSpec, relayState string) (url.Values, error) {
	req := s.logoutRequest(spec)
	if spec.Sign {
		key, cert := s.Key()
		sig, err := (&signer{key: key, cert: cert}).sign(req.Element(), false)
		if err != nil {
			return nil, err
		}
		req.Signature = sig
	}
	v, err := Encode(req.Element())
	if err != nil {
		return nil, err
	}
	form := url.Values{"SAMLRequest": {v}}
	if relayState != "" {
		form.Set("RelayState", relayState)
	}
	return form, nil
}
