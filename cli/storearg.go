package cli

import (
	"fmt"
	"io"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sso/caddy-sso/store/backend"
	"github.com/caddy-sso/caddy-sso/store/postgres"
)

// parseStore reads a store argument (--store, --from, --to; flag names it
// in messages) as backend.Parse does, after resolving Caddy's placeholders
// in it from this process's environment, as the Caddyfile's dsn is: with
// --store 'postgres:{env.SSO_DATABASE_URL}' the connection string never
// appears in the command line, which any local user can read (ps,
// /proc/PID/cmdline) while the command runs. A literal connection string
// that holds a password is still accepted, with a warning to w saying so.
//
// Placeholders Caddy does not know are left as written (a password may
// hold braces); one that resolves to nothing, such as an unset variable,
// is an error naming it. Neither the argument nor a value is ever shown.
func parseStore(w io.Writer, flag, raw string) (backend.Spec, error) {
	expanded, err := caddy.NewReplacer().ReplaceOrErr(raw, true, false)
	if err != nil {
		// Caddy's message names the placeholder ({env.NAME}), never a
		// value; an unset variable reads as empty, as in the Caddyfile.
		return backend.Spec{}, fmt.Errorf("%s: %w: is the variable set in this command's environment?", flag, err)
	}
	spec, err := backend.Parse(expanded)
	if err != nil {
		return backend.Spec{}, fmt.Errorf("%s: %w", flag, err)
	}
	if literalPassword(raw) {
		fmt.Fprintf(w, "warning: the %s connection string holds a password, which other local users can read in the process list "+
			"while this command runs; use %s 'postgres:{env.SSO_DATABASE_URL}', or PGPASSWORD or ~/.pgpass, instead\n", flag, flag)
	}
	return spec, nil
}

// literalPassword reports whether raw, as typed, is a PostgreSQL store
// whose connection string holds a password: with every placeholder
// removed, so that a password given as one ("postgres://u:{env.PW}@db/sso")
// is not the command line's, while a literal one next to a placeholder
// still is.
func literalPassword(raw string) bool {
	spec, err := backend.Parse(caddy.NewEmptyReplacer().ReplaceAll(raw, ""))
	return err == nil && spec.Backend == backend.Postgres && postgres.HasPassword(spec.DSN)
}
