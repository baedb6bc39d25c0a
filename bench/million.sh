#!/usr/bin/env bash
# A million users over time (docs/operations.md, "Limits and behaviour under
# failure"): bench/genstore makes a store of USERS users with a session
# each, then bench/mixload runs Caddy on it for DURATION of mixed traffic
# (sign-ins of existing and new users, requests with cached and stored
# sessions, SCIM userName eq lookups and writes, logouts, garbage) and
# reports start time, resident memory (anonymous and file-backed),
# latencies, the longest write-lock hold, file growth, backup time and
# size, and the integrity check's time. Needs about 7 KiB of disk per user
# for the store and as much again for the backup.
#
#	bench/million.sh                                  # 1,000,000 users, 1 hour
#	USERS=100000 DURATION=10m bench/million.sh        # shorter
#	FROM=/big/1m.db bench/million.sh                  # copy a store genstore made
#	                                                  # (-n USERS) instead of making one
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}
DURATION=${DURATION:-1h}
SAMPLE=${SAMPLE:-1m}
RATE=${RATE:-30}
CSV=${CSV:-million.csv}
work=$(mktemp -d "${TMPDIR:-/tmp}/sso-million.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/mixload" ./bench/mixload
go build -o "$work/genstore" ./bench/genstore
start=$(date +%s)
if [ -n "${FROM:-}" ]; then
	# genstore takes about 25 minutes for a million users here; a copy of
	# one it made (never the original: the run changes the store) takes
	# seconds.
	cp --sparse=always "$FROM" "$work/sso.db"
	echo "copied $FROM in $(($(date +%s) - start)) s"
else
	"$work/genstore" -store "$work/sso.db" -n "$USERS" | tail -1
	echo "genstore took $(($(date +%s) - start)) s"
fi
# Start from a cold page cache, as after a reboot (best effort).
sync && echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true
"$work/mixload" -caddy "$work/caddy" -store "$work/sso.db" -users "$USERS" \
	-duration "$DURATION" -sample "$SAMPLE" -rate "$RATE" -csv "$CSV"
