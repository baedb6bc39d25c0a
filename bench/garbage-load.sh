#!/usr/bin/env bash
# Unauthenticated garbage against the sign-in endpoints (docs/security.md,
# "Unauthenticated traffic"): N garbage OIDC callbacks and SAML ACS posts
# (half each, no sign-in begun, forged flow cookies among them) against a
# real Caddy with caddy-sso, in front of local IdPs that count requests,
# all on loopback. Prints progress, then the store growth, the audit
# events and single-use IDs added, and the requests the IdPs got; exits
# non-zero unless the store grew by less than 1 MiB, nothing was written
# but audit events within their budget (10 a minute per instance) and no
# request reached an IdP. Bounded by TIMEOUT.
#
#	bench/garbage-load.sh                      # 10,000 requests, 8 connections
#	N=50000 CONNECTIONS=16 TIMEOUT=5m bench/garbage-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
CONNECTIONS=${CONNECTIONS:-8}
TIMEOUT=${TIMEOUT:-3m}

work=$(mktemp -d "${TMPDIR:-/tmp}/sso-garbage.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "building bench/garbageload"
go build -o "$work/garbageload" ./bench/garbageload
nice -n 10 "$work/garbageload" -n "$N" -c "$CONNECTIONS" -timeout "$TIMEOUT"
