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
# and, with SITES including them, two controls that say where a difference
# comes from:
#
#	bare-headers  reverse_proxy with the seven identity headers set by
#	              request_header: what any app that gets identity headers pays
#	sso-none      sso with headers none + reverse_proxy: the gateway alone
#
# and, beside it, the peers of PEERS when they build (each skipped with one
# line otherwise), built once into CACHE, outside the repository:
#
#	oauth2-proxy    oauth2-proxy standalone (go install from the module proxy)
#	caddy-security  Caddy with caddy-security (xcaddy build from the module proxy)
#
# The upstream is bench/upstream, a plain net/http server in its own
# process: a second site in the same Caddy would put the upstream's CPU on
# the core being measured, and a second Caddy would be a heavier app than
# the ones sso protects. Before the load, bench/mksession signs in for real
# at each gateway against the in-process OpenID provider (one sso session
# serves both sso sites: they share the store). wrk then sends every site
# the same request (a browser's navigation, or with REQUEST=minimal only
# the cookies: the session's between two of the app's), one site after
# the other, round after round, starting each round with the next site, so
# that drift in the machine's speed falls on all of them alike. The
# gateways run on one core with GOMAXPROCS=1; wrk and the upstream on the
# other. The load average is printed before each round: the machine is
# shared, and a busy one shows in the spread of the rounds.
#
# Per site it prints the median over rounds of the per-round ratios to bare
# (throughput, p50, p99) and of the gateway's CPU per request, from
# /proc/<pid>/stat (utime+stime over the requests wrk counted), which is
# steadier on a shared machine than requests per second; the upstream's
# CPU per request the same way; and, for the Caddy sites, Caddy's heap
# allocations and bytes per request, which the machine's load does not
# change at all.
#
#	bench/proxy.sh                          # 7 rounds of 10s per site, 10 connections
#	SITES="bare bare-headers sso sso-none" PEERS= bench/proxy.sh   # where the cost goes
#	ROUNDS=9 DURATION=15s PEERS= bench/proxy.sh
#	PROFILE=/tmp/prof bench/proxy.sh        # also CPU and allocation profiles of each Caddy site
#	PROXY_LOG=exclude bench/proxy.sh        # Caddy's default log excludes reverse_proxy's logger
#
# PROXY_LOG=exclude shows where most of what seven headers cost goes: on
# every request, reverse_proxy builds a logger With the whole request,
# headers included, and zap encodes those fields at once, whatever the log
# level (caddyhttp/reverseproxy/reverseproxy.go, "upstream roundtrip"), so
# each header costs a lower-casing, an allocation and JSON escaping even
# with level ERROR. Excluding the logger from the default log gives it no
# core at all, and With then costs nothing; an operator can do the same
# (log { exclude http.handlers.reverse_proxy }) at the price of
# reverse_proxy's own log lines.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-7}
CONNECTIONS=${CONNECTIONS:-10}
SITES=${SITES:-bare sso sso-jwt}
PEERS=${PEERS-oauth2-proxy caddy-security}
BASE_PORT=${BASE_PORT:-18500}
PROFILE=${PROFILE:-}
PROXY_LOG=${PROXY_LOG:-default}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/caddy-sso-bench}
OAUTH2_PROXY_VERSION=${OAUTH2_PROXY_VERSION:-v7.15.6}
CADDY_SECURITY_VERSION=${CADDY_SECURITY_VERSION:-latest}
XCADDY_VERSION=${XCADDY_VERSION:-v0.4.5}
# REQUEST=browser sends what Chromium sends on a navigation (the header set
# of BenchmarkAuthenticatedRequest), REQUEST=minimal only the Cookie header.
# Either way the session cookie sits between two of the app's own.
REQUEST=${REQUEST:-browser}

upstream_port=$BASE_PORT admin_port=$((BASE_PORT + 1)) idp_port=$((BASE_PORT + 9))
declare -A port=([bare]=$((BASE_PORT + 2)) [sso]=$((BASE_PORT + 3)) [sso-jwt]=$((BASE_PORT + 4))
	[oauth2-proxy]=$((BASE_PORT + 5)) [caddy-security]=$((BASE_PORT + 6))
	[bare-headers]=$((BASE_PORT + 7)) [sso-none]=$((BASE_PORT + 8)))

case $PROXY_LOG in
default) proxy_log= ;;
exclude) proxy_log="exclude http.handlers.reverse_proxy" ;;
*)
	echo "PROXY_LOG must be default or exclude"
	exit 1
	;;
esac
case $REQUEST in
browser | minimal) ;;
*)
	echo "REQUEST must be browser or minimal"
	exit 1
	;;
esac
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 1; }
# Caddy listens with SO_REUSEPORT, so a forgotten instance on these ports
# would silently share the load (and the sign-in) with this one.
for p in "$upstream_port" "$admin_port" "$idp_port" "${port[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "port $p is in use; stop what listens there or set BASE_PORT"
		exit 1
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sso-proxy.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

echo "building caddy, upstream and mksession"
go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/upstream" ./bench/upstream
go build -o "$work/mksession" ./bench/mksession

# why_not <log> prints the line of a failed build that says why.
why_not() { { grep -m1 -E 'not available|[Ee]rror|cannot|undefined' "$1" || grep . "$1" | tail -1; } | sed 's/^[[:space:]]*//'; }

# build_peer <peer> prints the peer's binary, building it into CACHE the
# first time; it fails, with the reason on stderr, when the peer does not
# build here.
build_peer() {
	local bin log
	case $1 in
	oauth2-proxy)
		bin=$CACHE/oauth2-proxy-$OAUTH2_PROXY_VERSION/oauth2-proxy
		log=$CACHE/oauth2-proxy-$OAUTH2_PROXY_VERSION.log
		if [ ! -x "$bin" ]; then
			echo "building oauth2-proxy $OAUTH2_PROXY_VERSION into $CACHE (once)" >&2
			mkdir -p "$(dirname "$bin")"
			(cd "$work" && GOBIN=$(dirname "$bin") go install "github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION") >"$log" 2>&1 ||
				{ echo "oauth2-proxy: does not build: $(why_not "$log")" >&2; return 1; }
		fi
		;;
	caddy-security)
		bin=$CACHE/caddy-security-$CADDY_SECURITY_VERSION/caddy
		log=$CACHE/caddy-security-$CADDY_SECURITY_VERSION.log
		if [ ! -x "$bin" ]; then
			echo "building Caddy with caddy-security $CADDY_SECURITY_VERSION into $CACHE (once)" >&2
			mkdir -p "$(dirname "$bin")"
			(cd "$work" && GOBIN=$CACHE/xcaddy-$XCADDY_VERSION go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION" &&
				"$CACHE/xcaddy-$XCADDY_VERSION/xcaddy" build v2.11.9 --output "$bin" \
					--with "github.com/greenpau/caddy-security@$CADDY_SECURITY_VERSION") >"$log" 2>&1 ||
				{ echo "caddy-security: does not build: $(why_not "$log")" >&2; return 1; }
		fi
		# Built, but this script does not configure its portal yet.
		echo "caddy-security: built, but bench/proxy.sh has no configuration for it yet" >&2
		return 1
		;;
	*)
		echo "$1: unknown peer (expected oauth2-proxy or caddy-security)" >&2
		return 1
		;;
	esac
	echo "$bin"
}
declare -A peer_bin
for peer in $PEERS; do
	if bin=$(build_peer "$peer" 2> >(sed 's/^/  /' >&2)); then
		peer_bin[$peer]=$bin
		SITES="$SITES $peer"
	else
		echo "  $peer skipped"
	fi
done

pin_server=() pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_server=(taskset -c 0) pin_load=(taskset -c 1)
fi

cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:$admin_port
	persist_config off
	auto_https off
	storage file_system $work/storage
	log {
		level ERROR
		$proxy_log
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

http://127.0.0.1:${port[bare-headers]} {
	request_header X-Forwarded-User 5f0c3b9e2a7d41c68e1b0a9d7c3e2f14
	request_header X-Forwarded-Email bench@example.com
	request_header X-Forwarded-Preferred-Username bench@example.com
	request_header X-Forwarded-Groups bench
	request_header X-Forwarded-First-Name Bench
	request_header X-Forwarded-Last-Name User
	request_header X-Forwarded-Idp bench
	reverse_proxy 127.0.0.1:$upstream_port
}

http://127.0.0.1:${port[sso-none]} {
	sso bench {
		headers none
	}
	reverse_proxy 127.0.0.1:$upstream_port
}
CADDY

# wait_up <url> waits for a server to answer.
wait_up() {
	for _ in $(seq 100); do
		curl -sS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

GOMAXPROCS=1 "${pin_load[@]}" "$work/upstream" -listen "127.0.0.1:$upstream_port" >"$work/upstream.log" 2>&1 &
upstream_pid=$!
pids+=("$upstream_pid")
GOMAXPROCS=1 "${pin_server[@]}" "$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")
wait_up "http://127.0.0.1:${port[bare]}/" || { echo "Caddy did not start"; cat "$work/caddy.log"; exit 1; }
declare -A server_pid=([bare]=$caddy_pid [sso]=$caddy_pid [sso-jwt]=$caddy_pid [bare-headers]=$caddy_pid [sso-none]=$caddy_pid)
declare -A cookies # site -> its session cookies, name=value; ...

echo "signing in through the sso site at the in-process OpenID provider"
token=$("$work/mksession" -signin "http://127.0.0.1:${port[sso]}/" -idp-listen "127.0.0.1:$idp_port") ||
	{ cat "$work/caddy.log"; exit 1; }
for site in bare sso sso-jwt bare-headers sso-none; do
	cookies[$site]="sso_session=$token"
done

if [ -n "${peer_bin[oauth2-proxy]:-}" ]; then
	# Its defaults, less logging, with the same IdP, client and upstream.
	# Discovery is skipped because the provider runs only while signing in.
	o2p=http://127.0.0.1:${port[oauth2-proxy]}
	idp=http://127.0.0.1:$idp_port
	GOMAXPROCS=1 "${pin_server[@]}" "${peer_bin[oauth2-proxy]}" --http-address="127.0.0.1:${port[oauth2-proxy]}" \
		--upstream="http://127.0.0.1:$upstream_port/" --provider=oidc --oidc-issuer-url="$idp" \
		--skip-oidc-discovery --login-url="$idp/authorize" --redeem-url="$idp/token" --oidc-jwks-url="$idp/jwks" \
		--client-id=bench --client-secret=bench-secret --redirect-url="$o2p/oauth2/callback" \
		--cookie-secret=0123456789abcdef0123456789abcdef --cookie-secure=false --email-domain='*' \
		--skip-provider-button --code-challenge-method=S256 --scope="openid email profile groups" \
		--request-logging=false --auth-logging=false --standard-logging=false >"$work/oauth2-proxy.log" 2>&1 &
	server_pid[oauth2-proxy]=$!
	pids+=("$!")
	wait_up "$o2p/ping" || { echo "oauth2-proxy did not start"; cat "$work/oauth2-proxy.log"; exit 1; }
	echo "signing in through oauth2-proxy"
	cookies[oauth2-proxy]=$("$work/mksession" -signin "$o2p/" -idp-listen "127.0.0.1:$idp_port" -cookie-header) ||
		{ cat "$work/oauth2-proxy.log"; exit 1; }
fi

browser=()
if [ "$REQUEST" = browser ]; then
	browser=(
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
# request <site> sets req to the curl/wrk arguments of the site's request.
request() { req=(-H "Cookie: theme=dark; ${cookies[$1]}; lang=en" "${browser[@]}"); }

# Every site answers the same request; the gateways hand the upstream the
# signed-in user, and sso-jwt a signed token too.
read -r -a sites <<<"$SITES"
for site in "${sites[@]}"; do
	request "$site"
	got=$(curl -fsS "${req[@]}" "http://127.0.0.1:${port[$site]}/") || { echo "$site: request failed"; exit 1; }
	case $site in
	bare | sso-none) [ "$got" = "hello " ] || { echo "$site: upstream answered '$got'"; exit 1; } ;;
	*) [ "$got" != "hello " ] || { echo "$site: the upstream got no identity"; exit 1; } ;;
	esac
done
# sso-jwt's rule lets this user in; a stranger is refused (so the rule
# runs); sso-none checks the session too, though it passes no identity.
for site in sso-jwt sso-none; do
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "http://127.0.0.1:${port[$site]}/")" = 401 ] ||
		{ echo "$site: an anonymous request was not refused"; exit 1; }
done

# cpu_ticks prints a process's utime+stime in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# heap_counts prints Caddy's allocation count and allocated bytes so far
# (runtime.MemStats from the admin endpoint): unlike time, they do not
# depend on what else the machine runs.
heap_counts() {
	curl -fsS "http://127.0.0.1:$admin_port/debug/vars" |
		tr ',' '\n' | awk -F: '/"Mallocs"/ && m == "" {m = $2} /"TotalAlloc"/ {b = $2} END {print m + 0, b + 0}'
}

# load <site> prints: requests/s p50-µs p99-µs gateway-µs/request
# upstream-µs/request allocations/request bytes/request (the last two for
# the Caddy sites, 0 for the peers)
load() {
	local c0 u0 c1 u1 out pid=${server_pid[$1]} h0="0 0" h1="0 0"
	request "$1"
	[ "$pid" = "$caddy_pid" ] && h0=$(heap_counts)
	c0=$(cpu_ticks "$pid") u0=$(cpu_ticks "$upstream_pid")
	out=$("${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${req[@]}" "http://127.0.0.1:${port[$1]}/")
	c1=$(cpu_ticks "$pid") u1=$(cpu_ticks "$upstream_pid")
	[ "$pid" = "$caddy_pid" ] && h1=$(heap_counts)
	# Refused or failed requests end the run; wrk's timeouts (requests over
	# 2 s, seen only on an overloaded machine) do not.
	if grep -q 'Non-2xx' <<<"$out" || grep -Eq 'Socket errors: connect [1-9]|read [1-9]|write [1-9]' <<<"$out"; then
		echo "$1: wrk saw errors:" >&2
		echo "$out" >&2
		return 1
	fi
	awk -v c="$((c1 - c0))" -v u="$((u1 - u0))" -v hz="$hz" -v h0="$h0" -v h1="$h1" '
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
		END {
			split(h0, a, " "); split(h1, b, " ")
			printf "%.0f %.1f %.1f %.2f %.2f %.1f %.0f\n", rps, p50, p99, c * 1e6 / hz / n, u * 1e6 / hz / n,
				(b[1] - a[1]) / n, (b[2] - a[2]) / n
		}' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A results # site,round -> "rps p50 p99 gateway upstream"
for round in $(seq "$ROUNDS"); do
	echo "round $round/$ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	for i in $(seq 0 $((${#sites[@]} - 1))); do
		site=${sites[$(((i + round - 1) % ${#sites[@]}))]}
		r=$(load "$site")
		results[$site,$round]=$r
		read -r rps p50 p99 cu uu ma mb <<<"$r"
		printf '  %-14s %7s req/s  p50 %6s µs  p99 %7s µs  gateway %6s µs/req  upstream %6s µs/req  %5s allocs/req %6s B/req\n' \
			"$site" "$rps" "$p50" "$p99" "$cu" "$uu" "$ma" "$mb"
	done
done

# field <site> <round> <n>: the n-th number of a result.
field() { cut -d' ' -f"$3" <<<"${results[$1,$2]}"; }
m() { if [ $# -gt 0 ]; then printf '%s\n' "$@" | median; else echo 0; fi; }
echo
echo "medians over $ROUNDS rounds of ${DURATION} (c$CONNECTIONS, $REQUEST request, reverse_proxy log $PROXY_LOG); ratios and differences are per round against bare"
printf '%-14s %8s %10s %8s %8s %14s %10s %12s %11s %8s\n' site req/s throughput p50 p99 "gateway µs/req" "vs bare" "upstream µs" "allocs/req" "B/req"
for site in "${sites[@]}"; do
	rps=() thr=() p50=() p99=() cu=() dcu=() uu=() ma=() mb=()
	for round in $(seq "$ROUNDS"); do
		rps+=("$(field "$site" "$round" 1)")
		cu+=("$(field "$site" "$round" 4)")
		uu+=("$(field "$site" "$round" 5)")
		ma+=("$(field "$site" "$round" 6)")
		mb+=("$(field "$site" "$round" 7)")
		if [ -n "${results[bare,$round]:-}" ]; then
			thr+=("$(awk -v a="$(field "$site" "$round" 1)" -v b="$(field bare "$round" 1)" 'BEGIN {print a / b}')")
			p50+=("$(awk -v a="$(field "$site" "$round" 2)" -v b="$(field bare "$round" 2)" 'BEGIN {print a / b}')")
			p99+=("$(awk -v a="$(field "$site" "$round" 3)" -v b="$(field bare "$round" 3)" 'BEGIN {print a / b}')")
			dcu+=("$(awk -v a="$(field "$site" "$round" 4)" -v b="$(field bare "$round" 4)" 'BEGIN {print a - b}')")
		fi
	done
	heap=$(printf '%11.1f %8.0f' "$(m "${ma[@]}")" "$(m "${mb[@]}")")
	[ "${server_pid[$site]}" = "$caddy_pid" ] || heap=$(printf '%11s %8s' - -)
	printf '%-14s %8.0f %10.3f %8.3f %8.3f %14.2f %+10.2f %12.2f %s\n' "$site" "$(m "${rps[@]}")" \
		"$(m "${thr[@]}")" "$(m "${p50[@]}")" "$(m "${p99[@]}")" "$(m "${cu[@]}")" "$(m "${dcu[@]}")" "$(m "${uu[@]}")" "$heap"
done

if [ -n "$PROFILE" ]; then
	# Profiles under the same load: 10 s of CPU, and the allocations made
	# during the run (the difference of two heap profiles).
	mkdir -p "$PROFILE"
	for site in $SITES; do
		[ "${server_pid[$site]}" = "$caddy_pid" ] || continue # the peers are not Caddy
		echo "profiling $site into $PROFILE"
		request "$site"
		curl -fsS -o "$PROFILE/$site.allocs0.pb.gz" "http://127.0.0.1:$admin_port/debug/pprof/allocs"
		"${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d12s "${req[@]}" "http://127.0.0.1:${port[$site]}/" >/dev/null &
		wrk_pid=$!
		sleep 1
		curl -fsS -o "$PROFILE/$site.cpu.pb.gz" "http://127.0.0.1:$admin_port/debug/pprof/profile?seconds=10"
		wait "$wrk_pid"
		curl -fsS -o "$PROFILE/$site.allocs1.pb.gz" "http://127.0.0.1:$admin_port/debug/pprof/allocs"
	done
	cp "$work/caddy" "$PROFILE/caddy"
	echo "go tool pprof -top $PROFILE/sso.cpu.pb.gz; go tool pprof -sample_index=alloc_space -top -diff_base $PROFILE/sso.allocs0.pb.gz $PROFILE/sso.allocs1.pb.gz"
fi
