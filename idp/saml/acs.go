package saml

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
)

// loginFlow is what the flow cookie carries from Begin to Callback. Field
// names are short because the cookie is size-limited.
type loginFlow struct {
	RequestID string `json:"i"`
	idp.FlowReturn
	idp.FlowReauth
	ACS string `json:"a"`
}

// Flow IDs keep logins and logouts, and different IdPs, apart: a cookie
// saved for one can never be taken for another (idp.SignInFlowID).
func (p *Provider) loginFlowID(relayState string) string {
	return idp.SignInFlowID(idp.ProtocolSAML, p.cfg.Name, relayState)
}

func (p *Provider) logoutFlowID(relayState string) string {
	return "saml/" + p.cfg.Name + "/logout/" + relayState
}

// saveFlow and takeFlow are the only calls into idp.FlowCookies, so that a
// change of its signatures touches two lines. The SAML ACS and SLO
// endpoints receive cross-site POSTs from the IdP, so the cookie must be
// SameSite=None (and so Secure, which browsers accept from loopback sites
// too; see idp.FlowCookies.Save).
func (p *Provider) saveFlow(w http.ResponseWriter, r *http.Request, flowID string, v any) error {
	return p.rt.Flows.Save(w, r, flowID, v, p.cfg.LoginTimeout, http.SameSiteNoneMode)
}

func (p *Provider) takeFlow(w http.ResponseWriter, r *http.Request, flowID string, v any) error {
	return p.rt.Flows.Take(w, r, flowID, v)
}

// Begin starts an SP-initiated login: it makes an AuthnRequest for the site
// at base, saves its ID and returnTo in a flow cookie named after a fresh
// RelayState, and sends the browser to the IdP, with a redirect
// (HTTP-Redirect binding, the default) or an auto-submitting form
// (HTTP-POST). The response is accepted only with that cookie and only if it
// answers that request, so it must come back to this browser.
// req.ReturnTo should be a same-origin path; anything else becomes "/". A
// re-authenticating sign-in sends ForceAuthn="true", and its flow cookie
// records when it began, for Callback to hold the AuthnInstant to.
func (p *Provider) Begin(w http.ResponseWriter, r *http.Request, base string, req idp.SignInRequest) error {
	e, err := p.siteEndpoints(base)
	if err != nil {
		return err
	}
	md, err := p.signInMetadata(r.Context())
	if err != nil {
		return err
	}
	sp := p.serviceProvider(e, md.ed, p.cfg.Now())
	if req.Reauthenticate {
		// Set before the request is made: a POST-binding request is
		// signed as it is made.
		sp.ForceAuthn = &req.Reauthenticate
	}
	binding := saml.HTTPRedirectBinding
	if p.cfg.RequestBinding == BindingPost {
		binding = saml.HTTPPostBinding
	}
	location := sp.GetSSOBindingLocation(binding)
	if location == "" {
		// Use whichever of the two the IdP offers.
		binding = otherBinding(binding)
		location = sp.GetSSOBindingLocation(binding)
	}
	authn, err := sp.MakeAuthenticationRequest(location, binding, saml.HTTPPostBinding)
	if err != nil {
		return idp.Fail(CodeRequestFailed, fmt.Errorf("saml idp %q: making AuthnRequest: %w", p.cfg.Name, err))
	}
	relayState := newRelayState()
	fl := loginFlow{RequestID: authn.ID, FlowReturn: idp.FlowReturn{ReturnTo: idp.LocalPath(req.ReturnTo)},
		FlowReauth: idp.NewFlowReauth(req, p.cfg.Now()), ACS: e.acs.String()}
	if err := p.saveFlow(w, r, p.loginFlowID(relayState), &fl); err != nil {
		return idp.Fail(CodeFlowSave, fmt.Errorf("saml idp %q: %w", p.cfg.Name, err))
	}
	w.Header().Set("Cache-Control", "no-store")
	if binding == saml.HTTPPostBinding {
		idp.WritePostForm(w, func(nonce string) []byte { return authn.PostWithNonce(relayState, nonce) })
		return nil
	}
	u, err := authn.Redirect(relayState, sp)
	if err != nil {
		return idp.Fail(CodeRequestFailed, fmt.Errorf("saml idp %q: encoding AuthnRequest: %w", p.cfg.Name, err))
	}
	http.Redirect(w, r, u.String(), http.StatusFound)
	return nil
}

func otherBinding(b string) string {
	if b == saml.HTTPRedirectBinding {
		return saml.HTTPPostBinding
	}
	return saml.HTTPRedirectBinding
}

// Callback is the assertion consumer service (HTTP-POST binding) of the site
// at base. It caps and reads the body, refuses DTDs, finds the login this
// browser began (or, if allowed, accepts an IdP-initiated response: one
// without InResponseTo, since a response with one answers a login that
// must have its flow cookie), lets
// crewjam verify signature, issuer, status, destination, recipient,
// audience, times and InResponseTo and decrypt, applies the configured clock
// skew, and returns the assertion, whose SingleUse names the assertion ID for
// the sign-in transaction to consume, with the returnTo given to Begin.
// Every error is an *idp.LoginError with one of the Code* constants, Bound
// when the response answered a login this browser began.
//
// Only the HTTP-POST binding is accepted: an artifact (SAMLart) is never
// resolved, and HTTP-POST-SimpleSign fields are ignored, so the response
// must carry an XML signature.
func (p *Provider) Callback(w http.ResponseWriter, r *http.Request, base string) (*idp.Assertion, string, error) {
	e, err := p.siteEndpoints(base)
	if err != nil {
		return nil, "", err
	}
	if r.Method != http.MethodPost {
		return nil, "", idp.Fail(CodeMethodNotAllowed, fmt.Errorf("ACS got %s, want POST", r.Method))
	}
	form, err := p.readForm(w, r)
	if err != nil {
		return nil, "", err
	}
	raw := form["SAMLResponse"]
	if len(raw) != 1 || raw[0] == "" {
		return nil, "", idp.Fail(CodeResponseMissing, fmt.Errorf("ACS got %d SAMLResponse fields, want 1", len(raw)))
	}
	if len(form["RelayState"]) > 1 {
		return nil, "", idp.Fail(CodeMalformed, errors.New("ACS got several RelayState fields"))
	}
	relayState := form.Get("RelayState")
	xmlData, err := base64.StdEncoding.DecodeString(raw[0])
	if err != nil {
		return nil, "", idp.Fail(CodeMalformed, fmt.Errorf("SAMLResponse is not base64: %w", err))
	}
	if err := refuseDeclarations(xmlData); err != nil {
		if errors.Is(err, errDoctype) {
			return nil, "", idp.Fail(CodeDoctype, err)
		}
		return nil, "", idp.Fail(CodeMalformed, err)
	}

	// Metadata before the flow cookie: a transient IdP outage must not
	// use up the login.
	ctx := r.Context()
	md, err := p.signInMetadata(ctx)
	if err != nil {
		return nil, "", err
	}

	// Which login is this? A RelayState of ours names a flow cookie that
	// holds the AuthnRequest ID; without the cookie, the response can only
	// be accepted as IdP-initiated, which requires an empty InResponseTo.
	var (
		requestIDs   []string
		returnTo     string
		idpInitiated bool
		fl           loginFlow
		flowErr      error
	)
	isFlow := looksLikeRelayState(relayState)
	if isFlow {
		flowErr = p.takeFlow(w, r, p.loginFlowID(relayState), &fl)
	}
	// A response that names an AuthnRequest answers an SP-initiated login
	// whatever AllowIdPInitiated says: without its flow cookie (the person
	// took longer than LoginTimeout at the IdP, or cookies are blocked) it
	// is refused as a lost flow, not tried as IdP-initiated, where it could
	// only fail as saml_in_response_to. The claim is unverified and only
	// chooses the refusal: an InResponseTo this scan misses (inside an
	// encrypted assertion, say) is still refused by crewjam.
	solicited := !(isFlow && flowErr == nil) && claimsInResponseTo(xmlData)
	switch {
	case isFlow && flowErr == nil:
		if fl.ACS != e.acs.String() {
			return nil, "", idp.Fail(CodeACSMismatch, fmt.Errorf("response posted to %q, login began for %q", e.acs, fl.ACS))
		}
		requestIDs = []string{fl.RequestID}
		returnTo = idp.LocalPath(fl.ReturnTo)
	case p.cfg.AllowIdPInitiated && !solicited:
		// crewjam then accepts only an empty InResponseTo, so a response
		// to another browser's request cannot pass as unsolicited.
		idpInitiated = true
		returnTo = idp.LocalPath(relayState)
	case isFlow:
		return nil, "", flowError(flowErr)
	case solicited:
		return nil, "", idp.Fail(CodeUnsolicited, errors.New("response answers an AuthnRequest (InResponseTo) but carries no RelayState of a login begun here"))
	default:
		return nil, "", idp.Fail(CodeUnsolicited, errors.New("response without a login begun here, and IdP-initiated login is off"))
	}

	out, err := p.verify(ctx, e, md, xmlData, requestIDs, idpInitiated)
	if err == nil {
		// A re-authenticating sign-in's AuthnInstant (fl is zero for an
		// IdP-initiated one, which nothing asked to re-authenticate).
		err = fl.Check(out.AuthTime, p.cfg.ClockSkew)
	}
	if err != nil {
		var le *idp.LoginError
		if errors.As(err, &le) {
			le.Bound = !idpInitiated
		}
		return nil, "", err
	}
	out.Unbound = idpInitiated
	return out, returnTo, nil
}

// claimsInResponseTo reports whether the (unverified) response says it
// answers an AuthnRequest: an InResponseTo on the root Response, or on a
// SubjectConfirmationData of a plaintext assertion. Callback uses it only
// to choose between refusing a response as a lost SP-initiated login and
// trying it as IdP-initiated; it must never make a response acceptable.
// A document that does not parse claims nothing: crewjam refuses it.
func claimsInResponseTo(data []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(data)) //nolint:gosec // G709: reads raw tokens of a document refuseDeclarations has passed; builds nothing
	// As in refuseDeclarations: the declared encoding is not trusted, and
	// the attribute names looked for are ASCII.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	root := true
	for {
		tok, err := d.RawToken()
		if err != nil {
			return false
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root && se.Name.Local == "Response" || se.Name.Local == "SubjectConfirmationData" {
			for _, a := range se.Attr {
				if a.Name.Space == "" && a.Name.Local == "InResponseTo" && a.Value != "" {
					return true
				}
			}
		}
		root = false
	}
}

// assertionCount counts the Assertion and EncryptedAssertion children of
// the (unverified) document's root element, by local name in any
// namespace. A document that does not parse counts what came before the
// error: crewjam refuses it.
//
// Tokenizing a response costs about a twentieth of crewjam's parse, on
// every sign-in; a byte scan finds the common case first: with at most one
// start tag of either name anywhere, the root cannot have two such children.
func assertionCount(data []byte) int {
	if n := assertionStartTags(data); n <= 1 {
		return n
	}
	d := xml.NewDecoder(bytes.NewReader(data)) //nolint:gosec // G709: reads tokens of a document refuseDeclarations has passed; builds nothing
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	n, depth := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			return n
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 && (t.Name.Local == "Assertion" || t.Name.Local == "EncryptedAssertion") {
				n++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// assertionStartTags counts the start tags named Assertion or
// EncryptedAssertion, with any prefix, anywhere in data (in comments too:
// it only ever overcounts, which the caller's tokenizing then settles).
func assertionStartTags(data []byte) int {
	n := 0
	for i := bytes.IndexByte(data, '<'); i >= 0; {
		rest := data[i+1:]
		end := bytes.IndexAny(rest, " \t\r\n/>")
		if end < 0 {
			break
		}
		name := rest[:end]
		if c := bytes.IndexByte(name, ':'); c >= 0 {
			name = name[c+1:]
		}
		if string(name) == "Assertion" || string(name) == "EncryptedAssertion" {
			n++
		}
		j := bytes.IndexByte(rest, '<')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return n
}

// verify is Callback once it knows which login the response answers.
//
// A Response carrying more than one assertion is refused first, signed or
// not: crewjam refuses it only when the Response is unsigned, and
// otherwise returns the first assertion that verifies, so a signed
// Response holding assertions for two people would sign in whichever
// comes first. Single sign-on IdPs send one, and mod_auth_mellon refuses
// such a Response too.
func (p *Provider) verify(ctx context.Context, e *endpoints, md *idpMetadata, xmlData []byte, requestIDs []string, idpInitiated bool) (*idp.Assertion, error) {
	if n := assertionCount(xmlData); n > 1 {
		return nil, idp.Fail(CodeMultipleAssertions, fmt.Errorf("response holds %d assertions, want one", n))
	}
	now := p.cfg.Now()
	rec := &singleUseRecorder{prefix: p.cfg.Name + "/"}
	var a *saml.Assertion
	_, err := p.verifyWithRollover(ctx, md, func(md *idpMetadata) (err error) {
		a, err = p.parse(e, md, xmlData, requestIDs, idpInitiated, now, rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := p.checkTimes(a, e, requestIDs, idpInitiated, now); err != nil {
		return nil, err
	}
	if rec.got == nil {
		// crewjam offers every accepted assertion's ID; without one
		// nothing would make this assertion single-use.
		return nil, idp.Fail(CodeIncomplete, errors.New("assertion ID was not recorded"))
	}
	out := p.assertion(a)
	out.SingleUse = []idp.SingleUse{*rec.got}
	return out, nil
}

// readForm caps the body at MaxResponseSize before parsing it
// (idp.ReadForm), so that an oversized post costs at most that much memory
// and no XML parsing.
func (p *Provider) readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if err := idp.ReadForm(w, r, p.cfg.MaxResponseSize); err != nil {
		if errors.Is(err, idp.ErrFormTooLarge) {
			return nil, idp.Fail(CodeResponseTooLarge, fmt.Errorf("body larger than %d bytes", p.cfg.MaxResponseSize))
		}
		return nil, idp.Fail(CodeMalformed, err)
	}
	return r.PostForm, nil
}

func (p *Provider) parse(e *endpoints, md *idpMetadata, xmlData []byte, requestIDs []string, idpInitiated bool, now time.Time, rec *singleUseRecorder) (*saml.Assertion, error) {
	sp := p.serviceProvider(e, md.ed, now)
	sp.AllowIDPInitiated = idpInitiated
	sp.ReplayCache = rec
	// The ACS URL, not r.URL: behind a proxy the request URL lacks the
	// scheme and host the IdP addressed the response to.
	return sp.ParseXMLResponse(xmlData, requestIDs, *e.acs)
}

// checkTimes applies Config.ClockSkew, which is stricter than crewjam's
// fixed three minutes, to everything crewjam checked with its own: the
// assertion IssueInstant, the Conditions window, and the bearer
// SubjectConfirmationData window of a confirmation crewjam would accept.
// It also checks, with the same skew, the one time crewjam ignores: the
// AuthnStatement SessionNotOnOrAfter.
func (p *Provider) checkTimes(a *saml.Assertion, e *endpoints, requestIDs []string, idpInitiated bool, now time.Time) error {
	skew := p.cfg.ClockSkew
	if a.IssueInstant.After(now.Add(skew)) {
		return idp.Fail(CodeNotYetValid, fmt.Errorf("assertion IssueInstant %s is in the future (skew %v)", a.IssueInstant.UTC().Format(time.RFC3339), skew))
	}
	if c := a.Conditions; c != nil {
		if c.NotBefore.After(now.Add(skew)) {
			return idp.Fail(CodeNotYetValid, fmt.Errorf("assertion Conditions NotBefore %s is in the future (skew %v)", c.NotBefore.UTC().Format(time.RFC3339), skew))
		}
		if !c.NotOnOrAfter.IsZero() && !now.Before(c.NotOnOrAfter.Add(skew)) {
			return idp.Fail(CodeExpired, fmt.Errorf("assertion Conditions NotOnOrAfter %s has passed (skew %v)", c.NotOnOrAfter.UTC().Format(time.RFC3339), skew))
		}
	}
	// SessionNotOnOrAfter bounds the session the assertion may start
	// (SAML Core 2.7.2): once it has passed, the IdP no longer vouches for
	// the session, however fresh the assertion. crewjam does not check it.
	if end, ok := sessionNotOnOrAfter(a); ok && !now.Before(end.Add(skew)) {
		return idp.Fail(CodeExpired, fmt.Errorf("AuthnStatement SessionNotOnOrAfter %s has passed (skew %v)", end.UTC().Format(time.RFC3339), skew))
	}
	if a.Subject == nil {
		return idp.Fail(CodeIncomplete, errors.New("assertion has no Subject"))
	}
	for _, sc := range a.Subject.SubjectConfirmations {
		d := sc.SubjectConfirmationData
		if sc.Method != "urn:oasis:names:tc:SAML:2.0:cm:bearer" || d == nil || d.Recipient != e.acs.String() {
			continue
		}
		if idpInitiated && d.InResponseTo != "" || !idpInitiated && (len(requestIDs) != 1 || d.InResponseTo != requestIDs[0]) {
			continue
		}
		if d.NotBefore.After(now.Add(skew)) || !now.Before(d.NotOnOrAfter.Add(skew)) {
			continue
		}
		return nil
	}
	return idp.Fail(CodeExpired, fmt.Errorf("no bearer SubjectConfirmation is valid within a clock skew of %v", skew))
}

// assertion converts a verified crewjam assertion: every attribute by its
// Name (never FriendlyName, which IdPs set inconsistently), all values.
func (p *Provider) assertion(a *saml.Assertion) *idp.Assertion {
	out := &idp.Assertion{
		IdP:        p.cfg.Name,
		Protocol:   idp.ProtocolSAML,
		Attributes: map[string][]string{},
		// SAML says nothing about whether the email was verified: only
		// the operator's trust in the IdP vouches (Config.TrustEmail).
		EmailVerified: p.cfg.TrustEmail,
	}
	if a.Subject != nil && a.Subject.NameID != nil {
		out.Subject = a.Subject.NameID.Value
		out.SubjectFormat = a.Subject.NameID.Format
		// Kept for the LogoutRequest, which names the NameID as issued.
		out.Logout.NameQualifier = a.Subject.NameID.NameQualifier
		out.Logout.SPNameQualifier = a.Subject.NameID.SPNameQualifier
	}
	for _, st := range a.AttributeStatements {
		for _, attr := range st.Attributes {
			if attr.Name == "" {
				continue
			}
			vals := out.Attributes[attr.Name]
			for _, v := range attr.Values {
				switch {
				case v.Nil:
					continue
				case v.NameID != nil:
					vals = append(vals, v.NameID.Value)
				default:
					vals = append(vals, v.Value)
				}
			}
			out.Attributes[attr.Name] = vals
		}
	}
	for _, st := range a.AuthnStatements {
		if st.SessionIndex != "" {
			out.Logout.SessionID = st.SessionIndex
			break
		}
	}
	// The latest AuthnInstant: when the person last authenticated, as
	// the IdP says (one statement per authentication; IdPs send one).
	for _, st := range a.AuthnStatements {
		if st.AuthnInstant.After(out.AuthTime) {
			out.AuthTime = st.AuthnInstant
		}
	}
	out.Logout.Subject = out.Subject
	out.Logout.SubjectFormat = out.SubjectFormat
	// checkTimes has refused a bound that has passed beyond the skew; the
	// sign-in ends the session by the bound read with that skew, as every
	// other time of the assertion is, so that a session accepted within
	// it does not start already ended (and send the browser straight
	// back to the IdP, which would answer with the same bound).
	if end, ok := sessionNotOnOrAfter(a); ok {
		out.SessionNotOnOrAfter = end.Add(p.cfg.ClockSkew)
	}
	return out
}

// sessionNotOnOrAfter returns the earliest SessionNotOnOrAfter of a's
// AuthnStatements, and false when none sets one. Each statement bounds the
// session on its own, so the earliest is the bound that holds.
func sessionNotOnOrAfter(a *saml.Assertion) (time.Time, bool) {
	var end time.Time
	for _, st := range a.AuthnStatements {
		if t := st.SessionNotOnOrAfter; t != nil && !t.IsZero() && (end.IsZero() || t.Before(end)) {
			end = *t
		}
	}
	return end, !end.IsZero()
}
