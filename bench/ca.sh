#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures meshlet-ca's issuance rate: concurrent keep-alive HTTPS clients (wrk) post the
# same kind of request a workload sends (an RS256 service-account token and an EC P-256
# CSR), and the figures are printed next to the floor that the cryptography itself sets
# on this machine (openssl speed: one ECDSA verify for the CSR, one RSA-2048 verify for
# the token and one ECDSA sign for the certificate, per issuance).
#
# Usage: [BUILD=build] bench/ca.sh [-p] [-c CONNECTIONS] [-t THREADS] [-d SECONDS]
# Needs: a build (make), wrk and openssl (make deps-bench). PERF_RECORD=FILE profiles the
# CA under load with perf. BENCH_OUT=DIR also writes the figures there (ca.env,
# ca-latency.tsv).
#
# How to read it. By default nothing is pinned: the CA (one worker thread per core) and
# wrk share every core, and the floor is the single-core openssl speed figures times the
# number of cores. wrk's own TLS and HTTP work (and anything else running) takes from the
# CA's share, so that ratio understates the CA. Two more figures are honest about that:
# the CA's own CPU time over the run gives issuances per CPU-second the CA used, next to
# the one-core floor (what the CA would do per core if it had the cores to itself); and
# the load average before the run says how busy the machine already was. With -p, the CA
# is pinned (taskset) to every core but the first, wrk to the first, and the floor counts
# only the CA's cores; on two cores that is one core each.
set -euo pipefail
BENCH_OUT=${BENCH_OUT:+$(realpath -m "$BENCH_OUT")}
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

conns=32 threads=2 duration=10 pin=
while getopts "pc:t:d:h" opt; do
	case $opt in
	p) pin=1 ;;
	c) conns=$OPTARG ;;
	t) threads=$OPTARG ;;
	d) duration=$OPTARG ;;
	*) sed -n '3,22p' "$0"; exit 2 ;;
	esac
done
for tool in wrk openssl; do
	command -v "$tool" >/dev/null || { echo "bench/ca.sh: $tool is missing: run make deps-bench" >&2; exit 1; }
done
ca=$BUILD/bin/meshlet-ca
[ -x "$ca" ] || { echo "bench/ca.sh: $ca is missing: run make" >&2; exit 1; }
cores=$(nproc)
ca_pin=() wrk_pin=() ca_cpus=$cores
if [ -n "$pin" ]; then
	[ "$cores" -ge 2 ] || { echo "bench/ca.sh: -p needs at least two cores" >&2; exit 1; }
	command -v taskset >/dev/null || { echo "bench/ca.sh: -p needs taskset (util-linux)" >&2; exit 1; }
	ca_pin=(taskset -c "1-$((cores - 1))") wrk_pin=(taskset -c 0) ca_cpus=$((cores - 1))
fi

work=$(mktemp -d /tmp/meshlet-bench-ca.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$ca" init --dir "$work/ca" --trust-domain bench.local >/dev/null
"$ca" issue --dir "$work/ca" --dns localhost --out "$work/serving" >/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/issuer.key" 2>/dev/null
chmod 600 "$work/issuer.key"
"$ca" jwks --key "$work/issuer.key" >"$work/jwks.json"
token=$("$ca" token --key "$work/issuer.key" --issuer https://kubernetes.default.svc.cluster.local \
	--audience meshlet-ca --namespace bench --service-account load --ttl 1h)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /O=bench \
	-keyout "$work/wl.key" -out "$work/wl.csr" 2>/dev/null
printf 'rate_limit:\n  per_second: 0\nworkers: %d\n' "$ca_cpus" >"$work/ca.yaml"

"${ca_pin[@]}" "$ca" serve --config "$work/ca.yaml" --listen 127.0.0.1:0 --ca-dir "$work/ca" \
	--tls-cert "$work/serving.crt" --tls-key "$work/serving.key" \
	--jwks-file "$work/jwks.json" >"$work/audit.log" 2>"$work/ca.log" &
pid=$!
port=
for _ in $(seq 100); do
	port=$(grep -o '"port":[0-9]*' "$work/ca.log" | head -n1 | cut -d: -f2 || true)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { echo "bench/ca.sh: meshlet-ca did not start:" >&2; cat "$work/ca.log" >&2; exit 1; }

# The request body, with the CSR's line ends escaped for JSON.
awk 'BEGIN { printf "{\"csr\":\"" } { printf "%s\\n", $0 } END { printf "\",\"ttl_seconds\":3600}" }' \
	"$work/wl.csr" >"$work/body.json"
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
local f = io.open("$work/body.json")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
done = function(summary, latency, requests)
	io.write(string.format("RESULT %d %d %d %.1f %.1f\n", summary.requests,
		summary.errors.status + summary.errors.connect + summary.errors.read +
		summary.errors.write + summary.errors.timeout, summary.duration,
		latency:percentile(50), latency:percentile(99)))
	for _, p in ipairs({ 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99 }) do
		io.write(string.format("PCT %g %.0f\n", p, latency:percentile(p)))
	end
end
EOF
# Check one request by hand before loading it.
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/ca/root-cert.pem" \
	-H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
	--data @"$work/body.json" "https://localhost:$port/v1/certify")
[ "$code" = 200 ] || { echo "bench/ca.sh: a test request got HTTP $code" >&2; exit 1; }

# PERF_RECORD=file profiles the CA while it is under load (perf record -g).
perf_pid=
if [ -n "${PERF_RECORD:-}" ]; then
	perf record -g -o "$PERF_RECORD" -p "$pid" -- sleep "$duration" >/dev/null 2>&1 &
	perf_pid=$!
fi
# The CA's own CPU time (user + system, in clock ticks) over the run.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
cpu0=$(cpu_ticks "$pid")
"${wrk_pin[@]}" wrk -t "$threads" -c "$conns" -d "${duration}s" -s "$work/post.lua" "https://localhost:$port/v1/certify" >"$work/wrk.out"
cpu1=$(cpu_ticks "$pid")
[ -z "$perf_pid" ] || wait "$perf_pid"
read -r _ reqs errors micros p50 p99 < <(grep '^RESULT' "$work/wrk.out")
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
rate=$(awk -v r="$reqs" -v us="$micros" 'BEGIN { printf "%.0f", r / (us / 1e6) }')
hz=$(getconf CLK_TCK)
ca_cores=$(awk -v t="$((cpu1 - cpu0))" -v hz="$hz" -v us="$micros" 'BEGIN { printf "%.2f", t / hz / (us / 1e6) }')
per_cpu_s=$(awk -v r="$reqs" -v t="$((cpu1 - cpu0))" -v hz="$hz" 'BEGIN { printf "%.0f", (t > 0) ? r / (t / hz) : 0 }')

# The floor: what the three public-key operations alone allow on every core. openssl speed
# runs where the CA ran (its cores, with -p), three times, and the best figure of each
# operation counts: a floor measured low on a noisy machine would flatter the CA.
ec_sign=0 ec_verify=0 rsa_verify=0
for _ in 1 2 3; do
	speed=$("${ca_pin[@]}" openssl speed -seconds 2 ecdsap256 rsa2048 2>/dev/null)
	ec_sign=$(awk -v b="$ec_sign" '/256 bits ecdsa \(nistp256\)/ { v = $(NF-1) } END { print (v > b ? v : b) }' <<<"$speed")
	ec_verify=$(awk -v b="$ec_verify" '/256 bits ecdsa \(nistp256\)/ { v = $NF } END { print (v > b ? v : b) }' <<<"$speed")
	rsa_verify=$(awk -v b="$rsa_verify" '/^rsa 2048 bits/ { v = $NF } END { print (v > b ? v : b) }' <<<"$speed")
done
floor=$(awk -v s="$ec_sign" -v v="$ec_verify" -v r="$rsa_verify" -v n="$ca_cpus" \
	'BEGIN { printf "%.0f", n / (1 / s + 1 / v + 1 / r) }')
floor1=$(awk -v s="$ec_sign" -v v="$ec_verify" -v r="$rsa_verify" \
	'BEGIN { printf "%.0f", 1 / (1 / s + 1 / v + 1 / r) }')

printf '\nmeshlet-ca issuance, %d connections, %d wrk threads, %ds, %d cores, %s (%s)\n' \
	"$conns" "$threads" "$duration" "$cores" \
	"$([ -n "$pin" ] && echo "CA pinned to cores 1-$((cores - 1)), wrk to core 0" || echo "nothing pinned")" \
	"$(openssl version | cut -d' ' -f1-2)"
printf '%-44s %12s\n' "what (openssl speed: best of 3 runs)" "per second"
printf '%-44s %12s\n' "openssl speed: ECDSA P-256 sign (1 core)" "$ec_sign"
printf '%-44s %12s\n' "openssl speed: ECDSA P-256 verify (1 core)" "$ec_verify"
printf '%-44s %12s\n' "openssl speed: RSA-2048 verify (1 core)" "$rsa_verify"
printf '%-44s %12s\n' "floor: sign + 2 verifies, $ca_cpus core(s) of the CA" "$floor"
printf '%-44s %12s\n' "floor: sign + 2 verifies, one core" "$floor1"
printf '%-44s %12s\n' "meshlet-ca issuances" "$rate"
printf '%-44s %12s\n' "meshlet-ca issuances per CPU-second it used" "$per_cpu_s"
printf '\nratio to the floor: %s%%   p50 %.2f ms   p99 %.2f ms   errors %d   peak RSS %.1f MiB\n' \
	"$(awk -v a="$rate" -v b="$floor" 'BEGIN { printf "%.0f", 100 * a / b }')" \
	"$(awk -v x="$p50" 'BEGIN { print x / 1000 }')" "$(awk -v x="$p99" 'BEGIN { print x / 1000 }')" \
	"$errors" "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')"
printf 'the CA kept %s of %d cores busy; per CPU-second it used, %s%% of the one-core floor\n' \
	"$ca_cores" "$cores" "$(awk -v a="$per_cpu_s" -v b="$floor1" 'BEGIN { printf "%.0f", 100 * a / b }')"
printf 'load average before the run: %s\n' "$load_before"
[ -n "$pin" ] || echo "(wrk runs on the same cores as the CA, so the floor is not reachable in full.)"

if [ -n "${BENCH_OUT:-}" ]; then
	mkdir -p "$BENCH_OUT"
	{
		printf 'connections=%s\nthreads=%s\nduration=%s\ncores=%s\npinned=%s\nca_cores=%s\n' \
			"$conns" "$threads" "$duration" "$cores" "${pin:-0}" "$ca_cpus"
		printf 'ecdsa_p256_sign=%s\necdsa_p256_verify=%s\nrsa2048_verify=%s\n' "$ec_sign" "$ec_verify" "$rsa_verify"
		printf 'floor=%s\nfloor_one_core=%s\nissuances=%s\nrequests=%s\nissuances_per_cpu_second=%s\n' \
			"$floor" "$floor1" "$rate" "$reqs" "$per_cpu_s"
		printf 'ratio_pct=%s\nratio_cpu_pct=%s\n' \
			"$(awk -v a="$rate" -v b="$floor" 'BEGIN { printf "%.0f", 100 * a / b }')" \
			"$(awk -v a="$per_cpu_s" -v b="$floor1" 'BEGIN { printf "%.0f", 100 * a / b }')"
		printf 'p50=%s\np99=%s\nerrors=%s\nrss_peak_kib=%s\nbusy_cores=%s\nload_before=%s\n' \
			"$(awk -v x="$p50" 'BEGIN { printf "%.3f", x / 1000 }')" "$(awk -v x="$p99" 'BEGIN { printf "%.3f", x / 1000 }')" \
			"$errors" "$rss_kib" "$ca_cores" "$load_before"
		printf 'openssl=%s\nversion=%s\n' "$(openssl version | cut -d' ' -f1-2)" "$("$ca" --version | head -n1)"
	} >"$BENCH_OUT/ca.env"
	{
		printf 'percentile\tms\n'
		awk '$1 == "PCT" { printf "%s\t%.3f\n", $2, $3 / 1000 }' "$work/wrk.out"
	} >"$BENCH_OUT/ca-latency.tsv"
fi
