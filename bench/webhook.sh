#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Measures meshlet-webhook: concurrent keep-alive HTTPS clients (wrk) post a typical pod
# AdmissionReview (bench/data/pod-review.json), and the figures are printed next to the
# floor: nginx answering the same POST with a fixed 2 KB body over TLS, in the same run.
# A lone client's p99 shows the server time per review without queueing.
#
# Usage: [BUILD=build] bench/webhook.sh [-c CONNECTIONS] [-t THREADS] [-d SECONDS]
# Needs: a build (make), wrk, nginx and openssl (make deps-bench).
# BENCH_OUT=DIR also writes the figures there (webhook.env, webhook-latency.tsv).
set -euo pipefail
BENCH_OUT=${BENCH_OUT:+$(realpath -m "$BENCH_OUT")}
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

conns=32 threads=2 duration=10
while getopts "c:t:d:h" opt; do
	case $opt in
	c) conns=$OPTARG ;;
	t) threads=$OPTARG ;;
	d) duration=$OPTARG ;;
	*) sed -n '3,10p' "$0"; exit 2 ;;
	esac
done
for tool in wrk nginx openssl; do
	command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
		{ echo "bench/webhook.sh: $tool is missing: run make deps-bench" >&2; exit 1; }
done
[ -x "$BUILD"/bin/meshlet-webhook ] || { echo "bench/webhook.sh: run make first" >&2; exit 1; }

work=$(mktemp -d /tmp/meshlet-bench-webhook.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$BUILD"/bin/meshlet-ca init --dir "$work/ca" --trust-domain bench.local >/dev/null
"$BUILD"/bin/meshlet-ca issue --dir "$work/ca" --dns localhost --out "$work/serving" >/dev/null
printf 'mesh:\n  trust_bundle_file: %s\naudit_file: %s\n' "$work/ca/root-cert.pem" \
	"$work/audit.log" >"$work/webhook.yaml"
"$BUILD"/bin/meshlet-webhook serve --config "$work/webhook.yaml" --listen 127.0.0.1:0 \
	--tls-cert "$work/serving.crt" --tls-key "$work/serving.key" >/dev/null 2>"$work/webhook.log" &
pids+=($!)
webhook_pid=$!
port=
for _ in $(seq 100); do
	port=$(grep -o '"port":[0-9]*' "$work/webhook.log" | head -n1 | cut -d: -f2 || true)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { echo "bench/webhook.sh: the webhook did not start:" >&2; cat "$work/webhook.log" >&2; exit 1; }

# The floor: nginx, same certificate, same machine, a fixed 2 KB answer to the same POST.
nginx_port=$((port + 1))
body2k=$(head -c 2048 /dev/zero | tr '\0' 'x')
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_buffer_size 64k;
	server {
		listen 127.0.0.1:$nginx_port ssl;
		ssl_certificate $work/serving.crt;
		ssl_certificate_key $work/serving.key;
		location /inject { default_type application/json; return 200 '{"pad":"$body2k"}'; }
	}
}
NGINX
/usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
sleep 0.5

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("bench/data/pod-review.json")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
	io.write(string.format("RESULT %d %d %d %.1f %.1f\n", summary.requests,
		summary.errors.status + summary.errors.connect + summary.errors.read +
		summary.errors.write + summary.errors.timeout, summary.duration,
		latency:percentile(50), latency:percentile(99)))
	for _, p in ipairs({ 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99 }) do
		io.write(string.format("PCT %g %.0f\n", p, latency:percentile(p)))
	end
end
LUA
code=$(curl -s -o "$work/answer.json" -w '%{http_code}' --cacert "$work/ca/root-cert.pem" \
	-H 'Content-Type: application/json' --data @bench/data/pod-review.json \
	"https://localhost:$port/inject?timeout=10s")
grep -q '"patchType":"JSONPatch"' "$work/answer.json" && [ "$code" = 200 ] ||
	{ echo "bench/webhook.sh: a test review was not injected (HTTP $code)" >&2; exit 1; }

measure() { # url threads connections label -> "rate errors p50_ms p99_ms"
	wrk -t "$2" -c "$3" -d "${duration}s" -s "$work/post.lua" "$1" >"$work/wrk.out"
	read -r _ reqs errors micros p50 p99 < <(grep '^RESULT' "$work/wrk.out")
	awk -v l="$4" '$1 == "PCT" { printf "%s\t%s\t%.3f\n", l, $2, $3 / 1000 }' "$work/wrk.out" >>"$work/latency.tsv"
	awk -v r="$reqs" -v us="$micros" -v e="$errors" -v a="$p50" -v b="$p99" \
		'BEGIN { printf "%.0f %d %.3f %.3f\n", r / (us / 1e6), e, a / 1000, b / 1000 }'
}
read -r w_rate w_err w_p50 w_p99 < <(measure "https://localhost:$port/inject?timeout=10s" "$threads" "$conns" webhook)
read -r n_rate n_err n_p50 n_p99 < <(measure "https://localhost:$nginx_port/inject" "$threads" "$conns" nginx)
read -r l_rate l_err l_p50 l_p99 < <(measure "https://localhost:$port/inject?timeout=10s" 1 1 webhook-one)
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$webhook_pid/status")

printf '\nmeshlet-webhook, %d connections, %d wrk threads, %ds, %d cores, review of %d bytes\n' \
	"$conns" "$threads" "$duration" "$(nproc)" "$(wc -c <bench/data/pod-review.json)"
printf '%-36s %12s %9s %9s %7s\n' "server" "requests/s" "p50 ms" "p99 ms" "errors"
printf '%-36s %12s %9s %9s %7s\n' "nginx, fixed 2 KB answer (floor)" "$n_rate" "$n_p50" "$n_p99" "$n_err"
printf '%-36s %12s %9s %9s %7s\n' "meshlet-webhook" "$w_rate" "$w_p50" "$w_p99" "$w_err"
printf '%-36s %12s %9s %9s %7s\n' "meshlet-webhook, one client" "$l_rate" "$l_p50" "$l_p99" "$l_err"
printf '\nratio to the floor: %s%%   peak RSS %.1f MiB   audit lines written: %d\n' \
	"$(awk -v a="$w_rate" -v b="$n_rate" 'BEGIN { printf "%.0f", 100 * a / b }')" \
	"$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')" "$(wc -l <"$work/audit.log")"

if [ -n "${BENCH_OUT:-}" ]; then
	mkdir -p "$BENCH_OUT"
	{
		printf 'connections=%s\nthreads=%s\nduration=%s\ncores=%s\nreview_bytes=%s\n' \
			"$conns" "$threads" "$duration" "$(nproc)" "$(wc -c <bench/data/pod-review.json)"
		printf 'webhook_rps=%s\nwebhook_errors=%s\nwebhook_p50=%s\nwebhook_p99=%s\n' "$w_rate" "$w_err" "$w_p50" "$w_p99"
		printf 'nginx_rps=%s\nnginx_errors=%s\nnginx_p50=%s\nnginx_p99=%s\n' "$n_rate" "$n_err" "$n_p50" "$n_p99"
		printf 'one_rps=%s\none_errors=%s\none_p50=%s\none_p99=%s\n' "$l_rate" "$l_err" "$l_p50" "$l_p99"
		printf 'rss_peak_kib=%s\naudit_lines=%s\nversion=%s\n' "$rss_kib" "$(wc -l <"$work/audit.log")" \
			"$("$BUILD"/bin/meshlet-webhook --version | head -n1)"
	} >"$BENCH_OUT/webhook.env"
	{
		printf 'server\tpercentile\tms\n'
		cat "$work/latency.tsv"
	} >"$BENCH_OUT/webhook-latency.tsv"
fi
