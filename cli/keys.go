package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/account"
	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/idp"
	"github.com/caddy-sso/caddy-sso/keys"
	"github.com/caddy-sso/caddy-sso/session"
	"github.com/caddy-sso/caddy-sso/store"
	"github.com/caddy-sso/caddy-sso/upstreamjwt"
)

// keysCommand rotates the keys the store keeps (package keys), through
// the admin API or, with --store, on a stopped instance's store (a
// PostgreSQL store while instances run on it). docs/operations.md,
// "Rotating the store's keys", is the procedure.
func keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Rotates the keys kept in the store"}
	rotate := &cobra.Command{
		Use:   "rotate [--only flow|tokens|upstream-jwt]",
		Short: "Replaces the store's keys: flow cookies, session tokens, identity JWT",
		Long: `Replaces the keys kept in the store, in one transaction, audited
(store.keys_rotated), for after a backup (which holds them) leaked:

  flow          flow-cookie-key: a fresh key seals the sign-in flow cookies
                on every running instance within a minute (no reload); the
                old one still opens them until 'caddy sso keys finish'
  tokens        session-tokens-key: a fresh key; every session's sealed IdP
                tokens are sealed again under it; the old key stays until
                'caddy sso keys finish' (a sign-in may have sealed under it
                as the rotation committed), which seals those again and
                deletes it. Rotating tokens again before is refused
  upstream-jwt  the identity JWT's signing keys: all retired at once (no
                longer in /.sso/jwks.json), fresh ones made; running
                instances take them within a minute

--only rotates some of them (repeat it, or give a comma list). The SAML SP
keys roll with sp_cert instead. Rotations run at once take turns. Eleven
minutes later (a minute for every instance to take the new flow key, and
the flow cookies' 10-minute lifetime), run 'caddy sso keys finish'; a
re-seal that stopped part-way leaves every token opening, and the finish
seals the rest.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			raw, _ := c.Flags().GetStringSlice("only")
			only, err := keys.ParseKinds(raw)
			if err != nil {
				return fmt.Errorf("--only: %w", err)
			}
			if !c.Flags().Changed("only") {
				only = nil
			}
			return runKeys(c, func(ctx context.Context, api *adminapi.Client, opt keys.Options, db store.Store) (*keys.Report, error) {
				if api != nil {
					return api.RotateKeys(ctx, only, keysWatch(opt))
				}
				opt.Only = only
				return keys.Rotate(ctx, db, opt)
			})
		},
	}
	rotate.Flags().StringSlice("only", nil, "Rotate only these keys: flow, tokens, upstream-jwt (repeat, or a comma list)")
	finish := &cobra.Command{
		Use:   "finish",
		Short: "Ends a rotation: deletes the previous flow and session-tokens keys",
		Long: `Deletes the flow cookies' key a rotation replaced (a sign-in whose flow
cookie only it opens fails from then on), audited; then seals again under
the new session-tokens key what only the previous one opens (a sign-in
that sealed as the rotation committed, or a re-seal that stopped
part-way), and deletes it. Run it 11 minutes after the rotation (the time
rotate printed; before it, it is refused unless --now): within a minute
every running instance stops opening cookies of the previous key.
Interrupted, run it again.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			early, _ := c.Flags().GetBool("now")
			return runKeys(c, func(ctx context.Context, api *adminapi.Client, opt keys.Options, db store.Store) (*keys.Report, error) {
				if api != nil {
					return api.FinishKeys(ctx, early, keysWatch(opt))
				}
				opt.Early = early
				return keys.Finish(ctx, db, opt)
			})
		},
	}
	finish.Flags().Bool("now", false, "Finish before the time rotate gave (after a leaked backup): sign-ins begun before the rotation fail")
	cmd.AddCommand(rotate, finish)
	return cmd
}

// runKeys runs op through the admin API, or with --store on the store,
// and prints its report; on stderr, the same way on both paths, that the
// keys are rotated once their transaction committed (an interrupted
// re-seal leaves them so), then the re-seal's progress.
func runKeys(c *cobra.Command, op func(context.Context, *adminapi.Client, keys.Options, store.Store) (*keys.Report, error)) error {
	var (
		rep *keys.Report
		err error
	)
	opt := keys.Options{By: account.ByAdmin, Via: account.ViaOffline, Committed: keysCommitted(c.ErrOrStderr()),
		Reseal: session.ResealOptions{Progress: resealProgress(c.ErrOrStderr())}}
	if raw, _ := c.Flags().GetString("store"); raw == "" {
		api, aerr := adminClient(c)
		if aerr != nil {
			return aerr
		}
		rep, err = op(c.Context(), api, opt, nil)
	} else {
		spec, perr := parseStore(c.ErrOrStderr(), "--store", raw)
		if perr != nil {
			return perr
		}
		db, oerr := openExistingOffline(c.Context(), spec)
		if oerr != nil {
			return oerr
		}
		defer db.Close()
		rep, err = op(c.Context(), nil, opt, db)
	}
	if err != nil {
		return err
	}
	if asJSON(c) {
		return printJSON(c, rep)
	}
	printKeysReport(c.OutOrStdout(), rep)
	return nil
}

// keysWatch follows the admin API's stream as opt follows the offline run.
func keysWatch(opt keys.Options) adminapi.KeysWatch {
	return adminapi.KeysWatch{Committed: opt.Committed, Progress: opt.Reseal.Progress}
}

// keysCommitted says on w, when a re-seal follows, that the transaction
// committed: a run stopped during the re-seal leaves the keys rotated and
// the previous tokens key in the store, and the finish seals the rest
// (docs/operations.md, "Rotating the store's keys").
func keysCommitted(w io.Writer) func(keys.Report) {
	return func(rep keys.Report) {
		switch {
		case rep.TokensPreviousKept:
			fmt.Fprintf(w, "rotated in the store: %s; now re-sealing the sessions' tokens under the new key\n", kindNames(rep.Rotated))
			fmt.Fprintf(w, "  (if this stops, the keys stay rotated and every session's tokens still open: 'caddy sso keys finish' after %s seals the rest)\n",
				rep.FinishAfter.Local().Format(keys.TimeLayout))
		case rep.TokensPreviousFound:
			fmt.Fprintln(w, "re-sealing what only the previous session-tokens-key opens, then deleting it")
			fmt.Fprintln(w, "  (if this stops, every session's tokens still open: run the same command again to finish)")
		}
	}
}

func kindNames(kinds []keys.Kind) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// resealProgress reports the re-seal on w every few seconds: a store of a
// million sessions takes minutes.
func resealProgress(w io.Writer) func(session.ResealProgress) {
	var (
		last    time.Time
		printed session.ResealProgress // a pass that ends on a full batch reports its end twice
	)
	return func(p session.ResealProgress) {
		if p == printed || time.Since(last) < 2*time.Second && p.Scanned < p.Sessions {
			return
		}
		last, printed = time.Now(), p
		fmt.Fprintf(w, "  re-sealing session tokens: pass %d, %d of %d sessions read, %d sealed again\n",
			p.Pass, p.Scanned, p.Sessions, p.Resealed)
	}
}

func printKeysReport(w io.Writer, rep *keys.Report) {
	if len(rep.Rotated) > 0 {
		fmt.Fprintf(w, "rotated: %s\n", kindNames(rep.Rotated))
	}
	if t := rep.Tokens; t != nil {
		fmt.Fprintf(w, "session tokens: %d session(s) sealed again under the new key", t.Resealed)
		switch {
		case t.PreviousDeleted:
			fmt.Fprint(w, "; the previous key is deleted")
		case t.PreviousReplaced:
			fmt.Fprint(w, "; a rotation since replaced the previous key: it is kept until that rotation's finish")
		case rep.TokensPreviousKept:
			fmt.Fprint(w, "; the previous key is kept until finish (a sign-in may have sealed under it as the rotation committed)")
		}
		fmt.Fprintln(w)
		if t.Unopenable > 0 {
			fmt.Fprintf(w, "  %d session(s) hold tokens neither key opens (damaged, or sealed under a key the store lost): left as they were\n", t.Unopenable)
		}
	}
	if u := rep.UpstreamJWT; u != nil {
		fmt.Fprintf(w, "upstream-jwt: %d key(s) retired (no longer published), %d made; running instances sign with and publish only the new ones within %v\n",
			u.Retired, u.Made, upstreamjwt.RecheckInterval)
	}
	if rep.FlowPreviousDeleted {
		fmt.Fprintln(w, "flow-cookie-key: the previous key is deleted")
	} else if len(rep.Rotated) == 0 && !rep.TokensPreviousFound {
		fmt.Fprintln(w, "nothing to finish: the store holds no previous flow-cookie-key or session-tokens-key")
	}
	if rep.FlowPreviousKept {
		fmt.Fprintf(w, "flow-cookie-key: the previous key still opens sign-ins begun before the rotation; "+
			"every running instance seals with the new one within %v (no reload)\n", idp.FlowKeyRecheckInterval)
	}
	if !rep.FinishAfter.IsZero() {
		fmt.Fprintf(w, "next: after %s, run: caddy sso keys finish\n", rep.FinishAfter.Local().Format(keys.TimeLayout))
	}
}
