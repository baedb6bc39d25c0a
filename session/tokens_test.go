package session_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-sso/caddy-sso/internal/backendtest"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
)

const idToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZGEiLCJub25jZSI6InNlY3JldCJ9.c2lnbmF0dXJl"

// signIn creates a session with tokens as the sign-in handler does: in the
// transaction that writes the user's changes.
func signIn(t testing.TB, m *session.Manager, db store.Store, u *store.User, tok *session.Tokens) *session.NewSession {
	t.Helper()
	n, err := m.Prepare("okta", store.LogoutInfo{Subject: "ada"}, tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(context.Background(), func(tx store.Tx) error { return n.Write(tx, u) }); err != nil {
		t.Fatal(err)
	}
	m.Remember(n)
	return n
}

func TestTokensSealedAndRead(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	want := &session.Tokens{IDToken: idToken, AccessToken: "at-secret", RefreshToken: "rt-secret", Expiry: time.Unix(1_800_000_000, 0)}
	n := signIn(t, m, db, u, want)

	// The store holds ciphertext only.
	var blob []byte
	_ = db.View(ctx, func(tx store.Tx) (err error) { blob, err = tx.SessionTokens(n.Session.Hash); return err })
	for _, secret := range []string{idToken, "at-secret", "rt-secret", "eyJ"} {
		if bytes.Contains(blob, []byte(secret)) {
			t.Errorf("sealed blob contains %q", secret)
		}
	}
	got, err := m.Tokens(ctx, n.Session.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *want && !(got.IDToken == want.IDToken && got.AccessToken == want.AccessToken &&
		got.RefreshToken == want.RefreshToken && got.Expiry.Equal(want.Expiry)) {
		t.Errorf("Tokens = %v, want %v", got, want)
	}

	// Refresh replaces them; nil deletes them.
	if err := m.PutTokens(ctx, n.Session.Hash, &session.Tokens{IDToken: idToken, AccessToken: "at-2"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Tokens(ctx, n.Session.Hash); got.AccessToken != "at-2" || got.RefreshToken != "" {
		t.Errorf("after PutTokens: %v", got)
	}
	if err := m.PutTokens(ctx, n.Session.Hash, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Tokens(ctx, n.Session.Hash); got != nil || err != nil {
		t.Errorf("after deleting: %v, %v", got, err)
	}
	if _, err := m.Tokens(ctx, "ff"); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Tokens of no session: %v", err)
	}
	if err := m.PutTokens(ctx, "ff", want); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("PutTokens of no session: %v", err)
	}
}

// A sealed blob is bound to its session: copied to another session it
// does not open, so a store writer cannot move one user's tokens to another.
func TestTokensBoundToSession(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	a := signIn(t, m, db, u, &session.Tokens{IDToken: idToken})
	b := signIn(t, m, db, u, nil)
	err := db.Update(ctx, func(tx store.Tx) error {
		blob, err := tx.SessionTokens(a.Session.Hash)
		if err != nil {
			return err
		}
		return tx.PutSessionTokens(b.Session.Hash, blob)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Tokens(ctx, b.Session.Hash); err == nil || got != nil {
		t.Errorf("another session's sealed tokens opened: %v, %v", got, err)
	}
	// A damaged blob does not open either.
	_ = db.Update(ctx, func(tx store.Tx) error {
		blob, _ := tx.SessionTokens(a.Session.Hash)
		blob[len(blob)-1] ^= 1
		return tx.PutSessionTokens(a.Session.Hash, blob)
	})
	if _, err := m.Tokens(ctx, a.Session.Hash); err == nil {
		t.Error("a damaged blob opened")
	}
}

// What an upgraded store left for an old session (store.PlainIDTokenBlob)
// reads as an ID token.
func TestPlainIDTokenFromUpgrade(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	n := signIn(t, m, db, u, nil)
	_ = db.Update(ctx, func(tx store.Tx) error {
		return tx.PutSessionTokens(n.Session.Hash, store.PlainIDTokenBlob(idToken))
	})
	ended, err := m.Revoke(ctx, n.Token, store.EventSessionLoggedOut)
	if err != nil {
		t.Fatal(err)
	}
	if ended.IDToken() != idToken {
		t.Errorf("ID token of an upgraded session = %q", ended.IDToken())
	}
}

func TestRevokeReturnsWhatLogoutNeeds(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	n := signIn(t, m, db, u, &session.Tokens{IDToken: idToken, RefreshToken: "rt-secret"})
	ended, err := m.Revoke(ctx, n.Token, store.EventSessionLoggedOut)
	if err != nil {
		t.Fatal(err)
	}
	if ended.Session.Hash != n.Session.Hash || ended.Session.Logout.Subject != "ada" || ended.IDToken() != idToken {
		t.Errorf("Revoke = %+v, ID token %q", ended.Session, ended.IDToken())
	}
	if _, err := m.Resolve(ctx, n.Token); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("revoked session resolves: %v", err)
	}
	// The tokens went with the session.
	if _, err := m.Tokens(ctx, n.Session.Hash); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("tokens after revoke: %v", err)
	}
	again, err := m.Revoke(ctx, n.Token, store.EventSessionLoggedOut)
	if again != nil || err != nil || again.IDToken() != "" {
		t.Errorf("second Revoke = %v, %v", again, err)
	}
	// Tokens never reach a log line or a formatted value.
	var buf bytes.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel))
	logger.Info("tokens", zap.Object("tokens", ended.Tokens), zap.Any("ended", ended), zap.Any("value", *ended.Tokens))
	formatted := buf.String() + fmt.Sprintf("%v %+v %#v %s %v", *ended.Tokens, ended.Tokens, ended.Tokens, ended.Tokens, *ended)
	if !strings.Contains(buf.String(), `"id_token":true`) {
		t.Errorf("log line does not say which tokens exist: %s", buf.String())
	}
	for _, secret := range []string{idToken, "rt-secret", "eyJ"} {
		if strings.Contains(formatted, secret) {
			t.Errorf("a token leaked into formatted output: %s", formatted)
		}
	}
}

// TestTokensRoundTripExactly: whatever the IdP sent comes back byte for
// byte, whether or not it is a JWS the compact encoding can decode.
func TestTokensRoundTripExactly(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	n := signIn(t, m, db, u, nil)
	for _, tok := range []session.Tokens{
		{IDToken: idToken, AccessToken: "opaque-access-token", RefreshToken: "rt", Expiry: time.Unix(1_900_000_000, 0)},
		{IDToken: "eyJh.eyJz.c2ln=="},                     // padded: not canonical base64url
		{IDToken: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, // empty signature
		{IDToken: "a.b.c.d", AccessToken: "ä.ö.ü"},
		{AccessToken: "eyJx.eyJ5.Zm9v", RefreshToken: strings.Repeat("r", 5000)},
		{IDToken: "QQ.QQ.QR"}, // decodes, but re-encodes as QQ.QQ.QQ
	} {
		if err := m.PutTokens(ctx, n.Session.Hash, &tok); err != nil {
			t.Fatal(err)
		}
		got, err := m.Tokens(ctx, n.Session.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.IDToken != tok.IDToken || got.AccessToken != tok.AccessToken || got.RefreshToken != tok.RefreshToken || !got.Expiry.Equal(tok.Expiry) {
			t.Errorf("round trip of %q/%q/%q changed it", tok.IDToken, tok.AccessToken, tok.RefreshToken)
		}
	}
}

// TestSealedIDTokenIsCompact: the sealed blob of a typical ID token is well
// below its text size, which is most of a session's bytes in the store.
func TestSealedIDTokenIsCompact(t *testing.T) {
	ctx := context.Background()
	db := backendtest.OpenBolt(t)
	m := session.New(db, session.Config{}, nil, nil)
	u := addUser(t, db, activeUser())
	tok := typicalIDToken()
	n := signIn(t, m, db, u, &session.Tokens{IDToken: tok})
	var blob []byte
	_ = db.View(ctx, func(tx store.Tx) (err error) { blob, err = tx.SessionTokens(n.Session.Hash); return err })
	if len(blob) > len(tok)*3/4 {
		t.Errorf("sealed blob of a %d-byte ID token is %d bytes, want at most 75%%", len(tok), len(blob))
	}
	t.Logf("ID token %d bytes, sealed %d", len(tok), len(blob))
}

// typicalIDToken is shaped like Okta's: the usual claims and an RS256
// signature (random bytes here).
func typicalIDToken() string {
	enc := base64.RawURLEncoding
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	header := `{"alg":"RS256","kid":"k-9Qx2Zf0aV1ZHlCb7sT3lN0yVtJrCmQeHl4rJ8u6Fo","typ":"JWT"}`
	payload := `{"amr":["pwd","mfa"],"at_hash":"q3Xw1Bo4nVxk1tYh2lG0aQ","aud":"0oa1b2c3d4e5f6g7h8i9","auth_time":1764590000,` +
		`"email":"ada.lovelace@example.com","email_verified":true,"exp":1764593600,"family_name":"Lovelace","given_name":"Ada",` +
		`"groups":["Everyone","staff","team-7"],"iat":1764590000,"idp":"00o1okta","iss":"https://example.okta.com/oauth2/default",` +
		`"jti":"ID.4f2c9a8e7d6b5c4a3f2e1d0c9b8a7f6e5d4c3b2a","name":"Ada Lovelace","nonce":"b1Zr8h2kq9Xw0pLm3nVc7tYs5aQe4dUf6gHj1kRz2xM",` +
		`"preferred_username":"ada.lovelace@example.com","sid":"9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c","sub":"00u1a2b3c4d5e6f7g8h9","ver":1}`
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sig)
}
