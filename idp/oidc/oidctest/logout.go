package oidctest

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// backChannelEvent is the events member of a logout token (OpenID Connect
// Back-Channel Logout 1.0, 2.4).
const backChannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// NewLogoutToken returns the logout token a back-channel logout of the
// user's provider session sid sends to clientID (Back-Channel Logout 1.0,
// 2.4), not yet signed: change any claim or header to make a bad one, then
// SignToken it. An empty sid leaves the claim out (a logout of every
// session of the user). With an issuer template (SetIssuerTemplate) it
// carries the user's tid, whose issuer its iss is.
func (s *Server) NewLogoutToken(clientID, username, sid string) *Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := username
	if u := s.users[username]; u != nil {
		if v, ok := u.claims["sub"].(string); ok {
			sub = v
		}
	}
	now := s.now()
	claims := map[string]any{
		"iss": s.issuerOf(username), "aud": clientID, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": rand.Text(),
		"events": map[string]any{backChannelEvent: map[string]any{}},
	}
	if sid != "" {
		claims["sid"] = sid
	}
	if u := s.users[username]; u != nil && s.issuerTemplate != "" {
		claims["tid"] = u.claims["tid"] // the tenant its iss names
	}
	return &Token{Header: map[string]any{"typ": "logout+jwt"}, Claims: claims, Alg: defaultIDAlg}
}

// SignToken signs t as this provider does (its current key unless t.Key is
// set; HS* with clientID's secret; "none" leaves it unsigned). The
// IDToken hook does not apply.
func (s *Server) SignToken(clientID string, t *Token) (string, error) {
	s.mu.Lock()
	key, secret := s.key, s.clients[clientID].Secret
	s.mu.Unlock()
	return signToken(t, nil, key, secret, "")
}

// SendBackChannelLogout POSTs a logout token to uri as a provider does
// (application/x-www-form-urlencoded, field logout_token) and returns the
// response, its body unread.
func (s *Server) SendBackChannelLogout(ctx context.Context, uri, logoutToken string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri,
		strings.NewReader(url.Values{"logout_token": {logoutToken}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return (&http.Client{Timeout: 10 * time.Second}).Do(req)
}

// logoutClients tells the clients that signed in through an ended provider
// session: a signed logout token to each back-channel logout URI (sent
// before the end-session endpoint answers, as OpenID Connect Back-Channel
// Logout 1.0, 2.7 allows), and it returns the front-channel logout URLs,
// with iss and sid, for the page to frame.
func (s *Server) logoutClients(ctx context.Context, sess *opSession) []string {
	if sess == nil {
		return nil
	}
	s.mu.Lock()
	var back, front []Client
	for id := range sess.clients {
		c := s.clients[id]
		if c.BackChannelLogoutURI != "" {
			back = append(back, c)
		}
		if c.FrontChannelLogoutURI != "" {
			front = append(front, c)
		}
	}
	s.mu.Unlock()
	for _, c := range back {
		tok, err := s.SignToken(c.ID, s.NewLogoutToken(c.ID, sess.username, sess.sid))
		if err != nil {
			continue
		}
		if resp, err := s.SendBackChannelLogout(ctx, c.BackChannelLogoutURI, tok); err == nil {
			_ = resp.Body.Close()
		}
	}
	var frames []string
	for _, c := range front {
		u, err := url.Parse(c.FrontChannelLogoutURI)
		if err != nil {
			continue
		}
		q := u.Query()
		s.mu.Lock()
		q.Set("iss", s.issuerOf(sess.username))
		s.mu.Unlock()
		q.Set("sid", sess.sid)
		u.RawQuery = q.Encode()
		frames = append(frames, u.String())
	}
	return frames
}
