#!/usr/bin/env bash
# Requests that fail during `caddy reload` under load (docs/operations.md,
# "Limits and behaviour under failure"): 20 reloads with a changed
# Caddyfile while wrk loads a protected route with a session, for Caddy's
# defaults and each setting that might matter, then the same with a new
# connection per request and with Go's client (which, like browsers,
# resends a GET whose kept-alive connection was closed before an answer).
#
#	bench/reload.sh
#	RELOADS=5 bench/reload.sh      # shorter
set -euo pipefail
cd "$(dirname "$0")/.."
RELOADS=${RELOADS:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/sso-reload.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/reload" ./bench/reload
run() {
	echo "== $*"
	"$work/reload" -caddy "$work/caddy" -reloads "$RELOADS" "$@" | tail -1
}
run
run -global 'grace_period 10s'
run -global 'shutdown_delay 5s;grace_period 10s'
run -global 'servers {;timeouts {;idle 2m;};}'
run -client wrk-close
run -client go
