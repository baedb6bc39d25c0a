#!/usr/bin/env bash
# Throughput of Caddy with and without the sso handler (DESIGN.md section 8:
# at least 95% of the throughput without it). One Caddy serves two loopback
# sites that answer the same small response: one behind `sso` with a valid
# session cookie, one without. wrk (apt-get install -y wrk) loads each in
# turn with the same connections and duration.
#
#	bench/throughput.sh                 # 10s per site, 2 threads, 32 connections
#	DURATION=30s CONNECTIONS=64 bench/throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
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
"$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 50); do
	curl -fsS -o /dev/null "http://127.0.0.1:$PLAIN_PORT/" 2>/dev/null && break
	sleep 0.1
done
# The session works: the sso site answers with the user's ID.
curl -fsS -H "Cookie: sso_session=$token" "http://127.0.0.1:$SSO_PORT/" | grep -q "hello ." ||
	{ echo "the session cookie was not accepted"; cat "$work/caddy.log"; exit 1; }

echo "== without sso"
plain=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$PLAIN_PORT/" | tee "$work/plain.txt" | awk '/Requests\/sec/ {print $2}')
cat "$work/plain.txt"
echo "== with sso (valid session)"
withsso=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "Cookie: sso_session=$token" "http://127.0.0.1:$SSO_PORT/" | tee "$work/sso.txt" | awk '/Requests\/sec/ {print $2}')
cat "$work/sso.txt"
awk -v a="$withsso" -v b="$plain" 'BEGIN { printf "with sso: %.0f req/s, without: %.0f req/s: %.1f%%\n", a, b, 100*a/b }'
