// Package portable moves a whole store between backends and through files:
// a backup format that both backends read and write, and a direct copy
// from one store to another (bolt to PostgreSQL and back).
//
// # Format
//
// A backup is gzip'd JSON Lines. The first line is a header,
//
//	{"header":{"format":"caddy-sso-backup","version":2,"created":"…","counts":{"Users":…}}}
//
// then one line per record, kind by kind in the order a restore needs them
// (secrets, users, groups, tombstones, sessions with their sealed tokens,
// single-use IDs, audit events), each holding the record as the store
// package encodes it:
//
//	{"user":{…}}
//	{"session":{…},"tokens":"<base64>"}
//	{"consumed":{"kind":"saml","id":"…","until":"…"}}
//
// and last an end line with the number of records of each kind, whose
// absence tells a truncated file from a complete one:
//
//	{"end":{"users":…,"groups":…,…}}
//
// Everything is read from one View of the source, so a backup is one
// consistent snapshot. It holds secrets (signing and encryption keys) and
// session hashes: keep it as private as the store itself.
package portable

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// Format and Version name what Export writes; Import reads versions up to
// Version. Version 2 records may carry fields version 1 readers refuse as
// unknown (a tombstone's home, a session's NameID qualifiers): the number
// makes an earlier build say that the backup is newer than it reads,
// instead of calling it unreadable or incomplete.
const (
	Format  = "caddy-sso-backup"
	Version = 2
)

// Errors Import and Migrate return, to be tested with errors.Is.
var (
	// ErrNotEmpty: the target store already holds records, single-use IDs
	// or secrets, and Force was not given.
	ErrNotEmpty = errors.New("target store is not empty")
	// ErrSecretConflict: writing a secret of the source found the target
	// holding it with another value, although the target was empty or
	// (Force) had its differing secrets deleted: another process is
	// writing to the target.
	ErrSecretConflict = errors.New("target store holds secrets that differ from the source's")
	// ErrCorrupt: the backup is not one this build reads, or is truncated.
	ErrCorrupt = errors.New("backup is unreadable or incomplete")
	// ErrCountMismatch: after a copy, the target does not hold exactly
	// what was copied: as many records of each kind, and the same secrets
	// (names and values).
	ErrCountMismatch = errors.New("the target differs from the source after the copy")
	// ErrPartial: Import or Migrate failed after it had changed the
	// target, which now holds part of the source. Running it again with
	// Force starts over from an empty target.
	ErrPartial = errors.New("the target holds part of the source")
)

// errStop ends a ForEach early.
var errStop = errors.New("stop")

// Counts is how many records of each kind a backup or a copy holds.
type Counts struct {
	Secrets       int `json:"secrets"`
	Users         int `json:"users"`
	Groups        int `json:"groups"`
	Tombstones    int `json:"tombstones"`
	Sessions      int `json:"sessions"`
	SessionTokens int `json:"session_tokens"` // sessions that have sealed tokens
	Consumed      int `json:"consumed"`       // single-use IDs
	AuditEvents   int `json:"audit_events"`
}

// storeCounts is the part of c that store.Tx.Counts reports.
func (c Counts) storeCounts() store.Counts {
	return store.Counts{Users: c.Users, Groups: c.Groups, Sessions: c.Sessions, Tombstones: c.Tombstones, AuditEvents: c.AuditEvents}
}

// Header is a backup's first line.
type Header struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Counts are the source's record counts, for a reader that wants to
	// show progress; the end line has the full counts.
	Counts store.Counts `json:"counts"`
}

// Progress is told, now and then, how many records of a kind ("users",
// "sessions", …) have been done so far.
type Progress func(kind string, done int)

// progressEvery is how often (in records) a Progress hears of each kind.
const progressEvery = 10_000

// errReadCutShort: the store lost its connection part-way through a read
// that had already written lines (walk).
var errReadCutShort = errors.New("the connection to the store was lost part-way through the read, after part of it was written: nothing usable was written; run it again")

// line is one line of a backup: exactly one field is set (Tokens goes
// with Session).
type line struct {
	Header    *Header          `json:"header,omitempty"`
	Secret    *secretRecord    `json:"secret,omitempty"`
	User      *store.User      `json:"user,omitempty"`
	Group     *store.Group     `json:"group,omitempty"`
	Tombstone *store.Tombstone `json:"tombstone,omitempty"`
	Session   *store.Session   `json:"session,omitempty"`
	Tokens    []byte           `json:"tokens,omitempty"`
	Consumed  *consumedRecord  `json:"consumed,omitempty"`
	Audit     *store.Event     `json:"audit,omitempty"`
	End       *Counts          `json:"end,omitempty"`
}

type secretRecord struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

type consumedRecord struct {
	Kind  string    `json:"kind"`
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
}

// ---- reading a store ----

// auditPage is how many audit events one AuditEvents call reads.
const auditPage = 1000

// walk reads every record of st in one View, in restore order, and hands
// each to emit as a line; it returns the counts of what it emitted, which
// it checks against the store's own counts.
func walk(ctx context.Context, st store.Store, progress Progress, emit func(*line) error) (Counts, error) {
	var c Counts
	tick := func(kind string, n int) {
		if progress != nil && n%progressEvery == 0 {
			progress(kind, n)
		}
	}
	emitted := false
	out := func(l *line) error { emitted = true; return emit(l) }
	err := st.View(ctx, func(tx store.Tx) error {
		// A store may run a View's fn again (store/postgres, after its
		// connection was lost part-way): the lines already written cannot
		// be taken back, and a second run would follow them with a second
		// header, a backup that no restore reads.
		if emitted {
			return errReadCutShort
		}
		c = Counts{}
		want, err := tx.Counts()
		if err != nil {
			return err
		}
		if err := out(&line{Header: &Header{Format: Format, Version: Version, Created: time.Now().UTC(), Counts: want}}); err != nil {
			return err
		}
		err = tx.ForEachSecret(func(name string, value []byte) error {
			if name == store.UnfinishedImport {
				return nil // not the store's: a restore's (store.UnfinishedImport)
			}
			c.Secrets++
			return out(&line{Secret: &secretRecord{Name: name, Value: value}})
		})
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		err = tx.ForEachUser("", func(u *store.User) error {
			c.Users++
			tick("users", c.Users)
			return out(&line{User: u})
		})
		if err != nil {
			return fmt.Errorf("users: %w", err)
		}
		err = tx.ForEachGroup("", func(g *store.Group) error {
			c.Groups++
			tick("groups", c.Groups)
			return out(&line{Group: g})
		})
		if err != nil {
			return fmt.Errorf("groups: %w", err)
		}
		err = tx.ForEachTombstone(func(ts *store.Tombstone) error {
			c.Tombstones++
			return out(&line{Tombstone: ts})
		})
		if err != nil {
			return fmt.Errorf("tombstones: %w", err)
		}
		// ForEachSession's fn may read the transaction: the tokens come
		// with each session.
		err = tx.ForEachSession("", func(s *store.Session) error {
			tokens, err := tx.SessionTokens(s.Hash)
			if err != nil {
				return err
			}
			c.Sessions++
			if tokens != nil {
				c.SessionTokens++
			}
			tick("sessions", c.Sessions)
			return out(&line{Session: s, Tokens: tokens})
		})
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		err = tx.ForEachConsumed(func(kind, id string, until time.Time) error {
			c.Consumed++
			tick("single-use IDs", c.Consumed)
			return out(&line{Consumed: &consumedRecord{Kind: kind, ID: id, Until: until}})
		})
		if err != nil {
			return fmt.Errorf("single-use IDs: %w", err)
		}
		var after uint64
		for {
			page, err := tx.AuditEvents(store.AuditQuery{After: after, Limit: auditPage})
			if err != nil {
				return fmt.Errorf("audit events: %w", err)
			}
			for i := range page {
				c.AuditEvents++
				tick("audit events", c.AuditEvents)
				if err := out(&line{Audit: &page[i]}); err != nil {
					return err
				}
			}
			if len(page) < auditPage {
				break
			}
			after = page[len(page)-1].Seq
		}
		if got := c.storeCounts(); got != want {
			return fmt.Errorf("read %+v, but the store counts %+v", got, want)
		}
		end := c
		return out(&line{End: &end})
	})
	if err != nil {
		return Counts{}, fmt.Errorf("portable: read store: %w", err)
	}
	return c, nil
}

// ExportOptions tune Export.
type ExportOptions struct {
	Progress Progress // nil: none
}

// Export writes every record of st to w in the backup format, from one
// consistent View, and returns the counts it wrote.
func Export(ctx context.Context, st store.Store, w io.Writer, opt ExportOptions) (Counts, error) {
	gz := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(gz, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	c, err := walk(ctx, st, opt.Progress, func(l *line) error { return enc.Encode(l) })
	if err != nil {
		return Counts{}, fmt.Errorf("portable: export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Counts{}, fmt.Errorf("portable: export: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Counts{}, fmt.Errorf("portable: export: %w", err)
	}
	return c, nil
}
