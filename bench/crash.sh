#!/usr/bin/env bash
# Crash consistency, many times (docs/operations.md, "Limits and behaviour
# under failure"): runs internal/stresstest's TestCrashConsistency with
# ROUNDS kill -9 and restart rounds on one store, LOGINS concurrent
# sign-ins (OIDC and SAML) per round plus SCIM writes, the kill at a random
# moment each round. STRESS_SEED=<n> repeats a run.
#
#	bench/crash.sh                     # 20 rounds of 200 sign-ins
#	ROUNDS=100 bench/crash.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STRESS_CRASH_ROUNDS=${ROUNDS:-20} STRESS_CRASH_LOGINS=${LOGINS:-200} \
	go test -count=1 -timeout 2h -run '^TestCrashConsistency$' -v ./internal/stresstest/
