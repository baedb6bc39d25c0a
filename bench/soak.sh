#!/usr/bin/env bash
# Soak (docs/operations.md, "Limits and behaviour under failure"): Caddy on a
# fresh store under mixed traffic (sign-ins over OIDC and SAML, requests
# with sessions, SCIM lookups and writes, logouts, garbage callbacks) for
# DURATION, sampled every SAMPLE into a CSV (resident memory anonymous and
# file-backed, goroutines, open files, store size), then plotted to a PNG.
# Sign-ins come from a population of POPULATION people (500), created by
# JIT on their first sign-in, so that the store's data levels off and what
# still grows is the gateway's own state. None of them may grow without
# bound.
#
#	bench/soak.sh                               # 30 minutes, docs/soak.png
#	DURATION=2m SAMPLE=10s PNG=/tmp/soak.png bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30m}
SAMPLE=${SAMPLE:-1m}
RATE=${RATE:-30}
POPULATION=${POPULATION:-500}
CSV=${CSV:-docs/soak.csv}
PNG=${PNG:-docs/soak.png}
work=$(mktemp -d "${TMPDIR:-/tmp}/sso-soak.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/mixload" ./bench/mixload
"$work/mixload" -caddy "$work/caddy" -duration "$DURATION" -sample "$SAMPLE" -rate "$RATE" -population "$POPULATION" -csv "$CSV"
csv=$(realpath "$CSV") png=$(realpath -m "$PNG")
(cd bench/plot && go run . -csv "$csv" -png "$png" -title "soak, $DURATION at $RATE operations/s")
echo "wrote $CSV and $PNG"
