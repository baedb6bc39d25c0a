package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/store"
)

// tombstoneClient is what the tombstones commands need, over the admin API
// or a store (offline), besides client.
type tombstoneClient interface {
	Tombstones(ctx context.Context, q account.TombstoneQuery) (*account.TombstonesPage, error)
	Lift(ctx context.Context, deletedUserID string) (*account.LiftResult, error)
	LiftTombstone(ctx context.Context, idp, subject string) (*account.LiftResult, error)
}

var (
	_ tombstoneClient = (*adminapi.Client)(nil)
	_ tombstoneClient = (*offline)(nil)
)

func (o *offline) Tombstones(ctx context.Context, q account.TombstoneQuery) (*account.TombstonesPage, error) {
	return o.acc.ListTombstones(ctx, q)
}

func (o *offline) Lift(ctx context.Context, deletedUserID string) (*account.LiftResult, error) {
	return o.acc.Lift(ctx, deletedUserID, account.ByAdmin)
}

func (o *offline) LiftTombstone(ctx context.Context, idp, subject string) (*account.LiftResult, error) {
	return o.acc.LiftTombstone(ctx, idp, subject, account.ByAdmin)
}

// withTombstoneClient is withClient for the tombstones commands.
func withTombstoneClient(c *cobra.Command, readOnly bool, fn func(tombstoneClient) error) error {
	return withClient(c, readOnly, func(cl client) error {
		tc, ok := cl.(tombstoneClient)
		if !ok {
			return errors.New("internal error: this client cannot reach tombstones") // both clients can: see the assertions above
		}
		return fn(tc)
	})
}

// tombstonesCommand lists and lifts the tombstones a deletion leaves
// (docs/scim.md, Deprovisioning).
func tombstonesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tombstones", Short: "Lists and lifts the tombstones that refuse deleted users' sign-ins", Args: cobra.NoArgs}
	list := &cobra.Command{
		Use:   "list [--user ID] [--idp NAME]",
		Short: "Lists tombstones: the identities sign-in refuses as deprovisioned",
		Long: `Lists tombstones, in (IdP, subject) order: the identities a deletion left
refused at sign-in ("deprovisioned"). DELETED USER is the ID of the user
deleted (login.denied's deleted_user detail); HOME, on one a SCIM deletion
left at another IdP, names the tombstone it follows: it is heeded while that
one stands, and shown "(lifted)" once it does not.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			user, _ := c.Flags().GetString("user")
			idp, _ := c.Flags().GetString("idp")
			limit, err := countFlag(c, "limit")
			if err != nil {
				return err
			}
			return withTombstoneClient(c, true, func(cl tombstoneClient) error {
				all := []account.TombstoneInfo{}
				q := account.TombstoneQuery{UserID: user, IdP: idp}
				for {
					q.Limit = account.MaxPageSize
					if limit > 0 {
						q.Limit = min(q.Limit, limit-len(all))
					}
					page, err := cl.Tombstones(c.Context(), q)
					if err != nil {
						return err
					}
					all = append(all, page.Tombstones...)
					if page.Next == "" || (limit > 0 && len(all) >= limit) {
						break
					}
					q.After = page.Next
				}
				return printTombstones(c, all)
			})
		},
	}
	list.Flags().String("user", "", "Only the tombstones of this deleted user (their ID)")
	list.Flags().String("idp", "", "Only the tombstones at this identity provider")
	list.Flags().Int("limit", 0, "At most this many tombstones, at least 1 (default: all)")

	lift := &cobra.Command{
		Use:   "lift <deleted-user-id> | lift --idp NAME --subject SUBJECT",
		Short: "Lifts tombstones, so that sign-in no longer refuses those identities",
		Long: `Lifts every tombstone of a deleted user (the deleted_user detail of the
login.denied event that refused them), or with --idp and --subject the one
of that identity. A tombstone lifted takes those that follow it at other
IdPs with it. Each is audited (user.tombstone_lifted).

The identity is then no longer refused as deprovisioned: a sign-in creates
the user anew by JIT, or links them to a user who has it (a user the
directory provisioned again under a new ID). To keep a person out, disable
their user instead.`,
		Args: func(c *cobra.Command, args []string) error {
			idp, subject := c.Flags().Changed("idp"), c.Flags().Changed("subject")
			switch {
			case len(args) == 1 && !idp && !subject:
				return nil
			case len(args) == 0 && idp && subject:
				return nil
			}
			return errors.New("give the deleted user's ID, or --idp and --subject of one tombstone (not both)")
		},
		RunE: func(c *cobra.Command, args []string) error {
			return withTombstoneClient(c, false, func(cl tombstoneClient) error {
				var res *account.LiftResult
				var err error
				if len(args) == 1 {
					res, err = cl.Lift(c.Context(), args[0])
				} else {
					idp, _ := c.Flags().GetString("idp")
					subject, _ := c.Flags().GetString("subject")
					res, err = cl.LiftTombstone(c.Context(), idp, subject)
				}
				if err != nil {
					return err
				}
				if asJSON(c) {
					return printJSON(c, res)
				}
				if err := printTombstoneRows(c, res.Lifted); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "%d tombstone(s) lifted\n", len(res.Lifted))
				return nil
			})
		},
	}
	lift.Flags().String("idp", "", "The identity provider of the one tombstone to lift (with --subject)")
	lift.Flags().String("subject", "", "The subject of the one tombstone to lift (with --idp)")
	cmd.AddCommand(list, lift)
	return cmd
}

func printTombstones(c *cobra.Command, ts []account.TombstoneInfo) error {
	if asJSON(c) {
		return printJSON(c, ts)
	}
	rows := make([]store.Tombstone, len(ts))
	lifted := make([]bool, len(ts))
	for i, t := range ts {
		rows[i], lifted[i] = t.Tombstone, t.HomeLifted
	}
	if err := printTombstoneTable(c, rows, lifted); err != nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "%d tombstone(s)\n", len(ts))
	return nil
}

func printTombstoneRows(c *cobra.Command, ts []store.Tombstone) error {
	return printTombstoneTable(c, ts, make([]bool, len(ts)))
}

// printTombstoneTable prints tombstones; homeLifted[i] marks the home of
// ts[i] as gone.
func printTombstoneTable(c *cobra.Command, ts []store.Tombstone, homeLifted []bool) error {
	tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IDP\tSUBJECT\tDELETED USER\tDELETED\tHOME")
	for i, t := range ts {
		home := "-"
		if t.Home != nil {
			home = dash(t.Home.IdP) + ": " + dash(t.Home.Subject)
			if homeLifted[i] {
				home += " (lifted)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dash(t.IdP), dash(t.Subject), dash(t.UserID), localTime(t.Deleted), home)
	}
	return tw.Flush()
}
