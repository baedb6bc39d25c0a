// Package backend opens a store from its description, whichever backend it
// is: the one place the Caddy app, `caddy sso` and the migration tools name
// and open stores, so that they agree on the spelling ("bolt:PATH",
// "postgres:DSN") and on how a secret DSN is shown (never).
package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

// Backends.
const (
	Bolt     = "bolt"
	Postgres = "postgres"
)

// Spec describes one store.
type Spec struct {
	Backend string // Bolt or Postgres
	// Path is the bbolt file.
	Path string
	// DSN is the PostgreSQL connection string: a secret, which String and
	// Key never reveal.
	DSN string
	// MaxConns and StatementTimeout tune the PostgreSQL pool; zero takes
	// postgres.Config's defaults.
	MaxConns         int32
	StatementTimeout time.Duration
	// ReadOnly opens a bbolt file with a shared lock (admin tools reading
	// a stopped instance's store); a PostgreSQL database that takes no
	// writes (a hot standby) is then opened rather than refused.
	ReadOnly bool
	// LockTimeout bounds the wait for a bbolt file's lock; 0 takes bolt's
	// default.
	LockTimeout time.Duration
	// OnWrite, when set, is told how long each write transaction held a
	// bbolt file's write lock, and what for (bolt.Options.OnWrite).
	OnWrite func(bolt.WriteHold)
	// Importing opens the target of a restore or migration, which may
	// hold part of an earlier one that did not finish; every other open
	// refuses such a store (store.ErrUnfinishedImport).
	Importing bool
}

// Parse reads the command-line spelling: "bolt:PATH", "postgres:DSN", a
// postgres:// URL, a libpq key=value connection string ("host=db
// dbname=sso user=caddy"), or a plain path, which is a bbolt file.
//
// A key=value string is never taken for a path: one made of key=value
// pairs only, at least one of whose keys libpq knows, is a DSN; one that
// merely starts (or has a word starting) with such a key and "=" (a typo,
// a stray word) is refused, saying to write postgres:DSN, or bolt:PATH for
// a file so named. The errors never quote s: it may hold a password.
func Parse(s string) (Spec, error) {
	switch {
	case s == "":
		return Spec{}, errors.New("no store given (bolt:PATH or postgres:DSN)")
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return Spec{Backend: Postgres, DSN: s}, nil
	case strings.HasPrefix(s, Bolt+":"):
		return Spec{Backend: Bolt, Path: strings.TrimPrefix(s, Bolt+":")}, nil
	case strings.HasPrefix(s, Postgres+":"):
		dsn := strings.TrimPrefix(s, Postgres+":")
		if dsn == "" {
			return Spec{}, errors.New("postgres: needs a connection string (postgres:postgres://user@host/db)")
		}
		return Spec{Backend: Postgres, DSN: dsn}, nil
	}
	switch keyValueDSN(s) {
	case isDSN:
		return Spec{Backend: Postgres, DSN: s}, nil
	case looksLikeDSN:
		return Spec{}, errors.New("this looks like a PostgreSQL connection string (not shown: it may hold a password) " +
			"but is not one: write it as postgres:DSN, key=value pairs such as postgres:\"host=db dbname=sso user=caddy\" " +
			"(quote values holding spaces as key='a b'); for a bbolt file so named, write bolt:PATH")
	}
	return Spec{Backend: Bolt, Path: s}, nil
}

// How keyValueDSN reads a string.
const (
	notDSN = iota
	isDSN
	looksLikeDSN
)

// libpqKeys are the connection parameters libpq (and pgx) take in a
// key=value connection string.
var libpqKeys = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true, "password": true,
	"passfile": true, "require_auth": true, "channel_binding": true, "connect_timeout": true,
	"client_encoding": true, "options": true, "application_name": true, "fallback_application_name": true,
	"keepalives": true, "keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
	"tcp_user_timeout": true, "replication": true, "gssencmode": true, "sslmode": true, "requiressl": true,
	"sslnegotiation": true, "sslcompression": true, "sslcert": true, "sslkey": true, "sslpassword": true,
	"sslcertmode": true, "sslrootcert": true, "sslcrl": true, "sslcrldir": true, "sslsni": true,
	"sslkeylogfile": true, "requirepeer": true, "ssl_min_protocol_version": true, "ssl_max_protocol_version": true,
	"min_protocol_version": true, "max_protocol_version": true, "krbsrvname": true, "gsslib": true,
	"gssdelegation": true, "service": true, "servicefile": true, "target_session_attrs": true,
	"load_balance_hosts": true,
	// pgx and pgxpool
	"statement_cache_capacity": true, "description_cache_capacity": true, "default_query_exec_mode": true,
	"pool_max_conns": true, "pool_min_conns": true, "pool_min_idle_conns": true, "pool_max_conn_lifetime": true,
	"pool_max_conn_lifetime_jitter": true, "pool_max_conn_idle_time": true, "pool_health_check_period": true,
}

// keyValueDSN tells a libpq key=value connection string from a path. It
// reads s as libpq does (pairs separated by white space, or by none after
// a quoted value, white space allowed around "=", values optionally in
// single quotes, backslash escapes): isDSN when s is nothing but such
// pairs, each key a word, and one of them a key libpq knows; otherwise
// looksLikeDSN when a word of s begins with a key libpq knows followed by
// "=" (a DSN with a mistake in it, or in capitals; a path has one only
// after a '/' or inside a word), else notDSN.
func keyValueDSN(s string) int {
	if pairsOnly(s) {
		return isDSN
	}
	for i := 0; i < len(s); i++ {
		if i > 0 && !isSpace(s[i-1]) {
			continue
		}
		j := i
		for j < len(s) && isKeyByte(s[j]) {
			j++
		}
		if j == i || !libpqKeys[strings.ToLower(s[i:j])] {
			continue
		}
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '=' {
			return looksLikeDSN
		}
	}
	return notDSN
}

// pairsOnly reports whether s is one or more key=value pairs, keys being
// words, at least one a key libpq knows as written (lower case).
func pairsOnly(s string) bool {
	known := false
	i, n := 0, 0
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for skip(); i < len(s); skip() {
		k := i
		for i < len(s) && isKeyByte(s[i]) {
			i++
		}
		if i == k {
			return false
		}
		key := s[k:i]
		skip()
		if i == len(s) || s[i] != '=' {
			return false
		}
		i++
		skip()
		if i < len(s) && s[i] == '\'' {
			for i++; ; i++ {
				if i >= len(s) {
					return false // unterminated quote
				}
				if s[i] == '\\' {
					i++
					continue
				}
				if s[i] == '\'' {
					i++
					break
				}
			}
			// No white space is needed after the closing quote: libpq
			// (conninfo_parse) reads the next key right after it, so
			// password='a b'sslmode=disable is two pairs.
		} else {
			for ; i < len(s) && !isSpace(s[i]); i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
		n++
		known = known || libpqKeys[key] // libpq's keys are lower case
	}
	return n > 0 && known
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v'
}

func isKeyByte(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// MaxStatementTimeout is the longest statement_timeout PostgreSQL takes
// (INT_MAX milliseconds, about 24.8 days): it refuses a longer one on
// every connection, so the store would not open at Start. The shortest
// is a second, the least any duration setting takes: PostgreSQL counts
// whole milliseconds, and one under a millisecond would be its 0, no
// timeout at all, and under a second is in JSON a forgotten unit
// ("statement_timeout": 5 is 5ns).
const MaxStatementTimeout = math.MaxInt32 * time.Millisecond

// Check reports settings that do not fit the backend, as a config writes
// them (before placeholders are resolved): a bbolt file takes no
// PostgreSQL settings, PostgreSQL needs a DSN and takes no path, no
// limit is negative, and statement_timeout is one PostgreSQL applies
// (MaxStatementTimeout). An empty Backend is Bolt. The errors use the config's
// names for the settings. A DSN deferred reports true for (one with a
// placeholder, resolved later) is not parsed yet; any other must parse as
// Open parses it, and the error never shows it: it may hold a password.
func (s Spec) Check(deferred func(string) bool) error {
	switch s.Backend {
	case "", Bolt:
		if s.DSN != "" || s.MaxConns != 0 || s.StatementTimeout != 0 {
			return errors.New("dsn, pool_size and statement_timeout are postgres settings")
		}
	case Postgres:
		if s.DSN == "" {
			return errors.New("postgres needs a connection string (DSN), e.g. {env.SSO_DATABASE_URL}")
		}
		if s.Path != "" {
			return errors.New("path is a bolt setting")
		}
		if s.MaxConns < 0 || s.StatementTimeout < 0 {
			return errors.New("pool_size and statement_timeout must not be negative")
		}
		if t := s.StatementTimeout; t != 0 && (t < time.Second || t > MaxStatementTimeout) {
			return fmt.Errorf("statement_timeout %v must be between 1s and %v (PostgreSQL's maximum, about 24 days); in JSON, write it with a unit, such as \"5s\": a bare number is nanoseconds",
				t, MaxStatementTimeout)
		}
		if deferred == nil || !deferred(s.DSN) {
			if _, err := pgxpool.ParseConfig(s.DSN); err != nil {
				return errors.New("the connection string (not shown: it may hold a password) does not parse; it is a postgres://user:password@host:port/database URL or key=value pairs, best a placeholder such as {env.SSO_DATABASE_URL}")
			}
		}
	default:
		return fmt.Errorf("unknown backend %q (expected one of: %s, %s)", s.Backend, Bolt, Postgres)
	}
	return nil
}

// String names the store for messages: the bbolt path, or "postgres" with
// the database's host and name but no credentials.
func (s Spec) String() string {
	if s.Backend == Postgres {
		return "postgres database " + postgres.Describe(s.DSN)
	}
	return s.Path
}

// Key identifies the store for sharing one open handle (a Caddy reload
// opens the new config's store while the old one still runs, and a key
// already open shares its handle): for bbolt, the file, for PostgreSQL,
// the pool as Open would set it up.
//
// A bbolt key is the file's absolute path with symbolic links resolved:
// bbolt allows one open per file, so a reload naming the running file
// another way (through a symlinked directory, or a link to the file) must
// find the handle already open, or it waits for its own lock and fails.
// The options (ReadOnly, LockTimeout, OnWrite) are not in it for the same
// reason: a second handle on the file cannot be opened.
//
// A PostgreSQL key is a hash of the DSN (a secret: the key is never
// meant to be shown, but should it be, it does not reveal it) with every
// setting postgres.Open applies, defaults filled in: a reload that
// changes pool_size or statement_timeout opens a new pool with them
// (the old one closes when the old config is cleaned up), instead of
// sharing the running pool and its old settings until a restart.
func (s Spec) Key() (string, error) {
	switch s.Backend {
	case Bolt:
		path, err := resolvedPath(s.Path)
		if err != nil {
			return "", fmt.Errorf("store path %q: %w", s.Path, err)
		}
		return Bolt + ":" + path, nil
	case Postgres:
		sum := sha256.Sum256([]byte(s.DSN))
		c := postgres.Config{MaxConns: s.MaxConns, StatementTimeout: s.StatementTimeout}.WithDefaults()
		return fmt.Sprintf("%s:%s:pool_size=%d:statement_timeout=%s", Postgres,
			hex.EncodeToString(sum[:12]), c.MaxConns, c.StatementTimeout), nil
	}
	return "", fmt.Errorf("unknown store backend %q (expected %s or %s)", s.Backend, Bolt, Postgres)
}

// resolvedPath returns p made absolute with its symbolic links resolved,
// as the system resolves them when opening p: the file's own path if it
// exists, else its nearest existing ancestor's with the rest (to be
// created by bolt.Open, so holding no links) joined on. ".." is resolved
// after the link before it, as the system does, not lexically. When no
// part resolves (or one cannot be read), it is filepath.Abs(p): Open will
// report the real error.
func resolvedPath(p string) (string, error) {
	abs := p
	if !filepath.IsAbs(abs) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		abs = wd + string(filepath.Separator) + abs // not Join: it would clean ".." lexically
	}
	head, tail := abs, ""
	for {
		resolved, err := filepath.EvalSymlinks(head)
		if err == nil {
			return filepath.Join(resolved, tail), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		i := strings.LastIndexFunc(head, func(r rune) bool { return r < utf8.RuneSelf && os.IsPathSeparator(uint8(r)) })
		if i <= len(filepath.VolumeName(head)) {
			break
		}
		head, tail = head[:i], filepath.Join(head[i+1:], tail)
	}
	return filepath.Abs(p)
}

// SlowWriteThreshold is the write-lock hold a store write is logged at:
// every sign-in and SCIM write queued behind it waits that long.
const SlowWriteThreshold = 100 * time.Millisecond

// SlowWrites returns an OnWrite that logs each write transaction that held
// the store's write lock for SlowWriteThreshold or longer, with where the
// time went: a slow disk shows as "disk", too much work in one
// transaction as "work", and pages read from disk during it as "faults"
// (docs/operations.md, "Limits and behaviour under failure").
func SlowWrites(spec Spec, logger *zap.Logger) func(bolt.WriteHold) {
	return func(w bolt.WriteHold) {
		if w.Held >= SlowWriteThreshold {
			logger.Warn("a store write held the write lock long", zap.Stringer("store", spec),
				zap.Duration("held", w.Held), zap.Duration("work", w.Work), zap.Duration("build", w.Build),
				zap.Duration("disk", w.Disk), zap.Int64("pages", w.Pages), zap.Int64("faults", w.Faults),
				zap.Int("calls", w.Calls), zap.Bool("background", w.Background))
		}
	}
}

// Open opens the store. logger may be nil. Unless s.Importing, it refuses
// a store that holds part of a restore or migration that did not finish.
func Open(ctx context.Context, s Spec, logger *zap.Logger) (store.Store, error) {
	var st store.Store
	var err error
	switch s.Backend {
	case Bolt:
		st, err = bolt.Open(s.Path, bolt.Options{ReadOnly: s.ReadOnly, LockTimeout: s.LockTimeout, OnWrite: s.OnWrite,
			Logger: logger})
	case Postgres:
		st, err = postgres.Open(ctx, postgres.Config{DSN: s.DSN, MaxConns: s.MaxConns,
			StatementTimeout: s.StatementTimeout, Logger: logger, AllowReadOnly: s.ReadOnly})
	default:
		return nil, fmt.Errorf("unknown store backend %q (expected %s or %s)", s.Backend, Bolt, Postgres)
	}
	if err != nil {
		return nil, err
	}
	if s.Importing {
		return st, nil
	}
	if err := store.CheckFinished(ctx, st); err != nil {
		_ = st.Close()
		return nil, err // the caller names the store, as for other errors of Open
	}
	return st, nil
}
