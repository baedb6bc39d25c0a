package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
)

// TestSLOSPInitiated: after a login, Logout sends a signed LogoutRequest to
// the IdP, which verifies it against the SP metadata, ends its session and
// answers; HandleSLO verifies the LogoutResponse and redirects to returnTo.
// The IdP offers both bindings (the request goes in a form), or only one.
func TestSLOSPInitiated(t *testing.T) {
	for _, bindings := range [][]string{
		{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		{saml.HTTPRedirectBinding},
		{saml.HTTPPostBinding},
	} {
		var names []string
		for _, b := range bindings {
			names = append(names, b[strings.LastIndex(b, "-")+1:])
		}
		t.Run(strings.Join(names, "+"), func(t *testing.T) {
			h := newHarness(t)
			h.idp.SetLogoutBindings(bindings...)
			h.idp.AddUser(oktaUser)
			b := newBrowser(t)
			if res := h.login(b, "ada", "pw", "/app"); res.Error != "" {
				t.Fatal(res.Error)
			}
			if n := h.idp.SessionCount(); n != 1 {
				t.Fatalf("%d IdP sessions", n)
			}
			p := b.autoSubmit(b.get(h.site.URL + "/logout?return_to=/bye"))
			if p.URL.Path != "/bye" || p.Status != http.StatusOK {
				t.Fatalf("logout ended at %s (%d): %s", p.URL, p.Status, short(p.Body))
			}
			if n := h.idp.SessionCount(); n != 0 {
				t.Fatalf("IdP session not ended: %d left", n)
			}
		})
	}

	t.Run("no SLO endpoint", func(t *testing.T) {
		h := newHarness(t)
		h.idp.SetHooks(samltest.Hooks{Metadata: func(ed *saml.EntityDescriptor) {
			ed.IDPSSODescriptors[0].SingleLogoutServices = nil
		}})
		rec := httptest.NewRecorder()
		done, err := h.p.Logout(rec, httptest.NewRequest(http.MethodGet, "/logout", nil), h.base, idp.LogoutInfo{Subject: "ada"}, "/")
		if done || err != nil || rec.Code != http.StatusOK || len(rec.Header()) != 0 || rec.Body.Len() != 0 {
			t.Fatalf("got %v %v, wrote %d %v", done, err, rec.Code, rec.Header())
		}
	})
	t.Run("no NameID", func(t *testing.T) {
		h := newHarness(t)
		done, err := h.p.Logout(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/logout", nil), h.base, idp.LogoutInfo{}, "/")
		if done || err != nil {
			t.Fatalf("got %v %v", done, err)
		}
	})
	t.Run("LogoutRequest carries the issued NameID format and SessionIndex", func(t *testing.T) {
		h := newHarness(t)
		rec := httptest.NewRecorder()
		info := idp.LogoutInfo{Subject: "ada@example.com", SubjectFormat: string(saml.EmailAddressNameIDFormat), SessionID: "idx-1"}
		if _, err := h.p.Logout(rec, httptest.NewRequest(http.MethodGet, "/logout", nil), h.base, info, "/"); err != nil {
			t.Fatal(err)
		}
		sent := sentLogoutRequest(t, rec)
		lr := sent.Request
		if alg := sent.signatureMethod(); alg != signatureMethod {
			t.Fatalf("LogoutRequest signed with %q, want %s", alg, signatureMethod)
		}
		if lr.NameID == nil || lr.NameID.Value != info.Subject || lr.NameID.Format != info.SubjectFormat ||
			lr.SessionIndex == nil || lr.SessionIndex.Value != "idx-1" || lr.Destination != h.idp.SLOURL() {
			t.Fatalf("LogoutRequest = %+v %+v", lr, lr.NameID)
		}
	})
}

// TestSLOIdPInitiated: the IdP's StartLogout sends a LogoutRequest to the
// SP's SLO endpoint; HandleSLO ends the local sessions through the callback
// and answers, and the IdP finishes at its return URL.
func TestSLOIdPInitiated(t *testing.T) {
	h := newHarness(t)
	h.idp.AddUser(oktaUser)
	b := newBrowser(t)
	res := h.login(b, "ada", "pw", "/app")
	if res.Error != "" {
		t.Fatal(res.Error)
	}
	p := b.autoSubmit(b.get(h.idp.LogoutURL(h.site.URL + "/after-idp-logout")))
	if p.URL.Path != "/after-idp-logout" {
		t.Fatalf("IdP logout ended at %s (%d): %s", p.URL, p.Status, short(p.Body))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.ended) != 1 || h.ended[0] != [2]string{"ada", res.Assertion.Logout.SessionID} {
		t.Fatalf("endSessions calls = %v, want [ada %s]", h.ended, res.Assertion.Logout.SessionID)
	}
}

// TestSLORefuses covers the LogoutRequest and LogoutResponse checks.
func TestSLORefuses(t *testing.T) {
	h := newHarness(t)
	spec := func() samltest.LogoutRequestSpec { return samlLogoutSpec(h, "ada") }
	past := time.Now().Add(-10 * time.Minute)
	soon := time.Now().Add(-2 * time.Minute)
	cases := []struct {
		name string
		edit func(*samltest.LogoutRequestSpec)
		post bool
		// query edits the redirect binding's raw query.
		query func(string) string
		// body edits the post binding's encoded form.
		body func(string) string
		want string
	}{
		{name: "redirect accepted", want: ""},
		{name: "post accepted", post: true, want: ""},
		{name: "redirect unsigned", edit: func(s *samltest.LogoutRequestSpec) { s.Sign = false }, want: CodeSignature},
		{name: "post unsigned", post: true, edit: func(s *samltest.LogoutRequestSpec) { s.Sign = false }, want: CodeSignature},
		{name: "expired IssueInstant", edit: func(s *samltest.LogoutRequestSpec) { s.IssueInstant = past }, want: CodeExpired},
		{name: "expired NotOnOrAfter", edit: func(s *samltest.LogoutRequestSpec) { s.NotOnOrAfter = &past }, want: CodeExpired},
		{name: "NotOnOrAfter within crewjam's skew", edit: func(s *samltest.LogoutRequestSpec) { s.NotOnOrAfter = &soon }, want: ""},
		{name: "wrong Destination", edit: func(s *samltest.LogoutRequestSpec) { s.Destination = "https://other.example/slo" }, want: CodeDestination},
		{name: "wrong Issuer", edit: func(s *samltest.LogoutRequestSpec) { s.Issuer = "https://evil.example/idp" }, want: CodeIssuer},
		{name: "empty NameID", edit: func(s *samltest.LogoutRequestSpec) { s.NameID = "" }, want: CodeIncomplete},
		// The signature covers only the SAML parameters: the size cap is
		// what refuses a signed request padded with others.
		{name: "redirect query over MaxResponseSize (ours)", query: func(q string) string {
			return q + "&pad=" + strings.Repeat("A", DefaultMaxResponseSize)
		}, want: CodeResponseTooLarge},
		// ParseForm keeps the pairs before a malformed one: the signed
		// SAMLRequest parsed, the form is still refused whole.
		{name: "post with a malformed pair after the request (ours)", post: true,
			body: func(b string) string { return b + "&%zz" }, want: CodeMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := spec()
			if tc.edit != nil {
				tc.edit(&s)
			}
			h.mu.Lock()
			h.ended = nil
			h.mu.Unlock()
			var r *http.Request
			if tc.post {
				form, err := h.idp.LogoutRequestForm(s, "rs")
				if err != nil {
					t.Fatal(err)
				}
				body := form.Encode()
				if tc.body != nil {
					body = tc.body(body)
				}
				r = h.postSLOBody(body, nil)
			} else {
				// The request arrives at the SLO endpoint whatever its
				// Destination says.
				uu, _ := url.Parse(h.logoutRequestURL(t, s, "rs"))
				q := uu.RawQuery
				if tc.query != nil {
					q = tc.query(q)
				}
				r = httptest.NewRequest(http.MethodGet, h.slo()+"?"+q, nil)
			}
			rec := httptest.NewRecorder()
			err := h.p.HandleSLO(rec, r, h.base, h.endSessions)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q, want %q (%v)", got, tc.want, err)
			}
			h.mu.Lock()
			ended := h.ended
			h.mu.Unlock()
			if tc.want != "" {
				if len(ended) != 0 || rec.Body.Len() != 0 || rec.Header().Get("Location") != "" {
					t.Fatalf("refused, yet sessions ended (%v) or a response was written", ended)
				}
				return
			}
			if len(ended) != 1 || ended[0] != [2]string{"ada", "idx-1"} {
				t.Fatalf("endSessions calls = %v", ended)
			}
			if tc.post {
				if !strings.Contains(rec.Body.String(), `name="SAMLResponse"`) || !strings.Contains(rec.Body.String(), h.idp.SLOURL()) {
					t.Fatalf("POST LogoutResponse form missing: %s", short(rec.Body.String()))
				}
				return
			}
			loc, _ := url.Parse(rec.Header().Get("Location"))
			if !strings.HasPrefix(loc.String(), h.idp.SLOURL()+"?") || loc.Query().Get("Signature") == "" || loc.Query().Get("RelayState") != "rs" {
				t.Fatalf("LogoutResponse redirect = %s", loc)
			}
			if got := logoutStatus(t, rec); got != saml.StatusSuccess {
				t.Fatalf("status %q", got)
			}
		})
	}

	t.Run("replayed LogoutRequest", func(t *testing.T) {
		u := h.logoutRequestURL(t, spec(), "")
		if err := h.p.HandleSLO(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, u, nil), h.base, h.endSessions); err != nil {
			t.Fatal(err)
		}
		err := h.p.HandleSLO(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, u, nil), h.base, h.endSessions)
		if codeOf(err) != CodeReplayed {
			t.Fatalf("replay: %v", err)
		}
	})
	t.Run("endSessions fails", func(t *testing.T) {
		rec := httptest.NewRecorder()
		err := h.p.HandleSLO(rec, h.logoutRequest(t, spec(), "", false), h.base, func(context.Context, string, []string, *idp.SingleUse) error {
			return errors.New("store down")
		})
		if !errors.Is(err, ErrPartialLogout) || codeOf(err) != CodeLogoutFailed {
			t.Fatalf("got %v", err)
		}
		if got := logoutStatus(t, rec); got != saml.StatusResponder {
			t.Fatalf("status %q, want Responder", got)
		}
	})
	t.Run("DOCTYPE in a signed LogoutRequest (ours)", func(t *testing.T) {
		for _, post := range []bool{false, true} {
			var r *http.Request
			if post {
				form, err := h.idp.LogoutRequestForm(spec(), "")
				if err != nil {
					t.Fatal(err)
				}
				reencodeField(t, form, "SAMLRequest", func(s string) string { return `<!DOCTYPE x [<!ENTITY a "b">]>` + s })
				r = h.postSLO(form, nil)
			} else {
				r = httptest.NewRequest(http.MethodGet, h.slo()+"?"+url.Values{"SAMLRequest": {deflateB64(t, `<!DOCTYPE x [<!ENTITY a "b">]><x/>`)}}.Encode(), nil)
			}
			if err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions); codeOf(err) != CodeDoctype {
				t.Fatalf("post=%v: got %v", post, err)
			}
		}
	})
	t.Run("neither request nor response", func(t *testing.T) {
		err := h.p.HandleSLO(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, h.slo(), nil), h.base, h.endSessions)
		if codeOf(err) != CodeSLOMessageMissing {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("oversize POST", func(t *testing.T) {
		r := h.postSLO(url.Values{"SAMLRequest": {strings.Repeat("A", DefaultMaxResponseSize+1)}}, nil)
		if err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions); codeOf(err) != CodeResponseTooLarge {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("LogoutResponse without a logout begun here", func(t *testing.T) {
		q := url.Values{"SAMLResponse": {deflateB64(t, "<x/>")}, "RelayState": {"/x"}}
		r := httptest.NewRequest(http.MethodGet, h.slo()+"?"+q.Encode(), nil)
		if err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions); codeOf(err) != CodeFlowMissing {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("LogoutResponse with a malformed pair after it (ours)", func(t *testing.T) {
		// The answer to a logout begun here, correct but for the pair
		// after it, which ParseForm reports having kept the SAMLResponse.
		id, relayState, cookies := h.beginLogout(t)
		body := url.Values{"SAMLResponse": {h.signedLogoutResponse(t, id)}, "RelayState": {relayState}}.Encode() + "&%zz"
		rec := httptest.NewRecorder()
		if err := h.p.HandleSLO(rec, h.postSLOBody(body, cookies), h.base, h.endSessions); codeOf(err) != CodeMalformed || rec.Header().Get("Location") != "" {
			t.Fatalf("got %v, Location %q", err, rec.Header().Get("Location"))
		}
	})
	t.Run("LogoutResponse to another request", func(t *testing.T) {
		// Begin a logout to get a flow cookie, then answer a different
		// request ID, as a replayed LogoutResponse would.
		_, relayState, cookies := h.beginLogout(t)
		v := h.signedLogoutResponse(t, "id-someone-else")
		r := h.postSLO(url.Values{"SAMLResponse": {v}, "RelayState": {relayState}}, cookies)
		if err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions); codeOf(err) != CodeInResponseTo {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("LogoutResponse posted to another site's SLO (ours)", func(t *testing.T) {
		// A LogoutResponse for a logout begun at this site, addressed to
		// and posted at another site's SLO endpoint (same host, another
		// base), with the cookie the browser holds for the host.
		rec := httptest.NewRecorder()
		if _, err := h.p.Logout(rec, httptest.NewRequest(http.MethodGet, h.site.URL+"/logout", nil), h.base, idp.LogoutInfo{Subject: "ada"}, "/bye"); err != nil {
			t.Fatal(err)
		}
		sent := sentLogoutRequest(t, rec)
		other := h.site.URL + "/.sso/saml/other/"
		form := url.Values{"SAMLResponse": {h.signedLogoutResponseTo(t, other+"slo", sent.Request.ID)}, "RelayState": {sent.RelayState}}
		r := httptest.NewRequest(http.MethodPost, other+"slo", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range rec.Result().Cookies() {
			r.AddCookie(c)
		}
		if err := h.p.HandleSLO(httptest.NewRecorder(), r, other, h.endSessions); codeOf(err) != CodeACSMismatch {
			t.Fatalf("got %v", err)
		}
	})
}

// signedLogoutResponseTo is signedLogoutResponse addressed to slo.
func (h *harness) signedLogoutResponseTo(t *testing.T, slo, inResponseTo string) string {
	t.Helper()
	resp := &saml.LogoutResponse{
		ID: "id-resp", InResponseTo: inResponseTo, Version: "2.0", IssueInstant: time.Now(), Destination: slo,
		Issuer: &saml.Issuer{Value: h.idp.EntityID()},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	signed, err := h.idp.SignElement(resp.Element())
	if err != nil {
		t.Fatal(err)
	}
	v, err := samltest.Encode(signed)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSLOExpiredMetadata: the SLO endpoint trusts the IdP's keys only as
// long as sign-in does. Once the metadata is past its validUntil, a
// LogoutRequest signed with its key is refused and ends no session, and a
// LogoutResponse is refused too (marked SessionEnded: Logout already ended
// the local session). (A load refuses metadata already expired, so the
// copy loaded here expires in place; the IdP's is expired too, or the
// endpoint would fetch it and trust it: TestMetadataExpiredAfterClockJump.)
func TestSLOExpiredMetadata(t *testing.T) {
	h := newHarness(t)
	md, err := h.p.metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	md.validUntil = time.Now().Add(-time.Second)
	h.idp.SetMetadataValidity(-time.Minute)
	spec := samlLogoutSpec(h, "ada")
	cases := []struct {
		name string
		req  func(t *testing.T) *http.Request
		// response: the message answers a Logout of this browser.
		response bool
	}{
		{name: "LogoutRequest, redirect", req: func(t *testing.T) *http.Request {
			return h.logoutRequest(t, spec, "rs", false)
		}},
		{name: "LogoutRequest, post", req: func(t *testing.T) *http.Request {
			return h.logoutRequest(t, spec, "rs", true)
		}},
		{name: "LogoutResponse", response: true, req: func(t *testing.T) *http.Request {
			// Logout itself only sends the browser to the IdP.
			id, relayState, cookies := h.beginLogout(t)
			v := h.signedLogoutResponse(t, id)
			return h.postSLO(url.Values{"SAMLResponse": {v}, "RelayState": {relayState}}, cookies)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.mu.Lock()
			h.ended = nil
			h.mu.Unlock()
			rec := httptest.NewRecorder()
			err := h.p.HandleSLO(rec, tc.req(t), h.base, h.endSessions)
			var le *idp.LoginError
			if !errors.As(err, &le) || le.Code != idp.CodeMisconfigured || !strings.Contains(err.Error(), "expired") {
				t.Fatalf("got %v, want %s (expired metadata)", err, idp.CodeMisconfigured)
			}
			if le.SessionEnded != tc.response {
				t.Errorf("SessionEnded = %v, want %v", le.SessionEnded, tc.response)
			}
			h.mu.Lock()
			ended := h.ended
			h.mu.Unlock()
			if len(ended) != 0 || rec.Body.Len() != 0 || rec.Header().Get("Location") != "" {
				t.Fatalf("refused, yet sessions ended (%v) or a response was written (%d %v)", ended, rec.Code, rec.Header())
			}
		})
	}
}

// postSLO is a form the IdP's page posts to the SLO endpoint, with the
// browser's cookies.
func (h *harness) postSLO(form url.Values, cookies []*http.Cookie) *http.Request {
	return h.postSLOBody(form.Encode(), cookies)
}

// postSLOBody is postSLO with the body as it is: a form no url.Values
// encodes (a malformed pair).
func (h *harness) postSLOBody(body string, cookies []*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodPost, h.slo(), strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return r
}

// logoutRequestURL is where the IdP sends the LogoutRequest of spec on
// the HTTP-Redirect binding: spec's Destination with the query.
func (h *harness) logoutRequestURL(t testing.TB, spec samltest.LogoutRequestSpec, relayState string) string {
	t.Helper()
	u, err := h.idp.LogoutRequestRedirectURL(spec, relayState)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// logoutRequest is the IdP's LogoutRequest of spec on the HTTP-POST
// binding (post, to the SLO endpoint) or the HTTP-Redirect one (to spec's
// Destination).
func (h *harness) logoutRequest(t testing.TB, spec samltest.LogoutRequestSpec, relayState string, post bool) *http.Request {
	t.Helper()
	if !post {
		return httptest.NewRequest(http.MethodGet, h.logoutRequestURL(t, spec, relayState), nil)
	}
	form, err := h.idp.LogoutRequestForm(spec, relayState)
	if err != nil {
		t.Fatal(err)
	}
	return h.postSLO(form, nil)
}

// endSessions is the harness's HandleSLO callback. Like the store's
// session ender (account.IdPLogout), it uses once up only when the
// sessions end: with endErr set it fails and uses nothing up, and a
// request seen before ends nothing and is refused with once.Code.
func (h *harness) endSessions(ctx context.Context, nameID string, sessionIndexes []string, once *idp.SingleUse) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.endErr != nil {
		return h.endErr
	}
	if once != nil {
		first, err := h.replay.ConsumeOnce(ctx, once.Kind, once.ID, once.Until)
		if err != nil {
			return err
		}
		if !first {
			return idp.FailLogout(once.Code, errors.New("used before"))
		}
	}
	if len(sessionIndexes) == 0 {
		h.ended = append(h.ended, [2]string{nameID, ""})
	}
	for _, si := range sessionIndexes {
		h.ended = append(h.ended, [2]string{nameID, si})
	}
	return nil
}

func reencodeField(t testing.TB, form url.Values, field string, edit func(string) string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(form.Get(field))
	if err != nil {
		t.Fatal(err)
	}
	form.Set(field, base64.StdEncoding.EncodeToString([]byte(edit(string(raw)))))
}

func deflateB64(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// signedLogoutResponse is the IdP's signed, encoded LogoutResponse (a
// success) to the request inResponseTo.
func (h *harness) signedLogoutResponse(t *testing.T, inResponseTo string) string {
	t.Helper()
	return h.signedLogoutResponseTo(t, h.slo(), inResponseTo)
}

// TestUnrecordedIDRefused: a ServiceProvider built for anything but the
// ACS and the SLO endpoint (which record the IDs crewjam offers, for the
// transaction that acts on the message) refuses any ID offered to it, so
// that no message could pass with nothing to make it single-use.
func TestUnrecordedIDRefused(t *testing.T) {
	h := newHarness(t)
	e, err := h.p.siteEndpoints(h.base)
	if err != nil {
		t.Fatal(err)
	}
	sp := h.p.serviceProvider(e, &saml.EntityDescriptor{}, time.Now())
	err = sp.ReplayCache.Consume("LogoutRequest:id-1", time.Now().Add(time.Minute))
	if err == nil || codeOf(classify(err)) != CodeReplayCheck {
		t.Fatalf("Consume = %v, want a refusal classified %s", err, CodeReplayCheck)
	}
}

// TestSLORequestFromIdPWithoutSLOEndpoint: a signed LogoutRequest from an
// IdP whose metadata lists no SingleLogoutService has nobody to answer:
// the sessions are ended and the browser is told so in plain text; when
// they could not be ended, it is not told it signed out.
func TestSLORequestFromIdPWithoutSLOEndpoint(t *testing.T) {
	h := newHarness(t)
	h.idp.SetHooks(samltest.Hooks{Metadata: func(ed *saml.EntityDescriptor) {
		ed.IDPSSODescriptors[0].SingleLogoutServices = nil
	}})
	for _, tc := range []struct {
		name    string
		endErr  error
		wantErr error
		body    string
	}{
		{"sessions ended", nil, nil, "Signed out.\n"},
		{"sessions not ended", errors.New("store down"), ErrPartialLogout, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := h.p.HandleSLO(rec, h.logoutRequest(t, samltest.LogoutRequestSpec{Destination: h.slo(), NameID: "ada", Sign: true}, "", false), h.base, func(context.Context, string, []string, *idp.SingleUse) error {
				return tc.endErr
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("HandleSLO = %v, want %v", err, tc.wantErr)
			}
			if rec.Body.String() != tc.body || rec.Header().Get("Location") != "" {
				t.Fatalf("answered %d %q (Location %q), want %q", rec.Code, rec.Body.String(), rec.Header().Get("Location"), tc.body)
			}
		})
	}
}

// TestSLOAnswersAtResponseLocation: an IdP whose SingleLogoutService has a
// ResponseLocation gets its LogoutResponse there (saml-metadata 2.2.2), on
// either binding, not at the Location its requests go to.
func TestSLOAnswersAtResponseLocation(t *testing.T) {
	h := newHarness(t)
	answers := h.idp.URL + "/slo-responses"
	h.idp.SetHooks(samltest.Hooks{Metadata: func(ed *saml.EntityDescriptor) {
		for i := range ed.IDPSSODescriptors[0].SingleLogoutServices {
			ed.IDPSSODescriptors[0].SingleLogoutServices[i].ResponseLocation = answers
		}
	}})
	spec := samltest.LogoutRequestSpec{Destination: h.slo(), NameID: "ada", Sign: true}
	for _, post := range []bool{false, true} {
		rec := httptest.NewRecorder()
		if err := h.p.HandleSLO(rec, h.logoutRequest(t, spec, "rs", post), h.base, h.endSessions); err != nil {
			t.Fatalf("post=%v: %v", post, err)
		}
		if loc := rec.Header().Get("Location"); !post && !strings.HasPrefix(loc, answers+"?") {
			t.Errorf("LogoutResponse redirected to %q, want the ResponseLocation %s", loc, answers)
		}
		if body := rec.Body.String(); post && !strings.Contains(body, `action="`+answers+`"`) {
			t.Errorf("LogoutResponse form %q does not post to the ResponseLocation %s", short(body), answers)
		}
	}
}

// TestSLOEndSessionsRefusalNotReplay: only endSessions' replay refusal
// (the code of the single-use ID it was handed) means the LogoutRequest
// ended nothing and is refused unanswered; any other failure, a
// *idp.LoginError included, is answered to the IdP with status Responder
// and returned wrapping ErrPartialLogout.
func TestSLOEndSessionsRefusalNotReplay(t *testing.T) {
	h := newHarness(t)
	rec := httptest.NewRecorder()
	err := h.p.HandleSLO(rec, h.logoutRequest(t, samltest.LogoutRequestSpec{Destination: h.slo(), NameID: "ada", Sign: true}, "", false), h.base, func(context.Context, string, []string, *idp.SingleUse) error {
		return idp.Fail(CodeIncomplete, errors.New("store refused"))
	})
	if !errors.Is(err, ErrPartialLogout) || codeOf(err) != CodeLogoutFailed {
		t.Fatalf("HandleSLO = %v, want %s wrapping ErrPartialLogout", err, CodeLogoutFailed)
	}
	if got := logoutStatus(t, rec); got != saml.StatusResponder {
		t.Fatalf("status %q, want Responder", got)
	}
}

// TestSLORefusedLogoutResponseSessionEnded: a LogoutResponse refused for
// any reason (no flow, another request's answer, a bad signature) comes
// after Logout ended the local session, so the error says so.
func TestSLORefusedLogoutResponseSessionEnded(t *testing.T) {
	h := newHarness(t)
	id, relayState, cookies := h.beginLogout(t)
	for _, tc := range []struct {
		name    string
		value   string
		cookies bool
		want    string
		tail    string // after the encoded form: a fault of the form itself
	}{
		{"without the flow cookie", h.signedLogoutResponse(t, id), false, CodeFlowMissing, ""},
		{"answering another request", h.signedLogoutResponse(t, "id-someone-else"), true, CodeInResponseTo, ""},
		// Refused before it is read as a LogoutResponse: the form, the DTD.
		{"with a malformed pair after it", h.signedLogoutResponse(t, id), true, CodeMalformed, "&%zz"},
		{"declaring a DTD", base64.StdEncoding.EncodeToString([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><x/>`)), true, CodeDoctype, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var jar []*http.Cookie
			if tc.cookies {
				jar = cookies
			}
			r := h.postSLOBody(url.Values{"SAMLResponse": {tc.value}, "RelayState": {relayState}}.Encode()+tc.tail, jar)
			err := h.p.HandleSLO(httptest.NewRecorder(), r, h.base, h.endSessions)
			var le *idp.LoginError
			if !errors.As(err, &le) || le.Code != tc.want || !le.SessionEnded {
				t.Fatalf("HandleSLO = %v (SessionEnded %v), want %s with SessionEnded", err, le != nil && le.SessionEnded, tc.want)
			}
		})
	}
}
