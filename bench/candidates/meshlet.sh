# SPDX-License-Identifier: Apache-2.0
# meshlet-proxy as a candidate of the shared peer harness ../shared/tools/mtls-pair.sh
# (sourced by it; see its header). From the repository root, the harness's smoke mode:
#   CANDIDATES_DIR=$PWD/bench/candidates CANDIDATES="direct stunnel haproxy nginx meshlet" \
#   RUNS=1 DURATION=2 WARMUP=1 IPERF_SECS=1 LAT_SECS=1 \
#   OUT_MD=/tmp/mtls-pair.md OUT_TSV=/tmp/mtls-pair.tsv ../shared/tools/mtls-pair.sh
# Static listeners ("originate" on the client side, checking the server's SPIFFE ID
# $SERVER_SPIFFE; "terminate" on the server side), identity in files mode from the
# harness's certificates (trust domain cluster.local), $WORKERS worker threads.
# MESHLET_PROXY=FILE picks the binary (default: build/bin/meshlet-proxy of this tree).
MESHLET_PROXY=${MESHLET_PROXY:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin/meshlet-proxy}

cand_meshlet_available() {
	[[ -x $MESHLET_PROXY ]] || { echo "$MESHLET_PROXY not found (run make, or set MESHLET_PROXY)"; return 1; }
	command -v python3 >/dev/null || { echo "python3 is needed to pick admin ports"; return 1; }
}
cand_meshlet_version() {
	printf '%s; %s\n' "$("$MESHLET_PROXY" --version 2>&1 | head -n1)" \
		"$("$MESHLET_PROXY" --version 2>&1 | grep -o 'OpenSSL [0-9][^,]*' | head -n1)"
}
cand_meshlet_notes() { echo "workers=\$WORKERS (one epoll loop each); static listeners; files identity; client checks the server's SPIFFE ID (URI SAN); TLS 1.3 only; the two proxies keep their TLS connections for later client connections (tunnel protocol 2, ALPN meshlet/2) and resume sessions for new ones; admin port on a free port"; }

# A free TCP port for the admin endpoint (the kernel picks it; it binds to all addresses).
meshlet_admin_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}
meshlet_config() { # DIR NAME ROLE STATIC
	cat > "$1/$2" <<YAML
trust_domain: cluster.local
workers: $WORKERS
identity:
  mode: files
  cert_file: $CERTS/$3.crt
  key_file: $CERTS/$3.key
  bundle_file: $CERTS/ca.crt
listeners:
  capture: false
  static:
    - "$4"
ports:
  admin: $(meshlet_admin_port)
timeouts:
  drain: 1s
log:
  level: warn
YAML
}
cand_meshlet_client() { # plain in on $1 -> mutual TLS 1.3 out to $2, checking $SERVER_SPIFFE
	meshlet_config "$3" meshlet-client.yaml client "originate $BIND:$1 $BIND:$2 $SERVER_SPIFFE"
	spawn "$3/meshlet.log" "$MESHLET_PROXY" run --config "$3/meshlet-client.yaml"
}
cand_meshlet_server() { # mutual TLS 1.3 in on $1 (client certificate required) -> plain to $2
	meshlet_config "$3" meshlet-server.yaml server "terminate $BIND:$1 $BIND:$2"
	spawn "$3/meshlet.log" "$MESHLET_PROXY" run --config "$3/meshlet-server.yaml"
}
