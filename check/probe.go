package check

import (
	"context"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/caddymodule"
)

// probe adds what idpcheck found about the IdP (the same findings the sso
// app logs at start) to its report.
func probe(ctx context.Context, client *http.Client, c *caddymodule.IdPConfig, repl *caddy.Replacer, ic *IdPCheck, now time.Time) {
	ic.Checks = append(ic.Checks, c.Probe(ctx, client, repl, now)...)
}
