# SPDX-License-Identifier: Apache-2.0
"""Authorization policies in meshlet-proxy on loopback: real proxies with identities from a
real meshlet-ca, a real HTTP/1.1 application, curl and raw sockets as clients."""
import http.client
import http.server
import json
import os
import re
import socket
import threading
import time
import urllib.request

import pytest

from conftest import binary, run
from test_proxy_run import Proxy, Server, free_port, start_ca, wait_for

CLIENT = "example.org/ns/default/sa/client"


class App:
    """An HTTP/1.1 application (keep-alive) that records every request it is given."""

    def __init__(self):
        self.seen = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    n = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(n) if n else b""
                seen.append((self.command, self.path, body))
                out = json.dumps({"path": self.path, "body": body.decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_DELETE = answer

        self.http = Server(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self):
        self.http.shutdown()


def metric(proxy, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.split()[-1])
    return total


POLICY = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["{principal}"]
    to:
    - operation:
        methods: ["GET", "POST"]
        notPaths: ["/admin/*"]
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: no-delete
spec:
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["DELETE"]
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d, ca, tokens, ca_env = start_ca(tmp_path_factory.mktemp("policy"),
                                     ("client", "server", "other"))
    app = App()
    policies = d.path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text(POLICY.replace("{principal}", CLIENT))
    labels = d.path / "labels"
    labels.write_text('app="web"\nversion="v1"\n')
    tcp_policies = d.path / "tcp-policies"
    tcp_policies.mkdir()
    (tcp_policies / "deny-other.yaml").write_text(
        "apiVersion: security.meshlet.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: deny-other}\nspec:\n  action: DENY\n  rules:\n"
        "  - from:\n    - source: {principals: [\"example.org/ns/default/sa/other\"]}\n")
    ports = {"srv": free_port(), "cli": free_port(), "srv_tcp": free_port(),
             "cli_tcp": free_port(), "other_tcp": free_port()}
    server = Proxy(d, "server", f"terminate 127.0.0.1:{ports['srv']} 127.0.0.1:{app.port}",
                   tokens["server"], ca_env,
                   config=f"policy:\n  paths: [\"{policies}\"]\n  labels_file: \"{labels}\"\n"
                          f"  http_ports: \"{app.port}\"\n  reload_interval: 200ms\n")
    client = Proxy(d, "client", f"originate 127.0.0.1:{ports['cli']} 127.0.0.1:{ports['srv']}",
                   tokens["client"], ca_env)
    other = Proxy(d, "other", f"originate 127.0.0.1:{ports['other_tcp']} "
                  f"127.0.0.1:{ports['srv_tcp']}", tokens["other"], ca_env)
    server_tcp = Proxy(d, "server", f"terminate 127.0.0.1:{ports['srv_tcp']} "
                       f"127.0.0.1:{app.port}", tokens["server"], ca_env,
                       config=f"policy:\n  paths: [\"{tcp_policies}\"]\n")
    client_tcp = Proxy(d, "client", f"originate 127.0.0.1:{ports['cli_tcp']} "
                       f"127.0.0.1:{ports['srv_tcp']}", tokens["client"], ca_env)
    procs = [server, client, other, server_tcp, client_tcp]
    for p in procs:
        assert wait_for(p.ready), p.log_path.read_text()
    yield {"dir": d, "app": app, "ports": ports, "server": server, "policies": policies,
           "server_tcp": server_tcp, "tcp_policies": tcp_policies}
    for p in procs:
        assert p.stop() == 0, p.log_path.read_text()
    app.stop()
    ca.stop()


def put(path, text):
    """Replaces a policy file at once, as Kubernetes updates a mounted ConfigMap."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_to_end(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def request(conn, method, path, body=None):
    conn.request(method, path, body=body)
    r = conn.getresponse()
    return r.status, r.read()


def test_denied_and_allowed_requests_on_one_connection(pair):
    conn = http.client.HTTPConnection("127.0.0.1", pair["ports"]["cli"], timeout=5)
    seen = len(pair["app"].seen)
    assert request(conn, "GET", "/api/items")[0] == 200
    status, body = request(conn, "GET", "/admin/users")
    assert status == 403 and body == b"meshlet: access denied\n"
    status, body = request(conn, "POST", "/api/items", body=b"x" * 5000)
    assert status == 200 and json.loads(body)["body"] == "x" * 5000
    assert request(conn, "DELETE", "/api/items")[0] == 403
    # A denied request with a body: the body is dropped with it, the next one is fine.
    assert request(conn, "POST", "/admin/x", body=b"y" * 100000)[0] == 403
    assert request(conn, "GET", "/api/after")[0] == 200
    conn.close()
    paths = [p for _, p, _ in pair["app"].seen[seen:]]
    assert paths == ["/api/items", "/api/items", "/api/after"]
    # The access log names the deciding policy of each request.
    assert wait_for(lambda: any(l.get("msg") == "request" and l.get("path") == "/api/after"
                                for l in pair["server"].log()))
    lines = [l for l in pair["server"].log() if l.get("msg") == "request"]
    deny = [l for l in lines if l["path"] == "/admin/users"][-1]
    assert deny["decision"] == "deny" and deny["why"] == "no ALLOW policy matched"
    allow = [l for l in lines if l["path"] == "/api/after"][-1]
    assert allow["decision"] == "allow" and allow["policy"] == "web" and allow["rule"] == 0
    assert allow["peer"] == "spiffe://" + CLIENT
    delete = [l for l in lines if l["method"] == "DELETE"][-1]
    assert delete["policy"] == "no-delete"
    assert metric(pair["server"], "meshlet_proxy_policy_decisions_total") > 0


def test_curl_gets_403_and_200_on_one_connection(pair):
    """curl with two URLs reuses its connection: the denied request does not close it."""
    base = f"http://127.0.0.1:{pair['ports']['cli']}"
    r = run(["curl", "-sS", "--noproxy", "*", "-w", "%{http_code} %{num_connects}\n",
             "-o", "/dev/null", f"{base}/admin/users", "-o", "/dev/null", f"{base}/api/items"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["403 1", "200 0"], r.stdout  # 0: the same connection


def test_expect_100_continue(pair, tmp_path):
    """curl waits for 100 Continue before sending a body: a denied request is answered at
    once (and its connection closed), an allowed one goes through with its body."""
    body = tmp_path / "body"
    body.write_bytes(b"z" * 200000)
    base = f"http://127.0.0.1:{pair['ports']['cli']}"
    for path, want in (("/admin/upload", "403"), ("/api/upload", "200")):
        r = run(["curl", "-sS", "--noproxy", "*", "-H", "Expect: 100-continue",
                 "--data-binary", f"@{body}", "-o", "/dev/null", "-w", "%{http_code}",
                 f"{base}{path}"])
        assert r.returncode == 0 and r.stdout == want, (path, r.stdout, r.stderr)


def test_chunked_bodies_pass_unchanged(pair):
    conn = http.client.HTTPConnection("127.0.0.1", pair["ports"]["cli"], timeout=5)
    parts = [b"a" * 10, b"b" * 70000, b"c"]
    conn.request("POST", "/api/chunked", body=iter(parts), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["body"] == b"".join(parts).decode()
    # Denied with a chunked body: dropped whole, the connection goes on.
    conn.request("POST", "/admin/chunked", body=iter(parts), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 403 and r.read() == b"meshlet: access denied\n"
    assert request(conn, "GET", "/api/after-chunked")[0] == 200
    conn.close()


def test_pipelined_requests_keep_their_order(pair):
    with socket.create_connection(("127.0.0.1", pair["ports"]["cli"]), timeout=5) as s:
        s.sendall(b"GET /one HTTP/1.1\r\nHost: web\r\n\r\n"
                  b"GET /admin/two HTTP/1.1\r\nHost: web\r\n\r\n"
                  b"GET /three HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        data = read_to_end(s)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"403", b"200"], data
    assert data.index(b'"/one"') < data.index(b"access denied") < data.index(b'"/three"')


@pytest.mark.parametrize("head,status", [
    (b"POST /api HTTP/1.1\r\nHost: w\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n", b"400"),
    (b"POST /api HTTP/1.1\r\nHost: w\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
     b"400"),
    (b"GET /api HTTP/1.1\r\nHost: w\r\nX: a\r\n b\r\n\r\n", b"400"),
    (b"GET /api HTTP/1.1\nHost: w\n\n", b"400"),
    (b"GET /api HTTP/1.1\r\nHost: w\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
    (b"POST /api HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", b"501"),
    # What the application could read otherwise than the policy: refused, never rewritten.
    (b"GET /api/../admin/users HTTP/1.1\r\nHost: w\r\n\r\n", b"400"),
    (b"GET /%61dmin/users HTTP/1.1\r\nHost: w\r\n\r\n", b"400"),
    (b"GET /api//x HTTP/1.1\r\nHost: w\r\n\r\n", b"400"),
    (b"GET http://api.example/x HTTP/1.1\r\nHost: admin.example\r\n\r\n", b"400"),
    # An h2c upgrade would turn the connection into HTTP/2 that no policy sees.
    (b"GET /api HTTP/1.1\r\nHost: w\r\nConnection: Upgrade, HTTP2-Settings\r\n"
     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", b"400"),
    (b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n", b"405"),
])
def test_smuggling_is_refused_before_the_application(pair, head, status):
    seen = len(pair["app"].seen)
    with socket.create_connection(("127.0.0.1", pair["ports"]["cli"]), timeout=5) as s:
        s.sendall(head)
        data = read_to_end(s)
    assert data.startswith(b"HTTP/1.1 " + status), data
    assert b"connection: close" in data
    assert len(pair["app"].seen) == seen


def test_a_denied_tcp_peer_is_closed(pair):
    # The client's identity is allowed on the TCP port, the other's is not.
    conn = http.client.HTTPConnection("127.0.0.1", pair["ports"]["cli_tcp"], timeout=5)
    assert request(conn, "GET", "/tcp")[0] == 200
    conn.close()
    with socket.create_connection(("127.0.0.1", pair["ports"]["other_tcp"]), timeout=5) as s:
        s.sendall(b"GET /tcp HTTP/1.1\r\nHost: w\r\n\r\n")
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
    assert wait_for(lambda: any(l.get("msg") == "connection denied by policy"
                                for l in pair["server_tcp"].log()))
    line = [l for l in pair["server_tcp"].log() if l.get("msg") == "connection denied by policy"][-1]
    assert line["policy"] == "deny-other" and line["rule"] == 0
    assert line["peer"] == "spiffe://example.org/ns/default/sa/other"


def test_each_connection_on_a_kept_tls_connection_is_authorized(pair):
    """Proxy pairs keep their TLS connections (tunnel protocol 2): a policy that comes in
    between two connections decides the second one, on the same TLS connection."""
    server, f = pair["server_tcp"], pair["tcp_policies"] / "deny-client.yaml"
    streams = 'meshlet_proxy_tunnel_streams_total{tunnel="reused"}'

    def get():
        conn = http.client.HTTPConnection("127.0.0.1", pair["ports"]["cli_tcp"], timeout=5)
        try:
            return request(conn, "GET", "/kept")[0]
        finally:
            conn.close()

    assert get() == 200
    reloads = metric(server, 'meshlet_proxy_policy_reloads_total{result="ok"}')
    reused = metric(server, streams)
    put(f, "apiVersion: security.meshlet.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: deny-client}\nspec:\n  action: DENY\n  rules:\n"
        f"  - from:\n    - source: {{principals: [\"{CLIENT}\"]}}\n")
    try:
        assert wait_for(lambda: metric(
            server, 'meshlet_proxy_policy_reloads_total{result="ok"}') > reloads)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            get()
        assert wait_for(lambda: any(l.get("msg") == "connection denied by policy" and
                                    l.get("policy") == "deny-client" for l in server.log()))
    finally:
        f.unlink()
        assert wait_for(lambda: metric(
            server, 'meshlet_proxy_policy_reloads_total{result="ok"}') > reloads + 1)
    assert get() == 200
    # The refused connection and the one after it ran on a kept TLS connection: the
    # refusal travelled in it (RESET), and did not cost the connection.
    assert metric(server, streams) >= reused + 2
    denied = [l for l in server.log() if l.get("msg") == "connection" and
              l.get("result") == "denied"]
    assert denied and denied[-1]["reused"], denied


def test_a_policy_change_applies_to_an_open_connection(pair):
    server, f = pair["server"], pair["policies"] / "web.yaml"
    conn = http.client.HTTPConnection("127.0.0.1", pair["ports"]["cli"], timeout=5)
    assert request(conn, "GET", "/api/before")[0] == 200
    reloads = metric(server, 'meshlet_proxy_policy_reloads_total{result="ok"}')
    put(f, POLICY.replace("{principal}", CLIENT).replace('"/admin/*"', '"/api/*"'))
    try:
        assert wait_for(lambda: metric(
            server, 'meshlet_proxy_policy_reloads_total{result="ok"}') > reloads)
        # The same connection: still open, the next request decided by the new policy.
        assert request(conn, "GET", "/api/after")[0] == 403
        assert request(conn, "GET", "/admin/now-allowed")[0] == 200
    finally:
        put(f, POLICY.replace("{principal}", CLIENT))
        assert wait_for(lambda: metric(
            server, 'meshlet_proxy_policy_reloads_total{result="ok"}') > reloads + 1)
    conn.close()


def test_a_broken_policy_file_leaves_the_old_one(pair):
    server, bad = pair["server"], pair["policies"] / "zz-broken.yaml"
    errors = metric(server, 'meshlet_proxy_policy_reloads_total{result="error"}')
    put(bad, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: broken}\nspec:\n  action: DENY\n  rules:\n"
        "  - to:\n    - operation:\n        ports: [\"99999\"]\n")
    try:
        assert wait_for(lambda: metric(
            server, 'meshlet_proxy_policy_reloads_total{result="error"}') > errors)
        conn = http.client.HTTPConnection("127.0.0.1", pair["ports"]["cli"], timeout=5)
        assert request(conn, "GET", "/api/still")[0] == 200
        assert request(conn, "GET", "/admin/still")[0] == 403
        conn.close()
        msgs = [l for l in server.log() if l.get("msg") == "policy refused, the previous one stays"]
        assert any(f"{bad}:9: spec.rules[0].to[0].operation.ports[0]" in l["error"]
                   for l in msgs), msgs
    finally:
        bad.unlink()


def test_a_broken_policy_at_start_stops_the_proxy(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                   "metadata: {name: a}\nspec:\n  action: CUSTOM\n")
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(f"identity:\n  mode: files\n  cert_file: /nonexistent\n"
                   f"  key_file: /nonexistent\n  bundle_file: /nonexistent\n"
                   f"  namespace: default\nlisteners:\n  capture: false\n"
                   f"policy:\n  paths: [\"{bad}\"]\n")
    r = run([binary("meshlet-proxy"), "run", "--config", str(cfg)])
    assert r.returncode != 0
    assert f"{bad}:5: spec.action: CUSTOM is not supported by meshlet" in r.stderr


def test_policies_need_the_workload_namespace(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text(POLICY.replace("{principal}", CLIENT))
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(f"identity:\n  mode: files\n  cert_file: /nonexistent\n"
                   f"  key_file: /nonexistent\n  bundle_file: /nonexistent\n"
                   f"listeners:\n  capture: false\npolicy:\n  paths: [\"{good}\"]\n")
    r = run([binary("meshlet-proxy"), "run", "--config", str(cfg)])
    assert r.returncode != 0
    assert "policy.paths needs the workload's namespace" in r.stderr


@pytest.mark.parametrize("env,labels,words", [
    ({"MESHLET_HTTP_PORTS": "80,http"}, None,
     'MESHLET_HTTP_PORTS: "80,http" must be ports from 1 to 65535'),
    ({"MESHLET_HTTP_PORTS": "0"}, None, 'MESHLET_HTTP_PORTS: "0" must be ports'),
    ({}, 'app=web\n', "not a labels file (key=\"value\" lines, as the downward API writes)"),
    ({}, 'app="web\n', "not a labels file"),
])
def test_bad_policy_settings_are_refused(tmp_path, env, labels, words):
    good = tmp_path / "p.yaml"
    good.write_text(POLICY.replace("{principal}", CLIENT))
    cfg = tmp_path / "proxy.yaml"
    text = (f"identity:\n  mode: files\n  cert_file: /nonexistent\n"
            f"  key_file: /nonexistent\n  bundle_file: /nonexistent\n  namespace: default\n"
            f"listeners:\n  capture: false\npolicy:\n  paths: [\"{good}\"]\n")
    if labels is not None:
        (tmp_path / "labels").write_text(labels)
        text += f"  labels_file: \"{tmp_path / 'labels'}\"\n"
    cfg.write_text(text)
    r = run([binary("meshlet-proxy"), "run", "--config", str(cfg)],
            env=dict(os.environ, **env))
    assert r.returncode != 0
    assert words in r.stderr, r.stderr


def test_policy_check(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(POLICY.replace("{principal}", CLIENT))
    r = run([binary("meshlet-proxy"), "policy", "check", str(good)])
    assert r.returncode == 0 and r.stdout == "policy OK: 2 AuthorizationPolicy, 0 PeerAuthentication\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                   "metadata: {name: a}\nspec:\n  action: NOPE\n  rules:\n  - to:\n"
                   "    - operation: {ports: [\"0\"]}\n  - from:\n"
                   "    - source: {requestPrincipals: [\"*\"]}\n")
    r = run([binary("meshlet-proxy"), "policy", "check", str(good), str(bad)])
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:5: spec.action: must be ALLOW, DENY or AUDIT",
        f"{bad}:8: spec.rules[0].to[0].operation.ports[0]: \"0\" is not a port (1 to 65535)",
        f"{bad}:10: spec.rules[1].from[0].source.requestPrincipals: not supported by meshlet "
        "(see docs/policy.md)",
        "meshlet-proxy policy check: 3 errors",
    ]


@pytest.mark.parametrize("args,status,first,more", [
    (["--principal", "spiffe://" + CLIENT, "--method", "GET", "--path", "/api/x"], 0, "allow",
     "policy: default/web"),
    (["--principal", CLIENT, "--method", "GET", "--path", "/admin/x"], 1, "deny",
     "reason: no ALLOW policy matched"),
    (["--principal", CLIENT, "--method", "DELETE", "--path", "/api/x"], 1, "deny",
     "policy: default/no-delete"),
    # TCP: the ALLOW rule needs HTTP, so it cannot match; the DENY rule's methods are ignored.
    (["--principal", CLIENT], 1, "deny", "query: a TCP connection"),
    (["--principal", CLIENT, "--labels", "app=db"], 1, "deny", "policy: default/no-delete"),
    (["--principal", CLIENT, "--namespace", "other"], 0, "allow", "reason: no policy applies"),
    (["--port", "0"], 2, "", ""),
    (["--principal", CLIENT, "--method", "GET", "--path", "/a b"], 2, "", ""),
])
def test_policy_explain(tmp_path, args, status, first, more):
    f = tmp_path / "p.yaml"
    f.write_text(POLICY.replace("{principal}", CLIENT).replace("name: web", "name: web\n  namespace: default").replace("name: no-delete", "name: no-delete\n  namespace: default"))
    base = ["--policy", str(f), "--namespace", "default", "--labels", "app=web,version=v1",
            "--port", "8080"]
    r = run([binary("meshlet-proxy"), "policy", "explain"] + base + args)
    assert r.returncode == status, r.stdout + r.stderr
    if first:
        lines = r.stdout.splitlines()
        assert lines[0] == first
        assert any(l.startswith(more) for l in lines), lines
    else:
        assert r.stderr != ""
