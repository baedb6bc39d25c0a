// Command caddy is Caddy with its standard modules and caddy-sso.
//
//	go run ./cmd/caddy run --config Caddyfile
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sso/caddy-sso"
)

func main() {
	caddycmd.Main()
}
