package idp

import (
	"bytes"
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Errors Take returns, to be tested with errors.Is. They are distinct so that
// the error page and the audit trail can tell "the browser never started this
// login" from "it took too long" from "someone edited the cookie".
var (
	ErrFlowMissing  = errors.New("flow cookie missing")
	ErrFlowExpired  = errors.New("flow cookie expired")
	ErrFlowInvalid  = errors.New("flow cookie invalid")
	ErrFlowTooLarge = errors.New("flow cookie too large")
)

const (
	// maxFlowCookie bounds name+value. Browsers cap a cookie (name, value
	// and attributes) at about 4096 bytes and silently drop larger ones,
	// which would turn into a confusing "flow missing" at the callback.
	maxFlowCookie = 3800
	// maxFlowBytes and maxFlows bound the flow cookies a browser holds
	// for a site (see makeRoom). 8 KiB keeps the Cookie header well under
	// a server's limit (Caddy's default is 16 KiB, nginx's 8 KiB a line),
	// whatever else the site sets, and still holds two flows of the
	// largest size beside a few ordinary ones.
	maxFlowBytes = 8 << 10
	maxFlows     = 8
	// flowKeyInfo separates the flow-cookie key from any other key derived
	// from the same secret.
	flowKeyInfo = "caddy-sso flow cookie v1"
	// flowAADPrefix versions the format: a future layout change cannot be
	// confused with this one.
	flowAADPrefix = "caddy-sso/flow/v1\x00"
	cookieBase    = "sso_flow_"
	// hostPrefix names flow cookies on https sites. Browsers accept a
	// __Host- cookie only if it is Secure, has Path=/ and no Domain, so a
	// sibling subdomain cannot plant one for this host (login CSRF by
	// cookie tossing); the session cookie uses the same prefix.
	hostPrefix = "__Host-"
	// legacyPrefix named flow cookies on https sites before __Host-. Such
	// cookies are never read, only stripped from what the upstream sees.
	legacyPrefix = "__Secure-"
	// cookiePath is Path=/, which __Host- requires.
	cookiePath = "/"
)

// FlowCookies binds a login in progress to the browser that started it. The
// protocol state (OIDC nonce and PKCE verifier, SAML request ID, return URL)
// travels in an AES-256-GCM encrypted, HttpOnly, short-lived cookie rather
// than in server memory, so any instance behind a load balancer can finish a
// login and nothing needs cleaning up when a user abandons one.
//
// Each login gets its own cookie, named after its flow ID, so several tabs can
// log in at once without overwriting each other. The cookie name and flow ID
// are authenticated as additional data, so a cookie cannot be renamed to
// stand in for another flow.
//
// A FlowCookies is safe for concurrent use once configured, SetKeys too.
type FlowCookies struct {
	// keys are swapped whole by SetKeys while requests seal and open
	// with them: a request reads them once per cookie.
	keys atomic.Pointer[flowKeys]

	// Now is the clock for expiry checks; nil means time.Now. Set it
	// before first use (tests set a fake clock).
	Now func() time.Time
}

// flowKeys are the keys of a FlowCookies at one time.
type flowKeys struct {
	aead cipher.AEAD
	// older open what the keys before a rotation sealed, never seal
	// (NewFlowCookies).
	older []cipher.AEAD
}

// FlowCookieKeySecret names the store secret the flow cookies are keyed
// by; after a rotation, the key before it is kept under this name plus
// PreviousKeySuffix until the next rotation or the rotation's finish
// (docs/operations.md, "Rotating the store's keys").
const FlowCookieKeySecret = "flow-cookie-key"

// PreviousKeySuffix names the key a rotation replaced, beside the current
// one, of a key that keeps its predecessor for a while.
const PreviousKeySuffix = "/previous"

// FlowKeyRecheckInterval is how often a running instance reads the flow
// cookies' keys from the store again, and takes them (SetKeys) when they
// changed (gateway.FlowKeys): within it after `caddy sso keys rotate`,
// every instance seals with the new key and opens the cookies it sealed,
// and after `caddy sso keys finish`, none opens a cookie only the
// previous key opens, without a reload (docs/operations.md, "Rotating the
// store's keys"). The read is a read transaction of two secrets.
const FlowKeyRecheckInterval = time.Minute

// NewFlowCookies returns FlowCookies keyed by key, a secret of at least 32
// bytes. The AES key is derived from it with HKDF, so the same secret may
// safely key other things too. The cookies' names and attributes are
// decided per request (see CookieName and Save).
//
// previous are the keys before a rotation: they open the cookies they
// sealed, never seal one, so that a sign-in begun before a rotation (or on
// an instance that has not taken the new key yet) completes after it.
func NewFlowCookies(key []byte, previous ...[]byte) (*FlowCookies, error) {
	f := &FlowCookies{}
	if err := f.SetKeys(key, previous...); err != nil {
		return nil, err
	}
	return f, nil
}

// SetKeys replaces the keys, as NewFlowCookies takes them, while the
// cookies are in use: from its return every cookie is sealed with key, and
// only key and previous open one. On error the keys are unchanged.
func (f *FlowCookies) SetKeys(key []byte, previous ...[]byte) error {
	aead, err := flowAEAD(key)
	if err != nil {
		return err
	}
	k := &flowKeys{aead: aead}
	for _, p := range previous {
		old, err := flowAEAD(p)
		if err != nil {
			return fmt.Errorf("the previous key: %w", err)
		}
		k.older = append(k.older, old)
	}
	f.keys.Store(k)
	return nil
}

func flowAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("flow cookies: key must be at least 32 bytes, got %d", len(key))
	}
	k, err := hkdf.Key(sha256.New, key, nil, flowKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("flow cookies: deriving key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("flow cookies: %w", err)
	}
	return cipher.NewGCM(block)
}

func (f *FlowCookies) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// CookieName returns the name of the cookie that carries flowID on requests
// like r. It is a hash of the flow ID, so it is short, always a valid cookie
// name, and different for every login. On secure sites (SecureRequest) it
// has the __Host- prefix, and Take reads no other name there.
func (f *FlowCookies) CookieName(r *http.Request, flowID string) string {
	sum := sha256.Sum256([]byte("caddy-sso flow name\x00" + flowID))
	name := cookieBase + base64.RawURLEncoding.EncodeToString(sum[:16])
	if SecureRequest(r) {
		return hostPrefix + name
	}
	return name
}

// IsFlowCookie reports whether a cookie name is a flow cookie, so the
// handler can strip them from requests forwarded upstream. It also knows
// the __Secure- names of earlier versions, which are stripped but never
// read.
// It runs for every cookie of every request, so the three names are
// constants rather than built per call.
func IsFlowCookie(name string) bool {
	return strings.HasPrefix(name, cookieBase) ||
		strings.HasPrefix(name, hostPrefix+cookieBase) ||
		strings.HasPrefix(name, legacyPrefix+cookieBase)
}

// SecureRequest reports whether cookies set in answer to r must be Secure
// (see Origin.Secure).
func SecureRequest(r *http.Request) bool { return RequestOrigin(r).Secure() }

func (f *FlowCookies) aad(name, flowID string) []byte {
	return []byte(flowAADPrefix + name + "\x00" + flowID)
}

// Save stores v (JSON-encoded) for flowID in an encrypted cookie that expires
// after ttl. sameSite is per call because protocols differ: the OIDC callback
// is a top-level GET, which Lax cookies reach; the SAML ACS is a cross-site
// POST, which only SameSite=None cookies reach.
//
// None requires Secure, so a None cookie is Secure even on a plain-http
// loopback site: browsers treat http://localhost and 127.0.0.0/8 as
// potentially trustworthy and keep Secure cookies from them (Chromium does,
// as caddymodule's browser tests show, and so does Go's cookie jar). Leaving
// SameSite out there instead would make the ACS POST work only within
// Chromium's two-minute grace for cookies without SameSite.
func (f *FlowCookies) Save(w http.ResponseWriter, r *http.Request, flowID string, v any, ttl time.Duration, sameSite http.SameSite) error {
	if flowID == "" {
		return errors.New("flow cookies: empty flow ID")
	}
	if ttl < time.Second {
		return fmt.Errorf("flow cookies: ttl %v too short", ttl)
	}
	payload, err := marshalFlow(v)
	if err != nil {
		return fmt.Errorf("flow cookies: encoding flow state: %w", err)
	}
	name := f.CookieName(r, flowID)
	value, err := f.seal(name, flowID, payload, f.now().Add(ttl))
	if err != nil {
		return err
	}
	if len(name)+len(value) > maxFlowCookie {
		return fmt.Errorf("%w: %d bytes (limit %d)", ErrFlowTooLarge, len(name)+len(value), maxFlowCookie)
	}
	f.makeRoom(w, r, name, len(name)+len(value))
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     cookiePath,
		MaxAge:   int((ttl + time.Second - 1) / time.Second),
		HttpOnly: true,
		Secure:   SecureRequest(r) || sameSite == http.SameSiteNoneMode,
		SameSite: sameSite,
	})
	return nil
}

// marshalFlow is json.Marshal without its HTML escaping, which would spend
// six bytes of the size-limited cookie on each & < > of a return path (a
// query's every &): the payload is sealed, and only ever read back by
// json.Unmarshal (Take), never put in a page or a script.
func marshalFlow(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// makeRoom expires, largest first, the flow cookies r carries (other than
// name, about to be set with size bytes) beyond maxFlows or maxFlowBytes.
// Each sign-in has a cookie of its own that lives until its callback or
// its timeout, so sign-ins abandoned, or started in a loop by another
// site's page, would otherwise pile up until the browser's requests to
// this site are refused for their header's size, before the gateway
// could clear anything. Which flows the cookies belong to cannot be read
// (the names are hashes and the flow ID is in the cookie's additional
// data), so the largest go first: ordinary sign-ins' cookies are small,
// and a flow that loses its cookie only has to start again.
func (f *FlowCookies) makeRoom(w http.ResponseWriter, r *http.Request, name string, size int) {
	type held struct {
		name string
		size int
	}
	var flows []held
	total := size
	for _, c := range r.Cookies() {
		if IsFlowCookie(c.Name) && c.Name != name {
			flows = append(flows, held{c.Name, len(c.Name) + len(c.Value)})
			total += len(c.Name) + len(c.Value)
		}
	}
	if total <= maxFlowBytes && len(flows) < maxFlows {
		return
	}
	slices.SortStableFunc(flows, func(a, b held) int { return cmp.Compare(b.size, a.size) })
	cleared := map[string]bool{}
	for i, c := range flows {
		if total <= maxFlowBytes && len(flows)-i < maxFlows {
			return
		}
		total -= c.size
		if !cleared[c.name] {
			cleared[c.name] = true
			f.clear(w, c.name)
		}
	}
}

// seal encrypts payload for the cookie name and flowID, valid until exp.
// Plaintext: 8-byte big-endian expiry (Unix seconds) then the payload. The
// expiry is inside the ciphertext because a copied cookie ignores the
// browser's Max-Age.
func (f *FlowCookies) seal(name, flowID string, payload []byte, exp time.Time) (string, error) {
	plain := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint64(plain, uint64(exp.Unix()))
	plain = append(plain, payload...)

	aead := f.keys.Load().aead
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("flow cookies: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, plain, f.aad(name, flowID))
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Take decodes the cookie for flowID into v and clears it, so a flow can be
// finished once per browser. It returns ErrFlowMissing when the browser sent
// no such cookie, ErrFlowExpired when it is older than its ttl (the browser
// should have dropped it; a copy was replayed or the clock moved), and
// ErrFlowInvalid when it does not decrypt (tampered, renamed, or another key).
// Single use across copies of the cookie is the caller's job: the IDs it
// carries go in Assertion.SingleUse, which the sign-in transaction consumes.
func (f *FlowCookies) Take(w http.ResponseWriter, r *http.Request, flowID string, v any) error {
	name := f.CookieName(r, flowID)
	cookies := r.CookiesNamed(name)
	if len(cookies) == 0 {
		return ErrFlowMissing
	}
	f.clear(w, name)

	// Several cookies of one name can arrive (another path, a cookie tossed
	// by a sibling subdomain): the genuine one is whichever decrypts.
	err := ErrFlowInvalid
	for _, c := range cookies {
		payload, openErr := f.open(name, flowID, c.Value)
		if openErr != nil {
			if errors.Is(openErr, ErrFlowExpired) {
				err = openErr
			}
			continue
		}
		if jerr := json.Unmarshal(payload, v); jerr != nil {
			return fmt.Errorf("%w: decoding flow state: %v", ErrFlowInvalid, jerr)
		}
		return nil
	}
	return err
}

func (f *FlowCookies) open(name, flowID, value string) ([]byte, error) {
	keys := f.keys.Load()
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < keys.aead.NonceSize()+keys.aead.Overhead()+8 {
		return nil, ErrFlowInvalid
	}
	ns := keys.aead.NonceSize()
	plain, err := keys.aead.Open(nil, raw[:ns], raw[ns:], f.aad(name, flowID))
	for _, old := range keys.older {
		if err == nil {
			break
		}
		plain, err = old.Open(nil, raw[:ns], raw[ns:], f.aad(name, flowID))
	}
	if err != nil || len(plain) < 8 {
		return nil, ErrFlowInvalid
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(plain[:8])), 0)
	if !f.now().Before(exp) {
		return nil, ErrFlowExpired
	}
	return plain[8:], nil
}

// clear deletes the cookie. The deletion is Secure whatever the site, so
// that it matches a Secure cookie (every None one, and all on https) and is
// accepted for either kind: loopback origins may set Secure cookies.
// SameSite is left out: deletion matches on name, path and domain only.
func (f *FlowCookies) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    "",
		Path:     cookiePath,
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   true,
	})
}

// SignInFlowID is the ID under which a sign-in at the IdP name of protocol
// keeps its flow cookie, keyed by what the IdP sends back (OIDC state,
// SAML RelayState). Flow IDs keep sign-ins, sign-outs and IdPs apart: a
// cookie saved for one can never be taken for another. The gateway reads
// it too, for a callback of an IdP a reload renamed or removed.
func SignInFlowID(protocol, name, key string) string {
	if protocol == ProtocolSAML {
		return "saml/" + name + "/login/" + key
	}
	return protocol + "/" + name + "/" + key
}

// FlowReturn is the part of every sign-in's flow cookie that says where
// the sign-in comes back to (a local path, LocalPath). Providers embed it
// in what their flow cookie carries; the name is short because the cookie
// is size-limited.
type FlowReturn struct {
	ReturnTo string `json:"r"`
}
