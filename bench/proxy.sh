#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures one mutual-TLS sidecar hop made by meshlet-proxy against the same hop made by
# stunnel, HAProxy and nginx (stream) pairs, and a direct baseline, all in one run:
#   wrk | iperf3 -> client-side proxy (plain in, TLS 1.3 + client certificate out)
#               -> server-side proxy (TLS 1.3 in, client certificate required, plain out)
#               -> backend (nginx, fixed 100-byte answer, keep-alive | iperf3 -s)
# on loopback, one worker per proxy. meshlet-proxy runs static listeners with identities
# in files mode (meshlet-ca init, then issue --spiffe-id) and checks the server's SPIFFE
# ID; the peers get DNS-named leaves of the same CA and check the chain both ways and the
# server's name. Figures: keep-alive requests/s with p50 and p99 (wrk), requests/s with a
# new connection per request (wrk -H 'Connection: close'), bulk Gbit/s (iperf3 through a
# fresh pair), RSS idle, peak under keep-alive load and with 1,000 idle connections held
# open through the pair, and proxy CPU per request (utime+stime from /proc/PID/stat over
# the load, divided by the requests). One table, with issue 5's targets next to meshlet's.
#
# Usage: bench/proxy.sh [-d SECONDS] [-r RUNS] [-c CONNECTIONS] [-t THREADS]
#                       [-b IPERF_SECONDS] [-n IDLE_CONNECTIONS] [-C CANDIDATES]
#   defaults: -d 5 -r 3 -c 50 -t 2 -b 3 -n 1000 -C "direct meshlet stunnel haproxy nginx"
#   (figures are medians over the runs, candidate order rotated; the idle connections are
#   held in the first run only; about 5.5 minutes on 2 cores).
#   Smoke run (about 2 minutes): bench/proxy.sh -d 3 -r 1 -b 1
#   Env: PORT_BASE (24000; the first free block of ports above it is used), KEEP_TMP=1,
#   BENCH_OUT=DIR (also write the figures as files there, for bench/report.sh).
# Needs: a build (make), and make deps-bench (wrk, iperf3, stunnel4, haproxy, nginx with
# libnginx-mod-stream, python3). PERF_RECORD=DIR adds, after the table, a profile of a
# meshlet pair under keep-alive and then new-connection load (perf record -g on both
# proxies, DIR/{ka,nc}-{client,server}.data) and prints the hottest symbols of each.
# The proxy binary is copied at start, so a rebuild during the run changes nothing.
#
# Cross-check with the shared peer harness, where bench/candidates/meshlet.sh adds meshlet
# as one more candidate (MESHLET_PROXY=FILE picks another binary), from the repository
# root; its smoke mode (drop the RUNS...LAT_SECS knobs for its full run, about 10 min):
#   CANDIDATES_DIR=$PWD/bench/candidates CANDIDATES="direct stunnel haproxy nginx meshlet" \
#   RUNS=1 DURATION=2 WARMUP=1 IPERF_SECS=1 LAT_SECS=1 \
#   OUT_MD=/tmp/mtls-pair.md OUT_TSV=/tmp/mtls-pair.tsv ../shared/tools/mtls-pair.sh
set -euo pipefail
export LC_ALL=C
# BENCH_OUT=DIR: proxy.env (the settings), proxy.tsv (the table's medians), proxy-runs.tsv
# (every run's figures), proxy-targets.tsv (issue 5's targets and meshlet's verdicts) and
# proxy-latency.tsv (wrk's latency percentiles, per run, candidate and load).
BENCH_OUT=${BENCH_OUT:+$(realpath -m "$BENCH_OUT")}
cd "$(dirname "$0")/.."

duration=5 runs=3 conns=50 threads=2 bulk=3 nidle=1000
cands="direct meshlet stunnel haproxy nginx"
while getopts "d:r:c:t:b:n:C:h" opt; do
	case $opt in
	d) duration=$OPTARG ;;
	r) runs=$OPTARG ;;
	c) conns=$OPTARG ;;
	t) threads=$OPTARG ;;
	b) bulk=$OPTARG ;;
	n) nidle=$OPTARG ;;
	C) cands=$OPTARG ;;
	*) sed -n '17,29p' "$0"; exit 2 ;;
	esac
done
for v in "$duration" "$runs" "$conns" "$threads" "$bulk" "$nidle"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench/proxy.sh: $v: a positive integer is needed" >&2; exit 2; }
done
for c in $cands; do
	case $c in direct | meshlet | stunnel | haproxy | nginx) ;;
	*) echo "bench/proxy.sh: unknown candidate $c" >&2; exit 2 ;;
	esac
done
[[ " $cands " == *" direct "* ]] || { echo "bench/proxy.sh: -C must include direct" >&2; exit 2; }
need="wrk iperf3 curl openssl python3 ss"
[[ " $cands " == *" stunnel "* ]] && need+=" stunnel"
[[ " $cands " == *" haproxy "* ]] && need+=" haproxy"
for tool in $need; do
	command -v "$tool" >/dev/null || { echo "bench/proxy.sh: $tool is missing: run make deps-bench" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench/proxy.sh: nginx is missing: run make deps-bench" >&2; exit 1; }
STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so
if [[ " $cands " == *" nginx "* ]] && [ ! -f "$STREAM_MOD" ]; then
	echo "bench/proxy.sh: nginx has no stream module: run make deps-bench (libnginx-mod-stream)" >&2
	exit 1
fi
for b in meshlet-proxy meshlet-ca; do
	[ -x "build/bin/$b" ] || { echo "bench/proxy.sh: build/bin/$b is missing: run make" >&2; exit 1; }
done

BIND=127.0.0.1
TD=bench.local
BODY_BYTES=100
CLK_TCK=$(getconf CLK_TCK)
warmup=1
work=$(mktemp -d /tmp/meshlet-bench-proxy.XXXXXX)
. bench/lib.sh

listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
wait_listen() { # PORT PID: up to 10 s
	local i
	for ((i = 0; i < 100; i++)); do
		listening "$1" && return 0
		alive "$2" || return 1
		sleep 0.1
	done
	return 1
}
rss_kib() { # PID... -> VmRSS summed over them and their descendants
	local p k v _ sum=0
	for p in $(for q in "$@"; do tree "$q"; done); do
		{ while read -r k v _; do [ "$k" != VmRSS: ] || { sum=$((sum + v)); break; }; done <"/proc/$p/status"; } 2>/dev/null || true
	done
	echo "$sum"
}
pss_kib() { # PID... -> Pss summed over them and their descendants: shared pages (libraries)
	# count in part, as in a node's memory where every sidecar maps the same files
	local p k v _ sum=0
	for p in $(for q in "$@"; do tree "$q"; done); do
		{ while read -r k v _; do [ "$k" != Pss: ] || { sum=$((sum + v)); break; }; done <"/proc/$p/smaps_rollup"; } 2>/dev/null || true
	done
	echo "$sum"
}
cpu_ticks() { # PID... -> utime+stime summed over them and their descendants (all threads)
	local p s a sum=0
	for p in $(for q in "$@"; do tree "$q"; done); do
		{ read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
		s=${s##*) }
		read -ra a <<<"$s"
		sum=$((sum + a[11] + a[12]))
	done
	echo "$sum"
}

# Ports: a block of free ones, 10 per candidate (and 4 for the backends).
port_base=${PORT_BASE:-24000}
ncand=$(wc -w <<<"$cands")
for ((try = 0; try < 50; try++, port_base += 100)); do
	free=1
	for ((p = port_base; p < port_base + 10 * ncand + 10; p++)); do listening "$p" && { free=0; break; }; done
	((free)) && break
done
((free)) || { echo "bench/proxy.sh: no free block of ports from ${PORT_BASE:-24000}" >&2; exit 1; }
BACKEND_PORT=$port_base IPERF_PORT=$((port_base + 1))
cand_port() { # CAND OFFSET: +0 client, +1 server, +2/+3 their admin ports (meshlet), +4..+7 the bulk pair
	local i=1 c
	for c in $cands; do
		[ "$c" = "$1" ] && { echo $((port_base + 10 * i + $2)); return; }
		i=$((i + 1))
	done
}

# Certificates: one meshlet CA; SPIFFE leaves for meshlet, DNS-named leaves for the peers.
mkdir -p "$work/bin" "$work/certs"
cp build/bin/meshlet-proxy "$work/bin/meshlet-proxy"
MESHLET=$work/bin/meshlet-proxy
CERTS=$work/certs
build/bin/meshlet-ca init --dir "$CERTS/ca" --trust-domain "$TD" >/dev/null
for who in client server; do
	build/bin/meshlet-ca issue --dir "$CERTS/ca" --spiffe-id "spiffe://$TD/ns/bench/sa/$who" \
		--ttl 24h --out "$CERTS/$who" >/dev/null
	build/bin/meshlet-ca issue --dir "$CERTS/ca" --dns "$who.$TD" --ttl 24h --out "$CERTS/dns-$who" >/dev/null
	cat "$CERTS/dns-$who.crt" "$CERTS/dns-$who.key" >"$CERTS/dns-$who.pem"
	chmod 600 "$CERTS/dns-$who.pem"
done
CA=$CERTS/ca/root-cert.pem
SERVER_NAME=server.$TD SERVER_ID=spiffe://$TD/ns/bench/sa/server

# The candidates: start_CAND_{client,server} LISTEN UPSTREAM DIR [ADMIN] -> SPAWNED.
# The client side takes plain TCP and opens TLS 1.3 with a client certificate, verifying
# the server against the CA and its identity; the server side requires and verifies a
# client certificate and forwards plain TCP. One worker each, foreground, logs in DIR.
meshlet_conf() { # DIR ROLE STATIC ADMIN
	cat >"$1/meshlet-$2.yaml" <<EOF
trust_domain: $TD
workers: 1
identity:
  mode: files
  cert_file: $CERTS/$2.crt
  key_file: $CERTS/$2.key
  bundle_file: $CA
listeners:
  capture: false
  static:
    - "$3"
ports:
  admin: $4
timeouts:
  drain: 1s
log:
  level: warn
EOF
}
start_meshlet_client() {
	meshlet_conf "$3" client "originate $BIND:$1 $BIND:$2 $SERVER_ID" "$4"
	spawn "$3/meshlet.log" "$MESHLET" run --config "$3/meshlet-client.yaml"
}
start_meshlet_server() {
	meshlet_conf "$3" server "terminate $BIND:$1 $BIND:$2" "$4"
	spawn "$3/meshlet.log" "$MESHLET" run --config "$3/meshlet-server.yaml"
}
start_stunnel_client() {
	cat >"$3/stunnel.conf" <<EOF
foreground = yes
pid =
syslog = no
debug = warning
[out]
client = yes
accept = $BIND:$1
connect = $BIND:$2
cert = $CERTS/dns-client.crt
key = $CERTS/dns-client.key
CAfile = $CA
verifyChain = yes
checkHost = $SERVER_NAME
sslVersionMin = TLSv1.3
EOF
	spawn "$3/stunnel.log" stunnel "$3/stunnel.conf"
}
start_stunnel_server() {
	cat >"$3/stunnel.conf" <<EOF
foreground = yes
pid =
syslog = no
debug = warning
[in]
accept = $BIND:$1
connect = $BIND:$2
cert = $CERTS/dns-server.crt
key = $CERTS/dns-server.key
CAfile = $CA
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
EOF
	spawn "$3/stunnel.log" stunnel "$3/stunnel.conf"
}
haproxy_head() {
	printf 'global\n    nbthread 1\n    maxconn 8192\ndefaults\n    mode tcp\n'
	printf '    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n'
}
start_haproxy_client() {
	{ haproxy_head; cat <<EOF
frontend plain_in
    bind $BIND:$1
    default_backend mtls_out
backend mtls_out
    server peer $BIND:$2 ssl crt $CERTS/dns-client.pem ca-file $CA verify required verifyhost $SERVER_NAME ssl-min-ver TLSv1.3
EOF
	} >"$3/haproxy.cfg"
	spawn "$3/haproxy.log" haproxy -db -f "$3/haproxy.cfg"
}
start_haproxy_server() {
	{ haproxy_head; cat <<EOF
frontend mtls_in
    bind $BIND:$1 ssl crt $CERTS/dns-server.pem ca-file $CA verify required ssl-min-ver TLSv1.3
    default_backend plain_out
backend plain_out
    server app $BIND:$2
EOF
	} >"$3/haproxy.cfg"
	spawn "$3/haproxy.log" haproxy -db -f "$3/haproxy.cfg"
}
nginx_head() { # DIR
	cat <<EOF
load_module $STREAM_MOD;
daemon off;
master_process on;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 10240; }
EOF
}
start_nginx_client() {
	{ nginx_head "$3"; cat <<EOF
stream {
    server {
        listen $BIND:$1;
        proxy_pass $BIND:$2;
        proxy_ssl on;
        proxy_ssl_protocols TLSv1.3;
        proxy_ssl_certificate $CERTS/dns-client.crt;
        proxy_ssl_certificate_key $CERTS/dns-client.key;
        proxy_ssl_trusted_certificate $CA;
        proxy_ssl_verify on;
        proxy_ssl_name $SERVER_NAME;
        proxy_ssl_session_reuse on;
    }
}
EOF
	} >"$3/nginx.conf"
	spawn "$3/nginx.log" "$NGINX" -p "$3/" -e "$3/error.log" -c "$3/nginx.conf"
}
start_nginx_server() {
	{ nginx_head "$3"; cat <<EOF
stream {
    server {
        listen $BIND:$1 ssl;
        ssl_protocols TLSv1.3;
        ssl_certificate $CERTS/dns-server.crt;
        ssl_certificate_key $CERTS/dns-server.key;
        ssl_client_certificate $CA;
        ssl_verify_client on;
        proxy_pass $BIND:$2;
    }
}
EOF
	} >"$3/nginx.conf"
	spawn "$3/nginx.log" "$NGINX" -p "$3/" -e "$3/error.log" -c "$3/nginx.conf"
}

PAIR_C='' PAIR_S=''
start_pair() { # CAND UPSTREAM_PORT TAG OFFSET(0: the HTTP pair, 4: the bulk pair) -> PAIR_C PAIR_S
	local cand=$1 up=$2 d=$work/$3 off=$4 cp sp ca sa role i
	cp=$(cand_port "$cand" "$off") sp=$(cand_port "$cand" $((off + 1)))
	ca=$(cand_port "$cand" $((off + 2))) sa=$(cand_port "$cand" $((off + 3)))
	PAIR_C='' PAIR_S=''
	mkdir -p "$d/server" "$d/client"
	"start_${cand}_server" "$sp" "$up" "$d/server" "$sa"
	PAIR_S=$SPAWNED
	"start_${cand}_client" "$cp" "$sp" "$d/client" "$ca"
	PAIR_C=$SPAWNED
	for role in server client; do
		local pid port admin
		[ $role = server ] && pid=$PAIR_S port=$sp admin=$sa || pid=$PAIR_C port=$cp admin=$ca
		if ! wait_listen "$port" "$pid"; then
			log "$cand $role did not start:"
			cat "$d/$role"/*.log >&2 2>/dev/null || true
			return 1
		fi
		if [ "$cand" = meshlet ]; then # ready once it holds its certificate
			for ((i = 0; i < 100; i++)); do
				[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$BIND:$admin/healthz/ready")" = 200 ] && break
				sleep 0.1
			done
		fi
	done
}
stop_pair() { stop "$PAIR_C"; stop "$PAIR_S"; PAIR_C='' PAIR_S=''; }

# Backends: nginx with a fixed 100-byte answer; iperf3 -s -1 is started for each bulk test.
nginx_backend "$work/backend" "$BIND" "$BACKEND_PORT" "$BODY_BYTES"
spawn "$work/backend/nginx.log" "$NGINX" -p "$work/backend/" -e "$work/backend/error.log" -c "$work/backend/nginx.conf"
wait_listen "$BACKEND_PORT" "$SPAWNED" || { cat "$work/backend/"*.log >&2; exit 1; }

cat >"$work/report.lua" <<'EOF'
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("RESULT %d %.0f %.0f %.0f %d\n", summary.requests, summary.duration,
		latency:percentile(50), latency:percentile(99),
		e.connect + e.read + e.write + e.status + e.timeout))
	for _, p in ipairs({ 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99 }) do
		io.write(string.format("PCT %g %.0f\n", p, latency:percentile(p)))
	end
end
EOF
# Opens N connections one after another, sends one request on each and reads the answer,
# then holds them all open (idle, the way a keep-alive pool holds them) for SECONDS.
cat >"$work/hold.py" <<'EOF'
import socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
socks, ok, err, t0 = [], 0, "-", time.time()
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        buf = b""
        while True:
            d = s.recv(4096)
            if not d:
                raise OSError("closed before the answer")
            buf += d
            h = buf.find(b"\r\n\r\n")
            if h >= 0:
                cl = 0
                for line in buf[:h].split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        cl = int(v)
                if len(buf) >= h + 4 + cl:
                    break
        socks.append(s)
        ok += 1
    except OSError as e:
        err = str(e).replace(" ", "_")
print("HELD %d %d %.1f %s" % (ok, n, time.time() - t0, err), flush=True)
time.sleep(hold)
EOF

declare -A R # R[run,cand,key]
WRK=()
run_wrk() { # PORT SECONDS [wrk args...] -> WRK=(requests rps p50_ms p99_ms errors)
	local port=$1 secs=$2 out reqs micros p50 p99 errs
	shift 2
	if ! timeout -k 5 $((secs + 30)) wrk -t "$threads" -c "$conns" -d "${secs}s" --latency \
		-s "$work/report.lua" "$@" "http://$BIND:$port/" >"$work/wrk.out" 2>&1 ||
		! out=$(grep '^RESULT' "$work/wrk.out"); then
		log "wrk gave no result"
		WRK=(0 "" "" "" "")
		return 1
	fi
	read -r _ reqs micros p50 p99 errs <<<"$out"
	WRK=("$reqs" "$(awk -v r="$reqs" -v u="$micros" 'BEGIN { printf "%.0f", r / (u / 1e6) }')"
		"$(awk -v x="$p50" 'BEGIN { printf "%.3f", x / 1000 }')"
		"$(awk -v x="$p99" 'BEGIN { printf "%.3f", x / 1000 }')" "$errs")
}
busy_pct() { # -> % of all CPUs busy (steal included) over one second
	local a b
	a=$(head -n1 /proc/stat)
	sleep 1
	b=$(head -n1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); for (i = 2; i <= 9; i++) t += y[i] - x[i]
		b = t > 0 ? 100 * (t - (y[5] - x[5]) - (y[6] - x[6])) / t : 0; printf "%.0f", b }'
}
save_latency() { # RUN CAND LOAD: the percentiles of the last wrk run, in ms
	awk -v r="$1" -v c="$2" -v l="$3" '$1 == "PCT" { printf "%s\t%s\t%s\t%s\t%.3f\n", r, c, l, $2, $3 / 1000 }' \
		"$work/wrk.out" >>"$work/latency.tsv"
}
us_per() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

bench_one() { # RUN CAND
	local run=$1 cand=$2 port t0c t0s sampler peak_c peak_s held line base_c base_s i c s a b
	local ok n secs why iperf_s
	local k="$run,$cand"
	R[$k,noise]=$(busy_pct)
	log "run $run/$runs: $cand (CPUs ${R[$k,noise]}% busy in the second before)"
	if [ "$cand" = direct ]; then
		port=$BACKEND_PORT
	else
		start_pair "$cand" "$BACKEND_PORT" "run$run-$cand" 0 || { stop_pair; return 0; }
		port=$(cand_port "$cand" 0)
	fi
	if [ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{size_download}' "http://$BIND:$port/")" != "200 $BODY_BYTES" ]; then
		log "$cand: GET / through the pair failed"
		stop_pair
		return 0
	fi
	if [ "$cand" != direct ]; then
		sleep 0.5
		R[$k,rss_idle_c]=$(rss_kib "$PAIR_C") R[$k,rss_idle_s]=$(rss_kib "$PAIR_S")
		R[$k,pss_idle_c]=$(pss_kib "$PAIR_C") R[$k,pss_idle_s]=$(pss_kib "$PAIR_S")
	fi
	run_wrk "$port" "$warmup" >/dev/null || true

	# Keep-alive, with CPU accounting and RSS sampled every 0.2 s.
	if [ "$cand" != direct ]; then
		t0c=$(cpu_ticks "$PAIR_C") t0s=$(cpu_ticks "$PAIR_S")
		(for ((i = 0; i < 5 * (duration + 10); i++)); do
			echo "$(rss_kib "$PAIR_C") $(rss_kib "$PAIR_S")"
			sleep 0.2
		done) >"$work/rss-$run-$cand" &
		sampler=$!
		pids+=("$sampler")
	fi
	if run_wrk "$port" "$duration"; then
		R[$k,ka_rps]=${WRK[1]} R[$k,ka_p50]=${WRK[2]} R[$k,ka_p99]=${WRK[3]} R[$k,ka_err]=${WRK[4]}
		save_latency "$run" "$cand" ka
		if [ "$cand" != direct ]; then
			R[$k,cpu_ka_c]=$(us_per $(($(cpu_ticks "$PAIR_C") - t0c)) "${WRK[0]}")
			R[$k,cpu_ka_s]=$(us_per $(($(cpu_ticks "$PAIR_S") - t0s)) "${WRK[0]}")
		fi
	fi
	if [ "$cand" != direct ]; then
		stop "$sampler"
		read -r peak_c peak_s < <(awk '{ if ($1 > a) a = $1; if ($2 > b) b = $2 } END { print a + 0, b + 0 }' "$work/rss-$run-$cand")
		R[$k,rss_load_c]=$peak_c R[$k,rss_load_s]=$peak_s
	fi
	sleep 0.5

	# A new connection per request: the peers make a TLS handshake between the proxies for
	# each; meshlet's proxies carry it on a TLS connection they keep (tunnel protocol 2).
	[ "$cand" = direct ] || { t0c=$(cpu_ticks "$PAIR_C"); t0s=$(cpu_ticks "$PAIR_S"); }
	if run_wrk "$port" "$duration" -H 'Connection: close'; then
		R[$k,nc_rps]=${WRK[1]} R[$k,nc_p50]=${WRK[2]} R[$k,nc_p99]=${WRK[3]} R[$k,nc_err]=${WRK[4]}
		save_latency "$run" "$cand" nc
		if [ "$cand" != direct ]; then
			R[$k,cpu_nc_c]=$(us_per $(($(cpu_ticks "$PAIR_C") - t0c)) "${WRK[0]}")
			R[$k,cpu_nc_s]=$(us_per $(($(cpu_ticks "$PAIR_S") - t0s)) "${WRK[0]}")
		fi
	fi

	# Idle connections held open through the pair: RSS, and its growth per connection
	# (first run only: memory hardly varies from run to run, and it takes a while).
	if [ "$cand" != direct ] && [ "$run" = 1 ]; then
		sleep 2 # let the connections of the last step close
		base_c=$(rss_kib "$PAIR_C") base_s=$(rss_kib "$PAIR_S")
		spawn "$work/hold-$run-$cand" python3 "$work/hold.py" "$port" "$nidle" 60
		held=$SPAWNED
		for ((i = 0; i < 600; i++)); do
			line=$(grep '^HELD' "$work/hold-$run-$cand" || true)
			[ -n "$line" ] || ! alive "$held" || { sleep 0.1; continue; }
			break
		done
		if [ -n "$line" ]; then
			sleep 1
			c=0 s=0
			for i in 1 2 3; do # the largest of three samples
				a=$(rss_kib "$PAIR_C") b=$(rss_kib "$PAIR_S")
				((a > c)) && c=$a
				((b > s)) && s=$b
				sleep 0.3
			done
			read -r _ ok n secs why <<<"$line"
			R[$k,rss_held_c]=$c R[$k,rss_held_s]=$s R[$k,held]=$ok
			R[$k,conn_c]=$(awk -v a="$c" -v b="$base_c" -v n="$ok" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n }')
			R[$k,conn_s]=$(awk -v a="$s" -v b="$base_s" -v n="$ok" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n }')
			[ "$ok" = "$n" ] || log "$cand: only $ok of $n connections held (last error: $why)"
		else
			log "$cand: the idle-connection holder did not report"
		fi
		stop "$held"
	fi
	stop_pair

	# Bulk: iperf3 through a second, fresh pair.
	if [ "$cand" = direct ]; then
		port=$IPERF_PORT
	else
		start_pair "$cand" "$IPERF_PORT" "run$run-$cand-bulk" 4 || { stop_pair; return 0; }
		port=$(cand_port "$cand" 4)
	fi
	spawn "$work/iperf3-s-$run-$cand.log" iperf3 -s -1 -B "$BIND" -p "$IPERF_PORT"
	iperf_s=$SPAWNED
	if wait_listen "$IPERF_PORT" "$iperf_s"; then
		timeout -k 5 $((bulk + 20)) iperf3 -c "$BIND" -p "$port" -t "$bulk" -f m --connect-timeout 3000 \
			>"$work/iperf3-c-$run-$cand.log" 2>&1 || true
		R[$k,bulk]=$(awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) }
			END { if (v != "") printf "%.2f", v / 1000 }' "$work/iperf3-c-$run-$cand.log")
		[ -n "${R[$k,bulk]}" ] || { log "$cand: iperf3 failed:"; tail -n 3 "$work/iperf3-c-$run-$cand.log" >&2; }
	fi
	stop "$iperf_s"
	[ "$cand" = direct ] || stop_pair
	log "  keep-alive ${R[$k,ka_rps]:-?} req/s, new conn ${R[$k,nc_rps]:-?} req/s, bulk ${R[$k,bulk]:-?} Gbit/s," \
		"CPU ${R[$k,cpu_ka_c]:-?}+${R[$k,cpu_ka_s]:-?} us/req, RSS idle ${R[$k,rss_idle_c]:-?}+${R[$k,rss_idle_s]:-?} KiB," \
		"${R[$k,held]:-?} conns held: ${R[$k,conn_c]:-?}+${R[$k,conn_s]:-?} KiB each"
}

start_s=$(date +%s)
log "work dir $work; ports from $port_base; $runs run(s) of $cands"
for ((run = 1; run <= runs; run++)); do
	# shellcheck disable=SC2086 # a list of names
	set -- $cands
	n=$#
	order=()
	for ((j = 0; j < n; j++)); do # rotate the order from run to run
		idx=$(((j + run - 1) % n + 1))
		order+=("${!idx}")
	done
	for c in "${order[@]}"; do bench_one "$run" "$c"; done
done

# ---- the table --------------------------------------------------------------
med() { # CAND KEY -> median over the runs, empty when none
	local r v=()
	for ((r = 1; r <= runs; r++)); do [ -z "${R[$r,$1,$2]:-}" ] || v+=("${R[$r,$1,$2]}"); done
	((${#v[@]})) || return 0
	printf '%s\n' "${v[@]}" | sort -g | awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m }'
}
declare -A M
keys=(ka_rps ka_p50 ka_p99 ka_err nc_rps nc_p50 nc_p99 nc_err bulk rss_idle_c rss_idle_s pss_idle_c pss_idle_s
	rss_load_c rss_load_s rss_held_c rss_held_s conn_c conn_s held cpu_ka_c cpu_ka_s cpu_nc_c cpu_nc_s noise)
for c in $cands; do
	for key in "${keys[@]}"; do
		M[$c,$key]=$(med "$c" "$key")
	done
done
fmt() { # PRINTF-FORMAT VALUE...: every value must be set, or "-"
	local f=$1 v
	shift
	for v in "$@"; do [ -n "$v" ] || { echo -; return; }; done
	# shellcheck disable=SC2059
	printf "$f" "$@"
}
cell() { # CAND ROW -> the text of one cell
	local c=$1
	case $2 in
	ka) fmt '%.0f' "${M[$c,ka_rps]}" ;;
	kalat) fmt '%.2f / %.2f' "${M[$c,ka_p50]}" "${M[$c,ka_p99]}" ;;
	nc) fmt '%.0f' "${M[$c,nc_rps]}" ;;
	nclat) fmt '%.2f / %.2f' "${M[$c,nc_p50]}" "${M[$c,nc_p99]}" ;;
	bulk) fmt '%.2f' "${M[$c,bulk]}" ;;
	cpuka) fmt '%.1f' "$(awk -v a="${M[$c,cpu_ka_c]}" -v b="${M[$c,cpu_ka_s]}" 'BEGIN { if (a != "" && b != "") print a + b }')" ;;
	cpukas) fmt '%.1f + %.1f' "${M[$c,cpu_ka_c]}" "${M[$c,cpu_ka_s]}" ;;
	cpunc) fmt '%.0f' "$(awk -v a="${M[$c,cpu_nc_c]}" -v b="${M[$c,cpu_nc_s]}" 'BEGIN { if (a != "" && b != "") print a + b }')" ;;
	idle) fmt '%.1f / %.1f' "${M[$c,rss_idle_c]:+$(mib "${M[$c,rss_idle_c]}")}" "${M[$c,rss_idle_s]:+$(mib "${M[$c,rss_idle_s]}")}" ;;
	pss) fmt '%.1f / %.1f' "${M[$c,pss_idle_c]:+$(mib "${M[$c,pss_idle_c]}")}" "${M[$c,pss_idle_s]:+$(mib "${M[$c,pss_idle_s]}")}" ;;
	load) fmt '%.1f / %.1f' "${M[$c,rss_load_c]:+$(mib "${M[$c,rss_load_c]}")}" "${M[$c,rss_load_s]:+$(mib "${M[$c,rss_load_s]}")}" ;;
	held) fmt '%.1f / %.1f' "${M[$c,rss_held_c]:+$(mib "${M[$c,rss_held_c]}")}" "${M[$c,rss_held_s]:+$(mib "${M[$c,rss_held_s]}")}" ;;
	conn) fmt '%.0f / %.0f' "${M[$c,conn_c]}" "${M[$c,conn_s]}" ;;
	err) fmt '%d / %d / %s' "${M[$c,ka_err]}" "${M[$c,nc_err]}" "${M[$c,held]:--}" ;;
	noise) fmt '%.0f' "${M[$c,noise]}" ;;
	esac
}
# The best peer of this run, for the relative targets (issue 5's medians if there is none).
best() { # KEY DEFAULT -> "value name"
	local c v bv="" bn=""
	for c in stunnel haproxy nginx; do
		[[ " $cands " == *" $c "* ]] || continue
		v=${M[$c,$1]:-}
		[ -n "$v" ] || continue
		if [ -z "$bv" ] || awk -v a="$v" -v b="$bv" 'BEGIN { exit !(a > b) }'; then bv=$v bn=$c; fi
	done
	[ -n "$bv" ] && echo "$bv $bn" || echo "$2 issue-5"
}
read -r best_ka best_ka_n < <(best ka_rps 47000)
read -r best_nc best_nc_n < <(best nc_rps 1343)
read -r best_bulk best_bulk_n < <(best bulk 8.3)
target() { # ROW -> "text op limit" (op: ge, le)
	case $1 in
	ka) awk -v b="$best_ka" -v n="$best_ka_n" 'BEGIN { printf ">= %.0f (1.5x %s)|ge|%f\n", 1.5 * b, n, 1.5 * b }' ;;
	nc) awk -v b="$best_nc" -v n="$best_nc_n" 'BEGIN { printf ">= %.0f (3x %s)|ge|%f\n", 3 * b, n, 3 * b }' ;;
	bulk) awk -v b="$best_bulk" -v n="$best_bulk_n" 'BEGIN { printf ">= %.2f (1.2x %s)|ge|%f\n", 1.2 * b, n, 1.2 * b }' ;;
	cpuka) echo "<= 15 (both proxies)|le|15" ;;
	idle) echo "<= 5.0 each|le|5" ;;
	conn) echo "<= 64 each|le|64" ;;
	esac
}
verdict() { # ROW -> met / missed, for meshlet's median
	local t op lim v
	t=$(target "$1")
	[ -n "$t" ] || return 0
	op=$(cut -d'|' -f2 <<<"$t") lim=$(cut -d'|' -f3 <<<"$t")
	case $1 in
	ka) v=${M[meshlet,ka_rps]:-} ;;
	nc) v=${M[meshlet,nc_rps]:-} ;;
	bulk) v=${M[meshlet,bulk]:-} ;;
	cpuka) v=$(cell meshlet cpuka) ;;
	idle) v=$(awk -v a="${M[meshlet,rss_idle_c]:-}" -v b="${M[meshlet,rss_idle_s]:-}" 'BEGIN { m = a + 0 > b + 0 ? a : b; if (a != "") print m / 1024 }') ;;
	conn) v=$(awk -v a="${M[meshlet,conn_c]:-}" -v b="${M[meshlet,conn_s]:-}" 'BEGIN { m = a + 0 > b + 0 ? a : b; if (a != "") print m }') ;;
	esac
	[ -n "$v" ] && [ "$v" != - ] || { echo "n/a"; return 0; }
	awk -v v="$v" -v l="$lim" -v op="$op" 'BEGIN {
		ok = op == "ge" ? v >= l : v <= l
		printf "%s (%.2fx the %s)\n", ok ? "MET" : "missed", v / l, op == "ge" ? "target" : "limit" }'
}

rows=(ka kalat nc nclat bulk cpuka cpukas cpunc idle pss load held conn err noise)
declare -A label=(
	[ka]="keep-alive requests/s"
	[kalat]="  p50 / p99 ms"
	[nc]="new connection per request, req/s"
	[nclat]="  p50 / p99 ms"
	[bulk]="bulk, iperf3 Gbit/s"
	[cpuka]="proxy CPU us per keep-alive request"
	[cpukas]="  client + server"
	[cpunc]="proxy CPU us per new-conn request"
	[idle]="RSS idle MiB, client / server"
	[pss]="  PSS idle MiB (shared pages split)"
	[load]="RSS peak under keep-alive, MiB"
	[held]="RSS with $nidle idle conns, MiB"
	[conn]="KiB per idle connection, c / s"
	[err]="wrk errors KA / NC; conns held"
	[noise]="CPU % busy before start (not ours)"
)
{
	printf '\nOne mTLS sidecar hop on loopback: wrk -t%d -c%d -d%ds, iperf3 -t %d, %d idle connections;\n' \
		"$threads" "$conns" "$duration" "$bulk" "$nidle"
	printf 'one worker per proxy, %d cores (%s), median of %d run(s), %d s in all; %s\n' "$(nproc)" \
		"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" "$runs" \
		"$(($(date +%s) - start_s))" "$("$MESHLET" --version | head -n1)"
	printf '\n%-37s' ""
	for c in $cands; do printf '%16s' "$c"; done
	[[ " $cands " == *" meshlet "* ]] && printf '   %-30s %s' "target (issue 5)" "meshlet"
	printf '\n'
	for row in "${rows[@]}"; do
		printf '%-37s' "${label[$row]}"
		for c in $cands; do printf '%16s' "$(cell "$c" "$row")"; done
		if [[ " $cands " == *" meshlet "* ]]; then
			t=$(target "$row")
			[ -z "$t" ] || printf '   %-30s %s' "${t%%|*}" "$(verdict "$row")"
		fi
		printf '\n'
	done
	cat <<EOF

RSS is VmRSS summed over each proxy's processes (nginx: master + worker), without kernel
socket buffers; PSS (smaps_rollup) splits each shared page among the processes that map
it, as the libraries of many sidecars on a node are shared; "per idle connection" is the
growth while $nidle connections, each used for one request, are held open through the pair. CPU is utime+stime of both proxies over
the wrk run divided by its requests (tick: $((1000 / CLK_TCK)) ms). wrk, the backend and both
proxies share the same $(nproc) cores. Relative targets are taken against this run's best
peer. Issue 5's peer medians: keep-alive 23.6k-47.0k (direct 141k), new connection
950-1,343 req/s, iperf3 7.5-8.3 Gbit/s (direct 20.3), 24-64 us CPU per keep-alive
request, 10-19.5 MiB idle RSS per proxy.
EOF
}

# ---- the figures as files, for bench/report.sh ----------------------------------
if [ -n "${BENCH_OUT:-}" ]; then
	mkdir -p "$BENCH_OUT"
	{
		printf 'duration=%s\nruns=%s\nconnections=%s\nthreads=%s\nbulk_seconds=%s\n' \
			"$duration" "$runs" "$conns" "$threads" "$bulk"
		printf 'idle_connections=%s\ncandidates=%s\nseconds=%s\nclk_tck=%s\nbody_bytes=%s\n' \
			"$nidle" "$cands" "$(($(date +%s) - start_s))" "$CLK_TCK" "$BODY_BYTES"
		printf 'meshlet=%s\n' "$("$MESHLET" --version | head -n1)"
	} >"$BENCH_OUT/proxy.env"
	{
		printf 'candidate\tkey\tvalue\n'
		for c in $cands; do
			for key in "${keys[@]}"; do
				[ -z "${M[$c,$key]}" ] || printf '%s\t%s\t%s\n' "$c" "$key" "${M[$c,$key]}"
			done
		done
	} >"$BENCH_OUT/proxy.tsv"
	{
		printf 'run\tcandidate\tkey\tvalue\n'
		for ((r = 1; r <= runs; r++)); do
			for c in $cands; do
				for key in "${keys[@]}"; do
					[ -z "${R[$r,$c,$key]:-}" ] || printf '%s\t%s\t%s\t%s\n' "$r" "$c" "$key" "${R[$r,$c,$key]}"
				done
			done
		done
	} >"$BENCH_OUT/proxy-runs.tsv"
	{
		printf 'row\ttarget\tverdict\n'
		if [[ " $cands " == *" meshlet "* ]]; then
			for row in "${rows[@]}"; do
				t=$(target "$row")
				[ -z "$t" ] || printf '%s\t%s\t%s\n' "$row" "${t%%|*}" "$(verdict "$row")"
			done
		fi
	} >"$BENCH_OUT/proxy-targets.tsv"
	{
		printf 'run\tcandidate\tload\tpercentile\tms\n'
		cat "$work/latency.tsv" 2>/dev/null || true
	} >"$BENCH_OUT/proxy-latency.tsv"
	log "figures written to $BENCH_OUT/proxy*.{env,tsv}"
fi

# ---- optional profile of meshlet's pair ---------------------------------------
if [ -n "${PERF_RECORD:-}" ] && [[ " $cands " == *" meshlet "* ]]; then
	mkdir -p "$PERF_RECORD"
	start_pair meshlet "$BACKEND_PORT" perf 0
	port=$(cand_port meshlet 0)
	for mode in ka nc; do
		extra=()
		[ $mode = ka ] || extra=(-H 'Connection: close')
		spawn "$work/perf-$mode-c.log" perf record -g -o "$PERF_RECORD/$mode-client.data" -p "$PAIR_C" -- sleep "$duration"
		pc=$SPAWNED
		spawn "$work/perf-$mode-s.log" perf record -g -o "$PERF_RECORD/$mode-server.data" -p "$PAIR_S" -- sleep "$duration"
		ps_=$SPAWNED
		run_wrk "$port" "$duration" "${extra[@]+"${extra[@]}"}" || true
		while alive "$pc" || alive "$ps_"; do sleep 0.2; done
		for side in client server; do
			printf '\nperf, meshlet %s side, %s (%s req/s while profiled): self time by library, then the hottest symbols\n' \
				"$side" "$([ $mode = ka ] && echo keep-alive || echo 'new connection per request')" "${WRK[1]}"
			perf report -i "$PERF_RECORD/$mode-$side.data" --stdio --no-children -g none --sort dso 2>/dev/null |
				grep -E '^ +[0-9.]+%' | head -n 6 || true
			perf report -i "$PERF_RECORD/$mode-$side.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null |
				grep -E '^ +[0-9.]+%' | sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' | head -n 15 || true
		done
	done
	stop_pair
fi
