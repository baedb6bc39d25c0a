package saml

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
)

// bearer is a bearer SubjectConfirmation to the harness's ACS answering
// requestID, valid from notBefore (zero: no NotBefore) until notOnOrAfter.
func (h *harness) bearer(requestID string, notBefore, notOnOrAfter time.Time) saml.SubjectConfirmation {
	return saml.SubjectConfirmation{
		Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
		SubjectConfirmationData: &saml.SubjectConfirmationData{
			InResponseTo: requestID, NotBefore: notBefore, NotOnOrAfter: notOnOrAfter, Recipient: h.acs(),
		},
	}
}

// TestACSConfirmationWithinSkew: crewjam accepts an assertion when any one
// bearer SubjectConfirmation passes its own checks with its fixed three
// minutes of skew; checkTimes must hold that same confirmation to
// ClockSkew. A second confirmation that crewjam would never accept (another
// method, another Recipient, another InResponseTo) must not vouch for the
// times instead. Each refused case is a confirmation 2 minutes past its
// NotOnOrAfter (within crewjam's skew, beyond the harness's 1 minute),
// beside one with good times that fails another check.
func TestACSConfirmationWithinSkew(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-2*time.Minute), now.Add(5*time.Minute)
	cases := []struct {
		name string
		// confirmations builds the Subject's confirmations for the login
		// answering requestID.
		confirmations func(h *harness, requestID string) []saml.SubjectConfirmation
		want          string
	}{
		{name: "one bearer, valid", want: "", confirmations: func(h *harness, id string) []saml.SubjectConfirmation {
			return []saml.SubjectConfirmation{h.bearer(id, time.Time{}, future)}
		}},
		{name: "expired bearer beside a valid one", want: "", confirmations: func(h *harness, id string) []saml.SubjectConfirmation {
			return []saml.SubjectConfirmation{h.bearer(id, time.Time{}, past), h.bearer(id, time.Time{}, future)}
		}},
		{name: "expired bearer beside a holder-of-key confirmation", want: CodeExpired, confirmations: func(h *harness, id string) []saml.SubjectConfirmation {
			hok := h.bearer(id, time.Time{}, future)
			hok.Method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
			return []saml.SubjectConfirmation{h.bearer(id, time.Time{}, past), hok}
		}},
		{name: "expired bearer beside one for another Recipient", want: CodeExpired, confirmations: func(h *harness, id string) []saml.SubjectConfirmation {
			other := h.bearer(id, time.Time{}, future)
			other.SubjectConfirmationData.Recipient = "https://other.example/acs"
			return []saml.SubjectConfirmation{h.bearer(id, time.Time{}, past), other}
		}},
		{name: "expired bearer beside one answering another request", want: CodeExpired, confirmations: func(h *harness, id string) []saml.SubjectConfirmation {
			return []saml.SubjectConfirmation{h.bearer(id, time.Time{}, past), h.bearer("id-other", time.Time{}, future)}
		}},
		// SAML Profiles 4.1.4.2 forbids NotBefore on a bearer confirmation;
		// crewjam takes one up to three minutes ahead.
		{name: "bearer NotBefore 2 minutes ahead", want: CodeExpired, confirmations: func(h *harness, id string) []saml.SubjectConfirmation {
			return []saml.SubjectConfirmation{h.bearer(id, now.Add(2*time.Minute), future)}
		}},
		{name: "bearer NotBefore 30 seconds ahead, within ClockSkew", want: "", confirmations: func(h *harness, id string) []saml.SubjectConfirmation {
			return []saml.SubjectConfirmation{h.bearer(id, now.Add(30*time.Second), future)}
		}},
	}
	h := newHarness(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pend := h.begin(t)
			spec := h.spec(pend)
			spec.Assertion = func(a *saml.Assertion) {
				a.Subject.SubjectConfirmations = tc.confirmations(h, pend.requestID)
			}
			a, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q, want %q (err: %v)", got, tc.want, err)
			}
			if tc.want == "" && (a == nil || a.Subject != "ada") {
				t.Fatalf("accepted assertion = %+v", a)
			}
		})
	}

	// IdP-initiated: only a confirmation without InResponseTo counts. The
	// assertion is encrypted, so the unverified pre-scan cannot see the
	// other confirmation's InResponseTo and the response is tried as
	// IdP-initiated.
	t.Run("IdP-initiated: expired bearer beside one answering a request", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AllowIdPInitiated = true })
		spec := h.spec(pending{})
		spec.EncryptTo = testKeys()[0].Certificate
		spec.Assertion = func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations = []saml.SubjectConfirmation{h.bearer("", time.Time{}, past), h.bearer("id-other", time.Time{}, future)}
		}
		_, _, err := h.callback(t, pending{}, h.forge(t, spec, "/reports", nil))
		if got := codeOf(err); got != CodeExpired {
			t.Fatalf("code = %q, want %q (err: %v)", got, CodeExpired, err)
		}
	})
}

// TestACSEmptyInResponseToIsUnsolicited: an IdP-initiated Response may
// carry InResponseTo="" (some IdPs write the attribute empty). That claims
// no AuthnRequest, so with IdP-initiated login on it is accepted as one,
// not refused as a lost SP-initiated login; and as one opened by no flow
// cookie (Unbound), so that its replay is refused as unbound traffic.
func TestACSEmptyInResponseToIsUnsolicited(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowIdPInitiated = true })
	spec := h.spec(pending{})
	spec.SignResponse = false // the root attribute is added after signing
	form := h.forge(t, spec, "/reports", func(resp *etree.Element) {
		resp.CreateAttr("InResponseTo", "")
	})
	a, returnTo, err := h.callback(t, pending{}, form)
	if err != nil || a == nil || a.Subject != "ada" || returnTo != "/reports" || !a.Unbound {
		t.Fatalf("IdP-initiated response with InResponseTo=\"\": %+v %q %v", a, returnTo, err)
	}
}

// TestACSAssertionContent: what the verified assertion hands to sign-in,
// from an IdP that uses every shape the conversion reads: a NameID with a
// format and qualifiers (kept for the LogoutRequest), attributes repeated
// across statements (merged), an xsi:nil value (dropped), a NameID-valued
// attribute (eduPersonTargetedID: its text), an attribute without a Name
// (dropped), and several AuthnStatements (the first SessionIndex, the
// latest AuthnInstant).
func TestACSAssertionContent(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	h := newHarness(t)
	pend := h.begin(t)
	spec := h.spec(pend)
	spec.Assertion = func(a *saml.Assertion) {
		a.Subject.NameID = &saml.NameID{Format: string(saml.PersistentNameIDFormat), Value: "ada-persistent",
			NameQualifier: h.idp.EntityID(), SPNameQualifier: h.entityID()}
		text := func(vs ...string) []saml.AttributeValue {
			var out []saml.AttributeValue
			for _, v := range vs {
				out = append(out, saml.AttributeValue{Type: "xs:string", Value: v})
			}
			return out
		}
		a.AttributeStatements = []saml.AttributeStatement{
			{Attributes: []saml.Attribute{
				{Name: "groups", Values: append(text("eng"), saml.AttributeValue{Nil: true})},
				{Name: "", FriendlyName: "nameless", Values: text("x")},
				{Name: "urn:oid:1.3.6.1.4.1.5923.1.1.1.10", FriendlyName: "eduPersonTargetedID", Values: []saml.AttributeValue{{
					NameID: &saml.NameID{Format: string(saml.PersistentNameIDFormat), Value: "targeted-7"},
				}}},
			}},
			{Attributes: []saml.Attribute{{Name: "groups", Values: text("admins")}}},
		}
		first := a.AuthnStatements[0]
		a.AuthnStatements = nil
		for _, st := range []struct {
			index string
			at    time.Duration
		}{{"", -10 * time.Minute}, {"index-2", -time.Minute}, {"index-3", -5 * time.Minute}} {
			s := first
			s.SessionIndex, s.AuthnInstant = st.index, now.Add(st.at)
			a.AuthnStatements = append(a.AuthnStatements, s)
		}
	}
	a, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject != "ada-persistent" || a.SubjectFormat != string(saml.PersistentNameIDFormat) {
		t.Errorf("subject %q format %q", a.Subject, a.SubjectFormat)
	}
	if a.Unbound {
		t.Error("a response to this browser's request is Unbound")
	}
	if l := a.Logout; l.Subject != a.Subject || l.SubjectFormat != a.SubjectFormat ||
		l.NameQualifier != h.idp.EntityID() || l.SPNameQualifier != h.entityID() || l.SessionID != "index-2" {
		t.Errorf("Logout = %+v, want the NameID as issued and the first SessionIndex index-2", l)
	}
	if got := a.Attributes["groups"]; !slices.Equal(got, []string{"eng", "admins"}) {
		t.Errorf("groups = %q, want both statements' values, without the nil one", got)
	}
	if got := a.Attributes["urn:oid:1.3.6.1.4.1.5923.1.1.1.10"]; !slices.Equal(got, []string{"targeted-7"}) {
		t.Errorf("eduPersonTargetedID = %q, want the NameID's text", got)
	}
	if _, ok := a.Attributes[""]; ok || len(a.Attributes) != 2 {
		t.Errorf("attributes = %q, want groups and eduPersonTargetedID only", a.Attributes)
	}
	if want := now.Add(-time.Minute); !a.AuthTime.Equal(want) {
		t.Errorf("AuthTime = %v, want the latest AuthnInstant %v", a.AuthTime, want)
	}
	if a.EmailVerified {
		t.Error("EmailVerified without TrustEmail")
	}
}

// TestSessionNotOnOrAfterExact: SessionNotOnOrAfter is exclusive, read
// with the clock skew like the other times: at exactly the bound plus
// ClockSkew the session may no longer start; a second before, it may.
func TestSessionNotOnOrAfterExact(t *testing.T) {
	at := time.Now().Truncate(time.Second)
	h := newHarness(t, func(c *Config) { c.Now = func() time.Time { return at } })
	for _, tc := range []struct {
		name  string
		bound time.Time
		want  string
	}{
		{"exactly ClockSkew ago", at.Add(-idp.DefaultClockSkew), CodeExpired},
		{"a second short of ClockSkew ago", at.Add(-idp.DefaultClockSkew + time.Second), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pend := h.begin(t)
			spec := h.spec(pend)
			spec.Assertion = func(a *saml.Assertion) { a.AuthnStatements[0].SessionNotOnOrAfter = &tc.bound }
			_, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q, want %q (err: %v)", got, tc.want, err)
			}
		})
	}
}

// TestBeginFlowCookie: the SAML ACS receives a cross-site POST from the
// IdP, which a browser sends a cookie with only when it is SameSite=None
// (and so Secure); the redirect to the IdP is not cached.
func TestBeginFlowCookie(t *testing.T) {
	h := newHarness(t)
	rec := httptest.NewRecorder()
	if err := h.p.Begin(rec, httptest.NewRequest(http.MethodGet, h.site.URL+"/login", nil), h.base, idp.SignInRequest{ReturnTo: "/app"}); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusFound || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Begin answered %d, Cache-Control %q; want 302, no-store", rec.Code, rec.Header().Get("Cache-Control"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].SameSite != http.SameSiteNoneMode || !cookies[0].Secure || !cookies[0].HttpOnly {
		t.Fatalf("flow cookies %+v, want one SameSite=None; Secure; HttpOnly", cookies)
	}
}

// TestBeginUsesTheBindingOffered: an IdP whose metadata lists its
// SingleSignOnService under one binding only gets the AuthnRequest by
// that binding, whatever request_binding says: a POST-only IdP a form
// posting to its location (not a redirect to an empty location), a
// Redirect-only IdP a redirect.
func TestBeginUsesTheBindingOffered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		binding string // request_binding
		offered string // the one SingleSignOnService binding the metadata keeps
	}{
		{"redirect configured, IdP offers POST only", "", saml.HTTPPostBinding},
		{"POST configured, IdP offers redirect only", BindingPost, saml.HTTPRedirectBinding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			resp, err := http.Get(h.idp.MetadataURL())
			if err != nil {
				t.Fatal(err)
			}
			doc := etree.NewDocument()
			_, err = doc.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			kept := 0
			for _, sso := range doc.FindElements("//SingleSignOnService") {
				if sso.SelectAttrValue("Binding", "") != tc.offered {
					sso.Parent().RemoveChild(sso)
				} else {
					kept++
				}
			}
			if kept != 1 {
				t.Fatalf("the IdP's metadata lists %d SingleSignOnService of %s, want 1", kept, tc.offered)
			}
			if h.cfg.MetadataXML, err = doc.WriteToBytes(); err != nil {
				t.Fatal(err)
			}
			h.cfg.MetadataURL, h.cfg.RequestBinding = "", tc.binding
			old := h.p
			h.p = h.newProvider() // closed by the harness
			old.Close()

			rec := httptest.NewRecorder()
			if err := h.p.Begin(rec, httptest.NewRequest(http.MethodGet, h.site.URL+"/login", nil), h.base, idp.SignInRequest{ReturnTo: "/app"}); err != nil {
				t.Fatal(err)
			}
			sso := h.idp.SSOURL()
			switch tc.offered {
			case saml.HTTPPostBinding:
				if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, `action="`+sso+`"`) || !strings.Contains(body, `name="SAMLRequest"`) {
					t.Errorf("Begin answered %d %q, want a form posting the SAMLRequest to %s", rec.Code, body, sso)
				}
			default:
				if loc := rec.Header().Get("Location"); rec.Code != http.StatusFound || !strings.HasPrefix(loc, sso+"?SAMLRequest=") {
					t.Errorf("Begin answered %d to %q, want a redirect to %s", rec.Code, loc, sso)
				}
			}
		})
	}
}

// TestACSTimesAtTheSkewBound: every time checkTimes holds to ClockSkew is
// read with the same bounds: a start time (IssueInstant, Conditions
// NotBefore, SubjectConfirmationData NotBefore) exactly ClockSkew ahead is
// still accepted, and an end time (SubjectConfirmationData NotOnOrAfter)
// is exclusive: exactly ClockSkew ago has expired, a second later has not.
func TestACSTimesAtTheSkewBound(t *testing.T) {
	at := time.Now().Truncate(time.Second)
	h := newHarness(t, func(c *Config) { c.Now = func() time.Time { return at } })
	skew := idp.DefaultClockSkew
	scd := func(a *saml.Assertion) *saml.SubjectConfirmationData {
		return a.Subject.SubjectConfirmations[0].SubjectConfirmationData
	}
	for _, tc := range []struct {
		name string
		edit func(a *saml.Assertion)
		want string
	}{
		{"IssueInstant exactly ClockSkew ahead", func(a *saml.Assertion) { a.IssueInstant = at.Add(skew) }, ""},
		{"Conditions NotBefore exactly ClockSkew ahead", func(a *saml.Assertion) { a.Conditions.NotBefore = at.Add(skew) }, ""},
		{"SubjectConfirmationData NotBefore exactly ClockSkew ahead", func(a *saml.Assertion) { scd(a).NotBefore = at.Add(skew) }, ""},
		{"SubjectConfirmationData NotOnOrAfter exactly ClockSkew ago", func(a *saml.Assertion) { scd(a).NotOnOrAfter = at.Add(-skew) }, CodeExpired},
		{"SubjectConfirmationData NotOnOrAfter a second short of ClockSkew ago", func(a *saml.Assertion) {
			scd(a).NotOnOrAfter = at.Add(-skew + time.Second)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pend := h.begin(t)
			spec := h.spec(pend)
			spec.Assertion = tc.edit
			a, _, err := h.callback(t, pend, h.forge(t, spec, pend.relayState, nil))
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q, want %q (err: %v)", got, tc.want, err)
			}
			if tc.want == "" && (a == nil || a.Subject != "ada") {
				t.Fatalf("accepted assertion = %+v", a)
			}
		})
	}
}
