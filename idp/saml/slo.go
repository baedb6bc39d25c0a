package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/crewjam/saml"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/idp"
)

// logoutFlow is what the flow cookie carries from Logout to the IdP's
// LogoutResponse at HandleSLO.
type logoutFlow struct {
	RequestID string `json:"i"`
	ReturnTo  string `json:"r"`
	SLO       string `json:"s"`
}

// withIssuedNameID makes the NameID of a LogoutRequest the one the IdP
// issued: its Format (crewjam would send the SP's configured format) and
// its NameQualifier and SPNameQualifier, in place of the ones crewjam fills
// in: IdPs match sessions on the NameID as they issued it (SAML profiles
// 4.4.4.1). A session stored before the qualifiers were kept has none, and
// its request names none.
func withIssuedNameID(info idp.LogoutInfo) saml.LogoutRequestOption {
	return func(req *saml.LogoutRequest) {
		if req.NameID == nil {
			return
		}
		req.NameID.Format = info.SubjectFormat
		req.NameID.NameQualifier = info.NameQualifier
		req.NameID.SPNameQualifier = info.SPNameQualifier
	}
}

// sloEndpoint picks the IdP's SingleLogoutService with the binding prefer,
// or else the other of HTTP-Redirect and HTTP-POST.
func sloEndpoint(sp *saml.ServiceProvider, prefer string) (binding, location string) {
	for _, b := range []string{prefer, otherBinding(prefer)} {
		if loc := sp.GetSLOBindingLocation(b); loc != "" {
			return b, loc
		}
	}
	return "", ""
}

// Logout starts SP-initiated Single Logout: it sends the browser to the
// IdP's SingleLogoutService (in an auto-submitting form, or a redirect
// when the IdP offers only HTTP-Redirect) with a signed LogoutRequest for
// info's NameID (Subject) and SessionIndex (SessionID), remembering the
// request ID and returnTo in a flow cookie so that the slo endpoint can
// check the IdP's LogoutResponse and then redirect to returnTo, and
// reports true. The caller ends the local session before calling it. When
// the IdP has no SLO endpoint, or info has no NameID, it writes nothing
// and reports false.
func (p *Provider) Logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) (bool, error) {
	err := p.logout(w, r, base, info, returnTo)
	if errors.Is(err, ErrNoSLO) {
		return false, nil
	}
	return err == nil, err
}

// LogoutOrigin is the origin of the IdP's SingleLogoutService, from the
// metadata loaded so far.
func (p *Provider) LogoutOrigin(context.Context) string {
	md := p.md.Load()
	if md == nil {
		return ""
	}
	for _, d := range md.ed.IDPSSODescriptors {
		for _, ep := range d.SingleLogoutServices {
			if u, err := url.Parse(ep.Location); err == nil && u.Host != "" {
				return u.Scheme + "://" + u.Host
			}
		}
	}
	return ""
}

// ServeEndpoint serves the endpoints Endpoints lists, the SP metadata
// (MetadataEndpoint) and the Single Logout endpoint (SLOEndpoint), of the
// site at base. A refused logout message is returned
// as an *idp.LoginError with Logout set, nothing written, for the caller's
// error page.
func (p *Provider) ServeEndpoint(w http.ResponseWriter, r *http.Request, base, name string) error {
	switch name {
	case MetadataEndpoint:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "SAML metadata takes GET", http.StatusMethodNotAllowed)
			return nil
		}
		return p.Metadata(w, r, base)
	case SLOEndpoint:
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "SAML single logout takes GET or POST", http.StatusMethodNotAllowed)
			return nil
		}
		err := p.HandleSLO(w, r, base, func(ctx context.Context, nameID string, sessionIndexes []string, once *idp.SingleUse) error {
			_, err := p.rt.Sessions.EndSessions(ctx, p.cfg.Name, nameID, sessionIndexes, once)
			return err
		})
		if errors.Is(err, ErrPartialLogout) {
			// The IdP has been answered (with a failure status);
			// nothing more may be written.
			p.log.Error("single logout: local sessions could not all be ended", zap.Error(err))
			return nil
		}
		var le *idp.LoginError
		if errors.As(err, &le) {
			le.Logout = true
		}
		return err
	}
	return idp.ErrNoEndpoint
}

func (p *Provider) logout(w http.ResponseWriter, r *http.Request, base string, info idp.LogoutInfo, returnTo string) error {
	e, err := p.siteEndpoints(base)
	if err != nil {
		return err
	}
	md, err := p.metadata(r.Context())
	if err != nil {
		return err
	}
	sp := p.serviceProvider(e, md.ed, p.cfg.Now())
	// HTTP-POST whenever the IdP offers it: the LogoutRequest names the
	// person (its NameID, often the email, is only deflated and base64
	// encoded), and in a redirect's Location it would reach Caddy's access
	// log and the browser's history. Only an IdP that offers nothing but
	// HTTP-Redirect (Entra ID) gets it in a URL.
	binding, location := sloEndpoint(sp, saml.HTTPPostBinding)
	if location == "" || info.Subject == "" {
		return ErrNoSLO
	}
	req, err := sp.MakeLogoutRequest(location, info.Subject, saml.WithSessionIndex(info.SessionID), withIssuedNameID(info))
	if err != nil {
		return idp.Fail(CodeRequestFailed, fmt.Errorf("saml idp %q: making LogoutRequest: %w", p.cfg.Name, err))
	}
	relayState := newRelayState()
	fl := logoutFlow{RequestID: req.ID, ReturnTo: idp.LocalPath(returnTo), SLO: e.slo.String()}
	if err := p.saveFlow(w, r, p.logoutFlowID(relayState), &fl); err != nil {
		return idp.Fail(CodeFlowSave, fmt.Errorf("saml idp %q: %w", p.cfg.Name, err))
	}
	w.Header().Set("Cache-Control", "no-store")
	if binding == saml.HTTPPostBinding {
		idp.WritePostForm(w, func(nonce string) []byte { return req.PostWithNonce(relayState, nonce) })
		return nil
	}
	u, err := sp.RedirectLogoutRequestURL(req, relayState)
	if err != nil {
		return idp.Fail(CodeRequestFailed, fmt.Errorf("saml idp %q: encoding LogoutRequest: %w", p.cfg.Name, err))
	}
	http.Redirect(w, r, u.String(), http.StatusFound)
	return nil
}

// HandleSLO is the SP's Single Logout endpoint for the site at base
// (HTTP-Redirect and HTTP-POST bindings). It handles two messages:
//
//   - an IdP-initiated LogoutRequest: it must be signed by the IdP, addressed
//     here and fresh. endSessions is called once, with its NameID, every
//     SessionIndex it carries (none: every session of that NameID), and
//     once, its ID, which endSessions must use up in the transaction that
//     ends the sessions, as idp.SessionEnder does: a request seen before
//     ends nothing and is refused with a *idp.LoginError of once.Code
//     (CodeReplayed), returned as it is with nothing written, and a
//     request whose sessions could not be ended stays unused, so the IdP's
//     retry ends them. The IdP gets a signed LogoutResponse. If
//     endSessions fails otherwise, the IdP is told so (status Responder)
//     and the returned error wraps ErrPartialLogout; the response is then
//     already written.
//   - the IdP's LogoutResponse to a Logout of this browser: it must be
//     signed and answer the request Logout sent; the browser is then
//     redirected to the returnTo given to Logout.
//
// Any other error is an *idp.LoginError and nothing has been written.
func (p *Provider) HandleSLO(w http.ResponseWriter, r *http.Request, base string, endSessions EndSessionsFunc) error {
	e, err := p.siteEndpoints(base)
	if err != nil {
		return err
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return idp.Fail(CodeMethodNotAllowed, fmt.Errorf("SLO got %s", r.Method))
	}
	q := r.URL.Query()
	var readErr error
	if r.Method == http.MethodPost {
		_, readErr = p.readForm(w, r) // refused below, once it is known what it refuses
	} else if len(r.URL.RawQuery) > int(p.cfg.MaxResponseSize) {
		readErr = idp.Fail(CodeResponseTooLarge, errors.New("SLO query too large"))
	}
	// crewjam reads the query first, then the form; so do we. A refused
	// form keeps the pairs parsed before the fault.
	isRequest := q.Get("SAMLRequest") != "" || (q.Get("SAMLResponse") == "" && r.PostForm.Get("SAMLRequest") != "")
	isResponse := !isRequest && (q.Get("SAMLResponse") != "" || r.PostForm.Get("SAMLResponse") != "")
	// A LogoutResponse answers a sign-out begun here, which ended the
	// local session already: refused for any reason (a malformed or
	// oversized form, a DTD, metadata past trust), the error says so.
	refused := func(err error) error {
		if isResponse {
			return sessionEnded(err)
		}
		return err
	}
	if readErr != nil {
		return refused(readErr)
	}
	if isRequest || isResponse {
		field := "SAMLRequest"
		if isResponse {
			field = "SAMLResponse"
		}
		if err := p.refuseSLODeclarations(r, field); err != nil {
			return refused(err)
		}
	}
	// Both messages are verified with the IdP's keys, so they are trusted
	// only as long as a sign-in would trust them: a LogoutRequest signed
	// with a key from expired metadata must not end sessions.
	md, err := p.signInMetadata(r.Context())
	switch {
	case err != nil:
		return refused(err)
	case isRequest:
		return p.handleLogoutRequest(w, r, e, md, endSessions)
	case isResponse:
		return sessionEnded(p.handleLogoutResponse(w, r, e, md))
	}
	return idp.Fail(CodeSLOMessageMissing, errors.New("SLO request carries neither SAMLRequest nor SAMLResponse"))
}

// EndSessionsFunc ends the local sessions a LogoutRequest names (see
// HandleSLO): those of nameID and, when sessionIndexes is not empty, one of
// sessionIndexes, in one transaction that also uses once up.
type EndSessionsFunc func(ctx context.Context, nameID string, sessionIndexes []string, once *idp.SingleUse) error

// sessionEnded marks a refused LogoutResponse: Logout ended the local
// session before sending its request, so the error page must not suggest
// the person is still signed in.
func sessionEnded(err error) error {
	var le *idp.LoginError
	if errors.As(err, &le) {
		le.SessionEnded = true
	}
	return err
}

// refuseSLODeclarations decodes the SLO message (inflating it, for the
// HTTP-Redirect binding) to refuse DTDs before crewjam parses it, as the ACS
// does.
func (p *Provider) refuseSLODeclarations(r *http.Request, field string) error {
	v, redirect := r.URL.Query().Get(field), true
	if v == "" {
		v, redirect = r.PostForm.Get(field), false
	}
	data, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return idp.Fail(CodeMalformed, fmt.Errorf("%s is not base64: %w", field, err))
	}
	if redirect {
		fr := flate.NewReader(bytes.NewReader(data))
		data, err = readCapped(fr, p.cfg.MaxResponseSize)
		_ = fr.Close()
		if err != nil {
			return idp.Fail(CodeMalformed, fmt.Errorf("inflating %s: %w", field, err))
		}
	}
	if err := refuseDeclarations(data); err != nil {
		if errors.Is(err, errDoctype) {
			return idp.Fail(CodeDoctype, err)
		}
		return idp.Fail(CodeMalformed, err)
	}
	return nil
}

func (p *Provider) handleLogoutRequest(w http.ResponseWriter, r *http.Request, e *endpoints, md *idpMetadata, endSessions EndSessionsFunc) error {
	ctx := r.Context()
	now := p.cfg.Now()
	// crewjam requires the signature (query string or enveloped), checks
	// Destination, IssueInstant, NotOnOrAfter and Issuer, and then offers
	// the request ID (as "LogoutRequest:" + ID) to the recorder, for the
	// transaction that ends the sessions to use up: were it used up here,
	// a request whose sessions could not be ended would be refused as a
	// replay when the IdP sent it again, and those sessions would live on.
	// A request signed with a key the cached metadata lacks reloads it,
	// as a sign-in does: after an IdP key rollover the first message
	// signed with the new key may well be a LogoutRequest.
	rec := &singleUseRecorder{prefix: p.cfg.Name + "/"}
	var req *saml.LogoutRequest
	md, err := p.verifyWithRollover(ctx, md, func(md *idpMetadata) (err error) {
		sp := p.serviceProvider(e, md.ed, now)
		sp.ReplayCache = rec
		req, err = sp.ValidateLogoutRequest(r)
		return err
	})
	if err != nil {
		return err
	}
	if rec.got == nil {
		// crewjam offers every accepted request's ID; without one
		// nothing would make this request single-use.
		return idp.Fail(CodeIncomplete, errors.New("LogoutRequest ID was not recorded"))
	}
	if req.NameID == nil || req.NameID.Value == "" {
		return idp.Fail(CodeIncomplete, errors.New("LogoutRequest has no NameID"))
	}
	relayState := r.PostForm.Get("RelayState")
	if r.URL.Query().Get("SAMLRequest") != "" {
		relayState = r.URL.Query().Get("RelayState")
	}

	var indexes []string
	for _, si := range req.AllSessionIndexes() {
		indexes = append(indexes, si.Value)
	}
	endErr := endSessions(ctx, req.NameID.Value, indexes, rec.got)
	var replayed *idp.LoginError
	if errors.As(endErr, &replayed) && replayed.Code == rec.got.Code {
		// Seen before: it ended nothing, and is refused like any other
		// LogoutRequest that does not verify, with nothing written.
		return endErr
	}
	status := saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}}
	if endErr != nil {
		status.StatusCode.Value = saml.StatusResponder
	}

	// Answer to the ResponseLocation, with the binding the request came
	// with when the IdP offers it.
	resp := p.serviceProvider(e, md.sloResponse, now)
	prefer := saml.HTTPRedirectBinding
	if r.Method == http.MethodPost {
		prefer = saml.HTTPPostBinding
	}
	binding, _ := sloEndpoint(resp, prefer)
	w.Header().Set("Cache-Control", "no-store")
	switch binding {
	case saml.HTTPRedirectBinding:
		u, err := resp.MakeRedirectLogoutResponseWithStatus(req.ID, relayState, status)
		if err != nil {
			return idp.Fail(CodeRequestFailed, fmt.Errorf("saml idp %q: making LogoutResponse: %w", p.cfg.Name, errors.Join(err, endErr)))
		}
		http.Redirect(w, r, u.String(), http.StatusFound) //nolint:gosec // G710: u is the IdP's SLO ResponseLocation from its metadata
	case saml.HTTPPostBinding:
		lr, err := resp.MakeLogoutResponseWithStatus(resp.GetSLOBindingLocation(saml.HTTPPostBinding), req.ID, status)
		if err != nil {
			return idp.Fail(CodeRequestFailed, fmt.Errorf("saml idp %q: making LogoutResponse: %w", p.cfg.Name, errors.Join(err, endErr)))
		}
		idp.WritePostForm(w, func(nonce string) []byte { return lr.PostWithNonce(relayState, nonce) })
	default:
		// A LogoutRequest from an IdP without an SLO endpoint to answer:
		// the sessions are ended, there is nobody to tell.
		if endErr == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("Signed out.\n"))
		}
	}
	if endErr != nil {
		return idp.Fail(CodeLogoutFailed, fmt.Errorf("saml idp %q: %w: %w", p.cfg.Name, ErrPartialLogout, endErr))
	}
	return nil
}

func (p *Provider) handleLogoutResponse(w http.ResponseWriter, r *http.Request, e *endpoints, md *idpMetadata) error {
	relayState := r.URL.Query().Get("RelayState")
	if r.URL.Query().Get("SAMLResponse") == "" {
		relayState = r.PostForm.Get("RelayState")
	}
	if !looksLikeRelayState(relayState) {
		return idp.Fail(CodeFlowMissing, errors.New("LogoutResponse without the RelayState of a logout begun here"))
	}
	var fl logoutFlow
	if err := p.takeFlow(w, r, p.logoutFlowID(relayState), &fl); err != nil {
		return flowError(err)
	}
	if fl.SLO != e.slo.String() {
		return idp.Fail(CodeACSMismatch, fmt.Errorf("LogoutResponse posted to %q, logout began for %q", e.slo, fl.SLO))
	}
	// Reloaded for an unknown key as a LogoutRequest is.
	if _, err := p.verifyWithRollover(r.Context(), md, func(md *idpMetadata) error {
		_, err := p.serviceProvider(e, md.ed, p.cfg.Now()).ParseLogoutResponse(r, []string{fl.RequestID})
		return err
	}); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, idp.LocalPath(fl.ReturnTo), http.StatusSeeOther)
	return nil
}
