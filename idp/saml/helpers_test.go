package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/idp/saml/samltest"
	"github.com/caddy-sso/caddy-sso/internal/htmlform"
)

// memReplay is an in-memory register of used single-use IDs for these tests
// only, standing in for the store's (store.Tx.Consume), which persists
// across restarts. The harness consumes each accepted assertion's SingleUse
// IDs with it, as the sign-in transaction does, and its session ender a
// LogoutRequest's ID, as the transaction that ends the sessions does; it
// outlives the Provider, so a new Provider (a restart) sees what was used.
type memReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time
	fail error
}

func newMemReplay() *memReplay { return &memReplay{seen: map[string]time.Time{}} }

func (m *memReplay) ConsumeOnce(_ context.Context, kind, id string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, m.fail
	}
	k := kind + "\x00" + id
	if _, ok := m.seen[k]; ok {
		return false, nil
	}
	m.seen[k] = until
	return true, nil
}

func (m *memReplay) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = map[string]time.Time{}
}

// testKeys are generated once: RSA key generation dominates otherwise.
var testKeys = sync.OnceValue(func() [3]KeyPair {
	var out [3]KeyPair
	for i := range out {
		kp, err := GenerateKeyPair(fmt.Sprintf("sp-%d.test", i))
		if err != nil {
			panic(err)
		}
		out[i] = kp
	}
	return out
})

// harness is an IdP (samltest) and an SP site (httptest) serving this
// package's endpoints at base, with a Provider between them.
type harness struct {
	t      testing.TB
	idp    *samltest.Server
	p      *Provider
	cfg    Config
	replay *memReplay
	flows  *idp.FlowCookies
	site   *httptest.Server
	base   string

	mu    sync.Mutex
	ended [][2]string // what endSessions ended: NameID, SessionIndex ("" for all)
	// endErr makes endSessions fail, using nothing up.
	endErr error
	// lastInfo is the LogoutInfo of the last login at the site.
	lastInfo idp.LogoutInfo
}

type harnessOpt func(*Config)

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	srv, err := samltest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h := &harness{t: t, idp: srv, replay: newMemReplay()}
	h.flows, err = idp.NewFlowCookies(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	h.site = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.site.Close)
	h.base = h.site.URL + "/.sso/saml/test/"
	keys := testKeys()
	h.cfg = Config{
		Name:        "test",
		MetadataURL: srv.MetadataURL(),
		SPKeys:      []KeyPair{keys[0]},
	}
	for _, o := range opts {
		o(&h.cfg)
	}
	h.p = h.newProvider()
	t.Cleanup(func() { h.p.Close() })
	h.register()
	return h
}

// newProvider makes a Provider on h.cfg with the harness's runtime, but
// without starting the metadata refresher: tests that want it call
// startRefresh themselves.
func (h *harness) newProvider() *Provider {
	h.t.Helper()
	p, err := New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	p.rt = idp.Runtime{Flows: h.flows, Sessions: sessionEnder{h}}
	p.minRetry = 10 * time.Millisecond
	return p
}

// sessionEnder records the sessions a LogoutRequest ends.
type sessionEnder struct{ h *harness }

func (e sessionEnder) EndSessions(ctx context.Context, _ string, subject string, sessionIDs []string, once *idp.SingleUse) (int, error) {
	return 0, e.h.endSessions(ctx, subject, sessionIDs, once)
}

// accept consumes an accepted assertion's single-use IDs, as the sign-in
// transaction does, and refuses a replay with the code the ID names.
func (h *harness) accept(ctx context.Context, a *idp.Assertion, returnTo string, err error) (*idp.Assertion, string, error) {
	if err != nil {
		return a, returnTo, err
	}
	for _, su := range a.SingleUse {
		first, err := h.replay.ConsumeOnce(ctx, su.Kind, su.ID, su.Until)
		if err != nil {
			return nil, "", err
		}
		if !first {
			return nil, "", idp.Fail(su.Code, errors.New("replayed"))
		}
	}
	return a, returnTo, nil
}

// register gives the IdP the SP's metadata, as an administrator would.
func (h *harness) register() {
	h.t.Helper()
	resp, err := http.Get(h.base + "metadata")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("SP metadata: %s: %s", resp.Status, body)
	}
	if err := h.idp.RegisterServiceProvider(body); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) acs() string      { return h.base + "acs" }
func (h *harness) slo() string      { return h.base + "slo" }
func (h *harness) entityID() string { return h.base + "metadata" }

// loginResult is what the site's ACS answers, as JSON.
type loginResult struct {
	Assertion *idp.Assertion
	ReturnTo  string
	Code      string
	Error     string
}

// serve is the SP site: /login starts a login, the SP endpoints are under
// base, /logout starts SP-initiated SLO for the last login.
func (h *harness) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/.sso/saml/test/"
	switch r.URL.Path {
	case "/login":
		if err := h.p.Begin(w, r, h.base, idp.SignInRequest{ReturnTo: r.URL.Query().Get("return_to"), Reauthenticate: r.URL.Query().Get("reauth") == "1"}); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	case "/logout":
		h.mu.Lock()
		info := h.lastInfo
		h.mu.Unlock()
		done, err := h.p.Logout(w, r, h.base, info, r.URL.Query().Get("return_to"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if !done {
			http.Redirect(w, r, "/signed-out-locally", http.StatusSeeOther)
		}
	case prefix + "metadata":
		if err := h.p.Metadata(w, r, h.base); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	case prefix + "acs":
		a, returnTo, err := h.p.Callback(w, r, h.base)
		a, returnTo, err = h.accept(r.Context(), a, returnTo, err)
		res := loginResult{Assertion: a, ReturnTo: returnTo}
		if err != nil {
			res.Error = err.Error()
			var le *idp.LoginError
			if errors.As(err, &le) {
				res.Code = le.Code
			}
			w.WriteHeader(http.StatusForbidden)
		} else {
			h.mu.Lock()
			h.lastInfo = a.Logout
			h.mu.Unlock()
		}
		_ = json.NewEncoder(w).Encode(res)
	case prefix + "slo":
		err := h.p.HandleSLO(w, r, h.base, h.endSessions)
		if err != nil && !errors.Is(err, ErrPartialLogout) {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	default:
		fmt.Fprintf(w, "page %s", r.URL.Path)
	}
}

// browser is an HTTP client with a cookie jar that follows redirects and,
// like a browser with JavaScript, submits auto-posting forms.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

type page struct {
	URL    *url.URL
	Status int
	Body   string
}

func (b *browser) get(u string) page {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.read(resp)
}

func (b *browser) read(resp *http.Response) page {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(body)}
}

// form returns the action and the fields of the first form on p.
func (p page) form(t *testing.T) (string, url.Values) {
	t.Helper()
	action, fields, ok := htmlform.First(p.URL, p.Body)
	if !ok {
		t.Fatalf("no form on %s (status %d):\n%s", p.URL, p.Status, short(p.Body))
	}
	return action, fields
}

// submit posts the first form on p with extra fields set.
func (b *browser) submit(p page, extra url.Values) page {
	b.t.Helper()
	action, fields := p.form(b.t)
	for k, v := range extra {
		fields[k] = v
	}
	return b.post(action, fields)
}

// autoSubmit submits the auto-posting forms a browser with JavaScript
// would: AuthnRequests, responses, and the IdP's re-post after login.
func (b *browser) autoSubmit(p page) page {
	b.t.Helper()
	for range 5 {
		if !htmlform.AutoPosts(p.Body) {
			return p
		}
		p = b.submit(p, nil)
	}
	return p
}

// short trims a page body for failure messages.
func short(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

// login runs an SP-initiated login through the IdP's login form and the
// auto-posted response, and returns the ACS result.
func (h *harness) login(b *browser, username, password, returnTo string) loginResult {
	b.t.Helper()
	p := b.autoSubmit(b.get(h.site.URL + "/login?return_to=" + url.QueryEscape(returnTo)))
	if !strings.Contains(p.Body, `id="username"`) || !strings.Contains(p.Body, `id="login"`) {
		b.t.Fatalf("expected the IdP login form, got %s:\n%s", p.URL, short(p.Body))
	}
	p = b.autoSubmit(b.submit(p, url.Values{"username": {username}, "password": {password}}))
	var res loginResult
	if err := json.Unmarshal([]byte(p.Body), &res); err != nil {
		b.t.Fatalf("ACS answer %s (%d): %v\n%s", p.URL, p.Status, err, short(p.Body))
	}
	return res
}

// pending is a login begun with Begin, without a browser.
type pending struct {
	cookies    []*http.Cookie
	relayState string
	requestID  string
	location   string
}

// begin calls Begin directly and decodes the AuthnRequest it sends.
func (h *harness) begin(t testing.TB) pending {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := h.p.Begin(rec, httptest.NewRequest(http.MethodGet, h.site.URL+"/login", nil), h.base, idp.SignInRequest{ReturnTo: "/app"}); err != nil {
		t.Fatal(err)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loc.Query().Get("SAMLRequest") == "" {
		t.Fatalf("Begin did not redirect with a SAMLRequest: %d %v", rec.Code, rec.Header())
	}
	req := decodeRedirect(t, loc.Query().Get("SAMLRequest"))
	var ar saml.AuthnRequest
	if err := xml.Unmarshal(req, &ar); err != nil {
		t.Fatal(err)
	}
	return pending{cookies: rec.Result().Cookies(), relayState: loc.Query().Get("RelayState"), requestID: ar.ID, location: loc.String()}
}

func decodeRedirect(t testing.TB, v string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// callback posts form to the ACS with the pending login's cookies.
func (h *harness) callback(t testing.TB, pend pending, form url.Values) (*idp.Assertion, string, error) {
	t.Helper()
	return h.callbackBody(t, pend, form.Encode())
}

// callbackBody is callback with the body as it is: a form no url.Values
// encodes (a malformed pair).
func (h *harness) callbackBody(t testing.TB, pend pending, body string) (*idp.Assertion, string, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, h.acs(), strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range pend.cookies {
		r.AddCookie(c)
	}
	a, returnTo, err := h.p.Callback(httptest.NewRecorder(), r, h.base)
	return h.accept(r.Context(), a, returnTo, err)
}

// spec is a correct response to pend, signed on both levels.
func (h *harness) spec(pend pending) samltest.ResponseSpec {
	return samltest.ResponseSpec{
		ACS:           h.acs(),
		Audience:      h.entityID(),
		InResponseTo:  pend.requestID,
		User:          oktaUser,
		SignAssertion: true,
		SignResponse:  true,
	}
}

// forge builds a response for spec, lets tamper edit its XML, and returns
// the form the browser would post.
func (h *harness) forge(t testing.TB, spec samltest.ResponseSpec, relayState string, tamper func(*etree.Element)) url.Values {
	t.Helper()
	form := url.Values{"SAMLResponse": {forgeEncoded(t, h.idp, spec, tamper)}}
	if relayState != "" {
		form.Set("RelayState", relayState)
	}
	return form
}

// forgeEncoded is the SAMLResponse form value of a response srv forges
// for spec, after tamper (if any) edited its XML.
func forgeEncoded(t testing.TB, srv *samltest.Server, spec samltest.ResponseSpec, tamper func(*etree.Element)) string {
	t.Helper()
	el, err := srv.Forge(spec)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(el)
	}
	v, err := samltest.Encode(el)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func codeOf(err error) string {
	var le *idp.LoginError
	if errors.As(err, &le) {
		return le.Code
	}
	return ""
}

var (
	person   = samltest.Person{ID: "00u1abcd", FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", Groups: []string{"eng", "admins"}}
	oktaUser = samltest.Okta("ada", "pw", person)
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// selfSigned signs tmpl with key and parses the result: a test's
// certificate of whatever shape tmpl gives it.
func selfSigned(t *testing.T, key crypto.Signer, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
