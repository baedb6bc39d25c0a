#!/usr/bin/env bash
# What sso costs in front of reverse_proxy (README.md, Performance: the budget is
# at least 97% of bare throughput, p50 at most 1.05x, Caddy's CPU per request
# within 3 µs of bare). One Caddy, built from this repository, serves three
# loopback sites that proxy to the same upstream:
#
#	bare     reverse_proxy alone
#	sso      sso + reverse_proxy
#	sso-jwt  sso with an access rule (allow group) and identity_jwt + reverse_proxy
#
# The upstream is bench/upstream, a plain net/http server in its own
# process: a second site in the same Caddy would put the upstream's CPU on
# the core being measured, and a second Caddy would be a heavier app than
# the ones sso protects. Before the load, bench/mksession signs in for real
# through the sso site against the in-process OpenID provider (one session
# serves both sso sites: they share the store). wrk then sends every site
# the same request (a browser's navigation, or with REQUEST=minimal only
# the cookies: the session's between two of the app's), one site after
# the other, round after round, starting each round with the next site, so
# that drift in the machine's speed falls on all of them alike. Caddy runs
# on one core with GOMAXPROCS=1; wrk and the upstream on the other.
#
# Per site it prints the median over rounds of the per-round ratios to bare
# (throughput, p50, p99) and of Caddy's CPU per request, from
# /proc/<pid>/stat (utime+stime over the requests wrk counted), which is
# steadier on a shared machine than requests per second; and the upstream's
# CPU per request the same way.
#
#	bench/proxy.sh                          # 7 rounds of 10s per site, 10 connections
#	ROUNDS=9 DURATION=15s bench/proxy.sh
#	PROFILE=/tmp/prof bench/proxy.sh        # also CPU and allocation profiles of bare and sso
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-7}
CONNECTIONS=${CONNECTIONS:-10}
SITES=${SITES:-bare sso sso-jwt}
BASE_PORT=${BASE_PORT:-18500}
PROFILE=${PROFILE:-}
# REQUEST=browser sends what Chromium sends on a navigation (the header set
# of BenchmarkAuthenticatedRequest), REQUEST=minimal only the Cookie header.
# Either way the session cookie sits between two of the app's own.
REQUEST=${REQUEST:-browser}

upstream_port=$BASE_PORT admin_port=$((BASE_PORT + 1)) idp_port=$((BASE_PORT + 9))
declare -A port=([bare]=$((BASE_PORT + 2)) [sso]=$((BASE_PORT + 3)) [sso-jwt]=$((BASE_PORT + 4)))

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sso-proxy.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

case $REQUEST in
browser | minimal) ;;
*)
	echo "REQUEST must be browser or minimal"
	exit 1
	;;
esac

# Caddy listens with SO_REUSEPORT, so a forgotten instance on these ports
# would silently share the load (and the sign-in) with this one.
for p in "$upstream_port" "$admin_port" "$idp_port" "${port[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "port $p is in use; stop what listens there or set BASE_PORT"
		exit 1
	fi
done

echo "building caddy, upstream and mksession"
go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/upstream" ./bench/upstream
go build -o "$work/mksession" ./bench/mksession

pin_caddy=() pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_caddy=(taskset -c 0) pin_load=(taskset -c 1)
fi

cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:$admin_port
	persist_config off
	auto_https off
	storage file_system $work/storage
	log {
		level ERROR
	}
	sso {
		store bolt $work/sso.db
		idp bench oidc {
			issuer http://127.0.0.1:$idp_port
			client_id bench
			client_secret bench-secret
			jit
		}
	}
}

http://127.0.0.1:${port[bare]} {
	reverse_proxy 127.0.0.1:$upstream_port
}

http://127.0.0.1:${port[sso]} {
	sso bench
	reverse_proxy 127.0.0.1:$upstream_port
}

http://127.0.0.1:${port[sso-jwt]} {
	sso bench {
		allow group bench
		identity_jwt
	}
	reverse_proxy 127.0.0.1:$upstream_port
}
CADDY

GOMAXPROCS=1 "${pin_load[@]}" "$work/upstream" -listen "127.0.0.1:$upstream_port" >"$work/upstream.log" 2>&1 &
upstream_pid=$!
pids+=("$upstream_pid")
GOMAXPROCS=1 "${pin_caddy[@]}" "$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:${port[bare]}/" 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:${port[bare]}/" || { echo "Caddy did not start"; cat "$work/caddy.log"; exit 1; }

echo "signing in through the sso site at the in-process OpenID provider"
token=$("$work/mksession" -signin "http://127.0.0.1:${port[sso]}/" -idp-listen "127.0.0.1:$idp_port") ||
	{ cat "$work/caddy.log"; exit 1; }
request=(-H "Cookie: theme=dark; sso_session=$token; lang=en")
if [ "$REQUEST" = browser ]; then
	request+=(
		-H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
		-H 'Accept-Encoding: gzip, deflate, br, zstd'
		-H 'Accept-Language: en-GB,en;q=0.9'
		-H 'Cache-Control: max-age=0'
		-H 'Sec-Ch-Ua: "Chromium";v="156", "Not)A;Brand";v="24"'
		-H 'Sec-Ch-Ua-Mobile: ?0'
		-H 'Sec-Ch-Ua-Platform: "Linux"'
		-H 'Sec-Fetch-Dest: document'
		-H 'Sec-Fetch-Mode: navigate'
		-H 'Sec-Fetch-Site: none'
		-H 'Sec-Fetch-User: ?1'
		-H 'Upgrade-Insecure-Requests: 1'
		-H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36'
	)
fi

# Every site answers the same request; the sso sites hand the upstream
# the signed-in user, and the one with identity_jwt a signed token too.
for site in $SITES; do
	got=$(curl -fsS "${request[@]}" "http://127.0.0.1:${port[$site]}/") || { echo "$site: request failed"; exit 1; }
	case $site in
	bare) [ "$got" = "hello " ] || { echo "bare: upstream answered '$got'"; exit 1; } ;;
	*) [ "$got" != "hello " ] || { echo "$site: the upstream got no identity"; exit 1; } ;;
	esac
done
# sso-jwt's rule lets this user in; a stranger is refused (so the rule runs).
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "http://127.0.0.1:${port[sso-jwt]}/")" = 401 ] ||
	{ echo "sso-jwt: an anonymous request was not refused"; exit 1; }

# cpu_ticks prints a process's utime+stime in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# load <site> prints: requests/s p50-µs p99-µs caddy-µs/request upstream-µs/request
load() {
	local c0 u0 c1 u1 out
	c0=$(cpu_ticks "$caddy_pid") u0=$(cpu_ticks "$upstream_pid")
	out=$("${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${request[@]}" "http://127.0.0.1:${port[$1]}/")
	c1=$(cpu_ticks "$caddy_pid") u1=$(cpu_ticks "$upstream_pid")
	if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
		echo "$1: wrk saw errors:" >&2
		echo "$out" >&2
		return 1
	fi
	awk -v c="$((c1 - c0))" -v u="$((u1 - u0))" -v hz="$hz" '
		function us(v) {
			if (v ~ /us$/) return v + 0
			if (v ~ /ms$/) return v * 1000
			if (v ~ /s$/) return v * 1000000
			return v
		}
		$1 == "50%" { p50 = us($2) }
		$1 == "99%" { p99 = us($2) }
		/requests in/ { n = $1 }
		/^Requests\/sec/ { rps = $2 }
		END { printf "%.0f %.1f %.1f %.2f %.2f\n", rps, p50, p99, c * 1e6 / hz / n, u * 1e6 / hz / n }' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

read -r -a sites <<<"$SITES"
declare -A results # site,round -> "rps p50 p99 caddy upstream"
for round in $(seq "$ROUNDS"); do
	echo "round $round/$ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	for i in $(seq 0 $((${#sites[@]} - 1))); do
		site=${sites[$(((i + round - 1) % ${#sites[@]}))]}
		r=$(load "$site")
		results[$site,$round]=$r
		read -r rps p50 p99 cu uu <<<"$r"
		printf '  %-8s %7s req/s  p50 %6s µs  p99 %7s µs  Caddy %6s µs/req  upstream %6s µs/req\n' "$site" "$rps" "$p50" "$p99" "$cu" "$uu"
	done
done

# field <site> <round> <n>: the n-th number of a result.
field() { cut -d' ' -f"$3" <<<"${results[$1,$2]}"; }
echo
echo "medians over $ROUNDS rounds of ${DURATION} (c$CONNECTIONS, $REQUEST request); ratios are per round against bare"
printf '%-8s %10s %10s %10s %10s %12s %12s %12s\n' site req/s throughput p50 p99 "Caddy µs/req" "vs bare µs" "upstream µs"
for site in "${sites[@]}"; do
	rps=() thr=() p50=() p99=() cu=() dcu=() uu=()
	for round in $(seq "$ROUNDS"); do
		rps+=("$(field "$site" "$round" 1)")
		cu+=("$(field "$site" "$round" 4)")
		uu+=("$(field "$site" "$round" 5)")
		if [ -n "${results[bare,$round]:-}" ]; then
			thr+=("$(awk -v a="$(field "$site" "$round" 1)" -v b="$(field bare "$round" 1)" 'BEGIN {print a / b}')")
			p50+=("$(awk -v a="$(field "$site" "$round" 2)" -v b="$(field bare "$round" 2)" 'BEGIN {print a / b}')")
			p99+=("$(awk -v a="$(field "$site" "$round" 3)" -v b="$(field bare "$round" 3)" 'BEGIN {print a / b}')")
			dcu+=("$(awk -v a="$(field "$site" "$round" 4)" -v b="$(field bare "$round" 4)" 'BEGIN {print a - b}')")
		fi
	done
	m() { if [ $# -gt 0 ]; then printf '%s\n' "$@" | median; else echo -; fi; }
	printf '%-8s %10.0f %10.3f %10.3f %10.3f %12.2f %12.2f %12.2f\n' "$site" "$(m "${rps[@]}")" \
		"$(m "${thr[@]}")" "$(m "${p50[@]}")" "$(m "${p99[@]}")" "$(m "${cu[@]}")" "$(m "${dcu[@]}")" "$(m "${uu[@]}")"
done

if [ -n "$PROFILE" ]; then
	# Profiles under the same load: 10 s of CPU, and the allocations made
	# during the run (the difference of two heap profiles).
	mkdir -p "$PROFILE"
	for site in bare sso; do
		echo "profiling $site into $PROFILE"
		curl -fsS -o "$PROFILE/$site.allocs0.pb.gz" "http://127.0.0.1:$admin_port/debug/pprof/allocs"
		"${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d12s "${request[@]}" "http://127.0.0.1:${port[$site]}/" >/dev/null &
		wrk_pid=$!
		sleep 1
		curl -fsS -o "$PROFILE/$site.cpu.pb.gz" "http://127.0.0.1:$admin_port/debug/pprof/profile?seconds=10"
		wait "$wrk_pid"
		curl -fsS -o "$PROFILE/$site.allocs1.pb.gz" "http://127.0.0.1:$admin_port/debug/pprof/allocs"
	done
	cp "$work/caddy" "$PROFILE/caddy"
	echo "go tool pprof -top $PROFILE/sso.cpu.pb.gz; go tool pprof -sample_index=alloc_space -top -diff_base $PROFILE/sso.allocs0.pb.gz $PROFILE/sso.allocs1.pb.gz"
fi
