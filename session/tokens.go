package session

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/store"
)

// Tokens are what the IdP issued for a session and the gateway may need
// later (idp.Tokens). They are sealed (AES-256-GCM under a key kept in the
// store, bound to the session) and kept apart from the session record, so
// the hot path and housekeeping never read them.
type Tokens = idp.Tokens

// noTokens reports a nil Tokens or one without any token.
func noTokens(t *Tokens) bool {
	return t == nil || t.IDToken == "" && t.AccessToken == "" && t.RefreshToken == ""
}

// TokensKeySecret names the store secret that seals every session's tokens.
const TokensKeySecret = "session-tokens-key"

// TokensKeyPrevious names the key a rotation replaced (RotateTokensKey):
// it opens the blobs it sealed, never seals, until Reseal has sealed each
// of them again under the current key and deletes it.
const TokensKeyPrevious = TokensKeySecret + "/previous"

// tokenKeys are the keys that may open a blob: the current one, and the
// one before a rotation while the store keeps it. Either may be nil.
type tokenKeys struct{ cur, prev []byte }

// sealedV1 is the first byte of a sealed blob; store.PlainIDTokenBlob's is 0.
const sealedV1 = 1

// tokensAD binds a sealed blob to its session: a blob copied to another
// session's record does not open there.
func tokensAD(hash string) []byte { return append([]byte("caddy-sso session tokens\x00"), hash...) }

// The sealed plaintext is compact, because an ID token (over a kilobyte,
// base64) is most of a session's bytes in the store: tokensPlain writes each
// token as its raw bytes (a JWS compact token as its three decoded parts,
// 25% smaller than base64, else the string as it is), the expiry as a
// varint, and compresses the whole with DEFLATE; an ID token then takes
// about 60% of its text size. Compressing before sealing leaks nothing
// useful here: only the store's reader sees a blob's length, and the
// tokens in one blob come from the IdP alone.
const (
	tokenText byte = 0 // the string as it is
	tokenJWS  byte = 1 // header, payload, signature: base64url-decoded
)

func appendToken(b []byte, s string) []byte {
	if parts, ok := jwsParts(s); ok {
		b = append(b, tokenJWS)
		for _, p := range parts {
			b = binary.AppendUvarint(b, uint64(len(p)))
			b = append(b, p...)
		}
		return b
	}
	b = append(b, tokenText)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// jwsParts decodes a JWS compact serialization whose parts re-encode to
// exactly the same text (so that the token comes back byte for byte).
func jwsParts(s string) ([3][]byte, bool) {
	var parts [3][]byte
	seg := strings.Split(s, ".")
	if len(seg) != 3 {
		return parts, false
	}
	for i, p := range seg {
		raw, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || base64.RawURLEncoding.EncodeToString(raw) != p {
			return parts, false
		}
		parts[i] = raw
	}
	return parts, true
}

func readToken(b []byte) (string, []byte, bool) {
	if len(b) == 0 {
		return "", nil, false
	}
	kind, b := b[0], b[1:]
	n := 1
	if kind == tokenJWS {
		n = 3
	} else if kind != tokenText {
		return "", nil, false
	}
	var segs []string
	for range n {
		l, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < l {
			return "", nil, false
		}
		seg := b[w : w+int(l)]
		b = b[w+int(l):]
		if kind == tokenJWS {
			segs = append(segs, base64.RawURLEncoding.EncodeToString(seg))
		} else {
			segs = append(segs, string(seg))
		}
	}
	return strings.Join(segs, "."), b, true
}

// compressors keeps DEFLATE writers between sign-ins: each holds over half
// a megabyte of tables that would otherwise be allocated per sign-in.
type compressors struct{ pool sync.Pool }

func (c *compressors) compress(raw []byte) ([]byte, error) {
	var z bytes.Buffer
	w, _ := c.pool.Get().(*flate.Writer)
	if w == nil {
		var err error
		if w, err = flate.NewWriter(&z, flate.DefaultCompression); err != nil {
			return nil, err
		}
	} else {
		w.Reset(&z)
	}
	defer c.pool.Put(w)
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return z.Bytes(), nil
}

// tokensPlain is the plaintext sealed for t (see above), or nil when t
// holds no token: what putSealed takes. It runs before the transaction
// that stores it, which then only seals.
func (c *compressors) tokensPlain(t *Tokens) ([]byte, error) {
	return c.renewedPlain(t, time.Time{})
}

// renewedPlain is tokensPlain for tokens the IdP renewed at (zero: not
// known), which every instance reading them needs to hold off the next
// refresh of tokens that live no longer than a route's margin (upstream's
// renewedAt). The time (unix seconds, a varint) follows the DEFLATE
// stream: a build that does not know it reads up to the stream's end and
// opens the blob all the same.
func (c *compressors) renewedPlain(t *Tokens, at time.Time) ([]byte, error) {
	if noTokens(t) {
		return nil, nil
	}
	var raw []byte
	for _, s := range [...]string{t.IDToken, t.AccessToken, t.RefreshToken} {
		raw = appendToken(raw, s)
	}
	var exp int64
	if !t.Expiry.IsZero() {
		exp = t.Expiry.Unix()
	}
	raw = binary.AppendVarint(raw, exp)
	plain, err := c.compress(raw)
	if err != nil {
		return nil, fmt.Errorf("session: compress tokens: %w", err)
	}
	if !at.IsZero() {
		plain = binary.AppendVarint(plain, at.Unix())
	}
	return plain, nil
}

// maxTokensPlain bounds what a sealed blob may inflate to.
const maxTokensPlain = 1 << 20

// tokensFromPlain reads what renewedPlain wrote: the tokens, and when the
// IdP renewed them (zero: not sealed, as before renewedPlain). The
// decompressor, reading a bytes.Reader (an io.ByteReader), stops at the
// DEFLATE stream's end, and what is left is the renewal time.
func tokensFromPlain(plain []byte) (*Tokens, time.Time, error) {
	r := bytes.NewReader(plain)
	raw, err := io.ReadAll(io.LimitReader(flate.NewReader(r), maxTokensPlain))
	if err != nil {
		return nil, time.Time{}, errBadTokens
	}
	t := new(Tokens)
	for _, dst := range [...]*string{&t.IDToken, &t.AccessToken, &t.RefreshToken} {
		var ok bool
		if *dst, raw, ok = readToken(raw); !ok {
			return nil, time.Time{}, errBadTokens
		}
	}
	exp, w := binary.Varint(raw)
	if w <= 0 || w != len(raw) {
		return nil, time.Time{}, errBadTokens
	}
	if exp != 0 {
		t.Expiry = time.Unix(exp, 0)
	}
	var renewed time.Time
	if rest := plain[len(plain)-r.Len():]; len(rest) > 0 {
		at, w := binary.Varint(rest)
		if w <= 0 || w != len(rest) {
			return nil, time.Time{}, errBadTokens
		}
		renewed = time.Unix(at, 0)
	}
	return t, renewed, nil
}

func tokensAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plain (from tokensPlain) for the session stored under hash.
func seal(key []byte, hash string, plain []byte) ([]byte, error) {
	aead, err := tokensAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealedV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:], plain, tokensAD(hash)), nil //nolint:gosec // G407: the nonce out[1:] is filled by crypto/rand above
}

var errBadTokens = errors.New("session: sealed tokens do not open (wrong key, another session's, or damaged)")

// openTokens reads a blob from SessionTokens, with the current key, else
// the previous one. keys may be empty for a plain ID token blob, which
// needs none.
func openTokens(keys tokenKeys, hash string, blob []byte) (*Tokens, error) {
	t, _, err := openTokensAt(keys, hash, blob)
	return t, err
}

// openTokensAt is openTokens, with when the IdP renewed the tokens, if
// that was sealed with them (renewedPlain).
func openTokensAt(keys tokenKeys, hash string, blob []byte) (*Tokens, time.Time, error) {
	switch {
	case len(blob) == 0:
		return nil, time.Time{}, nil
	case blob[0] == 0: // store.PlainIDTokenBlob
		return &Tokens{IDToken: string(blob[1:])}, time.Time{}, nil
	case blob[0] != sealedV1:
		return nil, time.Time{}, errBadTokens
	}
	plain, err := openSealed(keys.cur, hash, blob)
	if errors.Is(err, errBadTokens) && keys.prev != nil {
		plain, err = openSealed(keys.prev, hash, blob)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	return tokensFromPlain(plain)
}

// openSealed opens a sealed (sealedV1) blob with key, nil or not.
func openSealed(key []byte, hash string, blob []byte) ([]byte, error) {
	if key == nil {
		return nil, errBadTokens
	}
	aead, err := tokensAEAD(key)
	if err != nil {
		return nil, err
	}
	ns := aead.NonceSize()
	if len(blob) < 1+ns {
		return nil, errBadTokens
	}
	plain, err := aead.Open(nil, blob[1:1+ns], blob[1+ns:], tokensAD(hash))
	if err != nil {
		return nil, errBadTokens
	}
	return plain, nil
}

// putSealed seals plain (from tokensPlain) for the session and stores
// it in tx; nil deletes the blob. It creates the sealing key on first use.
func putSealed(tx store.Tx, hash string, plain []byte) error {
	if plain == nil {
		return tx.PutSessionTokens(hash, nil)
	}
	key, err := tx.Secret(TokensKeySecret, 32)
	if err != nil {
		return err
	}
	blob, err := seal(key, hash, plain)
	if err != nil {
		return fmt.Errorf("session: seal tokens: %w", err)
	}
	return tx.PutSessionTokens(hash, blob)
}

// sealedTokens is a session's blob and the keys to open it, read in a
// transaction and opened after it.
type sealedTokens struct {
	blob []byte
	key  tokenKeys
}

func readSealed(tx store.Tx, hash string) (sealedTokens, error) {
	blob, err := tx.SessionTokens(hash)
	if err != nil || len(blob) == 0 || blob[0] == 0 {
		return sealedTokens{blob: blob}, err
	}
	keys, err := readTokenKeys(tx)
	return sealedTokens{blob: blob, key: keys}, err
}

// readTokenKeys reads the keys that may open a blob; a missing one is nil
// (openTokens then reports the blob as not opening).
func readTokenKeys(tx store.Tx) (tokenKeys, error) {
	var keys tokenKeys
	for _, k := range []struct {
		name string
		dst  *[]byte
	}{{TokensKeySecret, &keys.cur}, {TokensKeyPrevious, &keys.prev}} {
		v, err := tx.LoadOrStoreSecret(k.name, nil) // nil: only look
		switch {
		case err == nil:
			*k.dst = v
		case !errors.Is(err, store.ErrNotFound):
			return keys, err
		}
	}
	return keys, nil
}

// Tokens returns the tokens of the session stored under hash
// (store.Session.Hash): nil when it has none, ErrNoSession when there is
// no such session, or it has ended (storedLive).
func (m *Manager) Tokens(ctx context.Context, hash string) (*Tokens, error) {
	t, _, err := m.tokensAt(ctx, hash)
	return t, err
}

// tokensAt is Tokens, with when the IdP renewed them, if that was sealed
// with them (renewedPlain).
func (m *Manager) tokensAt(ctx context.Context, hash string) (*Tokens, time.Time, error) {
	var st sealedTokens
	err := m.store.View(ctx, func(tx store.Tx) error {
		if err := m.storedLive(tx, hash); err != nil {
			return err
		}
		var err error
		st, err = readSealed(tx, hash)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, time.Time{}, ErrNoSession
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("session: read tokens: %w", err)
	}
	return openTokensAt(st.key, hash, st.blob)
}

// storedLive reads the session stored under hash in tx, and reports
// store.ErrNotFound, as for one deleted, when its stored end has passed: a
// session signed out (or found expired) stays stored, ended, until the
// sweep, with its tokens, which are no longer anyone's to refresh, store
// or pass on. Idleness is not judged here: its readers serve a request
// the session admitted.
func (m *Manager) storedLive(tx store.Tx, hash string) error {
	s, err := tx.Session(hash)
	if err != nil {
		return err
	}
	if m.pastEnd(s) {
		return store.ErrNotFound
	}
	return nil
}

// PutTokens replaces the tokens of the session stored under hash (after a
// refresh), or deletes them when t is nil; ErrNoSession when the session
// has ended.
func (m *Manager) PutTokens(ctx context.Context, hash string, t *Tokens) error {
	plain, err := m.zip.tokensPlain(t)
	if err != nil {
		return err
	}
	err = m.store.Update(ctx, func(tx store.Tx) error {
		if err := m.storedLive(tx, hash); err != nil {
			return err
		}
		return putSealed(tx, hash, plain)
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoSession
	}
	if err != nil {
		return fmt.Errorf("session: put tokens: %w", err)
	}
	return nil
}
