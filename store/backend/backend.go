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
	"path/filepath"
	"strings"
	"time"

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
	// a stopped instance's store). PostgreSQL ignores it.
	ReadOnly bool
	// LockTimeout bounds the wait for a bbolt file's lock; 0 takes bolt's
	// default.
	LockTimeout time.Duration
	// OnWrite, when set, is told how long each write transaction held a
	// bbolt file's write lock, and what for (bolt.Options.OnWrite).
	OnWrite func(bolt.WriteHold)
}

// Parse reads the command-line spelling: "bolt:PATH", "postgres:DSN", or a
// plain path, which is a bbolt file.
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
	return Spec{Backend: Bolt, Path: s}, nil
}

// Check reports settings that do not fit the backend, as a config writes
// them (before placeholders are resolved): a bbolt file takes no
// PostgreSQL settings, PostgreSQL needs a DSN and takes no path, and no
// limit is negative. An empty Backend is Bolt. The errors use the config's
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
// opens the new config's store while the old one still runs): the bbolt
// file's absolute path, or a hash of the DSN.
func (s Spec) Key() (string, error) {
	switch s.Backend {
	case Bolt:
		abs, err := filepath.Abs(s.Path)
		if err != nil {
			return "", fmt.Errorf("store path %q: %w", s.Path, err)
		}
		return Bolt + ":" + abs, nil
	case Postgres:
		sum := sha256.Sum256([]byte(s.DSN))
		return Postgres + ":" + hex.EncodeToString(sum[:12]), nil
	}
	return "", fmt.Errorf("unknown store backend %q (expected %s or %s)", s.Backend, Bolt, Postgres)
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

// Open opens the store. logger may be nil.
func Open(ctx context.Context, s Spec, logger *zap.Logger) (store.Store, error) {
	switch s.Backend {
	case Bolt:
		return bolt.Open(s.Path, bolt.Options{ReadOnly: s.ReadOnly, LockTimeout: s.LockTimeout, OnWrite: s.OnWrite})
	case Postgres:
		return postgres.Open(ctx, postgres.Config{DSN: s.DSN, MaxConns: s.MaxConns,
			StatementTimeout: s.StatementTimeout, Logger: logger})
	}
	return nil, fmt.Errorf("unknown store backend %q (expected %s or %s)", s.Backend, Bolt, Postgres)
}
