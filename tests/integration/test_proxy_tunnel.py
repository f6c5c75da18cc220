# SPDX-License-Identifier: Apache-2.0
"""Tunnel protocol 2 ("meshlet/2"): proxy pairs keep their mutual TLS connections and carry
one application connection after another on them. Real proxies on loopback with
identities from a real meshlet-ca, and a client of our own written from the protocol's
description (docs/proxy.md) to check the wire format independently."""
import contextlib
import json
import select
import socket
import ssl
import struct
import threading
import time
import urllib.request

import pytest

from conftest import binary, run
from test_proxy_run import Backend, Proxy, free_port, start_ca, wait_for

SERVER_ID = "spiffe://example.org/ns/default/sa/server"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d, ca, tokens, ca_env = start_ca(tmp_path_factory.mktemp("tunnel"), ("client", "server"))
    backend = Backend()
    yield {"dir": d, "ca": ca, "backend": backend, "tokens": tokens, "ca_env": ca_env}
    backend.stop()
    ca.stop()


class Pair:
    """A client-side proxy (originate) and a server-side proxy (terminate) to upstream."""

    def __init__(self, env, upstream, client_cfg="", server_cfg=""):
        self.b_port, self.a_port = free_port(), free_port()
        self.server = Proxy(env["dir"], "server", f"terminate 127.0.0.1:{self.b_port} "
                            f"127.0.0.1:{upstream}", env["tokens"]["server"], env["ca_env"],
                            config=server_cfg)
        self.client = Proxy(env["dir"], "client", f"originate 127.0.0.1:{self.a_port} "
                            f"127.0.0.1:{self.b_port} {SERVER_ID}", env["tokens"]["client"],
                            env["ca_env"], config=client_cfg)
        assert wait_for(self.server.ready), self.server.log_path.read_text()
        assert wait_for(self.client.ready), self.client.log_path.read_text()

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.a_port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def get_in_turn(self, prefix, n):
        """n requests, each once the one before has ended on the client side: its line is
        written as its stream ends and the connection is kept, so the next one finds it
        (without the wait it may come first, and get a new one)."""
        for i in range(n):
            assert self.get(f"{prefix}{i}") == {"path": f"{prefix}{i}"}
            assert wait_for(lambda: len(self.lines(self.client)) == i + 1)
        assert wait_for(lambda: len(self.lines(self.server)) == n)

    def streams(self, proxy):
        """meshlet_proxy_tunnel_streams_total of one proxy: {"new": n, "reused": m}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin}/metrics",
                                    timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("meshlet_proxy_tunnel_streams_total{"):
                out[line.split('"')[1]] = int(line.split()[-1])
        return out

    def lines(self, proxy):
        return [l for l in proxy.log() if l["msg"] == "connection"]

    def stop(self):
        assert self.client.stop() == 0, self.client.log_path.read_text()
        assert self.server.stop() == 0, self.server.log_path.read_text()


def test_connections_one_after_another_share_one_tls_connection(env):
    pair = Pair(env, env["backend"].http_port)
    try:
        pair.get_in_turn("/r", 5)
        assert pair.streams(pair.client) == {"new": 1, "reused": 4}
        assert pair.streams(pair.server) == {"new": 1, "reused": 4}
        for proxy, peer in ((pair.client, SERVER_ID),
                            (pair.server, "spiffe://example.org/ns/default/sa/client")):
            lines = pair.lines(proxy)
            assert [l["reused"] for l in lines] == [False, True, True, True, True], lines
            assert all(l["result"] == "ok" and l["peer"] == peer and l["mode"] == "mtls"
                       for l in lines), lines
        # Each connection is its own line, with its own bytes.
        assert all(l["bytes_down"] > 0 and l["bytes_up"] > 0 for l in pair.lines(pair.server))
    finally:
        pair.stop()


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_peer_without_protocol_2_gets_protocol_1(env, side):
    """tunnel.reuse: false on either side: one TLS connection per connection, as before."""
    off = "tunnel:\n  reuse: false\n"
    pair = Pair(env, env["backend"].http_port, client_cfg=off if side == "client" else "",
                server_cfg=off if side == "server" else "")
    try:
        if side == "client":
            pair.get_in_turn("/v1-", 3)
        else:
            # The client asks for protocol 3 once, on a connection that it then closes
            # before a preamble (protocol 1 has no use for it): the server's one extra line.
            for i in range(3):
                assert pair.get(f"/v1-{i}") == {"path": f"/v1-{i}"}
                assert wait_for(lambda: len(pair.lines(pair.client)) == i + 1)
            assert wait_for(lambda: len(pair.lines(pair.server)) == 4)
            # Protocol 1 on a terminate listener has no preamble: an empty connection.
            first = pair.lines(pair.server)[0]
            assert (first["result"], first["bytes_up"], first["bytes_down"]) == ("ok", 0, 0)
            assert all(l["bytes_up"] > 0 for l in pair.lines(pair.server)[1:])
            assert "peer proxy speaks an older tunnel protocol" in pair.client.log_path.read_text()
        assert pair.streams(pair.client) == {"new": 3, "reused": 0}
        assert pair.streams(pair.server) == {"new": 4 if side == "server" else 3, "reused": 0}
        assert not any(l["reused"] for l in pair.lines(pair.client))
    finally:
        pair.stop()


def test_protocol_3_to_a_protocol_2_peer_goes_on_the_same_connection(env):
    """A server of protocol 2 (a release before protocol 3, as tunnel.multiplex: false
    makes one) answers the client's protocol 3 with 2: the client remembers it, and the
    TLS connection it made carries its streams one after another, with no connection
    wasted on either side."""
    pair = Pair(env, env["backend"].http_port, server_cfg="tunnel:\n  multiplex: false\n")
    try:
        pair.get_in_turn("/p2-", 3)
        assert pair.streams(pair.client) == {"new": 1, "reused": 2}
        assert pair.streams(pair.server) == {"new": 1, "reused": 2}
        assert [l["reused"] for l in pair.lines(pair.client)] == [False, True, True]
        assert all(l["result"] == "ok" for l in pair.lines(pair.server))
        assert pair.client.log_path.read_text().count("speaks an older tunnel protocol") == 1
    finally:
        pair.stop()


def reset_server():
    """A TCP server that reads a request and resets the connection (SO_LINGER 0)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(4096)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv


def expect_reset(port):
    """A connection through the pair whose upstream fails: the client sees a reset (or an
    end without a byte), never an answer. The reset may come as soon as the proxy accepts
    (with protocol 3 the stream is refused at once), even before connect() returns."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        pass


def test_a_reset_goes_through_and_the_tunnel_stays(env):
    srv = reset_server()
    pair = Pair(env, srv.getsockname()[1])
    try:
        for i in range(4):
            expect_reset(pair.a_port)
            assert wait_for(lambda: len(pair.lines(pair.client)) == i + 1)
        # One TLS connection for all four: each reset travelled in it as a RESET frame.
        assert pair.streams(pair.client) == {"new": 1, "reused": 3}
        assert all(l["result"] == "reset" for l in pair.lines(pair.client))
        assert all(l["result"] == "reset" for l in pair.lines(pair.server))
    finally:
        pair.stop()
        srv.close()


def test_a_refused_upstream_resets_the_connection_and_the_tunnel_stays(env):
    port = free_port()  # nothing listens there yet
    pair = Pair(env, port)
    try:
        for i in range(2):
            expect_reset(pair.a_port)
            assert wait_for(lambda: len(pair.lines(pair.client)) == i + 1)
        assert wait_for(lambda: len(pair.lines(pair.server)) == 2)
        assert [l["result"] for l in pair.lines(pair.server)] == ["connect_failed"] * 2
        # The application comes up: the same TLS connection carries its first request.
        backend = socket.socket()
        backend.bind(("127.0.0.1", port))
        backend.listen(8)

        def answer():
            conn, _ = backend.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nup")
            conn.close()

        threading.Thread(target=answer, daemon=True).start()
        with socket.create_connection(("127.0.0.1", pair.a_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        assert data.endswith(b"\r\n\r\nup")
        # A client counts a stream of protocol 3 as it ends, a moment after the answer.
        assert wait_for(lambda: pair.streams(pair.client) == {"new": 1, "reused": 2}), \
            pair.streams(pair.client)
        backend.close()
    finally:
        pair.stop()


def test_a_half_closed_client_gets_the_whole_answer_on_a_kept_tunnel(env):
    """The hash server reads to the end, then answers: the client's END must go through
    a kept tunnel, and the answer follows it."""
    pair = Pair(env, env["backend"].tcp_port)
    try:
        import hashlib
        for i in range(3):
            payload = bytes([i]) * (300_000 + i)
            with socket.create_connection(("127.0.0.1", pair.a_port), timeout=20) as s:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := s.recv(1 << 16):
                    answer += chunk
            assert wait_for(lambda: len(pair.lines(pair.client)) == i + 1)
            digest, _, rest = answer.partition(b"\n")
            assert digest.decode() == hashlib.sha256(payload).hexdigest()
            assert rest == bytes(range(256)) * 4096
        assert pair.streams(pair.client) == {"new": 1, "reused": 2}
    finally:
        pair.stop()


def test_draining_closes_kept_tunnels_at_once(env):
    """Idle kept tunnels are not connections to wait for: SIGTERM exits well before
    timeouts.drain, and the client proxy drops its kept tunnel and makes a new one."""
    drain = "timeouts:\n  drain: 20s\n"
    pair = Pair(env, env["backend"].http_port, server_cfg=drain)
    try:
        assert pair.get("/before") == {"path": "/before"}
        assert wait_for(lambda: len(pair.lines(pair.server)) == 1)
        assert wait_for(lambda: len(pair.lines(pair.client)) == 1)
        start = time.time()
        assert pair.server.stop() == 0
        assert time.time() - start < 10
        replacement = Proxy(env["dir"], "server", f"terminate 127.0.0.1:{pair.b_port} "
                            f"127.0.0.1:{env['backend'].http_port}", env["tokens"]["server"],
                            env["ca_env"])
        pair.server = replacement
        assert wait_for(replacement.ready)
        assert pair.get("/after") == {"path": "/after"}
        # A client counts a stream of protocol 3 as it ends, a moment after the answer.
        assert wait_for(lambda: pair.streams(pair.client) == {"new": 2, "reused": 0}), \
            pair.streams(pair.client)
    finally:
        pair.stop()


def test_kept_tunnels_hold_no_place_in_the_connection_limit(env):
    """limits.max_connections counts connections: a server's idle kept tunnel is not one,
    and its next stream takes a place again."""
    pair = Pair(env, env["backend"].http_port, server_cfg="limits:\n  max_connections: 1\n")
    other_port = free_port()
    other = Proxy(env["dir"], "client", f"originate 127.0.0.1:{other_port} "
                  f"127.0.0.1:{pair.b_port} {SERVER_ID}", env["tokens"]["client"], env["ca_env"])
    try:
        assert wait_for(other.ready)
        pair.get_in_turn("/first", 1)
        # The first pair's tunnel waits, idle: another client gets the one place.
        with urllib.request.urlopen(f"http://127.0.0.1:{other_port}/other", timeout=10) as r:
            assert json.loads(r.read()) == {"path": "/other"}
        # Once that stream is over on the server (its tunnel idle too), the first one's next.
        assert wait_for(lambda: len(pair.lines(pair.server)) == 2)
        assert pair.get("/again") == {"path": "/again"}
        assert wait_for(lambda: pair.streams(pair.client) == {"new": 1, "reused": 1}), \
            pair.streams(pair.client)
    finally:
        assert other.stop() == 0
        pair.stop()


# The wire format, from a client written from docs/proxy.md.

def frames_of(tls):
    """Reads one stream's frames from the server: (data, end code)."""
    data = b""
    buf = b""
    while True:
        while len(buf) < 2:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed in a stream")
            buf += chunk
        (n,), buf = struct.unpack(">H", buf[:2]), buf[2:]
        if n in (0, 0xfffe, 0xffff):
            assert buf == b"", "bytes after the end of the stream"
            return data, n
        while len(buf) < n:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed in a frame")
            buf += chunk
        data, buf = data + buf[:n], buf[n:]


def preamble(version=2, port=80):
    return b"MSHL" + bytes([version, 0]) + struct.pack(">HH", port, 0)


def frame(data):
    return struct.pack(">H", len(data)) + data


@pytest.fixture
def raw(env, tmp_path):
    """A server-side proxy, and a TLS client with an identity of the mesh speaking
    meshlet/2 to it."""
    port = free_port()
    server = Proxy(env["dir"], "server", f"terminate 127.0.0.1:{port} "
                   f"127.0.0.1:{env['backend'].http_port}", env["tokens"]["server"],
                   env["ca_env"])
    r = run([binary("meshlet-ca"), "issue", "--dir", str(env["dir"].ca), "--spiffe-id",
             "spiffe://example.org/ns/default/sa/raw", "--out", str(tmp_path / "raw")])
    assert r.returncode == 0, r.stderr
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(env["dir"].root))
    ctx.load_cert_chain(str(tmp_path / "raw.crt"), str(tmp_path / "raw.key"))
    ctx.set_alpn_protocols(["meshlet/2", "meshlet/1"])
    assert wait_for(server.ready)

    def connect(strict_eof=False):
        """strict_eof: an end without close_notify raises SSLEOFError instead of reading
        as the end."""
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        return ctx.wrap_socket(s, suppress_ragged_eofs=not strict_eof)

    yield connect, server
    assert server.stop() == 0


def test_wire_format_streams_one_after_another(raw):
    connect, server = raw
    with connect() as tls:
        assert tls.selected_alpn_protocol() == "meshlet/2"
        for i in range(3):
            request = f"GET /wire{i} HTTP/1.0\r\n\r\n".encode()
            # The request in two frames, then END: all in one write for the first stream.
            tls.sendall(preamble() + frame(request[:5]) + frame(request[5:]) + frame(b""))
            data, end = frames_of(tls)
            assert end == 0
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200"), data
            assert json.loads(body) == {"path": f"/wire{i}"}
    assert wait_for(lambda: len([l for l in server.log() if l["msg"] == "connection"]) == 3)
    lines = [l for l in server.log() if l["msg"] == "connection"]
    assert [l["reused"] for l in lines] == [False, True, True]
    assert all(l["peer"] == "spiffe://example.org/ns/default/sa/raw" for l in lines)


@pytest.mark.parametrize("bad", [
    pytest.param(lambda: preamble(version=1) + frame(b"x") + frame(b""), id="version-1-preamble"),
    pytest.param(lambda: preamble() + struct.pack(">H", 16381) + b"x" * 16381, id="frame-too-long"),
    pytest.param(lambda: preamble() + struct.pack(">H", 0x8000), id="frame-length-reserved"),
    pytest.param(lambda: b"GET / HTTP/1.1\r\n\r\n", id="no-preamble"),
])
def test_wire_format_errors_close_the_tunnel(raw, bad):
    connect, server = raw
    with connect() as tls:
        got = b""
        try:
            # The proxy may reset the connection before it has read everything.
            tls.sendall(bad())
            while chunk := tls.recv(65536):
                got += chunk
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            pass
    # Whatever the backend may have answered before the error, the stream never ends well.
    assert not got.endswith(b"\x00\x00"), got[-20:]
    # The proxy is still there for the next one.
    with connect() as tls:
        tls.sendall(preamble() + frame(b"GET /after HTTP/1.0\r\n\r\n") + frame(b""))
        data, end = frames_of(tls)
        assert end == 0 and data.endswith(b'{"path": "/after"}')


def test_close_notify_only_between_streams(raw):
    """A tunnel that ends in the middle of a stream is reset, never closed with
    close_notify: a close_notify tells a client that the stream it started after the last
    one was not taken (so it may start it again elsewhere). Between streams (draining), the
    close is a close_notify."""
    connect, server = raw
    for bad in (preamble(version=9), preamble() + frame(b"GET /mid") + b"\xff\xfd"):
        with connect(strict_eof=True) as tls:
            tls.sendall(preamble() + frame(b"GET /first HTTP/1.0\r\n\r\n") + frame(b""))
            assert frames_of(tls)[1] == 0
            tls.sendall(bad)  # the next stream, refused or broken
            with pytest.raises((ConnectionResetError, ssl.SSLEOFError, BrokenPipeError)):
                while tls.recv(65536):
                    pass
    assert wait_for(lambda: len([l for l in server.log() if l["msg"] == "connection"]) == 4)
    with connect(strict_eof=True) as tls:
        tls.sendall(preamble() + frame(b"GET /last HTTP/1.0\r\n\r\n") + frame(b""))
        assert frames_of(tls)[1] == 0
        assert wait_for(lambda: len([l for l in server.log() if l["msg"] == "connection"]) == 5)
        server.proc.terminate()
        assert tls.recv(65536) == b""  # close_notify: clean
        assert server.proc.wait(timeout=10) == 0


def test_wire_format_reset_from_the_client(raw):
    """A RESET from the client ends the stream both ways; the server answers with its own
    RESET (it had not ended its side) and the tunnel carries the next stream."""
    connect, _ = raw
    with connect() as tls:
        tls.sendall(preamble() + frame(b"GET /slow") + struct.pack(">H", 0xfffe))
        data, end = frames_of(tls)
        assert end == 0xfffe
        tls.sendall(preamble() + frame(b"GET /next HTTP/1.0\r\n\r\n") + frame(b""))
        data, end = frames_of(tls)
        assert end == 0 and data.endswith(b'{"path": "/next"}')


def test_wire_format_a_byte_per_record(raw):
    """Preamble, frame headers and END split across TLS records at every byte: the
    server reads the preamble exactly, and frame headers in pieces."""
    connect, _ = raw
    with connect() as tls:
        for i in range(2):
            request = f"GET /bytes{i} HTTP/1.0\r\n\r\n".encode()
            for b in preamble() + frame(request[:7]) + frame(request[7:]) + frame(b""):
                tls.sendall(bytes([b]))  # one TLS record each
            data, end = frames_of(tls)
            assert end == 0 and data.endswith(f'{{"path": "/bytes{i}"}}'.encode()), data


def test_draining_with_part_of_a_preamble_in(raw):
    """A kept tunnel that holds part of its next preamble when the server drains: it ends
    (once) and the proxy exits at once."""
    connect, server = raw
    with connect() as tls:
        tls.sendall(preamble() + frame(b"GET /one HTTP/1.0\r\n\r\n") + frame(b""))
        data, end = frames_of(tls)
        assert end == 0
        tls.sendall(preamble()[:3])
        assert wait_for(lambda: len([l for l in server.log() if l["msg"] == "connection"]) == 1)
        time.sleep(0.2)
        start = time.time()
        server.proc.terminate()
        assert server.proc.wait(timeout=10) == 0
        assert time.time() - start < 5


def test_a_kept_tunnel_closed_in_a_preamble_is_reported(raw):
    """Closed between streams: nothing to report. Closed with part of the next preamble
    in: a connection that failed before its preamble, as on a new tunnel."""
    connect, server = raw
    for cut in (0, 3):
        with connect() as tls:
            tls.sendall(preamble() + frame(b"GET /x HTTP/1.0\r\n\r\n") + frame(b""))
            assert frames_of(tls)[1] == 0
            if cut:
                tls.sendall(preamble()[:cut])
    assert wait_for(lambda: len([l for l in server.log() if l["msg"] == "connection"]) == 3)
    time.sleep(0.3)
    lines = [l for l in server.log() if l["msg"] == "connection"]
    # (The client closes without close_notify: a reset, as it is before a first preamble.)
    assert [l["result"] for l in lines] == ["ok", "ok", "reset"], lines
    assert lines[2]["reused"] and lines[2]["bytes_up"] == 0, lines[2]


# A stream started on a kept tunnel that the server closes just then.

class P2Server:
    """A server of tunnel protocol 2 written from docs/proxy.md, with the identity
    SERVER_ID, that serves each connection's streams with `plan`: a list, per connection,
    of what to do with each stream: "serve" (answer it), "close-idle" (close with
    close_notify once the next preamble's first bytes are in, before reading it: what a
    proxy draining its kept tunnels does) or "close-mid" (answer one data frame, then
    close_notify without an END: a server that breaks the protocol mid-stream)."""

    def __init__(self, env, tmp_path, plan):
        r = run([binary("meshlet-ca"), "issue", "--dir", str(env["dir"].ca), "--spiffe-id",
                 SERVER_ID, "--out", str(tmp_path / "p2")])
        assert r.returncode == 0, r.stderr
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(tmp_path / "p2.crt"), str(tmp_path / "p2.key"))
        self.ctx.load_verify_locations(str(env["dir"].root))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.set_alpn_protocols(["meshlet/2"])
        self.plan = list(plan)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.streams = []  # (connection, the stream's request bytes)
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def read_exact(tls, n):
        out = b""
        while len(out) < n:
            chunk = tls.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def read_stream(self, tls):
        head = self.read_exact(tls, 10)
        assert head[:4] == b"MSHL" and head[4] == 2, head
        self.read_exact(tls, struct.unpack(">H", head[8:10])[0])
        data = b""
        while True:
            (n,) = struct.unpack(">H", self.read_exact(tls, 2))
            if n == 0:
                return data
            assert n < 0xfffe, n
            data += self.read_exact(tls, n)

    def run(self):
        for conn_no, steps in enumerate(self.plan):
            try:
                s, _ = self.sock.accept()
                tls = self.ctx.wrap_socket(s, server_side=True)
                for step in steps:
                    if step == "close-idle":
                        select.select([tls], [], [], 10)
                        tls.unwrap()
                        break
                    data = self.read_stream(tls)
                    self.streams.append((conn_no, data))
                    if step == "close-mid":
                        tls.sendall(frame(b"partial"))
                        tls.unwrap()
                        break
                    tls.sendall(frame(b"answer:" + data) + frame(b""))
                tls.close()
            except Exception as e:  # the test reads them
                self.errors.append(repr(e))

    def stop(self):
        self.sock.close()


def app_call(port, data):
    """A client of the client-side proxy: sends data, half-closes, reads to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def restarts(proxy):
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("meshlet_proxy_stream_restarts_total "):
                return int(float(line.split()[-1]))
    return None


@contextlib.contextmanager
def p2_client(env, tmp_path, second_stream):
    """A client-side proxy to a P2Server whose first connection serves one stream and
    treats the second as second_stream says: yields (server, proxy, port) once the first
    stream has been served and kept."""
    srv = P2Server(env, tmp_path, [["serve", second_stream], ["serve"]])
    port = free_port()
    # Protocol 2 only: a client of protocol 3 would spend the server's first connection
    # learning that it speaks 2 (test_protocol_3_to_an_older_peer).
    client = Proxy(env["dir"], "client", f"originate 127.0.0.1:{port} 127.0.0.1:{srv.port} "
                   f"{SERVER_ID}", env["tokens"]["client"], env["ca_env"],
                   config="tunnel:\n  multiplex: false\n")
    try:
        assert wait_for(client.ready)
        assert app_call(port, b"first") == b"answer:first"
        assert wait_for(lambda: len([l for l in client.log() if l["msg"] == "connection"]) == 1)
        yield srv, client, port
    finally:
        assert client.stop() == 0
        srv.stop()


def test_a_stream_the_server_closed_its_kept_tunnel_on_starts_again(env, tmp_path):
    """The server closes a kept tunnel (close_notify) just as the client starts a stream on
    it (a proxy that drains, or whose identity changed): it did not take the stream, so the
    client proxy starts it again on a new TLS connection, with the same bytes, and the
    application never knows."""
    with p2_client(env, tmp_path, "close-idle") as (srv, client, port):
        assert app_call(port, b"second") == b"answer:second"
        assert srv.streams == [(0, b"first"), (1, b"second")], (srv.streams, srv.errors)
        assert restarts(client) == 1
        lines = [l for l in client.log() if l["msg"] == "connection"]
        assert [l["result"] for l in lines] == ["ok", "ok"], lines
        assert any(l["msg"].startswith("kept connection closed by the peer before it took")
                   for l in client.log()), client.log()


def test_a_stream_the_server_answered_is_not_started_again(env, tmp_path):
    """Once a byte of the stream came back, the server has taken it: a close then is a
    truncation, and the application connection is reset, never sent twice."""
    with p2_client(env, tmp_path, "close-mid") as (srv, client, port):
        with pytest.raises(ConnectionResetError):
            app_call(port, b"second")
        assert srv.streams == [(0, b"first"), (0, b"second")], (srv.streams, srv.errors)
        assert restarts(client) == 0
