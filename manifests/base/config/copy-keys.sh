#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copies Secret volumes into a private in-memory directory with mode 0600, and again
# whenever a Secret changes (cert-manager renewals, a new bootstrap), until the pod stops.
#
# Why: meshlet refuses a private key that group or others can read, and the kubelet
# writes Secret files owned by root, with fsGroup's read bit added (0440), so the
# daemons, which run as a non-root user, cannot use them where they are mounted.
#
# Usage: copy-keys.sh SRC:DST... (directories). $COPY_KEYS_READY (/run/meshlet/.ready)
# appears after the first complete copy; the sidecar's startupProbe waits for it.
# $COPY_KEYS_INTERVAL is the time between checks (10 seconds).
set -eu
umask 077
ready=${COPY_KEYS_READY:-/run/meshlet/.ready}
interval=${COPY_KEYS_INTERVAL:-10}

copy_dir() {
	src=$1
	dst=$2
	mkdir -p "$dst"
	for f in "$src"/*; do
		[ -f "$f" ] || continue
		name=${f##*/}
		if ! cmp -s "$f" "$dst/$name"; then
			# A rename is atomic: the daemon never reads a half-written file.
			cp "$f" "$dst/.$name.tmp"
			chmod 0600 "$dst/.$name.tmp"
			mv -f "$dst/.$name.tmp" "$dst/$name"
			echo "copy-keys: $src/$name -> $dst/$name"
		fi
	done
}

trap 'exit 0' TERM INT
while :; do
	for pair in "$@"; do
		copy_dir "${pair%%:*}" "${pair#*:}"
	done
	[ -e "$ready" ] || : >"$ready"
	sleep "$interval" &
	wait $! || true
done
