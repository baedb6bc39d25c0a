// Package oidctest is a small but real OpenID Connect provider: discovery,
// JWKS, an authorization endpoint with a plain HTML login form, token
// (authorization code and refresh token grants), userinfo and end-session
// endpoints, and back- and front-channel logout of the clients that
// registered for them. The relying-party tests run complete
// logins against it, and the local demo uses it as its identity provider, so
// it follows the protocol strictly (PKCE S256 required, single-use
// short-lived codes, registered redirect URIs) while exposing hooks that make
// it misbehave on purpose.
//
// It keeps everything in memory and is not meant for production.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-sso/caddy-sso/internal/testidp"
)

// Endpoint paths, relative to the issuer.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathAuthorize  = "/authorize"
	PathToken      = "/token"
	PathUserinfo   = "/userinfo"
	PathJWKS       = "/jwks"
	PathEndSession = "/end_session"
)

const (
	codeTTL        = time.Minute
	tokenTTL       = time.Hour
	sessionCookie  = "oidctest_session"
	maxFormBytes   = 64 << 10
	rsaKeyBits     = 2048
	defaultIDAlg   = "RS256"
	errInvalidReq  = "invalid_request"
	errInvalidGrnt = "invalid_grant"
)

// Client is a registered relying party.
type Client struct {
	ID     string
	Secret string // "" for a public client (PKCE alone)
	// RedirectURIs are matched exactly, or as prefixes with PrefixMatch.
	RedirectURIs []string
	// PostLogoutRedirectURIs are where end_session may send the browser.
	// Empty means any URI on the same origin as a redirect URI.
	PostLogoutRedirectURIs []string
	// PrefixMatch accepts any URI that starts with a registered one, for
	// tests and demos whose ports are chosen after registration. A real
	// provider must never do this.
	PrefixMatch bool
	// BackChannelLogoutURI receives a logout token (OpenID Connect
	// Back-Channel Logout 1.0) when a provider session this client signed
	// in through ends at the end-session endpoint.
	BackChannelLogoutURI string
	// FrontChannelLogoutURI is framed, with iss and sid, by the page the
	// end-session endpoint shows (OpenID Connect Front-Channel Logout 1.0).
	FrontChannelLogoutURI string
	// AuthMethod, when set ("client_secret_basic" or "client_secret_post"),
	// is the only way the client may authenticate at the token endpoint,
	// as IdPs that register a method per client (Auth0, PingOne) enforce.
	AuthMethod string
}

// Token is an ID token about to be signed. The IDToken hook may change
// anything in it to produce a bad token.
type Token struct {
	// Header holds extra JOSE header fields; "alg" comes from Alg and "kid"
	// defaults to the signing key's ID.
	Header map[string]any
	Claims map[string]any
	// Alg is RS256 by default. "none" produces an unsigned token, HS256/384/512
	// an HMAC keyed with the client secret, RS384/RS512/PS256/PS384/PS512 a
	// signature with Key.
	Alg string
	// Key signs the token; nil means the current key. Any other key is one
	// the JWKS does not list.
	Key *rsa.PrivateKey
}

// Hooks make the provider misbehave for negative tests. Each may be nil.
type Hooks struct {
	// IDToken edits every ID token before it is signed.
	IDToken func(*Token)
	// AuthResponse edits the query of every redirect back to the client
	// (success or error): drop "code", set "error", change "iss"…
	AuthResponse func(url.Values)
	// Discovery edits the discovery document before it is served.
	Discovery func(map[string]any)
	// Userinfo edits the userinfo response.
	Userinfo func(map[string]any)
}

type user struct {
	password string
	claims   map[string]any
}

type grant struct {
	clientID    string
	redirectURI string
	username    string
	sid         string // the provider session the grant came from
	nonce       string
	challenge   string
	scope       string
	authTime    time.Time
	expires     time.Time
	used        bool
	accessToken string // the latest access token issued for it
	// refreshToken is the grant's current refresh token ("" without
	// offline_access); each refresh replaces it (rotation).
	refreshToken string
}

// issued is one access token: valid until its own expiry, even after a
// refresh issued a newer one (as with most providers), unless revoked.
type issued struct {
	g       *grant
	expires time.Time
}

// opSession is a provider session: a browser signed in at the login form.
type opSession struct {
	username string
	sid      string          // its public ID, the "sid" claim; the cookie value is secret
	clients  map[string]bool // clients that got a code in it
	seq      int             // order of creation
	// authTime is when the person typed their password: every ID token
	// issued in the session says it as auth_time.
	authTime time.Time
}

type signingKey struct {
	key *rsa.PrivateKey
	kid string
}

// Server is an OpenID provider. Its methods are safe for concurrent use.
type Server struct {
	// Issuer is the issuer identifier; endpoints live under it.
	Issuer string

	base   string // path of Issuer, without trailing slash
	page   *template.Template
	served testidp.HTTP // with Start
	// Outages is the IdP's health: SetUnavailable, Stall and Requests
	// take its endpoints' Path* constants.
	testidp.Outages

	mu       sync.Mutex
	now      func() time.Time
	key      signingKey
	retired  []signingKey // earlier keys, still accepted as id_token_hint
	users    map[string]*user
	clients  map[string]Client
	codes    map[string]*grant
	tokens   map[string]*issued    // access token -> what it grants
	refresh  map[string]*grant     // current refresh token -> grant
	issued   []string              // every refresh token issued (for leak checks)
	sessions map[string]*opSession // session cookie -> session
	hooks    Hooks
	// accessTTL is the access (and ID) token lifetime.
	accessTTL time.Duration
	refreshes int // refresh_token grants answered, successful or not
	// refreshAlways issues refresh tokens without offline_access.
	refreshAlways bool
	seq           int // provider sessions created
	// ignoreReauth makes the provider sign a person in from its session
	// whatever prompt and max_age ask (SetIgnoreReauth).
	ignoreReauth bool
	sendIss      bool
	// issuerTemplate, when set, is the issuer discovery names, and each
	// token's iss is it with {tenantid} replaced by the user's tid claim
	// (SetIssuerTemplate).
	issuerTemplate string
	hint           string
	endSessions    []EndSessionRequest // what end_session received
}

// EndSessionRequest is one request end_session received: its method and
// the parameters it read (the query of a GET, the body of a POST).
type EndSessionRequest struct {
	Method string
	Params url.Values
}

// NewServer returns a provider for issuer (http or https URL, optionally with
// a path) that is not listening: serve it yourself (it is an http.Handler)
// at that URL, or use Start.
func NewServer(issuer string) (*Server, error) {
	base, ok := testidp.ParseBase(issuer)
	if !ok {
		return nil, fmt.Errorf("oidctest: invalid issuer %q", issuer)
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	page, err := testidp.LoginPage("oidctest", "Local OpenID provider (oidctest) at <code>{{.Issuer}}</code>")
	if err != nil {
		return nil, fmt.Errorf("oidctest: login page: %w", err)
	}
	return &Server{
		Issuer:   strings.TrimSuffix(issuer, "/"),
		base:     base,
		page:     page,
		now:      time.Now,
		key:      key,
		users:    map[string]*user{},
		clients:  map[string]Client{},
		codes:    map[string]*grant{},
		tokens:   map[string]*issued{},
		refresh:  map[string]*grant{},
		sessions: map[string]*opSession{},

		accessTTL: tokenTTL,
		sendIss:   true,
	}, nil
}

// Start listens on addr ("127.0.0.1:0" picks a port) and serves a provider
// whose issuer is http://host:port. An empty or unspecified host becomes
// 127.0.0.1, so the issuer is always a URL a browser can open.
func Start(addr string) (*Server, error) {
	return testidp.Start("oidctest", addr, NewServer, servedBy)
}

// StartEntraMultiTenant is Start for a provider that behaves as Microsoft
// Entra ID's organizations endpoint: its issuer is
// http://host:port/organizations/v2.0, its discovery names the template
// http://host:port/{tenantid}/v2.0, and each token its user's tenant
// (SetIssuerTemplate).
func StartEntraMultiTenant(addr string) (*Server, error) {
	return testidp.Start("oidctest", addr, func(base string) (*Server, error) {
		s, err := NewServer(base + "/organizations/v2.0")
		if err != nil {
			return nil, err
		}
		s.SetIssuerTemplate(base + "/" + TenantPlaceholder + "/v2.0")
		return s, nil
	}, servedBy)
}

func servedBy(s *Server) *testidp.HTTP { return &s.served }

// Close stops a server started with Start; it is a no-op otherwise.
func (s *Server) Close() error { return s.served.Close() }

func newSigningKey() (signingKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return signingKey{}, fmt.Errorf("oidctest: generating key: %w", err)
	}
	return signingKey{key: k, kid: KeyID(k)}, nil
}

// KeyID is the "kid" the server gives an RSA key: a hash of its modulus.
func KeyID(k *rsa.PrivateKey) string {
	sum := sha256.Sum256(k.N.Bytes())
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// AddUser adds or replaces a user. claims go into ID tokens and userinfo;
// "sub" defaults to the username.
func (s *Server) AddUser(username, password string, claims map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[username] = &user{password: password, claims: maps.Clone(claims)}
}

// SetClaims replaces a user's claims; later tokens and userinfo calls see them.
func (s *Server) SetClaims(username string, claims map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[username]
	if !ok {
		return fmt.Errorf("oidctest: no user %q", username)
	}
	u.claims = maps.Clone(claims)
	return nil
}

// AddClient registers a confidential client (public if secret is "").
func (s *Server) AddClient(id, secret string, redirectURIs ...string) {
	s.RegisterClient(Client{ID: id, Secret: secret, RedirectURIs: redirectURIs})
}

// RegisterClient adds or replaces a client with every option.
func (s *Server) RegisterClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	s.clients[c.ID] = c
}

// RotateKey replaces the signing key; the JWKS then lists only the new one.
func (s *Server) RotateKey() error {
	k, err := newSigningKey()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired = append(s.retired, s.key)
	s.key = k
	return nil
}

// SigningKeyID returns the kid of the current signing key.
func (s *Server) SigningKeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key.kid
}

// SetHooks replaces all hooks.
func (s *Server) SetHooks(h Hooks) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = h
}

// SetIgnoreReauth makes the provider misbehave: with ignore set, a
// browser with a provider session is signed in without the password form
// even when the request asks for prompt=login or a max_age the session is
// older than. Its ID tokens still say truthfully, as auth_time, when the
// person last typed their password.
func (s *Server) SetIgnoreReauth(ignore bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignoreReauth = ignore
}

// SetSendIss chooses whether redirects to the client carry the RFC 9207
// "iss" parameter (default true). Discovery keeps advertising support; use
// the Discovery hook to change that.
func (s *Server) SetSendIss(send bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendIss = send
}

// TenantPlaceholder is what an issuer template (SetIssuerTemplate) holds
// where each token names its tenant, as Microsoft Entra ID's multi-tenant
// endpoints write it.
const TenantPlaceholder = "{tenantid}"

// SetIssuerTemplate makes the provider behave as Microsoft Entra ID's
// multi-tenant endpoints (…/organizations/v2.0, …/common/v2.0) do: its
// discovery document names tmpl as the issuer (e.g.
// "http://127.0.0.1:port/{tenantid}/v2.0"), and every ID token, logout
// token, authorization response and front-channel logout names tmpl with
// TenantPlaceholder replaced by the user's "tid" claim. Endpoints stay
// under Issuer. "" turns it off.
func (s *Server) SetIssuerTemplate(tmpl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuerTemplate = tmpl
}

// issuerOf is the iss of what the provider issues about username: Issuer,
// or the issuer template filled with the user's tid. s.mu must be held.
func (s *Server) issuerOf(username string) string {
	if s.issuerTemplate == "" {
		return s.Issuer
	}
	tid := ""
	if u := s.users[username]; u != nil {
		tid, _ = u.claims["tid"].(string)
	}
	return strings.ReplaceAll(s.issuerTemplate, TenantPlaceholder, tid)
}

// discoveryIssuer is the issuer discovery names. s.mu must be held.
func (s *Server) discoveryIssuer() string {
	if s.issuerTemplate != "" {
		return s.issuerTemplate
	}
	return s.Issuer
}

// SetClock replaces the clock used for tokens, codes and expiry.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetAccessTokenTTL sets the lifetime of the access and ID tokens issued
// from now on (default one hour), as expires_in says.
func (s *Server) SetAccessTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessTTL = d
}

// SetRefreshAlways makes the token endpoint issue a refresh token with every
// grant, whether or not the client asked for offline_access, as some
// providers (Keycloak) do. By default it issues one only for
// offline_access, as Okta, Entra ID and PingOne do.
func (s *Server) SetRefreshAlways(always bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshAlways = always
}

// Refreshes returns how many refresh_token grants the token endpoint
// answered, successful or not.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// RevokeGrants revokes every grant of a user, as an administrator would:
// their refresh tokens get invalid_grant and their access tokens stop
// working at userinfo. It returns how many grants it revoked.
func (s *Server) RevokeGrants(username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for rt, g := range s.refresh {
		if g.username == username {
			delete(s.refresh, rt)
			n++
		}
	}
	for at, it := range s.tokens {
		if it.g.username == username {
			delete(s.tokens, at)
		}
	}
	return n
}

// RefreshTokens returns every refresh token issued so far, rotated out or
// not, for tests that check none of them leaks.
func (s *Server) RefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// EndSessionRequests returns the requests end_session received, oldest
// first, refused ones too: what the relying party sent, and how.
func (s *Server) EndSessionRequests() []EndSessionRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.endSessions)
}

// SessionID returns the sid of the user's newest provider session (the
// "sid" claim of the ID tokens issued in it), or "".
func (s *Server) SessionID(username string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var newest *opSession
	for _, sess := range s.sessions {
		if sess.username == username && (newest == nil || sess.seq > newest.seq) {
			newest = sess
		}
	}
	if newest == nil {
		return ""
	}
	return newest.sid
}

// SetLoginHint sets a line the login page shows above the form, such as
// the demo's user names.
func (s *Server) SetLoginHint(hint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hint = hint
}

// ServeHTTP routes the provider's endpoints.
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
	switch path {
	case PathDiscovery:
		s.discovery(w)
	case PathJWKS:
		s.jwks(w)
	case PathAuthorize:
		s.authorize(w, r)
	case PathToken:
		s.token(w, r)
	case PathUserinfo:
		s.userinfo(w, r)
	case PathEndSession:
		s.endSession(w, r)
	default:
		http.NotFound(w, r)
	}
}
