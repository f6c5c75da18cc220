#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: the whole mesh on this machine, narrated, with the evidence.
#
# As root: meshlet-ca with a fresh root and a local token issuer; meshlet-webhook with a
# serving certificate from meshlet-ca, asked about a sample Deployment's pod over TLS;
# then three "pods" (network namespaces on a bridge, with `meshlet-proxy init` rules, a
# meshlet-proxy that gets its identity from meshlet-ca with its own token, and a small
# HTTP app that knows nothing of the mesh) and one plain client without a sidecar. Pod A
# calls pod B, by IP and through a Service; a capture shows the wire is TLS; a DENY policy refuses pod C; STRICT
# refuses the plain client; certificates rotate while traffic flows.
# Without root: the CA, the webhook and a proxy pair with explicit ports on loopback.
#
# Everything it makes (namespaces, veths, bridge, processes, iptables rules inside the
# namespaces, its temporary directory) is removed at the end and on Ctrl-C. Exit status 0
# when every step did what it said.
#
# Usage: demo/demo.sh [BUILD_DIR]   (default build; make demo builds it first)
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

BUILD=${1:-build}
BIN=$BUILD/bin
TD=demo.local
NS=demo
CA_NAME=meshlet-ca.meshlet-system.svc
WEBHOOK_NAME=meshlet-webhook.meshlet-system.svc
ISSUER=https://kubernetes.default.svc.cluster.local
PROXY_UID=1337
SERVICE_RANGE=10.96.0.0/12 # the Services' ClusterIPs (kube-apiserver --service-cluster-ip-range)
SVC_B=10.96.0.20           # Service b: port 80 -> pod B's 8080
APP_UID=1000
TAG=mldemo$$
SUBNET=10.253.$(($$ % 200 + 20))
declare -A IP=([ca]=$SUBNET.10 [a]=$SUBNET.11 [b]=$SUBNET.12 [c]=$SUBNET.13 [x]=$SUBNET.14)
declare -A SA=([a]=frontend [b]=backend [c]=batch)

bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' off=$'\e[0m'
[ -t 1 ] || bold='' dim='' red='' green='' off=''

step=0
say() { step=$((step + 1)); printf '\n%s%d. %s%s\n' "$bold" "$step" "$*" "$off"; }
tell() { printf '   %s\n' "$*"; }
show() { printf '%s' "$dim"; sed 's/^/     | /'; printf '%s' "$off"; }
ok() { printf '   %s✓ %s%s\n' "$green" "$*" "$off"; }
die() {
	printf '\n   %s✗ %s%s\n' "$red" "$*" "$off" >&2
	exit 1
}

for b in meshlet-ca meshlet-webhook meshlet-proxy; do
	[ -x "$BIN/$b" ] || die "$BIN/$b is missing: run make (or make demo)"
done
for t in curl openssl; do
	command -v "$t" >/dev/null || die "$t is missing: run make deps"
done
# Debian's python3 (the apps run as another user, who may not reach a personal one).
PY=/usr/bin/python3
[ -x $PY ] || PY=$(command -v python3) || die "python3 is missing: run make deps"

W=$(mktemp -d /tmp/meshlet-demo.XXXXXX)
chmod 755 "$W"
pids=()
made_ns=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for ns in "${made_ns[@]+"${made_ns[@]}"}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
	done
	for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.3
	for ns in "${made_ns[@]+"${made_ns[@]}"}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	done
	for p in "${pids[@]+"${pids[@]}"}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for ns in "${made_ns[@]+"${made_ns[@]}"}"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$W"
	if [ "$rc" = 0 ]; then
		printf '\n%sCleaned up: no namespace, veth, bridge, process or file of the demo is left.%s\n' "$bold" "$off"
	else
		printf '\nCleaned up after a failure (exit %d).\n' "$rc" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # SECONDS COMMAND...: until the command succeeds
	local until=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < until)) || return 1
		sleep 0.1
	done
}
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
more_than() { # N FILE PATTERN: the file has more than N lines with the pattern
	local n
	n=$(grep -c -- "$3" "$2" 2>/dev/null || true)
	((${n:-0} > $1))
}
json_field() { # FIELD: from a JSON line on stdin
	$PY -c 'import json,sys; print(json.loads(sys.stdin.readline()).get(sys.argv[1], ""))' "$1"
}

# ---------------------------------------------------------------------------- the CA

start_ca() { # LISTEN [netns]
	local listen=$1 ns=${2:-}
	local cmd=("$BIN/meshlet-ca" serve --listen "$listen" --ca-dir "$W/ca"
		--tls-cert "$W/ca-serving.crt" --tls-key "$W/ca-serving.key"
		--jwks-file "$W/issuer.jwks" --issuer "$ISSUER" --audit-file "$W/ca-audit.log")
	if [ -n "$ns" ]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
	"${cmd[@]}" >/dev/null 2>"$W/ca.log" &
	pids+=($!)
	wait_for 10 grep -q '"msg":"serving"' "$W/ca.log" || { cat "$W/ca.log" >&2; die "meshlet-ca did not start"; }
}

make_ca() {
	say "meshlet-ca: a fresh root CA and a local token issuer"
	"$BIN/meshlet-ca" init --dir "$W/ca" --trust-domain "$TD" >/dev/null
	openssl ecparam -name prime256v1 -genkey -noout -out "$W/issuer.key" 2>/dev/null
	chmod 600 "$W/issuer.key"
	"$BIN/meshlet-ca" jwks --key "$W/issuer.key" >"$W/issuer.jwks"
	"$BIN/meshlet-ca" issue --dir "$W/ca" --dns "$CA_NAME" --out "$W/ca-serving" >/dev/null
	tell "root: $(openssl x509 -in "$W/ca/root-cert.pem" -noout -subject | sed 's/^subject=//')"
	tell "tokens: signed by a local issuer key, as a cluster's API server would sign"
	tell "projected service-account tokens (meshlet-ca token; for development only)"
	ok "CA ready in $W/ca (key mode $(stat -c %a "$W/ca/root-key.pem"))"
}

token() { # SA -> a projected-token look-alike for $NS/SA
	"$BIN/meshlet-ca" token --key "$W/issuer.key" --issuer "$ISSUER" --audience meshlet-ca \
		--namespace "$NS" --service-account "$1" --pod "$1-7d9c5b8f4-x2k9q" \
		--pod-uid "$(cat /proc/sys/kernel/random/uuid)" --ttl 1h
}

# ---------------------------------------------------------------------- the webhook

webhook() {
	say "meshlet-webhook: the sidecar injector, asked about a Deployment's pod over TLS"
	local port
	port=$(free_port)
	"$BIN/meshlet-ca" issue --dir "$W/ca" --dns "$WEBHOOK_NAME" --out "$W/webhook" >/dev/null
	cat >"$W/webhook.yaml" <<EOF
listen: "127.0.0.1:$port"
tls:
  cert_file: "$W/webhook.crt"
  key_file: "$W/webhook.key"
audit_file: "$W/webhook-audit.log"
mesh:
  trust_domain: $TD
  trust_bundle_file: "$W/ca/root-cert.pem"
EOF
	"$BIN/meshlet-webhook" serve --config "$W/webhook.yaml" >/dev/null 2>"$W/webhook.log" &
	pids+=($!)
	wait_for 10 grep -q '"msg":"serving"' "$W/webhook.log" || { cat "$W/webhook.log" >&2; die "meshlet-webhook did not start"; }
	tell "demo/deployment.yaml's pod, as the API server sends it (demo/admission-review.json):"
	tell "curl --cacert root-cert.pem https://$WEBHOOK_NAME:$port/inject?timeout=10s"
	curl -sS --fail --cacert "$W/ca/root-cert.pem" --resolve "$WEBHOOK_NAME:$port:127.0.0.1" \
		-H 'Content-Type: application/json' --data-binary @demo/admission-review.json \
		"https://$WEBHOOK_NAME:$port/inject?timeout=10s" >"$W/review-answer.json" ||
		die "the webhook did not answer"
	$PY - "$W/review-answer.json" <<'EOF' | show || die "the answer is not what the API server expects"
import base64, json, sys
doc = json.load(open(sys.argv[1]))
r = doc["response"]
assert doc["kind"] == "AdmissionReview" and r["allowed"] is True and r["patchType"] == "JSONPatch"
ops = json.loads(base64.b64decode(r["patch"]))
print(f"allowed, with a JSON Patch of {len(ops)} operations:")
for op in ops:
    v = op.get("value")
    what = ""
    if isinstance(v, dict) and "name" in v:
        what = f"  ({v['name']}" + (f", image {v['image']}" if "image" in v else "") + ")"
    elif isinstance(v, list) and v and isinstance(v[0], dict) and "name" in v[0]:
        what = "  (" + ", ".join(x["name"] for x in v) + ")"
    print(f"  {op['op']:8} {op['path']}{what}")
print("auditAnnotations:", json.dumps(r.get("auditAnnotations", {}), sort_keys=True))
names = json.dumps(ops)
assert "meshlet-init" in names and "meshlet-proxy" in names
EOF
	wait_for 5 test -s "$W/webhook-audit.log" || die "no audit record"
	tell "its audit record:"
	tail -n 1 "$W/webhook-audit.log" | show
	ok "the pod gets meshlet-init and meshlet-proxy; the decision is audited"
}

# ------------------------------------------------------------------------- the pods

ns_of() { echo "$TAG-$1"; }
in_pod() { # POD USER COMMAND...
	local pod=$1 user=$2
	shift 2
	ip netns exec "$(ns_of "$pod")" setpriv --reuid "$user" --regid "$user" --clear-groups "$@"
}
call() { # FROM TO PATH [DATA] -> "HTTP-STATUS BODY" (status 000: no answer)
	call_url "$1" "http://${IP[$2]}:8080$3" "${4:-}"
}
call_url() { # FROM URL [DATA]
	local args=(-sS --noproxy '*' --max-time 5 -o - -w '\n%{http_code}')
	[ -n "${3:-}" ] && args+=(--data-binary "$3")
	in_pod "$1" "$APP_UID" curl "${args[@]}" "$2" 2>/dev/null || true
}
status_of() { tail -n 1 <<<"$1"; }

make_pods() {
	say "three pods (network namespaces on a bridge) and a plain client without a sidecar"
	local sw
	sw=$(ns_of sw)
	ip netns add "$sw"
	made_ns+=("$sw")
	ip -n "$sw" link set lo up
	ip -n "$sw" link add br0 type bridge forward_delay 0
	ip -n "$sw" link set br0 up
	for pod in ca a b c x; do
		local ns
		ns=$(ns_of "$pod")
		ip netns add "$ns"
		made_ns+=("$ns")
		ip -n "$ns" link set lo up
		ip -n "$ns" link add eth0 type veth peer name "v$pod" netns "$sw"
		ip -n "$ns" addr add "${IP[$pod]}/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$sw" link set "v$pod" master br0
		ip -n "$sw" link set "v$pod" up
	done
	tell "bridge $SUBNET.0/24: meshlet-ca ${IP[ca]}, pod A ${IP[a]} (sa ${SA[a]}), pod B ${IP[b]} (sa ${SA[b]}),"
	tell "pod C ${IP[c]} (sa ${SA[c]}), plain client X ${IP[x]} (no sidecar)"
	start_ca "${IP[ca]}:8443" "$(ns_of ca)"
	tell "meshlet-ca serves at ${IP[ca]}:8443 as $CA_NAME"

	for pod in a b c; do
		local d=$W/pods/$pod
		mkdir -p "$d/policy"
		chmod 755 "$W/pods" "$d" "$d/policy"
		in_pod "$pod" "$APP_UID" $PY demo/app.py "$pod" 8080 >"$d/app.out" 2>&1 &
		pids+=($!)
		ip netns exec "$(ns_of "$pod")" "$BIN/meshlet-proxy" init --proxy-uid $PROXY_UID \
			--proxy-gid $PROXY_UID --inbound-port 15006 --outbound-port 15001 \
			--include-inbound-ports '*' --exclude-inbound-ports 15008,15021 \
			--include-outbound-cidrs '*' >"$d/init.out" ||
			die "meshlet-proxy init failed in pod $pod: $(cat "$d/init.out")"
		# Service b, as kube-proxy translates it (on the node; here in the pod, after
		# the capture rules, so that it applies to what leaves the pod).
		ip -n "$(ns_of "$pod")" route add $SERVICE_RANGE dev eth0
		ip netns exec "$(ns_of "$pod")" iptables -t nat -A OUTPUT -p tcp -d $SVC_B --dport 80 \
			-j DNAT --to-destination "${IP[b]}:8080"
		token "${SA[$pod]}" >"$d/token"
		printf 'app="%s"\n' "$pod" >"$d/labels"
		chmod 600 "$d/token"
		chmod 644 "$d/labels"
		chown $PROXY_UID:$PROXY_UID "$d/token"
		cat >"$d/proxy.yaml" <<EOF
access_log: true
log:
  format: json
identity:
  ca_server_name: $CA_NAME
  ttl: 20s
policy:
  paths: ["$d/policy"]
  labels_file: "$d/labels"
  http_ports: "8080"
  reload_interval: 250ms
timeouts:
  drain: 1s
EOF
		MESHLET_TRUST_DOMAIN=$TD MESHLET_CA_ADDRESS=${IP[ca]}:8443 MESHLET_TOKEN_FILE=$d/token \
			MESHLET_POD_NAMESPACE=$NS MESHLET_SERVICE_ACCOUNT=${SA[$pod]} \
			MESHLET_TRUST_BUNDLE="$(cat "$W/ca/root-cert.pem")" \
			MESHLET_SERVICE_RANGES=$SERVICE_RANGE \
			in_pod "$pod" $PROXY_UID "$BIN/meshlet-proxy" run --config "$d/proxy.yaml" \
			>/dev/null 2>"$d/proxy.log" &
		pids+=($!)
	done
	in_pod x "$APP_UID" true
	for pod in a b c; do
		wait_for 15 in_pod "$pod" "$APP_UID" curl -sf --noproxy '*' http://127.0.0.1:15021/healthz/ready ||
			{ cat "$W/pods/$pod/proxy.log" >&2; die "pod $pod's proxy is not ready"; }
		grep -q '^ready' "$W/pods/$pod/app.out" || die "pod $pod's app did not start"
	done
	tell "each pod: iptables capture rules (meshlet-proxy init), its app on :8080 as uid $APP_UID,"
	tell "and meshlet-proxy as uid $PROXY_UID with an SVID that meshlet-ca issued for its token:"
	for pod in a b c; do
		local l
		l=$(grep -m1 '"msg":"SVID issued"' "$W/pods/$pod/proxy.log")
		printf 'pod %s: %s  serial %.16s…  expires %s\n' "$pod" "$(json_field spiffe_id <<<"$l")" \
			"$(json_field serial <<<"$l")" "$(json_field expires_at <<<"$l")" | show
	done
	ok "every proxy is ready; meshlet-ca audited $(wc -l <"$W/ca-audit.log") issuances"
}

a_calls_b() {
	say "pod A calls pod B by IP: the app in A just runs curl http://${IP[b]}:8080/"
	local got n_a n_b line_a line_b secret pcap
	secret="SECRET-PAYLOAD-$RANDOM$RANDOM"
	pcap=$W/wire.pcap
	n_a=$(grep -c '"msg":"connection"' "$W/pods/a/proxy.log" || true)
	n_b=$(grep -c '"msg":"connection"' "$W/pods/b/proxy.log" || true)
	ip netns exec "$(ns_of sw)" tcpdump -Z root -i vb -n -U --immediate-mode -s 0 -w "$pcap" tcp 2>"$W/tcpdump.err" &
	local tcpdump=$!
	pids+=($tcpdump)
	wait_for 5 grep -q "listening on" "$W/tcpdump.err" || die "tcpdump did not start: $(cat "$W/tcpdump.err")"
	got=$(call a b /hello "$secret")
	sleep 0.5
	kill -INT "$tcpdump" 2>/dev/null || true
	wait "$tcpdump" 2>/dev/null || true
	[ "$(status_of "$got")" = 200 ] || die "A -> B failed: $got"
	head -n 1 <<<"$got" | show
	wait_for 5 more_than "$n_b" "$W/pods/b/proxy.log" '"msg":"connection"' || die "no access log in B"
	wait_for 5 more_than "$n_a" "$W/pods/a/proxy.log" '"msg":"connection"' || die "no access log in A"
	line_a=$(grep '"msg":"connection"' "$W/pods/a/proxy.log" | tail -n 1)
	line_b=$(grep '"msg":"connection"' "$W/pods/b/proxy.log" | tail -n 1)
	tell "A's proxy (outbound) saw the server's identity, B's proxy (tunnel) the client's:"
	for who in A B; do
		local l=$line_a
		[ $who = B ] && l=$line_b
		printf '%s: listener=%s mode=%s peer=%s result=%s\n' "$who" "$(json_field listener <<<"$l")" \
			"$(json_field mode <<<"$l")" "$(json_field peer <<<"$l")" "$(json_field result <<<"$l")"
	done | show
	[ "$(json_field peer <<<"$line_a")" = "spiffe://$TD/ns/$NS/sa/${SA[b]}" ] || die "A's log does not name B's SPIFFE ID"
	[ "$(json_field peer <<<"$line_b")" = "spiffe://$TD/ns/$NS/sa/${SA[a]}" ] || die "B's log does not name A's SPIFFE ID"
	ok "both access logs show both SPIFFE IDs"
	local tls plain total
	total=$(tcpdump -r "$pcap" -nn 2>/dev/null | wc -l)
	tls=$(tcpdump -r "$pcap" -nn 'tcp port 15008' 2>/dev/null | wc -l)
	plain=$(grep -c -a "$secret" "$pcap" || true)
	tell "tcpdump on B's veth: $total packets, $tls of them to or from the tunnel port 15008;"
	tell "the request body ($secret) appears in $plain of them"
	((tls > 0 && plain == 0)) || die "the wire is not TLS-only"
	$PY - "$pcap" <<'EOF' | show || die "the capture holds something other than TLS"
import struct, sys
data = open(sys.argv[1], "rb").read()
kinds = {0x14: "change_cipher_spec", 0x15: "alert", 0x16: "handshake", 0x17: "application_data"}
seen, pos, first = {}, 24, None
while pos + 16 <= len(data):
    incl = struct.unpack("<I", data[pos + 8:pos + 12])[0]
    pkt = data[pos + 16:pos + 16 + incl]
    pos += 16 + incl
    ip = pkt[14:]
    tcp = ip[(ip[0] & 15) * 4:]
    payload = tcp[(tcp[12] >> 4) * 4:]
    if len(payload) >= 3 and payload[1] == 3:
        kind = kinds.get(payload[0], hex(payload[0]))
        seen[kind] = seen.get(kind, 0) + 1
        first = first or payload[:5].hex(" ")
    elif payload:
        raise SystemExit(f"a segment that is not a TLS record: {payload[:16]!r}")
print("segments that start with a TLS record:", ", ".join(f"{k} x{v}" for k, v in seen.items()))
print("the first begins", first, "(0x16 handshake, 0x0301: a ClientHello)")
EOF
	ok "the wire carries TLS records only, and no plaintext"
}

a_calls_service_b() {
	say "pod A calls Service b: curl http://$SVC_B/ (port 80, which kube-proxy sends to B:8080)"
	local got n_a n_b line_a line_b
	n_a=$(grep -c '"msg":"connection"' "$W/pods/a/proxy.log" || true)
	n_b=$(grep -c '"msg":"connection"' "$W/pods/b/proxy.log" || true)
	got=$(call_url a "http://$SVC_B/via-service")
	[ "$(status_of "$got")" = 200 ] || die "A -> Service b failed: $got"
	head -n 1 <<<"$got" | show
	wait_for 5 more_than "$n_b" "$W/pods/b/proxy.log" '"msg":"connection"' || die "no access log in B"
	wait_for 5 more_than "$n_a" "$W/pods/a/proxy.log" '"msg":"connection"' || die "no access log in A"
	line_a=$(grep '"msg":"connection"' "$W/pods/a/proxy.log" | tail -n 1)
	line_b=$(grep '"msg":"connection"' "$W/pods/b/proxy.log" | tail -n 1)
	tell "a ClusterIP has no tunnel port: A's proxy opens mutual TLS to the Service's own port;"
	tell "B's proxy tells its hello from plaintext on the inbound capture port, and sends it to 8080:"
	for who in A B; do
		local l=$line_a
		[ $who = B ] && l=$line_b
		printf '%s: listener=%s mode=%s destination=%s peer=%s\n' "$who" \
			"$(json_field listener <<<"$l")" "$(json_field mode <<<"$l")" \
			"$(json_field destination <<<"$l")" "$(json_field peer <<<"$l")"
	done | show
	[ "$(json_field mode <<<"$line_a")" = mtls ] && [ "$(json_field mode <<<"$line_b")" = mtls ] ||
		die "the call through the Service was not mutual TLS"
	[ "$(json_field peer <<<"$line_a")" = "spiffe://$TD/ns/$NS/sa/${SA[b]}" ] &&
		[ "$(json_field peer <<<"$line_b")" = "spiffe://$TD/ns/$NS/sa/${SA[a]}" ] ||
		die "the access logs do not show both SPIFFE IDs"
	ok "Services get mutual TLS too, and kube-proxy still picks the backend"
}

deny_c() {
	say "a DENY policy for pod C's identity on pod B (Istio's AuthorizationPolicy, unchanged)"
	local reloads
	reloads=$(grep -c '"msg":"policy reloaded"' "$W/pods/b/proxy.log" || true)
	# Written aside, then renamed: the proxy sees the whole file at once, as it sees a
	# ConfigMap's update (Kubernetes swaps a symlink).
	cat >"$W/pods/b/deny-batch.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-batch
  namespace: $NS
spec:
  selector:
    matchLabels:
      app: b
  action: DENY
  rules:
  - from:
    - source:
        principals: ["$TD/ns/$NS/sa/${SA[c]}"]
EOF
	chmod 644 "$W/pods/b/deny-batch.yaml"
	mv "$W/pods/b/deny-batch.yaml" "$W/pods/b/policy/deny-batch.yaml"
	show <"$W/pods/b/policy/deny-batch.yaml"
	"$BIN/meshlet-proxy" policy check "$W/pods/b/policy" | show
	wait_for 10 more_than "$reloads" "$W/pods/b/proxy.log" '"msg":"policy reloaded"' ||
		die "B did not reload its policy"
	local c a
	c=$(call c b /from-c)
	a=$(call a b /from-a)
	tell "pod C -> B: HTTP $(status_of "$c"): $(head -n 1 <<<"$c")"
	tell "pod A -> B: HTTP $(status_of "$a"): $(head -n 1 <<<"$a")"
	[ "$(status_of "$c")" = 403 ] || die "C was not refused: $c"
	[ "$(status_of "$a")" = 200 ] || die "A was refused: $a"
	grep '"msg":"request"' "$W/pods/b/proxy.log" | grep '"decision":"deny"' | tail -n 1 | show
	"$BIN/meshlet-proxy" policy explain --policy "$W/pods/b/policy" --namespace "$NS" --labels app=b \
		--principal "spiffe://$TD/ns/$NS/sa/${SA[c]}" --port 8080 --method GET --path /from-c | show || true
	ok "C gets 403, A still gets 200; B's log names the policy that decided"
}

strict() {
	say "PERMISSIVE, then STRICT: a plain client without a sidecar (X) calls pod B"
	local x
	x=$(call x b /plain)
	tell "PERMISSIVE (the default): X -> B: HTTP $(status_of "$x")"
	[ "$(status_of "$x")" = 200 ] || die "X was not served in PERMISSIVE: $x"
	local reloads
	reloads=$(grep -c '"msg":"policy reloaded"' "$W/pods/b/proxy.log" || true)
	cat >"$W/pods/b/strict.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: strict
  namespace: $NS
spec:
  mtls:
    mode: STRICT
EOF
	chmod 644 "$W/pods/b/strict.yaml"
	mv "$W/pods/b/strict.yaml" "$W/pods/b/policy/strict.yaml"
	show <"$W/pods/b/policy/strict.yaml"
	wait_for 10 more_than "$reloads" "$W/pods/b/proxy.log" '"msg":"policy reloaded"' ||
		die "B did not reload: $(grep policy "$W/pods/b/proxy.log" | tail -n 3)"
	x=$(call x b /plain-again)
	tell "STRICT: X -> B: $([ "$(status_of "$x")" = 000 ] && echo "refused, no answer" || echo "HTTP $(status_of "$x")")"
	[ "$(status_of "$x")" = 000 ] || die "STRICT did not refuse X: $x"
	local a
	a=$(call a b /mtls-still)
	tell "STRICT: A -> B (mutual TLS): HTTP $(status_of "$a")"
	[ "$(status_of "$a")" = 200 ] || die "A was refused under STRICT: $a"
	grep '"reason":"mTLS is STRICT' "$W/pods/b/proxy.log" | tail -n 1 | show
	ok "STRICT refuses plaintext; meshed callers go on"
}

rotate() {
	say "short-lived certificates (20 s) rotate while traffic flows"
	local first last n=0 bad=0 until=$((SECONDS + 25)) got
	first=$(grep '"msg":"SVID issued"' "$W/pods/a/proxy.log" | tail -n 1 | json_field serial)
	tell "pod A's SVID serial now: ${first:0:32}…"
	while ((SECONDS < until)); do
		got=$(call a b "/load-$n")
		n=$((n + 1))
		[ "$(status_of "$got")" = 200 ] || bad=$((bad + 1))
		last=$(grep '"msg":"SVID issued"' "$W/pods/a/proxy.log" | tail -n 1 | json_field serial)
		if [ "$last" != "$first" ] && ((n > 20)); then break; fi
		sleep 0.05
	done
	tell "pod A's SVID serial after $n requests: ${last:0:32}…"
	grep '"msg":"SVID issued"' "$W/pods/a/proxy.log" | tail -n 1 | show
	[ "$last" != "$first" ] || die "the certificate did not rotate"
	((bad == 0)) || die "$bad of $n requests failed during the rotation"
	ok "a new certificate, and none of the $n requests failed"
}

# ------------------------------------------------------------ without root: loopback

loopback_pair() {
	say "a proxy pair on loopback with explicit ports (no namespaces without root)"
	local app ca_port cli srv d=$W/pair
	mkdir -p "$d"
	app=$(free_port) cli=$(free_port) srv=$(free_port)
	$PY demo/app.py backend "$app" >"$d/app.out" 2>&1 &
	pids+=($!)
	for who in frontend backend; do token "$who" >"$d/$who.token"; done
	local spec
	for who in backend frontend; do
		if [ $who = backend ]; then spec="terminate 127.0.0.1:$srv 127.0.0.1:$app"; else
			spec="originate 127.0.0.1:$cli 127.0.0.1:$srv spiffe://$TD/ns/$NS/sa/backend"
		fi
		printf 'access_log: true\nlog:\n  format: json\nidentity:\n  ca_server_name: %s\nlisteners:\n  capture: false\n' \
			"$CA_NAME" >"$d/$who.yaml"
		MESHLET_TRUST_DOMAIN=$TD MESHLET_CA_ADDRESS=127.0.0.1:$CA_PORT MESHLET_TOKEN_FILE=$d/$who.token \
			MESHLET_POD_NAMESPACE=$NS MESHLET_SERVICE_ACCOUNT=$who \
			MESHLET_TRUST_BUNDLE="$(cat "$W/ca/root-cert.pem")" \
			"$BIN/meshlet-proxy" run --config "$d/$who.yaml" --static "$spec" \
			--admin-port "$(free_port)" >/dev/null 2>"$d/$who.log" &
		pids+=($!)
	done
	wait_for 15 curl -sf "http://127.0.0.1:$cli/hello" || { cat "$d"/*.log >&2; die "the pair does not answer"; }
	curl -sS "http://127.0.0.1:$cli/hello" | show
	grep -h '"msg":"connection"' "$d/backend.log" | tail -n 1 | show
	ok "curl -> frontend proxy -> mutual TLS -> backend proxy -> app; both identities from meshlet-ca"
}

# ----------------------------------------------------------------------------- main

printf '%smeshlet demo%s: the mesh on this machine, step by step (%s)\n' "$bold" "$off" "$W"
make_ca
webhook
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v tcpdump >/dev/null &&
	command -v setpriv >/dev/null && ip netns add "$TAG-probe" 2>/dev/null; then
	ip netns del "$TAG-probe"
	make_pods
	a_calls_b
	a_calls_service_b
	deny_c
	strict
	rotate
else
	tell ""
	tell "Not root (or no ip/tcpdump/setpriv): the pods need network namespaces and iptables,"
	tell "which need root. Running what works on loopback instead; run as root for the rest."
	CA_PORT=$(free_port)
	start_ca "127.0.0.1:$CA_PORT"
	loopback_pair
fi
printf '\n%sdemo OK: every step did what it said.%s\n' "$green$bold" "$off"
