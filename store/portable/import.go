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
	"maps"
	"slices"
	"time"

	"github.com/caddy-sso/caddy-sso/store"
)

// DefaultBatchSize is how many records one write transaction of Import or
// Migrate holds when ImportOptions.BatchSize is 0.
const DefaultBatchSize = 500

// ImportOptions tune Import and Migrate.
type ImportOptions struct {
	// Force writes into a target that already holds records, and replaces
	// them: afterwards the target holds exactly the source. It first
	// deletes every user (with their sessions), group, tombstone,
	// single-use ID and audit event the target holds, and every secret
	// the source lacks or holds with another value, in batches, and then
	// writes the source's records and secrets. The target thus gives up
	// its own keys for the source's (the SP key the IdP knows, the key
	// that opens the sessions' sealed tokens); secrets equal to the
	// source's stay as they are.
	//
	// The replacement is not one transaction: a whole store in one would
	// exhaust PostgreSQL's lock table (every user written takes key
	// locks). A failure part-way therefore leaves the target holding part
	// of the source (ErrPartial), marked so that no one opens it
	// (store.UnfinishedImport); running the same import again with Force
	// starts over from an empty target and finishes.
	Force bool
	// Progress hears how many records of each kind have been removed from
	// the target ("removed users", …, Force only) and written ("users", …).
	Progress Progress
	// BatchSize is how many records one write transaction holds; 0 means
	// DefaultBatchSize.
	BatchSize int
	// Finish, if set, runs last, in the transaction that clears the
	// store.UnfinishedImport mark once the target has been read back: what
	// it writes (the audit event that says the store was replaced) commits
	// with the import's end, or neither does and the target stays marked.
	// Not called on the scratch store of a rehearsal.
	Finish func(tx store.Tx) error
	// Starting, if set, is called once the source has checked out (with
	// Force: read, verified and rehearsed) and the target was found fit,
	// right before the import first changes it: what it says ("replacing
	// everything in …") is then not said of a target a bad source leaves
	// as it was.
	Starting func()
	// Scratch says that the target is a new store its caller throws away
	// if the import fails (a rehearsal's, or the bbolt file restore and
	// migrate build beside the old one before renaming it into place): a
	// failure then leaves no store holding part of the source, so it does
	// not say that one does (ErrPartial), nor to run it again forced.
	Scratch bool
}

// Import reads a backup that Export wrote and writes its records into st,
// refusing (ErrNotEmpty) a target that already holds records, single-use
// IDs or secrets unless opt.Force, which replaces them (see
// ImportOptions.Force). It checks that the file is complete (ErrCorrupt
// otherwise), reads the target back at the end (ErrCountMismatch unless it
// holds exactly the backup: as many records of each kind, and the same
// secrets), and returns the counts it wrote.
//
// With Force, the whole backup is read and checked, and then imported
// into a scratch bbolt store (rehearse), before the target is touched; a
// backup no store takes thus fails with the target as it was. Then it is
// read again to import it: r is read three times (seeking back when it is
// an io.Seeker; held in memory otherwise). Without Force,
// records are written in batches of separate transactions into the empty
// target, so a failure leaves part of the backup in st (ErrPartial, unless
// opt.Scratch): run it again with Force.
func Import(ctx context.Context, st store.Store, r io.Reader, opt ImportOptions) (Counts, error) {
	var secrets map[string][]byte
	if opt.Force {
		rs, ok := r.(io.ReadSeeker)
		if !ok {
			data, err := io.ReadAll(r)
			if err != nil {
				return Counts{}, fmt.Errorf("portable: import: %w", err)
			}
			rs = bytes.NewReader(data)
		}
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return Counts{}, fmt.Errorf("portable: import: %w", err)
		}
		secrets = map[string][]byte{}
		if _, err := verify(rs, func(name string, value []byte) { secrets[name] = value }, nil); err != nil {
			return Counts{}, fmt.Errorf("portable: import: %w", err)
		}
		seekStart := func() error {
			_, err := rs.Seek(start, io.SeekStart)
			return err
		}
		if err := seekStart(); err != nil {
			return Counts{}, fmt.Errorf("portable: import: %w", err)
		}
		err = rehearse(ctx, func(scratch store.Store) error {
			_, err := Import(ctx, scratch, rs, ImportOptions{BatchSize: opt.BatchSize, Scratch: true})
			return err
		})
		if err == nil {
			err = seekStart()
		}
		if err != nil {
			return Counts{}, fmt.Errorf("portable: import: %w", err)
		}
		r = rs
	}
	im, err := newImporter(ctx, st, "import", opt)
	if err != nil {
		return Counts{}, fmt.Errorf("portable: import: %w", err)
	}
	if err := im.prepare(secrets); err != nil {
		return Counts{}, im.failed("import", err)
	}
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return Counts{}, im.failed("import", fmt.Errorf("not a gzip'd backup: %v: %w", err, ErrCorrupt))
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
			return im.c, im.failed("import", fmt.Errorf("line %d: %v: %w", im.lines+1, err, ErrCorrupt))
		}
		if err := im.add(l); err != nil {
			return im.c, im.failed("import", err)
		}
	}
	if _, err := im.finish(); err != nil {
		return im.c, im.failed("import", err)
	}
	return im.c, nil
}

// importer writes lines to a store in batches.
type importer struct {
	ctx     context.Context
	st      store.Store
	op      string // "import" or "migration", for the store.UnfinishedImport mark
	opt     ImportOptions
	pending []*line
	c       Counts
	lines   int
	// want holds the secrets of the lines added, which the target must
	// hold afterwards.
	want            map[string][]byte
	sawHead, sawEnd bool
	reported        map[string]int
	// changed: the target has been written to (a failure now leaves part
	// of the source in it), and marked unfinished (update).
	changed bool
}

// newImporter checks the target: empty, unless opt.Force; then it says
// so to opt.Starting.
func newImporter(ctx context.Context, st store.Store, op string, opt ImportOptions) (*importer, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	im := &importer{ctx: ctx, st: st, op: op, opt: opt, reported: map[string]int{}, want: map[string][]byte{}}
	if !opt.Force {
		n, consumed, have, err := targetState(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		if mark, ok := have[store.UnfinishedImport]; ok {
			return nil, fmt.Errorf("target: it holds part of an earlier %s that did not finish (%s); run it again, forced to replace what it holds: %w", op, mark, ErrNotEmpty)
		}
		if (n != store.Counts{} || len(have) > 0 || consumed > 0) {
			return nil, fmt.Errorf("target: it holds %s (import into an empty store, or force it to replace all of them): %w",
				holding(n, consumed, have), ErrNotEmpty)
		}
	}
	if opt.Starting != nil {
		opt.Starting()
	}
	return im, nil
}

// targetState reads what st holds: its counts, how many single-use IDs,
// and its secrets.
func targetState(ctx context.Context, st store.Store) (n store.Counts, consumed int, secrets map[string][]byte, err error) {
	err = st.View(ctx, func(tx store.Tx) error {
		var err error
		if n, err = tx.Counts(); err != nil {
			return err
		}
		consumed, secrets = 0, map[string][]byte{} // fn may run more than once
		if err := tx.ForEachConsumed(func(string, string, time.Time) error { consumed++; return nil }); err != nil {
			return err
		}
		return tx.ForEachSecret(func(name string, value []byte) error { secrets[name] = value; return nil })
	})
	return n, consumed, secrets, err
}

// holding lists what a target holds, with its secrets unless they are nil.
func holding(n store.Counts, consumed int, secrets map[string][]byte) string {
	s := fmt.Sprintf("%d users, %d groups, %d sessions, %d tombstones, %d audit events",
		n.Users, n.Groups, n.Sessions, n.Tombstones, n.AuditEvents)
	if secrets == nil {
		return s + fmt.Sprintf(" and %d single-use IDs", consumed)
	}
	return s + fmt.Sprintf(", %d single-use IDs and %d secrets", consumed, len(secrets))
}

// update runs fn in a write transaction of the target. The first one also
// marks the target unfinished (store.UnfinishedImport), so that from the
// first change until finish has read it back, neither Caddy nor the
// offline tools open it; a rerun marks it afresh.
func (im *importer) update(fn func(tx store.Tx) error) error {
	mark := !im.changed
	started := []byte(im.op + " started " + time.Now().UTC().Format(time.RFC3339))
	err := im.st.Update(im.ctx, func(tx store.Tx) error {
		if mark {
			if err := tx.DeleteSecret(store.UnfinishedImport); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("mark the target unfinished: %w", err)
			}
			if _, err := tx.LoadOrStoreSecret(store.UnfinishedImport, started); err != nil {
				return fmt.Errorf("mark the target unfinished: %w", err)
			}
		}
		return fn(tx)
	})
	if err == nil {
		im.changed = true
	}
	return err
}

// failed is an error of the operation op; once the target has changed, it
// says that the target holds part of the source (ErrPartial), unless the
// target is a scratch store that its caller throws away (Scratch).
func (im *importer) failed(op string, err error) error {
	if im.changed && !im.opt.Scratch {
		return fmt.Errorf("portable: %s: %w; %w: run it again, forced, which empties the target first", op, err, ErrPartial)
	}
	return fmt.Errorf("portable: %s: %w", op, err)
}

// farFuture is later than any time a record holds: pruning single-use IDs
// and audit events before it removes them all.
var farFuture = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// take returns the first n items forEach visits.
func take[T any](n int, forEach func(fn func(T) error) error) ([]T, error) {
	var out []T
	err := forEach(func(v T) error {
		out = append(out, v)
		if len(out) >= n {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return out, nil
}

// deleteFirst deletes, with del, the first n items forEach visits, and
// returns how many it took.
func deleteFirst[T any](n int, forEach func(fn func(T) error) error, del func(T) error) (int, error) {
	items, err := take(n, forEach)
	for _, v := range items {
		if err == nil {
			err = del(v)
		}
	}
	return len(items), err
}

// prepare empties the target (Force only), kind by kind, in batches of
// separate transactions, through the store's own deletes so that every
// index and counter follows. It keeps the target's secrets that source
// (the source's secrets) holds with the same value. Each batch removes
// what is left, so a rerun after a failure goes on from wherever the last
// one stopped.
func (im *importer) prepare(source map[string][]byte) error {
	if !im.opt.Force {
		return nil
	}
	b := im.opt.BatchSize
	steps := []struct {
		kind   string
		remove func(tx store.Tx) (int, error) // removes up to b, returns how many
	}{
		{"users", func(tx store.Tx) (int, error) { // and their sessions
			return deleteFirst(b, func(fn func(string) error) error {
				return tx.ForEachUser("", func(u *store.User) error { return fn(u.ID) })
			}, tx.DeleteUser)
		}},
		{"groups", func(tx store.Tx) (int, error) {
			return deleteFirst(b, func(fn func(string) error) error {
				return tx.ForEachGroup("", func(g *store.Group) error { return fn(g.ID) })
			}, tx.DeleteGroup)
		}},
		{"sessions", func(tx store.Tx) (int, error) { // none left after the users, unless damaged
			return deleteFirst(b, func(fn func(string) error) error {
				return tx.ForEachSession("", func(s *store.Session) error { return fn(s.Hash) })
			}, tx.DeleteSession)
		}},
		{"tombstones", func(tx store.Tx) (int, error) {
			return deleteFirst(b, tx.ForEachTombstone, func(t *store.Tombstone) error { return tx.DeleteTombstone(t.IdP, t.Subject) })
		}},
		{"single-use IDs", func(tx store.Tx) (int, error) { return tx.PruneConsumed(farFuture, b) }},
		{"audit events", func(tx store.Tx) (int, error) { return tx.PruneAudit(farFuture, farFuture, b) }},
		{"secrets", func(tx store.Tx) (int, error) { // those the source lacks or holds with another value
			return deleteFirst(b, func(fn func(string) error) error {
				return tx.ForEachSecret(func(name string, value []byte) error {
					if v, ok := source[name]; name == store.UnfinishedImport || ok && bytes.Equal(v, value) {
						return nil
					}
					return fn(name)
				})
			}, tx.DeleteSecret)
		}},
	}
	for _, s := range steps {
		total := 0
		for {
			var n int
			err := im.update(func(tx store.Tx) error {
				var err error
				n, err = s.remove(tx)
				return err
			})
			if err != nil {
				return fmt.Errorf("empty the target: %s: %w", s.kind, err)
			}
			if n == 0 {
				break
			}
			before := total
			total += n
			if p := im.opt.Progress; p != nil && total/progressEvery > before/progressEvery {
				p("removed "+s.kind, total)
			}
		}
		if p := im.opt.Progress; p != nil && total%progressEvery != 0 {
			p("removed "+s.kind, total)
		}
	}
	n, consumed, _, err := targetState(im.ctx, im.st)
	if err != nil {
		return fmt.Errorf("empty the target: %w", err)
	}
	if (n != store.Counts{} || consumed > 0) {
		return fmt.Errorf("empty the target: it still holds %s", holding(n, consumed, nil))
	}
	return nil
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
		if want := *l.End; im.c != want {
			return fmt.Errorf("the end line counts %+v, but the file held %+v: %w", want, im.c, ErrCorrupt)
		}
		return nil
	}
	if l.Secret != nil {
		if _, dup := im.want[l.Secret.Name]; dup {
			return fmt.Errorf("line %d: secret %s a second time: %w", im.lines, l.Secret.Name, ErrCorrupt)
		}
		im.want[l.Secret.Name] = l.Secret.Value
	}
	im.pending = append(im.pending, l)
	if len(im.pending) >= im.opt.BatchSize {
		return im.flush()
	}
	return nil
}

// finish checks that the end line came, and reads the target back: it
// must hold exactly what was written, as many records of each kind and
// the same secrets, name and value. It returns the target's counts.
func (im *importer) finish() (store.Counts, error) {
	if !im.sawEnd {
		return store.Counts{}, fmt.Errorf("no end line after %d lines (truncated?): %w", im.lines, ErrCorrupt)
	}
	n, consumed, have, err := targetState(im.ctx, im.st)
	if err != nil {
		return n, fmt.Errorf("read the target back: %w", err)
	}
	delete(have, store.UnfinishedImport)
	for _, p := range []struct {
		kind         string
		have, copied int
	}{
		{"users", n.Users, im.c.Users}, {"groups", n.Groups, im.c.Groups},
		{"sessions", n.Sessions, im.c.Sessions}, {"tombstones", n.Tombstones, im.c.Tombstones},
		{"audit events", n.AuditEvents, im.c.AuditEvents}, {"single-use IDs", consumed, im.c.Consumed},
		{"secrets", len(have), im.c.Secrets},
	} {
		if p.have != p.copied {
			return n, fmt.Errorf("copied %d %s, the target holds %d: %w", p.copied, p.kind, p.have, ErrCountMismatch)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(im.want)) {
		v, ok := have[name]
		switch {
		case !ok:
			return n, fmt.Errorf("secret %s is not in the target: %w", name, ErrCountMismatch)
		case !bytes.Equal(v, im.want[name]):
			return n, fmt.Errorf("the target's secret %s is not the source's: %w", name, ErrCountMismatch)
		}
	}
	// The target is the source now: the last write lets it be opened.
	err = im.st.Update(im.ctx, func(tx store.Tx) error {
		if err := tx.DeleteSecret(store.UnfinishedImport); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if im.opt.Finish != nil {
			return im.opt.Finish(tx)
		}
		return nil
	})
	if err != nil {
		// The target stays marked, as after a failed batch.
		return n, fmt.Errorf("mark the target finished: %w", err)
	}
	return n, nil
}

// flush writes the pending lines in one transaction.
func (im *importer) flush() error {
	if len(im.pending) == 0 {
		return nil
	}
	batch := im.pending
	im.pending = nil
	var d Counts
	err := im.update(func(tx store.Tx) error {
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
			// prepare deleted the target's secrets that differ from the
			// source's, and without Force the target was empty: another
			// process is writing to it.
			return fmt.Errorf("secret %s: the target holds another value: %w", s.Name, ErrSecretConflict)
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
		if err := tx.ImportAuditEvent(e); err != nil {
			return fmt.Errorf("audit event %d: %w", e.Seq, err)
		}
		d.AuditEvents++
	default:
		return fmt.Errorf("line %d holds no record: %w", im.lines, ErrCorrupt)
	}
	return nil
}

// Report is what Migrate did.
type Report struct {
	Copied Counts       // records written to the target
	Source store.Counts // the source's counts, in the snapshot copied
	Target store.Counts // the target's counts afterwards
}

// Migrate copies every record of from into to, from one consistent View
// of from, and then reads the target back (see Import): it must hold
// exactly what was copied, else ErrCountMismatch. It refuses a non-empty
// target unless opt.Force (ErrNotEmpty), which replaces what the target
// holds (see ImportOptions.Force): then from is first copied into a
// scratch bbolt store (rehearse), so that a source no store takes fails
// with the target as it was (but for the same-store check's single-use ID,
// which expires within a minute), and a target that is the source under
// another name (two connection strings for one database) is refused
// (ErrSameStore). Stop the instances that use either store first: writes
// made during the copy are not in it.
func Migrate(ctx context.Context, from, to store.Store, opt ImportOptions) (Report, error) {
	if from == to {
		return Report{}, errors.New("portable: migrate: source and target are the same store")
	}
	var secrets map[string][]byte
	if opt.Force {
		switch same, err := sameStore(ctx, from, to); {
		case err != nil:
			return Report{}, fmt.Errorf("portable: migrate: telling the stores apart: %w", err)
		case same:
			return Report{}, fmt.Errorf("portable: migrate: %w", ErrSameStore)
		}
		if err := rehearse(ctx, func(scratch store.Store) error {
			_, err := Migrate(ctx, from, scratch, ImportOptions{BatchSize: opt.BatchSize, Scratch: true})
			return err
		}); err != nil {
			return Report{}, fmt.Errorf("portable: migrate: %w", err)
		}
		// To know which of the target's secrets to delete (those the
		// source lacks or holds with another value). The copy reads them
		// again in its own View, and the check at the end compares the
		// target with that.
		err := from.View(ctx, func(tx store.Tx) error {
			secrets = map[string][]byte{}
			return tx.ForEachSecret(func(name string, value []byte) error { secrets[name] = value; return nil })
		})
		if err != nil {
			return Report{}, fmt.Errorf("portable: migrate: read the source's secrets: %w", err)
		}
	}
	im, err := newImporter(ctx, to, "migration", opt)
	if err != nil {
		return Report{}, fmt.Errorf("portable: migrate: %w", err)
	}
	if err := im.prepare(secrets); err != nil {
		return Report{}, im.failed("migrate", err)
	}
	read, err := walk(ctx, from, nil, im.add)
	if err != nil {
		return Report{Copied: im.c}, im.failed("migrate", err)
	}
	target, err := im.finish()
	rep := Report{Copied: im.c, Source: read.storeCounts(), Target: target}
	if err != nil {
		return rep, im.failed("migrate", err)
	}
	return rep, nil
}
