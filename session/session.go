// Package session issues and resolves sign-in sessions.
//
// The browser holds only a random 256-bit token; the store keeps the
// session under the token's SHA-256, so neither a copy of the store nor a
// log line can be replayed as a cookie. Resolving a token is the hot path of
// every authenticated request: it is served from an in-memory cache and
// never writes to the store. The cache is bounded (Config.CacheSize); the
// store stays the source of truth. Last-seen times are collected in memory
// and written once per Config.TouchInterval, and expired sessions swept, in
// batches sized to take a few milliseconds each (store.BatchSizer) that
// end after the session at hand when a sign-in waits (store.RunItems), so
// neither holds the store's write lock for long.
//
// What the IdP issued at sign-in (Tokens) is sealed with AES-256-GCM under a
// key kept in the store and stored apart from the session record. With a
// store shared by several instances (store.Broadcaster), what one instance
// revokes the others forget at once.
package session

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/internal/logbudget"
	"github.com/caddy-sso/caddy-sso/store"
)

// Defaults for Config; the Caddyfile and JSON config fall back to these.
const (
	DefaultLifetime      = 8 * time.Hour
	DefaultIdleTimeout   = time.Hour
	DefaultTouchInterval = time.Minute
	DefaultCacheTTL      = 30 * time.Second
	// DefaultMaxPerUser caps a user's sessions: enough for every browser
	// and device a person uses, few enough that a script signing in in a
	// loop cannot grow the store without bound.
	DefaultMaxPerUser = 50
	// DefaultCacheSize holds about 100,000 active sessions (some 1.5 KB of
	// heap each) in memory; the store keeps the rest.
	DefaultCacheSize = 100_000
	// DefaultRefreshRaceWindow: the other instance's refresh reached the
	// IdP before this one was refused, so its answer comes within the IdP
	// client's timeout (idp.DefaultHTTPTimeout, which the token endpoint's
	// client has unless an embedder gives idp/oidc its own), and its store
	// write follows: 2 s for that write, a store taking longer being in
	// trouble of its own.
	DefaultRefreshRaceWindow = idp.DefaultHTTPTimeout + 2*time.Second
)

// ReasonSessionLimit is the audit reason of sessions ended because their
// user signed in once more beyond Config.MaxPerUser.
const ReasonSessionLimit = "session_limit"

// ErrNoSession is returned for a token that names no valid session: unknown,
// expired, idle too long, revoked, or whose user may no longer sign in.
var ErrNoSession = errors.New("session: no valid session")

// ErrUserInactive is returned by Create for a user who may not sign in
// (deactivated or pending) by the time the session would be stored.
var ErrUserInactive = errors.New("session: user is not active")

// Config tunes a Manager. Zero fields take the defaults above.
type Config struct {
	Lifetime    time.Duration // absolute lifetime from sign-in
	IdleTimeout time.Duration // ends a session unused this long; negative disables
	// TouchInterval is the granularity of the stored last-seen time: it is
	// written at most once per interval per session, in one batch. It is
	// also how often Run flushes; the sweep allows for the lag this gives
	// the stored time (Config.lastSeenLag).
	TouchInterval time.Duration
	// CacheTTL bounds how long a cached session is trusted before it is
	// re-read from the store. Revocations made through this Manager take
	// effect at once; this bounds changes made by another process (the
	// offline CLI, another instance sharing the store).
	CacheTTL time.Duration
	// CacheSize bounds the sessions kept in memory; zero (or negative)
	// means DefaultCacheSize. Past it, the least recently used sessions
	// are dropped and, when next used, read from the store again.
	CacheSize int
	// MaxPerUser caps the sessions one user may have: a sign-in beyond it
	// ends the user's oldest sessions (by creation). Zero means
	// DefaultMaxPerUser; negative means no cap.
	MaxPerUser int
	// RefreshRaceWindow is how long a token refresh the IdP refused as
	// revoked waits for another instance's refresh of the same session
	// to land in the store before it ends the session (see
	// refreshFailed); zero means DefaultRefreshRaceWindow. Only a store
	// shared by instances (a store.Broadcaster) has such instances: over
	// any other the refusal ends the session at once.
	RefreshRaceWindow time.Duration
}

// WithDefaults returns c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Lifetime <= 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.TouchInterval <= 0 {
		c.TouchInterval = DefaultTouchInterval
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.CacheSize <= 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.MaxPerUser == 0 {
		c.MaxPerUser = DefaultMaxPerUser
	}
	if c.RefreshRaceWindow <= 0 {
		c.RefreshRaceWindow = DefaultRefreshRaceWindow
	}
	return c
}

// idle returns the idle timeout, 0 when disabled.
func (c Config) idle() time.Duration {
	if c.IdleTimeout < 0 {
		return 0
	}
	return c.IdleTimeout
}

// flushEvery is how often Run writes last-seen times.
func (c Config) flushEvery() time.Duration { return c.TouchInterval }

// lastSeenLag bounds how far a stored last-seen time trails the one an
// instance holds in memory, which is what its requests judge idleness by:
// a use is written once it is TouchInterval past the stored time, by the
// next flush, at most flushEvery later. Every instance sharing the store
// flushes its own uses so, so the bound holds for all of them (give or
// take the time a flush itself takes).
func (c Config) lastSeenLag() time.Duration { return c.TouchInterval + c.flushEvery() }

// sweepIdle is the idle time by stored last-seen after which the sweep
// deletes a session, 0 when idle timeouts are disabled. The sweep only
// collects garbage (requests enforce the idle timeout, allowing at most
// this lag: idleFrom), so it waits out the lag rather than delete a
// session that a request could still accept.
func (c Config) sweepIdle() time.Duration {
	idle := c.idle()
	if idle == 0 {
		return 0
	}
	return idle + c.lastSeenLag()
}

// Manager issues, resolves and revokes sessions.
type Manager struct {
	store  store.Store
	bc     store.Broadcaster // nil unless the store is shared by instances
	cfg    Config
	now    func() time.Time
	logger *zap.Logger
	// started is when New made the Manager (unix nanos): over a store no
	// other instance shares, a stored last-seen time written since then
	// is this Manager's own, exact (idleFrom).
	started int64

	// Derive, when set (before first use), computes a value kept with each
	// cached identity (Identity.Derived): per-session work the caller
	// would otherwise repeat on every request.
	Derive func(*Identity) any

	// Forgotten, when set (before first use), is told what the Manager
	// forgets because it ended or changed, here or on another instance's
	// word (one session, one user's, or all): what holds on to a session
	// beyond one request (gateway.Streams) checks it again with Check.
	Forgotten func(store.Invalidation)

	mu      sync.RWMutex
	entries map[tokenHash]*entry          // by token hash
	byUser  map[string]map[tokenHash]bool // user ID -> token hashes in entries
	zip     compressors                   // for sealing tokens
	flight  singleflight.Group            // token refreshes, one per session (UpstreamTokens)

	// evicted holds the last-seen times of sessions the cache dropped
	// (for room, or to re-read them) before Flush wrote them (hash -> unix
	// nanos).
	evicted map[tokenHash]int64
	// unsaved holds the tokens the IdP renewed for a session when storing
	// them failed, until a later refresh flight stores them (upstream.go):
	// the IdP may have retired the stored refresh token. Under mu.
	unsaved map[tokenHash]*unsavedTokens
	// unrecorded holds the sign-outs the store could not record
	// (Revoke), refused here until Flush records them. Under mu.
	unrecorded map[tokenHash]unrecordedRevocation
	// unrecordedFull keeps the error that unrecorded is full to a line a
	// minute.
	unrecordedFull logbudget.Budget
	// largeHeaders keeps newIdentity's warning to a line per user an
	// hour (largeHeadersEvery): it holds for as long as the user works,
	// and a session is re-read every CacheTTL.
	largeHeaders logbudget.Budget

	// A load (or sign-in) reads the store and caches what it read later;
	// a revocation committed and forgotten in between must not leave
	// that read in the cache. So every forget takes the next number of
	// forgets and records it where a later cache insert can see it: in
	// the stripe of the session's hash, of the user's ID, or, for the
	// whole cache, in forgotAll. An insert is refused when any of these
	// is above the count taken before the store was read (forgottenSince).
	// Striping keeps this fixed in size and off the hot path (a cache hit
	// reads none of it); two sessions or users sharing a stripe cost at
	// most a store read that would not otherwise have happened.
	forgets        atomic.Uint64
	forgotSessions [forgetStripes]uint64 // under mu
	forgotUsers    [forgetStripes]uint64 // under mu
	forgotAll      uint64                // under mu
	userSeed       maphash.Seed          // for user IDs' stripes
}

// forgetStripes is the number of stripes of forgotSessions and of
// forgotUsers (a power of two). A sweep forgets a few hundred sessions per
// batch; with this many stripes a load running meanwhile is kept out of the
// cache only rarely (32 KiB per Manager).
const forgetStripes = 4096

func sessionStripe(h tokenHash) int { return (int(h[0])<<8 | int(h[1])) & (forgetStripes - 1) }

func (m *Manager) userStripe(userID string) int {
	return int(maphash.String(m.userSeed, userID) & (forgetStripes - 1))
}

// forgottenSinceLocked reports whether a forget of hash, of userID's
// sessions or of the whole cache came after the forgets count was since:
// what was read from the store after since may then predate a revocation.
// m.mu is held.
func (m *Manager) forgottenSinceLocked(since uint64, hash tokenHash, userID string) bool {
	return m.forgotAll > since || m.forgotSessions[sessionStripe(hash)] > since ||
		m.forgotUsers[m.userStripe(userID)] > since
}

// entry is one cached session. Identity is immutable; the times are atomic
// so the hot path takes only a read lock.
type entry struct {
	id       *Identity
	expires  int64 // unix nanos, absolute
	loaded   int64 // unix nanos, when read from the store
	lastSeen atomic.Int64
	stored   atomic.Int64 // last-seen value known to be in the store
	// used is the second-chance bit of the cache's eviction: set by a
	// hit, cleared by an eviction pass that spares the entry once.
	used atomic.Bool
}

// New returns a Manager over st. now may be nil (time.Now). When st is a
// store.Broadcaster, the Manager tells other instances what it revokes and
// forgets what they revoke (see Run).
func New(st store.Store, cfg Config, logger *zap.Logger, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	bc, _ := st.(store.Broadcaster)
	return &Manager{
		store:   st,
		bc:      bc,
		cfg:     cfg.WithDefaults(),
		now:     now,
		logger:  logger,
		started: now().UnixNano(),
		entries: make(map[tokenHash]*entry),
		byUser:  make(map[string]map[tokenHash]bool),
		evicted: make(map[tokenHash]int64),
		unsaved: make(map[tokenHash]*unsavedTokens),

		unrecorded:   make(map[tokenHash]unrecordedRevocation),
		largeHeaders: logbudget.Budget{Every: largeHeadersEvery},
		userSeed:     maphash.MakeSeed(),
	}
}

// Cached returns the number of sessions in the in-memory cache (the
// sessions used since they were loaded or created).
func (m *Manager) Cached() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.entries)
}

// tokenHash is the SHA-256 of a token: the cache key, kept binary so the
// hot path does not allocate a hex string per request.
type tokenHash [sha256.Size]byte

// cookieHash is the store key of the session a cookie's token names, and
// false for a token that cannot be one Prepare drew (drawable), which
// names none: the one way from a cookie to a session's key.
func cookieHash(token string) (tokenHash, bool) {
	if !drawable(token) {
		return tokenHash{}, false
	}
	return hashOf(token), true
}

func hashOf(token string) tokenHash {
	// Tokens are 43 bytes; copying into a stack buffer keeps the
	// conversion off the heap on every request.
	var buf [64]byte
	if len(token) <= len(buf) {
		return sha256.Sum256(append(buf[:0], token...))
	}
	return sha256.Sum256([]byte(token))
}

// String returns the store key form.
func (h tokenHash) String() string { return hex.EncodeToString(h[:]) }

// parseHash reads a store key. Keys also arrive from outside the process
// (another instance's invalidation notices, which any role that can
// connect to the PostgreSQL database can send), so a key of any other
// length is refused before decoding: hex.Decode panics when the key is
// longer than its destination, and the panic would end the process.
func parseHash(s string) (tokenHash, bool) {
	var h tokenHash
	if len(s) != hex.EncodedLen(len(h)) {
		return h, false
	}
	n, err := hex.Decode(h[:], []byte(s))
	return h, err == nil && n == len(h)
}

// Hash returns the store key of a token.
func Hash(token string) string { return hashOf(token).String() }

// Create starts a session for u and returns the token for the cookie. The
// caller discards any session the browser had before (no fixation).
func (m *Manager) Create(ctx context.Context, u *store.User, idpName string, logout store.LogoutInfo) (string, *store.Session, error) {
	n, err := m.Prepare(idpName, logout, nil)
	if err != nil {
		return "", nil, err
	}
	err = m.store.Update(ctx, func(tx store.Tx) error { return n.Write(tx, u) })
	if err != nil {
		return "", nil, fmt.Errorf("session: create: %w", err)
	}
	m.Remember(n)
	return n.Token, n.Session, nil
}

// NewSession is a session being created inside someone else's transaction
// (a sign-in's JIT changes), so that both commit together: Prepare it,
// Write it in the transaction, Remember it once that has committed.
type NewSession struct {
	Token   string
	Session *store.Session
	// Ended lists the sessions Write ended to keep the user within
	// Config.MaxPerUser (store hashes); Remember drops them from the cache.
	Ended []string

	maxPerUser int
	// ends is the Manager's Ends: capSessions counts only the sessions it
	// finds live, and deletes the others (listed in swept, for Remember).
	ends  func(*store.Session) (time.Time, bool)
	swept []string
	// tokens is what the IdP issued, compressed by Prepare (nil for none):
	// Write only seals it, so the transaction, which holds the store's
	// write lock and may run more than once, does not spend time on DEFLATE.
	tokens []byte
	user   *store.User // as read in the transaction that wrote the session
	// since is the Manager's forgets count before Write read the user:
	// Remember does not cache a session whose user was forgotten after.
	since uint64
}

// Prepare draws a token and fills in a session record for idpName. tokens,
// when not nil, are sealed and stored with the session by Write.
func (m *Manager) Prepare(idpName string, logout store.LogoutInfo, tokens *Tokens) (*NewSession, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("session: token: %w", err)
	}
	plain, err := m.zip.tokensPlain(tokens)
	if err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:]) // tokenLen long: drawable
	now := m.now()
	return &NewSession{Token: token, maxPerUser: m.cfg.MaxPerUser, ends: m.Ends, tokens: plain, since: m.forgets.Load(), Session: &store.Session{
		Hash:     Hash(token),
		IdP:      idpName,
		Created:  now,
		Expires:  now.Add(m.cfg.Lifetime),
		LastSeen: now,
		Logout:   logout,
	}}, nil
}

// Write stores the session and its tokens for u in tx, and ends the user's
// oldest sessions beyond Config.MaxPerUser (listing them in Ended, with one
// audit event). It re-reads the user in tx, so a deactivation committed
// after the sign-in was approved cannot leave a fresh session behind
// (ErrUserInactive). It may run more than once when the store retries a
// batched transaction, and starts from scratch each time.
func (n *NewSession) Write(tx store.Tx, u *store.User) error {
	n.Ended, n.swept = n.Ended[:0], n.swept[:0]
	cur, err := tx.User(u.ID)
	if err != nil {
		return err
	}
	if !cur.Active || cur.Pending {
		return ErrUserInactive
	}
	n.user = cur
	n.Session.UserID = cur.ID
	if err := tx.PutSession(n.Session); err != nil {
		return err
	}
	if n.tokens != nil {
		if err := putSealed(tx, n.Session.Hash, n.tokens); err != nil {
			return err
		}
	}
	return n.capSessions(tx)
}

// LockEnding takes, before a sign-in ends any session, the locks of the
// sessions it may end: previous, the session the browser came with, which
// the caller ends before Write so that the cap does not count it, and,
// under a cap, the user's, of which Write ends the oldest. One statement
// takes them in hash order (store.Tx.LockSessions), the order a flush of
// last-seen times takes them in: ending previous and then a capped
// session, each locked as it went, took two sessions out of that order
// and deadlocked with a flush of both on another instance.
func (n *NewSession) LockEnding(tx store.Tx, userID, previous string) error {
	if n.maxPerUser <= 0 {
		return nil // previous is the one session the sign-in ends: one lock
	}
	return tx.LockSessions(userID, []string{previous})
}

// capSessions ends the user's oldest sessions beyond the cap. The user's
// session index is short (at most the cap plus one), so reading it costs
// little on the sign-in path. Sessions that have ended already (idle or
// past their lifetime, as Ends judges it, kept stored until the sweep for
// a sign-out's IdP logout: Manager.end) go first, oldest first, and only
// as many as the cap needs, without an audit event (as the sweep deletes
// them); a live session goes only when the live ones alone are over the
// cap, audited as session_limit with their number.
func (n *NewSession) capSessions(tx store.Tx) error {
	if n.maxPerUser <= 0 {
		return nil
	}
	all, err := tx.UserSessions(n.Session.UserID)
	if err != nil || len(all) <= n.maxPerUser {
		return err
	}
	ended := make(map[string]bool, len(all))
	for _, s := range all {
		_, ended[s.Hash] = n.ends(s)
	}
	slices.SortFunc(all, func(a, b *store.Session) int {
		// The new session is never the one to go, whatever the clocks say.
		switch {
		case a.Hash == n.Session.Hash:
			return 1
		case b.Hash == n.Session.Hash:
			return -1
		case ended[a.Hash] != ended[b.Hash]:
			if ended[a.Hash] {
				return -1
			}
			return 1
		}
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Hash, b.Hash))
	})
	victims := all[:len(all)-n.maxPerUser]
	if len(victims) > 1 {
		// Locked together, in hash order, before any goes (see LockEnding).
		hashes := make([]string, len(victims))
		for i, s := range victims {
			hashes[i] = s.Hash
		}
		if err := tx.LockSessions("", hashes); err != nil {
			return err
		}
	}
	for _, s := range victims {
		if err := tx.DeleteSession(s.Hash); err != nil {
			return err
		}
		if ended[s.Hash] {
			n.swept = append(n.swept, s.Hash)
		} else {
			n.Ended = append(n.Ended, s.Hash)
		}
	}
	if len(n.Ended) == 0 {
		return nil
	}
	return tx.Audit(store.Event{Type: store.EventSessionRevoked, IdP: n.Session.IdP, UserID: n.Session.UserID,
		Reason: ReasonSessionLimit, Detail: map[string]string{"sessions": strconv.Itoa(len(n.Ended))}})
}

// Remember caches a session whose Write has committed, so the first request
// with its cookie is served from memory, and forgets the sessions Write ended
// or deleted as ended already.
// A session whose user was forgotten (deactivated, say) after Prepare is not
// cached: its first request reads the store.
func (m *Manager) Remember(n *NewSession) {
	m.Cache(n)
	if gone := slices.Concat(n.Ended, n.swept); len(gone) > 0 {
		m.ForgetSessions(gone)
	}
}

// Cache is Remember without the forgetting: for a caller that forgets, in
// one Forget, what Stale names.
func (m *Manager) Cache(n *NewSession) {
	m.cache(hashOf(n.Token), n.Session, n.user, n.since, 0)
}

// Stale is what the transaction that wrote n (Write) made stale in the
// session caches: the sessions Write ended or deleted as ended already,
// plus the caller's sessions (store hashes) and users.
func (n *NewSession) Stale(sessions, users []string) store.Invalidation {
	return store.Invalidation{Sessions: slices.Concat(n.Ended, n.swept, sessions), Users: users}
}

// TellAtCommit has tx tell the other instances sharing the store to forget
// inv when it commits, where the store's transactions can
// (store.TxBroadcaster): a sign-in is then one commit, where each
// broadcast after it would be another write transaction. It reports
// whether tx will; either way the caller calls Forget after the commit.
func (m *Manager) TellAtCommit(tx store.Tx, inv store.Invalidation) (bool, error) {
	tb, ok := tx.(store.TxBroadcaster)
	if m.bc == nil || !ok || inv.Empty() {
		return false, nil
	}
	told, err := tb.BroadcastAtCommit(inv)
	if err != nil {
		return false, fmt.Errorf("session: %w", err)
	}
	return told, nil
}

// Forget drops what inv names from the cache after the change committed,
// and tells the other instances in one broadcast unless the transaction
// did (told: TellAtCommit).
func (m *Manager) Forget(inv store.Invalidation, told bool) {
	if inv.Empty() {
		return
	}
	m.apply(inv)
	if !told {
		m.broadcast(context.Background(), inv)
	}
}

// Resolve returns the identity behind a cookie token, or ErrNoSession. A
// cache hit neither locks for writing nor touches the store; a cookie that
// cannot be a token Prepare drew does neither (drawable).
func (m *Manager) Resolve(ctx context.Context, token string) (*Identity, error) {
	h, ok := cookieHash(token)
	if !ok {
		return nil, ErrNoSession
	}
	return m.lookup(ctx, h, true)
}

// tokenLen is the length of every session token Prepare has drawn: 32
// random bytes in unpadded base64url.
const tokenLen = 43

// drawable reports whether token has the shape of one Prepare draws:
// tokenLen characters of the base64url alphabet. Anyone can send made-up
// session cookies, four a request (docs/security.md, "Unauthenticated
// traffic"); one of any other shape names no session, and costs neither a
// store read nor the forget, under the cache's lock, of what it did not
// find.
//
// Every entry point that takes a cookie's token goes through cookieHash,
// so that none can skip the check.
func drawable(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	for i := range len(token) {
		switch c := token[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Check is Resolve by a session's store key (Identity.SessionHash), for
// what outlives a request (a WebSocket, an event stream: gateway.Streams):
// it tells whether the session is still valid, with its identity as it now
// stands. It is not a use of the session: a stream that a tab left in the
// background holds open must not keep the session from its idle timeout.
func (m *Manager) Check(ctx context.Context, hash string) (*Identity, error) {
	h, ok := parseHash(hash)
	if !ok {
		return nil, ErrNoSession
	}
	return m.lookup(ctx, h, false)
}

// Touch records a use of the session stored under hash
// (Identity.SessionHash) that came by another way than a request: what the
// browser sends on a WebSocket (gateway.Streams). A session the cache no
// longer holds (its user changed, the cache was emptied or made room) is
// read again as a request's would be, from the store, which may take a
// store read: callers on a hot path call it in a goroutine of its own.
//
// It is a use exactly as a request's Resolve is (lookup): a session
// already idle past its timeout ends rather than coming back.
func (m *Manager) Touch(ctx context.Context, hash string) {
	if h, ok := parseHash(hash); ok {
		_, _ = m.lookup(ctx, h, true)
	}
}

// lookup resolves a session from the cache, or from the store when the
// cached copy is missing, older than CacheTTL or, over a shared store, idle
// by this instance's uses alone; use records the request as a use of the
// session.
func (m *Manager) lookup(ctx context.Context, hash tokenHash, use bool) (*Identity, error) {
	now := m.now().UnixNano()
	m.mu.RLock()
	e := m.entries[hash]
	m.mu.RUnlock()
	// An entry loaded "in the future" (the clock was set back) is as
	// stale as an old one: its age could otherwise stay under the TTL
	// for as long as the clock went back.
	if e != nil && now >= e.loaded && now-e.loaded < int64(m.cfg.CacheTTL) {
		idle := m.idleExpired(e.lastSeen.Load(), now)
		switch {
		case now >= e.expires || idle && m.bc == nil:
			m.end(ctx, hash, whyExpired, time.Time{})
			return nil, ErrNoSession
		case !idle:
			if !use {
				return e.id, nil
			}
			// Record the visit with a coarse resolution: a store per
			// second keeps the cache line quiet under load, far below
			// the idle timeout's scale.
			if now-e.lastSeen.Load() > int64(time.Second) {
				e.lastSeen.Store(now)
			}
			if !e.used.Load() {
				e.used.Store(true)
			}
			return e.id, nil
		}
		// Over a shared store the entry's last use is only this
		// instance's: another may have served the session since, so
		// one idle by it is read again (load allows for the others'
		// uses) rather than ended. Its lifetime is the same everywhere.
	}
	return m.load(ctx, hash, e, use)
}

func (m *Manager) idleExpired(lastSeen, now int64) bool {
	idle := m.cfg.idle()
	return idle > 0 && now-lastSeen >= int64(idle)
}

// load reads a session and its user from the store and caches them. stale
// is the cache entry being refreshed, if any, whose in-memory last-seen time
// is newer than the stored one; use records the read as a use (lookup).
func (m *Manager) load(ctx context.Context, hash tokenHash, stale *entry, use bool) (*Identity, error) {
	if m.revoked(hash) {
		return nil, ErrNoSession
	}
	var (
		s *store.Session
		u *store.User
	)
	// Taken before the read: a forget counted after it may be of a
	// revocation that the read did not see.
	since := m.forgets.Load()
	err := m.store.View(ctx, func(tx store.Tx) error {
		var err error
		if s, err = tx.Session(hash.String()); err != nil {
			return err
		}
		u, err = tx.User(s.UserID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		m.forget(hash)
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: resolve: %w", err)
	}
	storedEnd := s.Expires       // for end: no second read of what this one read
	s.Expires = m.lifetimeEnd(s) // a lifetime shortened since (a reload) holds too
	stored := s.LastSeen.UnixNano()
	lastSeen := stored
	if stale != nil && stale.lastSeen.Load() > lastSeen {
		lastSeen = stale.lastSeen.Load()
	}
	// A use the cache dropped before Flush wrote it counts too.
	m.mu.RLock()
	lastSeen = max(lastSeen, m.evicted[hash])
	m.mu.RUnlock()
	// Idleness allows for uses the store may not have yet (idleFrom),
	// so that no session in use is ended.
	idleFrom := m.idleFrom(stored, lastSeen)
	now := m.now()
	if !now.Before(s.Expires) || m.idleExpired(idleFrom, now.UnixNano()) {
		m.end(ctx, hash, whyExpired, storedEnd)
		return nil, ErrNoSession
	}
	if !u.Active || u.Pending {
		m.end(ctx, hash, "user inactive", storedEnd)
		return nil, ErrNoSession
	}
	if !use {
		// What a Check reads is not cached: the entry's last-seen time
		// would be the stored one, which the cache's idle check takes
		// for the last use here, without the allowance for uses the
		// store may miss made above: it would end early a session
		// whose uses a crash lost, and send each Check of one in use
		// elsewhere back to the store. Nor are the header values
		// prepared: a Check only decides.
		return plainIdentity(s, u), nil
	}
	e, ok := m.cache(hash, s, u, since, now.UnixNano())
	if !ok {
		// The session or its user was forgotten while this read ran,
		// maybe for a revocation the read did not see. This request
		// raced with it and is served what was read (re-reading would
		// cost another read to answer the same race), but the cache
		// does not keep it: the next request reads the store, and sees
		// the revocation. The use still counts for idle, as a dropped
		// session's does.
		if at := now.UnixNano(); at > stored {
			m.mu.Lock()
			m.evicted[hash] = max(m.evicted[hash], at)
			m.mu.Unlock()
		}
		return e.id, nil
	}
	return e.id, nil
}

// cache keeps a session read from the store when the forgets count was
// since, unless a forget of it or its user has come after (then ok is
// false and e, not cached, only carries the identity). usedAt is the use
// that read it (unix nanos; 0 for none), recorded before the insertion may
// evict entries: the new one among them, whose use then goes to evicted
// like any other's, rather than onto an entry no longer in the cache.
func (m *Manager) cache(hash tokenHash, s *store.Session, u *store.User, since uint64, usedAt int64) (e *entry, ok bool) {
	e = &entry{
		id:      m.newIdentity(s, u),
		expires: s.Expires.UnixNano(),
		loaded:  m.now().UnixNano(),
	}
	e.lastSeen.Store(max(s.LastSeen.UnixNano(), usedAt))
	e.stored.Store(s.LastSeen.UnixNano())
	e.used.Store(true)
	m.mu.Lock()
	if m.forgottenSinceLocked(since, hash, u.ID) {
		m.mu.Unlock()
		return e, false
	}
	if old := m.entries[hash]; old != nil && old.lastSeen.Load() > e.lastSeen.Load() {
		e.lastSeen.Store(old.lastSeen.Load())
	}
	m.entries[hash] = e
	set := m.byUser[s.UserID]
	if set == nil {
		set = make(map[tokenHash]bool)
		m.byUser[s.UserID] = set
	}
	set[hash] = true
	if len(m.entries) > m.cfg.CacheSize {
		m.evictLocked()
	}
	m.mu.Unlock()
	return e, true
}

// evictLocked drops about a tenth of the cache, so that its cost is spread
// over many insertions. It is a second-chance (CLOCK) approximation of LRU
// that keeps the hot path free of writes: an entry used since the last
// pass is spared once, its bit cleared. Go's map iteration starts at a
// random place, which stands in for the clock hand. Last-seen times not yet
// written go to evicted for the next Flush.
func (m *Manager) evictLocked() {
	target := m.cfg.CacheSize - m.cfg.CacheSize/10
	for pass := 0; pass < 2 && len(m.entries) > target; pass++ {
		for hash, e := range m.entries {
			if len(m.entries) <= target {
				break
			}
			if pass == 0 && e.used.Load() {
				e.used.Store(false)
				continue
			}
			if seen := e.lastSeen.Load(); seen > e.stored.Load() {
				m.evicted[hash] = seen
			}
			m.dropLocked(hash, e)
		}
	}
}

func (m *Manager) dropLocked(hash tokenHash, e *entry) {
	delete(m.entries, hash)
	if set := m.byUser[e.id.UserID]; set != nil {
		delete(set, hash)
		if len(set) == 0 {
			delete(m.byUser, e.id.UserID)
		}
	}
}

// forget drops a cached session without touching the store, and keeps a
// load that read the store before from caching it. Every caller forgets a
// session that has ended (or is ending), so its unsaved tokens go too.
func (m *Manager) forget(hash tokenHash) {
	m.mu.Lock()
	m.forgotSessions[sessionStripe(hash)] = m.forgets.Add(1)
	if e := m.entries[hash]; e != nil {
		m.dropLocked(hash, e)
	}
	delete(m.evicted, hash)
	delete(m.unsaved, hash)
	m.mu.Unlock()
	if m.Forgotten != nil {
		m.forgotten(store.Invalidation{Sessions: []string{hash.String()}})
	}
}

// forgotten tells Forgotten, if set, what was forgotten; m.mu is not held.
func (m *Manager) forgotten(inv store.Invalidation) {
	if m.Forgotten != nil {
		m.Forgotten(inv)
	}
}

// end removes an expired or orphaned session from the cache, and from the
// store (an expired one: endExpired). storedEnd is the session's end as the
// caller read it from the store (load), zero when it read none (a cached
// entry found ended).
func (m *Manager) end(ctx context.Context, hash tokenHash, why string, storedEnd time.Time) {
	m.forget(hash)
	var err error
	if why == whyExpired {
		err = m.endExpired(ctx, hash, storedEnd)
	} else {
		err = m.store.Update(ctx, func(tx store.Tx) error {
			err := tx.DeleteSession(hash.String())
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		})
	}
	if err != nil {
		m.logger.Warn("removing ended session", zap.String("reason", why), zap.Error(err))
	}
}

// endExpired is the session's idle timeout or lifetime found by a request:
// it stays stored, with its end moved to now, until the sweep deletes it
// (DeleteExpiredSessions), so that a sign-out clicked after the timeout
// still finds what the IdP's logout needs (SignOut): the sign-out page's
// own favicon fetch, or the app's requests, come first. From then on every
// instance reads it as past its end, whatever the last-seen allowance.
// storedEnd is its stored end as the caller read it (zero: not read, and
// then read here). One already stored as past its end needs no write, nor
// another read: an expired cookie's later requests cost one read (load's),
// as a deleted session's would. The write re-reads it in its transaction.
func (m *Manager) endExpired(ctx context.Context, hash tokenHash, storedEnd time.Time) error {
	now := m.now()
	if storedEnd.IsZero() {
		err := m.store.View(ctx, func(tx store.Tx) error {
			s, err := tx.Session(hash.String())
			if err == nil {
				storedEnd = s.Expires
			}
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if !now.Before(storedEnd) {
		return nil
	}
	return m.store.Update(ctx, func(tx store.Tx) error {
		s, err := tx.Session(hash.String())
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil || !now.Before(s.Expires) {
			return err
		}
		s.Expires = now
		return tx.PutSession(s)
	})
}

// whyExpired is end's reason for a session past its idle timeout or
// lifetime.
const whyExpired = "expired"

// Ended is a session that Revoke or SignOut ended, with what the IdP's
// logout needs.
type Ended struct {
	Session *store.Session
	// Tokens are the session's tokens, nil when it had none (or they could
	// not be opened, which is logged).
	Tokens *Tokens
	// Before says that the session had ended before SignOut (past its
	// lifetime or idle, signed out already, or its user may no longer sign
	// in): no request could use it, so the sign-out was not audited again,
	// as an expired session's end never is; the IdP's session may still
	// be alive.
	Before bool
	// OutcomeUnknown says that the sign-out's write committed though the
	// store could not say so at once (store.ErrOutcomeUnknown): the write,
	// run again, found the session ended, and audited, by it.
	OutcomeUnknown bool
}

// IDToken returns the ID token for the IdP's logout (id_token_hint), or "".
func (e *Ended) IDToken() string {
	if e == nil || e.Tokens == nil {
		return ""
	}
	return e.Tokens.IDToken
}

// Revoke ends the session of token (logout) and records why in the audit
// trail. An unknown token is not an error: the browser is signed out either
// way, and Revoke returns nil.
//
// When the store cannot record it (a full disk, a database away), the
// browser's cookie is cleared all the same, but a copy of the cookie must
// not go on working: this Manager refuses the session from then on, and
// Flush ends it in the store once the store takes writes again.
//
// A token that cannot be one Prepare drew (drawable) names no session:
// nothing is read, written or kept for it, store or no store.
func (m *Manager) Revoke(ctx context.Context, token, eventType string) (*Ended, error) {
	h, ok := cookieHash(token)
	if !ok {
		return nil, nil
	}
	return m.revokeHash(ctx, h, eventType)
}

// SignOut is Revoke for the browser's own sign-out (the gateway's POST
// /.sso/logout): it ends the stored session of token whether or not it has
// ended already, and returns what the IdP's logout needs either way, so
// that a sign-out clicked after the idle timeout or the lifetime still
// ends the IdP's session (docs/security.md: a sign-out must not leave the
// IdP's session alive). A session that had ended (Ended.Before, judged as
// Ends judges it, and by its user) is neither written nor audited again.
// Nothing else is given for such a cookie, and no session is extended. A
// session signed out here while the store was away (RevokeLater) is
// signed out already: Before, read from the store for the IdP's logout
// (nil, as for one deleted, when the store cannot be read either).
//
// The session is not deleted: it stays stored, its end moved to now
// (backdated by signOutBackdate, for instances whose clocks lag), until
// the sweep, as one a request finds ended does (endExpired). A sign-out
// clicked twice sends a second POST whose answer is the one the browser
// shows, and a load balancer may send it to another instance: there it
// finds the session ended, and its answer goes on to the IdP's logout too.
//
// It reads nothing of the cache but what Ends reads, and is not on a
// request's path: Resolve is unchanged. A cookie that cannot be a token
// Prepare drew (drawable) names no session: nil, with no store read, and
// nothing kept for later while the store is away (revokeLater).
func (m *Manager) SignOut(ctx context.Context, token string) (*Ended, error) {
	hash, ok := cookieHash(token)
	if !ok {
		return nil, nil
	}
	return m.signOut(ctx, hash, false)
}

// SignOutHash is SignOut by the session's store key (Identity.SessionHash):
// for a session whose cookie the request no longer carries (an sso before
// the one serving the sign-out admitted it and took the cookie). A hash
// that names no session is not an error either.
func (m *Manager) SignOutHash(ctx context.Context, hash string) (*Ended, error) {
	h, ok := parseHash(hash)
	if !ok {
		return nil, nil
	}
	return m.signOut(ctx, h, m.knows(h))
}

// signOutTimeout bounds a sign-out's reads and write, which run on after
// the request that asked for them has gone (signOut), as a background
// read of the keys does (upstreamjwt's refreshTimeout): the store's own
// bounds (PostgreSQL's answer wait, bbolt's lock timeout) hold each step.
const signOutTimeout = 30 * time.Second

// signOut is SignOut by hash; known: the session is real (revokeLater).
//
// It runs on past the request: a double click makes the browser drop the
// first POST once the second starts, and a balancer then cancels the
// first request. Cancelled during its COMMIT, the write would end the
// session with no answer (store.ErrOutcomeUnknown), and before it, would
// leave the sign-out to Flush; either way, without its "signed out" line
// and, on this instance, without the IdP's logout for the second click.
func (m *Manager) signOut(ctx context.Context, hash tokenHash, known bool) (*Ended, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signOutTimeout)
	defer cancel()
	var found *signingOut
	read := func(tx store.Tx) error {
		var err error
		found, err = m.readSigningOut(tx, hash)
		return err
	}
	if m.revoked(hash) {
		// Signed out here already, while the store could not record it
		// (or say whether it had): refused here whatever the store holds
		// (Ends), and Flush records it. The stored session still serves
		// the IdP's logout, which a second click's answer goes on to;
		// with no store to read, the answer is as for one deleted.
		if err := m.store.View(ctx, read); err != nil || found == nil {
			return nil, nil
		}
		return m.ended(found.s, found.sealed, true), nil
	}
	// Anyone may POST a sign-out with made-up cookies: one that names no
	// stored session costs a read, not a commit (as an IdP's logout
	// message naming none does, account.endIdPSessions); so does a second
	// click's, which finds the session ended.
	if err := m.store.View(ctx, read); err != nil {
		m.revokeLater(hash, store.EventSessionLoggedOut, known, 0)
		return nil, fmt.Errorf("session: sign out: %w", err)
	}
	if found == nil {
		return nil, nil
	}
	if found.before {
		// Ended in the store: a copy cached here (its end's notice lost)
		// must not outlive the answer to its sign-out.
		m.forget(hash)
	} else {
		// Not forgotten before the write, unlike Revoke: the cache's
		// last-seen time is what Ends judges idleness by (a use not yet
		// flushed). It is forgotten once the write has committed, and by
		// revokeLater when it failed (a session the store holds: known).
		end := m.now().Add(-signOutBackdate)
		write := func(tx store.Tx) error {
			if err := read(tx); err != nil || found == nil || found.before {
				return err
			}
			found.s.Expires = end
			if err := tx.PutSession(found.s); err != nil {
				return err
			}
			if err := m.keepLogoutToken(tx, found); err != nil {
				return err
			}
			return tx.Audit(store.Event{Type: store.EventSessionLoggedOut, IdP: found.s.IdP, UserID: found.s.UserID})
		}
		err := m.store.Update(ctx, write)
		var unknownEnd int64 // revokeLater's end
		if errors.Is(err, store.ErrOutcomeUnknown) {
			// The answer to its COMMIT was lost: it may have committed,
			// audited, or not. The write runs again and tells: its read
			// waits for the first's row lock (a COMMIT still on its way)
			// and finds the session ended by it (its end this sign-out's,
			// to the nanosecond: not written or audited again), or live,
			// and ends it now. Should that fail too, Flush tells (end).
			unknownEnd = end.UnixNano()
			if again := m.store.Update(ctx, write); again != nil {
				err = fmt.Errorf("%w; run again: %w", err, again)
			} else {
				err = nil
			}
		}
		if err != nil {
			m.revokeLater(hash, store.EventSessionLoggedOut, true, unknownEnd)
			return nil, fmt.Errorf("session: sign out: %w", err)
		}
		if found == nil {
			return nil, nil
		}
		m.forget(hash)
		m.broadcast(ctx, store.Invalidation{Sessions: []string{found.s.Hash}})
		if unknownEnd != 0 && found.before && found.s.Expires.Equal(end) {
			// Ended, and audited, by the first write: answered as a
			// sign-out confirmed at once, saying how it was learned.
			e := m.ended(found.s, found.sealed, false)
			e.OutcomeUnknown = true
			return e, nil
		}
	}
	return m.ended(found.s, found.sealed, found.before), nil
}

// keepLogoutToken keeps of a signed-out session's tokens only the ID
// token, which its IdP's logout (a second click's too) sends as
// id_token_hint: the access and refresh tokens go with the sign-out, as
// when the session was deleted at once. A blob that does not open, opens
// for no one: it goes too.
func (m *Manager) keepLogoutToken(tx store.Tx, o *signingOut) error {
	t, err := openTokens(o.sealed.key, o.s.Hash, o.sealed.blob)
	switch {
	case err != nil:
		return putSealed(tx, o.s.Hash, nil)
	case t == nil || t.AccessToken == "" && t.RefreshToken == "":
		return nil
	}
	plain, err := m.zip.tokensPlain(&Tokens{IDToken: t.IDToken})
	if err != nil {
		return err
	}
	return putSealed(tx, o.s.Hash, plain)
}

// signingOut is what a sign-out reads of a stored session: the session,
// whether it had ended (endedBefore), and its sealed tokens.
type signingOut struct {
	s      *store.Session
	before bool
	sealed sealedTokens
}

// readSigningOut reads the session stored under hash for its sign-out;
// nil when there is none.
func (m *Manager) readSigningOut(tx store.Tx, hash tokenHash) (*signingOut, error) {
	s, err := tx.Session(hash.String())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	o := &signingOut{s: s}
	if o.before, err = m.endedBefore(tx, s); err != nil {
		return nil, err
	}
	o.sealed, err = readSealed(tx, s.Hash)
	return o, err
}

// endedBefore reports whether a stored session had ended before its
// sign-out: past its lifetime or idle (Ends), or its user gone, inactive
// or pending, as load would find it.
func (m *Manager) endedBefore(tx store.Tx, s *store.Session) (bool, error) {
	if _, ended := m.Ends(s); ended {
		return true, nil
	}
	u, err := tx.User(s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !u.Active || u.Pending, nil
}

func (m *Manager) revokeHash(ctx context.Context, hash tokenHash, eventType string) (*Ended, error) {
	known := m.knows(hash) // before the forget drops what says so
	m.forget(hash)
	var (
		gone   *store.Session
		sealed sealedTokens
	)
	err := m.store.Update(ctx, func(tx store.Tx) error {
		var err error
		gone, sealed, _, err = revokeTx(tx, hash, eventType, true, time.Time{})
		return err
	})
	if err != nil {
		m.revokeLater(hash, eventType, known, 0)
		return nil, fmt.Errorf("session: revoke: %w", err)
	}
	if gone == nil {
		return nil, nil
	}
	m.forget(hash) // again: a request may have re-read it before the commit
	m.broadcast(ctx, store.Invalidation{Sessions: []string{gone.Hash}})
	return m.ended(gone, sealed, false), nil
}

// ended is the Ended of s, its sealed tokens opened.
func (m *Manager) ended(s *store.Session, sealed sealedTokens, before bool) *Ended {
	tokens, err := openTokens(sealed.key, s.Hash, sealed.blob)
	if err != nil {
		// Logout goes on without id_token_hint; the IdP may then ask
		// the user to confirm.
		m.logger.Warn("ended session's tokens unreadable", zap.String("idp", s.IdP), zap.Error(err))
	}
	return &Ended{Session: s, Tokens: tokens, Before: before}
}

// revokeTx deletes the session stored under hash in tx, with an audit
// event of eventType, and returns it (nil if there was none) and, with
// sealed, its sealed tokens. late, when set, is when a sign-out the store
// could not record then took place (recordRevocations): the event carries
// that time, not the time the store came back, which may be hours later,
// and a session whose stored end was not after it is deleted without one.
// audited says whether it wrote the event.
func revokeTx(tx store.Tx, hash tokenHash, eventType string, sealed bool, late time.Time) (s *store.Session, st sealedTokens, audited bool, err error) {
	s, err = tx.Session(hash.String())
	if errors.Is(err, store.ErrNotFound) {
		return nil, st, false, nil
	}
	if err != nil {
		return nil, st, false, err
	}
	if sealed {
		if st, err = readSealed(tx, s.Hash); err != nil {
			return nil, st, false, err
		}
	}
	if err := tx.DeleteSession(s.Hash); err != nil {
		return nil, st, false, err
	}
	if !late.IsZero() && !s.Expires.After(late) {
		// Ended by the time of the sign-out: most likely by this very
		// sign-out, whose write committed though the store could not
		// say so (store.ErrOutcomeUnknown), and audited it then.
		return s, st, false, nil
	}
	e := store.Event{Type: eventType, IdP: s.IdP, UserID: s.UserID}
	if !late.IsZero() {
		e.Time, e.Detail = late, map[string]string{"recorded_late": "true"}
	}
	return s, st, true, tx.Audit(e)
}

// maxUnrecordedRevocations bounds the sign-outs kept in memory while the
// store cannot record them: far more than sign out in an outage of
// minutes; past it, a copy of the cookie works again until the store is
// back (the browser's own cookie is cleared either way). Sign-outs of
// sessions known here go before others (revokeLater).
const maxUnrecordedRevocations = 10_000

// unrecordedRevocation is a sign-out the store could not record yet.
type unrecordedRevocation struct {
	eventType string
	at        int64 // unix nanos: when the sign-out took place, its event's time
	// known: a session this Manager knows is real (revokeLater), not only
	// a well-formed cookie, which anyone can make up.
	known bool
	// end is the end (unix nanos) a sign-out's write gave the session when
	// the store could not say whether it committed (store.ErrOutcomeUnknown),
	// else 0: Flush, finding that end stored, knows the write committed.
	end int64
}

// RevokeLater is Revoke for a sign-out whose session could not even be
// read (the store away): the token's session is refused here from now on,
// and Flush ends it in the store once it can (if it exists). A token that
// cannot be one Prepare drew (drawable) names no session, and takes no
// place among the sign-outs kept.
func (m *Manager) RevokeLater(token, eventType string) {
	if h, ok := cookieHash(token); ok {
		m.revokeLater(h, eventType, false, 0)
	}
}

// revokeLater keeps a sign-out the store could not record, for Flush, and
// forgets the session again: a request or a stream's check may have cached
// it while the failed write ran.
//
// Anyone can POST a sign-out with four well-formed made-up cookies
// (docs/security.md, "Unauthenticated traffic"), and while the store is
// away each would take one of the maxUnrecordedRevocations places: so a
// sign-out of a session known to be real (known: the store read it, or
// the cache held it before the caller forgot it; or this Manager holds it
// now, knowsLocked) is never pushed out by unknown ones. Once the places
// are taken, an unknown sign-out is not kept, and a known one takes the
// place of an unknown one (whose cookie may well be made up), if any.
//
// end is unrecordedRevocation.end: a retry's 0 keeps the one kept.
func (m *Manager) revokeLater(hash tokenHash, eventType string, known bool, end int64) {
	now := m.now()
	m.mu.Lock()
	old, kept := m.unrecorded[hash]
	known = known || old.known || m.knowsLocked(hash)
	displaced := false
	if !kept && known && len(m.unrecorded) >= maxUnrecordedRevocations {
		// Map order is random: a list mostly of unknown sign-outs (a
		// flood) gives one at the first steps.
		for h, r := range m.unrecorded {
			if !r.known {
				delete(m.unrecorded, h)
				displaced = true
				break
			}
		}
	}
	full := !kept && len(m.unrecorded) >= maxUnrecordedRevocations
	if !full {
		at := now.UnixNano()
		if kept {
			at = old.at // the sign-out took place then; this is a retry
			end = cmp.Or(end, old.end)
		}
		m.unrecorded[hash] = unrecordedRevocation{eventType: eventType, at: at, known: known, end: end}
	}
	n := len(m.unrecorded)
	m.mu.Unlock()
	switch {
	case full:
		m.unrecordedFull.Error(m.logger, "unrecorded", now, "too many sign-outs the store could not record: this one is not kept, and a copy of its cookie works on this instance again",
			zap.Int("kept", n), zap.Bool("known_session", known))
	case displaced:
		m.unrecordedFull.Error(m.logger, "unrecorded", now, "too many sign-outs the store could not record: one of a session not known here (its cookie may be made up) gave its place to this one, and a copy of that cookie works on this instance again",
			zap.Int("kept", n))
	}
	m.forget(hash)
}

// knows reports whether this Manager holds the session of hash: cached,
// or its last-seen time or renewed tokens kept after the cache dropped it.
// Only a session read from the store or created here gets there, so no
// made-up cookie is known.
func (m *Manager) knows(hash tokenHash) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.knowsLocked(hash)
}

// knowsLocked is knows with m.mu held.
func (m *Manager) knowsLocked(hash tokenHash) bool {
	if m.entries[hash] != nil {
		return true
	}
	_, evicted := m.evicted[hash]
	_, unsaved := m.unsaved[hash]
	return evicted || unsaved
}

// revoked reports whether hash is a sign-out waiting to be recorded.
func (m *Manager) revoked(hash tokenHash) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.unrecorded[hash]
	return ok
}

// lateSignOut is a sign-out recordRevocations recorded, for its log line;
// unknown: its own write had ended the session (store.ErrOutcomeUnknown).
type lateSignOut struct {
	s       *store.Session
	unknown bool
}

// recordBatch is the most sign-outs recordRevocations records in one
// transaction: after a long outage there may be thousands, and sign-ins
// queue behind each commit.
const recordBatch = 256

// recordRevocations writes the sign-outs the store could not record when
// they happened, in batches, and tells the other instances. A session past
// the lifetime has expired anyway: the sweep removes it.
func (m *Manager) recordRevocations(ctx context.Context) error {
	m.mu.RLock()
	if len(m.unrecorded) == 0 {
		m.mu.RUnlock()
		return nil
	}
	pending := maps.Clone(m.unrecorded)
	m.mu.RUnlock()
	horizon := m.now().Add(-m.cfg.Lifetime).UnixNano()
	var batch []tokenHash
	for hash, r := range pending {
		if r.at > horizon {
			batch = append(batch, hash)
		}
	}
	for chunk := range slices.Chunk(batch, recordBatch) {
		var (
			ended  []string
			signed []lateSignOut
		)
		err := m.store.Update(ctx, func(tx store.Tx) error {
			ended, signed = ended[:0], signed[:0]
			for _, hash := range chunk {
				r := pending[hash]
				s, _, audited, err := revokeTx(tx, hash, r.eventType, false, time.Unix(0, r.at))
				if err != nil {
					return err
				}
				if s == nil {
					continue
				}
				ended = append(ended, s.Hash)
				// Ended by this very sign-out, whose write committed though
				// the store could not say so (and audited it then): its
				// line is still to be written.
				unknown := !audited && r.end != 0 && s.Expires.UnixNano() == r.end
				if r.eventType == store.EventSessionLoggedOut && (audited || unknown) {
					signed = append(signed, lateSignOut{s, unknown})
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("session: record sign-outs: %w", err)
		}
		m.mu.Lock()
		for _, hash := range chunk {
			delete(m.unrecorded, hash)
		}
		m.mu.Unlock()
		// The gateway's "signed out" line (the sign-out's request could
		// not write it), one for each audit event: audit events are log
		// lines too (docs/security.md).
		for _, o := range signed {
			fields := []zap.Field{zap.String("idp", o.s.IdP), zap.String("user_id", o.s.UserID), zap.Bool("recorded_late", true)}
			if o.unknown {
				fields = append(fields, zap.Bool("outcome_unknown", true))
			}
			m.logger.Info("signed out", fields...)
		}
		if len(ended) > 0 {
			m.broadcast(ctx, store.Invalidation{Sessions: ended})
		}
	}
	// Those past the lifetime, once the store takes writes again.
	m.mu.Lock()
	for hash, r := range pending {
		if r.at <= horizon {
			delete(m.unrecorded, hash)
		}
	}
	m.mu.Unlock()
	return nil
}

// ForgetSession drops one cached session, named by its store key
// (store.Session.Hash), after the caller deleted it from the store, and
// tells other instances sharing the store to drop it too.
func (m *Manager) ForgetSession(hash string) { m.ForgetSessions([]string{hash}) }

// ForgetSessions is ForgetSession for several sessions, with one broadcast.
func (m *Manager) ForgetSessions(hashes []string) {
	m.forgetSessions(hashes)
	m.broadcast(context.Background(), store.Invalidation{Sessions: hashes})
}

func (m *Manager) forgetSessions(hashes []string) {
	for _, hash := range hashes {
		if h, ok := parseHash(hash); ok {
			m.forget(h)
		}
	}
}

// ForgetUser drops a user's cached sessions so that the next request reads
// the user afresh (after a profile change, deactivation or deletion that
// the caller committed), here and on other instances sharing the store.
func (m *Manager) ForgetUser(userID string) { m.ForgetUsers([]string{userID}) }

// ForgetUsers is ForgetUser for several users, with one broadcast: a SCIM
// change to a group of thousands forgets every member, and the store packs
// their IDs in as few notifications as fit (one per user took over a
// second for 5,000 members).
func (m *Manager) ForgetUsers(userIDs []string) {
	if len(userIDs) == 0 {
		return
	}
	for _, id := range userIDs {
		m.forgetUser(id)
	}
	m.broadcast(context.Background(), store.Invalidation{Users: userIDs})
}

// forgetUser drops a user's cached sessions, and keeps a load that read the
// store before from caching any of them. Their last-seen times not yet
// written go to evicted for the next Flush: the sessions may live on (a
// profile or group change), and a session deleted meanwhile is skipped.
func (m *Manager) forgetUser(userID string) {
	m.mu.Lock()
	defer m.forgotten(store.Invalidation{Users: []string{userID}})
	defer m.mu.Unlock()
	m.forgotUsers[m.userStripe(userID)] = m.forgets.Add(1)
	for hash := range m.byUser[userID] {
		if e := m.entries[hash]; e != nil {
			if seen := e.lastSeen.Load(); seen > e.stored.Load() {
				m.evicted[hash] = max(m.evicted[hash], seen)
			}
		}
		delete(m.entries, hash)
	}
	delete(m.byUser, userID)
}

// forgetAll empties the cache (another instance's changes may have been
// missed); sessions are read from the store again as they are used.
func (m *Manager) forgetAll() {
	m.mu.Lock()
	defer m.forgotten(store.Invalidation{All: true})
	defer m.mu.Unlock()
	m.forgotAll = m.forgets.Add(1)
	for hash, e := range m.entries {
		if seen := e.lastSeen.Load(); seen > e.stored.Load() {
			m.evicted[hash] = seen
		}
	}
	clear(m.entries)
	clear(m.byUser)
}

// broadcast tells other instances sharing the store what was forgotten.
// A failure is logged, not returned: the change has committed, and the
// other instances' cache TTL bounds how long they may still serve it.
func (m *Manager) broadcast(ctx context.Context, inv store.Invalidation) {
	if m.bc == nil {
		return
	}
	if err := m.bc.Broadcast(context.WithoutCancel(ctx), inv); err != nil {
		m.logger.Warn("telling other instances about ended sessions", zap.Int("sessions", len(inv.Sessions)),
			zap.Int("users", len(inv.Users)), zap.Error(err))
	}
}

// apply forgets what another instance broadcast.
func (m *Manager) apply(inv store.Invalidation) {
	if inv.All {
		m.forgetAll()
		return
	}
	m.forgetSessions(inv.Sessions)
	for _, u := range inv.Users {
		m.forgetUser(u)
	}
}

// touch is a last-seen time to write.
type touch struct {
	e    *entry // nil for an evicted session
	hash tokenHash
	from int64 // stored last-seen
	at   int64
}

// Flush records the sign-outs the store could not record when they
// happened (Revoke), and writes the last-seen times that moved by at least
// TouchInterval (all of them when final is true), in batches a
// store.BatchSizer keeps to a few milliseconds each
// (store.FinalBatchTarget when final), in the order of their stored
// last-seen time (which is the order of the store's idle index, so each
// batch moves neighbouring index entries). Its Updates are
// store.Background work: sign-ins go first, and one that arrives during a
// batch ends it after the session at hand.
func (m *Manager) Flush(ctx context.Context, final bool) error {
	return errors.Join(m.recordRevocations(ctx), m.flushTouches(ctx, final))
}

func (m *Manager) flushTouches(ctx context.Context, final bool) error {
	var touches []touch
	m.mu.Lock()
	for hash, e := range m.entries {
		seen := e.lastSeen.Load()
		from := e.stored.Load()
		if moved := seen - from; moved > 0 && (final || moved >= int64(m.cfg.TouchInterval)) {
			touches = append(touches, touch{e, hash, from, seen})
		}
	}
	for hash, at := range m.evicted {
		touches = append(touches, touch{nil, hash, 0, at})
	}
	clear(m.evicted)
	m.mu.Unlock()
	slices.SortFunc(touches, func(a, b touch) int {
		return cmp.Or(cmp.Compare(a.from, b.from), bytes.Compare(a.hash[:], b.hash[:]))
	})
	var sizer store.BatchSizer
	if final {
		sizer.Target = store.FinalBatchTarget
	}
	var batch []store.SessionTouch
	for len(touches) > 0 {
		limit := min(len(touches), sizer.Next())
		batch = batch[:0]
		for _, t := range touches[:limit] {
			batch = append(batch, store.SessionTouch{Hash: t.hash.String(), At: time.Unix(0, t.at)})
		}
		var done int
		start := time.Now()
		err := m.store.Update(store.Background(ctx), func(tx store.Tx) error {
			var err error
			done, _, err = store.RunItems(tx, len(batch), sizer.Budget(), func(from, k int) (int, error) {
				return k, tx.TouchSessions(batch[from : from+k])
			})
			return err
		})
		sizer.Took(done, time.Since(start))
		if err != nil {
			m.keepEvicted(touches)
			return fmt.Errorf("session: flush last seen: %w", err)
		}
		chunk := touches[:done]
		touches = touches[done:]
		for _, t := range chunk {
			if t.e != nil {
				t.e.stored.Store(max(t.e.stored.Load(), t.at))
			}
		}
		if len(touches) > 0 && !final {
			if err := sizer.Rest(ctx); err != nil {
				m.keepEvicted(touches)
				return fmt.Errorf("session: flush last seen: %w", err)
			}
		}
	}
	return nil
}

// keepEvicted holds on to the last-seen times of dropped sessions that a
// Flush did not get to write.
func (m *Manager) keepEvicted(touches []touch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range touches {
		if t.e == nil {
			m.evicted[t.hash] = max(m.evicted[t.hash], t.at)
		}
	}
}

// signOutBackdate is how far before the signing instance's clock a
// sign-out stores its session's end. Every instance judges an end by its
// own clock: stored at the signer's now, an instance whose clock lags by d
// would admit the signed-out cookie for d more, and take a double click's
// second POST for a first sign-out (a second write and audit event).
// Backdated, the session reads as ended at once on any instance within a
// minute of the signer's clock.
const signOutBackdate = time.Minute

// SignedOutFindable is how long after a sign-out its session is still
// found, ended, by a second click's sign-out (on any instance): the
// gateway keeps the cookie in the browser that long, no longer.
const SignedOutFindable = time.Minute

// sweepGrace is how long past its stored end the sweep spares a session.
// A sign-out keeps its session stored, ended (signOut), so that a double
// click's second POST, on whichever instance, finds it and goes on to the
// IdP's logout too; a sweep running between the two POSTs (every Run
// starts with one) must not delete it: spared for a minute after the
// sign-out, its stored end being backdated. Requests judge ends by
// themselves: the sweep only collects what none can use.
const sweepGrace = signOutBackdate + SignedOutFindable

// Sweep deletes expired sessions from the store and the cache, in batches a
// store.BatchSizer keeps to a few milliseconds each, as store.Background
// work (a sign-in that arrives ends the batch after the session at hand),
// and returns how many it deleted. A session counts as idle only once its
// stored last-seen time is older than the idle timeout plus the time that
// value may lag its last use (Config.sweepIdle): requests allow at most that
// lag, and the sweep never deletes a session one could still accept.
func (m *Manager) Sweep(ctx context.Context) (int, error) {
	total := 0
	// One cutoff for the whole sweep: no flush runs while it does (Run
	// does one, then the other), so a cutoff taken later in a long
	// sweep would judge sessions by stored times older than the lag
	// allows for. Sessions due meanwhile go at the next sweep. Each is
	// spared for sweepGrace past its end.
	now, idle := m.now().Add(-sweepGrace), m.cfg.sweepIdle()
	var sizer store.BatchSizer
	for {
		var (
			hashes  []string
			done    int
			drained bool
		)
		limit := sizer.Next()
		start := time.Now()
		err := m.store.Update(store.Background(ctx), func(tx store.Tx) error {
			hashes = hashes[:0]
			var err error
			done, drained, err = store.RunItems(tx, limit, sizer.Budget(), func(_, k int) (int, error) {
				gone, err := tx.DeleteExpiredSessions(now, idle, k)
				hashes = append(hashes, gone...)
				return len(gone), err
			})
			return err
		})
		// What the batch did, not what it was offered: one that ended
		// early for a sign-in says nothing about how many fit the target.
		sizer.Took(done, time.Since(start))
		if err != nil {
			return total, fmt.Errorf("session: sweep: %w", err)
		}
		m.forgetSessions(hashes)
		total += len(hashes)
		if drained {
			return total, nil
		}
		if err := sizer.Rest(ctx); err != nil {
			return total, fmt.Errorf("session: sweep: %w", err)
		}
	}
}

// Run flushes last-seen times and sweeps expired sessions until ctx ends,
// then flushes once more. With a store.Broadcaster it also forgets what
// other instances revoke.
func (m *Manager) Run(ctx context.Context) {
	if m.bc != nil {
		go m.bc.Listen(ctx, m.apply)
	}
	sweep := func() {
		if _, err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.logger.Error("session sweep", zap.Error(err))
		}
	}
	// Once at the start, then every sweepEvery flushes: a config reloaded
	// more often than that (an automated setup reloading on every change)
	// starts a new Run each time, which would otherwise never reach it,
	// and sessions nobody uses again would stay in the store.
	sweep()
	tick := time.NewTicker(m.cfg.flushEvery())
	defer tick.Stop()
	sweepEvery := 10
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			if err := m.Flush(context.Background(), true); err != nil {
				m.logger.Error("final last-seen flush", zap.Error(err))
			}
			return
		case <-tick.C:
			if err := m.Flush(ctx, false); err != nil {
				m.logger.Error("last-seen flush", zap.Error(err))
			}
			if i%sweepEvery == 0 {
				sweep()
			}
		}
	}
}

// Identity is the signed-in user as the hot path needs it. It is immutable
// and shared between requests, but for the tokens it caches (atomically).
type Identity struct {
	UserID      string
	Email       string
	FirstName   string
	LastName    string
	Groups      []string
	IdP         string
	SessionHash string
	Expires     time.Time
	// AuthTime is when the person last authenticated at the IdP
	// (store.Session.AuthTime), zero when it did not say: the identity
	// JWT's auth_time and whoami's, with no store read per request.
	AuthTime time.Time

	// Derived is what Manager.Derive computed for this identity, once.
	Derived any

	// upstream caches the session's tokens for routes that pass them
	// (Manager.UpstreamTokens); nil until such a route is used.
	upstream atomic.Pointer[upstream]

	values [fieldCount][]string
	boxed  [fieldCount]any
}

// Field names one identity value handed to the upstream.
type Field int

// The identity fields, in the order of the {http.auth.user.*} placeholders.
const (
	FieldUserID Field = iota
	FieldEmail
	FieldFirstName
	FieldLastName
	FieldGroups // comma-joined, each name escaped (JoinGroups)
	FieldIdP
	fieldCount
)

// LargeIdentityHeaders is the size of a session's identity header values
// past which newIdentity warns: nginx refuses a request header line over
// 8 KiB by default (large_client_header_buffers), Node.js all headers over
// 16 KiB, and the groups of a user in hundreds of groups get there.
const LargeIdentityHeaders = 8 << 10

// largeHeadersEvery is how often an instance warns of one user's
// LargeIdentityHeaders at WARN (docs/troubleshooting.md); the rest go to
// DEBUG.
const largeHeadersEvery = time.Hour

// plainIdentity is the identity of session s of user u, without the values
// prepared for the upstream (newIdentity).
func plainIdentity(s *store.Session, u *store.User) *Identity {
	return &Identity{
		UserID:      u.ID,
		Email:       u.Email,
		FirstName:   u.FirstName,
		LastName:    u.LastName,
		Groups:      append([]string(nil), u.Groups...),
		IdP:         s.IdP,
		SessionHash: s.Hash,
		Expires:     s.Expires,
		AuthTime:    s.AuthTime,
	}
}

func (m *Manager) newIdentity(s *store.Session, u *store.User) *Identity {
	id := plainIdentity(s, u)
	// One single-element slice per field, built once, so that setting the
	// upstream headers allocates nothing per request.
	// The placeholders get the very value the identity header carries: a
	// placeholder in header_up with a raw control character from the IdP
	// would make every request of that user fail (502).
	size := 0
	for f, v := range [fieldCount]string{u.ID, u.Email, u.FirstName, u.LastName, JoinGroups(u.Groups), s.IdP} {
		v = headerSafe(v)
		id.values[f] = []string{v}
		id.boxed[f] = v
		size += len(v)
	}
	if size > LargeIdentityHeaders {
		// The app's server, not the gateway, refuses such requests, with
		// a 400 or 431 that names no cause: say it here.
		m.largeHeaders.Warn(m.logger, s.IdP+"/"+u.ID, m.now(), "identity headers too large for many upstream servers; narrow the groups the IdP sends (docs/troubleshooting.md)",
			zap.String("user_id", u.ID), zap.String("idp", s.IdP), zap.Int("bytes", size), zap.Int("groups", len(u.Groups)))
	}
	if m.Derive != nil {
		id.Derived = m.Derive(id)
	}
	return id
}

// Value returns a field's value as a one-element header value slice. The
// slice is shared: callers must not modify it.
func (id *Identity) Value(f Field) []string { return id.values[f] }

// Boxed returns a field's value as an interface, converted once per
// session rather than per request (placeholder replacers take any). It is
// the header-safe value Value holds, not the raw one.
func (id *Identity) Boxed(f Field) any { return id.boxed[f] }

// headerSafe drops control characters: values come from the IdP, and a
// newline in a header value would make the proxied request fail (or, in a
// lesser HTTP stack, split it).
func headerSafe(v string) string {
	if !strings.ContainsFunc(v, isControl) {
		return v
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, v)
}

// isControl is Unicode's Cc: C0, DEL and C1. C1 counts because some
// stacks read U+0085 (NEL) as a line break.
func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }

// JoinGroups is the groups header value: the names joined with ",", each
// percent-encoded (RFC 3986) where it could be misread: "%", ",", control
// characters, `"` and `\` anywhere, and white space or an invisible format
// character at either end (apps trim elements after splitting; see
// trimmable). The quote and the backslash are encoded because some apps
// read the header as an HTTP list (RFC 9110 quoted strings, as Werkzeug's
// and requests' parse_list_header do), which unquotes an element and
// unescapes what a backslash precedes: `"admins"` would read as admins.
// An app that splits on "," and percent-decodes each element gets back
// the exact names, and no group ("guests,admins", " admins", `"admins"`)
// can pass for "admins", whether the app decodes, trims or unquotes.
// Names without those characters (nearly all) appear as they are. The
// identity JWT carries the names as they are, in JSON, not this value.
// docs/security.md, "Groups".
func JoinGroups(groups []string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i, g := range groups {
		if i > 0 {
			b.WriteByte(',')
		}
		first, _ := utf8.DecodeRuneInString(g)
		last, nl := utf8.DecodeLastRuneInString(g)
		for j := 0; j < len(g); {
			r, n := utf8.DecodeRuneInString(g[j:])
			edge := j == 0 && trimmable(first) || j >= len(g)-nl && trimmable(last)
			if edge || r == '%' || r == ',' || r == '"' || r == '\\' || isControl(r) {
				for _, c := range []byte(g[j : j+n]) {
					b.WriteByte('%')
					b.WriteByte(hex[c>>4])
					b.WriteByte(hex[c&15])
				}
			} else {
				b.WriteString(g[j : j+n])
			}
			j += n
		}
	}
	return b.String()
}

// PaddedGroupName reports whether some app's trim could take something off
// either end of g (trimmable): JoinGroups encodes those characters, and a
// sign-in with such a name is warned about, as most are a typo at the IdP
// that no longer passes for the name without it (docs/security.md,
// "Groups").
func PaddedGroupName(g string) bool {
	first, _ := utf8.DecodeRuneInString(g)
	last, _ := utf8.DecodeLastRuneInString(g)
	return g != "" && (trimmable(first) || trimmable(last))
}

// trimmable reports whether some app's trim could strip r from the end of
// a group name: white space (Go, Python), and the invisible format
// characters (Unicode category Cf) that other trims strip or that render as
// nothing: U+FEFF (JavaScript's String.prototype.trim), U+200B (.NET before
// 4.0), U+200B..U+200F, U+2060, bidi controls. U+180E was a space before
// Unicode 6.3 (older trims still strip it) and is Cf since; it is named on
// its own so that the rule does not rest on the table's Unicode version.
func trimmable(r rune) bool {
	return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) || r == '\u180e'
}

// CacheTTL is how long a cached session is trusted before it is read from
// the store again (Config.CacheTTL).
func (m *Manager) CacheTTL() time.Duration { return m.cfg.CacheTTL }
