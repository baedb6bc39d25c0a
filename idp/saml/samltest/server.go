// Package samltest is a small but real SAML 2.0 identity provider, built on
// crewjam/saml's saml.IdentityProvider: metadata, single sign-on (HTTP-Redirect
// and HTTP-POST AuthnRequests, signed ones verified against the SP's
// metadata), a plain HTML login form, the auto-submitting HTTP-POST form back
// to the ACS, IdP-initiated login, and Single Logout in both directions. The
// service-provider tests run complete logins against it, and the local demo
// uses it as its SAML identity provider.
//
// Users carry whatever attributes a test needs; the profile helpers give
// them the shapes Entra ID, Okta and PingOne send. Hooks and the Forge
// functions produce responses that are wrong on purpose.
//
// It keeps everything in memory and is not meant for production.
package samltest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/caddy-sso/caddy-sso/internal/pagestyle"
	"github.com/caddy-sso/caddy-sso/internal/testidp"
)

// Endpoint paths, relative to the server's URL.
const (
	PathMetadata     = "/metadata"
	PathSSO          = "/sso"
	PathLogin        = "/login"
	PathSLO          = "/slo"
	PathIdPInitiated = "/idp-initiated" // ?sp=<SP entity ID>&RelayState=<…>
	PathLogout       = "/logout"        // IdP-initiated SLO of this browser's session: ?return_to=<URL>
)

const (
	sessionCookie = "samltest_session"
	sessionTTL    = 8 * time.Hour
	maxFormBytes  = 1 << 20
	rsaKeyBits    = 2048
)

// User is an account at the IdP.
type User struct {
	Username, Password string
	// NameID is the Subject NameID sent for this user; default Username.
	NameID string
	// NameIDFormat is its Format; default unspecified.
	NameIDFormat string
	// Attributes are sent in the AttributeStatement, by Name, in name order.
	Attributes map[string][]string
}

// Hooks make the IdP misbehave for negative tests. Each may be nil.
type Hooks struct {
	// Assertion edits every assertion before it is signed and encrypted.
	Assertion func(*saml.Assertion)
	// Response edits every Response element after it is signed, just before
	// it is posted: changes made here break or bypass the signature.
	Response func(*etree.Element)
	// Metadata edits the IdP metadata before it is served.
	Metadata func(*saml.EntityDescriptor)
}

type session struct {
	s            saml.Session
	username     string
	participants []saml.SessionParticipant
	// request is the AuthnRequest (the SSO URL, or the posted
	// SAMLRequest) whose login form started the session: the one request
	// a ForceAuthn session answers without the form again.
	request string
}

// Server is a SAML identity provider. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the server's base URL, without a trailing slash; the entity ID
	// is URL+PathMetadata.
	URL string

	base   string // path of URL
	page   *template.Template
	served testidp.HTTP // with Start
	// Outages is the IdP's health: SetUnavailable, Stall and Requests
	// take its endpoints' Path* constants.
	testidp.Outages
	log *log.Logger

	mu            sync.Mutex
	now           func() time.Time
	key           *rsa.PrivateKey
	cert          *x509.Certificate
	extraCerts    []*x509.Certificate
	users         map[string]User
	sps           map[string]*saml.EntityDescriptor
	sessions      map[string]*session
	hooks         Hooks
	signResponse  bool
	signAssertion bool
	encrypt       bool
	encrypter     xmlenc.Encrypter
	validFor      time.Duration
	hint          string
	sloBindings   []string // metadata's SingleLogoutService bindings, in order
	// ignoreForceAuthn signs a browser with a session in without the
	// login form even when the AuthnRequest says ForceAuthn="true"
	// (SetIgnoreForceAuthn).
	ignoreForceAuthn bool
}

// NewServer returns an IdP at baseURL (http or https, optionally with a
// path) that is not listening: serve it yourself (it is an http.Handler) at
// that URL, or use Start.
func NewServer(baseURL string) (*Server, error) {
	base, ok := testidp.ParseBase(baseURL)
	if !ok {
		return nil, fmt.Errorf("samltest: invalid base URL %q", baseURL)
	}
	key, cert, err := NewKeyPair("samltest IdP")
	if err != nil {
		return nil, err
	}
	page, err := testidp.LoginPage("samltest", "Local SAML identity provider (samltest) at <code>{{.URL}}</code>")
	if err != nil {
		return nil, fmt.Errorf("samltest: login page: %w", err)
	}
	return &Server{
		URL:           strings.TrimSuffix(baseURL, "/"),
		base:          base,
		page:          page,
		log:           log.New(io.Discard, "", 0),
		now:           time.Now,
		key:           key,
		cert:          cert,
		users:         map[string]User{},
		sps:           map[string]*saml.EntityDescriptor{},
		sessions:      map[string]*session{},
		signResponse:  true,
		signAssertion: true,
		encrypt:       true,
		validFor:      48 * time.Hour,
		sloBindings:   []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
	}, nil
}

// Start listens on addr ("127.0.0.1:0" picks a port) and serves an IdP
// whose URL is http://host:port. An empty or unspecified host becomes
// 127.0.0.1, so the URL is always one a browser can open.
func Start(addr string) (*Server, error) {
	return testidp.Start("samltest", addr, NewServer, func(s *Server) *testidp.HTTP { return &s.served })
}

// Close stops a server started with Start; it is a no-op otherwise.
func (s *Server) Close() error { return s.served.Close() }

// NewKeyPair makes an RSA key and a self-signed certificate, as the IdP uses
// for signing; tests use it for keys the IdP metadata does not list.
func NewKeyPair(cn string) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("samltest: generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("samltest: creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// MetadataURL is the IdP's metadata URL, which is also its entity ID.
func (s *Server) MetadataURL() string { return s.URL + PathMetadata }

// EntityID is the IdP's entity ID (its metadata URL).
func (s *Server) EntityID() string { return s.MetadataURL() }

// SSOURL is the IdP's SingleSignOnService location.
func (s *Server) SSOURL() string { return s.URL + PathSSO }

// SLOURL is the IdP's SingleLogoutService location.
func (s *Server) SLOURL() string { return s.URL + PathSLO }

// IdPInitiatedURL is where a browser starts an IdP-initiated login to the
// SP spEntityID, which will receive relayState.
func (s *Server) IdPInitiatedURL(spEntityID, relayState string) string {
	q := url.Values{"sp": {spEntityID}}
	if relayState != "" {
		q.Set("RelayState", relayState)
	}
	return s.URL + PathIdPInitiated + "?" + q.Encode()
}

// LogoutURL is where a browser starts an IdP-initiated Single Logout of its
// IdP session; the IdP sends a LogoutRequest to every SP the session logged
// in to, then redirects to returnTo.
func (s *Server) LogoutURL(returnTo string) string {
	return s.URL + PathLogout + "?" + url.Values{"return_to": {returnTo}}.Encode()
}

// Key returns the current signing key and certificate.
func (s *Server) Key() (*rsa.PrivateKey, *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key, s.cert
}

// RotateKey replaces the signing key. The metadata then lists only the new
// certificate, unless keepOld, in which case the old one is listed too.
func (s *Server) RotateKey(keepOld bool) error {
	key, cert, err := NewKeyPair("samltest IdP")
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if keepOld {
		s.extraCerts = append(s.extraCerts, s.cert)
	} else {
		s.extraCerts = nil
	}
	s.key, s.cert = key, cert
	return nil
}

// AddUser adds or replaces a user; later logins see the change.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u.Attributes = cloneAttrs(u.Attributes)
	s.users[u.Username] = u
}

// RegisterServiceProvider registers an SP from its metadata (as served at
// its metadata URL), replacing any with the same entity ID.
func (s *Server) RegisterServiceProvider(metadata []byte) error {
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(metadata, &ed); err != nil {
		return fmt.Errorf("samltest: SP metadata: %w", err)
	}
	if ed.EntityID == "" || len(ed.SPSSODescriptors) == 0 {
		return errors.New("samltest: SP metadata has no entity ID or SPSSODescriptor")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sps[ed.EntityID] = &ed
	return nil
}

// SetHooks replaces all hooks.
func (s *Server) SetHooks(h Hooks) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = h
}

// SetSigning chooses what the IdP signs: the Response, the Assertion, or
// both (the default). Entra ID signs only the assertion by default; Okta and
// PingOne usually sign both.
func (s *Server) SetSigning(response, assertion bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signResponse, s.signAssertion = response, assertion
}

// SetEncryption turns assertion encryption on (the default: the IdP
// encrypts to the SP's metadata encryption certificate when it has one) or
// off, and sets the encrypter (nil: crewjam's choice, AES-GCM when the SP
// lists it).
func (s *Server) SetEncryption(on bool, enc xmlenc.Encrypter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.encrypt, s.encrypter = on, enc
}

// SetLogoutBindings sets the bindings the metadata lists for the
// SingleLogoutService, in order of preference; the default is HTTP-Redirect,
// then HTTP-POST. An SP picks from this list (caddy-sso's sends its
// LogoutRequest by HTTP-POST whenever it is listed), so offering
// saml.HTTPRedirectBinding alone is how a test gets a redirect, as from
// Entra ID. The SLO endpoint accepts both bindings whatever is
// listed, as crewjam's ServeSLO does. Given none, the metadata lists
// crewjam's default, HTTP-Redirect alone.
func (s *Server) SetLogoutBindings(bindings ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sloBindings = slices.Clone(bindings)
}

// SetMetadataValidity sets how long served metadata says it is valid
// (validUntil and cacheDuration); default 48 hours.
func (s *Server) SetMetadataValidity(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.validFor = d
}

// SetClock replaces the clock of everything the IdP issues and checks.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Now is the IdP's clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

// SetLoginHint sets a line the login page shows above the form, such as
// the demo's user names.
func (s *Server) SetLoginHint(hint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hint = hint
}

// SetLogger sends crewjam's IdP log lines to w (discarded by default).
func (s *Server) SetLogger(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = log.New(w, "samltest: ", log.LstdFlags)
}

// SetIgnoreForceAuthn makes the IdP misbehave: with ignore set, a
// browser with an IdP session is signed in without the login form even
// when the AuthnRequest says ForceAuthn="true". The assertion's
// AuthnInstant still says truthfully when the person last typed their
// password.
func (s *Server) SetIgnoreForceAuthn(ignore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreForceAuthn = ignore
}

// SessionCount returns the number of live IdP sessions.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// identityProvider builds the crewjam IdentityProvider for one request, with
// a clock fixed at the request's time, so that concurrent requests never
// share mutable state.
func (s *Server) identityProvider() *saml.IdentityProvider {
	s.mu.Lock()
	defer s.mu.Unlock()
	base, _ := url.Parse(s.URL)
	valid := s.validFor
	return &saml.IdentityProvider{
		Key:                     s.key,
		Certificate:             s.cert,
		ExtraCertificates:       slices.Clone(s.extraCerts),
		Logger:                  s.log,
		MetadataURL:             *base.JoinPath(PathMetadata),
		SSOURL:                  *base.JoinPath(PathSSO),
		LogoutURL:               *base.JoinPath(PathSLO),
		LogoutBindings:          slices.Clone(s.sloBindings),
		ServiceProviderProvider: s,
		SessionProvider:         s,
		AssertionMaker:          s,
		ResponseWriter:          s,
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
		ValidDuration:           &valid,
		Clock:                   dsig.NewFakeClockAt(s.now()),
		AssertionEncrypter:      s.encrypter,
		NameIDFormats: []saml.NameIDFormat{saml.PersistentNameIDFormat, saml.EmailAddressNameIDFormat,
			saml.UnspecifiedNameIDFormat, saml.TransientNameIDFormat},
	}
}

// ServeHTTP routes the IdP's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, s.base)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if s.Degraded(w, r, path) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	switch path {
	case PathMetadata:
		s.serveMetadata(w)
	case PathSSO:
		s.identityProvider().ServeSSO(w, r)
	case PathLogin:
		s.serveLogin(w, r)
	case PathIdPInitiated:
		s.identityProvider().ServeIDPInitiated(w, r, r.URL.Query().Get("sp"), r.URL.Query().Get("RelayState"))
	case PathSLO:
		s.identityProvider().ServeSLO(w, r)
	case PathLogout:
		s.serveLogout(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveMetadata(w http.ResponseWriter) {
	md := s.identityProvider().Metadata()
	s.mu.Lock()
	hook := s.hooks.Metadata
	s.mu.Unlock()
	if hook != nil {
		hook(md)
	}
	buf, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(buf)
}

// MetadataXML returns the metadata the server serves.
func (s *Server) MetadataXML() ([]byte, error) {
	md := s.identityProvider().Metadata()
	return xml.MarshalIndent(md, "", "  ")
}

// GetServiceProvider implements saml.ServiceProviderProvider. With
// encryption off, the SP's encryption keys are hidden from crewjam, which
// otherwise encrypts whenever it finds one.
func (s *Server) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ed, ok := s.sps[id]
	if !ok {
		return nil, os.ErrNotExist
	}
	cp := *ed
	if !s.encrypt {
		cp.SPSSODescriptors = slices.Clone(ed.SPSSODescriptors)
		for i := range cp.SPSSODescriptors {
			d := &cp.SPSSODescriptors[i]
			d.KeyDescriptors = slices.DeleteFunc(slices.Clone(d.KeyDescriptors), func(kd saml.KeyDescriptor) bool {
				return kd.Use == "encryption"
			})
		}
	}
	return &cp, nil
}

// GetSession implements saml.SessionProvider: the session of the browser's
// cookie, or the login form. An AuthnRequest with ForceAuthn="true" gets
// the form whatever session the browser has (SAML Core 3.4.1), unless
// SetIgnoreForceAuthn says otherwise; the session the form then starts
// answers it, with that new authentication's time as AuthnInstant
// (the session's CreateTime).
func (s *Server) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	request := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		request = r.PostForm.Get("SAMLRequest")
	}
	force := req.Request.ForceAuthn != nil && *req.Request.ForceAuthn
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		sess, ok := s.sessions[c.Value]
		var u User
		if ok {
			u, ok = s.users[sess.username]
		}
		if ok && force && !s.ignoreForceAuthn && sess.request != request {
			ok = false
		}
		s.mu.Unlock()
		if ok && s.Now().Before(sess.s.ExpireTime) {
			out := sess.s
			out.CustomAttributes = attributes(u.Attributes)
			return &out
		}
	}
	hidden := map[string]string{}
	if r.Method == http.MethodGet {
		hidden["continue"] = request
	} else {
		hidden["SAMLRequest"] = request
		hidden["RelayState"] = req.RelayState
	}
	s.renderLogin(w, hidden, "")
	return nil
}

type loginData struct {
	Action string
	Hidden map[string]string
	Error  string
	URL    string
	Hint   string
	CSS    template.CSS
}

func (s *Server) renderLogin(w http.ResponseWriter, hidden map[string]string, msg string) {
	s.mu.Lock()
	hint := s.hint
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if msg != "" {
		w.WriteHeader(http.StatusUnauthorized)
	}
	_ = s.page.Execute(w, loginData{Action: s.base + PathLogin, Hidden: hidden, Error: msg, URL: s.URL, Hint: hint, CSS: pagestyle.Template()})
}

const resumePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continue - samltest</title></head>
<body>
<form id="resume" method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<button id="continue" type="submit">Continue</button>
</form>
<script>document.getElementById('resume').submit();</script>
</body></html>
`

var resumeTemplate = template.Must(template.New("resume").Parse(resumePage))

// serveLogin checks the credentials, starts an IdP session, and resumes
// what the login form interrupted: a redirect back to the SSO or
// IdP-initiated URL (which still carries the request and any query string
// signature), or a re-post of an HTTP-POST AuthnRequest.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	hidden := map[string]string{}
	for _, k := range []string{"continue", "SAMLRequest", "RelayState"} {
		if v := r.PostForm.Get(k); v != "" {
			hidden[k] = v
		}
	}
	username := r.PostForm.Get("username")
	s.mu.Lock()
	u, ok := s.users[username]
	s.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(r.PostForm.Get("password"))) != 1 {
		s.renderLogin(w, hidden, "Invalid username or password.")
		return
	}
	now := s.Now()
	nameID, format := u.NameID, u.NameIDFormat
	if nameID == "" {
		nameID = u.Username
	}
	if format == "" {
		format = string(saml.UnspecifiedNameIDFormat)
	}
	request := hidden["continue"]
	if request == "" {
		request = hidden["SAMLRequest"]
	}
	sess := &session{username: username, request: request, s: saml.Session{
		ID:           rand.Text(),
		CreateTime:   now,
		ExpireTime:   now.Add(sessionTTL),
		Index:        hex.EncodeToString(randomBytes(16)),
		NameID:       nameID,
		NameIDFormat: format,
	}}
	s.mu.Lock()
	s.sessions[sess.s.ID] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.s.ID, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})

	if next := hidden["continue"]; next != "" {
		if !strings.HasPrefix(next, s.base+PathSSO+"?") && !strings.HasPrefix(next, s.base+PathIdPInitiated+"?") {
			http.Error(w, "bad continue URL", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if hidden["SAMLRequest"] != "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		delete(hidden, "continue")
		_ = resumeTemplate.Execute(w, loginData{Action: s.base + PathSSO, Hidden: hidden})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("Signed in.\n"))
}

// serveLogout starts IdP-initiated Single Logout of the browser's session.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		http.Error(w, "not signed in", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	sess, ok := s.sessions[c.Value]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "not signed in", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	out := sess.s
	s.identityProvider().StartLogout(w, r, &out, r.URL.Query().Get("return_to"))
	s.mu.Lock()
	delete(s.sessions, c.Value)
	s.mu.Unlock()
}

// InvalidateSession implements saml.SessionInvalidator: it ends every
// session the LogoutRequest names.
func (s *Server) InvalidateSession(w http.ResponseWriter, r *http.Request, req *saml.IdpLogoutRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.sessions {
		if req.MatchesSession(&sess.s) {
			delete(s.sessions, id)
			if c, err := r.Cookie(sessionCookie); err == nil && c.Value == id {
				http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
			}
		}
	}
	return nil
}

// AddSessionParticipant implements saml.SessionParticipantTracker.
func (s *Server) AddSessionParticipant(_ *http.Request, session *saml.Session, p saml.SessionParticipant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[session.ID]
	if !ok {
		return nil
	}
	for _, have := range sess.participants {
		if have == p {
			return nil
		}
	}
	sess.participants = append(sess.participants, p)
	return nil
}

// SessionParticipants implements saml.SessionParticipantTracker.
func (s *Server) SessionParticipants(_ *http.Request, match func(*saml.Session) bool) ([]saml.SessionParticipant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []saml.SessionParticipant
	for _, sess := range s.sessions {
		if match(&sess.s) {
			out = append(out, sess.participants...)
		}
	}
	return out, nil
}

// MakeAssertion implements saml.AssertionMaker: crewjam's default assertion
// (conditions, subject confirmation, authn statement), carrying only the
// user's configured attributes, then the Assertion hook.
func (s *Server) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	s.mu.Lock()
	hook := s.hooks.Assertion
	s.mu.Unlock()
	if hook != nil {
		hook(req.Assertion)
	}
	return nil
}

// WriteResponse implements saml.ResponseWriter: it signs (or not) as
// SetSigning says, applies the Response hook, and posts the auto-submitting
// form.
func (s *Server) WriteResponse(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	s.mu.Lock()
	signResponse, signAssertion, hook := s.signResponse, s.signAssertion, s.hooks.Response
	s.mu.Unlock()
	if req.ResponseEl == nil {
		if err := s.makeResponse(req, signResponse, signAssertion); err != nil {
			return err
		}
	}
	if hook != nil {
		hook(req.ResponseEl)
	}
	return req.WriteResponse(w)
}

func (s *Server) makeResponse(req *saml.IdpAuthnRequest, signResponse, signAssertion bool) error {
	if signResponse && signAssertion {
		return req.MakeResponse()
	}
	if req.ACSEndpoint == nil || req.Assertion == nil {
		return errors.New("samltest: request has no ACS endpoint or assertion")
	}
	key, cert := s.Key()
	signer := &signer{key: key, cert: cert}
	assertion := *req.Assertion
	resp := &saml.Response{
		Destination:  req.ACSEndpoint.Location,
		ID:           "id-" + hex.EncodeToString(randomBytes(20)),
		InResponseTo: req.Request.ID,
		IssueInstant: req.Now,
		Version:      "2.0",
		Issuer:       &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: s.EntityID()},
		Status:       saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	if signAssertion {
		if err := signer.signAssertion(&assertion, false); err != nil {
			return err
		}
	}
	encCert, err := spEncryptionCert(req.SPSSODescriptor)
	if err != nil {
		return err
	}
	if encCert != nil {
		s.mu.Lock()
		enc := s.encrypter
		s.mu.Unlock()
		el, err := encryptAssertion(&assertion, encCert, enc)
		if err != nil {
			return err
		}
		resp.EncryptedAssertion = el
	} else {
		resp.Assertion = &assertion
	}
	if signResponse {
		if err := signer.signResponse(resp, false); err != nil {
			return err
		}
	}
	req.ResponseEl = resp.Element()
	return nil
}

// spEncryptionCert returns the SP's encryption certificate from its
// metadata, or nil if it has none.
func spEncryptionCert(d *saml.SPSSODescriptor) (*x509.Certificate, error) {
	if d == nil {
		return nil, nil
	}
	for _, kd := range d.KeyDescriptors {
		if kd.Use != "encryption" || len(kd.KeyInfo.X509Data.X509Certificates) == 0 {
			continue
		}
		return parseCert(kd.KeyInfo.X509Data.X509Certificates[0].Data)
	}
	return nil, nil
}

// attributes turns a user's attribute map into SAML attributes, in name
// order so that responses are reproducible.
func attributes(m map[string][]string) []saml.Attribute {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]saml.Attribute, 0, len(names))
	for _, n := range names {
		a := saml.Attribute{Name: n, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
		if strings.Contains(n, ":") {
			a.NameFormat = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
		}
		for _, v := range m[n] {
			a.Values = append(a.Values, saml.AttributeValue{Type: "xs:string", Value: v})
		}
		out = append(out, a)
	}
	return out
}

func cloneAttrs(m map[string][]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// docBytes serialises an element as a document.
func docBytes(el *etree.Element) ([]byte, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	var buf bytes.Buffer
	if _, err := doc.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
