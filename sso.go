// Package caddysso puts SAML and OpenID Connect single sign-on in front of
// any web app served by Caddy, with Just-In-Time provisioning into an
// embedded store and SCIM 2.0. Importing it registers the Caddy modules
// and the `caddy sso` command:
//
//	xcaddy build --with github.com/caddy-sso/caddy-sso
//
// The modules themselves live in package caddymodule, the command in
// package cli.
package caddysso

import (
	// Registers the sso app, the sso and sso_scim handlers, their
	// Caddyfile syntax and the admin API.
	_ "github.com/caddy-sso/caddy-sso/caddymodule"
	// Registers `caddy sso` (users, sessions, audit, backup, check).
	_ "github.com/caddy-sso/caddy-sso/cli"
)
