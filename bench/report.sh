#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes docs/benchmarks.md and its charts (docs/img/bench-*.png, gnuplot) from fresh runs
# of bench/proxy.sh, bench/webhook.sh and bench/ca.sh -p with their default settings,
# each writing its figures into one results directory (BENCH_OUT). Every figure in the
# document comes from those files; the machine and the versions are read at run time.
# Optionally adds the figures of a soak run (bench/soak.sh with BENCH_OUT=DIR).
#
# Usage: bench/report.sh [-o RESULTS_DIR] [-S SOAK_DIR] [-i RESULTS_DIR]
#   -o DIR  where the runs write their figures, outputs and logs (default
#           build/bench-report; emptied first)
#   -S DIR  also report the soak whose BENCH_OUT was DIR (see bench/soak.sh)
#   -i DIR  no runs: remake the document and charts from the results already in DIR
#   Env: PROXY_ARGS, WEBHOOK_ARGS, CA_ARGS add arguments to the scripts (a smoke test, in
#   about 2.5 minutes: PROXY_ARGS="-d 2 -r 1 -b 1 -n 100" WEBHOOK_ARGS="-d 2" CA_ARGS="-d 2");
#   DOC=FILE (docs/benchmarks.md) and IMG=DIR (docs/img) move the output.
# Needs: what the three scripts need (make deps-bench) and gnuplot (gnuplot-nox). The
# full run takes about 7 minutes on 2 cores; `make bench-report [SOAK=DIR]` runs it.
set -euo pipefail
export LC_ALL=C
here=$PWD
abspath() { case $1 in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }
cd "$(dirname "$0")/.."
root=$PWD

out=build/bench-report soak='' input=''
while getopts "o:S:i:h" opt; do
	case $opt in
	o) out=$(abspath "$OPTARG") ;;
	S) soak=$(abspath "$OPTARG") ;;
	i) input=$(abspath "$OPTARG") ;;
	*) sed -n '9,18p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
(($# == 0)) || { echo "bench/report.sh: unexpected argument $1" >&2; exit 2; }
DOC=$(abspath "${DOC:-$root/docs/benchmarks.md}")
IMG=$(abspath "${IMG:-$root/docs/img}")
command -v gnuplot >/dev/null || { echo "bench/report.sh: gnuplot is missing: run make deps-bench (gnuplot-nox)" >&2; exit 1; }
if [ -n "$soak" ] && [ ! -f "$soak/soak.env" ]; then
	echo "bench/report.sh: $soak/soak.env is missing: run BENCH_OUT=$soak bench/soak.sh first" >&2
	exit 1
fi
rel() { # PATH -> relative to the repository root when inside it
	case $1 in "$root"/*) echo "${1#"$root"/}" ;; *) echo "$1" ;; esac
}
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- the runs -------------------------------------------------------------------
if [ -z "$input" ]; then
	out=$(abspath "$out")
	if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/.bench-report" ]; then
		echo "bench/report.sh: $out is not empty and not a results directory of this script" >&2
		exit 1
	fi
	rm -rf "$out"
	mkdir -p "$out"
	touch "$out/.bench-report"
	[ -x build/bin/meshlet-proxy ] || { echo "bench/report.sh: run make first" >&2; exit 1; }
	# The machine and the versions, as they are now.
	{
		printf 'date=%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
		printf 'cores=%s\n' "$(nproc)"
		printf 'cpu=%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
		printf 'kernel=%s\n' "$(uname -sr)"
		printf 'memory_kib=%s\n' "$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
		printf 'os=%s\n' "$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}") $(cat /etc/debian_version 2>/dev/null || true)"
		printf 'virtualization=%s\n' "$(systemd-detect-virt 2>/dev/null || echo unknown)"
		printf 'load_before=%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	} >"$out/machine.env"
	nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
	first() { "$@" 2>&1 | head -n1 || true; }
	{
		printf 'meshlet=%s\n' "$(cat VERSION)"
		printf 'meshlet_build=%s\n' "$(build/bin/meshlet-proxy --version | sed -n 2p)"
		printf 'openssl=%s\n' "$(openssl version)"
		printf 'nginx=%s\n' "$(first "$nginx_bin" -v | sed 's/^nginx version: //')"
		printf 'haproxy=%s\n' "$(first haproxy -v | sed 's/ - https.*//')"
		printf 'stunnel=%s\n' "$(stunnel -version 2>&1 | grep -m1 '^stunnel ' || true)"
		printf 'wrk=%s\n' "$(first wrk -v | sed 's/ Copyright.*//')"
		printf 'iperf3=%s\n' "$(first iperf3 --version)"
		printf 'gnuplot=%s\n' "$(first gnuplot --version)"
	} >"$out/versions.env"
	: >"$out/commands.txt"
	run() { # NAME SCRIPT ARGS...: stdout to NAME.txt (and the terminal), stderr to NAME.log
		local name=$1
		shift
		printf 'BENCH_OUT=%s %s\n' "$(rel "$out")" "$*" >>"$out/commands.txt"
		log "$name: BENCH_OUT=$(rel "$out") $*"
		if ! BENCH_OUT=$out "$@" 2>"$out/$name.log" | tee "$out/$name.txt"; then
			log "$name failed; the end of its log ($(rel "$out")/$name.log):"
			tail -n 20 "$out/$name.log" >&2
			exit 1
		fi
	}
	started=$(date +%s)
	# shellcheck disable=SC2086 # the *_ARGS are lists of words
	run proxy bench/proxy.sh ${PROXY_ARGS:-}
	# shellcheck disable=SC2086
	run webhook bench/webhook.sh ${WEBHOOK_ARGS:-}
	# shellcheck disable=SC2086
	run ca bench/ca.sh -p ${CA_ARGS:-}
	printf 'seconds=%s\nextra_args=%s\n' "$(($(date +%s) - started))" \
		"${PROXY_ARGS:-}${WEBHOOK_ARGS:+ $WEBHOOK_ARGS}${CA_ARGS:+ $CA_ARGS}" >>"$out/machine.env"
	input=$out
fi
for f in machine.env versions.env commands.txt proxy.env proxy.tsv proxy-latency.tsv \
	proxy-targets.tsv webhook.env webhook-latency.tsv ca.env; do
	[ -f "$input/$f" ] || { echo "bench/report.sh: $input/$f is missing" >&2; exit 1; }
done

# ---- reading the figures ----------------------------------------------------------
get() { # FILE KEY -> the value of KEY=value in FILE, empty when absent
	awk -v k="$2" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }' "$1"
}
M() { get "$input/machine.env" "$1"; }
V() { get "$input/versions.env" "$1"; }
P() { get "$input/proxy.env" "$1"; }
W() { get "$input/webhook.env" "$1"; }
C() { get "$input/ca.env" "$1"; }
S() { get "$soak/soak.env" "$1"; }
declare -A PX # PX[candidate,key]: the medians of bench/proxy.sh
while IFS=$'\t' read -r c k v; do PX[$c,$k]=$v; done < <(tail -n +2 "$input/proxy.tsv")
declare -A TG VD # the target and meshlet's verdict, per row of bench/proxy.sh's table
while IFS=$'\t' read -r r t v; do TG[$r]=$t VD[$r]=$v; done < <(tail -n +2 "$input/proxy-targets.tsv")
cands=$(P candidates)
peers=() # the candidates with a pair of proxies (all but direct)
for c in $cands; do [ "$c" = direct ] || peers+=("$c"); done

# f DECIMALS VALUE...: numbers for the document, thousands grouped; "–" when missing.
f() {
	awk -v d="$1" 'function group(s,   i, r, n, neg) {
			neg = s ~ /^-/; if (neg) s = substr(s, 2)
			i = index(s, "."); r = i ? substr(s, i) : ""; n = i ? substr(s, 1, i - 1) : s
			while (length(n) > 3) { r = "," substr(n, length(n) - 2) r; n = substr(n, 1, length(n) - 3) }
			return (neg ? "-" : "") n r }
		BEGIN { for (i = 2; i < ARGC; i++) { v = ARGV[i]
			if (v == "" || v == "-" || v !~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/) { printf "%s", (i > 2 ? " / " : "") "–"; continue }
			printf "%s%s", (i > 2 ? " / " : ""), group(sprintf("%." d "f", v)) } }' "$@"
}
calc() { awk "BEGIN { $1 }" </dev/null; } # calc 'printf ...': arithmetic on figures
kib2mib() { [ -n "$1" ] && calc "printf \"%.1f\", $1 / 1024" || true; }
both() { # VALUE_C VALUE_S -> their sum, empty unless both are set
	[ -n "$1" ] && [ -n "$2" ] && calc "printf \"%.6g\", $1 + $2" || true
}
px() { echo "${PX[$1,$2]:-}"; }
pct() { case $1 in [-+0-9]*) echo "$1%" ;; *) echo "${1:-–}" ;; esac; }
dashes() { awk -F'\t' -v OFS='\t' '{ for (i = 1; i <= NF; i++) if ($i == "") $i = "-"; print }'; }

# ---- the charts ----------------------------------------------------------------------
mkdir -p "$IMG" "$input/plot"
rm -f "$IMG"/bench-*.png
imgrel=$(realpath -m --relative-to="$(dirname "$DOC")" "$IMG")
plot() { # SCRIPT OUT ARGS...
	local script=$1 png=$2
	shift 2
	gnuplot -c "bench/plot/$script" "$@" 2>"$input/plot/${png%.png}.log" ||
		{ cat "$input/plot/${png%.png}.log" >&2; echo "bench/report.sh: gnuplot failed for $png" >&2; exit 1; }
}
# Latency percentiles of bench/proxy.sh: the median over the runs, per candidate and load.
latency_table() { # LOAD -> tab-separated: percentile, then one column per candidate
	awk -F'\t' -v load="$1" -v cands="$cands" '
		NR > 1 && $3 == load { k = $2 SUBSEP $4; n[k]++; v[k, n[k]] = $5; seen[$4] = 1 }
		function median(k,   i, j, t, m) {
			m = n[k]; if (!m) return "-"
			for (i = 1; i <= m; i++) a[i] = v[k, i] + 0
			for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
			return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
		END {
			nc = split(cands, c, " ")
			printf "percentile"; for (i = 1; i <= nc; i++) printf "\t%s", c[i]; printf "\n"
			np = split("10 25 50 75 90 95 97.5 99 99.5 99.9 99.95 99.99", p, " ")
			for (j = 1; j <= np; j++) {
				if (!(p[j] in seen)) continue
				printf "%s", p[j]
				for (i = 1; i <= nc; i++) printf "\t%s", median(c[i] SUBSEP p[j])
				printf "\n"
			}
		}' "$input/proxy-latency.tsv"
}
ncand=$(wc -w <<<"$cands")
for load in ka nc; do
	latency_table "$load" >"$input/plot/latency-$load.tsv"
done
plot latency.gp bench-proxy-latency-ka.png "$input/plot/latency-ka.tsv" "$IMG/bench-proxy-latency-ka.png" \
	"One mTLS hop, keep-alive: latency by percentile (wrk -c $(P connections), median of $(P runs) run(s))" $((ncand + 1))
plot latency.gp bench-proxy-latency-nc.png "$input/plot/latency-nc.tsv" "$IMG/bench-proxy-latency-nc.png" \
	"One mTLS hop, a new connection per request: latency by percentile (wrk -c $(P connections), median of $(P runs) run(s))" $((ncand + 1))
{
	printf 'candidate\tidle\tpeak under keep-alive load\tgrowth per 1,000 idle connections\n'
	for c in "${peers[@]}"; do
		printf '%s\t%s\t%s\t%s\n' "$c" \
			"$(kib2mib "$(both "$(px "$c" rss_idle_c)" "$(px "$c" rss_idle_s)")")" \
			"$(kib2mib "$(both "$(px "$c" rss_load_c)" "$(px "$c" rss_load_s)")")" \
			"$(kib2mib "$(calc "v = \"$(both "$(px "$c" conn_c)" "$(px "$c" conn_s)")\"; if (v != \"\") print v * 1000")")"
	done
} | dashes >"$input/plot/memory.tsv"
plot memory.gp bench-proxy-memory.png "$input/plot/memory.tsv" "$IMG/bench-proxy-memory.png" \
	"RSS of each pair (client + server proxy), MiB"
{
	printf 'candidate\tkeep-alive requests/s\tnew connection per request, requests/s\tbulk (iperf3), Gbit/s\n'
	for c in $cands; do
		printf '%s\t%s\t%s\t%s\n' "$c" "$(px "$c" ka_rps)" "$(px "$c" nc_rps)" "$(px "$c" bulk)"
	done
} | dashes >"$input/plot/throughput.tsv"
plot throughput.gp bench-proxy-throughput.png "$input/plot/throughput.tsv" "$IMG/bench-proxy-throughput.png" \
	"One mTLS hop on loopback: throughput (direct: no proxy)" "keep-alive, requests/s" \
	"a new connection per request, requests/s" "bulk (iperf3), Gbit/s"
{
	printf 'server\tpercentile\tms\n'
	tail -n +2 "$input/webhook-latency.tsv"
} | awk -F'\t' -v conns="$(W connections)" 'NR > 1 { v[$2, $1] = $3; if (!($2 in s)) { s[$2] = 1; p[++np] = $2 } }
	END { printf "percentile\tmeshlet-webhook, %s connections\tnginx, fixed answer (floor), %s connections\tmeshlet-webhook, one client\n", conns, conns
		for (i = 1; i <= np; i++) {
			printf "%s", p[i]
			n = split("webhook nginx webhook-one", w, " ")
			for (j = 1; j <= n; j++) printf "\t%s", ((p[i], w[j]) in v) ? v[p[i], w[j]] : "-"
			printf "\n" } }' >"$input/plot/webhook-latency.tsv"
plot latency.gp bench-webhook-latency.png "$input/plot/webhook-latency.tsv" "$IMG/bench-webhook-latency.png" \
	"AdmissionReviews over HTTPS: latency by percentile" 4
{
	printf 'what\tper second\tcolour\n'
	printf 'floor, %s CA core(s)\t%s\t1\n' "$(C ca_cores)" "$(C floor)"
	printf 'meshlet-ca\t%s\t2\n' "$(C issuances)"
	printf 'floor, one core\t%s\t1\n' "$(C floor_one_core)"
	printf 'meshlet-ca per CPU-second\t%s\t2\n' "$(C issuances_per_cpu_second)"
} >"$input/plot/ca.tsv"
plot bars.gp bench-ca.png "$input/plot/ca.tsv" "$IMG/bench-ca.png" \
	"meshlet-ca: certificates issued per second against the cryptographic floor" "issuances per second"
if [ -n "$soak" ]; then
	plot soak.gp bench-soak.png "$soak/soak-rss.tsv" "$IMG/bench-soak.png" \
		"Soak: $(S duration) s of load through a meshlet-proxy pair with $(S cert_ttl) s certificates"
fi

# ---- the document ----------------------------------------------------------------------
cell() { # CAND ROW -> one cell of the proxy table
	local c=$1
	case $2 in
	ka) f 0 "$(px "$c" ka_rps)" ;;
	kalat) f 2 "$(px "$c" ka_p50)" "$(px "$c" ka_p99)" ;;
	nc) f 0 "$(px "$c" nc_rps)" ;;
	nclat) f 2 "$(px "$c" nc_p50)" "$(px "$c" nc_p99)" ;;
	bulk) f 2 "$(px "$c" bulk)" ;;
	idle) f 1 "$(kib2mib "$(px "$c" rss_idle_c)")" "$(kib2mib "$(px "$c" rss_idle_s)")" ;;
	pss) f 1 "$(kib2mib "$(px "$c" pss_idle_c)")" "$(kib2mib "$(px "$c" pss_idle_s)")" ;;
	load) f 1 "$(kib2mib "$(px "$c" rss_load_c)")" "$(kib2mib "$(px "$c" rss_load_s)")" ;;
	held) f 1 "$(kib2mib "$(px "$c" rss_held_c)")" "$(kib2mib "$(px "$c" rss_held_s)")" ;;
	conn) f 1 "$(px "$c" conn_c)" "$(px "$c" conn_s)" ;;
	conn1k) f 1 "$(kib2mib "$(calc "v = \"$(px "$c" conn_c)\"; if (v != \"\") print v * 1000")")" \
		"$(kib2mib "$(calc "v = \"$(px "$c" conn_s)\"; if (v != \"\") print v * 1000")")" ;;
	cpuka) f 1 "$(both "$(px "$c" cpu_ka_c)" "$(px "$c" cpu_ka_s)")" ;;
	cpukas) f 1 "$(px "$c" cpu_ka_c)" "$(px "$c" cpu_ka_s)" ;;
	cpunc) f 0 "$(both "$(px "$c" cpu_nc_c)" "$(px "$c" cpu_nc_s)")" ;;
	err) printf '%s / %s' "$(f 0 "$(px "$c" ka_err)")" "$(f 0 "$(px "$c" nc_err)")" ;;
	held_n) f 0 "$(px "$c" held)" ;;
	noise) f 0 "$(px "$c" noise)" ;;
	esac
}
proxy_rows=(ka kalat nc nclat bulk cpuka cpukas cpunc idle pss load held conn conn1k err held_n noise)
declare -A proxy_label=(
	[ka]="keep-alive, requests/s"
	[kalat]="  p50 / p99, ms"
	[nc]="new connection per request, requests/s"
	[nclat]="  p50 / p99, ms"
	[bulk]="bulk (iperf3), Gbit/s"
	[cpuka]="proxy CPU per keep-alive request, µs (client + server)"
	[cpukas]="  client / server"
	[cpunc]="proxy CPU per new-connection request, µs (client + server)"
	[idle]="RSS idle, MiB, client / server"
	[pss]="PSS idle (shared pages split among their users), MiB, client / server"
	[load]="RSS peak under keep-alive load, MiB, client / server"
	[held]="RSS with $(f 0 "$(P idle_connections)") idle connections, MiB, client / server"
	[conn]="KiB per idle connection, client / server"
	[conn1k]="MiB per 1,000 idle connections, client / server"
	[err]="wrk errors, keep-alive / new connection"
	[held_n]="idle connections held (of $(f 0 "$(P idle_connections)"))"
	[noise]="CPU % busy in the second before (not the benchmark)"
)
# Rows that a direct connection (no proxy) has no figure for.
proxy_only=" cpuka cpukas cpunc idle pss load held conn conn1k held_n "
mdtable_proxy() {
	local row c has_target=0
	[[ " $cands " == *" meshlet "* ]] && ((${#TG[@]})) && has_target=1
	printf '| |'
	for c in $cands; do printf ' %s |' "$c"; done
	((has_target)) && printf ' target (issue 5) | meshlet |'
	printf '\n|---|'
	for c in $cands; do printf -- '---:|'; done
	((has_target)) && printf -- '---|---|'
	printf '\n'
	for row in "${proxy_rows[@]}"; do
		printf '| %s |' "$(sed 's/^  /↳ /' <<<"${proxy_label[$row]}")"
		for c in $cands; do
			if [ "$c" = direct ] && [[ $proxy_only == *" $row "* ]]; then printf ' |'; else printf ' %s |' "$(cell "$c" "$row")"; fi
		done
		((has_target)) && printf ' %s | %s |' "${TG[$row]:-}" "${VD[$row]:-}"
		printf '\n'
	done
}
latency_md() { # LOAD -> a table of a few percentiles per candidate
	local file=$input/plot/latency-$1.tsv
	awk -F'\t' 'NR == 1 { printf "| percentile |"; for (i = 2; i <= NF; i++) printf " %s |", $i
			printf "\n|---|"; for (i = 2; i <= NF; i++) printf "---:|"; printf "\n"; next }
		$1 == 50 || $1 == 90 || $1 == 99 || $1 == 99.9 || $1 == 99.99 {
			printf "| p%s |", $1; for (i = 2; i <= NF; i++) printf " %s |", ($i == "-" ? "–" : sprintf("%.2f", $i)); printf "\n" }' "$file"
}
verbatim() { # FILE TITLE: a script's printed table, in a collapsed block (bench/proxy.sh's
	# closing notes, with issue 5's figures from another machine, are left out)
	printf '<details><summary>%s</summary>\n\n```\n' "$2"
	sed '/^RSS is VmRSS summed/,$d' "$1" | awk 'NF { started = 1 } started' | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
	printf '```\n\n</details>\n\n'
}
mem_gib=$(calc "printf \"%.1f\", $(M memory_kib) / 1048576")
img() { printf '![%s](%s/%s)' "$1" "$imgrel" "$2"; }

tmp=$(mktemp "$DOC.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
	cat <<EOF
# Benchmarks

<!-- Generated by bench/report.sh (make bench-report) from one run's outputs: do not edit
     by hand; change bench/report.sh or rerun it. -->

Made by \`make bench-report\` on $(M date): one fresh run of [bench/proxy.sh](../bench/proxy.sh),
[bench/webhook.sh](../bench/webhook.sh) and [bench/ca.sh](../bench/ca.sh) $( [ -n "$(M seconds)" ] && echo "($(f 0 "$(M seconds)") s in all)")$( [ -n "$soak" ] && echo ", and the soak of [bench/soak.sh](../bench/soak.sh) started $(S started)").
$( [ -n "$(M extra_args)" ] && printf '\n%s\n\n' "**Not the scripts' default settings** (PROXY_ARGS, WEBHOOK_ARGS or CA_ARGS were set: see the commands), so not the figures to quote." )

Every figure below is read from the files those scripts wrote (\`BENCH_OUT\`); the
scripts' own printed tables are at the end. Everything runs on one machine, on loopback:
load generator, proxies and backends share its cores, so the figures compare the
candidates with each other on this machine rather than promise absolute rates.

- [The machine and versions](#the-machine-and-versions)
- [meshlet-proxy against stunnel, HAProxy and nginx](#meshlet-proxy-against-stunnel-haproxy-and-nginx)
- [meshlet-webhook](#meshlet-webhook)
- [meshlet-ca](#meshlet-ca)
- [Soak](#soak)
- [The scripts' output](#the-scripts-output)

## The machine and versions

| | |
|---|---|
| CPU | $(M cpu), $(M cores) cores as \`nproc\` counts them |
| memory | $mem_gib GiB |
| kernel | $(M kernel) |
| system | $(M os) |
| virtualization | $(M virtualization) |
| load average before the runs | $(M load_before) |

| software | version |
|---|---|
| meshlet | $(V meshlet) ($(V meshlet_build)) |
| OpenSSL | $(V openssl) |
| nginx | $(V nginx) |
| HAProxy | $(V haproxy) |
| stunnel | $(V stunnel) |
| wrk | $(V wrk) |
| iperf3 | $(V iperf3) |
| gnuplot (charts) | $(V gnuplot) |

The commands, from the repository root (\`make bench-report\` runs \`bench/report.sh\`, which runs these):

\`\`\`sh
$(cat "$input/commands.txt")
$( [ -n "$soak" ] && echo "BENCH_OUT=$(rel "$soak") $(S command)")
\`\`\`

## meshlet-proxy against stunnel, HAProxy and nginx

One mutual-TLS sidecar hop on loopback, the way a mesh adds it between two pods: wrk or
iperf3 → client-side proxy (plain in, TLS 1.3 with a client certificate out) →
server-side proxy (TLS 1.3 in, client certificate required, plain out) → nginx answering
$(P body_bytes) bytes (or iperf3 -s). Each proxy runs one worker. meshlet-proxy uses static listeners
and checks the server's SPIFFE ID; the peers check the chain both ways and the server's
name. \`direct\` is wrk straight to the backend. wrk: $(P threads) threads, $(P connections) connections, $(P duration) s per
measure; iperf3: $(P bulk_seconds) s; $(f 0 "$(P idle_connections)") idle connections held through each pair. Figures are
medians of $(P runs) run(s), the candidate order rotated from run to run.

$(mdtable_proxy)

RSS is VmRSS summed over each proxy's processes (nginx: master and worker), without
kernel socket buffers; the per-connection figure is the growth while the idle
connections, each used for one request, are held open through the pair. CPU is user +
system time of both proxies over the wrk run, divided by its requests. Targets are
issue 5's, relative ones taken against this run's best peer.

$(img "throughput" bench-proxy-throughput.png)

Latency by percentile, keep-alive (ms, median over the runs):

$(latency_md ka)

$(img "keep-alive latency by percentile" bench-proxy-latency-ka.png)

Latency by percentile, a new connection per request (a TLS handshake between the proxies
for each, except for meshlet's, which keep their TLS connections: docs/proxy.md) (ms,
median over the runs):

$(latency_md nc)

$(img "new-connection latency by percentile" bench-proxy-latency-nc.png)

$(img "memory of each pair" bench-proxy-memory.png)

## meshlet-webhook

wrk posts a typical pod AdmissionReview ($(f 0 "$(W review_bytes)") bytes, bench/data/pod-review.json) over
HTTPS with keep-alive: $(W threads) threads, $(W connections) connections, $(W duration) s; the floor is nginx answering the same
POST with a fixed 2 KB body over TLS with the same certificate, in the same run. A lone
client shows the time per review without queueing.

| server | requests/s | p50 ms | p99 ms | errors |
|---|---:|---:|---:|---:|
| nginx, fixed 2 KB answer (floor) | $(f 0 "$(W nginx_rps)") | $(f 2 "$(W nginx_p50)") | $(f 2 "$(W nginx_p99)") | $(f 0 "$(W nginx_errors)") |
| meshlet-webhook | $(f 0 "$(W webhook_rps)") | $(f 2 "$(W webhook_p50)") | $(f 2 "$(W webhook_p99)") | $(f 0 "$(W webhook_errors)") |
| meshlet-webhook, one client | $(f 0 "$(W one_rps)") | $(f 2 "$(W one_p50)") | $(f 2 "$(W one_p99)") | $(f 0 "$(W one_errors)") |

meshlet-webhook answered $(calc "printf \"%.0f\", 100 * $(W webhook_rps) / $(W nginx_rps)")% of the floor's rate, each answer a JSON Patch and an audit
record ($(f 0 "$(W audit_lines)") written); its peak RSS was $(f 1 "$(kib2mib "$(W rss_peak_kib)")") MiB.

$(img "webhook latency by percentile" bench-webhook-latency.png)

## meshlet-ca

wrk posts what a workload sends (an RS256 service-account token and an EC P-256 CSR) to
\`/v1/certify\` over HTTPS: $(C threads) threads, $(C connections) connections, $(C duration) s, $( [ "$(C pinned)" = 1 ] &&
	echo "the CA pinned to $(C ca_cores) core(s) and wrk to another (\`-p\`)" || echo "nothing pinned"). The floor is what the three
public-key operations of an issuance (verify the CSR, verify the token, sign the
certificate) allow on the CA's cores, from \`openssl speed\` in the same run.

| what | per second |
|---|---:|
| openssl speed: ECDSA P-256 sign, one core | $(f 0 "$(C ecdsa_p256_sign)") |
| openssl speed: ECDSA P-256 verify, one core | $(f 0 "$(C ecdsa_p256_verify)") |
| openssl speed: RSA-2048 verify, one core | $(f 0 "$(C rsa2048_verify)") |
| floor: sign + 2 verifies, $(C ca_cores) core(s) of the CA | $(f 0 "$(C floor)") |
| **meshlet-ca issuances** | **$(f 0 "$(C issuances)")** |
| floor: sign + 2 verifies, one core | $(f 0 "$(C floor_one_core)") |
| meshlet-ca issuances per CPU-second it used | $(f 0 "$(C issuances_per_cpu_second)") |

meshlet-ca reached $(C ratio_pct)% of the floor ($(C ratio_cpu_pct)% per CPU-second it used), with p50 $(f 2 "$(C p50)") ms,
p99 $(f 2 "$(C p99)") ms, $(f 0 "$(C errors)") errors and a peak RSS of $(f 1 "$(kib2mib "$(C rss_peak_kib)")") MiB; it kept $(C busy_cores) core(s) busy.

$(img "issuances against the floor" bench-ca.png)

## Soak

EOF
	if [ -n "$soak" ]; then
		cat <<EOF
[bench/soak.sh](../bench/soak.sh) ran load through a meshlet-proxy pair for $(f 0 "$(S duration)") s, started
$(S started): wrk with $(S ka_connections) keep-alive connections and a second wrk with $(S nc_connections) connections sending
\`Connection: close\` (a new connection per request, carried on kept TLS connections), while the
proxies' certificates, from a real meshlet-ca, lasted $(S cert_ttl) s. A request failed on a socket
error, a timeout or any answer but a 2xx with the expected body. RSS was sampled every
$(S interval) s; the criterion is RSS at the end within +$(S max_growth_pct)% of RSS at $(S base_t) s.
$( { [ "$(S duration)" != 600 ] || [ "$(S cert_ttl)" != 30 ]; } &&
	printf '\n%s\n' "**Not the default soak** (600 s with 30 s certificates): a shorter or different run, not the figures to quote.")

| | keep-alive | new connection |
|---|---:|---:|
| requests | $(f 0 "$(S ka_requests)") | $(f 0 "$(S nc_requests)") |
| requests/s | $(f 0 "$(S ka_rps)") | $(f 0 "$(S nc_rps)") |
| failed: connect / read / write errors | $(f 0 "$(S ka_connect_errors)" "$(S ka_read_errors)" "$(S ka_write_errors)") | $(f 0 "$(S nc_connect_errors)" "$(S nc_read_errors)" "$(S nc_write_errors)") |
| failed: timeouts | $(f 0 "$(S ka_timeouts)") | $(f 0 "$(S nc_timeouts)") |
| failed: wrong answers | $(f 0 "$(S ka_bad_answers)") | $(f 0 "$(S nc_bad_answers)") |

| | client proxy | server proxy |
|---|---:|---:|
| certificate rotations | $(f 0 "$(S rotations_client)") | $(f 0 "$(S rotations_server)") |
| RSS idle before the load, MiB | $(f 1 "$(kib2mib "$(S rss_idle_client_kib)")") | $(f 1 "$(kib2mib "$(S rss_idle_server_kib)")") |
| RSS at $(S base_t) s, MiB | $(f 1 "$(kib2mib "$(S rss_base_client_kib)")") | $(f 1 "$(kib2mib "$(S rss_base_server_kib)")") |
| RSS at the end ($(S end_t) s), MiB | $(f 1 "$(kib2mib "$(S rss_end_client_kib)")") | $(f 1 "$(kib2mib "$(S rss_end_server_kib)")") |
| RSS change | $(pct "$(S rss_growth_client_pct)") | $(pct "$(S rss_growth_server_pct)") |
| CPU per request, µs | $(f 1 "$(S cpu_us_per_request_client)") | $(f 1 "$(S cpu_us_per_request_server)") |

**$(S verdict)**: $(f 0 "$(S requests)") requests, $(f 0 "$(S failures)") failed; $(f 0 "$(S svids_issued)") certificates issued in all.

$(img "soak: RSS and rotations over time" bench-soak.png)

EOF
	else
		cat <<EOF
Not part of this run. \`BENCH_OUT=DIR bench/soak.sh\` runs it (10 minutes), and
\`make bench-report SOAK=DIR\` (or \`bench/report.sh -S DIR\`) adds its figures here.

EOF
	fi
	printf "## The scripts' output\n\n"
	verbatim "$input/proxy.txt" "bench/proxy.sh"
	verbatim "$input/webhook.txt" "bench/webhook.sh"
	verbatim "$input/ca.txt" "bench/ca.sh -p"
	[ -z "$soak" ] || [ ! -f "$soak/soak.txt" ] || verbatim "$soak/soak.txt" "bench/soak.sh"
} >"$tmp"
# No blank line twice in a row, none at the end.
awk 'NF || prev_nf { print } { prev_nf = NF }' "$tmp" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$DOC"
rm -f "$tmp"
log "wrote $(rel "$DOC") and $(ls "$IMG"/bench-*.png | wc -l) charts in $(rel "$IMG") from $(rel "$input")"
