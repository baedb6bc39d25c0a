package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/backend"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
)

// Backups are in store/portable's format (gzip'd JSON Lines), the same for
// both backends, so a backup of a bbolt store restores into PostgreSQL and
// the other way round.

func backupCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "backup <file>",
		Short: "Writes a consistent copy of the store to a file",
		Long: `Writes a consistent snapshot of the store (users, groups, sessions, keys,
single-use IDs, audit trail) to a file, from the running Caddy or, with
--store, from a stopped instance's store. The format is the same for both
backends. The file holds every key of the store (the SAML SP private keys,
the session-token and flow-cookie keys) and session hashes: keep it as
private as the store. Through the running Caddy, each backup is audited
(store.backed_up). It is written beside its final name, read back in full,
and then renamed into place: the name must be new or a regular file's (a
directory, device, pipe or symbolic link there is refused, and so is "-":
the backup is never written to standard output). Ctrl-C removes the
partial file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkBackupTarget(args[0]); err != nil {
				return err
			}
			defer interruptible(c)()
			return withClient(c, true, func(cl client) error {
				n, counts, err := writeBackup(c.Context(), cl, args[0], func(n int64) {
					fmt.Fprintf(c.ErrOrStderr(), "  written: %s\n", humanize.IBytes(uint64(n)))
				})
				if err != nil {
					return stopped(c.Context(), err)
				}
				if asJSON(c) {
					return printJSON(c, map[string]any{"file": args[0], "bytes": n, "counts": counts})
				}
				fmt.Fprintf(c.OutOrStdout(), "backup written to %s (%d bytes: %s)\n", args[0], n, describe(counts))
				return nil
			})
		},
	}
}

func restoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore <file>",
		Short: "Restores a backup into a stopped instance's store (offline only)",
		Long: `Restores a backup made by 'caddy sso backup' into the store given by --store
(bolt:PATH, 'postgres:{env.SSO_DATABASE_URL}', postgres:DSN, or a file path;
default: the bbolt file in Caddy's data directory). Caddy must not be using
the store: a bbolt file another process holds is refused (a running Caddy,
whatever its admin address), and so, without --store, is a Caddy running the
sso app at the admin endpoint of --address, --config or the default.
A PostgreSQL database is refused while an instance's listener is connected
(pg_stat_activity, as far as the role may see it): stop every instance first.

A bbolt target is written as a new file beside the old one and renamed into
place, so it is either the old store or the complete new one; the new file
gets the old one's owner (run as root, or as that owner: other users cannot
give a file away, and it then says whom to chown it to). Another restore or
migrate into the same directory meanwhile is refused. A PostgreSQL
target must be empty unless --force is given, which replaces everything it
holds: its users, groups, sessions, tombstones, single-use IDs and audit trail
are deleted, and so are its keys (secrets) that the backup does not have or has
with other values, and the backup written, so that afterwards it holds exactly
the backup, keys included. This happens in batches, not in one transaction: if
it fails part-way, run the same command again with --force; it starts over
from an empty database. Until a restore finishes, the target is marked, and Caddy and the
other commands refuse it. The file is read in full and checked before anything is written, and the
target is read back at the end. A bbolt file (what older versions wrote as a
backup) is accepted too.

It prints when the backup was taken: the store is then as it was at that
time, and every change since is undone (users disabled or deleted since are
active again, key rotations and SCIM changes since are lost; see "Restoring
an older backup" in docs/operations.md). Audit events written afterwards
are numbered after every number the bbolt file replaced had handed out, so
that audit --follow and --after miss none; if that file cannot be read, it
says so, and followers start again with --since.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			defer interruptible(c)()
			raw, _ := c.Flags().GetString("store")
			if c.Flags().Changed("store") && (c.Flags().Changed("address") || c.Flags().Changed("config")) {
				return errors.New("--address and --config name a running Caddy, which restore does not write through: it restores offline into the store --store names; omit them")
			}
			if raw == "" {
				if err := refuseRunning(c, args[0]); err != nil {
					return err
				}
				raw = caddymodule.DefaultStorePath()
			}
			dst, err := parseStore(c.ErrOrStderr(), "--store", raw)
			if err != nil {
				return err
			}
			force, _ := c.Flags().GetBool("force")
			// Said once the backup has checked out, before the target changes.
			starting := func() {
				if force {
					fmt.Fprintf(c.ErrOrStderr(), "replacing everything in %s with %s\n", dst, args[0])
				}
			}
			res, err := restore(c.Context(), args[0], dst, force, starting, progressTo(c), c.ErrOrStderr())
			if err != nil {
				return stopped(c.Context(), fmt.Errorf("restoring %s into %s: %w", args[0], dst, hint(err)))
			}
			now := time.Now()
			if asJSON(c) {
				err = printJSON(c, map[string]any{"store": dst.String(), "counts": res.counts, "backup_taken": res.taken})
			} else {
				fmt.Fprintf(c.OutOrStdout(), "%s restored from %s (%s); start Caddy to use it\n%s\n",
					dst, args[0], describe(res.counts), res.takenLine(now))
			}
			// The warnings go to stderr, also with --json: a script's
			// operator still sees them.
			warnRestored(c.ErrOrStderr(), res, now)
			return err
		},
	}
	cmd.Flags().Bool("force", false, "Replace everything a PostgreSQL store holds with the backup")
	return cmd
}

func migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate --from <store> --to <store>",
		Short: "Copies a whole store to another backend (offline)",
		Long: `Copies everything in one store to another: users, groups, tombstones,
sessions with their sealed tokens, single-use IDs, keys and the audit trail
(its sequence numbers kept). Stores are written bolt:PATH or postgres:DSN; a
DSN is best a placeholder resolved from this command's environment, as in the
Caddyfile, so that its password is not in the command line, where other local
users can read it (or leave the password out, for PGPASSWORD or ~/.pgpass).
Neither may be in use by a running Caddy: a bbolt file one holds is refused,
and so is a PostgreSQL database while instances' listener connections show
on it (pg_stat_activity, as far as the role may see it): what they write
during the copy would not be in it. The target must be empty unless
--force is given, which replaces everything it holds, as restore --force
does (a bbolt target is built beside the old file, given its owner, and
renamed into place, as restore does). Another restore or migrate into a
bbolt target's directory meanwhile is refused.
The target is read back afterwards: it must hold as many records of each kind
as were copied, and the source's keys; a difference is an error.

  caddy sso migrate --from bolt:/var/lib/caddy/sso.db --to 'postgres:{env.SSO_DATABASE_URL}'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			defer interruptible(c)()
			fromRaw, _ := c.Flags().GetString("from")
			toRaw, _ := c.Flags().GetString("to")
			from, err := parseStore(c.ErrOrStderr(), "--from", fromRaw)
			if err != nil {
				return err
			}
			to, err := parseStore(c.ErrOrStderr(), "--to", toRaw)
			if err != nil {
				return err
			}
			force, _ := c.Flags().GetBool("force")
			ctx := c.Context()
			if from.Backend == backend.Bolt && to.Backend == backend.Bolt && samePath(from.Path, to.Path) {
				return errors.New("--from and --to are the same store")
			}
			src, err := openSourceOffline(ctx, from)
			if err != nil {
				return err
			}
			defer src.Close()
			opt := portable.ImportOptions{Force: force, Progress: progressTo(c)}
			var rep portable.Report
			switch {
			case to.Backend == backend.Bolt && force:
				// Build a new file and swap it in, as restore does.
				opt.Force, opt.Scratch = false, true
				var old oldStore
				old, err = replaceBoltFile(ctx, to.Path, "migrate", c.ErrOrStderr(), func(dst store.Store) error {
					var err error
					rep, err = portable.Migrate(ctx, src, dst, opt)
					return err
				}, func(dst store.Store, old oldStore) error {
					return recordReplaced(ctx, dst, account.EventStoreMigrated, migratedDetail(from), old)
				})
				if err == nil && old.unreadable {
					defer warnAuditNumbering(c.ErrOrStderr(), to.Path, time.Now()) // after the result
				}
			default:
				if to.Backend == backend.Bolt {
					// The lock restore takes (lockStoreDir): a restore or
					// another migrate into the directory meanwhile would
					// write the same store, or rename another over it.
					var unlock func()
					if _, _, unlock, err = lockStoreDir(to.Path, c.ErrOrStderr()); err != nil {
						break
					}
					defer unlock()
				}
				if force {
					// Said once the source has checked out, as restore's.
					opt.Starting = func() { fmt.Fprintf(c.ErrOrStderr(), "replacing everything in %s with %s\n", to, from) }
				}
				var dst store.Store
				to.Importing = true // a rerun finishes what an interrupted one began
				if dst, err = openTargetOffline(ctx, to); err != nil {
					return err
				}
				defer dst.Close()
				// The event commits with the copy's end, as restore's does.
				opt.Finish = replacedEvent(account.EventStoreMigrated, migratedDetail(from), oldStore{unreadable: true})
				rep, err = portable.Migrate(ctx, src, dst, opt)
			}
			if err != nil {
				return stopped(ctx, fmt.Errorf("migrating %s to %s: %w", from, to, hint(err)))
			}
			if asJSON(c) {
				return printJSON(c, migrateResult{Copied: rep.Copied, Source: countsOf(rep.Source), Target: countsOf(rep.Target)})
			}
			fmt.Fprintf(c.OutOrStdout(), "copied %s from %s to %s; counts match, and the keys are the source's\n", describe(rep.Copied), from, to)
			return nil
		},
	}
	cmd.Flags().String("from", "", "The store to copy (bolt:PATH, 'postgres:{env.VAR}' or postgres:DSN)")
	cmd.Flags().String("to", "", "The store to fill (bolt:PATH, 'postgres:{env.VAR}' or postgres:DSN)")
	cmd.Flags().Bool("force", false, "Replace everything the target store holds with the source")
	return cmd
}

// migrateResult is what `migrate --json` prints: portable.Report in the
// snake_case names of every other command's JSON.
type migrateResult struct {
	Copied portable.Counts `json:"copied"`
	Source recordCounts    `json:"source"`
	Target recordCounts    `json:"target"`
}

// recordCounts is store.Counts as JSON. store.Counts keeps its Go names:
// backups hold it so (portable's header), and older backups must read.
type recordCounts struct {
	Users       int `json:"users"`
	Groups      int `json:"groups"`
	Sessions    int `json:"sessions"`
	Tombstones  int `json:"tombstones"`
	AuditEvents int `json:"audit_events"`
}

func countsOf(c store.Counts) recordCounts {
	return recordCounts{Users: c.Users, Groups: c.Groups, Sessions: c.Sessions, Tombstones: c.Tombstones, AuditEvents: c.AuditEvents}
}

// progressTo reports a long copy's progress on c's error stream, so that
// --json output stays clean.
func progressTo(c *cobra.Command) portable.Progress {
	return func(kind string, done int) {
		fmt.Fprintf(c.ErrOrStderr(), "  %s: %d\n", kind, done)
	}
}

// interruptible makes SIGINT (Ctrl-C) and SIGTERM cancel c's context
// instead of ending the process at once, for the commands that write
// temporary files holding every key of the store (backup, restore,
// migrate): the command then stops at its next step and its deferred
// cleanup removes them. The admin API's requests end with the context too
// (adminClient). After the first signal, a second one ends the process as
// usual, should the cleanup hang. The returned func stops the handling.
func interruptible(c *cobra.Command) (stop func()) {
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	c.SetContext(ctx)
	return stop
}

// stopped adds to the error of a command interrupted by a signal which
// one it was: "context canceled" alone reads like a fault.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	return fmt.Errorf("%w (stopped: %v)", err, context.Cause(ctx))
}

func describe(c portable.Counts) string {
	return fmt.Sprintf("%d users, %d groups, %d sessions, %d tombstones, %d audit events, %d keys",
		c.Users, c.Groups, c.Sessions, c.Tombstones, c.AuditEvents, c.Secrets)
}

// hint adds to a restore's or migration's error what to do next.
func hint(err error) error {
	switch {
	case errors.Is(err, portable.ErrPartial):
		return fmt.Errorf("%w\n(the target is incomplete, and marked so: Caddy and the other commands refuse it until the same command, "+
			"run again with --force, has emptied it and started over)", err)
	case errors.Is(err, portable.ErrNotEmpty):
		return fmt.Errorf("%w\n(--force replaces everything in it with the source)", err)
	case errors.Is(err, portable.ErrSecretConflict):
		return fmt.Errorf("%w\n(is an instance running on the target? stop it and run the same command again with --force)", err)
	}
	return err
}

// samePath reports whether two paths name the same file.
func samePath(a, b string) bool {
	if ia, err := os.Stat(a); err == nil {
		if ib, err := os.Stat(b); err == nil {
			return os.SameFile(ia, ib)
		}
	}
	aa, errA := filepath.Abs(a)
	ab, errB := filepath.Abs(b)
	return errA == nil && errB == nil && aa == ab
}

// backupProgressEvery is how often, in bytes written, a backup reports
// its progress: a large store takes minutes.
const backupProgressEvery = 4 << 20

// progressWriter passes writes on to w and calls report with the bytes
// written so far each time another every bytes have gone through. Once
// ctx (when set) is done, it refuses writes: an offline backup reads the
// store in one transaction that does not look at the context, and is
// stopped so, by Ctrl-C (interruptible), at its next write.
type progressWriter struct {
	w      io.Writer
	ctx    context.Context
	every  int64
	n      int64
	report func(written int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if p.ctx != nil && p.ctx.Err() != nil {
		return 0, p.ctx.Err()
	}
	n, err := p.w.Write(b)
	before := p.n
	p.n += int64(n)
	if p.report != nil && p.n/p.every > before/p.every {
		p.report(p.n)
	}
	return n, err
}

// checkBackupTarget refuses, before anything is asked of the store, a
// backup target that is not a file the backup can be renamed onto: "-",
// which reads as standard output (the backup is only ever a file, read
// back before it gets its name, so that what it hands on is checked), and
// an existing name that is not a regular file. A device or pipe would be
// replaced by the file, not written to (and as root, /dev/stdout's link
// would be), a symbolic link replaced instead of the file it names.
func checkBackupTarget(path string) error {
	if path == "-" {
		return errors.New(`refusing to write the backup to "-": it is written to a file, read back and only then given its name, ` +
			`never to standard output; name a file (./- for one called "-")`)
	}
	info, err := os.Lstat(path)
	if err != nil || info.Mode().IsRegular() {
		return nil // a new name; or one the temporary file's creation or the rename reports on
	}
	what := "not a regular file"
	switch m := info.Mode(); {
	case m&os.ModeSymlink != 0:
		what = "a symbolic link"
		if to, err := filepath.EvalSymlinks(path); err == nil {
			what += " to " + to
		}
		what += ", which the backup would replace, not write through"
	case m.IsDir():
		what = "a directory"
	case m&(os.ModeDevice|os.ModeCharDevice) != 0:
		what = "a device"
	case m&os.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&os.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("refusing to write the backup to %s: it is %s; a backup is written beside its name and renamed onto it, so name a regular file or a new one", path, what)
}

// writeBackup writes the backup to a temporary file beside path, reads it
// back in full, and renames it into place.
func writeBackup(ctx context.Context, cl client, path string, progress func(written int64)) (int64, portable.Counts, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, portable.Counts{}, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		return 0, portable.Counts{}, err
	}
	n, err := cl.Backup(ctx, &progressWriter{w: tmp, ctx: ctx, every: backupProgressEvery, report: progress})
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	var counts portable.Counts
	if err == nil {
		if counts, err = portable.Verify(tmp); err != nil {
			err = fmt.Errorf("the backup does not read back: %w", err)
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err() // stopped (interruptible) after the last write: no file
	}
	if err != nil {
		return n, counts, err
	}
	return n, counts, renameDurably(tmp.Name(), path)
}

// renameDurably renames from to to and syncs their directory (syncDirOf).
func renameDurably(from, to string) error {
	if err := os.Rename(from, to); err != nil { //nolint:gosec // G703: the operator's own file, and its temporary sibling
		return err
	}
	syncDirOf(to)
	return nil
}

// syncDirOf syncs the directory that holds path, once a file was created
// or renamed there: the name is written in the directory, which the
// file's own fsync does not cover, so without it a power cut after
// "backup written" or "wrote the SP key pair" could leave no file of that
// name, or the one it replaced. A file system that cannot sync a
// directory is left to its own guarantees.
func syncDirOf(path string) {
	if dir, err := os.Open(filepath.Dir(path)); err == nil { //nolint:gosec // G703: the directory of the operator's own file
		_ = dir.Sync()
		_ = dir.Close()
	}
}

// boltMagic is the magic number a bbolt file keeps in its meta page's
// header (little-endian 0xED0CDAED), to accept a bbolt file as a backup.
const boltMagic = "\xed\xda\x0c\xed"

// isBoltFile reports whether path is a bbolt file rather than a portable
// backup (gzip).
func isBoltFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 32)
	n, _ := io.ReadFull(f, head)
	return bytes.Contains(head[:n], []byte(boltMagic))
}

// restored is what a restore did, for its output.
type restored struct {
	counts portable.Counts
	// taken is when the backup was taken: its header's Created, or the
	// modification time of a bbolt file (fileTime), which has no header.
	taken    time.Time
	fileTime bool
	// path is the bbolt file replaced; unreadable, whether the file there
	// could not be read (oldStore).
	path       string
	unreadable bool
}

// takenLine says when the backup was taken, and how long before now.
func (r restored) takenLine(now time.Time) string {
	what := "backup taken"
	switch {
	case r.taken.IsZero():
		return "the backup does not say when it was taken"
	case r.fileTime:
		what = "backup file last modified"
	}
	return fmt.Sprintf("%s %s (%s)", what, utcTime(r.taken), age(now.Sub(r.taken)))
}

// warnRestored tells the operator what a restore undid: everything since
// the backup was taken, which nothing redoes by itself (leavers active
// again, keys rotated since back, SCIM's changes gone; docs/operations.md,
// "Restoring an older backup"), and, when the bbolt file replaced could
// not be read, that audit numbers may repeat.
func warnRestored(w io.Writer, r restored, now time.Time) {
	when := ""
	if !r.taken.IsZero() {
		when = " (" + utcTime(r.taken) + ")"
	}
	fmt.Fprintf(w, "warning: every change since the backup%s is undone: users disabled or deleted since are active again, with their sessions; "+
		"key rotations and SCIM changes since are lost. See \"Restoring an older backup\" in docs/operations.md\n", when)
	if r.unreadable {
		warnAuditNumbering(w, r.path, now)
	}
}

// warnAuditNumbering says that the bbolt file replaced at path could not
// be read, so the new one may hand out audit numbers it had handed out:
// whoever reads the trail after a number (audit --follow, a poller using
// --after) must start again from a time.
func warnAuditNumbering(w io.Writer, path string, now time.Time) {
	fmt.Fprintf(w, "warning: the store replaced at %s could not be read, so new audit events may get numbers its events had: "+
		"restart audit followers (audit --follow, or polling with --after) with --since %s\n",
		path, now.UTC().Format(time.RFC3339))
}

// utcTime writes t as restore prints the backup's time.
func utcTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// age writes d, rounded down, in days, hours and minutes: "1 day 3h ago".
func age(d time.Duration) string {
	if d < 0 {
		return "in the future by " + strings.TrimSuffix(age(-d), " ago") + ": is this machine's clock right?"
	}
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days > 0:
		unit := "days"
		if days == 1 {
			unit = "day"
		}
		return fmt.Sprintf("%d %s %dh ago", days, unit, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm ago", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm ago", mins)
	}
	return "less than a minute ago"
}

// restore imports the backup at src into dst; it calls starting once the
// backup has checked out, before it writes to a PostgreSQL target
// (ImportOptions.Starting), and writes warnings to warn.
func restore(ctx context.Context, src string, dst backend.Spec, force bool, starting func(), progress portable.Progress, warn io.Writer) (restored, error) {
	if dst.Backend == backend.Bolt && samePath(src, dst.Path) {
		// Open as the backup, it would hold the lock readOldStore asks
		// for, and be refused as in use by another process.
		return restored{}, fmt.Errorf("the backup %s is the store itself: restore a backup of it (caddy sso backup), or a copy of the file", src)
	}
	load, res, err := backupSource(ctx, src)
	if err != nil {
		return res, err
	}
	if dst.Backend != backend.Bolt {
		dst.Importing = true // a rerun finishes what an interrupted one began
		st, err := openTargetOffline(ctx, dst)
		if err != nil {
			return res, err
		}
		defer st.Close()
		// The event commits with the import's end (ImportOptions.Finish):
		// a restore reported failed is one the database does not hold as
		// finished. The highest number the database had handed out is not
		// read: its sequence goes on past it, so the numbers show the gap.
		res.counts, err = load(st, portable.ImportOptions{Force: force, Progress: progress, Starting: starting,
			Finish: replacedEvent(account.EventStoreRestored, res.detail(), oldStore{unreadable: true})})
		return res, err
	}
	// A bbolt target: build the new store beside the old one, and swap.
	old, err := replaceBoltFile(ctx, dst.Path, "restore", warn, func(st store.Store) error {
		var err error
		res.counts, err = load(st, portable.ImportOptions{Progress: progress, Scratch: true})
		return err
	}, func(st store.Store, old oldStore) error {
		return recordReplaced(ctx, st, account.EventStoreRestored, res.detail(), old)
	})
	res.path, res.unreadable = dst.Path, old.unreadable
	return res, err
}

// errReplaceRunning is lockDir's answer while another process holds the
// directory: a restore or migrate writing a store there (lockStoreDir).
var errReplaceRunning = errors.New("another restore or migrate into a store in its directory is running")

// lockStoreDir creates the directory of the bbolt store at path (makeDirs)
// and takes its lock (lockDir), for each command that writes a store
// there: restore, and migrate with or without --force. Two at once would
// each write it: two replacements each rename a complete store into place
// and the first, reported done, is lost; a migrate into a new file fills
// one that a replacement then renames over, or two migrates fill one file
// (docs/operations.md, "Restore"). Under the lock, it removes what a killed
// run left (removeLeftovers) and names what older versions may have left
// (warnOlderLeftovers). It returns path with symbolic links resolved, the
// directories it created, and unlock; when the lock cannot be taken for
// another reason than a run holding it, it warns and goes on.
func lockStoreDir(path string, warn io.Writer) (resolved string, made []string, unlock func(), err error) {
	// A store path that is a symbolic link (the store on a volume) names
	// the file it points to: renamed onto the link, the new store would
	// replace the link and leave the old store where Caddy may still look.
	resolved = path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		resolved = r
	}
	dir, base := filepath.Dir(resolved), filepath.Base(resolved)
	if made, err = makeDirs(dir); err != nil {
		return resolved, nil, nil, err
	}
	unlock, err = lockDir(dir)
	switch {
	case errors.Is(err, errReplaceRunning):
		return resolved, made, nil, fmt.Errorf("refusing to write %s: %w (it holds the lock on %s); let it finish", resolved, err, dir)
	case err != nil:
		fmt.Fprintf(warn, "warning: cannot lock %s (%v): a restore or migrate into it at the same time would not be refused\n", dir, err)
		return resolved, made, func() {}, nil
	}
	removeLeftovers(dir, base)
	// Older versions built beside the path as given, not where its link led.
	warnOlderLeftovers(warn, resolved)
	if resolved != path {
		warnOlderLeftovers(warn, path)
	}
	return resolved, made, unlock, nil
}

// replaceBoltFile builds a new bbolt store beside path with fill, and
// renames it into place: the store at path is either the old one or the
// complete new one. It refuses while a running Caddy holds path, checked
// before and again right before the swap, and while another restore or
// migrate into the directory runs (lockStoreDir). The new store is created
// in a directory of its own that this run makes (0700, a name no one can
// guess, op in it), never in a file that may be there already: in a
// directory other users can write to, that file could be one of theirs,
// and would receive every key of the store. It gets the owner of the file
// it replaces (keepOwner). The new store numbers its audit events after
// every number the old one handed out (bolt.DB.NumberAuditAfter); it
// returns what it read of the old one. record, called after the numbering
// is set and before the swap, writes the event that says the store was
// replaced (recordReplaced), so the swapped-in file never lacks it.
func replaceBoltFile(ctx context.Context, path, op string, warn io.Writer, fill func(st store.Store) error, record func(st store.Store, old oldStore) error) (oldStore, error) {
	path, made, unlock, err := lockStoreDir(path, warn)
	if err != nil {
		return oldStore{}, err
	}
	defer unlock()
	dir, base := filepath.Dir(path), filepath.Base(path)
	old, err := readOldStore(ctx, path)
	if err != nil {
		return old, err
	}
	// Until the rename, the new store is built in a directory that is
	// removed with it: what fails then (a bad record, Ctrl-C) changed
	// nothing at path, which is what the operator needs to hear, not that
	// a target is half written (the new store's portable.ErrPartial, which
	// ImportOptions.Scratch keeps out).
	unchanged := func(err error) error {
		return fmt.Errorf("%w; nothing was replaced: %s is as it was", err, path)
	}
	tmpDir, err := os.MkdirTemp(dir, "."+base+"."+op+"-")
	if err != nil {
		return old, unchanged(err)
	}
	defer os.RemoveAll(tmpDir)
	tmpPath := filepath.Join(tmpDir, base)
	st, err := backend.Open(ctx, backend.Spec{Backend: backend.Bolt, Path: tmpPath}, nil)
	if err != nil {
		return old, unchanged(err)
	}
	err = fill(st)
	if err == nil {
		// Check again right before the swap: Caddy may have started
		// meanwhile (and numbered events).
		var again oldStore
		if again, err = readOldStore(ctx, path); err == nil {
			old.auditSeq, old.unreadable = max(old.auditSeq, again.auditSeq), old.unreadable || again.unreadable
			err = st.(*bolt.DB).NumberAuditAfter(ctx, old.auditSeq)
		}
		if err == nil {
			err = record(st, old)
		}
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return old, unchanged(err)
	}
	ownerErr := keepOwner(tmpPath, path, made)
	if err := renameDurably(tmpPath, path); err != nil {
		return old, unchanged(err)
	}
	if ownerErr != nil {
		fmt.Fprintf(warn, "warning: %v\n", ownerErr)
	}
	return old, nil
}

// makeDirs creates dir and its missing parents (0700, as bolt.Open does
// for a store's directory) and syncs the directory that holds each name it
// created, as bolt.Open does: replaceBoltFile creates the store in a
// directory of its own, so bolt.Open only sees that one. It returns the
// directories it created, deepest first.
func makeDirs(dir string) ([]string, error) {
	var made []string
	for d := dir; ; {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			break
		}
		made = append(made, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if len(made) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, d := range made {
		syncDirOf(d)
	}
	return made, nil
}

// removeLeftovers removes the directories replaceBoltFile made for the
// store dir/base that a run killed before its cleanup (SIGKILL, a power
// cut) left, holding a partial store with its keys. Only this user's are
// touched, and only under the lock, when no run can be using them.
func removeLeftovers(dir, base string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || (!strings.HasPrefix(name, "."+base+".restore-") && !strings.HasPrefix(name, "."+base+".migrate-")) {
			continue
		}
		if info, err := e.Info(); err == nil {
			if uid, _, ok := ownerOf(info); ok && uid == os.Geteuid() {
				_ = os.RemoveAll(filepath.Join(dir, name))
			}
		}
	}
}

// warnOlderLeftovers names, in one line, the files beside the store at
// path at the names under which versions before the private build
// directory built a new store: .<name>.restore and .<name>.migrate, and
// before those .<name>.restore<digits> (os.CreateTemp). A run of theirs
// stopped part-way (killed, or Ctrl-C, which then ended it at once) left
// one there, holding every key of the store, and nothing removes it since.
// They are named, not removed: nothing in such a file tells it from one the
// operator keeps at that name (a copy of the store named
// .sso.db.restore20261201), and docs/operations.md ("Restore") leaves them
// to the operator.
func warnOlderLeftovers(w io.Writer, path string) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var found []string
	for _, e := range entries {
		name := e.Name()
		digits, ok := strings.CutPrefix(name, "."+base+".restore")
		if name == "."+base+".migrate" || ok && len(digits) <= 10 && strings.Trim(digits, "0123456789") == "" {
			found = append(found, name)
		}
	}
	if len(found) > 0 {
		fmt.Fprintf(w, "warning: %s holds %s: older versions built a new store under such a name and left it there, with every key of the store, "+
			"when stopped part-way; it is left in place, as it may be a file of yours: if it is not, remove it\n", dir, strings.Join(found, ", "))
	}
}

// keepOwner gives the new store at tmp the owner and group of the file at
// path that it replaces, and its group's read and write bits (a Caddy that
// opens the store through its group), never others'; with no file there,
// the owner and group of the directory above the ones makeDirs created
// (made), which get them too. A restore run as root (sudo) would otherwise
// leave a store of root's, mode 0600, which Caddy, running as its own
// user, cannot open (docs/operations.md, "Restore"). Only root can give a
// file away: when the change fails, the error says whom to chown it to.
func keepOwner(tmp, path string, made []string) error {
	like := path
	oldInfo, err := os.Stat(path)
	if err != nil {
		like = filepath.Dir(path) // nothing replaced: the store's directory
		if len(made) > 0 {
			like = filepath.Dir(made[len(made)-1])
		}
		if oldInfo, err = os.Stat(like); err != nil {
			return nil
		}
	} else if group := oldInfo.Mode().Perm() & 0o060; group != 0 {
		if err := os.Chmod(tmp, 0o600|group); err != nil {
			return err
		}
	}
	newInfo, err := os.Stat(tmp)
	if err != nil {
		return nil // the rename reports on it
	}
	uid, gid, ok := ownerOf(oldInfo)
	newUID, newGID, newOK := ownerOf(newInfo)
	if !ok || !newOK || (uid == newUID && gid == newGID) {
		return nil
	}
	for _, d := range made {
		_ = os.Lchown(d, uid, gid) // as the file's: the error below says what to do
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		if pe := (*os.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err // the temporary name says nothing
		}
		whose, chown := "the one it replaced", path
		if like != path {
			whose = like
			if len(made) > 0 {
				whose, chown = like+", above the directories it made", "-R "+made[len(made)-1]
			}
		}
		return fmt.Errorf("the new store %s is owned by %s, not by %s as %s (%v): Caddy running as that user "+
			"cannot open it; run chown %d:%d %s before starting Caddy, or restore as that user", path, userName(newUID), userName(uid), whose, err, uid, gid, chown)
	}
	return nil
}

// userName names a user id: "uid 1 (daemon)".
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return "uid " + id + " (" + u.Username + ")"
	}
	return "uid " + id
}

// backupSource checks the backup at path and returns what loads it into a
// store, an Import of a portable backup or a Migrate from a bbolt file,
// and when the backup was taken.
func backupSource(ctx context.Context, path string) (func(st store.Store, opt portable.ImportOptions) (portable.Counts, error), restored, error) {
	if isBoltFile(path) {
		info, err := os.Stat(path)
		if err != nil {
			return nil, restored{}, err
		}
		src, err := openOfflineSpec(ctx, backend.Spec{Backend: backend.Bolt, Path: path, ReadOnly: true})
		if err != nil {
			return nil, restored{}, fmt.Errorf("%s is not a usable store backup: %w", path, err)
		}
		return func(st store.Store, opt portable.ImportOptions) (portable.Counts, error) {
			defer src.Close()
			rep, err := portable.Migrate(ctx, src, st, opt)
			return rep.Copied, err
		}, restored{taken: info.ModTime(), fileTime: true}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, restored{}, err
	}
	head, _, err := portable.Inspect(f)
	_ = f.Close()
	if err != nil {
		return nil, restored{}, fmt.Errorf("%s is not a usable store backup: %w", path, err)
	}
	return func(st store.Store, opt portable.ImportOptions) (portable.Counts, error) {
		f, err := os.Open(path)
		if err != nil {
			return portable.Counts{}, err
		}
		defer f.Close()
		return portable.Import(ctx, st, f, opt)
	}, restored{taken: head.Created}, nil
}

// recordReplaced appends to st, once the import into it has committed, the
// event of typ (account.EventStoreRestored, EventStoreMigrated) that says
// its content and audit trail were replaced offline: without it the trail
// would read as if the events the replaced store wrote since (a leaver's
// deactivation) never happened. detail gets via=offline and, when old's
// numbering is known, last_seq_before, the highest number the replaced
// store had handed out.
func recordReplaced(ctx context.Context, st store.Store, typ string, detail map[string]string, old oldStore) error {
	return st.Update(ctx, replacedEvent(typ, detail, old)) // the error says which event
}

// replacedEvent writes recordReplaced's event in a transaction of the
// caller's: a PostgreSQL target's import writes it in its last one
// (portable.ImportOptions.Finish), so that the import and its event commit
// together, as a bbolt target's do in the file renamed into place.
func replacedEvent(typ string, detail map[string]string, old oldStore) func(tx store.Tx) error {
	detail["via"] = account.ViaOffline
	if !old.unreadable && old.auditSeq > 0 {
		detail["last_seq_before"] = strconv.FormatUint(old.auditSeq, 10)
	}
	ev := store.Event{Type: typ, Reason: account.ByAdmin, Detail: detail}
	return func(tx store.Tx) error {
		if err := tx.Audit(ev); err != nil {
			return fmt.Errorf("record the %s event: %w", typ, err)
		}
		return nil
	}
}

// detail is the start of a store.restored event's detail: when the backup
// was taken, if it says so (a bbolt file's modification time is not the
// backup's own word, and is left out).
func (r restored) detail() map[string]string {
	d := map[string]string{}
	if !r.taken.IsZero() && !r.fileTime {
		d["backup_taken"] = r.taken.UTC().Format(time.RFC3339)
	}
	return d
}

// migratedDetail is the start of a store.migrated event's detail: the
// source's kind (bolt, postgres), never its path or DSN.
func migratedDetail(from backend.Spec) map[string]string {
	return map[string]string{"from": from.Backend}
}

// oldStore is what replaceBoltFile read of the bbolt file it replaces.
type oldStore struct {
	auditSeq uint64 // the last audit number it handed out (bolt.DB.AuditSeq)
	// unreadable: a file at the path could not be read (damaged, the
	// usual reason to restore; an older schema), so the audit numbers it
	// handed out are unknown.
	unreadable bool
}

// readOldStore fails when another process holds the bbolt store at path
// (a running Caddy, whatever its admin address, or a command given
// --store), and otherwise reads the audit numbering of the store there, if
// any. Renamed over, the file would stay open in that process: a Caddy
// would write on into the replaced file, and lose it all when it stops.
func readOldStore(ctx context.Context, path string) (oldStore, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return oldStore{}, nil
	}
	// Said without the admin API's advice: a store is replaced offline only.
	inUse := fmt.Errorf("refusing to replace %s: it is in use by a running Caddy, and restore and migrate work offline only: "+
		"stop that Caddy (its service, or caddy stop with the --address or --config of its admin endpoint), or let the caddy sso "+
		"command given --store %s end, whichever holds it, then run the same command again", path, path)
	// The read-only open below shares a reader's lock: ask for a writer's.
	if held, _ := fileLockHeld(path, offlineLockTimeout); held {
		return oldStore{}, inUse
	}
	// Importing: a store an interrupted migration marked still numbered
	// its events.
	st, err := openOfflineSpec(ctx, backend.Spec{Backend: backend.Bolt, Path: path, ReadOnly: true, Importing: true})
	if errors.Is(err, errStoreInUse) {
		return oldStore{}, inUse
	}
	if err != nil {
		// A damaged store is no reason to refuse its replacement.
		return oldStore{unreadable: true}, nil
	}
	defer st.Close()
	seq, err := st.(*bolt.DB).AuditSeq(ctx)
	return oldStore{auditSeq: seq, unreadable: err != nil}, nil
}
