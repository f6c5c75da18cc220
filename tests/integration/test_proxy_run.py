# SPDX-License-Identifier: Apache-2.0
"""meshlet-proxy run on loopback: a client-side and a server-side proxy with static
listeners, identities from a real meshlet-ca, real TLS, real clients."""
import hashlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from cahelp import CADir, CAServer, ec_key, write_key
from conftest import SLOW, VALGRIND, binary, daemon_argv, needs_speed, run


_GIVEN_PORTS = set()


def free_port():
    """A port nothing listens on now, never one this process handed out before: the caller
    binds it later, so two calls in a row could otherwise give the same port (a proxy's
    admin port and its listener collided so)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def wait_for(check, seconds=10):
    deadline = time.time() + seconds * SLOW
    while time.time() < deadline:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def client_context(cafile, cert, key):
    """A TLS client that offers our ALPN, with the given certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(cafile))
    ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(["meshlet/1"])
    return ctx


def assert_refused(ctx, port):
    """The proxy at port refuses the client: the handshake fails or nothing comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with ctx.wrap_socket(s) as tls:
                tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert tls.recv(100) == b""
                raise ConnectionResetError("closed without an answer")


class Server(http.server.ThreadingHTTPServer):
    """socketserver's listen backlog is 5: a burst of connections beyond it waits for TCP
    retransmissions (seconds), which looks like a stuck proxy. Take them all."""
    request_queue_size = 1024


class Backend:
    """An HTTP server, and a raw TCP echo/sink server for byte-exact checks."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = Server(("127.0.0.1", 0), Handler)
        self.http_port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(1024)
        self.tcp_port = self.tcp.getsockname()[1]
        threading.Thread(target=self.hash_server, daemon=True).start()

    def hash_server(self):
        """Reads everything, then answers with its SHA-256 and 1 MiB of known bytes."""
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self.hash_one, args=(conn,), daemon=True).start()

    @staticmethod
    def hash_one(conn):
        h = hashlib.sha256()
        with conn:
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                h.update(data)
            conn.sendall(h.hexdigest().encode() + b"\n" + bytes(range(256)) * 4096)

    def stop(self):
        self.http.shutdown()
        self.tcp.close()


class Proxy:
    def __init__(self, cadir, sa, static, token, extra_env=None, config=""):
        self.admin = free_port()
        self.log_path = cadir.path / f"proxy-{sa}-{time.monotonic_ns()}.log"
        cfg = cadir.path / f"proxy-{sa}-{time.monotonic_ns()}.yaml"
        cfg.write_text("listeners:\n  capture: false\naccess_log: true\n"
                       "log:\n  format: json\n" + config)
        env = dict(os.environ, MESHLET_TRUST_BUNDLE=cadir.root.read_text(),
                   MESHLET_TRUST_DOMAIN=cadir.td, MESHLET_POD_NAMESPACE="default",
                   MESHLET_SERVICE_ACCOUNT=sa, MESHLET_TOKEN_FILE=str(token),
                   **(extra_env or {}))
        self.proc = subprocess.Popen(daemon_argv(
            [binary("meshlet-proxy"), "run", "--config", str(cfg), "--static", static,
             "--admin-port", str(self.admin)], "meshlet-proxy"),
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))

    def ready(self):
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/healthz/ready",
                                        timeout=2 * SLOW) as r:
                return r.status == 200
        except Exception:
            return False

    def log(self):
        return [json.loads(l) for l in self.log_path.read_text().splitlines() if l.startswith("{")]

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(timeout=15 * SLOW)


def start_ca(path, sas):
    """A meshlet-ca serving from path, a token file for each service account, and the
    environment that points a proxy at the CA: (CADir, CAServer, {sa: token path}, env)."""
    d = CADir(path)
    ca = CAServer(d)
    tokens = {}
    for sa in sas:
        tokens[sa] = d.path / f"token-{sa}"
        tokens[sa].write_text(d.token(sa=sa) + "\n")
    return d, ca, tokens, {"MESHLET_CA_ADDRESS": f"localhost:{ca.port}"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    d, ca, tokens, ca_env = start_ca(tmp_path_factory.mktemp("mesh"), ("client", "server"))
    backend = Backend()
    ports = {"b_http": free_port(), "b_tcp": free_port(), "a_http": free_port(),
             "a_tcp": free_port()}
    server = Proxy(d, "server", f"terminate 127.0.0.1:{ports['b_http']} "
                   f"127.0.0.1:{backend.http_port}", tokens["server"], ca_env)
    server_tcp = Proxy(d, "server", f"terminate 127.0.0.1:{ports['b_tcp']} "
                       f"127.0.0.1:{backend.tcp_port}", tokens["server"], ca_env)
    client = Proxy(d, "client", f"originate 127.0.0.1:{ports['a_http']} "
                   f"127.0.0.1:{ports['b_http']} spiffe://example.org/ns/default/sa/server",
                   tokens["client"], ca_env)
    client_tcp = Proxy(d, "client", f"originate 127.0.0.1:{ports['a_tcp']} "
                       f"127.0.0.1:{ports['b_tcp']}", tokens["client"], ca_env)
    procs = [server, server_tcp, client, client_tcp]
    for p in procs:
        assert wait_for(p.ready), p.log_path.read_text()
    yield {"dir": d, "ca": ca, "backend": backend, "ports": ports, "server": server,
           "client": client, "tokens": tokens, "ca_env": ca_env}
    for p in procs:
        assert p.stop() == 0, p.log_path.read_text()
    backend.stop()
    ca.stop()


def test_http_through_the_pair(mesh):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{mesh['ports']['a_http']}/hello",
                                timeout=5) as r:
        assert json.loads(r.read()) == {"path": "/hello"}
    assert wait_for(lambda: all(any(l["msg"] == "connection" for l in mesh[p].log())
                                for p in ("server", "client")))
    srv = [l for l in mesh["server"].log() if l["msg"] == "connection"][-1]
    cli = [l for l in mesh["client"].log() if l["msg"] == "connection"][-1]
    assert srv["peer"] == "spiffe://example.org/ns/default/sa/client" and srv["mode"] == "mtls"
    assert cli["peer"] == "spiffe://example.org/ns/default/sa/server" and cli["result"] == "ok"


def test_later_connections_resume_the_tls_session(mesh):
    """The client proxy keeps the server proxy's session ticket and resumes with it, when
    it makes a new TLS connection: with protocol 1 (tunnel.reuse: false), every time."""
    import urllib.request
    d, port = mesh["dir"], free_port()
    client = Proxy(d, "client", f"originate 127.0.0.1:{port} "
                   f"127.0.0.1:{mesh['ports']['b_http']}", mesh["tokens"]["client"],
                   mesh["ca_env"], config="tunnel:\n  reuse: false\n")
    try:
        assert wait_for(client.ready)
        for i in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/s{i}", timeout=5) as r:
                assert r.status == 200
        assert wait_for(lambda: len([l for l in client.log()
                                     if l["msg"] == "connection"]) >= 3)
        lines = [l for l in client.log() if l["msg"] == "connection"]
        assert not any(l["reused"] for l in lines), lines
        assert any(l["resumed"] for l in lines[-2:]), lines[-3:]
        assert all(l["peer"] == "spiffe://example.org/ns/default/sa/server" for l in lines)
    finally:
        assert client.stop() == 0


def test_one_gib_byte_for_byte_and_half_close(mesh):
    """The client shuts down its write side and still gets the whole answer. Under valgrind
    (4 MB/s) 16 MiB: enough to fill every buffer and exercise back-pressure."""
    h = hashlib.sha256()
    chunk = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", mesh["ports"]["a_tcp"]), timeout=60) as s:
        for _ in range(16 if VALGRIND else 1024):
            s.sendall(chunk)
            h.update(chunk)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            data = s.recv(1 << 16)
            if not data:
                break
            answer += data
    digest, _, rest = answer.partition(b"\n")
    assert digest.decode() == h.hexdigest()
    assert rest == bytes(range(256)) * 4096


def test_a_client_certificate_from_another_ca_is_refused(mesh, tmp_path):
    other = CADir(tmp_path / "other")
    r = run([binary("meshlet-ca"), "issue", "--dir", str(other.ca), "--spiffe-id",
             "spiffe://example.org/ns/default/sa/intruder", "--out", str(tmp_path / "intruder")])
    assert r.returncode == 0, r.stderr
    ctx = client_context(mesh["dir"].root, tmp_path / "intruder.crt", tmp_path / "intruder.key")
    assert_refused(ctx, mesh["ports"]["b_http"])


def test_plaintext_to_a_terminating_listener_is_refused(mesh):
    with socket.create_connection(("127.0.0.1", mesh["ports"]["b_http"]), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        except ConnectionResetError:
            pass
        assert b"HTTP/" not in data


def test_another_trust_domain_is_refused(mesh, tmp_path):
    """A proxy of trust domain other.org, with a valid chain from our CA's point of view
    of nothing: it cannot even get a certificate from our CA, so it brings its own CA."""
    other = CADir(tmp_path / "other", td="other.org")
    r = run([binary("meshlet-ca"), "issue", "--dir", str(other.ca), "--spiffe-id",
             "spiffe://other.org/ns/default/sa/client", "--out", str(tmp_path / "o")])
    assert r.returncode == 0
    # Trust both roots, so that only the trust domain check can refuse it.
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(mesh["dir"].root.read_text() + other.root.read_text())
    ctx = client_context(bundle, tmp_path / "o.crt", tmp_path / "o.key")
    assert_refused(ctx, mesh["ports"]["b_http"])


@needs_speed("1,000 requests 100 at a time: their TLS handshakes queue past the "
             "proxy's 10 s handshake deadline")
def test_many_concurrent_connections(mesh):
    import concurrent.futures
    import urllib.request

    def one(i):
        with urllib.request.urlopen(f"http://127.0.0.1:{mesh['ports']['a_http']}/c{i}",
                                    timeout=20) as r:
            return json.loads(r.read())["path"] == f"/c{i}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=100) as ex:
        assert all(ex.map(one, range(1000)))


def test_not_ready_until_the_ca_comes_up(mesh, tmp_path):
    port = free_port()
    p = Proxy(mesh["dir"], "client", f"originate 127.0.0.1:{free_port()} 127.0.0.1:1",
              mesh["tokens"]["client"], {"MESHLET_CA_ADDRESS": f"localhost:{port}"})
    try:
        # Started, signals handled (a SIGTERM before that would kill it, under valgrind).
        assert wait_for(lambda: any(l["msg"] == "admin listening" for l in p.log()))
        time.sleep(1.5)
        assert not p.ready()
        assert p.proc.poll() is None
    finally:
        assert p.stop() == 0


def test_metrics(mesh):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{mesh['client'].admin}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    mtls = [l for l in text.splitlines()
            if l.startswith('meshlet_proxy_mtls_connections_total{listener="originate"}')]
    assert int(mtls[0].split()[-1]) >= 1
    expiry = [l for l in text.splitlines() if l.startswith("meshlet_proxy_svid_expiry_seconds ")]
    assert 0 < float(expiry[0].split()[1]) <= 3600


def test_an_expired_client_certificate_is_refused(mesh, tmp_path):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    d = mesh["dir"]
    ca_cert = x509.load_pem_x509_certificate(d.root.read_bytes())
    ca_key = serialization.load_pem_private_key((d.ca / "root-key.pem").read_bytes(), None)
    key = ec_key()
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshlet")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=2))
            .not_valid_after(now - datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                "spiffe://example.org/ns/default/sa/client")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "old.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(tmp_path / "old.key", key)
    ctx = client_context(d.root, tmp_path / "old.crt", tmp_path / "old.key")
    before = len([l for l in mesh["server"].log() if l.get("result") == "handshake_failed"])
    assert_refused(ctx, mesh["ports"]["b_http"])
    assert wait_for(lambda: len([l for l in mesh["server"].log()
                                 if l.get("result") == "handshake_failed"]) > before)


def test_certificates_rotate_under_load_without_failures(mesh, tmp_path):
    """30-second certificates: the pair renews at about half of that while requests flow."""
    import urllib.request
    d = mesh["dir"]
    b_port, a_port = free_port(), free_port()
    cfg = "identity:\n  ttl: 30s\n"
    server = Proxy(d, "server", f"terminate 127.0.0.1:{b_port} "
                   f"127.0.0.1:{mesh['backend'].http_port}", mesh["tokens"]["server"],
                   mesh["ca_env"], config=cfg)
    client = Proxy(d, "client", f"originate 127.0.0.1:{a_port} 127.0.0.1:{b_port}",
                   mesh["tokens"]["client"], mesh["ca_env"], config=cfg)
    try:
        assert wait_for(server.ready) and wait_for(client.ready)
        failures = requests = 0
        deadline = time.time() + 22
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{a_port}/r{requests}",
                                            timeout=5) as r:
                    assert r.status == 200
            except Exception:
                failures += 1
            requests += 1
            time.sleep(0.02)
        issued = [l for l in server.log() if l["msg"] == "SVID issued"]
        assert len(issued) >= 2, "no rotation in 22 s with 30 s certificates"
        assert issued[0]["serial"] != issued[-1]["serial"]
        assert len([l for l in client.log() if l["msg"] == "SVID issued"]) >= 2
        assert failures == 0 and requests > 100
        # Within 15 s of a certificate's end no connection starts on a kept TLS connection:
        # each then gets one of its own, which must close with it, not linger idle.
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{b_port} )"],
                             capture_output=True, text=True, check=True).stdout
        assert len(out.splitlines()) <= 2, out
    finally:
        assert server.stop() == 0
        assert client.stop() == 0


@pytest.mark.parametrize("env,args,words", [
    ({"MESHLET_TRUST_DOMAIN": "Bad_TD"}, [], "MESHLET_TRUST_DOMAIN: \"Bad_TD\" is not a valid trust domain"),
    ({"MESHLET_CA_ADDRESS": "no-port"}, [], "MESHLET_CA_ADDRESS: \"no-port\" must be ADDRESS:PORT"),
    ({"MESHLET_LOG_LEVEL": "loud"}, [], "MESHLET_LOG_LEVEL: \"loud\" is not one of"),
    ({}, ["--static", "sideways 127.0.0.1:1 127.0.0.1:2"], "--static: \"sideways 127.0.0.1:1 127.0.0.1:2\" must be"),
    ({}, ["--static", "originate 127.0.0.1:1 127.0.0.1:2 http://x"], "not a SPIFFE ID"),
    ({"MESHLET_APP_PROBES": "{\"/app-health/web/livez\": {\"exec\": {}}}"}, [],
     "MESHLET_APP_PROBES: /app-health/web/livez: expected an httpGet or a tcpSocket"),
    ({"MESHLET_APP_PROBES": "not json"}, [], "MESHLET_APP_PROBES is not JSON"),
    ({"MESHLET_POD_NAMESPACE": ""}, [], "MESHLET_POD_NAMESPACE: has no value"),
    ({"MESHLET_SERVICE_RANGES": "10.96.0.0/33"}, [],
     'MESHLET_SERVICE_RANGES: "10.96.0.0/33" is not a list of CIDRs: "10.96.0.0/33" has a '
     'prefix length over 32'),
    ({"MESHLET_SERVICE_RANGES": "10.96.0.0/12,svc"}, [],
     'MESHLET_SERVICE_RANGES: "10.96.0.0/12,svc" is not a list of CIDRs: "svc" is not a CIDR'),
])
def test_bad_settings_are_refused_with_their_source(tmp_path, env, args, words):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("identity:\n  mode: files\n  cert_file: /nonexistent.crt\n"
                   "  key_file: /nonexistent.key\n  bundle_file: /nonexistent.pem\n"
                   "listeners:\n  capture: false\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESHLET_")}
    r = subprocess.run([binary("meshlet-proxy"), "run", "--config", str(cfg),
                        "--admin-port", str(free_port())] + args,
                       env=dict(base, **env), capture_output=True, text=True, timeout=20)
    assert r.returncode in (1, 2), r.stderr
    assert words in r.stderr, r.stderr
