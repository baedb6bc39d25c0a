package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/caddy-sso/caddy-sso/caddymodule"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

// refuseRunning returns an error when restore, given no --store, would
// write the default store while a Caddy runs the sso app: the admin
// endpoint that --address or --config names, or the default one, is asked
// for the app's store. A restore into the default store would otherwise
// report success while the running Caddy goes on with its own store (the
// demo's, for one), and restoring into that store needs Caddy stopped.
// --address or --config name a running Caddy, which restore never writes
// through: without an sso app answering there they are refused too, rather
// than ignored.
func refuseRunning(c *cobra.Command, file string) error {
	explicit := c.Flags().Changed("address") || c.Flags().Changed("config")
	addr, store, err := runningStore(c)
	switch {
	case err == nil:
		return fmt.Errorf("a Caddy running the sso app answers at %s, with %s: restore works offline only; "+
			"stop that Caddy, then run: caddy sso restore --store %s %s", addr, store.describe, store.arg, file)
	case explicit:
		return fmt.Errorf("--address and --config name a running Caddy, which restore does not write through (%w); "+
			"it restores offline into the store --store names: caddy sso restore --store <store> %s", err, file)
	}
	return nil
}

// runningStoreArg is how a running sso app's store is shown: described,
// and as a --store argument (a literal connection string is not shown: it
// may hold a password).
type runningStoreArg struct{ describe, arg string }

// runningStore asks the admin endpoint of --address, --config or the
// default for the sso app's config, of which it reads only the store; an
// error says why there is none. Caddy's /config/ answers lack the sso
// module's mark, which adminEndpoint.do requires, and are not quoted here:
// the app's config may hold secrets.
func runningStore(c *cobra.Command) (string, runningStoreArg, error) {
	ep, err := commandAdminEndpoint(c)
	if err != nil {
		address, _ := c.Flags().GetString("address")
		return address, runningStoreArg{}, err
	}
	addr := ep.addr
	ctx, cancel := context.WithTimeout(cmp.Or(c.Context(), context.Background()), ep.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.origin+"/config/apps/sso", nil)
	if err != nil {
		return addr, runningStoreArg{}, fmt.Errorf("making request: %w", err)
	}
	if ep.tcp {
		req.Header.Set("Origin", ep.origin)
	}
	resp, err := ep.client.Do(req) //nolint:gosec // the operator names the address
	if err != nil {
		return addr, runningStoreArg{}, fmt.Errorf("cannot reach Caddy's admin endpoint at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var app *struct {
		Store *caddymodule.StoreConfig `json:"store"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	switch {
	case err != nil:
		return addr, runningStoreArg{}, fmt.Errorf("reading the config at %s: %w", addr, err)
	case resp.StatusCode != http.StatusOK || json.Unmarshal(body, &app) != nil:
		return addr, runningStoreArg{}, fmt.Errorf("%s answers HTTP %d, not with Caddy's config", addr, resp.StatusCode)
	case app == nil:
		return addr, runningStoreArg{}, fmt.Errorf("the Caddy at %s runs no sso app", addr)
	}
	return addr, describeStore(app.Store), nil
}

// describeStore shows a running app's store as its config writes it.
func describeStore(s *caddymodule.StoreConfig) runningStoreArg {
	switch {
	case s != nil && s.Backend == "postgres" && strings.HasPrefix(s.DSN, "{") && strings.HasSuffix(s.DSN, "}"):
		return runningStoreArg{"the PostgreSQL database of " + s.DSN + " in its environment", "'postgres:" + s.DSN + "'"}
	case s != nil && s.Backend == "postgres":
		return runningStoreArg{"the PostgreSQL database " + postgres.Describe(s.DSN), "'postgres:{env.SSO_DATABASE_URL}' (its connection string in that variable)"}
	case s != nil && s.Path != "":
		return runningStoreArg{"the store bolt:" + s.Path, "'bolt:" + s.Path + "'"}
	}
	return runningStoreArg{"its default store (sso/sso.db in its data directory)", "<data directory>/sso/sso.db"}
}
