#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Shared by the scripts in bench/ (sourced, after they set work to their temporary
# directory): logging, processes started in the background and stopped by PID with their
# descendants (all of them at exit, newest first), free ports, and the nginx backend that
# answers every request with a fixed body.
pids=() # every process the script started, oldest first

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# Processes: started in the background, remembered, stopped by PID (with descendants).
alive() { # PID: exists and is not a zombie
	local s
	{ read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}
tree() { # PID -> the PID and its live descendants
	local list=" $1 " more=1 f s p pp
	while ((more)); do
		more=0
		for f in /proc/[0-9]*/stat; do
			{ read -r s <"$f"; } 2>/dev/null || continue
			p=${s%% *} s=${s##*) } s=${s#* } pp=${s%% *}
			if [[ $list == *" $pp "* && $list != *" $p "* ]]; then list+="$p " more=1; fi
		done
	done
	echo $list # one line, unquoted on purpose
}
stop() { # PID: SIGTERM, then SIGKILL (it and its descendants) after 5 s
	local pid=$1 kids p i any
	[ -n "$pid" ] || return 0
	if alive "$pid"; then
		kids=$(tree "$pid")
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			any=0
			for p in $kids; do alive "$p" && any=1; done
			((any)) || break
			sleep 0.1
		done
		for p in $kids; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
	fi
	for i in "${!pids[@]}"; do [ "${pids[$i]}" != "$pid" ] || unset "pids[$i]"; done
}
cleanup() {
	local i
	trap - EXIT INT TERM
	for i in $(printf '%s\n' "${!pids[@]}" | sort -rn); do [ -z "${pids[$i]:-}" ] || stop "${pids[$i]}"; done
	if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM
SPAWNED=
spawn() { # LOG CMD...: runs CMD in the background; its PID in SPAWNED
	local out=$1
	shift
	"$@" >"$out" 2>&1 </dev/null &
	SPAWNED=$!
	disown "$SPAWNED" # no job notices (stunnel may crash when stopped with 1,000 connections)
	pids+=("$SPAWNED")
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

nginx_backend() { # DIR ADDR PORT BYTES: DIR/nginx.conf for nginx answering BYTES of 'x'
	local dir=$1 addr=$2 port=$3 body
	mkdir -p "$dir/tmp"
	body=$(head -c "$4" /dev/zero | tr '\0' x)
	cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 10240; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen $addr:$port backlog=4096;
        location / { default_type text/plain; return 200 "$body"; }
    }
}
EOF
}
