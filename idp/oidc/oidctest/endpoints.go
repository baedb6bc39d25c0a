package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddy-sso/caddy-sso/internal/pagestyle"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

func (s *Server) discovery(w http.ResponseWriter) {
	s.mu.Lock()
	issuer := s.discoveryIssuer()
	s.mu.Unlock()
	doc := map[string]any{
		"issuer":                                         issuer,
		"authorization_endpoint":                         s.Issuer + PathAuthorize,
		"token_endpoint":                                 s.Issuer + PathToken,
		"userinfo_endpoint":                              s.Issuer + PathUserinfo,
		"jwks_uri":                                       s.Issuer + PathJWKS,
		"end_session_endpoint":                           s.Issuer + PathEndSession,
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{defaultIDAlg},
		"scopes_supported":                               []string{"openid", "profile", "email", "groups", "offline_access"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":               []string{"S256"},
		"claims_parameter_supported":                     false,
		"authorization_response_iss_parameter_supported": true,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"frontchannel_logout_supported":                  true,
		"frontchannel_logout_session_supported":          true,
	}
	s.mu.Lock()
	hook := s.hooks.Discovery
	s.mu.Unlock()
	if hook != nil {
		hook(doc)
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) jwks(w http.ResponseWriter) {
	s.mu.Lock()
	k := s.key
	s.mu.Unlock()
	// No "alg" member, as with Entra ID: the key may sign with any RSA
	// algorithm, so the relying party's allow-list alone decides.
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &k.key.PublicKey, KeyID: k.kid, Use: "sig",
	}}})
}

// authRequest is a validated authorization request.
type authRequest struct {
	client      Client
	redirectURI string
	state       string
	nonce       string
	challenge   string
	scope       string
	prompt      string
	// maxAge is max_age in seconds, -1 when absent (or not a number).
	maxAge int64
}

// authError is a refused authorization request: with redirect set it goes
// back to the client as error=..., otherwise (unknown client or redirect
// URI) it is shown to the user, since redirecting would be an open redirect.
type authError struct {
	code, desc string
	redirect   bool
}

func (s *Server) parseAuthRequest(v url.Values) (authRequest, *authError) {
	s.mu.Lock()
	c, ok := s.clients[v.Get("client_id")]
	s.mu.Unlock()
	if !ok {
		return authRequest{}, &authError{code: "unauthorized_client", desc: "unknown client_id"}
	}
	ar := authRequest{
		client:      c,
		redirectURI: v.Get("redirect_uri"),
		state:       v.Get("state"),
		nonce:       v.Get("nonce"),
		challenge:   v.Get("code_challenge"),
		scope:       v.Get("scope"),
		prompt:      v.Get("prompt"),
		maxAge:      -1,
	}
	if n, err := strconv.ParseInt(v.Get("max_age"), 10, 64); err == nil && n >= 0 {
		ar.maxAge = n
	}
	if !uriAllowed(ar.redirectURI, c.RedirectURIs, c.PrefixMatch) {
		return ar, &authError{code: errInvalidReq, desc: "redirect_uri is not registered for this client"}
	}
	switch {
	case v.Get("response_type") != "code":
		return ar, &authError{code: "unsupported_response_type", desc: "only response_type=code", redirect: true}
	case !slices.Contains(strings.Fields(ar.scope), "openid"):
		return ar, &authError{code: "invalid_scope", desc: "scope must include openid", redirect: true}
	case ar.challenge == "" || v.Get("code_challenge_method") != "S256":
		return ar, &authError{code: errInvalidReq, desc: "PKCE with code_challenge_method=S256 is required", redirect: true}
	case v.Get("response_mode") != "" && v.Get("response_mode") != "query":
		return ar, &authError{code: errInvalidReq, desc: "only response_mode=query", redirect: true}
	}
	return ar, nil
}

func uriAllowed(uri string, registered []string, prefix bool) bool {
	if uri == "" {
		return false
	}
	for _, r := range registered {
		if uri == r || (prefix && strings.HasPrefix(uri, r)) {
			return true
		}
	}
	return false
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	params, ok := requestParams(w, r)
	if !ok {
		return
	}
	ar, aerr := s.parseAuthRequest(params)
	if aerr != nil {
		if !aerr.redirect {
			http.Error(w, aerr.code+": "+aerr.desc, http.StatusBadRequest)
			return
		}
		s.redirectBack(w, r, ar, url.Values{"error": {aerr.code}, "error_description": {aerr.desc}})
		return
	}

	if r.Method == http.MethodGet {
		if sess := s.session(r); sess != nil && !s.mustAuthenticate(ar, sess) {
			s.issueCode(w, r, ar, sess)
			return
		}
		if ar.prompt == "none" {
			s.redirectBack(w, r, ar, url.Values{"error": {"login_required"}})
			return
		}
		s.renderLogin(w, params, "", http.StatusOK)
		return
	}

	username := params.Get("username")
	s.mu.Lock()
	u, ok := s.users[username]
	s.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(u.password), []byte(params.Get("password"))) != 1 {
		s.renderLogin(w, params, "Wrong username or password.", http.StatusUnauthorized)
		return
	}
	cookie := rand.Text()
	s.mu.Lock()
	s.seq++
	sess := &opSession{username: username, sid: rand.Text(), clients: map[string]bool{}, seq: s.seq, authTime: s.now()}
	s.sessions[cookie] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: cookie, Path: s.base + "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(s.Issuer, "https:"),
	})
	s.issueCode(w, r, ar, sess)
}

// mustAuthenticate reports whether the request asks the person to type
// their password again although the browser has a session: prompt=login,
// or a max_age the session's authentication is older than (OpenID Connect
// Core 3.1.2.1); unless SetIgnoreReauth makes the provider ignore both.
func (s *Server) mustAuthenticate(ar authRequest, sess *opSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ignoreReauth {
		return false
	}
	if slices.Contains(strings.Fields(ar.prompt), "login") {
		return true
	}
	return ar.maxAge >= 0 && !s.now().Before(sess.authTime.Add(time.Duration(ar.maxAge)*time.Second))
}

// session returns the provider session of the browser's cookie, nil when
// there is none (or its user is gone).
func (s *Server) session(r *http.Request) *opSession {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[c.Value]
	if sess == nil || s.users[sess.username] == nil {
		return nil
	}
	return sess
}

func (s *Server) renderLogin(w http.ResponseWriter, params url.Values, msg string, status int) {
	hidden := map[string]string{}
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
		"code_challenge", "code_challenge_method", "response_mode", "prompt", "max_age"} {
		if v := params.Get(k); v != "" {
			hidden[k] = v
		}
	}
	s.mu.Lock()
	hint := s.hint
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action *")
	w.WriteHeader(status)
	s.page.Execute(w, struct { //nolint:errcheck // the client went away
		Action, Issuer, Error, Hint string
		Hidden                      map[string]string
		CSS                         template.CSS
	}{s.Issuer + PathAuthorize, s.Issuer, msg, hint, hidden, pagestyle.Template()})
}

func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, ar authRequest, sess *opSession) {
	code := rand.Text()
	s.mu.Lock()
	now := s.now()
	sess.clients[ar.client.ID] = true
	for k, g := range s.codes { // sweep, so a long-running demo does not grow
		if now.After(g.expires.Add(tokenTTL)) {
			delete(s.codes, k)
		}
	}
	for k, it := range s.tokens {
		if now.After(it.expires) {
			delete(s.tokens, k)
		}
	}
	s.codes[code] = &grant{
		clientID: ar.client.ID, redirectURI: ar.redirectURI, username: sess.username, sid: sess.sid,
		nonce: ar.nonce, challenge: ar.challenge, scope: ar.scope,
		authTime: sess.authTime, expires: now.Add(codeTTL),
	}
	iss := s.issuerOf(sess.username)
	s.mu.Unlock()
	s.redirectBack(w, r, ar, url.Values{"code": {code}, "iss": {iss}})
}

// redirectBack sends the browser to the client's redirect URI with q plus
// state and (RFC 9207) iss.
func (s *Server) redirectBack(w http.ResponseWriter, r *http.Request, ar authRequest, q url.Values) {
	if ar.state != "" {
		q.Set("state", ar.state)
	}
	s.mu.Lock()
	switch {
	case !s.sendIss:
		q.Del("iss")
	case !q.Has("iss"): // an error, for no user: the issuer discovery names
		q.Set("iss", s.discoveryIssuer())
	}
	hook := s.hooks.AuthResponse
	s.mu.Unlock()
	if hook != nil {
		hook(q)
	}
	u, err := url.Parse(ar.redirectURI)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	merged := u.Query()
	for k, v := range q {
		merged[k] = v
	}
	u.RawQuery = merged.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="oidctest"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// clientAuth authenticates the client with client_secret_basic or
// client_secret_post (exactly one), or as a public client by client_id.
func (s *Server) clientAuth(r *http.Request) (Client, error) {
	id, secret, basic := r.BasicAuth()
	if basic {
		if r.PostForm.Has("client_secret") {
			return Client{}, errors.New("more than one client authentication method")
		}
		// RFC 6749 2.3.1: form-encoded before Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, errors.New("malformed basic credentials")
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	c, ok := s.clients[id]
	s.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		return Client{}, errors.New("client authentication failed")
	}
	if used := map[bool]string{true: "client_secret_basic", false: "client_secret_post"}[basic]; c.AuthMethod != "" && c.Secret != "" && used != c.AuthMethod {
		return Client{}, errors.New("the client authenticated with " + used + ", not its registered " + c.AuthMethod)
	}
	return c, nil
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		tokenError(w, http.StatusMethodNotAllowed, errInvalidReq, "POST only")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, errInvalidReq, "malformed form")
		return
	}
	c, err := s.clientAuth(r)
	if err != nil {
		tokenError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
	case "refresh_token":
		s.refreshGrant(w, r, c)
		return
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code and refresh_token")
		return
	}

	s.mu.Lock()
	now := s.now()
	g, ok := s.codes[r.PostForm.Get("code")]
	var reason string
	switch {
	case !ok:
		reason = "unknown code"
	case g.used:
		// RFC 6749 4.1.2: a reused code revokes what it produced.
		delete(s.tokens, g.accessToken)
		reason = "code already used"
	case !now.Before(g.expires):
		reason = "code expired"
	case g.clientID != c.ID:
		reason = "code was issued to another client"
	case g.redirectURI != r.PostForm.Get("redirect_uri"):
		reason = "redirect_uri does not match the authorization request"
	case !pkceMatches(g.challenge, r.PostForm.Get("code_verifier")):
		reason = "PKCE verification failed"
	}
	if ok {
		g.used = true // any attempt burns the code
	}
	var u *user
	if reason == "" {
		if u = s.users[g.username]; u == nil {
			reason = "user no longer exists"
		}
	}
	if reason != "" {
		s.mu.Unlock()
		tokenError(w, http.StatusBadRequest, errInvalidGrnt, reason)
		return
	}
	s.issueTokens(w, g, u, c, now, true)
}

// issueTokens answers a token request for g (s.mu held; it unlocks): a new
// access token, an ID token, and, with offline_access, a new refresh token
// that replaces the grant's previous one (rotation). An ID token issued by
// a refresh carries no nonce (OpenID Connect Core 12.2).
func (s *Server) issueTokens(w http.ResponseWriter, g *grant, u *user, c Client, now time.Time, withNonce bool) {
	at := rand.Text()
	g.accessToken = at
	s.tokens[at] = &issued{g: g, expires: now.Add(s.accessTTL)}
	resp := map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": int(s.accessTTL / time.Second), "scope": g.scope,
	}
	if s.refreshAlways || slices.Contains(strings.Fields(g.scope), "offline_access") {
		delete(s.refresh, g.refreshToken)
		g.refreshToken = rand.Text()
		s.refresh[g.refreshToken] = g
		s.issued = append(s.issued, g.refreshToken)
		resp["refresh_token"] = g.refreshToken
	}
	claims := s.idClaims(g, u, c.ID, now)
	if !withNonce {
		delete(claims, "nonce")
	}
	tok := Token{Header: map[string]any{}, Claims: claims, Alg: defaultIDAlg}
	hook, key := s.hooks.IDToken, s.key
	s.mu.Unlock()

	idToken, err := signToken(&tok, hook, key, c.Secret, at)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "signing failed")
		return
	}
	resp["id_token"] = idToken
	writeJSON(w, http.StatusOK, resp)
}

// refreshGrant answers grant_type=refresh_token (RFC 6749 6): the refresh
// token must be the grant's current one and the client its own; a used
// (rotated out) or revoked one gets invalid_grant.
func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, c Client) {
	s.mu.Lock()
	s.refreshes++
	now := s.now()
	g := s.refresh[r.PostForm.Get("refresh_token")]
	var reason string
	switch {
	case g == nil:
		reason = "unknown, rotated out or revoked refresh token"
	case g.clientID != c.ID:
		reason = "refresh token was issued to another client"
	case s.users[g.username] == nil:
		reason = "user no longer exists"
	}
	if reason != "" {
		s.mu.Unlock()
		tokenError(w, http.StatusBadRequest, errInvalidGrnt, reason)
		return
	}
	s.issueTokens(w, g, s.users[g.username], c, now, false)
}

func pkceMatches(challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// idClaims builds the ID token claims; s.mu must be held.
func (s *Server) idClaims(g *grant, u *user, clientID string, now time.Time) map[string]any {
	claims := maps.Clone(u.claims)
	if claims == nil {
		claims = map[string]any{}
	}
	if _, ok := claims["sub"]; !ok {
		claims["sub"] = g.username
	}
	claims["iss"] = s.issuerOf(g.username)
	claims["aud"] = clientID
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(s.accessTTL).Unix()
	claims["auth_time"] = g.authTime.Unix()
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	if g.sid != "" {
		claims["sid"] = g.sid
	}
	return claims
}

// SignIDToken issues an ID token for a user outside any login (for tests of
// logout and of verification speed). The IDToken hook applies.
func (s *Server) SignIDToken(clientID, username, nonce string) (string, error) {
	s.mu.Lock()
	u, ok := s.users[username]
	c := s.clients[clientID]
	if !ok {
		s.mu.Unlock()
		return "", fmt.Errorf("oidctest: no user %q", username)
	}
	now := s.now()
	tok := Token{Header: map[string]any{}, Alg: defaultIDAlg,
		Claims: s.idClaims(&grant{username: username, nonce: nonce, authTime: now}, u, clientID, now)}
	hook, key := s.hooks.IDToken, s.key
	s.mu.Unlock()
	return signToken(&tok, hook, key, c.Secret, "")
}

// signToken runs the hook and produces the compact JWS. It signs by hand,
// rather than through go-jose, so that it can also produce what a correct
// library refuses to: alg "none", and any header.
func signToken(t *Token, hook func(*Token), key signingKey, secret, accessToken string) (string, error) {
	if hook != nil {
		hook(t)
	}
	signer := key
	if t.Key != nil {
		signer = signingKey{key: t.Key, kid: KeyID(t.Key)}
	}
	h := hashFor(t.Alg)
	if _, set := t.Claims["at_hash"]; !set && accessToken != "" && h != 0 {
		sum := h.New()
		sum.Write([]byte(accessToken))
		d := sum.Sum(nil)
		t.Claims["at_hash"] = base64.RawURLEncoding.EncodeToString(d[:len(d)/2])
	}
	header := map[string]any{"typ": "JWT"}
	if t.Alg != "none" && !strings.HasPrefix(t.Alg, "HS") {
		header["kid"] = signer.kid
	}
	maps.Copy(header, t.Header)
	header["alg"] = t.Alg
	hj, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("oidctest: header: %w", err)
	}
	cj, err := json.Marshal(t.Claims)
	if err != nil {
		return "", fmt.Errorf("oidctest: claims: %w", err)
	}
	input := base64.RawURLEncoding.EncodeToString(hj) + "." + base64.RawURLEncoding.EncodeToString(cj)
	sig, err := sign(t.Alg, []byte(input), signer.key, []byte(secret))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	it := s.tokens[at]
	var claims map[string]any
	if ok && it != nil && s.now().Before(it.expires) {
		g := it.g
		if u := s.users[g.username]; u != nil {
			claims = maps.Clone(u.claims)
			if claims == nil {
				claims = map[string]any{}
			}
			if _, set := claims["sub"]; !set {
				claims["sub"] = g.username
			}
		}
	}
	hook := s.hooks.Userinfo
	s.mu.Unlock()
	if claims == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	if hook != nil {
		hook(claims)
	}
	writeJSON(w, http.StatusOK, claims)
}

// endSession ends the provider's session and, when post_logout_redirect_uri
// is allowed for the client (named by client_id or by the id_token_hint's
// audience), sends the browser there. It takes GET with the parameters in
// the query and POST with them form-encoded in the body (RP-Initiated
// Logout 1.0, 2: an OP must support both), making the same checks.
//
// The session is the browser's cookie's or, without one, the one the
// hint's sid names: a cross-site POST (the relying party's auto-submitting
// form) does not carry the SameSite=Lax cookie, and the hint names the
// session the relying party means (RP-Initiated Logout 1.0, 2).
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	params, ok := requestParams(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.endSessions = append(s.endSessions, EndSessionRequest{Method: r.Method, Params: params})
	s.mu.Unlock()
	clientID := params.Get("client_id")
	var hintSID string
	if hint := params.Get("id_token_hint"); hint != "" {
		aud, sid, err := s.hintAudience(hint)
		if err != nil || (clientID != "" && clientID != aud) {
			http.Error(w, "invalid id_token_hint", http.StatusBadRequest)
			return
		}
		clientID, hintSID = aud, sid
	}
	var ended *opSession
	s.mu.Lock()
	if c, err := r.Cookie(sessionCookie); err == nil {
		ended = s.sessions[c.Value]
		delete(s.sessions, c.Value)
	}
	if ended == nil && hintSID != "" {
		for k, sess := range s.sessions {
			if sess.sid == hintSID {
				ended = sess
				delete(s.sessions, k)
			}
		}
	}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: s.base + "/", MaxAge: -1, HttpOnly: true})
	frames := s.logoutClients(r.Context(), ended)

	target := params.Get("post_logout_redirect_uri")
	s.mu.Lock()
	c, ok := s.clients[clientID]
	s.mu.Unlock()
	if target != "" && ok && postLogoutAllowed(c, target) {
		u, err := url.Parse(target)
		if err == nil {
			if st := params.Get("state"); st != "" {
				q := u.Query()
				q.Set("state", st)
				u.RawQuery = q.Encode()
			}
			http.Redirect(w, r, u.String(), http.StatusFound) //nolint:gosec // G710: target is one of the client's registered post-logout URIs
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var iframes strings.Builder
	for _, f := range frames {
		fmt.Fprintf(&iframes, `<iframe class="frontchannel-logout" src="%s" hidden></iframe>`, template.HTMLEscapeString(f))
	}
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out - oidctest</title><style>%s</style></head><body><h1 id="signed-out">You are signed out.</h1><p class="note">Local OpenID provider (oidctest)</p>%s</body></html>`, pagestyle.CSS, iframes.String())
}

func postLogoutAllowed(c Client, target string) bool {
	if len(c.PostLogoutRedirectURIs) > 0 {
		return uriAllowed(target, c.PostLogoutRedirectURIs, c.PrefixMatch)
	}
	t, err := url.Parse(target)
	if err != nil || t.Host == "" {
		return false
	}
	for _, ru := range c.RedirectURIs {
		if u, err := url.Parse(ru); err == nil && u.Scheme == t.Scheme && u.Host == t.Host {
			return true
		}
	}
	return false
}

// hintAudience verifies an id_token_hint against every key this server has
// used and returns its audience and sid ("" when it has none). Expiry does
// not matter for a hint.
func (s *Server) hintAudience(hint string) (aud, sid string, err error) {
	jws, err := jose.ParseSignedCompact(hint, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512})
	if err != nil {
		return "", "", err
	}
	s.mu.Lock()
	keys := append([]signingKey{s.key}, s.retired...)
	s.mu.Unlock()
	for _, k := range keys {
		payload, err := jws.Verify(&k.key.PublicKey)
		if err != nil {
			continue
		}
		var c struct {
			Iss string          `json:"iss"`
			Aud json.RawMessage `json:"aud"`
			SID string          `json:"sid"`
		}
		s.mu.Lock()
		tmpl := s.issuerTemplate
		s.mu.Unlock()
		if err := json.Unmarshal(payload, &c); err != nil || c.Iss != s.Issuer && !issuerFits(tmpl, c.Iss) {
			return "", "", errors.New("not issued here")
		}
		var one string
		if json.Unmarshal(c.Aud, &one) == nil {
			return one, c.SID, nil
		}
		var many []string
		if json.Unmarshal(c.Aud, &many) == nil && len(many) > 0 {
			return many[0], c.SID, nil
		}
		return "", "", errors.New("no audience")
	}
	return "", "", errors.New("signature not ours")
}

// issuerFits reports whether iss is tmpl, an issuer template, filled with
// some tenant.
func issuerFits(tmpl, iss string) bool {
	pre, suf, ok := strings.Cut(tmpl, TenantPlaceholder)
	return ok && len(iss) > len(pre)+len(suf) && strings.HasPrefix(iss, pre) && strings.HasSuffix(iss, suf)
}

// requestParams reads an endpoint's parameters as the specifications have
// them arrive: in the query of a GET (or HEAD), in the form-encoded body of
// a POST, and only there (a POST's URL carries none). It answers the
// request itself, and reports false, when they cannot be read.
func requestParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		params, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			http.Error(w, "bad query", http.StatusBadRequest)
			return nil, false
		}
		return params, true
	case http.MethodPost:
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
			http.Error(w, "the body must be form-encoded", http.StatusUnsupportedMediaType)
			return nil, false
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return nil, false
		}
		return r.PostForm, true
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
}
