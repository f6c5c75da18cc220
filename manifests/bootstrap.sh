#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes meshlet's root CA and the serving certificates of meshlet-ca and meshlet-webhook
# with `meshlet-ca init` and `meshlet-ca issue`, and writes a kustomize overlay around
# manifests/base that holds them as Secrets and fills the webhook's caBundle, so that
# `kubectl apply -k DIR` installs meshlet on a cluster. See manifests/README.md.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/.." && pwd -P)
trust_domain=cluster.local
namespace=meshlet-system

usage() {
	cat <<EOF
Usage: $prog [-o DIR] [--tokenreview] [--ttl D] [--meshlet-ca PATH]
Make the mesh's root CA and the serving certificates of meshlet-ca and meshlet-webhook,
and write a kustomize overlay in DIR that installs meshlet with them:

  kubectl apply -k DIR

  -o, --out DIR        where to write (default: \$HOME/meshlet-install); never inside the
                       meshlet repository, as DIR holds the CA's private key
  --tokenreview        meshlet-ca verifies tokens with the API server's TokenReview
                       (adds manifests/components/tokenreview and its ClusterRole)
  --ttl D              lifetime of the serving certificates (default 2160h, 90 days):
                       run $prog again with the same DIR before they expire
  --meshlet-ca PATH    the meshlet-ca binary (default: \$MESHLET_CA, else the repository's
                       build/bin/meshlet-ca, else meshlet-ca on PATH)
  -h, --help           show this help

A root already in DIR/ca is kept (meshlet-ca init never replaces one); the serving
certificates and the overlay are made again on every run. Every key file is mode 0600.
The trust domain is $trust_domain, as in manifests/base/config/*.yaml.
EOF
}

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

out=${HOME:-/root}/meshlet-install
tokenreview=0
ttl=
ca_bin=${MESHLET_CA:-}
while [ $# -gt 0 ]; do
	case $1 in
	-o | --out)
		[ $# -ge 2 ] || die "option $1 needs a value"
		out=$2
		shift 2
		;;
	--tokenreview)
		tokenreview=1
		shift
		;;
	--ttl)
		[ $# -ge 2 ] || die "option $1 needs a value"
		ttl=$2
		shift 2
		;;
	--meshlet-ca)
		[ $# -ge 2 ] || die "option $1 needs a value"
		ca_bin=$2
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		printf '%s: unknown argument %s\n' "$prog" "$1" >&2
		printf "Run '%s --help' for usage.\n" "$prog" >&2
		exit 2
		;;
	esac
done

if [ -z "$ca_bin" ]; then
	if [ -x "$repo/${MESHLET_BUILD:-build}/bin/meshlet-ca" ]; then
		ca_bin=$repo/${MESHLET_BUILD:-build}/bin/meshlet-ca
	elif command -v meshlet-ca >/dev/null; then
		ca_bin=$(command -v meshlet-ca)
	else
		die "meshlet-ca not found: run 'make' in $repo, or give --meshlet-ca PATH"
	fi
fi
[ -x "$ca_bin" ] || die "$ca_bin is not an executable"

# Everything written from here on is readable by its owner only: DIR holds the CA key.
umask 077
out=$(realpath -m -- "$out")
case $out/ in
"$repo"/*) die "$out is inside the meshlet repository ($repo): the CA's private key must never land there; choose another directory" ;;
esac
mkdir -p "$out" || die "cannot create $out"
chmod 0700 "$out"
mkdir -p "$out/tls"

if [ -e "$out/ca/root-cert.pem" ]; then
	echo "$prog: keeping the root CA in $out/ca"
else
	"$ca_bin" init --dir "$out/ca" --trust-domain "$trust_domain" >/dev/null
	echo "$prog: made a root CA for spiffe://$trust_domain in $out/ca"
fi
[ -e "$out/ca/root-key.pem" ] || [ -e "$out/ca/ca-key.pem" ] ||
	die "$out/ca has no private key (root-key.pem): meshlet-ca cannot sign without it"

# The names each client checks: proxies the host of the webhook's mesh.ca_address
# (meshlet-ca.meshlet-system.svc), the API server meshlet-webhook.meshlet-system.svc.
issue() {
	local svc=$1 args=()
	for name in "$svc" "$svc.$namespace" "$svc.$namespace.svc" "$svc.$namespace.svc.cluster.local"; do
		args+=(--dns "$name")
	done
	[ -z "$ttl" ] || args+=(--ttl "$ttl")
	"$ca_bin" issue --dir "$out/ca" "${args[@]}" --out "$out/tls/$svc" >/dev/null
	echo "$prog: issued $out/tls/$svc.crt for $svc.$namespace.svc"
}
issue meshlet-ca
issue meshlet-webhook

# meshlet-ca init and issue already write keys 0600; make sure of it, as a copy or an
# older file may not be.
for key in "$out"/ca/*key*.pem "$out"/tls/*.key; do
	[ -e "$key" ] || continue
	chmod 0600 "$key"
done

base=$(realpath --relative-to="$out" "$repo/manifests/base")
components="# components: [PATH/manifests/components/tokenreview] for auth.mode tokenreview"
if [ "$tokenreview" -eq 1 ]; then
	components="components:
  - $(realpath --relative-to="$out" "$repo/manifests/components/tokenreview")"
fi

# The root goes to meshlet-ca (meshlet-ca-root, which only its pods mount), and as
# ca.crt beside each serving certificate: the webhook hands it to proxies as their
# trust bundle. The Secrets have cert-manager's shape (tls.crt, tls.key, ca.crt), so
# the base mounts the same keys whichever way they were made.
cat >"$out/kustomization.yaml" <<EOF
# Written by manifests/bootstrap.sh: meshlet with the certificates beside this file.
# It holds the CA's private key (ca/root-key.pem): keep this directory private, and out
# of version control. Install: kubectl apply -k $out
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $namespace
resources:
  - $base
${components}
# The hash that kustomize appends to each name rolls the Deployments when a
# certificate changes.
secretGenerator:
  - name: meshlet-ca-root
    type: kubernetes.io/tls
    files:
      - tls.crt=ca/root-cert.pem
      - tls.key=ca/root-key.pem
  - name: meshlet-ca-tls
    type: kubernetes.io/tls
    files:
      - tls.crt=tls/meshlet-ca.crt
      - tls.key=tls/meshlet-ca.key
      - ca.crt=ca/root-cert.pem
  - name: meshlet-webhook-tls
    type: kubernetes.io/tls
    files:
      - tls.crt=tls/meshlet-webhook.crt
      - tls.key=tls/meshlet-webhook.key
      - ca.crt=ca/root-cert.pem
# The API server trusts the webhook through the root that signed its certificate.
patches:
  - path: cabundle.yaml
EOF

cabundle=$(base64 -w0 <"$out/ca/root-cert.pem")
cat >"$out/cabundle.yaml" <<EOF
# Written by manifests/bootstrap.sh: the root that signed meshlet-webhook's serving
# certificate (ca/root-cert.pem, base64), for the API server to trust.
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: meshlet-sidecar-injector
webhooks:
  - name: sidecar-injector.meshlet.io
    clientConfig:
      caBundle: $cabundle
EOF

cat <<EOF
$prog: wrote the overlay $out/kustomization.yaml
Next:
  kubectl kustomize $out        # review what will be applied
  kubectl apply -k $out
  kubectl -n $namespace rollout status deploy/meshlet-ca deploy/meshlet-webhook
  kubectl label namespace NAMESPACE meshlet.io/inject=enabled
EOF
