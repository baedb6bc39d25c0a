#!/usr/bin/env bash
# SCIM load check against a real Caddy (issue 4: 25 requests/s for 30 s with
# no error). It builds ./cmd/caddy and provision/scim/scimload, starts that
# Caddy on loopback with a fresh bbolt store and a site that has nothing but
# sso_scim, and drives it with scimload: every simulated user goes through
# what Entra and Okta do (look up by userName, create, read, update,
# deactivate, delete). It exits non-zero on any failed request or a missed
# rate.
#
#	bench/scim-load.sh                        # 25/s for 30s
#	RATE=50 DURATION=1m bench/scim-load.sh
#	SCIM_URL=https://scim.example.com/scim/v2 SCIM_TOKEN=… bench/scim-load.sh
#	                                          # an already running site instead
#
# Settings (environment): RATE (25), DURATION (30s), WORKERS (8), PORT
# (18480) and ADMIN_PORT (18481) for the local Caddy, KEEP=1 to keep its
# directory (store, logs) afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-25}
DURATION=${DURATION:-30s}
WORKERS=${WORKERS:-8}
PORT=${PORT:-18480}
ADMIN_PORT=${ADMIN_PORT:-18481}

work=$(mktemp -d "${TMPDIR:-/tmp}/scim-load.XXXXXX")
caddy_pid=""
cleanup() {
	if [ -n "$caddy_pid" ]; then
		kill "$caddy_pid" 2>/dev/null || true
		wait "$caddy_pid" 2>/dev/null || true
	fi
	if [ "${KEEP:-}" = 1 ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

echo "building scimload$([ -z "${SCIM_URL:-}" ] && echo " and caddy")..."
go build -o "$work/scimload" ./provision/scim/scimload

if [ -z "${SCIM_URL:-}" ]; then
	go build -o "$work/caddy" ./cmd/caddy
	# The token reaches Caddy and scimload through the environment only,
	# never a command line (ps) or the config.
	SCIM_TOKEN=$(openssl rand -base64 32)
	export SCIM_TOKEN
	SCIM_URL="http://127.0.0.1:$PORT/scim/v2"
	# The IdP is never contacted: SCIM needs only its name. A loopback
	# issuer is accepted over plain http, and OIDC discovery is lazy.
	cat >"$work/Caddyfile" <<EOF
{
	admin 127.0.0.1:$ADMIN_PORT
	persist_config off
	auto_https off
	storage file_system $work/storage
	log {
		output file $work/caddy.log
		level INFO
	}
	sso {
		store bolt $work/sso.db
		idp entra oidc {
			issuer http://127.0.0.1:9/entra
			client_id scim-load
			jit
		}
	}
}

http://127.0.0.1:$PORT {
	sso_scim {
		idp entra {env.SCIM_TOKEN}
	}
}
EOF
	"$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.out" 2>&1 &
	caddy_pid=$!
	for _ in $(seq 1 100); do
		if curl -fs -o /dev/null -H "Authorization: Bearer $SCIM_TOKEN" "$SCIM_URL/ServiceProviderConfig"; then
			break
		fi
		if ! kill -0 "$caddy_pid" 2>/dev/null; then
			echo "caddy exited:"; cat "$work/caddy.out"; exit 1
		fi
		sleep 0.1
	done
	echo "caddy $("$work/caddy" version | head -c 40) serving $SCIM_URL (pid $caddy_pid)"
elif [ -z "${SCIM_TOKEN:-}" ]; then
	echo "SCIM_URL needs SCIM_TOKEN" >&2
	exit 2
fi

echo "scimload: $RATE requests/s for $DURATION, $WORKERS workers"
status=0
"$work/scimload" -url "$SCIM_URL" -rate "$RATE" -duration "$DURATION" -workers "$WORKERS" || status=$?

if [ -n "$caddy_pid" ]; then
	errors=$(grep -c '"level":"error"' "$work/caddy.log" || true)
	echo "caddy log: $errors error lines"
	if [ "$errors" != 0 ]; then
		grep '"level":"error"' "$work/caddy.log" | head -5
		status=1
	fi
	echo "caddy max RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$caddy_pid/status" 2>/dev/null || echo unknown)"
fi
exit $status
