package check

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/caddymodule"
)

// probe adds what idpcheck found about the IdP (the same findings the sso
// app logs at start) to its report. A setting the probe reads whose
// placeholder resolves to nothing is reported by name instead: Caddy's
// start refuses it, and probing what is left of it would probe another URL.
func probe(ctx context.Context, client *http.Client, c *caddymodule.IdPConfig, repl *caddy.Replacer, ic *IdPCheck, now time.Time) {
	if err := unresolved(c, repl); err != nil {
		ic.add(Error, "%v", err)
		return
	}
	ic.Checks = append(ic.Checks, c.Probe(ctx, client, repl, now)...)
}

// unresolved returns an error naming the first placeholder of the settings
// Probe resolves that is empty here, as Caddy's start does (caddymodule's
// resolve); it says that the check read its own environment and files,
// which need not be those of the Caddy that runs the config.
func unresolved(c *caddymodule.IdPConfig, repl *caddy.Replacer) error {
	var settings [][2]string
	if o := c.OIDC; o != nil {
		settings = append(settings, [2]string{"issuer", o.Issuer})
	}
	if s := c.SAML; s != nil {
		settings = append(settings, [2]string{"metadata_url", s.MetadataURL}, [2]string{"metadata_file", s.MetadataFile}, [2]string{"idp_entity_id", s.IdPEntityID})
	}
	for _, s := range settings {
		_, err := repl.ReplaceOrErr(s[1], true, false) // err: "evaluated placeholder {env.X} is empty"; a request's ({http.…}) stay
		if err == nil {
			continue
		}
		empty, ok := strings.CutPrefix(err.Error(), "evaluated placeholder ")
		switch {
		case !ok:
			return fmt.Errorf("%s: %w", s[0], err)
		case strings.HasPrefix(empty, "{file."):
			return fmt.Errorf("%s %s here: is the file there, readable by this command's user, and not empty? (caddy sso check reads the files itself, as Caddy does at start)", s[0], empty)
		default:
			return fmt.Errorf("%s %s here: is the variable set in this command's environment? (caddy sso check reads its own environment, Caddy its own at start)", s[0], empty)
		}
	}
	return nil
}
