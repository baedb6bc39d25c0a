package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
	"github.com/caddy-sso/caddy-sso/store"
)

func usersCommand() *cobra.Command {
	users := &cobra.Command{Use: "users", Short: "Lists, shows, enables, disables and deletes users", Args: cobra.NoArgs}
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists users, optionally those matching a search",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			query, _ := c.Flags().GetString("query")
			limit, err := countFlag(c, "limit")
			if err != nil {
				return err
			}
			return withClient(c, true, func(cl client) error {
				var all []*store.User
				after := ""
				for {
					size := account.MaxPageSize
					if limit > 0 {
						size = min(size, limit-len(all))
					}
					page, err := cl.ListUsers(c.Context(), query, after, size)
					if err != nil {
						return err
					}
					all = append(all, page.Users...)
					if page.Next == "" || (limit > 0 && len(all) >= limit) {
						break
					}
					after = page.Next
				}
				return printUsers(c, all)
			})
		},
	}
	list.Flags().StringP("query", "q", "", "Only users whose ID, email, name or user name contains this (ignoring case)")
	list.Flags().Int("limit", 0, "At most this many users, at least 1 (default: all)")

	show := &cobra.Command{
		Use:   "show <user-id>",
		Short: "Shows a user with links, groups and their newest sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			limit, err := countFlag(c, "sessions")
			if err != nil {
				return err
			}
			return withClient(c, true, func(cl client) error {
				d, err := cl.User(c.Context(), args[0], "", limit)
				if err != nil {
					return err
				}
				return printUserDetail(c, d)
			})
		},
	}
	show.Flags().Int("sessions", account.DefaultSessionsPageSize, fmt.Sprintf("Show at most this many of the user's sessions, newest first (1 to %d)", account.MaxPageSize))

	setActive := func(name string, active bool, short, long string) *cobra.Command {
		return &cobra.Command{
			Use:   name + " <user-id>",
			Short: short,
			Long:  long,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return withClient(c, false, func(cl client) error {
					op := cl.Deactivate
					if active {
						op = cl.Activate
					}
					u, err := op(c.Context(), args[0])
					if err != nil {
						return err
					}
					if asJSON(c) {
						return printJSON(c, u)
					}
					fmt.Fprintf(c.OutOrStdout(), "user %s %sd\n", termtext.Line(u.ID), name)
					return nil
				})
			},
		}
	}
	del := &cobra.Command{
		Use:   "delete <user-id>",
		Short: "Deletes a user and their sessions",
		Long: `Deletes a user, their sessions and group memberships. At an identity
provider that SCIM manages, tombstones keep JIT from creating the user anew
at their next sign-in (a SCIM create lifts them); elsewhere a later JIT
sign-in creates a new user. To keep someone out, disable them instead.

With --store no config is read, so which identity providers SCIM manages is
not known: the delete then leaves tombstones at every identity provider of
the user, where the same delete through the running Caddy leaves none at one
SCIM does not manage. There, a later sign-in is refused ("deprovisioned")
only if SCIM is switched on for that provider; the user.deleted audit event
says so (scim_managed=unknown).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return withClient(c, false, func(cl client) error {
				if err := cl.Delete(c.Context(), args[0]); err != nil {
					return err
				}
				if asJSON(c) {
					return printJSON(c, map[string]string{"deleted": args[0]})
				}
				fmt.Fprintf(c.OutOrStdout(), "user %s deleted\n", args[0])
				return nil
			})
		},
	}
	users.AddCommand(list, show,
		setActive("disable", false, "Disables a user and ends their sessions at once",
			`Disables a user and ends their sessions at once. Disabling a pending
user refuses their request: they are shown as disabled, and stay not
approved, so that a later enable approves them (audited as such).`),
		setActive("enable", true, "Enables (or approves a pending) user", ""),
		del)
	return users
}

func sessionsCommand() *cobra.Command {
	sessions := &cobra.Command{Use: "sessions", Short: "Manages sessions", Args: cobra.NoArgs}
	sessions.AddCommand(&cobra.Command{
		Use:   "revoke <user-id>",
		Short: "Ends every session of a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return withClient(c, false, func(cl client) error {
				n, err := cl.EndSessions(c.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON(c) {
					return printJSON(c, map[string]int{"revoked": n})
				}
				fmt.Fprintf(c.OutOrStdout(), "%d session(s) of user %s revoked\n", n, args[0])
				return nil
			})
		},
	})
	return sessions
}

func printUsers(c *cobra.Command, users []*store.User) error {
	if asJSON(c) {
		if users == nil {
			users = []*store.User{}
		}
		return printJSON(c, users)
	}
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tIDP\tSOURCE\tSTATUS\tLAST LOGIN")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", termtext.Line(u.ID), dash(u.Email), dash(strings.TrimSpace(u.FirstName+" "+u.LastName)),
			dash(u.IdP), dash(u.Source), userStatus(u), localTime(u.LastLogin))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "%d user(s)\n", len(users))
	return nil
}

// groupList lists group names, which IdPs and SCIM clients choose freely,
// so that each reads as one: "a, b" and "c" are two groups, not three.
func groupList(names []string) string {
	items := make([]string, len(names))
	for i, n := range names {
		items[i] = quoteIf(n, ",")
	}
	return strings.Join(items, ", ")
}

// userStatus says whether the user may sign in: disabled first, since a
// pending user who was then disabled (their request refused) is disabled,
// not waiting (account.Service.DeactivateTx keeps Pending: an enable then
// approves them).
func userStatus(u *store.User) string {
	switch {
	case !u.Active:
		return "disabled"
	case u.Pending:
		return "pending"
	}
	return "active"
}

func printUserDetail(c *cobra.Command, d *account.UserDetail) error {
	if asJSON(c) {
		return printJSON(c, d)
	}
	u := d.User
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, dash(v)) }
	row("ID", u.ID)
	row("Email", u.Email)
	row("Name", strings.TrimSpace(u.FirstName+" "+u.LastName))
	row("User name", u.UserName)
	row("Status", userStatus(u))
	row("Source", u.Source)
	row("IdP", u.IdP)
	row("External ID", u.ExternalID)
	row("Groups", groupList(u.Groups))
	row("Created", localTime(u.Created))
	row("Updated", localTime(u.Updated))
	row("Last login", localTime(u.LastLogin))
	for _, l := range u.Links {
		row("Link", l.IdP+": "+l.Subject)
	}
	for _, g := range d.Groups {
		row("SCIM group", g.DisplayName+" ("+g.ID+")")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	out := c.OutOrStdout()
	fmt.Fprintf(out, "\n%d session(s)", d.SessionCount)
	if len(d.Sessions) < d.SessionCount {
		fmt.Fprintf(out, ", the newest %d shown (--sessions)", len(d.Sessions))
	}
	fmt.Fprintln(out)
	if len(d.Sessions) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IDP\tCREATED\tEXPIRES\tLAST SEEN\tAUTHENTICATED\tTOKENS")
	named := false
	for _, s := range d.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(s.IdP), localTime(s.Created), localTime(s.Expires), localTime(s.LastSeen), localTime(s.AuthTime), yesDash(s.TokensStored))
		named = named || s.IdPSubject != "" || s.IdPSession != ""
	}
	if err := tw.Flush(); err != nil || !named {
		return err
	}
	// How the IdP named the person and each session, for its sign-out: a
	// table of its own, in the same order, since a SAML NameID or
	// SessionIndex is long enough to push the one above off the screen.
	fmt.Fprintln(out, "\nAs the IdP named them (for its sign-out):")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tIDP SUBJECT\tIDP SESSION")
	for _, s := range d.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", localTime(s.Created), dash(s.IdPSubject), dash(s.IdPSession))
	}
	return tw.Flush()
}

// yesDash shows a flag in a table: "yes", or "-" as for an empty value.
func yesDash(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}
