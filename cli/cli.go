// Package cli is the `caddy sso` command: users, sessions, the audit trail,
// store backups, and `caddy sso check`. It registers itself with Caddy's
// command line on import (the root package caddysso imports it, so
// `xcaddy build --with github.com/caddy-sso/caddy-sso` has it).
//
// The commands talk to a running Caddy's admin API (package adminapi) or,
// with --store, open a stopped instance's store file and run the same
// account operations themselves (package account), so both ways follow
// one set of rules. docs/operations.md is the operator's guide.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/backend"
	"github.com/caddy-sso/caddy-sso/store/bolt"
	"github.com/caddy-sso/caddy-sso/store/portable"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sso",
		Usage: "users|sessions|tombstones|audit|backup|restore|migrate|check|saml-key|keys ...",
		Short: "Manages caddy-sso users, sessions, audit trail and store backups",
		Long: `
Manages the users, sessions and audit trail of caddy-sso, backs up or
restores its store, and checks the identity providers of a config.

By default it talks to a running Caddy's admin endpoint (--address, or the
admin address of --config, or Caddy's default); a request the endpoint
leaves unanswered, or stops answering, for --timeout (30s) fails. With
--store it opens a
stopped instance's store file directly instead; Caddy must not be running
on that file. A PostgreSQL store is best given as a placeholder, which this
command resolves from its own environment, so that the connection string
(and its password) is not in the command line for other local users to see:

  --store 'postgres:{env.SSO_DATABASE_URL}'

(quoted so the shell leaves it), or without a password in it, which then
comes from PGPASSWORD or ~/.pgpass.

Output is a readable table; --json prints machine-readable JSON, and on a
failure one line {"error": "...", "status": N} on stdout (status: the admin
API's HTTP status, when it answered), besides the message on stderr and the
non-zero exit.`,
		CobraFunc: configure,
	})
}

// NewCommand returns a fresh `sso` command tree, as `caddy sso` runs it.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "sso"}
	configure(cmd)
	return cmd
}

// offlineLockTimeout is how long offline mode waits for the store's lock
// before concluding that a running Caddy holds it.
const offlineLockTimeout = 500 * time.Millisecond

// errStoreInUse is what offline mode says when Caddy holds the store.
var errStoreInUse = errors.New("the store is in use by a running Caddy; use the admin API (omit --store) or stop Caddy")

func configure(cmd *cobra.Command) {
	cmd.Args = cobra.NoArgs
	cmd.SilenceUsage = true
	pf := cmd.PersistentFlags()
	pf.String("address", "", "The address of Caddy's admin endpoint, if not the default")
	pf.StringP("config", "c", "", "Configuration file to read the admin address from, if --address is not used")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply (when --config is used)")
	pf.String("store", "", "Use this store of a stopped Caddy (bolt:PATH, 'postgres:{env.VAR}', postgres:DSN, or a file) instead of the admin API")
	pf.Bool("json", false, `Print JSON instead of tables (and {"error": ..., "status": ...} on a failure)`)
	pf.Duration("timeout", defaultAdminTimeout, "How long to wait for Caddy's admin endpoint to answer, and, while its answer streams, for more of it")
	cmd.AddCommand(usersCommand(), sessionsCommand(), tombstonesCommand(), auditCommand(), backupCommand(), restoreCommand(), migrateCommand(), checkCommand(), samlKeyCommand(), keysCommand())
	jsonErrors(cmd)
}

// jsonErrors makes every command of the tree, with --json, print its error
// as JSON on stdout too: a script that reads stdout then learns why there
// is no result instead of reading nothing. Both the arguments' check and
// the run are covered; the error still goes to stderr and the exit code.
func jsonErrors(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		jsonErrors(sub)
	}
	report := func(c *cobra.Command, err error) error {
		if err != nil && asJSON(c) {
			printJSONError(c, err)
		}
		return err
	}
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error { return report(c, args(c, a)) }
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, a []string) error { return report(c, run(c, a)) }
	}
}

// jsonError is what --json prints for a failure.
type jsonError struct {
	Error string `json:"error"`
	// Status is the admin API's HTTP status, when it answered.
	Status int `json:"status,omitempty"`
}

// printJSONError prints err as one line of JSON, so that it also ends a
// stream of JSON Lines (audit --json) readably.
func printJSONError(c *cobra.Command, err error) {
	je := jsonError{Error: err.Error()}
	if ae := (*apiStatusError)(nil); errors.As(err, &ae) {
		je.Status = ae.status
	}
	b, mErr := json.Marshal(je)
	if mErr != nil {
		return // a struct of a string and an int always marshals
	}
	fmt.Fprintf(c.OutOrStdout(), "%s\n", b)
}

// countFlag reads a count flag (--limit, --sessions): its default when not
// given, else at least 1, by the admin API's rule (adminapi.CheckCount).
func countFlag(c *cobra.Command, name string) (int, error) {
	n, err := c.Flags().GetInt(name)
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", name, err)
	}
	if !c.Flags().Changed(name) {
		return n, nil
	}
	if err := adminapi.CheckCount("--"+name, n); err != nil {
		return 0, err
	}
	return n, nil
}

func asJSON(c *cobra.Command) bool {
	v, _ := c.Flags().GetBool("json")
	return v
}

func printJSON(c *cobra.Command, v any) error {
	enc := json.NewEncoder(c.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// client is what the subcommands need, over the admin API
// (*adminapi.Client) or a store file (offline).
type client interface {
	ListUsers(ctx context.Context, query, after string, limit int) (*account.UsersPage, error)
	User(ctx context.Context, id, after string, limit int) (*account.UserDetail, error)
	Deactivate(ctx context.Context, id string) (*store.User, error)
	Activate(ctx context.Context, id string) (*store.User, error)
	Delete(ctx context.Context, id string) error
	EndSessions(ctx context.Context, id string) (int, error)
	Audit(ctx context.Context, q store.AuditQuery) (*account.AuditPage, error)
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// withClient runs fn against the admin API, or with --store against the
// store file (read-only when readOnly). Messages name the store by
// backend.Spec.String, never by the flag's value: it may be a DSN holding
// a password.
func withClient(c *cobra.Command, readOnly bool, fn func(client) error) error {
	raw, _ := c.Flags().GetString("store")
	if raw == "" {
		api, err := adminClient(c)
		if err != nil {
			return err
		}
		return fn(api)
	}
	spec, err := parseStore(c.ErrOrStderr(), "--store", raw)
	if err != nil {
		return err
	}
	spec.ReadOnly = readOnly
	db, err := openExistingOffline(c.Context(), spec)
	if err != nil {
		return err
	}
	defer db.Close()
	// No config is read offline, so which IdPs SCIM manages is not known:
	// account.Service.SCIMManaged's nil case. A PostgreSQL store may be in
	// use by running instances: a session Manager over it tells them what
	// ended (store.Broadcaster), so that they drop their cached sessions
	// at once instead of after the cache TTL. Over bbolt it tells no one.
	// Via: the trail tells these writes from the admin API's.
	acc := &account.Service{Store: db, Cache: session.New(db, session.Config{}, nil, nil), Via: account.ViaOffline}
	return fn(&offline{acc: acc, db: db, warn: c.ErrOrStderr()})
}

// openOfflineSpec opens a store outside Caddy, failing fast and clearly
// when a running Caddy holds a bbolt file.
func openOfflineSpec(ctx context.Context, spec backend.Spec) (store.Store, error) {
	spec.LockTimeout = offlineLockTimeout
	st, err := backend.Open(ctx, spec, nil)
	if errors.Is(err, bolt.ErrLocked) {
		return nil, fmt.Errorf("%s: %w", spec, errStoreInUse)
	}
	if errors.Is(err, store.ErrUnfinishedImport) {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	return st, err
}

// openExistingOffline opens a store a command reads or changes in place.
// Opened read-write, bbolt would create a mistyped path's file, and the
// command would report its work done on a new, empty store (keys
// "rotated" while the real store's leaked keys stay): the file must exist.
func openExistingOffline(ctx context.Context, spec backend.Spec) (store.Store, error) {
	if spec.Backend == backend.Bolt {
		if _, err := os.Stat(spec.Path); err != nil {
			return nil, fmt.Errorf("no store at %s: %w", spec, err)
		}
	}
	return openOfflineSpec(ctx, spec)
}

// openTargetOffline opens the store a restore or migrate writes to,
// refusing one that running Caddy instances use: written under them, it
// would hold neither what they cached nor the backup. A bbolt file's lock
// finds a running Caddy (readOldStore); a PostgreSQL database has none,
// so the store counts the instances' listener connections (openUnused).
func openTargetOffline(ctx context.Context, spec backend.Spec) (store.Store, error) {
	return openUnused(ctx, spec, "write", "restore and migrate work offline only")
}

// openSourceOffline opens, read-only, the store migrate copies, refusing
// one that running Caddy instances use, as its target is: what they write
// after the copy's snapshot (sign-ins, SCIM changes, sign-outs) would be
// missing from the new store, which Caddy is then started on. A bbolt
// file's lock finds a running Caddy, and is refused without offline
// mode's advice to use the admin API, which migrate does not have.
func openSourceOffline(ctx context.Context, spec backend.Spec) (store.Store, error) {
	spec.ReadOnly = true
	st, err := openUnused(ctx, spec, "read", "migrate works offline only: what they write during the copy would not be in it")
	if errors.Is(err, errStoreInUse) {
		return nil, fmt.Errorf("refusing to read %s: it is in use by a running Caddy, and migrate works offline only: what it writes during the copy "+
			"would not be in it: stop that Caddy, or let the caddy sso command given --store %s end, whichever holds it, then run the same command again", spec, spec)
	}
	return st, err
}

// openUnused opens spec offline (openOfflineSpec) and refuses, saying it
// will not do (to the store) and why, a PostgreSQL database that running
// instances use: it has no lock, so the store counts the instances'
// listener connections.
func openUnused(ctx context.Context, spec backend.Spec, do, why string) (store.Store, error) {
	st, err := openOfflineSpec(ctx, spec)
	if err != nil {
		return nil, err
	}
	running, ok := st.(interface {
		RunningInstances(context.Context) (int, error)
	})
	if !ok {
		return st, nil
	}
	n, err := running.RunningInstances(ctx)
	if err == nil && n > 0 {
		err = fmt.Errorf("refusing to %s %s: %d running Caddy instance(s) use it (their listener connections show in pg_stat_activity as application_name %q), "+
			"and %s: stop every instance on it, then run the same command again", do, spec, n, postgres.ListenerApplicationName, why)
	}
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// offline runs the account operations on a store file, as the admin API
// does on the running one.
type offline struct {
	acc  *account.Service
	db   store.Store
	warn io.Writer // stderr, for what does not stop the command
}

func (o *offline) ListUsers(ctx context.Context, query, after string, limit int) (*account.UsersPage, error) {
	return o.acc.ListUsers(ctx, query, after, limit)
}

func (o *offline) User(ctx context.Context, id, after string, limit int) (*account.UserDetail, error) {
	return o.acc.User(ctx, id, after, limit)
}

func (o *offline) Deactivate(ctx context.Context, id string) (*store.User, error) {
	return resultUser(o.acc.Deactivate(ctx, id, account.ByAdmin))
}

func (o *offline) Activate(ctx context.Context, id string) (*store.User, error) {
	return resultUser(o.acc.Activate(ctx, id, account.ByAdmin))
}

func (o *offline) Delete(ctx context.Context, id string) error {
	_, err := o.acc.Delete(ctx, id, account.ByAdmin)
	return err
}

func (o *offline) EndSessions(ctx context.Context, id string) (int, error) {
	res, err := o.acc.EndSessions(ctx, id, account.ByAdmin)
	if err != nil {
		return 0, err
	}
	return res.Sessions, nil
}

func (o *offline) Audit(ctx context.Context, q store.AuditQuery) (*account.AuditPage, error) {
	return o.acc.Audit(ctx, q)
}

// Backup audits the backup, as the admin API does, where the store takes
// writes: a PostgreSQL store, which running instances may share. A bbolt
// file is opened read-only for a backup (it must not change what it
// copies: a backup taken before an upgrade), and whoever can open it holds
// its keys already, as a plain copy of the file would. An audit that
// fails otherwise (a standby that takes no writes) is reported and the
// backup goes on: a store in trouble is when one is needed.
func (o *offline) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := o.acc.AuditBackup(ctx, account.ByAdmin, account.ViaOffline, ""); err != nil && !errors.Is(err, store.ErrReadOnly) {
		fmt.Fprintf(o.warn, "warning: the backup is not in the audit trail: %v\n", err)
	}
	return portable.Backup(ctx, o.db, w)
}

func resultUser(res *account.Result, err error) (*store.User, error) {
	if err != nil {
		return nil, err
	}
	return res.User, nil
}

// dash stands in for an empty cell and makes a full one termSafe: every
// table cell goes through it, and cells hold store and IdP data.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return termtext.Line(s)
}

// localTime writes t in the operator's zone, named: without it the times
// of an hour that a DST change repeats would read alike.
func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(keys.TimeLayout)
}
