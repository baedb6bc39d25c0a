// Package oidctest is a small but real OpenID Connect provider: discovery,
// JWKS, an authorization endpoint with a plain HTML login form, token,
// userinfo and end-session endpoints. The relying-party tests run complete
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
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
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
	nonce       string
	challenge   string
	scope       string
	authTime    time.Time
	expires     time.Time
	used        bool
	accessToken string
	atExpires   time.Time
}

type signingKey struct {
	key *rsa.PrivateKey
	kid string
}

// Server is an OpenID provider. Its methods are safe for concurrent use.
type Server struct {
	// Issuer is the issuer identifier; endpoints live under it.
	Issuer string

	base  string // path of Issuer, without trailing slash
	page  *template.Template
	httpS *http.Server

	mu       sync.Mutex
	now      func() time.Time
	key      signingKey
	retired  []signingKey // earlier keys, still accepted as id_token_hint
	users    map[string]*user
	clients  map[string]Client
	codes    map[string]*grant
	tokens   map[string]*grant // access token -> grant
	sessions map[string]string // session cookie -> username
	hooks    Hooks
	sendIss  bool
	down     bool
	hint     string
	downAt   map[string]bool          // endpoints answering 503 (SetUnavailable with paths)
	stalls   map[string]chan struct{} // endpoint ("" for all) -> closed on release (Stall)
	requests map[string]int
}

// NewServer returns a provider for issuer (http or https URL, optionally with
// a path) that is not listening: serve it yourself (it is an http.Handler)
// at that URL, or use Start.
func NewServer(issuer string) (*Server, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oidctest: invalid issuer %q", issuer)
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	page, err := template.New("login").Parse(loginPage)
	if err != nil {
		return nil, fmt.Errorf("oidctest: login page: %w", err)
	}
	return &Server{
		Issuer:   strings.TrimSuffix(issuer, "/"),
		base:     strings.TrimSuffix(u.Path, "/"),
		page:     page,
		now:      time.Now,
		key:      key,
		users:    map[string]*user{},
		clients:  map[string]Client{},
		codes:    map[string]*grant{},
		tokens:   map[string]*grant{},
		sessions: map[string]string{},
		sendIss:  true,
		requests: map[string]int{},
	}, nil
}

// Start listens on addr ("127.0.0.1:0" picks a port) and serves a provider
// whose issuer is http://host:port. An empty or unspecified host becomes
// 127.0.0.1, so the issuer is always a URL a browser can open.
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oidctest: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s, err := NewServer("http://" + net.JoinHostPort(host, port))
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.httpS = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.httpS.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s, nil
}

// Close stops a server started with Start; it is a no-op otherwise.
func (s *Server) Close() error {
	if s.httpS == nil {
		return nil
	}
	return s.httpS.Close()
}

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

// SetSendIss chooses whether redirects to the client carry the RFC 9207
// "iss" parameter (default true). Discovery keeps advertising support; use
// the Discovery hook to change that.
func (s *Server) SetSendIss(send bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendIss = send
}

// SetClock replaces the clock used for tokens, codes and expiry.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetLoginHint sets a line the login page shows above the form, such as
// the demo's user names.
func (s *Server) SetLoginHint(hint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hint = hint
}

// SetUnavailable makes every endpoint, or only the endpoints named (Path*
// constants), answer 503, as an IdP outage would. SetUnavailable(false)
// with no paths ends every outage.
func (s *Server) SetUnavailable(down bool, paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(paths) == 0 {
		s.down = down
		if !down {
			s.downAt = nil
		}
		return
	}
	if s.downAt == nil {
		s.downAt = map[string]bool{}
	}
	for _, p := range paths {
		s.downAt[p] = down
	}
}

// Stall makes requests to the endpoints named (Path* constants; every
// endpoint when none is named) wait without an answer, as an overloaded
// IdP that accepts connections and never responds does, until release is
// called or the client gives up. Requests already waiting are released
// too.
func (s *Server) Stall(paths ...string) (release func()) {
	if len(paths) == 0 {
		paths = []string{""}
	}
	ch := make(chan struct{})
	s.mu.Lock()
	if s.stalls == nil {
		s.stalls = map[string]chan struct{}{}
	}
	for _, p := range paths {
		s.stalls[p] = ch
	}
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			for _, p := range paths {
				if s.stalls[p] == ch {
					delete(s.stalls, p)
				}
			}
			s.mu.Unlock()
			close(ch)
		})
	}
}

// degraded applies SetUnavailable and Stall to a request for path; it
// reports whether the request was answered (or abandoned) here.
func (s *Server) degraded(w http.ResponseWriter, r *http.Request, path string) bool {
	s.mu.Lock()
	down := s.down || s.downAt[path]
	stall := s.stalls[path]
	if stall == nil {
		stall = s.stalls[""]
	}
	s.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-r.Context().Done():
			return true
		}
	}
	if down {
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return true
	}
	return false
}

// Requests returns how many requests reached an endpoint (a Path* constant),
// counting those answered 503 by SetUnavailable.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// ServeHTTP routes the provider's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, s.base)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.requests[path]++
	s.mu.Unlock()
	if s.degraded(w, r, path) {
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
