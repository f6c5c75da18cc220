# SPDX-License-Identifier: Apache-2.0
"""meshlet-proxy end to end, as in a cluster: network namespaces on a bridge as pods,
`meshlet-proxy init` capturing the meshed pods' TCP, `meshlet-proxy run` as uid 1337 in
each meshed pod, unmodified clients (curl) and servers.

    switch namespace: bridge br0, one veth port per pod, 10.252.0.0/24
    ca   10.252.0.10  unmeshed: meshlet-ca serve (for the ca-mode test)
    a    10.252.0.11  meshed, service account "client"
    b    10.252.0.12  meshed, service account "server", HTTP on 0.0.0.0:8080
    c    10.252.0.13  unmeshed: HTTP on 0.0.0.0:8080 and a plain client
    d    10.252.0.14  meshed, identity from meshlet-ca (ca mode), service account "reporter"

Services, as kube-proxy makes them: a ClusterIP (10.96.0.0/12) whose ports are translated
to a backend pod's (DNAT), in the client pods' (a and c) own nat OUTPUT chain after the
capture rules, so that it applies to what leaves the pod, as kube-proxy's rules on the node
do. The proxies have outbound.service_ranges set, as the webhook sets it.

    10.96.0.12:80   -> b:8080 (meshed)      10.96.0.13:80   -> c:8080 (unmeshed)
    10.96.0.13:7000 -> c:7000 (unmeshed: a server that waits in silence for a blank line)
    10.96.0.12:9000 -> c:8080 (a port of the same Service that leads to no sidecar)

Pods a and b hold certificates from `meshlet-ca issue --spiffe-id` (identity.mode files).
Everything (namespaces, their iptables, processes) is made here and removed at the end;
the host's own network and iptables are never touched."""
import contextlib
import itertools
import json
import os
import pathlib
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

if os.geteuid() != 0:
    pytest.skip("needs root for network namespaces", allow_module_level=True)
_missing = [t for t in ("ip", "iptables-save", "iptables-restore", "setpriv", "curl")
            if shutil.which(t) is None]
if _missing:
    pytest.skip(f"needs {', '.join(_missing)} (make deps)", allow_module_level=True)

from cahelp import CADir  # noqa: E402
from conftest import binary, run  # noqa: E402

TD = "example.org"
NS = "default"
SUBNET = "10.252.0"
IPS = {"ca": f"{SUBNET}.10", "a": f"{SUBNET}.11", "b": f"{SUBNET}.12", "c": f"{SUBNET}.13",
       "d": f"{SUBNET}.14"}
# Every pod has an IPv6 address too (dual stack), so `init` captures IPv6 as well.
IPS6 = {pod: f"fd00:252::{ip.rsplit('.', 1)[1]}" for pod, ip in IPS.items()}
MESHED = {"a": "client", "b": "server", "d": "reporter"}
PROXY_UID = 1337
APP_UID = 1000  # the applications and clients: neither root nor the proxy
CA_NAME = "meshlet-ca.meshlet-system.svc"
ALPN = b"meshlet/2"
INIT_ARGS = ["--proxy-uid", "1337", "--proxy-gid", "1337", "--inbound-port", "15006",
             "--outbound-port", "15001", "--include-inbound-ports", "*",
             "--exclude-inbound-ports", "15008,15021", "--include-outbound-cidrs", "*"]
FALLBACK_TTL = 2  # seconds: outbound.fallback_ttl of the proxies here
SERVICE_CIDR = "10.96.0.0/12"
SERVICE_CIDR6 = "fd00:96::/112"
SVC_B6 = "fd00:96::12"
SVC_B, SVC_C = "10.96.0.12", "10.96.0.13"
# (SVC_B, 9000) leads to a port without a sidecar, as a Service port whose target port the
# backends leave out of capture would.
SERVICES = [(SVC_B, 80, "b", 8080), (SVC_C, 80, "c", 8080), (SVC_C, 7000, "c", 7000),
            (SVC_B, 9000, "c", 8080)]

# curl's exit statuses for a connection that ended without an HTTP answer
CURL_EMPTY_REPLY, CURL_RECV_ERROR, CURL_REFUSED = 52, 56, 7

# The pods' application: answers GET and POST with who it is, whom it saw and what it got.
APP = r"""
import http.server, json, socket, sys
name, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def answer(self, body):
        client = self.client_address[0]
        client = client[7:] if client.startswith("::ffff:") else client
        doc = json.dumps({"server": name, "method": self.command, "path": self.path,
                          "client": client, "body": body}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(doc)))
        self.end_headers()
        self.wfile.write(doc)
    def do_GET(self):
        self.answer("")
    def do_POST(self):
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 1024  # not 5: bursts of connections are not left to TCP retries
    address_family = socket.AF_INET6  # both families: "::" takes IPv4 too
s = S(("::", port), H)
print("ready", flush=True)
s.serve_forever()
"""

# A server that says nothing until the client's request (up to a blank line) is whole, and
# then answers "pong" and what it read: a TLS hello makes it wait in silence. Or, with
# "first", one that speaks first (as SMTP or MySQL servers do) and then echoes a line.
LINE_APP = r"""
import socket, sys, threading
port, mode = int(sys.argv[1]), sys.argv[2]
def serve(c):
    with c:
        if mode == "first":
            c.sendall(b"hello from the server\n")
        data = b""
        while b"\r\n\r\n" not in data:
            got = c.recv(4096)
            if not got:
                return
            data += got
        c.sendall(b"pong " + data.split(b"\r\n\r\n")[0] + b"\n")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# A client of LINE_APP: connects, reads a greeting when told to, sends a request, prints
# the whole answer.
LINE_CLIENT = r"""
import socket, sys
host, port, greeting = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
s = socket.create_connection((host, port), timeout=10)
out = b""
if greeting:
    while not out.endswith(b"\n"):
        out += s.recv(4096)
s.sendall(b"ping\r\n\r\n")
while True:
    got = s.recv(4096)
    if not got:
        break
    out += got
    if out.count(b"\n") >= (2 if greeting else 1):
        break
sys.stdout.write(out.decode())
"""

_secrets = itertools.count()


def secret():
    """A distinctive payload, different for every request."""
    return f"MESHLET-SECRET-PAYLOAD-{os.getpid()}-{next(_secrets)}-{time.monotonic_ns()}"


def wait_for(check, seconds=10.0, interval=0.05):
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            return got
        time.sleep(interval)


def sh(*cmd):
    r = run(list(cmd))
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r


def clean_env(**extra):
    """The environment of the processes started here: no MESHLET_* or proxy variables of
    whoever runs the tests (sanitizer options pass through)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MESHLET_") and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(extra)
    return env


class Answer:
    """What curl got: its exit status, the HTTP status and the JSON body (or None)."""

    def __init__(self, r):
        self.rc = r.returncode
        self.stderr = r.stderr
        self.status, self.doc = None, None
        if r.returncode == 0:
            body, _, code = r.stdout.rpartition("\n")
            self.status = int(code)
            try:
                self.doc = json.loads(body)
            except ValueError:
                self.doc = body

    @property
    def no_answer(self):
        """The connection was made and then closed or reset without an HTTP answer."""
        return self.rc in (CURL_EMPTY_REPLY, CURL_RECV_ERROR)

    def __repr__(self):
        return f"Answer(rc={self.rc}, status={self.status}, doc={self.doc!r}, " \
               f"stderr={self.stderr.strip()!r})"


class Proxy:
    """`meshlet-proxy run` in a pod's namespace, as uid/gid 1337."""

    def __init__(self, mesh, pod, mode="files"):
        self.mesh, self.pod, self.mode = mesh, pod, mode
        self.sa = MESHED[pod]
        self.proc = None
        self.log_path = None
        self.starts = 0

    def start(self, extra=None):
        """Starts with the base configuration, the keys in extra (a nested dict) on top."""
        d = self.mesh.pod_dir(self.pod)
        cfg = {"access_log": True, "log": {"format": "json"},
               "mtls": {"mode": "permissive"},
               "outbound": {"fallback_ttl": f"{FALLBACK_TTL}s",
                            "service_ranges": f"{SERVICE_CIDR},{SERVICE_CIDR6}",
                            "service_probe_timeout": "1s"},
               "timeouts": {"drain": "2s", "connect": "3s", "handshake": "3s"}}
        env = clean_env()
        if self.mode == "files":
            cfg["trust_domain"] = TD
            cfg["identity"] = {"mode": "files", "cert_file": str(d / "svid.crt"),
                               "key_file": str(d / "svid.key"),
                               "bundle_file": str(d / "bundle.pem")}
        else:
            # As the webhook sets it up: the environment names the pod and the CA.
            cfg["identity"] = {"ca_server_name": CA_NAME}
            env.update(MESHLET_TRUST_DOMAIN=TD, MESHLET_CA_ADDRESS=f"{IPS['ca']}:8443",
                       MESHLET_TOKEN_FILE=str(d / "token"), MESHLET_POD_NAMESPACE=NS,
                       MESHLET_SERVICE_ACCOUNT=self.sa,
                       MESHLET_TRUST_BUNDLE=self.mesh.cadir.root.read_text())
        for key, value in (extra or {}).items():
            if isinstance(value, dict):
                cfg.setdefault(key, {}).update(value)
            else:
                cfg[key] = value
        self.starts += 1
        path = d / f"proxy-{self.starts}.yaml"
        path.write_text(json.dumps(cfg, indent=1) + "\n")  # JSON is YAML
        self.log_path = d / f"proxy-{self.starts}.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                self.mesh.exec_in(self.pod, user=PROXY_UID) +
                [self.mesh.proxy_bin, "run", "--config", str(path)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        self.mesh.procs.append(self.proc)
        if not wait_for(lambda: self.proc.poll() is not None or self.ready() == 200, 15):
            pytest.fail(f"{self.pod}'s proxy is not ready after 15 s: {self.log_text()}")
        assert self.proc.poll() is None, f"{self.pod}'s proxy exited: {self.log_text()}"

    def stop(self):
        """SIGTERM: the proxy drains and exits 0."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return "killed after 15 s"

    def restart(self, extra=None):
        old_log = self.log_text()
        rc = self.stop()
        self.start(extra)
        assert rc == 0, f"{self.pod}'s proxy exited with {rc} on SIGTERM: {old_log}"

    def ready(self, host="127.0.0.1", src=None):
        return self.mesh.http_status(src or self.pod, f"http://{host}:15021/healthz/ready")

    def log_text(self):
        return self.log_path.read_text() if self.log_path else ""

    def log(self):
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def conns(self):
        return [x for x in self.log() if x.get("msg") == "connection"]

    def wait_conn(self, since, **want):
        """The first access log line after the first `since` ones that has the fields in
        want, waiting for it up to 10 s."""
        def find():
            for line in self.conns()[since:]:
                if all(line.get(k) == v for k, v in want.items()):
                    return line
            return None
        got = wait_for(find, 10)
        assert got, f"{self.pod}: no connection line with {want} after line {since}: " \
                    f"{self.conns()[since:]}"
        return got

    def metric(self, name):
        r = self.mesh.ns_run(self.pod, ["curl", "-sS", "--noproxy", "*", "--max-time", "5",
                                        "http://127.0.0.1:15021/metrics"])
        assert r.returncode == 0, r.stderr
        total = 0.0
        for line in r.stdout.splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                total += float(line.split()[-1])
        return total


class Mesh:
    def __init__(self):
        self.tag = f"mlm{os.getpid()}"
        self.sw = f"{self.tag}-sw"
        self.procs = []
        self.made = []
        self.work = tempfile.mkdtemp(prefix="meshlet-mesh-")
        os.chmod(self.work, 0o755)  # uid 1337 reads its files here
        self.dir = pathlib.Path(self.work)
        self.proxies = {}
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def ns(self, pod):
        return f"{self.tag}-{pod}"

    def pod_dir(self, pod):
        d = self.dir / pod
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
        return d

    def _make(self):
        # The binary is copied where uid 1337 can surely run it, whatever the checkout's
        # permissions.
        self.proxy_bin = str(self.dir / "meshlet-proxy")
        shutil.copy2(binary("meshlet-proxy"), self.proxy_bin)
        os.chmod(self.proxy_bin, 0o755)

        sh("ip", "netns", "add", self.sw)
        self.made.append(self.sw)
        sh("ip", "-n", self.sw, "link", "set", "lo", "up")
        sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        sh("ip", "-n", self.sw, "link", "set", "br0", "up")
        for pod, ip in IPS.items():
            ns = self.ns(pod)
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Made inside the pod: the pair never exists in the host's namespace.
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name",
               f"v{pod}", "netns", self.sw)
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{IPS6[pod]}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", self.sw, "link", "set", f"v{pod}", "master", "br0")
            sh("ip", "-n", self.sw, "link", "set", f"v{pod}", "up")

        # One CA: certificates it issued for a and b (identity.mode files), and
        # meshlet-ca serve for d (ca mode), which gets the projected token's stand-in.
        self.cadir = CADir(self.dir / "ca-files", td=TD)
        for pod, sa in MESHED.items():
            d = self.pod_dir(pod)
            if pod == "d":
                (d / "token").write_text(self.cadir.token(ns=NS, sa=sa, pod=f"{sa}-1") + "\n")
                os.chmod(d / "token", 0o600)
                os.chown(d / "token", PROXY_UID, PROXY_UID)
                continue
            shutil.copy(self.cadir.root, d / "bundle.pem")
            sh(binary("meshlet-ca"), "issue", "--dir", str(self.cadir.ca), "--spiffe-id",
               f"spiffe://{TD}/ns/{NS}/sa/{sa}", "--out", str(d / "svid"), "--ttl", "2h")
            assert (d / "svid.key").stat().st_mode & 0o777 == 0o600
            for f in ("svid.crt", "svid.key", "bundle.pem"):
                os.chown(d / f, PROXY_UID, PROXY_UID)

        # The applications, as a normal user.
        for pod in ("b", "c"):
            self.start_app(pod, 8080)
        self.start_app("c", 7000, LINE_APP, "silent")
        self.start_app("b", 7001, LINE_APP, "first")

        # Capture, then the sidecars.
        for pod in ("a", "b", "d"):
            r = run(["ip", "netns", "exec", self.ns(pod), self.proxy_bin, "init", *INIT_ARGS])
            assert r.returncode == 0, r.stderr
            assert "IPv4: capture rules written" in r.stdout, r.stdout
        # The Services' translation (kube-proxy's), after the capture rules.
        for pod in ("a", "c"):
            sh("ip", "-n", self.ns(pod), "route", "add", SERVICE_CIDR, "dev", "eth0")
            for vip, port, backend, target in SERVICES:
                sh("ip", "netns", "exec", self.ns(pod), "iptables", "-t", "nat", "-A", "OUTPUT",
                   "-p", "tcp", "-d", vip, "--dport", str(port), "-j", "DNAT",
                   "--to-destination", f"{IPS[backend]}:{target}")
            sh("ip", "-n", self.ns(pod), "-6", "route", "add", SERVICE_CIDR6, "dev", "eth0")
            sh("ip", "netns", "exec", self.ns(pod), "ip6tables", "-t", "nat", "-A", "OUTPUT",
               "-p", "tcp", "-d", SVC_B6, "--dport", "80", "-j", "DNAT",
               "--to-destination", f"[{IPS6['b']}]:8080")
        for pod in ("a", "b"):
            self.proxies[pod] = Proxy(self, pod)
            self.proxies[pod].start()
        self.proxies["d"] = Proxy(self, "d", mode="ca")  # started by its test

    def exec_in(self, pod, user=None):
        cmd = ["ip", "netns", "exec", self.ns(pod)]
        if user is not None:
            cmd += ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups"]
        return cmd

    def ns_run(self, pod, cmd, user=None, timeout=30):
        return subprocess.run(self.exec_in(pod, user) + cmd, capture_output=True, text=True,
                              timeout=timeout, env=clean_env(), stdin=subprocess.DEVNULL)

    def start_app(self, pod, port, app=APP, arg=None):
        p = subprocess.Popen(self.exec_in(pod, APP_UID) +
                             [sys.executable, "-c", app] +
                             ([str(port), arg] if arg else [pod, str(port)]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=clean_env(), stdin=subprocess.DEVNULL)
        self.procs.append(p)
        ready, _, _ = select.select([p.stdout], [], [], 10)
        if not ready or p.stdout.readline() != "ready\n":
            p.kill()
            pytest.fail(f"the application in {pod} did not start: {p.stderr.read()}")

    def call(self, src, dst, path="/", data=None, timeout=8):
        """An unmodified client in pod src (curl as uid 1000) calls http://dst:8080."""
        return self.call_url(src, f"http://{IPS[dst]}:8080{path}", data, timeout)

    def call_url(self, src, url, data=None, timeout=8):
        cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout), "-o", "-",
               "-w", "\n%{http_code}", url]
        if data is not None:
            cmd += ["--data-binary", data]
        return Answer(self.ns_run(src, cmd, user=APP_UID, timeout=timeout + 20))

    def line_call(self, src, host, port, greeting=False):
        """LINE_CLIENT in pod src: its output, or None when it failed."""
        r = self.ns_run(src, [sys.executable, "-c", LINE_CLIENT, host, str(port),
                              "1" if greeting else "0"], user=APP_UID, timeout=30)
        return r.stdout if r.returncode == 0 else None

    def http_status(self, src, url):
        r = self.ns_run(src, ["curl", "-s", "--noproxy", "*", "--max-time", "3", "-o",
                              "/dev/null", "-w", "%{http_code}", url], user=APP_UID)
        return int(r.stdout) if r.stdout.strip().isdigit() else None

    @contextlib.contextmanager
    def capture(self, pod):
        """tcpdump on pod's port of the switch (the far end of its veth) while the block
        runs; yields a list that holds (raw pcap bytes, TCP segments) afterwards."""
        path = self.dir / f"capture-{pod}-{time.monotonic_ns()}.pcap"
        p = subprocess.Popen(["ip", "netns", "exec", self.sw, "tcpdump", "-i", f"v{pod}", "-n",
                              "-s", "0", "-U", "--immediate-mode", "-Z", "root", "-w",
                              str(path), "tcp"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        ready, _, _ = select.select([p.stderr], [], [], 10)
        line = p.stderr.readline() if ready else ""
        if "listening on" not in line:
            p.kill()
            pytest.fail(f"tcpdump did not start: {line}")
        out = []
        try:
            yield out
            time.sleep(0.3)  # the last packets of the exchange reach the capture
        finally:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        raw = path.read_bytes()
        out += [raw, parse_pcap(raw)]

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        shutil.rmtree(self.work, ignore_errors=True)


class Segment:
    def __init__(self, src, sport, dst, dport, payload):
        self.src, self.sport, self.dst, self.dport, self.payload = src, sport, dst, dport, payload

    def __repr__(self):
        return f"{self.src}:{self.sport} > {self.dst}:{self.dport} {len(self.payload)} bytes"


def parse_pcap(raw):
    """The IPv4 TCP segments of a classic pcap file of Ethernet frames."""
    magic = struct.unpack("<I", raw[:4])[0]
    end = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    assert struct.unpack(end + "I", raw[20:24])[0] == 1, "not Ethernet"
    off, segs = 24, []
    while off + 16 <= len(raw):
        incl = struct.unpack(end + "I", raw[off + 8:off + 12])[0]
        frame = raw[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl, total = (ip[0] & 15) * 4, struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        tcp = ip[ihl:total]
        sport, dport = struct.unpack("!HH", tcp[:4])
        segs.append(Segment(socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]),
                            dport, bytes(tcp[(tcp[12] >> 4) * 4:])))
    return segs


@pytest.fixture(scope="module")
def mesh():
    m = Mesh()
    try:
        yield m
    finally:
        m.close()


def spiffe(sa):
    return f"spiffe://{TD}/ns/{NS}/sa/{sa}"


# ---- meshed to meshed ----

def test_meshed_to_meshed_is_mutual_tls_with_both_identities(mesh):
    a, b = mesh.proxies["a"], mesh.proxies["b"]
    na, nb = len(a.conns()), len(b.conns())
    payload = secret()
    got = mesh.call("a", "b", "/hello", data=payload)
    assert got.status == 200, got
    assert got.doc["server"] == "b" and got.doc["path"] == "/hello"
    assert got.doc["body"] == payload
    # The request came out of b's own proxy, on the pod's own address.
    assert got.doc["client"] == IPS["b"]

    out = a.wait_conn(na, listener="outbound")
    assert out["mode"] == "mtls" and out["result"] == "ok", out
    assert out["peer"] == spiffe("server"), out
    assert out["destination"] == f"{IPS['b']}:8080", out
    assert out["bytes_up"] > len(payload) and out["bytes_down"] > len(payload), out

    tun = b.wait_conn(nb, listener="tunnel")
    assert tun["mode"] == "mtls" and tun["result"] == "ok", tun
    assert tun["peer"] == spiffe("client"), tun
    assert tun["source"].startswith(IPS["a"] + ":"), tun
    # The preamble named the port the client asked for.
    assert tun["destination"] == f"{IPS['b']}:8080", tun
    # Neither proxy saw the other way round: b's inbound capture listener was not used.
    assert not [x for x in b.conns()[nb:] if x["listener"] == "inbound"], b.conns()[nb:]


def tls_records(stream):
    """The content types of a byte stream that must be whole TLS records, nothing else."""
    kinds, i = [], 0
    while i < len(stream):
        assert i + 5 <= len(stream) and stream[i + 1:i + 3] in (b"\x03\x01", b"\x03\x03"), \
            stream[i:i + 16]
        kinds.append(stream[i])
        i += 5 + int.from_bytes(stream[i + 3:i + 5], "big")
    assert i == len(stream) and kinds, "a TLS record cut short"
    return kinds


def test_capture_on_the_veth_shows_tls_and_never_the_payload(mesh):
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is missing: run 'make deps'")
    payload = secret()
    with mesh.capture("b") as cap:
        got = mesh.call("a", "b", "/secret", data=payload)
    assert got.status == 200 and got.doc["body"] == payload, got
    raw, segs = cap
    assert payload.encode() not in raw
    assert b"MESHLET-SECRET-PAYLOAD" not in raw
    # Nothing went to the application's port on the wire: only to the tunnel port.
    assert not [s for s in segs if 8080 in (s.sport, s.dport)], segs
    up = b"".join(s.payload for s in segs
                  if s.src == IPS["a"] and s.dst == IPS["b"] and s.dport == 15008)
    down = b"".join(s.payload for s in segs
                    if s.src == IPS["b"] and s.sport == 15008 and s.dst == IPS["a"])
    # Both ways, the bytes on the wire are whole TLS records and nothing else. The call
    # went over the TLS connection that a's proxy kept from the test before (tunnel
    # protocol 2): application data records only, no handshake. With a new connection, a
    # ClientHello (our ALPN in the clear) and the server's handshake come first.
    kinds_up, kinds_down = tls_records(up), tls_records(down)
    if kinds_up[0] == 0x16:
        assert up[5] == 1 and ALPN in up, up[:16]
        assert kinds_down[0] == 0x16 and down[5] == 2, down[:16]
    else:
        assert set(kinds_up) == {0x17} and set(kinds_down) == {0x17}, (kinds_up, kinds_down)
    assert 0x17 in kinds_up and 0x17 in kinds_down

    # The capture does see a payload sent in the clear: c (unmeshed) to b (permissive).
    payload = secret()
    with mesh.capture("b") as cap:
        got = mesh.call("c", "b", "/clear", data=payload)
    assert got.status == 200 and got.doc["body"] == payload, got
    raw, segs = cap
    assert payload.encode() in raw
    assert [s for s in segs if s.src == IPS["c"] and s.dport == 8080], segs


# ---- meshed to unmeshed ----

def test_meshed_to_unmeshed_falls_back_to_plain_tcp(mesh):
    a = mesh.proxies["a"]
    # Whatever an earlier test left in the proxy's memory is forgotten by now.
    time.sleep(FALLBACK_TTL + 0.2)
    fallbacks = a.metric("meshlet_proxy_plain_fallbacks_total")
    n = len(a.conns())
    got = mesh.call("a", "c", "/one")
    assert got.status == 200 and got.doc["server"] == "c", got
    assert got.doc["client"] == IPS["a"], got
    line = a.wait_conn(n, listener="outbound")
    assert line["mode"] == "fallback" and line["result"] == "ok", line
    assert line["destination"] == f"{IPS['c']}:8080", line
    # No peer identity: plain TCP (the log writes "(null)" for none at the time of writing).
    assert not str(line.get("peer") or "").startswith("spiffe://"), line
    assert a.metric("meshlet_proxy_plain_fallbacks_total") == fallbacks + 1

    # Within fallback_ttl the destination is known to have no sidecar: plain at once.
    n = len(a.conns())
    got = mesh.call("a", "c", "/two")
    assert got.status == 200 and got.doc["path"] == "/two", got
    line = a.wait_conn(n, listener="outbound")
    assert line["mode"] == "plain" and line["result"] == "ok", line

    # After it, the tunnel port is tried again.
    time.sleep(FALLBACK_TTL + 0.2)
    n = len(a.conns())
    got = mesh.call("a", "c", "/three")
    assert got.status == 200, got
    assert a.wait_conn(n, listener="outbound")["mode"] == "fallback"


def test_mtls_required_range_fails_closed(mesh):
    a = mesh.proxies["a"]
    a.restart({"outbound": {"mtls_required_ranges": f"{IPS['c']}/32"}})
    try:
        n = len(a.conns())
        got = mesh.call("a", "c", "/must-not-arrive")
        assert got.status is None and got.no_answer, got
        # The tunnel port refused and no plain connection to port 8080 was made.
        line = a.wait_conn(n, listener="outbound")
        assert line["result"] == "connect_failed" and line["mode"] == "mtls", line
        assert line["destination"] == f"{IPS['c']}:8080", line
        assert a.metric("meshlet_proxy_plain_fallbacks_total") == 0
        # A meshed destination in the range of mTLS is still reached.
        got = mesh.call("a", "b", "/still")
        assert got.status == 200, got
    finally:
        a.restart()


# ---- unmeshed to meshed ----

def test_unmeshed_to_meshed_permissive_then_strict(mesh):
    b = mesh.proxies["b"]
    n = len(b.conns())
    got = mesh.call("c", "b", "/permissive", data="hello")
    assert got.status == 200 and got.doc["body"] == "hello", got
    line = b.wait_conn(n, listener="inbound")
    assert line["mode"] == "plain" and line["result"] == "ok", line
    assert line["source"].startswith(IPS["c"] + ":"), line
    assert not str(line.get("peer") or "").startswith("spiffe://"), line

    b.restart({"mtls": {"mode": "strict"}})
    try:
        refusals = b.metric("meshlet_proxy_strict_refusals_total")
        got = mesh.call("c", "b", "/strict")
        assert got.status is None and got.no_answer, got
        assert wait_for(lambda: b.metric("meshlet_proxy_strict_refusals_total") > refusals, 5)
        # The tunnel port does not take plaintext either.
        r = mesh.ns_run("c", ["curl", "-sS", "--noproxy", "*", "--max-time", "5",
                              f"http://{IPS['b']}:15008/"], user=APP_UID)
        assert r.returncode != 0, r.stdout
        # A meshed client is still served, over mutual TLS.
        n = len(b.conns())
        got = mesh.call("a", "b", "/strict-mtls")
        assert got.status == 200 and got.doc["path"] == "/strict-mtls", got
        assert b.wait_conn(n, listener="tunnel")["peer"] == spiffe("client")
    finally:
        b.restart()


def test_peer_authentication_and_policy_per_port(mesh):
    """PeerAuthentication and AuthorizationPolicy files, as the webhook mounts them: a
    namespace-wide STRICT refuses plaintext, a port-level PERMISSIVE for this workload lets
    it in again, and a DENY policy gives one identity 403 while others are served."""
    b = mesh.proxies["b"]
    d = mesh.pod_dir("b") / "policy"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    labels = mesh.pod_dir("b") / "labels"
    labels.write_text('app="b"\n')
    os.chmod(labels, 0o644)

    def put(name, text):
        (d / name).write_text(text)
        os.chmod(d / name, 0o644)

    put("strict.yaml", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        f"metadata: {{name: strict, namespace: {NS}}}\nspec:\n  mtls: {{mode: STRICT}}\n")
    b.restart({"policy": {"paths": [str(d)], "labels_file": str(labels), "http_ports": "8080",
                          "reload_interval": "200ms"}, "identity": {"namespace": NS}})
    try:
        got = mesh.call("c", "b", "/strict")
        assert got.status is None and got.no_answer, got
        line = [l for l in b.log() if l.get("msg") == "connection" and
                l.get("result") == "denied"][-1]
        assert line["reason"] == f"mTLS is STRICT ({NS}/strict)", line
        assert mesh.call("a", "b", "/mtls").status == 200

        put("port.yaml", "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
            "metadata: {name: b-8080}\nspec:\n  selector: {matchLabels: {app: b}}\n"
            "  portLevelMtls:\n    8080: {mode: PERMISSIVE}\n")
        assert wait_for(lambda: mesh.call("c", "b", "/port-permissive").status == 200, 10)

        put("deny.yaml", "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
            "metadata: {name: deny-client}\nspec:\n  action: DENY\n  rules:\n"
            f"  - from:\n    - source: {{principals: [\"{TD}/ns/{NS}/sa/client\"]}}\n")
        assert wait_for(lambda: mesh.call("a", "b", "/denied").status == 403, 10)
        got = mesh.call("a", "b", "/denied-again")
        assert got.status == 403 and got.doc == "meshlet: access denied\n", got
        assert mesh.call("c", "b", "/plain-still-served").status == 200
        line = [l for l in b.log() if l.get("msg") == "request" and
                l.get("path") == "/denied-again"][-1]
        assert line["policy"] == "deny-client" and line["peer"] == spiffe("client"), line
        assert b.metric('meshlet_proxy_policy_checks_total{decision="deny"}') >= 1
    finally:
        b.restart()


# ---- admin ----

# ---- through a Service ----

def test_service_to_meshed_backend_is_mutual_tls_on_the_service_port(mesh):
    """kube-proxy forwards only a Service's own ports, so a's proxy opens mutual TLS to
    the ClusterIP's port (not to a tunnel port there is no rule for); b's inbound capture
    port knows our hello, and forwards to the port the connection came to (the targetPort,
    8080), not to the Service's port that a's preamble names (80)."""
    a, b = mesh.proxies["a"], mesh.proxies["b"]
    na, nb = len(a.conns()), len(b.conns())
    payload = secret()
    with mesh.capture("b") as cap:
        got = mesh.call_url("a", f"http://{SVC_B}/svc", data=payload)
    assert got.status == 200, got
    assert got.doc["server"] == "b" and got.doc["body"] == payload, got
    assert got.doc["client"] == IPS["b"], got  # from b's own proxy
    out = a.wait_conn(na, listener="outbound")
    assert out["mode"] == "mtls" and out["result"] == "ok", out
    assert out["peer"] == spiffe("server") and out["destination"] == f"{SVC_B}:80", out
    inn = b.wait_conn(nb, listener="inbound")
    assert inn["mode"] == "mtls" and inn["result"] == "ok", inn
    assert inn["peer"] == spiffe("client") and inn["destination"] == f"{IPS['b']}:8080", inn
    assert inn["source"].startswith(IPS["a"] + ":"), inn

    raw, segs = cap
    assert payload.encode() not in raw
    assert not [x for x in segs if 15008 in (x.sport, x.dport)], segs
    up = b"".join(x.payload for x in segs if x.src == IPS["a"] and x.dport == 8080)
    down = b"".join(x.payload for x in segs if x.dst == IPS["a"] and x.sport == 8080)
    # The first call to the Service: a new TLS connection, whose hello offers our protocols.
    kinds_up = tls_records(up)
    assert kinds_up[0] == 0x16 and up[5] == 1, up[:16]
    assert ALPN in up and b"meshlet/1" in up, up[:300]
    assert 0x17 in kinds_up and 0x17 in tls_records(down)


def test_service_connections_share_kept_tls_connections_up_to_service_streams(mesh):
    """A kept TLS connection to a Service carries at most tunnel.service_streams of the
    application's connections, so that kube-proxy, which balances TLS connections, still
    spreads a client's connections over the backends; 0 makes one TLS connection each."""
    a, b = mesh.proxies["a"], mesh.proxies["b"]
    a.restart({"tunnel": {"service_streams": 3}})
    try:
        n, nb = len(a.conns()), len(b.conns())
        for i in range(5):
            got = mesh.call_url("a", f"http://{SVC_B}/kept-{i}")
            assert got.status == 200 and got.doc["path"] == f"/kept-{i}", got
            a.wait_conn(n + i, listener="outbound", destination=f"{SVC_B}:80")
        lines = a.conns()[n:n + 5]
        assert [x["reused"] for x in lines] == [False, True, True, False, True], lines
        assert all(x["mode"] == "mtls" and x["peer"] == spiffe("server") for x in lines), lines
        # b served each as a stream of its own, with the client's identity.
        assert wait_for(lambda: len([x for x in b.conns()[nb:] if x["listener"] == "inbound"]) == 5)
        served = [x for x in b.conns()[nb:] if x["listener"] == "inbound"]
        assert all(x["mode"] == "mtls" and x["peer"] == spiffe("client") for x in served), served
        assert [x["reused"] for x in served] == [False, True, True, False, True], served

        a.restart({"tunnel": {"service_streams": 0}})
        n = len(a.conns())
        for i in range(2):
            got = mesh.call_url("a", f"http://{SVC_B}/each-{i}")
            assert got.status == 200, got
            a.wait_conn(n + i, listener="outbound", destination=f"{SVC_B}:80")
        assert [x["reused"] for x in a.conns()[n:n + 2]] == [False, False]
    finally:
        a.restart()


def test_service_to_unmeshed_backend_falls_back_to_plain_tcp(mesh):
    a = mesh.proxies["a"]
    time.sleep(FALLBACK_TTL + 0.2)
    fallbacks = a.metric("meshlet_proxy_plain_fallbacks_total")
    n, nlog = len(a.conns()), len(a.log())
    got = mesh.call_url("a", f"http://{SVC_C}/one")
    assert got.status == 200 and got.doc["server"] == "c" and got.doc["path"] == "/one", got
    assert got.doc["client"] == IPS["a"], got
    line = a.wait_conn(n, listener="outbound")
    assert line["mode"] == "fallback" and line["result"] == "ok", line
    assert line["destination"] == f"{SVC_C}:80", line
    assert a.metric("meshlet_proxy_plain_fallbacks_total") == fallbacks + 1
    why = [x for x in a.log()[nlog:] if x.get("msg") == "no sidecar at the destination: plain TCP"]
    assert why and "Service's backend" in why[0]["why"], a.log()[nlog:]

    # Remembered for fallback_ttl: plain at once, no hello sent.
    n = len(a.conns())
    got = mesh.call_url("a", f"http://{SVC_C}/two")
    assert got.status == 200 and got.doc["path"] == "/two", got
    assert a.wait_conn(n, listener="outbound")["mode"] == "plain"


def test_service_to_a_silent_unmeshed_backend_falls_back_after_the_probe(mesh):
    """A backend that waits in silence on our hello (as a line protocol does) counts as
    having no sidecar once outbound.service_probe_timeout (1 s here) has passed."""
    a = mesh.proxies["a"]
    time.sleep(FALLBACK_TTL + 0.2)
    n, nlog = len(a.conns()), len(a.log())
    out = mesh.line_call("a", SVC_C, 7000)
    assert out == "pong ping\n", out
    line = a.wait_conn(n, listener="outbound")
    assert line["mode"] == "fallback" and line["destination"] == f"{SVC_C}:7000", line
    why = [x for x in a.log()[nlog:] if x.get("msg") == "no sidecar at the destination: plain TCP"]
    assert why and "did not answer the TLS hello in time" in why[0]["why"], a.log()[nlog:]


def test_service_in_an_mtls_required_range_fails_closed(mesh):
    a = mesh.proxies["a"]
    a.restart({"outbound": {"mtls_required_ranges": f"{SVC_C}/32"}})
    try:
        n = len(a.conns())
        got = mesh.call_url("a", f"http://{SVC_C}/must-not-arrive")
        assert got.status is None and got.no_answer, got
        line = a.wait_conn(n, listener="outbound")
        assert line["mode"] == "mtls" and line["result"] in ("handshake_failed", "timeout"), line
        assert a.metric("meshlet_proxy_plain_fallbacks_total") == 0
        got = mesh.call_url("a", f"http://{SVC_B}/still")
        assert got.status == 200 and got.doc["server"] == "b", got
    finally:
        a.restart()


def test_service_to_strict_backend_mtls_only(mesh):
    """STRICT refuses an unmeshed client that comes through the Service, and still serves
    a meshed one, whose mutual TLS comes to the same capture port."""
    b = mesh.proxies["b"]
    b.restart({"mtls": {"mode": "strict"}})
    try:
        n = len(b.conns())
        got = mesh.call_url("a", f"http://{SVC_B}/strict")
        assert got.status == 200 and got.doc["path"] == "/strict", got
        line = b.wait_conn(n, listener="inbound")
        assert line["mode"] == "mtls" and line["peer"] == spiffe("client"), line
        refusals = b.metric("meshlet_proxy_strict_refusals_total")
        got = mesh.call_url("c", f"http://{SVC_B}/strict-plain")
        assert got.status is None and got.no_answer, got
        assert wait_for(lambda: b.metric("meshlet_proxy_strict_refusals_total") > refusals, 5)
    finally:
        b.restart()


def test_service_port_without_a_sidecar_leaves_its_other_ports_alone(mesh):
    """What is remembered of a Service is per port: one of its ports that leads to no
    sidecar does not send its other ports in plain TCP."""
    a = mesh.proxies["a"]
    time.sleep(FALLBACK_TTL + 0.2)
    n = len(a.conns())
    got = mesh.call_url("a", f"http://{SVC_B}:9000/other-port")
    assert got.status == 200 and got.doc["server"] == "c", got
    assert a.wait_conn(n, listener="outbound")["mode"] == "fallback"
    n = len(a.conns())
    got = mesh.call_url("a", f"http://{SVC_B}/same-service")
    assert got.status == 200 and got.doc["server"] == "b", got
    line = a.wait_conn(n, listener="outbound")
    assert line["mode"] == "mtls" and line["peer"] == spiffe("server"), line


def test_service_backend_that_closes_is_not_remembered_as_plain(mesh):
    """A meshed backend that closes on our hello (here: at its connection limit) is not
    taken for one without a sidecar: that connection alone goes in plain TCP (which STRICT
    refuses), and the next one tries mutual TLS again."""
    a, b = mesh.proxies["a"], mesh.proxies["b"]
    b.restart({"mtls": {"mode": "strict"}, "limits": {"max_connections": 1}})
    hold = None
    try:
        # c holds b's only place with a connection that says nothing: on a strict port it
        # waits for a hello, up to timeouts.handshake (3 s), then is refused.
        hold = subprocess.Popen(
            mesh.exec_in("c", APP_UID) + [sys.executable, "-c",
                                          "import socket, time; s = socket.create_connection("
                                          f"('{IPS['b']}', 8080)); time.sleep(2)"],
            stdin=subprocess.DEVNULL, env=clean_env())
        mesh.procs.append(hold)
        time.sleep(0.5)
        n, nlog = len(a.conns()), len(a.log())
        got = mesh.call_url("a", f"http://{SVC_B}/full")
        assert got.status is None and got.no_answer, got
        line = a.wait_conn(n, listener="outbound")
        assert line["mode"] == "fallback", line
        why = [x for x in a.log()[nlog:]
               if x.get("msg") == "no sidecar at the destination: plain TCP"]
        assert why and "closed on the TLS hello" in why[0]["why"], a.log()[nlog:]
        assert why[0]["remembered_ms"] == 0, why
        hold.wait(timeout=10)
        time.sleep(0.5)
        n = len(a.conns())
        got = mesh.call_url("a", f"http://{SVC_B}/again")
        assert got.status == 200 and got.doc["path"] == "/again", got
        line = a.wait_conn(n, listener="outbound")
        assert line["mode"] == "mtls" and line["peer"] == spiffe("server"), line
    finally:
        if hold is not None and hold.poll() is None:
            hold.kill()
        b.restart()


def test_unmeshed_client_of_a_server_that_speaks_first_is_served(mesh):
    """The capture port waits for a client's first bytes (inbound.detect_timeout); a
    client that waits for the server's greeting gets its plaintext connection after it."""
    b = mesh.proxies["b"]
    n = len(b.conns())
    out = mesh.line_call("c", IPS["b"], 7001, greeting=True)
    assert out == "hello from the server\npong ping\n", out
    line = b.wait_conn(n, listener="inbound")
    assert line["mode"] == "plain" and line["result"] == "ok", line
    # A client that speaks first is not held: an HTTP request through the Service.
    got = mesh.call_url("c", f"http://{SVC_B}/plain")
    assert got.status == 200 and got.doc["client"] == IPS["b"], got


# ---- IPv6 ----

def test_ipv6_meshed_to_meshed_service_and_unmeshed(mesh):
    """A dual-stack pod's IPv6 traffic is captured (ip6tables) and carried like its IPv4:
    mutual TLS to a meshed pod's tunnel port with both identities, to a Service on its own
    port, and plain TCP to a pod without a sidecar."""
    a, b = mesh.proxies["a"], mesh.proxies["b"]
    na, nb = len(a.conns()), len(b.conns())
    got = mesh.call_url("a", f"http://[{IPS6['b']}]:8080/v6", data="six")
    assert got.status == 200 and got.doc["server"] == "b" and got.doc["body"] == "six", got
    assert got.doc["client"] == IPS6["b"], got  # from b's own proxy, on its IPv6 address
    out = a.wait_conn(na, listener="outbound")
    assert out["mode"] == "mtls" and out["peer"] == spiffe("server"), out
    assert out["destination"] == f"[{IPS6['b']}]:8080", out
    tun = b.wait_conn(nb, listener="tunnel")
    assert tun["mode"] == "mtls" and tun["peer"] == spiffe("client"), tun
    assert tun["source"].startswith(f"[{IPS6['a']}]:"), tun

    na, nb = len(a.conns()), len(b.conns())
    got = mesh.call_url("a", f"http://[{SVC_B6}]/v6-service")
    assert got.status == 200 and got.doc["server"] == "b", got
    out = a.wait_conn(na, listener="outbound")
    assert out["mode"] == "mtls" and out["destination"] == f"[{SVC_B6}]:80", out
    inn = b.wait_conn(nb, listener="inbound")
    assert inn["mode"] == "mtls" and inn["destination"] == f"[{IPS6['b']}]:8080", inn

    na = len(a.conns())
    got = mesh.call_url("a", f"http://[{IPS6['c']}]:8080/v6-plain")
    assert got.status == 200 and got.doc["server"] == "c", got
    assert got.doc["client"] == IPS6["a"], got
    assert a.wait_conn(na, listener="outbound")["mode"] in ("fallback", "plain")


def test_readiness_on_the_admin_port(mesh):
    for pod in ("a", "b"):
        p = mesh.proxies[pod]
        assert p.ready() == 200, p.log_text()
        # From outside the pod, as the kubelet would: 15021 is never captured.
        assert p.ready(host=IPS[pod], src="c") == 200


# ---- identity from meshlet-ca in its own namespace ----

def test_ca_mode_identity_from_meshlet_ca_in_the_mesh(mesh):
    d = mesh.dir / "ca-serve"
    d.mkdir()
    sh(binary("meshlet-ca"), "issue", "--dir", str(mesh.cadir.ca), "--dns", CA_NAME,
       "--out", str(d / "serving"))
    log_path = d / "ca.log"
    with open(log_path, "w") as log:
        ca = subprocess.Popen(
            mesh.exec_in("ca") + [binary("meshlet-ca"), "serve", "--listen",
                                  f"{IPS['ca']}:8443", "--ca-dir", str(mesh.cadir.ca),
                                  "--tls-cert", str(d / "serving.crt"),
                                  "--tls-key", str(d / "serving.key"),
                                  "--jwks-file", str(mesh.cadir.jwks),
                                  "--audit-file", str(d / "audit.log")],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, env=clean_env())
    mesh.procs.append(ca)
    assert wait_for(lambda: ca.poll() is not None or '"msg":"serving"' in log_path.read_text(),
                    10), log_path.read_text()
    assert ca.poll() is None, log_path.read_text()

    p = mesh.proxies["d"]
    p.start()
    try:
        audit = [json.loads(x) for x in (d / "audit.log").read_text().splitlines()]
        assert any(spiffe("reporter") in json.dumps(rec) for rec in audit), audit
        b = mesh.proxies["b"]
        nb, nd = len(b.conns()), len(p.conns())
        got = mesh.call("d", "b", "/from-d", data="ca-mode")
        assert got.status == 200 and got.doc["body"] == "ca-mode", got
        assert b.wait_conn(nb, listener="tunnel")["peer"] == spiffe("reporter")
        line = p.wait_conn(nd, listener="outbound")
        assert line["peer"] == spiffe("server") and line["mode"] == "mtls", line
    finally:
        assert p.stop() == 0, p.log_text()
        ca.terminate()
        ca.wait(timeout=10)
