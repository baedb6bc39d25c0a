package cli

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/check"
)

func checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Checks each IdP of a config and prints the values to enter at the IdP",
		Long: `Adapts the config (--config, --adapter, as caddy validate), then for each
identity provider fetches the OIDC discovery document and JWKS, or loads and
parses the SAML metadata (warning on signing certificates that expire within
30 days), and prints the values the IdP administrator must enter: redirect
URI or ACS URL, entity ID, metadata URL and the claims to map, per site that
uses the IdP. Exits non-zero when anything is an error.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			config, _ := c.Flags().GetString("config")
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
	cmd.Flags().Duration("timeout", 10*time.Second, "Timeout of each request to an IdP")
	return cmd
}
