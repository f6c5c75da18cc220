# SPDX-License-Identifier: Apache-2.0
"""Faults against meshlet-ca and meshlet-webhook (issue 8): slow clients that send the TLS
handshake or the request head a byte a second are cut off while everyone else is served,
and 1,000 TLS connections open at once each get their answer."""
import asyncio
import json
import os
import resource
import select
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cahelp import CADir, CAServer, csr_pem, ec_key
from test_webhook import Webhook, pod, review

# The daemons' timeouts.request in the slow-client test: long enough that a request made
# while every slow client is trickling has room to finish, short enough to keep the test
# quick. The slow clients send a byte a second, well inside it: libmicrohttpd's idle timer,
# which restarts with each byte of a request, would never fire on a trickled head alone.
TIMEOUT = 5
SLOW = {"hello": 20, "head": 20, "silent": 5}  # slow clients of each kind, all at once
CLOSE_BOUND = 30      # seconds from connecting by which each must have been cut off
SLOW_LIMIT = 60       # a slow client gives up (and the test fails) after this long
CONCURRENT = 1000
CUT_LOG = "connection closed: no whole request in time"
SPIFFE_ID = "spiffe://example.org/ns/default/sa/web"


@pytest.fixture(scope="module", autouse=True)
def nofile():
    """Room for 1,000 sockets in this process and in the daemons, which inherit it: the
    soft RLIMIT_NOFILE raised to 4096 (root may raise the hard limit too). Yields the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft == resource.RLIM_INFINITY or soft >= want:
        yield soft
        return
    limit = hard
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, want))
            limit = want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, limit))
    yield want
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def sockets_of(pid):
    """The sockets a process holds open: its listener and its connections."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass
    return n


def open_files_limit(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open files limit for {pid}")


class CATarget:
    """meshlet-ca with a config file; a real request is an issuance, checked in full."""
    name = "meshlet-ca"

    def __init__(self, path, config):
        self.dir = CADir(path)
        cfg = self.dir.path / "ca.yaml"
        cfg.write_text(config + "rate_limit:\n  per_second: 0\n")
        self.server = CAServer(self.dir, config=cfg)
        self.port, self.pid, self.root = self.server.port, self.server.proc.pid, self.dir.root
        self.key = ec_key()
        self.csr = csr_pem(self.key)
        self.token = self.dir.token()

    def log(self):
        return self.server.log()

    def real(self):
        """One issuance on a new connection: (True, "") or (False, what was wrong)."""
        try:
            status, _, doc = self.server.certify(self.token, self.csr)
        except Exception as e:
            return False, repr(e)
        return self.check(status, doc, self.key)

    @staticmethod
    def check(status, doc, key):
        if status != 200 or not isinstance(doc, dict):
            return False, f"{status} {doc!r}"[:300]
        if doc.get("spiffe_id") != SPIFFE_ID:
            return False, f"spiffe_id {doc.get('spiffe_id')!r}"
        leaf = x509.load_pem_x509_certificate(doc["cert_chain"][0].encode())
        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if leaf.public_key().public_bytes(*fmt) != key.public_key().public_bytes(*fmt):
            return False, "the certificate is not for the CSR's key"
        return True, ""

    def issued(self):
        return sum(1 for r in self.server.audit() if r["outcome"] == "issued")

    def stop(self):
        assert self.server.stop() == 0, self.log()


class WebhookTarget:
    """meshlet-webhook with a config file; a real request is an AdmissionReview of a pod."""
    name = "meshlet-webhook"

    def __init__(self, path, config):
        self.dir = CADir(path)
        self.hook = Webhook(self.dir, config)
        self.port, self.pid, self.root = self.hook.port, self.hook.proc.pid, self.dir.root

    def log(self):
        return self.hook.log_path.read_text()

    def real(self):
        req = review(pod())
        try:
            status, data = self.hook.post(req)
            doc = json.loads(data)
        except Exception as e:
            return False, repr(e)
        return self.check(status, doc, req["request"]["uid"])

    @staticmethod
    def check(status, doc, uid):
        if status != 200 or not isinstance(doc, dict) or "response" not in doc:
            return False, f"{status} {doc!r}"[:300]
        resp = doc["response"]
        if resp.get("uid") != uid or resp.get("allowed") is not True or "patch" not in resp:
            return False, json.dumps(resp)[:300]
        return True, ""

    def injected(self):
        return sum(1 for r in self.hook.audit() if r["decision"] == "injected")

    def stop(self):
        self.hook.stop()


def start(kind, path, config):
    return (CATarget if kind == "ca" else WebhookTarget)(path, config)


def client_hello(ctx):
    """The bytes of a real TLS ClientHello for localhost, from a handshake never finished."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 200, hello[:8]
    return hello


class SlowClient(threading.Thread):
    """A client that sends a byte a second and notes when the server closes on it.
    hello: the TLS ClientHello, over plain TCP; head: after a complete TLS handshake, an
    HTTP request head; silent: connects and sends nothing."""

    HEAD = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 400 + b"\r\n\r\n"

    def __init__(self, kind, port, ctx, hello):
        super().__init__(daemon=True)
        self.kind, self.port, self.ctx = kind, port, ctx
        self.payload = hello if kind == "hello" else self.HEAD if kind == "head" else b""
        self.connected = self.ready = self.closed = None
        self.how = self.error = None
        self.local = None
        self.sent = 0
        self.received = b""

    def run(self):
        sock = None
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.connected = time.monotonic()
            self.local = f"127.0.0.1:{sock.getsockname()[1]}"
            if self.kind == "head":
                sock = self.ctx.wrap_socket(sock, server_hostname="localhost")
            sock.settimeout(10)
            self.ready = time.monotonic()
            self.trickle(sock)
        except Exception as e:
            self.error = repr(e)
        finally:
            if sock is not None:
                sock.close()

    def trickle(self, sock):
        while time.monotonic() - self.connected < SLOW_LIMIT:
            if self.sent < len(self.payload):
                try:
                    sock.sendall(self.payload[self.sent:self.sent + 1])
                    self.sent += 1
                except (OSError, ssl.SSLError) as e:
                    return self.close_seen(f"send: {e!r}")
            second = time.monotonic() + 1
            while (left := second - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    continue
                try:
                    data = sock.recv(4096)
                except ssl.SSLWantReadError:
                    continue
                except (OSError, ssl.SSLError) as e:
                    return self.close_seen(f"recv: {e!r}")
                if not data:
                    return self.close_seen("end of stream")
                self.received += data  # an alert or an error answer; the close follows

    def close_seen(self, how):
        self.closed = time.monotonic()
        self.how = how


def requests_meanwhile(target, stop, done):
    """Real requests one after another until stop is set: (start, end, ok, detail)."""
    while not stop.is_set():
        t0 = time.monotonic()
        ok, detail = target.real()
        done.append((t0, time.monotonic(), ok, detail))


@pytest.mark.parametrize("kind", ["ca", "webhook"])
def test_slow_clients_are_cut_off_while_others_are_served(tmp_path, kind):
    target = start(kind, tmp_path, f"timeouts:\n  request: {TIMEOUT}s\n")
    try:
        ok, detail = target.real()
        assert ok, detail
        time.sleep(0.5)  # the connection of that request is closed and gone
        baseline = sockets_of(target.pid)
        log_from = len(target.log())
        ctx = ssl.create_default_context(cafile=str(target.root))
        hello = client_hello(ctx)
        slow = [SlowClient(k, target.port, ctx, hello) for k, n in SLOW.items()
                for _ in range(n)]
        stop, done = threading.Event(), []
        meanwhile = threading.Thread(target=requests_meanwhile, args=(target, stop, done),
                                     daemon=True)
        for c in slow:
            c.start()
        meanwhile.start()
        for c in slow:
            c.join(SLOW_LIMIT + 30)
        stop.set()
        meanwhile.join(60)
        assert not meanwhile.is_alive(), "a request during the trickle never finished"

        for c in slow:
            assert c.error is None, (c.kind, c.error)
            assert c.closed is not None, (
                f"{target.name} never closed a {c.kind} slow client: it sent {c.sent} bytes "
                f"in {SLOW_LIMIT} s and is still connected")
            took = c.closed - c.connected
            assert TIMEOUT - 1 <= took <= CLOSE_BOUND, (c.kind, took, c.how)
        # The trickles really were a byte a second, each byte well inside the timeout.
        for c in slow:
            if c.kind != "silent":
                assert c.sent >= TIMEOUT - 2, (c.kind, c.sent)

        # Everyone else was served, every time, also while all the slow clients were on.
        failures = [d for d in done if not d[2]]
        assert not failures, failures[:3]
        all_on = max(c.ready for c in slow)
        first_cut = min(c.closed for c in slow)
        during = [d for d in done if d[0] >= all_on and d[1] <= first_cut]
        assert during, (f"no request was answered while all {len(slow)} slow clients were "
                        f"connected ({first_cut - all_on:.1f} s): {len(done)} requests in all")

        # A client that trickles its request head resets libmicrohttpd's idle timer with
        # every byte: only the server's deadline on the whole request cuts it, and says so.
        log = target.log()[log_from:]
        cut = {json.loads(line).get("client") for line in log.splitlines()
               if CUT_LOG in line}
        heads = {c.local for c in slow if c.kind == "head"}
        assert heads <= cut, (sorted(heads - cut)[:3], log[-2000:])

        # The server let go of every slow connection, and still serves.
        deadline = time.monotonic() + 20
        while sockets_of(target.pid) > baseline and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sockets_of(target.pid) <= baseline, (sockets_of(target.pid), baseline)
        ok, detail = target.real()
        assert ok, detail
        if kind == "ca":
            assert target.issued() == 2 + len(done)
        else:
            assert target.injected() == 2 + len(done)
    finally:
        target.stop()


def ca_request(target, i):
    key = ec_key()
    body = json.dumps({"csr": csr_pem(key)}).encode()
    head = ("POST /v1/certify HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            f"Authorization: Bearer {target.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body, lambda status, doc: CATarget.check(status, doc, key)


def webhook_request(target, i):
    req = review(pod(name=f"web-{i}"))
    body = json.dumps(req).encode()
    head = ("POST /inject?timeout=10s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    uid = req["request"]["uid"]
    return head + body, lambda status, doc: WebhookTarget.check(status, doc, uid)


async def exchange(reader, writer, data):
    """Sends one request on an open connection and reads its answer: (status, JSON)."""
    writer.write(data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(l.split(":", 1)[1]) for l in lines[1:]
                  if l.lower().startswith("content-length:"))
    body = await reader.readexactly(length)
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass
    return status, json.loads(body)


async def many(target, requests):
    ctx = ssl.create_default_context(cafile=str(target.root))

    async def connect():
        return await asyncio.open_connection("127.0.0.1", target.port, ssl=ctx,
                                             server_hostname="localhost",
                                             ssl_handshake_timeout=120)

    # Every connection is open, TLS and all, before any of them sends its request.
    conns = await asyncio.gather(*(connect() for _ in requests), return_exceptions=True)
    failed = [c for c in conns if isinstance(c, BaseException)]
    held = sockets_of(target.pid)
    assert not failed, (f"{len(failed)} of {len(requests)} connections failed: "
                        f"{failed[:3]!r}")
    answers = await asyncio.gather(
        *(exchange(r, w, data) for (r, w), (data, _) in zip(conns, requests)),
        return_exceptions=True)
    return held, answers


@pytest.mark.parametrize("kind", ["ca", "webhook"])
def test_a_thousand_concurrent_connections_are_all_answered(tmp_path, kind, nofile):
    if nofile < CONCURRENT + 200:
        pytest.skip(f"RLIMIT_NOFILE cannot be raised above {nofile}: too low for "
                    f"{CONCURRENT} connections")
    # The deadline is far off here: opening a thousand TLS connections on a slow machine
    # before the first request is sent must not count against them.
    target = start(kind, tmp_path, "timeouts:\n  request: 5m\n")
    try:
        assert open_files_limit(target.pid) > CONCURRENT + 100, open_files_limit(target.pid)
        make = ca_request if kind == "ca" else webhook_request
        requests = [make(target, i) for i in range(CONCURRENT)]
        held, answers = asyncio.run(asyncio.wait_for(many(target, requests), 300))
        # The server held them all at once: a socket each, besides its listener.
        assert held >= CONCURRENT + 1, held
        wrong = []
        for (_, check), answer in zip(requests, answers):
            if isinstance(answer, BaseException):
                wrong.append(repr(answer))
                continue
            ok, detail = check(*answer)
            if not ok:
                wrong.append(detail)
        assert not wrong, f"{len(wrong)} of {CONCURRENT} wrong: {wrong[:3]}"
        if kind == "ca":
            assert target.issued() == CONCURRENT
        else:
            assert target.injected() == CONCURRENT
        assert CUT_LOG not in target.log()
        ok, detail = target.real()
        assert ok, detail
    finally:
        target.stop()
