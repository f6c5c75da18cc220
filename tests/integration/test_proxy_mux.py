# SPDX-License-Identifier: Apache-2.0
"""Tunnel protocol 3 ("meshlet/3"): a client-side proxy carries all its application
connections to a peer proxy at once, as streams, on one mutual TLS connection. Real
proxies on loopback with identities from a real meshlet-ca, and a client of protocol 3
written here from docs/proxy.md and proxy/mux.h, to check the wire format
independently."""
import hashlib
import http.client
import http.server
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from conftest import SLOW, binary, run
from test_proxy_run import Backend, Proxy, Server, free_port, start_ca, wait_for
from test_proxy_tunnel import SERVER_ID, Pair

CLIENT_ID = "spiffe://example.org/ns/default/sa/client"

# The wire format (docs/proxy.md, proxy/mux.h).
DATA, OPEN, END, RESET, WINDOW, GOAWAY, STOP = range(7)
FRAME_MAX = 16384
STREAM_WINDOW = 256 * 1024


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d, ca, tokens, ca_env = start_ca(tmp_path_factory.mktemp("mux"), ("client", "server"))
    backend = Backend()
    yield {"dir": d, "ca": ca, "backend": backend, "tokens": tokens, "ca_env": ca_env}
    backend.stop()
    ca.stop()


def connection_lines(proxy):
    return [l for l in proxy.log() if l["msg"] == "connection"]


def established_to(port):
    """The established TCP connections on this host whose destination port is port (the
    client ends of connections to a listener there)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return [l for l in out.splitlines() if l.strip()]


class KeepAliveBackend:
    """An HTTP/1.1 server that keeps connections alive, and counts the connections and
    requests it served."""

    def __init__(self):
        outer = self
        self.lock = threading.Lock()
        self.clients = set()
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.clients.add(self.client_address)
                    outer.requests += 1
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class KeepAliveServer(Server):
            block_on_close = False

        self.http = KeepAliveServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self):
        self.http.shutdown()
        self.http.server_close()


class Flood:
    """A TCP server that sends each connection it accepts `data`, then closes it; sent[i]
    is how much of it connection i (in accept order) has handed to the kernel so far."""

    def __init__(self, data):
        self.data = data
        self.sock = socket.socket()
        # Inherited by each connection: the kernel holds little of what it has not sent.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sent = []
        self.conns = []
        self.threads = []
        self.errors = []
        self.accepter = threading.Thread(target=self.accept, daemon=True)
        self.accepter.start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.sent.append(0)
            t = threading.Thread(target=self.send, args=(conn, len(self.sent) - 1),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def send(self, conn, i):
        view = memoryview(self.data)
        try:
            while self.sent[i] < len(view):
                self.sent[i] += conn.send(view[self.sent[i]:self.sent[i] + 65536])
            conn.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append((i, repr(e)))

    def stop(self):
        shutdown_quietly(self.sock)
        self.sock.close()
        for c in self.conns:
            shutdown_quietly(c)  # wakes a sender blocked on a full socket
        for t in [self.accepter] + self.threads:
            t.join(5)
        for c in self.conns:
            c.close()


class Sink:
    """A TCP server that greets each connection it accepts and then reads nothing: its
    receive buffer is tiny, so what a client sends piles up in front of it."""

    def __init__(self, greeting=b"hi\n"):
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            try:
                conn.sendall(self.greeting)
            except OSError:
                pass

    def stop(self):
        shutdown_quietly(self.sock)
        self.sock.close()
        self.thread.join(5)
        for c in self.conns:
            c.close()


class Answerer:
    """An HTTP/1.1 server of one connection at a time, written out by hand: `accepted` is
    set once a connection came (the proxy connected to the application), then it reads a
    request head and answers it with connection: close."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            self.accepted.set()
            with conn:
                conn.settimeout(10)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    if b"\r\n\r\n" in head:
                        path = head.split(b" ")[1].decode()
                        body = json.dumps({"path": path}).encode()
                        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n"
                                     b"connection: close\r\n\r\n%s" % (len(body), body))
                except OSError:
                    pass

    def stop(self):
        shutdown_quietly(self.sock)
        self.sock.close()
        self.thread.join(5)


def shutdown_quietly(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# 1. Many application connections at once on one TLS connection.

def test_concurrent_connections_share_one_tls_connection(env):
    """20 application connections opened at once through a client proxy (originate) to a
    server proxy (terminate), each with 3 keep-alive HTTP/1.1 requests, all answered
    right: the client proxy made exactly one TCP connection to the server proxy (the
    connections that came while it was being made waited for it), carrying 20 streams,
    and the server logged 20 connections of the client's SPIFFE ID."""
    n, rounds = 20, 3
    backend = KeepAliveBackend()
    pair = Pair(env, backend.port)
    socks = []
    try:
        # All 20 connect in a burst, before any of them sends a byte.
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", pair.a_port), timeout=10))
        results, errors = {}, []
        requested = threading.Barrier(n + 1, timeout=20 * SLOW)

        def one(i):
            try:
                c = http.client.HTTPConnection("127.0.0.1", pair.a_port, timeout=10)
                c.sock = socks[i]
                for k in range(rounds):
                    c.request("GET", f"/c{i}-{k}")
                    r = c.getresponse()
                    results[(i, k)] = (r.status, r.version, r.read())
            except Exception as e:  # the main thread reports it
                errors.append((i, repr(e)))
            finally:
                try:
                    requested.wait()
                except threading.BrokenBarrierError:
                    pass

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        requested.wait()
        assert errors == [], errors
        for i in range(n):
            for k in range(rounds):
                status, version, body = results[(i, k)]
                assert (status, version) == (200, 11), (i, k, status, version, body)
                assert json.loads(body) == {"path": f"/c{i}-{k}"}
        # Keep-alive really kept each application connection: 20 of them at the backend.
        assert len(backend.clients) == n and backend.requests == n * rounds
        # While all 20 are still open: one TCP connection from the client proxy.
        conns = established_to(pair.b_port)
        assert len(conns) == 1, conns
        # The server counts a stream as it takes it.
        assert pair.streams(pair.server) == {"new": 1, "reused": n - 1}
        for t in threads:
            t.join(5)
        for s in socks:
            s.close()
        socks = []
        assert wait_for(lambda: len(connection_lines(pair.server)) == n)
        assert wait_for(lambda: len(connection_lines(pair.client)) == n)
        # The client counts a stream as it ends.
        assert pair.streams(pair.client) == {"new": 1, "reused": n - 1}
        assert pair.streams(pair.server) == {"new": 1, "reused": n - 1}
        assert len(established_to(pair.b_port)) == 1  # kept for later connections
        lines = connection_lines(pair.server)
        assert all(l["peer"] == CLIENT_ID and l["mode"] == "mtls" and l["result"] == "ok"
                   for l in lines), lines
        assert sorted(l["reused"] for l in lines) == [False] + [True] * (n - 1), lines
        assert all(l["peer"] == SERVER_ID and l["result"] == "ok"
                   for l in connection_lines(pair.client)), connection_lines(pair.client)
    finally:
        for s in socks:
            s.close()
        pair.stop()
        backend.stop()


# 2. Flow control is per stream.

def read_all(sock, limit, pair=None):
    """(bytes, sha256) of what sock reads to its end; a reset fails the test with why the
    proxies of pair say it ended."""
    h, n = hashlib.sha256(), 0
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            if pair is None:
                raise
            chunk = None
        if chunk is None:
            time.sleep(0.2)  # the proxies' lines are written as their streams end
            pytest.fail(f"reset after {n} bytes; client proxy: "
                        f"{[l['reason'] for l in connection_lines(pair.client)]}, server "
                        f"proxy: {[l['reason'] for l in connection_lines(pair.server)]}")
        if not chunk:
            return n, h.hexdigest()
        n += len(chunk)
        h.update(chunk)
        assert n <= limit, f"more than the {limit} bytes sent"


def test_a_slow_reader_does_not_stall_other_streams(env):
    """Connection A reads nothing: its stream stalls once its window (256 KiB) and the
    socket buffers around it are full, and the application behind it can no longer send.
    Meanwhile connection B, a stream on the same TLS connection, downloads 8 MiB within a
    few seconds, byte for byte. Then A reads its 8 MiB, byte for byte: nothing of it was
    lost or reordered while it waited."""
    size = 8 << 20
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    flood = Flood(data)
    pair = Pair(env, flood.port)
    a = b = None
    try:
        a = socket.socket()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        a.settimeout(30)
        a.connect(("127.0.0.1", pair.a_port))
        assert wait_for(lambda: len(flood.sent) == 1)
        # A's backend sends until the whole path to A is full, then stops.
        last, still_since, deadline = -1, time.time(), time.time() + 10 * SLOW
        while time.time() < deadline:
            now = flood.sent[0]
            if now != last:
                last, still_since = now, time.time()
            elif time.time() - still_since > 0.5:
                break
            time.sleep(0.05)
        stalled = flood.sent[0]
        assert 0 < stalled < size, f"A's stream never stalled: {stalled} bytes sent"

        b = socket.create_connection(("127.0.0.1", pair.a_port), timeout=30)
        start = time.time()
        got = read_all(b, size, pair)
        took = time.time() - start
        assert got == (size, digest)
        assert took < 5 * SLOW, f"B took {took:.1f} s"
        # A's application was still held up while B went through.
        assert flood.sent[0] < size, (stalled, flood.sent[0])
        assert len(flood.sent) == 2

        assert read_all(a, size, pair) == (size, digest)
        assert flood.errors == []
        # The server counts streams as it takes them, the client as they end.
        assert pair.streams(pair.server) == {"new": 1, "reused": 1}
        a.close()
        b.close()
        assert wait_for(lambda: len(connection_lines(pair.client)) == 2)
        assert pair.streams(pair.client) == {"new": 1, "reused": 1}
        assert len(established_to(pair.b_port)) == 1
    finally:
        for s in (a, b):
            if s is not None:
                s.close()
        pair.stop()
        flood.stop()


# 3. A client of protocol 3 written from the docs.

def frame(kind, stream, payload=b"", flags=0):
    return struct.pack(">BBHI", kind, flags, len(payload), stream) + payload


def preamble(port):
    """A tunnel preamble of version 3: magic, version, flags, port, no fields."""
    return b"MSHL" + bytes([3, 0]) + struct.pack(">HH", port, 0)


def data_frames(stream, data):
    return b"".join(frame(DATA, stream, data[i:i + FRAME_MAX])
                    for i in range(0, len(data), FRAME_MAX))


def get(path):
    return f"GET {path} HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n".encode()


def http_body(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1."), data
    assert b" 200 " in head.split(b"\r\n")[0], data
    return json.loads(body)


class Closed(Exception):
    """The proxy closed the connection: how says whether with close_notify ("clean") or
    without ("reset": a TCP reset, or an end of the stream without close_notify)."""

    def __init__(self, how):
        super().__init__(how)
        self.how = how


class Conn:
    """A TLS connection of protocol 3 to a server proxy, from our side: it checks every
    frame it reads against the format."""

    def __init__(self, tls):
        self.tls = tls
        self.buf = b""
        self.granted = {}  # stream: bytes the proxy granted in WINDOW frames
        self.goaways = []
        self.send_failed = False

    def send(self, *frames):
        self.tls.sendall(b"".join(frames))

    def try_send(self, *frames):
        """Sends frames to a proxy that may reset the connection meanwhile: False when it
        did. (OpenSSL then reads what it holds, and then nothing, as at a close_notify.)"""
        try:
            self.send(*frames)
            return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            self.send_failed = True
            return False

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.tls.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                raise Closed("reset")
            if not chunk:
                raise Closed("reset" if self.send_failed else "clean")
            self.buf += chunk

    def frame(self):
        """The next frame: (type, stream, payload), checked against the format."""
        self._fill(8)
        kind, flags, length, stream = struct.unpack(">BBHI", self.buf[:8])
        assert kind <= STOP, f"unknown frame type {kind}"
        assert flags == 0, f"frame of type {kind} with flags {flags:#x}"
        assert kind != OPEN, "a server sent OPEN"
        if kind == DATA:
            assert stream > 0 and 1 <= length <= FRAME_MAX, (kind, length, stream)
        elif kind in (END, RESET, STOP):
            assert stream > 0 and length == 0, (kind, length, stream)
        elif kind == WINDOW:
            assert stream > 0 and length == 4, (kind, length, stream)
        else:
            assert stream == 0 and length == 4, (kind, length, stream)
        self._fill(8 + length)
        payload, self.buf = self.buf[8:8 + length], self.buf[8 + length:]
        if kind == WINDOW:
            (v,) = struct.unpack(">I", payload)
            assert 1 <= v <= 2**31 - 1, v
            self.granted[stream] = self.granted.get(stream, 0) + v
        if kind == GOAWAY:
            self.goaways.append(struct.unpack(">I", payload)[0])
        return kind, stream, payload

    def streams(self, ids):
        """Reads frames until each stream of ids ended from the proxy's side (END or
        RESET): {id: (its DATA concatenated, END or RESET)}."""
        out = {i: [b"", None] for i in ids}
        while any(v[1] is None for v in out.values()):
            kind, stream, payload = self.frame()
            if kind in (WINDOW, GOAWAY):
                continue
            assert stream in out, f"a frame of type {kind} for stream {stream}"
            assert out[stream][1] is None, f"a frame of type {kind} after the end of {stream}"
            if kind == DATA:
                out[stream][0] += payload
            elif kind in (END, RESET):
                out[stream][1] = kind
            else:
                raise AssertionError(f"frame of type {kind} for stream {stream}")
        return {i: tuple(v) for i, v in out.items()}

    def until_data(self, stream, want):
        """Reads frames until the stream's DATA so far is want."""
        got = b""
        while got != want:
            kind, s, payload = self.frame()
            if kind == DATA and s == stream:
                got += payload
                assert want.startswith(got), got
            elif kind not in (WINDOW, GOAWAY):
                raise AssertionError(f"frame of type {kind} for stream {s}")

    def expect_reset(self, seconds=5):
        """The proxy resets the connection (a protocol error) within seconds: not an
        orderly close with close_notify, and not left open."""
        self.tls.settimeout(seconds * SLOW)
        try:
            while True:
                self.frame()
        except Closed as c:
            assert c.how == "reset", "closed with close_notify after a protocol error"
        except TimeoutError:
            pytest.fail(f"the proxy kept the connection open {seconds} s after a "
                        f"protocol error")

    def close(self):
        self.tls.close()


@pytest.fixture(scope="module")
def client_ctx(env, tmp_path_factory):
    """TLS 1.3 with a certificate of the trust domain (CLIENT_ID), offering meshlet/3."""
    out = tmp_path_factory.mktemp("p3") / "client"
    r = run([binary("meshlet-ca"), "issue", "--dir", str(env["dir"].ca), "--spiffe-id",
             CLIENT_ID, "--out", str(out)])
    assert r.returncode == 0, r.stderr
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(str(env["dir"].root))
    ctx.load_cert_chain(f"{out}.crt", f"{out}.key")
    ctx.set_alpn_protocols(["meshlet/3"])
    return ctx


class Terminate:
    """A server-side proxy (a static terminate listener to upstream), and connections of
    protocol 3 to it."""

    def __init__(self, env, ctx, upstream, config="timeouts:\n  drain: 5s\n"):
        self.ctx = ctx
        self.upstream = upstream
        self.port = free_port()
        self.proxy = Proxy(env["dir"], "server", f"terminate 127.0.0.1:{self.port} "
                           f"127.0.0.1:{upstream}", env["tokens"]["server"], env["ca_env"],
                           config=config)
        self.conns = []
        assert wait_for(self.proxy.ready), self.proxy.log_path.read_text()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5 * SLOW)
        # A close without close_notify raises (SSLEOFError) instead of reading as the end.
        tls = self.ctx.wrap_socket(s, suppress_ragged_eofs=False)
        assert tls.version() == "TLSv1.3"
        assert tls.selected_alpn_protocol() == "meshlet/3"
        c = Conn(tls)
        self.conns.append(c)
        return c

    def pre(self):
        return preamble(self.upstream)

    def serves(self, path):
        """A new connection, one stream, one request: answered."""
        c = self.connect()
        c.send(frame(OPEN, 1, self.pre()), data_frames(1, get(path)), frame(END, 1))
        data, end = c.streams([1])[1]
        assert end == END and http_body(data) == {"path": path}
        c.close()

    def log(self):
        return self.proxy.log_path.read_text()

    def stop(self):
        for c in self.conns:
            c.close()
        assert self.proxy.stop() == 0, self.log()


@pytest.fixture
def term(env, client_ctx):
    """A server-side proxy in front of the HTTP backend."""
    t = Terminate(env, client_ctx, env["backend"].http_port)
    yield t
    t.stop()


def test_wire_two_streams_at_once(term):
    """Two streams opened at once, their requests interleaved frame by frame (each frame
    its own TLS record): each stream's DATA is its own HTTP response, each ends with END,
    every frame the proxy sends is well-formed, and the connection carries a third stream
    afterwards. The server logs each stream as a connection of the client's identity."""
    c = term.connect()
    c.send(frame(OPEN, 1, term.pre()), frame(OPEN, 2, term.pre()))
    reqs = {1: get("/one"), 2: get("/two")}
    for k in range(0, max(len(r) for r in reqs.values()), 7):
        for sid, req in reqs.items():
            if req[k:k + 7]:
                c.send(frame(DATA, sid, req[k:k + 7]))
    c.send(frame(END, 1))
    c.send(frame(END, 2))
    got = c.streams([1, 2])
    assert got[1][1] == END and http_body(got[1][0]) == {"path": "/one"}
    assert got[2][1] == END and http_body(got[2][0]) == {"path": "/two"}
    assert c.goaways == []
    # Both over both ways: the connection is still there for the next one.
    c.send(frame(OPEN, 3, term.pre()), data_frames(3, get("/three")), frame(END, 3))
    data, end = c.streams([3])[3]
    assert end == END and http_body(data) == {"path": "/three"}
    assert wait_for(lambda: len(connection_lines(term.proxy)) == 3)
    lines = connection_lines(term.proxy)
    assert all(l["peer"] == CLIENT_ID and l["result"] == "ok" and l["mode"] == "mtls"
               for l in lines), lines
    assert sorted(l["reused"] for l in lines) == [False, True, True], lines


@pytest.mark.parametrize("first,second", [(1, 1), (2, 1)])
def test_wire_stream_ids_must_go_up(term, first, second):
    """An OPEN whose stream ID does not go up is a protocol error: the proxy resets the
    TLS connection (no close_notify), and serves the next connection."""
    c = term.connect()
    c.send(frame(OPEN, first, term.pre()), frame(DATA, first, b"GET /x"))
    time.sleep(0.1)  # the first is taken on its own
    c.try_send(frame(OPEN, second, term.pre()))
    c.expect_reset()
    term.serves("/after")


def test_wire_data_beyond_the_window(env, client_ctx):
    """A stream's DATA sent without regard to the window, to an application that reads
    nothing: once the proxy can pass no more of it on (it granted what it passed on), the
    bytes beyond 256 KiB plus its grants are a protocol error and the proxy resets the
    connection. Another connection, open all along, keeps its stream and takes new
    ones."""
    sink = Sink()
    t = Terminate(env, client_ctx, sink.port)
    try:
        good = t.connect()
        good.send(frame(OPEN, 1, t.pre()))
        good.until_data(1, b"hi\n")

        bad = t.connect()
        bad.send(frame(OPEN, 1, t.pre()))
        bad.until_data(1, b"hi\n")  # the stream reached the application
        # The proxy may pass some on into its socket to the application (the kernel's
        # buffers, up to a few MiB), granting it back: send more than all of that, without
        # reading the grants.
        chunk, sent, limit = data_frames(1, b"x" * (256 * 1024)), 0, 16 << 20
        bad.tls.settimeout(5 * SLOW)
        try:
            while sent < limit and bad.try_send(chunk):
                sent += 256 * 1024
        except TimeoutError:
            pytest.fail(f"the proxy stopped reading the connection after {sent} bytes")
        assert sent < limit, "the proxy took 16 MiB for an application that reads nothing"
        bad.expect_reset()
        # What the proxy granted does not cover what was sent: the reset was due.
        assert STREAM_WINDOW + bad.granted.get(1, 0) < sent + 256 * 1024, bad.granted
        # Its stream's line, written once the relay behind it ended, says why.
        assert wait_for(lambda: any(l["reason"] == "tunnel data beyond the stream's window"
                                    and l["result"] == "reset"
                                    for l in connection_lines(t.proxy))), t.log()

        # The other connection was not touched: its stream, and a new one.
        good.send(frame(OPEN, 3, t.pre()))
        good.until_data(3, b"hi\n")
        good.send(frame(RESET, 1), frame(RESET, 3))
        c = t.connect()
        c.send(frame(OPEN, 1, t.pre()))
        c.until_data(1, b"hi\n")
        c.send(frame(RESET, 1))
    finally:
        t.stop()
        sink.stop()


@pytest.mark.parametrize("bad", [
    pytest.param(lambda pre: frame(OPEN, 1, pre) + frame(DATA, 1, b"GET", flags=1),
                 id="flags-on-data"),
    pytest.param(lambda pre: frame(OPEN, 1, pre, flags=0x80), id="flags-on-open"),
    pytest.param(lambda pre: frame(OPEN, 1, pre) + frame(7, 1), id="type-7"),
    pytest.param(lambda pre: frame(7, 0, b"\0\0\0\0"), id="type-7-first"),
])
def test_wire_malformed_frames_reset_the_connection(term, bad):
    """A frame with a flag set, or of a type that does not exist, is a protocol error: the
    proxy resets the connection, and serves the next one."""
    c = term.connect()
    c.try_send(bad(term.pre()))
    c.expect_reset()
    term.serves("/after")


def test_wire_goaway_on_drain(env, client_ctx):
    """SIGTERM while a stream is open: the proxy sends GOAWAY naming the last stream it
    took (the open one), that stream still finishes (its request goes through, its
    response and END come back), then the proxy closes with close_notify and exits 0,
    long before timeouts.drain."""
    app = Answerer()
    t = Terminate(env, client_ctx, app.port, config="timeouts:\n  drain: 20s\n")
    stopper = None
    try:
        c = t.connect()
        c.send(frame(OPEN, 1, t.pre()), frame(DATA, 1, b"GET /drain HTTP/1.1\r\n"))
        assert app.accepted.wait(5 * SLOW)  # the stream was taken: it reached the app
        result = {}

        def stop():
            start = time.time()
            result["rc"] = t.proxy.stop()
            result["took"] = time.time() - start

        stopper = threading.Thread(target=stop, daemon=True)
        stopper.start()
        c.tls.settimeout(5 * SLOW)
        kind, stream, payload = c.frame()
        assert (kind, stream, payload) == (GOAWAY, 0, struct.pack(">I", 1))
        c.send(frame(DATA, 1, b"Host: backend\r\nConnection: close\r\n\r\n"), frame(END, 1))
        data, end = c.streams([1])[1]
        assert end == END and http_body(data) == {"path": "/drain"}
        # No stream left: the orderly close.
        with pytest.raises(Closed) as closed:
            c.frame()
        assert closed.value.how == "clean", "no close_notify after the last stream"
        stopper.join(15 * SLOW)
        assert result.get("rc") == 0, t.log()
        assert result["took"] < 10, result
        assert app.count == 1
    finally:
        if stopper is not None:
            stopper.join(15 * SLOW)
        if t.proxy.proc.poll() is None:
            t.proxy.proc.kill()
            t.proxy.proc.wait()
        for conn in t.conns:
            conn.close()
        app.stop()
