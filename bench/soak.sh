#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Soak: load through a meshlet-proxy pair for 10 minutes while the pair's certificates,
# from a real meshlet-ca, last 30 seconds and so rotate all along:
#   wrk (keep-alive) + wrk (Connection: close: a new connection per request, which the
#   proxies carry on TLS connections they keep, made again as certificates change)
#   -> client-side proxy (static "originate" listener)
#            -> server-side proxy (static "terminate" listener) -> nginx (100-byte answer)
# on loopback, one worker per proxy, identities in ca mode (token, CSR, /v1/certify) with
# identity.ttl 30s: each proxy renews at about half the remaining lifetime, every ~15 s.
# Prints every 10 s the RSS of both proxies and their rotations so far, then: requests,
# failed requests (socket errors, timeouts, answers other than 2xx with the 100-byte
# body), rotations (meshlet_proxy_svid_rotations on each admin port), and RSS after the
# first minute against RSS at the end. Exits 1 unless there were no failures, both
# proxies rotated and are still running, and neither grew by more than 10%.
#
# Usage: bench/soak.sh [-d SECONDS] [-T CERT_TTL_SECONDS] [-c KEEPALIVE_CONNS]
#                      [-k NEWCONN_CONNS] [-i SAMPLE_SECONDS] [-g MAX_GROWTH_PCT]
#   defaults: -d 600 -T 30 -c 20 -k 4 -i 10 -g 10
#   RSS "after the first minute" is the sample at 60 s; runs shorter than 120 s use the
#   sample nearest half the run instead (a smoke run: bench/soak.sh -d 60).
#   Env: BENCH_OUT=DIR also writes soak.env (the figures), soak-rss.tsv (the samples) and
#   soak-latency.tsv (wrk's percentiles) there, for bench/report.sh -S DIR; KEEP_TMP=1
#   keeps the work directory (logs of the CA, the proxies and nginx).
# Needs: a build (make), wrk, nginx, curl, openssl and python3 (make deps-bench). The
# binaries are copied at start, so a rebuild during the soak changes nothing.
set -euo pipefail
export LC_ALL=C
BENCH_OUT=${BENCH_OUT:+$(realpath -m "$BENCH_OUT")}
cd "$(dirname "$0")/.."

cmdline="bench/soak.sh${*:+ $*}"
duration=600 ttl=30 ka_conns=20 nc_conns=4 interval=10 max_growth=10
while getopts "d:T:c:k:i:g:h" opt; do
	case $opt in
	d) duration=$OPTARG ;;
	T) ttl=$OPTARG ;;
	c) ka_conns=$OPTARG ;;
	k) nc_conns=$OPTARG ;;
	i) interval=$OPTARG ;;
	g) max_growth=$OPTARG ;;
	*) sed -n '16,25p' "$0"; exit 2 ;;
	esac
done
for v in "$duration" "$ttl" "$ka_conns" "$nc_conns" "$interval" "$max_growth"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench/soak.sh: $v: a positive integer is needed" >&2; exit 2; }
done
((ttl >= 10)) || { echo "bench/soak.sh: -T $ttl: meshlet-ca issues 10 s at least" >&2; exit 2; }
((duration >= 2 * interval)) || { echo "bench/soak.sh: -d must be at least twice -i" >&2; exit 2; }
for tool in wrk curl openssl python3; do
	command -v "$tool" >/dev/null || { echo "bench/soak.sh: $tool is missing: run make deps-bench" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench/soak.sh: nginx is missing: run make deps-bench" >&2; exit 1; }
for b in meshlet-proxy meshlet-ca; do
	[ -x "build/bin/$b" ] || { echo "bench/soak.sh: build/bin/$b is missing: run make" >&2; exit 1; }
done

BIND=127.0.0.1
TD=bench.local
NS=bench
ISSUER=https://kubernetes.default.svc.cluster.local
BODY_BYTES=100
CLK_TCK=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/meshlet-bench-soak.XXXXXX)
. bench/lib.sh

wait_for() { # SECONDS PID CMD...: until CMD succeeds, while PID lives
	local i secs=$1 pid=$2
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		alive "$pid" || return 1
		sleep 0.1
	done
	return 1
}
rss_kib() { # PID -> VmRSS, 0 when gone
	local k v _
	{ while read -r k v _; do [ "$k" != VmRSS: ] || { echo "$v"; return; }; done <"/proc/$1/status"; } 2>/dev/null || true
	echo 0
}
cpu_ticks() { # PID -> utime+stime
	local s a
	{ read -r s <"/proc/$1/stat"; } 2>/dev/null || { echo 0; return; }
	s=${s##*) }
	read -ra a <<<"$s"
	echo $((a[11] + a[12]))
}
metric() { # ADMIN_PORT NAME -> the value of an unlabelled metric, empty when unreachable
	{ curl -s --max-time 3 "http://$BIND:$1/metrics" || true; } | awk -v n="$2" '$1 == n { printf "%.0f", $2 }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# The binaries, copied: others may rebuild while this runs.
mkdir -p "$work/bin"
cp build/bin/meshlet-proxy build/bin/meshlet-ca "$work/bin/"
PROXY=$work/bin/meshlet-proxy CA_BIN=$work/bin/meshlet-ca

# meshlet-ca: a fresh root, a serving certificate for localhost, a local token issuer.
"$CA_BIN" init --dir "$work/ca" --trust-domain "$TD" >/dev/null
"$CA_BIN" issue --dir "$work/ca" --dns localhost --out "$work/serving" >/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$work/issuer.key" 2>/dev/null
chmod 600 "$work/issuer.key"
"$CA_BIN" jwks --key "$work/issuer.key" >"$work/jwks.json"
spawn "$work/ca.log" "$CA_BIN" serve --listen "$BIND:0" --ca-dir "$work/ca" \
	--tls-cert "$work/serving.crt" --tls-key "$work/serving.key" --jwks-file "$work/jwks.json" \
	--issuer "$ISSUER" --audit-file "$work/audit.log"
ca_pid=$SPAWNED
ca_port=
for ((i = 0; i < 100; i++)); do
	ca_port=$(grep -o '"port":[0-9]*' "$work/ca.log" | head -n1 | cut -d: -f2 || true)
	[ -n "$ca_port" ] || ! alive "$ca_pid" || { sleep 0.1; continue; }
	break
done
[ -n "$ca_port" ] || { log "meshlet-ca did not start:"; cat "$work/ca.log" >&2; exit 1; }

# The backend: nginx with a fixed 100-byte answer, as bench/proxy.sh uses.
backend_port=$(free_port)
nginx_backend "$work/backend" "$BIND" "$backend_port" "$BODY_BYTES"
spawn "$work/backend/nginx.log" "$NGINX" -p "$work/backend/" -e "$work/backend/error.log" -c "$work/backend/nginx.conf"
nginx_pid=$SPAWNED
wait_for 10 "$nginx_pid" curl -sf "http://$BIND:$backend_port/" || { cat "$work/backend/"*.log >&2; exit 1; }

# The pair: identities from meshlet-ca (ca mode) with $ttl-second certificates.
server_port=$(free_port) client_port=$(free_port) server_admin=$(free_port) client_admin=$(free_port)
server_id=spiffe://$TD/ns/$NS/sa/server
start_proxy() { # ROLE STATIC ADMIN -> SPAWNED
	"$CA_BIN" token --key "$work/issuer.key" --issuer "$ISSUER" --audience meshlet-ca \
		--namespace "$NS" --service-account "$1" --ttl "$((duration + 3600))s" >"$work/$1.token"
	cat >"$work/$1.yaml" <<EOF
trust_domain: $TD
workers: 1
identity:
  mode: ca
  ca_address: localhost:$ca_port
  token_file: $work/$1.token
  namespace: $NS
  service_account: $1
  ttl: ${ttl}s
listeners:
  capture: false
  static:
    - "$2"
ports:
  admin: $3
timeouts:
  drain: 1s
log:
  level: info
  format: json
EOF
	MESHLET_TRUST_BUNDLE=$(cat "$work/ca/root-cert.pem") \
		spawn "$work/$1.log" "$PROXY" run --config "$work/$1.yaml"
}
ready() { [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://$BIND:$1/healthz/ready")" = 200 ]; }
start_proxy server "terminate $BIND:$server_port $BIND:$backend_port" "$server_admin"
server_pid=$SPAWNED
start_proxy client "originate $BIND:$client_port $BIND:$server_port $server_id" "$client_admin"
client_pid=$SPAWNED
for role in server client; do
	[ $role = server ] && rpid=$server_pid radmin=$server_admin || rpid=$client_pid radmin=$client_admin
	wait_for 15 "$rpid" ready "$radmin" || { log "the $role proxy is not ready:"; cat "$work/$role.log" >&2; exit 1; }
done
got=$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' "http://$BIND:$client_port/")
[ "$got" = "200 $BODY_BYTES" ] || { log "GET / through the pair: $got"; cat "$work"/{client,server}.log >&2; exit 1; }

# wrk counts a request as failed on a socket error, a timeout, or (here) any answer but
# a 2xx with the 100-byte body; each thread counts its own, done() adds them up.
cat >"$work/soak.lua" <<'EOF'
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) bad = 0 end
response = function(status, headers, body)
	if status < 200 or status > 299 or #body ~= 100 then bad = bad + 1 end
end
done = function(summary, latency, requests)
	local e, b = summary.errors, 0
	for _, t in ipairs(threads) do b = b + t:get("bad") end
	io.write(string.format("RESULT %d %.0f %d %d %d %d %d %d\n", summary.requests, summary.duration,
		e.connect, e.read, e.write, e.timeout, e.status, b))
	for _, p in ipairs({ 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99 }) do
		io.write(string.format("PCT %g %.0f\n", p, latency:percentile(p)))
	end
end
EOF

# Sample times: every $interval s, the last one second before the load stops; the base is
# the sample at 60 s (or, for runs under 120 s, the one nearest half the run).
if ((duration >= 120)); then base_t=60; else base_t=$(((duration / 2 + interval / 2) / interval * interval)); fi
((base_t >= interval)) || base_t=$interval
rot0_c=$(metric "$client_admin" meshlet_proxy_svid_rotations)
rot0_s=$(metric "$server_admin" meshlet_proxy_svid_rotations)
rot0_c=${rot0_c:-0} rot0_s=${rot0_s:-0}
cpu0_c=$(cpu_ticks "$client_pid") cpu0_s=$(cpu_ticks "$server_pid")
rss0_c=$(rss_kib "$client_pid") rss0_s=$(rss_kib "$server_pid")
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "soak for ${duration}s: wrk keep-alive ($ka_conns connections) + wrk Connection: close ($nc_conns)" \
	"through the pair; ${ttl}s certificates; RSS idle $(mib "$rss0_c") / $(mib "$rss0_s") MiB"
printf '%6s %12s %12s %10s %10s %8s\n' "t (s)" "client MiB" "server MiB" "rot. c" "rot. s" "CA MiB"
t0=$(date +%s.%N)
spawn "$work/wrk-ka.out" wrk -t 1 -c "$ka_conns" -d "${duration}s" --timeout 5s -s "$work/soak.lua" \
	"http://$BIND:$client_port/"
wrk_ka=$SPAWNED
spawn "$work/wrk-nc.out" wrk -t 1 -c "$nc_conns" -d "${duration}s" --timeout 5s -s "$work/soak.lua" \
	-H 'Connection: close' "http://$BIND:$client_port/"
wrk_nc=$SPAWNED
printf 't\trss_client_kib\trss_server_kib\trss_ca_kib\trotations_client\trotations_server\n' >"$work/rss.tsv"
printf '0\t%s\t%s\t%s\t0\t0\n' "$rss0_c" "$rss0_s" "$(rss_kib "$ca_pid")" >>"$work/rss.tsv"
for ((i = 1; ; i++)); do
	t=$((i * interval))
	((t < duration)) || t=$((duration - 1))
	sleep "$(awk -v t0="$t0" -v t="$t" -v now="$(date +%s.%N)" 'BEGIN { d = t0 + t - now; print (d > 0 ? d : 0) }')"
	mc=$(rss_kib "$client_pid") ms=$(rss_kib "$server_pid") mca=$(rss_kib "$ca_pid")
	rc=$(metric "$client_admin" meshlet_proxy_svid_rotations) rs=$(metric "$server_admin" meshlet_proxy_svid_rotations)
	rc=$((${rc:-$rot0_c} - rot0_c)) rs=$((${rs:-$rot0_s} - rot0_s))
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$mc" "$ms" "$mca" "$rc" "$rs" >>"$work/rss.tsv"
	printf '%6d %12s %12s %10d %10d %8s\n' "$t" "$(mib "$mc")" "$(mib "$ms")" "$rc" "$rs" "$(mib "$mca")"
	((t < duration - 1)) || break
done
cpu1_c=$(cpu_ticks "$client_pid") cpu1_s=$(cpu_ticks "$server_pid")
alive "$client_pid" || cpu1_c= # the CPU time of a proxy that is gone is unknown
alive "$server_pid" || cpu1_s=
for ((i = 0; i < 300; i++)); do
	alive "$wrk_ka" || alive "$wrk_nc" || break
	sleep 0.1
done

# The figures.
read_wrk() { # FILE -> "requests microseconds connect read write timeout status(>399) bad(not 2xx)"
	local line
	line=$(grep '^RESULT' "$1" || true)
	[ -n "$line" ] && echo "${line#RESULT }" || echo "0 0 - - - - - -"
}
read -r ka_req ka_us ka_econn ka_eread ka_ewrite ka_etime _ ka_bad <<<"$(read_wrk "$work/wrk-ka.out")"
read -r nc_req nc_us nc_econn nc_eread nc_ewrite nc_etime _ nc_bad <<<"$(read_wrk "$work/wrk-nc.out")"
wrk_ok=1
for f in ka nc; do grep -q '^RESULT' "$work/wrk-$f.out" || { wrk_ok=0; log "wrk ($f) gave no result:"; tail -n 5 "$work/wrk-$f.out" >&2; }; done
sum() { awk 'BEGIN { s = 0; for (i = 1; i < ARGC; i++) { if (ARGV[i] !~ /^[0-9]+$/) { print "-"; exit } s += ARGV[i] } print s }' "$@"; }
ka_fail=$(sum "$ka_econn" "$ka_eread" "$ka_ewrite" "$ka_etime" "$ka_bad")
nc_fail=$(sum "$nc_econn" "$nc_eread" "$nc_ewrite" "$nc_etime" "$nc_bad")
requests=$((ka_req + nc_req))
failures=$(sum "$ka_fail" "$nc_fail")
rps() { awk -v r="$1" -v u="$2" 'BEGIN { if (u > 0) printf "%.0f", r / (u / 1e6); else print 0 }'; }
ka_rps=$(rps "$ka_req" "$ka_us") nc_rps=$(rps "$nc_req" "$nc_us")
rot_c=$(metric "$client_admin" meshlet_proxy_svid_rotations) rot_s=$(metric "$server_admin" meshlet_proxy_svid_rotations)
rot_c=$((${rot_c:-$rot0_c} - rot0_c)) rot_s=$((${rot_s:-$rot0_s} - rot0_s))
ca_err_c=$(metric "$client_admin" meshlet_proxy_ca_errors) ca_err_s=$(metric "$server_admin" meshlet_proxy_ca_errors)
issued=$(cat "$work/client.log" "$work/server.log" | awk '/"msg":"SVID issued"/ { n++ } END { print n + 0 }')
warns=$(cat "$work/client.log" "$work/server.log" | awk '/"level":"(warn|error)"/ { n++ } END { print n + 0 }')
read -r base_c base_s < <(awk -F'\t' -v t="$base_t" '$1 == t { print $2, $3 }' "$work/rss.tsv")
read -r end_c end_s end_t < <(tail -n 1 "$work/rss.tsv" | awk -F'\t' '{ print $2, $3, $1 }')
pct() { [ "$1" = n/a ] && echo n/a || echo "$1%"; }
growth() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%+.1f", 100 * (b - a) / a; else print "n/a" }'; }
grow_c=$(growth "$base_c" "$end_c") grow_s=$(growth "$base_s" "$end_s")
peak_c=$(awk -F'\t' 'NR > 1 && $2 > m { m = $2 } END { print m + 0 }' "$work/rss.tsv")
peak_s=$(awk -F'\t' 'NR > 1 && $3 > m { m = $3 } END { print m + 0 }' "$work/rss.tsv")
us_per() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "-" }'; }
cpu_c=- cpu_s=-
[ -z "$cpu1_c" ] || cpu_c=$(us_per $((cpu1_c - cpu0_c)) "$requests")
[ -z "$cpu1_s" ] || cpu_s=$(us_per $((cpu1_s - cpu0_s)) "$requests")
alive_c=0 alive_s=0
alive "$client_pid" && alive_c=1
alive "$server_pid" && alive_s=1

# The verdict.
why=()
[ "$wrk_ok" = 1 ] || why+=("wrk gave no result")
[ "$failures" = 0 ] || why+=("$failures failed requests")
((requests > 0)) || why+=("no requests")
((alive_c && alive_s)) || why+=("a proxy is gone (client alive: $alive_c, server alive: $alive_s)")
if ((duration >= ttl)); then
	((rot_c > 0 && rot_s > 0)) || why+=("no rotation (client $rot_c, server $rot_s)")
fi
for side in c s; do
	g=grow_$side
	awk -v g="${!g}" -v m="$max_growth" 'BEGIN { exit !(g != "n/a" && g + 0 <= m) }' ||
		why+=("RSS of the $([ $side = c ] && echo client || echo server) proxy: $(pct "${!g}") against +$max_growth% at most")
done
verdict=PASS reason="no failed request, both proxies rotated, RSS within +$max_growth% of the $base_t s sample"
if ((${#why[@]})); then
	verdict=FAIL reason=${why[0]}
	for w in "${why[@]:1}"; do reason+="; $w"; done
fi

summary() {
	printf '\nmeshlet-proxy soak: %d s of load through a pair, %d s certificates from meshlet-ca, %d cores (%s)\n' \
		"$duration" "$ttl" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	printf '%-44s %14s %14s\n' "" "keep-alive" "new conn"
	printf '%-44s %14s %14s\n' "wrk connections" "$ka_conns" "$nc_conns"
	printf '%-44s %14s %14s\n' "requests" "$ka_req" "$nc_req"
	printf '%-44s %14s %14s\n' "requests/s" "$ka_rps" "$nc_rps"
	printf '%-44s %14s %14s\n' "failed: connect / read / write errors" "$ka_econn / $ka_eread / $ka_ewrite" "$nc_econn / $nc_eread / $nc_ewrite"
	printf '%-44s %14s %14s\n' "failed: timeouts (5 s)" "$ka_etime" "$nc_etime"
	printf '%-44s %14s %14s\n' "failed: not 2xx with the 100-byte body" "$ka_bad" "$nc_bad"
	printf '\n%-44s %14s %14s\n' "" "client" "server"
	printf '%-44s %14s %14s\n' "certificate rotations (admin /metrics)" "$rot_c" "$rot_s"
	printf '%-44s %14s %14s\n' "meshlet-ca errors seen by the proxy" "${ca_err_c:--}" "${ca_err_s:--}"
	printf '%-44s %14s %14s\n' "RSS idle before the load, MiB" "$(mib "$rss0_c")" "$(mib "$rss0_s")"
	printf '%-44s %14s %14s\n' "RSS at $base_t s, MiB" "$(mib "$base_c")" "$(mib "$base_s")"
	printf '%-44s %14s %14s\n' "RSS at the end ($end_t s), MiB" "$(mib "$end_c")" "$(mib "$end_s")"
	printf '%-44s %14s %14s\n' "RSS change, end against $base_t s" "$(pct "$grow_c")" "$(pct "$grow_s")"
	printf '%-44s %14s %14s\n' "RSS peak of the samples, MiB" "$(mib "$peak_c")" "$(mib "$peak_s")"
	printf '%-44s %14s %14s\n' "CPU us per request (both loads)" "$cpu_c" "$cpu_s"
	printf '%-44s %14s %14s\n' "still running at the end" "$([ $alive_c = 1 ] && echo yes || echo NO)" "$([ $alive_s = 1 ] && echo yes || echo NO)"
	printf '\nrequests %d, failed %s, rotations %d + %d, SVIDs issued %d, warnings in the proxy logs %d\n' \
		"$requests" "$failures" "$rot_c" "$rot_s" "$issued" "$warns"
	printf '%s: %s\n' "$verdict" "$reason"
}
summary

if [ -n "${BENCH_OUT:-}" ]; then
	mkdir -p "$BENCH_OUT"
	{
		printf 'started=%s\nduration=%s\ncert_ttl=%s\nka_connections=%s\nnc_connections=%s\n' \
			"$started" "$duration" "$ttl" "$ka_conns" "$nc_conns"
		printf 'interval=%s\nmax_growth_pct=%s\ncores=%s\n' "$interval" "$max_growth" "$(nproc)"
		printf 'ka_requests=%s\nka_rps=%s\nka_connect_errors=%s\nka_read_errors=%s\nka_write_errors=%s\n' \
			"$ka_req" "$ka_rps" "$ka_econn" "$ka_eread" "$ka_ewrite"
		printf 'ka_timeouts=%s\nka_bad_answers=%s\nka_failures=%s\n' "$ka_etime" "$ka_bad" "$ka_fail"
		printf 'nc_requests=%s\nnc_rps=%s\nnc_connect_errors=%s\nnc_read_errors=%s\nnc_write_errors=%s\n' \
			"$nc_req" "$nc_rps" "$nc_econn" "$nc_eread" "$nc_ewrite"
		printf 'nc_timeouts=%s\nnc_bad_answers=%s\nnc_failures=%s\n' "$nc_etime" "$nc_bad" "$nc_fail"
		printf 'requests=%s\nfailures=%s\nrotations_client=%s\nrotations_server=%s\nsvids_issued=%s\n' \
			"$requests" "$failures" "$rot_c" "$rot_s" "$issued"
		printf 'ca_errors_client=%s\nca_errors_server=%s\nlog_warnings=%s\n' "${ca_err_c:-}" "${ca_err_s:-}" "$warns"
		printf 'rss_idle_client_kib=%s\nrss_idle_server_kib=%s\nbase_t=%s\n' "$rss0_c" "$rss0_s" "$base_t"
		printf 'rss_base_client_kib=%s\nrss_base_server_kib=%s\nend_t=%s\n' "$base_c" "$base_s" "$end_t"
		printf 'rss_end_client_kib=%s\nrss_end_server_kib=%s\n' "$end_c" "$end_s"
		printf 'rss_growth_client_pct=%s\nrss_growth_server_pct=%s\n' "$grow_c" "$grow_s"
		printf 'rss_peak_client_kib=%s\nrss_peak_server_kib=%s\n' "$peak_c" "$peak_s"
		printf 'cpu_us_per_request_client=%s\ncpu_us_per_request_server=%s\n' "$cpu_c" "$cpu_s"
		printf 'alive_client=%s\nalive_server=%s\nverdict=%s\n' "$alive_c" "$alive_s" "$verdict"
		printf 'meshlet=%s\ncommand=%s\n' "$("$PROXY" --version | head -n1)" "$cmdline"
	} >"$BENCH_OUT/soak.env"
	summary >"$BENCH_OUT/soak.txt"
	cp "$work/rss.tsv" "$BENCH_OUT/soak-rss.tsv"
	{
		printf 'load\tpercentile\tms\n'
		for f in ka nc; do
			awk -v l="$f" '$1 == "PCT" { printf "%s\t%s\t%.3f\n", l, $2, $3 / 1000 }' "$work/wrk-$f.out"
		done
	} >"$BENCH_OUT/soak-latency.tsv"
	log "figures written to $BENCH_OUT/soak{.env,.txt,-rss.tsv,-latency.tsv}"
fi
[ "$verdict" = PASS ]
