package saml

// Fuzz targets for what an IdP (or anyone posing as one) sends the SP: the
// ACS's SAMLResponse, IdP metadata, and the Single Logout messages.
//
// Their seeds are real messages of the samltest IdP: logins through its
// login form and forged variants, signed with its key at a fixed time. The
// IdP's metadata, the SP key and the login and logout flows those messages
// answer are committed under testdata/fuzzenv (see its README), and the
// Provider the targets drive runs on that fixed clock, so the signed seeds
// verify completely on every run and the fuzzer starts from messages that
// reach past the signature check.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/fuzzseed"
)

const (
	fuzzEnvDir = "testdata/fuzzenv"
	fuzzDir    = "testdata/fuzz"
	// fuzzBase is the SP site the seeds are addressed to; it is never
	// dialled.
	fuzzBase = "https://sp.fuzz.test/.sso/saml/fuzz/"
	fuzzHost = "sp.fuzz.test"
)

// fuzzUsers are the identities the seeds' IdP signs, one per profile. An
// accepted response must carry exactly one of them.
var fuzzUsers = []samltest.User{
	samltest.Okta("ada", "pw-ada", samltest.Person{ID: "00u1ada", FirstName: "Ada", LastName: "Lovelace",
		Email: "ada@example.com", Groups: []string{"eng", "admins"}}),
	samltest.EntraCustom("grace", "pw-grace", samltest.Person{ID: "6f1c-grace", FirstName: "Grace", LastName: "Hopper",
		Email: "grace@example.com", TenantID: "tenant-1", Groups: []string{"g-1"}}),
	samltest.PingOne("linus", "pw-linus", samltest.Person{ID: "p1-linus", FirstName: "Linus", LastName: "Torvalds",
		Email: "linus@example.com"}),
}

// fuzzFlow is a login or logout the SP began at generation time; the
// targets put its flow cookie on every request, so responses to it are
// accepted as answers to this browser's request.
type fuzzFlow struct {
	Kind       string `json:"kind"` // "login" or "logout"
	RelayState string `json:"relay_state"`
	RequestID  string `json:"request_id"`
	ReturnTo   string `json:"return_to"`
}

// fuzzEnvFile is testdata/fuzzenv/env.json.
type fuzzEnvFile struct {
	// Now is the SP's clock: one second after the IdP signed everything.
	Now   time.Time  `json:"now"`
	Flows []fuzzFlow `json:"flows"`
	// SessionIndexes are every SessionIndex the IdP signed, in assertions
	// and LogoutRequests.
	SessionIndexes []string `json:"session_indexes"`
}

// fuzzSP is the Provider the targets drive.
type fuzzSP struct {
	p       *Provider
	replay  *memReplay
	env     fuzzEnvFile
	cookies []*http.Cookie
	idpSLO  []string // the IdP's SLO endpoint URLs
	ended   [][2]string
}

func loadFuzzSP(tb testing.TB) *fuzzSP {
	tb.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(fuzzEnvDir, name))
		if err != nil {
			tb.Fatalf("%v (regenerate with %s=1 go test -run TestSAMLFuzzSeeds)", err, fuzzseed.EnvWrite)
		}
		return b
	}
	s := &fuzzSP{replay: newMemReplay()}
	if err := json.Unmarshal(read("env.json"), &s.env); err != nil {
		tb.Fatal(err)
	}
	kp, err := DecodeKeyPairPEM(read("sp-key.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	s.p = newFuzzProvider(tb, read("idp-metadata.xml"), kp, s.env.Now, s)
	for _, d := range s.p.md.Load().ed.IDPSSODescriptors {
		for _, e := range d.SingleLogoutServices {
			s.idpSLO = append(s.idpSLO, e.Location)
		}
	}
	e, err := s.p.siteEndpoints(fuzzBase)
	if err != nil {
		tb.Fatal(err)
	}
	for _, fl := range s.env.Flows {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, fuzzBase+"login", nil)
		switch fl.Kind {
		case "login":
			err = s.p.saveFlow(rec, r, s.p.loginFlowID(fl.RelayState), &loginFlow{RequestID: fl.RequestID, FlowReturn: idp.FlowReturn{ReturnTo: fl.ReturnTo}, ACS: e.acs.String()})
		case "logout":
			err = s.p.saveFlow(rec, r, s.p.logoutFlowID(fl.RelayState), &logoutFlow{RequestID: fl.RequestID, ReturnTo: fl.ReturnTo, SLO: e.slo.String()})
		default:
			err = fmt.Errorf("flow kind %q", fl.Kind)
		}
		if err != nil {
			tb.Fatal(err)
		}
		s.cookies = append(s.cookies, rec.Result().Cookies()...)
	}
	return s
}

// newFuzzProvider returns a started Provider for the fuzz environment. The
// runtime is set directly, as the package's harness does: Start would also
// begin the metadata refresh, which inline metadata does not need.
func newFuzzProvider(tb testing.TB, metadata []byte, kp KeyPair, now time.Time, sessions idp.SessionEnder) *Provider {
	tb.Helper()
	flows, err := idp.NewFlowCookies(bytes.Repeat([]byte("f"), 32))
	if err != nil {
		tb.Fatal(err)
	}
	flows.Now = func() time.Time { return now }
	p, err := New(Config{
		Name:              "fuzz",
		MetadataXML:       metadata,
		SPKeys:            []KeyPair{kp},
		AllowIdPInitiated: true,
		Now:               func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	p.rt = idp.Runtime{Flows: flows, Sessions: sessions}
	return p
}

// EndSessions records the sessions a LogoutRequest ends and, as the
// store's session ender does in the same transaction, uses once up: a
// request seen before ends nothing.
func (s *fuzzSP) EndSessions(ctx context.Context, _, subject string, sessionIDs []string, once *idp.SingleUse) (int, error) {
	if once != nil && s.replay != nil {
		first, err := s.replay.ConsumeOnce(ctx, once.Kind, once.ID, once.Until)
		if err != nil {
			return 0, err
		}
		if !first {
			return 0, idp.FailLogout(once.Code, errors.New("used before"))
		}
	}
	if len(sessionIDs) == 0 {
		s.ended = append(s.ended, [2]string{subject, ""})
	}
	for _, id := range sessionIDs {
		s.ended = append(s.ended, [2]string{subject, id})
	}
	return max(1, len(sessionIDs)), nil
}

// fuzzCallback is the fuzz targets' only call of the ACS: one POST of the
// HTTP-POST binding's form, with every flow cookie of the environment, and
// then what the sign-in transaction does with an accepted assertion before
// anything else: consume its single-use IDs in replay (a replay is refused
// with the code the ID names).
func fuzzCallback(p *Provider, replay *memReplay, cookies []*http.Cookie, samlResponse, relayState string) (*idp.Assertion, string, error) {
	form := url.Values{"SAMLResponse": {samlResponse}}
	if relayState != "" {
		form.Set("RelayState", relayState)
	}
	r := httptest.NewRequest(http.MethodPost, fuzzBase+"acs", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	a, returnTo, err := p.Callback(httptest.NewRecorder(), r, fuzzBase)
	if err != nil {
		return a, returnTo, err
	}
	if len(a.SingleUse) == 0 {
		return nil, "", errors.New("an accepted assertion names no single-use ID: nothing would stop its replay")
	}
	for _, su := range a.SingleUse {
		first, err := replay.ConsumeOnce(r.Context(), su.Kind, su.ID, su.Until)
		if err != nil {
			return nil, "", err
		}
		if !first {
			return nil, "", idp.Fail(su.Code, errors.New("replayed"))
		}
	}
	return a, returnTo, nil
}

// slo sends one message to the SLO endpoint: a GET with rawQuery when body
// is empty (HTTP-Redirect binding), else a form POST (HTTP-POST).
func (s *fuzzSP) slo(rawQuery, body string) (*httptest.ResponseRecorder, error) {
	r := httptest.NewRequest(http.MethodGet, fuzzBase+"slo", nil)
	if body != "" {
		r = httptest.NewRequest(http.MethodPost, fuzzBase+"slo", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.URL.RawQuery = rawQuery
	for _, c := range s.cookies {
		r.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	s.ended = nil
	err := s.p.ServeEndpoint(rec, r, fuzzBase, "slo")
	return rec, err
}

// loginCodes are the Code* values a refusal may carry.
var loginCodes = []string{
	CodeMetadataUnavailable, CodeBadBase, CodeRequestFailed, CodeFlowSave, CodeMethodNotAllowed,
	CodeResponseTooLarge, CodeResponseMissing, CodeMalformed, CodeDoctype, CodeUnsolicited, CodeFlowMissing,
	CodeFlowExpired, CodeFlowInvalid, CodeACSMismatch, CodeSignature, CodeUntrustedKey, CodeSignatureAlgorithm, CodeEncryptionAlgorithm,
	CodeIssuer, CodeStatus, CodeDestination, CodeAudience, CodeNotYetValid, CodeExpired, CodeInResponseTo,
	CodeMultipleAssertions, CodeAuthnContext, CodeReplayed, CodeReplayCheck, CodeDecryption, CodeUnsupported, CodeIncomplete, CodeInvalid,
	CodeSLOMessageMissing, CodeLogoutFailed,
}

func checkLoginError(t *testing.T, err error) {
	t.Helper()
	var le *idp.LoginError
	if !errors.As(err, &le) || !slices.Contains(loginCodes, le.Code) {
		t.Fatalf("refusal is not an *idp.LoginError with a known code: %T %v", err, err)
	}
	if msg := err.Error(); strings.Contains(msg, "<saml") || strings.Contains(msg, "<ds:") {
		t.Fatalf("error text quotes the message: %.300s", msg)
	}
}

// isLocalPath reports whether a redirect target stays on the site.
func isLocalPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.HasPrefix(p, `/\`)
}

// signedIdentity reports whether a carries exactly the subject and
// attributes of one of the users the IdP signed for.
func signedIdentity(a *idp.Assertion) bool {
	for _, u := range fuzzUsers {
		nameID := cmpOr(u.NameID, u.Username)
		if a.Subject == nameID && a.SubjectFormat == u.NameIDFormat && reflect.DeepEqual(a.Attributes, u.Attributes) {
			return true
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// FuzzACS posts arbitrary SAMLResponse and RelayState values to the ACS,
// with the flow cookies of the committed logins. Properties:
//   - a refusal is an *idp.LoginError with a known code whose text does
//     not quote the message;
//   - an accepted response carries exactly an identity the IdP signed
//     (subject, format, attributes): no mutation of a signed message may
//     change who signs in;
//   - the return path is always a local path;
//   - an accepted response names its single-use IDs, and is refused as a
//     replay when posted again once the sign-in has consumed them;
//   - a document the DOCTYPE guard lets through holds no directive for the
//     XML parser crewjam uses (etree) either.
func FuzzACS(f *testing.F) {
	s := loadFuzzSP(f)
	f.Add("", "")
	f.Add("PFJlc3BvbnNlLz4=", "") // <Response/>
	f.Add(base64.StdEncoding.EncodeToString([]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&a;</samlp:Response>`)), "")
	if len(s.env.Flows) > 0 {
		f.Add("PFJlc3BvbnNlLz4=", s.env.Flows[0].RelayState)
	}

	f.Fuzz(func(t *testing.T, samlResponse, relayState string) {
		s.replay.reset()
		a, returnTo, err := fuzzCallback(s.p, s.replay, s.cookies, samlResponse, relayState)
		if raw, decErr := base64.StdEncoding.DecodeString(samlResponse); decErr == nil && refuseDeclarations(raw) == nil {
			doc := etree.NewDocument()
			if doc.ReadFromBytes(raw) == nil && hasDirective(doc.Child) {
				t.Fatal("etree finds a directive the DOCTYPE guard let through")
			}
		}
		if err != nil {
			checkLoginError(t, err)
			return
		}
		if a == nil || a.IdP != "fuzz" || a.Protocol != idp.ProtocolSAML {
			t.Fatalf("accepted without a proper assertion: %+v", a)
		}
		if !signedIdentity(a) {
			t.Fatalf("accepted an identity the IdP did not sign: %q (%s) %v", a.Subject, a.SubjectFormat, a.Attributes)
		}
		if !isLocalPath(returnTo) {
			t.Fatalf("return path %q leaves the site", returnTo)
		}
		_, _, err = fuzzCallback(s.p, s.replay, s.cookies, samlResponse, relayState)
		if codeOf(err) != CodeReplayed {
			t.Fatalf("the same response posted again: %v, want %s", err, CodeReplayed)
		}
	})
}

// hasDirective reports whether an etree token list holds a directive at
// any depth.
func hasDirective(toks []etree.Token) bool {
	for _, tok := range toks {
		switch tok := tok.(type) {
		case *etree.Directive:
			return true
		case *etree.Element:
			if hasDirective(tok.Child) {
				return true
			}
		}
	}
	return false
}

// FuzzMetadata parses arbitrary IdP metadata for an arbitrary IdP entity
// ID. Properties:
//   - accepted metadata names an entity (the one asked for, if any) with
//     an IDPSSODescriptor;
//   - accepted metadata encodes back to metadata that parses to the same
//     entity, keys and endpoints;
//   - what the Provider accepts, New accepts, and Begin then either fails
//     cleanly or sends the browser to an SSO endpoint the metadata lists.
func FuzzMetadata(f *testing.F) {
	f.Add([]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><IDPSSODescriptor/></EntityDescriptor>`), "")
	f.Add([]byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><EntitiesDescriptor><EntityDescriptor entityID="a"><IDPSSODescriptor/></EntityDescriptor></EntitiesDescriptor></EntitiesDescriptor>`), "a")
	f.Add([]byte(`<!DOCTYPE x><EntityDescriptor/>`), "")
	kp := testKeys()[0]
	now := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, data []byte, entityID string) {
		ed, err := ParseMetadata(data, entityID)
		if err == nil {
			if ed.EntityID == "" || len(ed.IDPSSODescriptors) == 0 || entityID != "" && ed.EntityID != entityID {
				t.Fatalf("accepted metadata for %q with %d IDPSSODescriptors (asked for %q)", ed.EntityID, len(ed.IDPSSODescriptors), entityID)
			}
			out, err := xml.Marshal(ed)
			if err != nil {
				t.Fatalf("accepted metadata does not encode: %v", err)
			}
			again, err := ParseMetadata(out, entityID)
			if err != nil {
				t.Fatalf("accepted metadata, encoded, is refused: %v\n%s", err, out)
			}
			if a, b := metadataSummary(ed), metadataSummary(again); a != b {
				t.Fatalf("metadata changes on a round trip:\n%s\n%s", a, b)
			}
		}
		md, mdErr := parseIdPMetadata(data, entityID, now)
		if mdErr == nil && (md.ed == nil || md.sloResponse == nil) {
			t.Fatal("parseIdPMetadata returned an incomplete copy")
		}
		if err != nil && mdErr == nil {
			t.Fatal("parseIdPMetadata accepts what ParseMetadata refuses")
		}
		if len(data) == 0 {
			return // no metadata source at all: New refuses the config
		}
		p, err := New(Config{Name: "fuzz", MetadataXML: data, IdPEntityID: entityID, SPKeys: []KeyPair{kp},
			Now: func() time.Time { return now }})
		if (err == nil) != (mdErr == nil) {
			t.Fatalf("New: %v, parseIdPMetadata: %v", err, mdErr)
		}
		if err != nil {
			return
		}
		p.rt = idp.Runtime{Flows: mustFlows(t), Sessions: &fuzzSP{}}
		rec := httptest.NewRecorder()
		if err := p.Begin(rec, httptest.NewRequest(http.MethodGet, fuzzBase+"login", nil), fuzzBase, idp.SignInRequest{ReturnTo: "/"}); err != nil {
			checkLoginError(t, err)
			return
		}
		var sso []string
		for _, d := range md.ed.IDPSSODescriptors {
			for _, e := range d.SingleSignOnServices {
				sso = append(sso, e.Location)
			}
		}
		// An absolute redirect goes to an endpoint of the metadata (a
		// relative SSO location, which no IdP publishes, becomes a path on
		// this site).
		loc := rec.Header().Get("Location")
		if u, err := url.Parse(loc); rec.Code == http.StatusFound && (err != nil || u.IsAbs()) &&
			!slices.ContainsFunc(sso, func(s string) bool { return s != "" && strings.HasPrefix(loc, s) }) {
			t.Fatalf("Begin redirected to %q, not to one of %q", loc, sso)
		}
	})
}

func mustFlows(t *testing.T) *idp.FlowCookies {
	f, err := idp.NewFlowCookies(bytes.Repeat([]byte("m"), 32))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// metadataSummary is what a login uses from metadata, as text.
func metadataSummary(ed *saml.EntityDescriptor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "entity %q\n", ed.EntityID)
	for _, d := range ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				fmt.Fprintf(&b, "key %q %q\n", kd.Use, strings.Join(strings.Fields(c.Data), ""))
			}
		}
		for _, e := range d.SingleSignOnServices {
			fmt.Fprintf(&b, "sso %q %q\n", e.Binding, e.Location)
		}
		for _, e := range d.SingleLogoutServices {
			fmt.Fprintf(&b, "slo %q %q %q\n", e.Binding, e.Location, e.ResponseLocation)
		}
	}
	return b.String()
}

// fuzzSLO is the body of the two Single Logout targets. Properties:
//   - a refusal is an *idp.LoginError with a known code, and nothing has
//     been written to the response;
//   - local sessions are ended only for a verified LogoutRequest, and only
//     for a NameID and SessionIndex the IdP signed;
//   - an accepted LogoutRequest is answered towards the IdP's SLO endpoint
//     and refused as a replay when sent again;
//   - an accepted LogoutResponse redirects to the path its logout began
//     with.
func fuzzSLO(t *testing.T, s *fuzzSP, rawQuery, body string) {
	s.replay.reset()
	rec, err := s.slo(rawQuery, body)
	ended := s.ended
	for _, e := range ended {
		if !slices.ContainsFunc(fuzzUsers, func(u samltest.User) bool { return cmpOr(u.NameID, u.Username) == e[0] }) ||
			e[1] != "" && !slices.Contains(s.env.SessionIndexes, e[1]) {
			t.Fatalf("ended sessions of %q (index %q), which the IdP never signed for", e[0], e[1])
		}
	}
	if err != nil {
		checkLoginError(t, err)
		if len(ended) > 0 {
			t.Fatalf("refused (%v) after ending sessions %v", err, ended)
		}
		if rec.Body.Len() > 0 || rec.Header().Get("Location") != "" {
			t.Fatalf("refused (%v) but wrote %d %q", err, rec.Code, rec.Header().Get("Location"))
		}
		return
	}
	loc := rec.Header().Get("Location")
	if len(ended) == 0 {
		// A LogoutResponse: back to where the logout began.
		if rec.Code != http.StatusSeeOther || !slices.ContainsFunc(s.env.Flows, func(f fuzzFlow) bool { return f.Kind == "logout" && f.ReturnTo == loc }) {
			t.Fatalf("LogoutResponse accepted, answered %d %q", rec.Code, loc)
		}
		return
	}
	switch rec.Code {
	case http.StatusFound:
		if !slices.ContainsFunc(s.idpSLO, func(u string) bool { return u != "" && strings.HasPrefix(loc, u+"?") }) {
			t.Fatalf("LogoutRequest answered with a redirect to %q, not the IdP's SLO endpoint %q", loc, s.idpSLO)
		}
	case http.StatusOK:
		if !strings.Contains(rec.Body.String(), "SAMLResponse") && rec.Body.String() != "Signed out.\n" {
			t.Fatalf("LogoutRequest answered with %q", rec.Body.String())
		}
	default:
		t.Fatalf("LogoutRequest answered %d", rec.Code)
	}
	if _, err := s.slo(rawQuery, body); codeOf(err) != CodeReplayed {
		t.Fatalf("the same LogoutRequest again: %v, want %s", err, CodeReplayed)
	}
}

// FuzzLogoutRequest sends arbitrary IdP-initiated logout messages to the
// SLO endpoint, seeded with signed LogoutRequests; see fuzzSLO.
func FuzzLogoutRequest(f *testing.F) {
	s := loadFuzzSP(f)
	f.Add("SAMLRequest=", "")
	f.Add("", "SAMLRequest=PExvZ291dFJlcXVlc3QvPg%3D%3D") // <LogoutRequest/>
	f.Add("SAMLRequest=%%%&SigAlg=x&Signature=y", "")
	f.Fuzz(func(t *testing.T, rawQuery, body string) { fuzzSLO(t, s, rawQuery, body) })
}

// FuzzLogoutResponse sends arbitrary answers to the logouts of the
// environment to the SLO endpoint, seeded with the IdP's signed
// LogoutResponses; see fuzzSLO.
func FuzzLogoutResponse(f *testing.F) {
	s := loadFuzzSP(f)
	f.Add("SAMLResponse=", "")
	f.Add("", "SAMLResponse=PExvZ291dFJlc3BvbnNlLz4%3D&RelayState=AAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, rawQuery, body string) { fuzzSLO(t, s, rawQuery, body) })
}
