package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "sso",
		Usage: "users|sessions|audit|backup|restore ...",
		Short: "Manages caddy-sso users, sessions, audit trail and store backups",
		Long: `
Manages the users, sessions and audit trail of caddy-sso, and backs up or
restores its store.

By default it talks to a running Caddy's admin endpoint (--address, or the
admin address of --config, or Caddy's default). With --store it opens a
stopped instance's store file directly instead; Caddy must not be running
on that file.

Output is a readable table; --json prints machine-readable JSON.`,
		CobraFunc: configureSSOCommand,
	})
}

// NewCommand returns a fresh `sso` command tree, as `caddy sso` runs it.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "sso"}
	configureSSOCommand(cmd)
	return cmd
}

// offlineLockTimeout is how long offline mode waits for the store's lock
// before concluding that a running Caddy holds it.
const offlineLockTimeout = 500 * time.Millisecond

// errStoreInUse is what offline mode says when Caddy holds the store.
var errStoreInUse = errors.New("the store is in use by a running Caddy; use the admin API (omit --store) or stop Caddy")

func configureSSOCommand(cmd *cobra.Command) {
	cmd.Args = cobra.NoArgs
	cmd.SilenceUsage = true
	pf := cmd.PersistentFlags()
	pf.String("address", "", "The address of Caddy's admin endpoint, if not the default")
	pf.StringP("config", "c", "", "Configuration file to read the admin address from, if --address is not used")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply (when --config is used)")
	pf.String("store", "", "Open this store file of a stopped Caddy instead of using the admin API")
	pf.Bool("json", false, "Print JSON instead of tables")

	users := &cobra.Command{Use: "users", Short: "Lists, shows, enables, disables and deletes users", Args: cobra.NoArgs}
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists users, optionally those matching a search",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			query, _ := c.Flags().GetString("query")
			limit, _ := c.Flags().GetInt("limit")
			return cliWithClient(c, true, func(cl ssoClient) error {
				var all []*store.User
				after := ""
				for {
					size := maxPageSize
					if limit > 0 {
						size = min(size, limit-len(all))
					}
					page, err := cl.listUsers(c.Context(), query, after, size)
					if err != nil {
						return err
					}
					all = append(all, page.Users...)
					if page.Next == "" || (limit > 0 && len(all) >= limit) {
						break
					}
					after = page.Next
				}
				return cliPrintUsers(c, all)
			})
		},
	}
	list.Flags().StringP("query", "q", "", "Only users whose ID, email, name or user name contains this (ignoring case)")
	list.Flags().Int("limit", 0, "At most this many users (0: all)")

	show := &cobra.Command{
		Use:   "show <user-id>",
		Short: "Shows a user with links, groups and sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return cliWithClient(c, true, func(cl ssoClient) error {
				d, err := cl.showUser(c.Context(), args[0])
				if err != nil {
					return err
				}
				return cliPrintUserDetail(c, d)
			})
		},
	}
	setActive := func(name string, active bool, short string) *cobra.Command {
		return &cobra.Command{
			Use:   name + " <user-id>",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return cliWithClient(c, false, func(cl ssoClient) error {
					u, err := cl.setActive(c.Context(), args[0], active)
					if err != nil {
						return err
					}
					if cliJSON(c) {
						return cliPrintJSON(c, u)
					}
					fmt.Fprintf(c.OutOrStdout(), "user %s (%s) %sd\n", u.ID, u.Email, name)
					return nil
				})
			},
		}
	}
	del := &cobra.Command{
		Use:   "delete <user-id>",
		Short: "Deletes a user and their sessions (a later JIT login creates them anew; disable to keep them out)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return cliWithClient(c, false, func(cl ssoClient) error {
				if err := cl.deleteUser(c.Context(), args[0]); err != nil {
					return err
				}
				if cliJSON(c) {
					return cliPrintJSON(c, map[string]string{"deleted": args[0]})
				}
				fmt.Fprintf(c.OutOrStdout(), "user %s deleted\n", args[0])
				return nil
			})
		},
	}
	users.AddCommand(list, show,
		setActive("disable", false, "Disables a user and ends their sessions at once"),
		setActive("enable", true, "Enables (or approves a pending) user"),
		del)

	sessions := &cobra.Command{Use: "sessions", Short: "Manages sessions", Args: cobra.NoArgs}
	sessions.AddCommand(&cobra.Command{
		Use:   "revoke <user-id>",
		Short: "Ends every session of a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return cliWithClient(c, false, func(cl ssoClient) error {
				n, err := cl.revokeSessions(c.Context(), args[0])
				if err != nil {
					return err
				}
				if cliJSON(c) {
					return cliPrintJSON(c, map[string]int{"revoked": n})
				}
				fmt.Fprintf(c.OutOrStdout(), "%d session(s) of user %s revoked\n", n, args[0])
				return nil
			})
		},
	})

	audit := &cobra.Command{
		Use:   "audit",
		Short: "Prints the audit trail, optionally following it",
		Args:  cobra.NoArgs,
		RunE:  cliAudit,
	}
	af := audit.Flags()
	af.String("user", "", "Only events of this user ID")
	af.String("type", "", "Only events of this type (e.g. login.denied)")
	af.String("since", "", "Only events at or after this RFC 3339 time, or this long ago (e.g. 24h)")
	af.String("until", "", "Only events before this RFC 3339 time, or this long ago")
	af.Uint64("after", 0, "Only events after this sequence number")
	af.Int("limit", 0, "At most this many events (0: all; ignored with --follow)")
	af.BoolP("follow", "f", false, "Keep printing new events (polls every second) until interrupted")

	backup := &cobra.Command{
		Use:   "backup <file>",
		Short: "Writes a consistent copy of the store to a file",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return cliWithClient(c, true, func(cl ssoClient) error {
				n, err := cliWriteBackup(c.Context(), cl, args[0])
				if err != nil {
					return err
				}
				if cliJSON(c) {
					return cliPrintJSON(c, map[string]any{"file": args[0], "bytes": n})
				}
				fmt.Fprintf(c.OutOrStdout(), "backup written to %s (%d bytes)\n", args[0], n)
				return nil
			})
		},
	}
	restore := &cobra.Command{
		Use:   "restore <file>",
		Short: "Replaces a stopped instance's store with a backup (offline only)",
		Long: `Replaces the store file (--store, default: the one in Caddy's data
directory) with a backup made by 'caddy sso backup'. Caddy must be stopped:
the command refuses while the store is locked. The backup is checked, copied
next to the store and renamed into place, so the store is either the old one
or the complete new one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			dst, _ := c.Flags().GetString("store")
			if dst == "" {
				dst = DefaultStorePath()
			}
			n, err := cliRestore(args[0], dst)
			if err != nil {
				return err
			}
			if cliJSON(c) {
				return cliPrintJSON(c, map[string]any{"file": dst, "bytes": n})
			}
			fmt.Fprintf(c.OutOrStdout(), "store %s restored from %s (%d bytes); start Caddy to use it\n", dst, args[0], n)
			return nil
		},
	}
	cmd.AddCommand(users, sessions, audit, backup, restore)
	cmd.AddCommand(newCheckCommand())
}

func cliJSON(c *cobra.Command) bool {
	v, _ := c.Flags().GetBool("json")
	return v
}

func cliPrintJSON(c *cobra.Command, v any) error {
	enc := json.NewEncoder(c.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ssoClient is what the subcommands need, over the admin API or a store file.
type ssoClient interface {
	listUsers(ctx context.Context, query, after string, limit int) (*UsersPage, error)
	showUser(ctx context.Context, id string) (*UserDetail, error)
	setActive(ctx context.Context, id string, active bool) (*store.User, error)
	deleteUser(ctx context.Context, id string) error
	revokeSessions(ctx context.Context, id string) (int, error)
	audit(ctx context.Context, q store.AuditQuery) (*AuditPage, error)
	backup(ctx context.Context, w io.Writer) (int64, error)
}

// withClient runs fn against the admin API, or with --store against the
// store file (read-only when readOnly).
func cliWithClient(c *cobra.Command, readOnly bool, fn func(ssoClient) error) error {
	path, _ := c.Flags().GetString("store")
	if path == "" {
		address, _ := c.Flags().GetString("address")
		config, _ := c.Flags().GetString("config")
		adapter, _ := c.Flags().GetString("adapter")
		addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
		if err != nil {
			return fmt.Errorf("finding the admin address: %w", err)
		}
		return fn(&apiClient{addr: addr})
	}
	db, err := cliOpenOffline(path, readOnly)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(&offlineClient{adminOps{db: db}, db})
}

// openOffline opens a stopped instance's store, failing fast and clearly
// when a running Caddy holds it.
func cliOpenOffline(path string, readOnly bool) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no store at %s: %w", path, err)
	}
	db, err := bolt.Open(path, bolt.Options{LockTimeout: offlineLockTimeout, ReadOnly: readOnly})
	if errors.Is(err, bolt.ErrLocked) {
		return nil, fmt.Errorf("%s: %w", path, errStoreInUse)
	}
	return db, err
}

type offlineClient struct {
	adminOps
	db *bolt.DB
}

func (o *offlineClient) backup(_ context.Context, w io.Writer) (int64, error) { return o.db.Backup(w) }

// apiClient talks to the admin endpoint.
type apiClient struct{ addr string }

// request calls the admin endpoint, explaining a failure to reach it.
func (a *apiClient) request(method, uri string) (*http.Response, error) {
	resp, err := caddycmd.AdminAPIRequest(a.addr, method, uri, nil, nil)
	if err != nil && strings.HasPrefix(err.Error(), "performing request") {
		return nil, fmt.Errorf("cannot reach Caddy's admin endpoint at %s (is Caddy running? for a stopped instance use --store <file>): %w", a.addr, err)
	}
	return resp, err
}

func (a *apiClient) do(method, uri string, out any) error {
	resp, err := a.request(method, uri)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the admin API's answer: %w", err)
	}
	return nil
}

func cliUserURI(id string, rest ...string) string {
	return "/sso/users/" + strings.Join(append([]string{url.PathEscape(id)}, rest...), "/")
}

func (a *apiClient) listUsers(_ context.Context, query, after string, limit int) (*UsersPage, error) {
	v := url.Values{"limit": {strconv.Itoa(limit)}}
	if query != "" {
		v.Set("query", query)
	}
	if after != "" {
		v.Set("after", after)
	}
	page := new(UsersPage)
	return page, a.do(http.MethodGet, "/sso/users?"+v.Encode(), page)
}

func (a *apiClient) showUser(_ context.Context, id string) (*UserDetail, error) {
	d := new(UserDetail)
	return d, a.do(http.MethodGet, cliUserURI(id), d)
}

func (a *apiClient) setActive(_ context.Context, id string, active bool) (*store.User, error) {
	action := "disable"
	if active {
		action = "enable"
	}
	u := new(store.User)
	return u, a.do(http.MethodPost, cliUserURI(id, action), u)
}

func (a *apiClient) deleteUser(_ context.Context, id string) error {
	var out map[string]string
	return a.do(http.MethodDelete, cliUserURI(id), &out)
}

func (a *apiClient) revokeSessions(_ context.Context, id string) (int, error) {
	var out struct {
		Revoked int `json:"revoked"`
	}
	err := a.do(http.MethodPost, cliUserURI(id, "sessions", "revoke"), &out)
	return out.Revoked, err
}

func (a *apiClient) audit(_ context.Context, q store.AuditQuery) (*AuditPage, error) {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("user", q.UserID)
	set("type", q.Type)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	page := new(AuditPage)
	return page, a.do(http.MethodGet, "/sso/audit?"+v.Encode(), page)
}

func (a *apiClient) backup(_ context.Context, w io.Writer) (int64, error) {
	resp, err := a.request(http.MethodGet, "/sso/backup")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("receiving the backup: %w", err)
	}
	if msg := resp.Trailer.Get(backupErrorTrailer); msg != "" {
		return n, fmt.Errorf("the backup failed on the server: %s", msg)
	}
	if want := resp.Trailer.Get(backupSizeTrailer); want != strconv.FormatInt(n, 10) {
		return n, fmt.Errorf("the backup is incomplete: received %d bytes, the server sent %q", n, want)
	}
	return n, nil
}

// writeBackup writes the backup to a temporary file beside path, checks
// that it opens as a store, and renames it into place.
func cliWriteBackup(ctx context.Context, cl ssoClient, path string) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := cl.backup(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := cliCheckStore(tmp.Name()); err != nil {
		return n, fmt.Errorf("the backup does not open as a store: %w", err)
	}
	return n, os.Rename(tmp.Name(), path)
}

// checkStoreFile opens a store file read-only and reads it once.
func cliCheckStore(path string) error {
	db, err := bolt.Open(path, bolt.Options{ReadOnly: true, LockTimeout: offlineLockTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEachUser("", func(*store.User) error { return errAdminPageFull })
	})
	if errors.Is(err, errAdminPageFull) {
		err = nil
	}
	return err
}

// restoreStore replaces dst with the backup at src while nothing holds dst.
func cliRestore(src, dst string) (int64, error) {
	if err := cliCheckStore(src); err != nil {
		return 0, fmt.Errorf("%s is not a usable store backup: %w", src, err)
	}
	if err := cliRefuseIfLocked(dst); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, err
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("copying %s: %w", src, err)
	}
	// Check again right before the swap: Caddy may have started meanwhile.
	if err := cliRefuseIfLocked(dst); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, err
	}
	if dir, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return n, nil
}

// refuseIfLocked fails when a running Caddy holds the store at path.
func cliRefuseIfLocked(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := bolt.Open(path, bolt.Options{ReadOnly: true, LockTimeout: offlineLockTimeout})
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("refusing to restore over %s: %w", path, errStoreInUse)
	}
	if err != nil {
		// A damaged store is no reason to refuse its replacement.
		return nil
	}
	return db.Close()
}

func cliAudit(c *cobra.Command, _ []string) error {
	f := c.Flags()
	user, _ := f.GetString("user")
	typ, _ := f.GetString("type")
	sinceRaw, _ := f.GetString("since")
	untilRaw, _ := f.GetString("until")
	after, _ := f.GetUint64("after")
	limit, _ := f.GetInt("limit")
	follow, _ := f.GetBool("follow")
	now := time.Now()
	since, err := adminParseTime(sinceRaw, now)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	until, err := adminParseTime(untilRaw, now)
	if err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	ctx := c.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt)
		defer stop()
		limit = 0
	}
	return cliWithClient(c, true, func(cl ssoClient) error {
		asJSON := cliJSON(c)
		out := c.OutOrStdout()
		var tw *tabwriter.Writer
		if !asJSON {
			tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tIDP\tUSER\tSUBJECT\tREASON\tDETAIL")
		}
		printed := 0
		for {
			size := maxPageSize
			if limit > 0 {
				size = min(size, limit-printed)
			}
			page, err := cl.audit(ctx, store.AuditQuery{After: after, UserID: user, Type: typ, Since: since, Until: until, Limit: size})
			if err != nil {
				if follow && ctx.Err() != nil {
					return nil
				}
				return err
			}
			for _, e := range page.Events {
				if asJSON {
					// One event per line, so that a follower can stream them.
					b, _ := json.Marshal(e)
					fmt.Fprintf(out, "%s\n", b)
				} else {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format(time.RFC3339),
						e.Type, cliDash(e.IdP), cliDash(e.UserID), cliDash(e.Subject), cliDash(e.Reason), cliDash(cliDetail(e.Detail)))
				}
			}
			printed += len(page.Events)
			after = page.Next
			if tw != nil {
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if len(page.Events) == size && (limit == 0 || printed < limit) {
				continue // more right away
			}
			if !follow {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	})
}

func cliDetail(d map[string]string) string {
	if len(d) == 0 {
		return ""
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + d[k]
	}
	return strings.Join(parts, " ")
}

func cliDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cliTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func cliPrintUsers(c *cobra.Command, users []*store.User) error {
	if cliJSON(c) {
		if users == nil {
			users = []*store.User{}
		}
		return cliPrintJSON(c, users)
	}
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tIDP\tSOURCE\tSTATUS\tLAST LOGIN")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, cliDash(u.Email), cliDash(strings.TrimSpace(u.FirstName+" "+u.LastName)),
			cliDash(u.IdP), cliDash(u.Source), cliUserStatus(u), cliTime(u.LastLogin))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "%d user(s)\n", len(users))
	return nil
}

func cliUserStatus(u *store.User) string {
	switch {
	case u.Pending:
		return "pending"
	case u.Active:
		return "active"
	}
	return "disabled"
}

func cliPrintUserDetail(c *cobra.Command, d *UserDetail) error {
	if cliJSON(c) {
		return cliPrintJSON(c, d)
	}
	u := d.User
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, cliDash(v)) }
	row("ID", u.ID)
	row("Email", u.Email)
	row("Name", strings.TrimSpace(u.FirstName+" "+u.LastName))
	row("User name", u.UserName)
	row("Status", cliUserStatus(u))
	row("Source", u.Source)
	row("IdP", u.IdP)
	row("External ID", u.ExternalID)
	row("Groups", strings.Join(u.Groups, ", "))
	row("Created", cliTime(u.Created))
	row("Updated", cliTime(u.Updated))
	row("Last login", cliTime(u.LastLogin))
	for _, l := range u.Links {
		row("Link", l.IdP+": "+l.Subject)
	}
	for _, g := range d.Groups {
		row("SCIM group", g.DisplayName+" ("+g.ID+")")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "\n%d session(s)\n", len(d.Sessions))
	if len(d.Sessions) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IDP\tCREATED\tEXPIRES\tLAST SEEN")
	for _, s := range d.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cliDash(s.IdP), cliTime(s.Created), cliTime(s.Expires), cliTime(s.LastSeen))
	}
	return tw.Flush()
}
