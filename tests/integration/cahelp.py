# SPDX-License-Identifier: Apache-2.0
"""Helpers for the meshlet-ca tests: a CA directory, a running `meshlet-ca serve`, tokens
made independently of meshlet (python3-cryptography), CSRs and an HTTPS client."""
import base64
import http.client
import http.server
import json
import os
import pathlib
import ssl
import subprocess
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.x509.oid import NameOID

from conftest import SLOW, binary, daemon_argv, run

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "meshlet-ca"
OWN_TOKEN = "ca-own-service-account-token"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_key(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


def kid_of(key):
    """The Kubernetes key id: base64url(SHA-256(DER SubjectPublicKeyInfo))."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return b64url(digest.finalize())


def jws(header, claims, key=None, signature=None):
    """A compact JWS made by hand: header and claims as given, signed with key (ES256 for
    EC, RS256 for RSA) unless a signature is given."""
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    if signature is None:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = utils.decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif key is not None:
            from cryptography.hazmat.primitives.asymmetric import padding
            signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = b""
    return signing_input.decode() + "." + b64url(signature)


def claims(ns="default", sa="web", pod="web-1", **over):
    now = int(time.time())
    c = {
        "aud": [AUDIENCE], "exp": now + 3600, "iat": now, "iss": ISSUER, "nbf": now,
        "sub": f"system:serviceaccount:{ns}:{sa}",
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "sa-uid"},
                          "pod": {"name": pod, "uid": "pod-uid-1"}},
    }
    c.update(over)
    return c


def csr_pem(key, uris=(), dns=()):
    sans = [x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class CADir:
    """A CA made by `meshlet-ca init`, a serving certificate for localhost, and a token
    issuer key with its JWKS."""

    def __init__(self, path, intermediate=False, td="example.org"):
        self.path = pathlib.Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.ca = self.path / "ca"
        self.td = td
        args = [binary("meshlet-ca"), "init", "--dir", str(self.ca), "--trust-domain", td]
        r = run(args + (["--intermediate"] if intermediate else []))
        assert r.returncode == 0, r.stderr
        r = run([binary("meshlet-ca"), "issue", "--dir", str(self.ca), "--dns", "localhost",
                 "--out", str(self.path / "serving")])
        assert r.returncode == 0, r.stderr
        self.root = self.ca / "root-cert.pem"
        self.issuer_key = ec_key()
        write_key(self.path / "issuer.key", self.issuer_key)
        r = run([binary("meshlet-ca"), "jwks", "--key", str(self.path / "issuer.key")])
        assert r.returncode == 0, r.stderr
        self.jwks = self.path / "jwks.json"
        self.jwks.write_text(r.stdout)

    def token(self, **over):
        return jws({"alg": "ES256", "kid": kid_of(self.issuer_key)}, claims(**over),
                   self.issuer_key)


class CAServer:
    """`meshlet-ca serve` on a free loopback port, with its audit file and log."""

    def __init__(self, cadir, *extra, config=None, jwks_file=True):
        self.dir = cadir
        self.audit_file = cadir.path / f"audit-{time.monotonic_ns()}.log"
        self.log_path = cadir.path / f"ca-{time.monotonic_ns()}.log"
        self.log_file = open(self.log_path, "w+")
        self.stdout = open(cadir.path / f"stdout-{time.monotonic_ns()}.log", "w+")
        args = [binary("meshlet-ca"), "serve", "--listen", "127.0.0.1:0",
                "--ca-dir", str(cadir.ca), "--tls-cert", str(cadir.path / "serving.crt"),
                "--tls-key", str(cadir.path / "serving.key"),
                "--audit-file", str(self.audit_file)]
        if jwks_file:
            args += ["--jwks-file", str(cadir.jwks)]
        if config is not None:
            args += ["--config", str(config)]
        self.proc = subprocess.Popen(daemon_argv(args + list(extra), "meshlet-ca"),
                                     stdout=self.stdout, stderr=self.log_file)
        self.port = None
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise AssertionError(f"meshlet-ca serve exited: {self.log()}")
            for line in self.log().splitlines():
                if '"msg":"serving"' in line:
                    self.port = json.loads(line)["port"]
            time.sleep(0.02)
        assert self.port is not None, self.log()

    def log(self):
        return self.log_path.read_text()

    def audit(self):
        """Every audit record so far, from the audit file."""
        text = self.audit_file.read_text() if self.audit_file.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def context(self, cafile=None):
        return ssl.create_default_context(cafile=str(cafile or self.dir.root))

    def request(self, method, path, body=None, headers=None, cafile=None):
        conn = http.client.HTTPSConnection("localhost", self.port, timeout=10 * SLOW,
                                           context=self.context(cafile))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def certify(self, token=None, csr=None, ttl=None, body=None,
                content_type="application/json"):
        if body is None:
            body = {"csr": csr}
            if ttl is not None:
                body["ttl_seconds"] = ttl
            body = json.dumps(body)
        headers = {"Content-Type": content_type} if content_type else {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        status, hdrs, data = self.request("POST", "/v1/certify", body, headers)
        try:
            return status, hdrs, json.loads(data)
        except ValueError:
            return status, hdrs, data

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        self.stdout.close()
        return self.proc.returncode


class FakeAPIServer:
    """A stand-in for the Kubernetes API server over TLS: answers TokenReviews (POST
    /apis/authentication.k8s.io/v1/tokenreviews) and serves a JWKS (GET /openid/v1/jwks)."""

    def __init__(self, cadir):
        r = run([binary("meshlet-ca"), "issue", "--dir", str(cadir.ca), "--dns", "localhost",
                 "--out", str(cadir.path / "apiserver")])
        assert r.returncode == 0, r.stderr
        self.reviews = []
        self.jwks = None  # the text GET /openid/v1/jwks answers with, when set
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.reviews.append({"path": self.path, "auth": self.headers["Authorization"]})
                if self.path != "/openid/v1/jwks" or outer.jwks is None:
                    return self.answer(404, {"kind": "Status", "code": 404})
                if self.headers["Authorization"] != "Bearer " + OWN_TOKEN:
                    return self.answer(401, {"kind": "Status", "code": 401})
                self.answer(200, json.loads(outer.jwks))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.reviews.append({"path": self.path, "auth": self.headers["Authorization"],
                                      "body": body})
                if self.headers["Authorization"] != "Bearer " + OWN_TOKEN:
                    return self.answer(401, {"kind": "Status", "code": 401})
                token = body["spec"]["token"]
                kind = json.loads(
                    __import__("base64").urlsafe_b64decode(token.split(".")[1] + "=="))["kind"]
                status = {"authenticated": True, "audiences": body["spec"]["audiences"],
                          "user": {"username": "system:serviceaccount:default:web",
                                   "uid": "sa-uid",
                                   "extra": {"authentication.kubernetes.io/pod-name": ["web-1"],
                                             "authentication.kubernetes.io/pod-uid": ["pod-9"]}}}
                if kind == "denied":
                    status = {"authenticated": False, "error": "token has expired"}
                elif kind == "other-audience":
                    status["audiences"] = ["vault"]
                elif kind == "user":
                    status["user"] = {"username": "alice"}
                self.answer(201, {"apiVersion": "authentication.k8s.io/v1",
                                  "kind": "TokenReview", "spec": body["spec"],
                                  "status": status})

            def answer(self, code, doc):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cadir.path / "apiserver.crt"), str(cadir.path / "apiserver.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
