#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What authorization policies cost on an HTTP port: requests/s through a meshlet-proxy
# pair (wrk -> client proxy -> mutual TLS -> server proxy -> nginx) on loopback, with the
# server proxy configured
#   tcp      no policy, the port not declared HTTP (bytes pass through: the floor),
#   http/0   the port declared HTTP (every request head parsed), no policy,
#   http/10  10 ALLOW policies, the one that matches last,
#   http/100 100 ALLOW policies, the one that matches last,
# each policy naming a principal, methods and a path prefix, as Istio users write them.
# Figures: keep-alive requests/s with p50 and p99 (wrk), median of the runs, and the
# server proxy's CPU per request (utime+stime from /proc/PID/stat over the run).
#
# Usage: bench/policy.sh [-d SECONDS] [-r RUNS] [-c CONNECTIONS] [-t THREADS]
#   defaults: -d 5 -r 3 -c 50 -t 2 (about 1.5 minutes on 2 cores)
# Needs: a build (make), wrk and nginx (make deps-bench).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

duration=5 runs=3 conns=50 threads=2
while getopts "d:r:c:t:h" opt; do
	case $opt in
	d) duration=$OPTARG ;;
	r) runs=$OPTARG ;;
	c) conns=$OPTARG ;;
	t) threads=$OPTARG ;;
	*) sed -n '14,17p' "$0"; exit 2 ;;
	esac
done
for v in "$duration" "$runs" "$conns" "$threads"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench/policy.sh: $v: a positive integer is needed" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "bench/policy.sh: wrk is missing: run make deps-bench" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench/policy.sh: nginx is missing: run make deps-bench" >&2; exit 1; }
for b in meshlet-proxy meshlet-ca; do
	[ -x "build/bin/$b" ] || { echo "bench/policy.sh: build/bin/$b is missing: run make" >&2; exit 1; }
done

TD=bench.local
CLK_TCK=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/meshlet-bench-policy.XXXXXX)
# Processes stopped by PID at exit, free ports, the nginx backend.
. bench/lib.sh

wait_port() { # PORT
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench/policy.sh: nothing listens on $1" >&2
	return 1
}
cpu_ticks() { # PID -> utime+stime
	local s
	s=$(<"/proc/$1/stat")
	s=${s##*) }
	read -r -a f <<<"$s"
	echo $((f[11] + f[12]))
}

# Certificates, the backend, the client proxy: the same for every configuration.
mkdir -p "$work/ca" "$work/policies"
build/bin/meshlet-ca init --dir "$work/ca" --trust-domain "$TD" >/dev/null
for who in client server; do
	build/bin/meshlet-ca issue --dir "$work/ca" --spiffe-id "spiffe://$TD/ns/bench/sa/$who" \
		--ttl 24h --out "$work/$who" >/dev/null
done
backend=$(free_port)
nginx_backend "$work/nginx" 127.0.0.1 "$backend" 52
spawn "$work/nginx/out.log" "$NGINX" -c "$work/nginx/nginx.conf" -p "$work/nginx"
wait_port "$backend"

proxy_conf() { # ROLE STATIC ADMIN [POLICY-YAML] -> config file
	cat >"$work/$1.yaml" <<EOF
trust_domain: $TD
workers: 1
identity:
  mode: files
  cert_file: $work/$1.crt
  key_file: $work/$1.key
  bundle_file: $work/ca/root-cert.pem
  namespace: bench
listeners:
  capture: false
  static:
    - "$2"
ports:
  admin: $3
timeouts:
  drain: 1s
log:
  level: warn
${4:-}
EOF
}
server_port=$(free_port) client_port=$(free_port)
proxy_conf client "originate 127.0.0.1:$client_port 127.0.0.1:$server_port spiffe://$TD/ns/bench/sa/server" "$(free_port)"
spawn "$work/client.log" build/bin/meshlet-proxy run --config "$work/client.yaml"
wait_port "$client_port"

policies() { # N -> N ALLOW policies, the matching one last
	local n=$1 i
	for ((i = 1; i <= n; i++)); do
		local who="team-$i" path="/svc-$i/*"
		((i == n)) && who=client path="/*"
		cat <<EOF
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-$i
  namespace: bench
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["$TD/ns/bench/sa/$who"]
    to:
    - operation:
        methods: ["GET", "HEAD"]
        paths: ["$path"]
EOF
	done
}

run_wrk() { # -> "rps p50_ms p99_ms requests non2xx"
	local out
	out=$(wrk -t "$threads" -c "$conns" -d "${duration}s" --latency "http://127.0.0.1:$client_port/svc/item" 2>&1)
	awk '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
		/Requests\/sec/ { rps = $2 }
		/^ +50%/ { p50 = ms($2) }
		/^ +99%/ { p99 = ms($2) }
		/requests in/ { n = $1 }
		/Non-2xx/ { bad = $NF }
		END { printf "%d %.2f %.2f %d %d\n", rps, p50, p99, n, bad }' <<<"$out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A rps p50 p99 cpu
configs="tcp http/0 http/10 http/100"
for cfg in $configs; do
	rm -f "$work"/policies/*
	extra=""
	case $cfg in
	tcp) ;;
	http/*)
		n=${cfg#http/}
		if ((n > 0)); then policies "$n" >"$work/policies/bench.yaml"; fi
		extra="policy:
  paths: [\"$work/policies\"]
  http_ports: \"$backend\""
		;;
	esac
	proxy_conf server "terminate 127.0.0.1:$server_port 127.0.0.1:$backend" "$(free_port)" "$extra"
	spawn "$work/server.log" build/bin/meshlet-proxy run --config "$work/server.yaml"
	spid=$SPAWNED
	wait_port "$server_port"
	curl -sf "http://127.0.0.1:$client_port/svc/item" >/dev/null ||
		{ echo "bench/policy.sh: $cfg: a request through the pair failed" >&2; cat "$work/server.log" >&2; exit 1; }
	r=() p=() q=() c=()
	for ((i = 0; i < runs; i++)); do
		t0=$(cpu_ticks "$spid")
		read -r a b d n bad < <(run_wrk)
		t1=$(cpu_ticks "$spid")
		[ "$bad" = 0 ] || { echo "bench/policy.sh: $cfg: $bad requests were not 2xx" >&2; exit 1; }
		r+=("$a") p+=("$b") q+=("$d")
		c+=("$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')")
	done
	rps[$cfg]=$(median "${r[@]}") p50[$cfg]=$(median "${p[@]}") p99[$cfg]=$(median "${q[@]}")
	cpu[$cfg]=$(median "${c[@]}")
	stop "$spid"
done

printf '\nAuthorization policies on an HTTP port, one meshlet-proxy pair on loopback\n'
printf '(wrk -t%d -c%d -d%ds, keep-alive, median of %d runs; %s, %d cores):\n\n' \
	"$threads" "$conns" "$duration" "$runs" "$(uname -r)" "$(nproc)"
printf '| %-9s | %10s | %8s | %8s | %14s |\n' "server" "requests/s" "p50 ms" "p99 ms" "server CPU/req"
printf '|%s|%s|%s|%s|%s|\n' "-----------" "------------" "----------" "----------" "----------------"
for cfg in $configs; do
	printf '| %-9s | %10s | %8s | %8s | %11s µs |\n' "$cfg" "${rps[$cfg]}" "${p50[$cfg]}" "${p99[$cfg]}" "${cpu[$cfg]}"
done
printf '\ntcp: the port is not declared HTTP (no parsing); http/N: every request head is parsed\n'
printf 'and decided against N ALLOW policies, the matching one last.\n'
