#!/usr/bin/env bash
# Throughput of Caddy with and without the sso handler (docs/architecture.md,
# "Performance budgets"; bench/proxy.sh measures the real path, in front of
# reverse_proxy). One Caddy serves two loopback
# sites that answer the same small response: one behind `sso` with a valid
# session cookie, one without (sent the same cookie). wrk (apt-get install -y wrk) loads each in
# turn with the same connections and duration, alternating ROUNDS times, and
# the medians are compared. On a 2-core machine Caddy is pinned to one core
# (GOMAXPROCS=1) and wrk to the other, so that the load generator does not
# take its CPU from the server it measures.
#
#	bench/throughput.sh                 # 3 rounds of 5s per site, 32 connections
#	ROUNDS=5 DURATION=10s bench/throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
PLAIN_PORT=${PLAIN_PORT:-18490}
SSO_PORT=${SSO_PORT:-18491}

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sso-throughput.XXXXXX")
caddy_pid=""
cleanup() {
	[ -n "$caddy_pid" ] && kill "$caddy_pid" 2>/dev/null && wait "$caddy_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/caddy" ./cmd/caddy
token=$(go run ./bench/mksession -store "$work/sso.db")

# The IdP is never contacted: every request carries a valid session.
cat >"$work/Caddyfile" <<CADDY
{
	admin off
	persist_config off
	auto_https off
	storage file_system $work/storage
	log {
		level ERROR
	}
	sso {
		store bolt $work/sso.db
		idp bench oidc {
			issuer http://127.0.0.1:1
			client_id bench
		}
	}
}

http://127.0.0.1:$PLAIN_PORT {
	respond "hello {http.request.header.X-Forwarded-User}"
}

http://127.0.0.1:$SSO_PORT {
	sso bench
	respond "hello {http.request.header.X-Forwarded-User}"
}
CADDY
pin_caddy=() pin_wrk=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_caddy=(taskset -c 0) pin_wrk=(taskset -c 1)
	export GOMAXPROCS=1
fi
"${pin_caddy[@]}" "$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 50); do
	curl -fsS -o /dev/null "http://127.0.0.1:$PLAIN_PORT/" 2>/dev/null && break
	sleep 0.1
done
# The session works: the sso site answers with the user's ID.
curl -fsS -H "Cookie: sso_session=$token" "http://127.0.0.1:$SSO_PORT/" | grep -q "hello ." ||
	{ echo "the session cookie was not accepted"; cat "$work/caddy.log"; exit 1; }

rps() {
	"${pin_wrk[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
plain=() withsso=()
for round in $(seq "$ROUNDS"); do
	plain+=("$(rps -H "Cookie: sso_session=$token" "http://127.0.0.1:$PLAIN_PORT/")")
	withsso+=("$(rps -H "Cookie: sso_session=$token" "http://127.0.0.1:$SSO_PORT/")")
	echo "round $round: without sso ${plain[-1]} req/s, with sso ${withsso[-1]} req/s"
done
p=$(printf '%s\n' "${plain[@]}" | median)
w=$(printf '%s\n' "${withsso[@]}" | median)
awk -v a="$w" -v b="$p" 'BEGIN { printf "median with sso: %.0f req/s, without: %.0f req/s: %.1f%%\n", a, b, 100*a/b }'
