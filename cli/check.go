package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/adminapi"
	"github.com/caddy-sso/caddy-sso/check"
	"github.com/caddy-sso/caddy-sso/internal/termtext"
	"github.com/caddy-sso/caddy-sso/store/backend"
	"github.com/caddy-sso/caddy-sso/store/bolt"
)

func checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Checks each IdP of a config, or with --store the integrity of a store file",
		Long: `Adapts the config (--config, --adapter, as caddy validate), then for each
identity provider fetches the OIDC discovery document and JWKS, or loads and
parses the SAML metadata (warning on signing certificates that expire within
30 days), and prints the values the IdP administrator must enter: redirect
URI or ACS URL, entity ID, metadata URL and the claims to map, per site that
uses the IdP. Exits non-zero when anything is an error.

With --store FILE it checks a bbolt store file instead: it opens it
read-only and verifies that every index entry points at a record holding the
value it is keyed on, that every record has its index entries, and that the
counters match the records. It changes nothing. It exits non-zero, listing
what is wrong, when the file is damaged or inconsistent. For the store of a
running Caddy, which holds the file, use --running: the same check runs in
that Caddy, in one read transaction, through its admin endpoint.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			config, _ := c.Flags().GetString("config")
			store, _ := c.Flags().GetString("store")
			running, _ := c.Flags().GetBool("running")
			if store != "" || running {
				if config != "" || store != "" && running {
					return errors.New("give one of --config (check the IdPs of a config), --store (check a store file) and --running (check the running Caddy's store)")
				}
				return checkStore(c, store)
			}
			adapter, _ := c.Flags().GetString("adapter")
			timeout, _ := c.Flags().GetDuration("timeout")
			cfg, file, _, err := caddycmd.LoadConfig(config, adapter)
			if err != nil {
				return err
			}
			if len(cfg) == 0 {
				return errors.New("no config: give --config")
			}
			report, err := check.Run(c.Context(), cfg, &http.Client{Timeout: timeout}, time.Now())
			if err != nil {
				return err
			}
			report.Config = file
			if asJSON(c) {
				err = printJSON(c, report)
			} else {
				err = report.Print(c.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if !report.OK {
				return fmt.Errorf("check found %d error(s)", report.Errors)
			}
			return nil
		},
	}
	cmd.Flags().Duration("timeout", 10*time.Second, "Timeout of each request to an IdP; with --running, how long to wait for the admin endpoint (30s when not given)")
	cmd.Flags().Bool("running", false, "Check the store of the running Caddy, through its admin endpoint")
	return cmd
}

// checkStore runs the store's integrity check (bolt.DB.Check): on the
// file the --store value raw names, which no Caddy may hold, read-only;
// or, with no raw, in the running Caddy through the admin API. A file that
// does not open (damaged, a newer schema, locked) is an error naming the
// file and what to do, as Open words it. Messages never show raw itself,
// which may be a DSN holding a password, but the parsed spec.
func checkStore(c *cobra.Command, raw string) error {
	var sc *adminapi.StoreCheck
	if raw == "" {
		api, err := adminClient(c)
		if err != nil {
			return err
		}
		if sc, err = api.Check(c.Context()); err != nil {
			return err
		}
	} else {
		s, err := parseStore(c.ErrOrStderr(), "--store", raw)
		if err != nil {
			return err
		}
		if s.Backend != backend.Bolt {
			return fmt.Errorf("--store %s: only bbolt stores have an integrity check (PostgreSQL keeps its own indexes)", s)
		}
		r, err := checkGuarded(c.Context(), s.Path)
		if errors.Is(err, errStoreInUse) {
			return fmt.Errorf("%w; to check the store of a running Caddy, use --running", err)
		}
		if err != nil {
			return err
		}
		sc = adminapi.NewStoreCheck(s.Path, r.Schema, r.Records, r.Problems, r.More)
	}
	var err error
	if asJSON(c) {
		err = printJSON(c, sc)
	} else {
		err = printStoreCheck(c.OutOrStdout(), sc)
	}
	if err != nil {
		return err
	}
	if !sc.OK {
		return fmt.Errorf("store %s is inconsistent: %d problem(s); restore a backup with `caddy sso restore`", sc.Store, len(sc.Problems)+sc.More)
	}
	return nil
}

// checkGuarded opens the file read-only and runs its check, turning a
// fault on a garbled page into an error: bbolt trusts the page pointers
// it follows, and a damaged file can make it find a page of the wrong
// type or read past its mapping, which would otherwise crash the command
// instead of reporting the damage.
func checkGuarded(ctx context.Context, path string) (r *bolt.CheckReport, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("store %s is damaged: reading it failed (%v); restore a backup with `caddy sso restore`", path, p)
		}
	}()
	st, err := openOfflineSpec(ctx, backend.Spec{Backend: backend.Bolt, Path: path, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.(*bolt.DB).Check(ctx)
}

func printStoreCheck(w io.Writer, sc *adminapi.StoreCheck) error {
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	p("Store %s (schema %d): %d user(s), %d group(s), %d session(s), %d audit event(s)\n",
		sc.Store, sc.Schema, sc.Users, sc.Groups, sc.Sessions, sc.Events)
	if sc.OK {
		p("✓ every index entry points at its record, every record has its index entries, the counters match\n")
		return err
	}
	for _, pr := range sc.Problems {
		p("✗ %s\n", termtext.Line(pr)) // problems quote stored keys and values
	}
	if sc.More > 0 {
		p("✗ … and %d more\n", sc.More)
	}
	return err
}
