package portable

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// DefaultBatchSize is how many records one write transaction of Import or
// Migrate holds when ImportOptions.BatchSize is 0.
const DefaultBatchSize = 500

// ImportOptions tune Import and Migrate.
type ImportOptions struct {
	// Force writes into a target that already holds records. Records with
	// the same keys are replaced and the others stay. Secrets the target
	// already holds with another value are kept (the store has no way to
	// replace a secret: they may already be in use), and counted in
	// Counts.SecretsKept; sessions sealed with the backup's keys then
	// cannot be unsealed. Audit events the target already has (same Seq,
	// same content) are skipped, so an interrupted import can be run again
	// with Force.
	Force bool
	// Progress hears how many records of each kind have been written.
	Progress Progress
	// BatchSize is how many records one write transaction holds; 0 means
	// DefaultBatchSize.
	BatchSize int
}

// Import reads a backup that Export wrote and writes its records into st,
// refusing (ErrNotEmpty) a target that already holds records or secrets
// unless opt.Force. It checks that the file is complete (ErrCorrupt
// otherwise) and returns the counts it wrote. Records are written in
// batches of separate transactions, so a failure leaves part of the
// backup in st: run it again with Force.
func Import(ctx context.Context, st store.Store, r io.Reader, opt ImportOptions) (Counts, error) {
	im, err := newImporter(ctx, st, opt)
	if err != nil {
		return Counts{}, fmt.Errorf("portable: import: %w", err)
	}
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return Counts{}, fmt.Errorf("portable: import: not a gzip'd backup: %v: %w", err, ErrCorrupt)
	}
	dec := json.NewDecoder(gz)
	dec.DisallowUnknownFields()
	for {
		l := new(line)
		err := dec.Decode(l)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return im.c, fmt.Errorf("portable: import: line %d: %v: %w", im.lines+1, err, ErrCorrupt)
		}
		if err := im.add(l); err != nil {
			return im.c, fmt.Errorf("portable: import: %w", err)
		}
	}
	if err := im.finish(); err != nil {
		return im.c, fmt.Errorf("portable: import: %w", err)
	}
	return im.c, nil
}

// importer writes lines to a store in batches.
type importer struct {
	ctx     context.Context
	st      store.Store
	opt     ImportOptions
	pending []*line
	c       Counts
	lines   int
	// lastSeq is the target's last audit Seq before the import (Force
	// only): events up to it may already be there.
	lastSeq         uint64
	sawHead, sawEnd bool
	reported        map[string]int
}

func newImporter(ctx context.Context, st store.Store, opt ImportOptions) (*importer, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	im := &importer{ctx: ctx, st: st, opt: opt, reported: map[string]int{}}
	err := st.View(ctx, func(tx store.Tx) error {
		n, err := tx.Counts()
		if err != nil {
			return err
		}
		secrets := 0
		if err := tx.ForEachSecret(func(string, []byte) error { secrets++; return nil }); err != nil {
			return err
		}
		if (n != store.Counts{} || secrets > 0) && !opt.Force {
			return fmt.Errorf("it holds %d users, %d groups, %d sessions, %d tombstones, %d audit events and %d secrets "+
				"(import into an empty store, or force it): %w",
				n.Users, n.Groups, n.Sessions, n.Tombstones, n.AuditEvents, secrets, ErrNotEmpty)
		}
		if n.AuditEvents > 0 {
			// Only with Force: find where the target's audit trail ends.
			var after uint64
			for {
				page, err := tx.AuditEvents(store.AuditQuery{After: after, Limit: auditPage})
				if err != nil {
					return err
				}
				if len(page) > 0 {
					after = page[len(page)-1].Seq
				}
				if len(page) < auditPage {
					break
				}
			}
			im.lastSeq = after
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	return im, nil
}

// add takes one line, writing a batch when enough have gathered.
func (im *importer) add(l *line) error {
	im.lines++
	switch {
	case l.Header != nil:
		if im.sawHead {
			return fmt.Errorf("line %d: a second header: %w", im.lines, ErrCorrupt)
		}
		h := l.Header
		if h.Format != Format || h.Version < 1 || h.Version > Version {
			return fmt.Errorf("format %q version %d, this build reads %q up to version %d: %w", h.Format, h.Version, Format, Version, ErrCorrupt)
		}
		im.sawHead = true
		return nil
	case !im.sawHead:
		return fmt.Errorf("line %d: no header line first: %w", im.lines, ErrCorrupt)
	case im.sawEnd:
		return fmt.Errorf("line %d: records after the end line: %w", im.lines, ErrCorrupt)
	case l.End != nil:
		if err := im.flush(); err != nil {
			return err
		}
		im.sawEnd = true
		got := im.c
		got.Secrets += got.SecretsKept
		got.SecretsKept = 0
		if want := *l.End; got != want {
			return fmt.Errorf("the end line counts %+v, but the file held %+v: %w", want, got, ErrCorrupt)
		}
		return nil
	}
	im.pending = append(im.pending, l)
	if len(im.pending) >= im.opt.BatchSize {
		return im.flush()
	}
	return nil
}

// finish checks that the end line came.
func (im *importer) finish() error {
	if !im.sawEnd {
		return fmt.Errorf("no end line after %d lines (truncated?): %w", im.lines, ErrCorrupt)
	}
	return nil
}

// flush writes the pending lines in one transaction.
func (im *importer) flush() error {
	if len(im.pending) == 0 {
		return nil
	}
	batch := im.pending
	im.pending = nil
	var d Counts
	err := im.st.Update(im.ctx, func(tx store.Tx) error {
		d = Counts{} // fn may run more than once
		for _, l := range batch {
			if err := im.write(tx, l, &d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c := &im.c
	c.Secrets += d.Secrets
	c.SecretsKept += d.SecretsKept
	c.Users += d.Users
	c.Groups += d.Groups
	c.Tombstones += d.Tombstones
	c.Sessions += d.Sessions
	c.SessionTokens += d.SessionTokens
	c.Consumed += d.Consumed
	c.AuditEvents += d.AuditEvents
	if p := im.opt.Progress; p != nil {
		for kind, n := range map[string]int{"users": c.Users, "groups": c.Groups, "sessions": c.Sessions,
			"single-use IDs": c.Consumed, "audit events": c.AuditEvents} {
			if n/progressEvery > im.reported[kind]/progressEvery {
				p(kind, n)
			}
			im.reported[kind] = n
		}
	}
	return nil
}

// write writes one record in tx and counts it in d.
func (im *importer) write(tx store.Tx, l *line, d *Counts) error {
	switch {
	case l.Secret != nil:
		s := l.Secret
		if len(s.Value) == 0 {
			return fmt.Errorf("secret %s is empty: %w", s.Name, ErrCorrupt)
		}
		got, err := tx.LoadOrStoreSecret(s.Name, s.Value)
		if err != nil {
			return fmt.Errorf("secret %s: %w", s.Name, err)
		}
		if !bytes.Equal(got, s.Value) {
			if !im.opt.Force {
				return fmt.Errorf("secret %s: %w", s.Name, ErrSecretConflict)
			}
			d.SecretsKept++
			return nil
		}
		d.Secrets++
	case l.User != nil:
		u := *l.User
		if err := tx.PutUser(&u); err != nil {
			return fmt.Errorf("user %s: %w", u.ID, err)
		}
		d.Users++
	case l.Group != nil:
		g := *l.Group
		if err := tx.PutGroup(&g); err != nil {
			return fmt.Errorf("group %s: %w", g.ID, err)
		}
		d.Groups++
	case l.Tombstone != nil:
		ts := *l.Tombstone
		if err := tx.PutTombstone(&ts); err != nil {
			return fmt.Errorf("tombstone in %s: %w", ts.IdP, err)
		}
		d.Tombstones++
	case l.Session != nil:
		s := *l.Session
		if err := tx.PutSession(&s); err != nil {
			return fmt.Errorf("session of user %s: %w", s.UserID, err)
		}
		d.Sessions++
		if l.Tokens != nil {
			if err := tx.PutSessionTokens(s.Hash, l.Tokens); err != nil {
				return fmt.Errorf("session tokens: %w", err)
			}
			d.SessionTokens++
		}
	case l.Consumed != nil:
		c := l.Consumed
		if _, err := tx.Consume(c.Kind, c.ID, c.Until); err != nil {
			return fmt.Errorf("single-use ID of kind %s: %w", c.Kind, err)
		}
		d.Consumed++
	case l.Audit != nil:
		e := *l.Audit
		if e.Seq <= im.lastSeq {
			// Force over a target that may already hold it.
			have, err := tx.AuditEvents(store.AuditQuery{After: e.Seq - 1, Limit: 1})
			if err != nil {
				return fmt.Errorf("audit event %d: %w", e.Seq, err)
			}
			if len(have) == 1 && have[0].Seq == e.Seq && sameEvent(have[0], e) {
				d.AuditEvents++
				return nil
			}
			return fmt.Errorf("audit event %d: the target's audit trail already reaches %d with other events", e.Seq, im.lastSeq)
		}
		if err := tx.ImportAuditEvent(e); err != nil {
			return fmt.Errorf("audit event %d: %w", e.Seq, err)
		}
		d.AuditEvents++
	default:
		return fmt.Errorf("line %d holds no record: %w", im.lines, ErrCorrupt)
	}
	return nil
}

// sameEvent compares two events by their stored form.
func sameEvent(a, b store.Event) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// Report is what Migrate did.
type Report struct {
	Copied Counts       // records written to the target
	Source store.Counts // the source's counts, in the snapshot copied
	Target store.Counts // the target's counts afterwards
}

// Migrate copies every record of from into to, from one consistent View
// of from, and then checks the counts: every kind the target holds
// afterwards must number what was copied (at least that many with Force,
// over records the target already had), else ErrCountMismatch. It refuses
// a non-empty target unless opt.Force (ErrNotEmpty). Stop the instances
// that use either store first: writes made during the copy are not in it.
func Migrate(ctx context.Context, from, to store.Store, opt ImportOptions) (Report, error) {
	if from == to {
		return Report{}, errors.New("portable: migrate: source and target are the same store")
	}
	im, err := newImporter(ctx, to, opt)
	if err != nil {
		return Report{}, fmt.Errorf("portable: migrate: %w", err)
	}
	read, err := walk(ctx, from, nil, im.add)
	if err != nil {
		return Report{Copied: im.c}, fmt.Errorf("portable: migrate: %w", err)
	}
	if err := im.finish(); err != nil {
		return Report{Copied: im.c}, fmt.Errorf("portable: migrate: %w", err)
	}
	rep := Report{Copied: im.c, Source: read.storeCounts()}
	var consumed, secrets int
	err = to.View(ctx, func(tx store.Tx) error {
		var err error
		if rep.Target, err = tx.Counts(); err != nil {
			return err
		}
		consumed, secrets = 0, 0
		if err := tx.ForEachConsumed(func(string, string, time.Time) error { consumed++; return nil }); err != nil {
			return err
		}
		return tx.ForEachSecret(func(string, []byte) error { secrets++; return nil })
	})
	if err != nil {
		return rep, fmt.Errorf("portable: migrate: count the target: %w", err)
	}
	type pair struct {
		kind         string
		have, copied int
	}
	for _, p := range []pair{
		{"users", rep.Target.Users, read.Users}, {"groups", rep.Target.Groups, read.Groups},
		{"sessions", rep.Target.Sessions, read.Sessions}, {"tombstones", rep.Target.Tombstones, read.Tombstones},
		{"audit events", rep.Target.AuditEvents, read.AuditEvents}, {"single-use IDs", consumed, read.Consumed},
		{"secrets", secrets, read.Secrets},
	} {
		if p.have < p.copied || (!opt.Force && p.have != p.copied) {
			return rep, fmt.Errorf("portable: migrate: copied %d %s, the target holds %d: %w", p.copied, p.kind, p.have, ErrCountMismatch)
		}
	}
	return rep, nil
}
