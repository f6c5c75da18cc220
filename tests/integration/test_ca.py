# SPDX-License-Identifier: Apache-2.0
"""meshlet-ca end to end: the real binary over HTTPS, judged by openssl and
python3-cryptography."""
import base64
import datetime
import hashlib
import hmac
import json
import os
import socket
import ssl
import stat
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from cahelp import (AUDIENCE, ISSUER, CADir, CAServer, b64url, claims, csr_pem, ec_key,
                    jws, kid_of, rsa_key)
from conftest import binary, needs_speed, run


@pytest.fixture(scope="module")
def cadir(tmp_path_factory):
    return CADir(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server(cadir):
    s = CAServer(cadir)
    yield s
    assert s.stop() == 0, s.log()


def spiffe(ns="default", sa="web", td="example.org"):
    return f"spiffe://{td}/ns/{ns}/sa/{sa}"


def check_svid(pem, key, want_id, ttl, issuer_pem):
    """Every X509-SVID rule the CA promises, read back with python3-cryptography."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    issuer = x509.load_pem_x509_certificate(issuer_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [want_id]
    assert len(list(san)) == 1
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not ku.value.key_cert_sign and not ku.value.crl_sign
    assert ku.value.key_encipherment == isinstance(key, rsa.RSAPrivateKey)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest and aki.key_identifier == issuer_ski.digest
    assert cert.serial_number > 0 and cert.serial_number.bit_length() >= 128
    now = datetime.datetime.utcnow()
    assert abs((cert.not_valid_before - (now - datetime.timedelta(seconds=60))).total_seconds()) < 5
    assert abs((cert.not_valid_after - (now + datetime.timedelta(seconds=ttl))).total_seconds()) < 5
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    return cert


def openssl_verify(tmp_path, root, chain):
    (tmp_path / "leaf.pem").write_text(chain[0])
    args = ["openssl", "verify", "-CAfile", str(root)]
    if len(chain) > 1:
        (tmp_path / "untrusted.pem").write_text("".join(chain[1:]))
        args += ["-untrusted", str(tmp_path / "untrusted.pem")]
    r = run(args + [str(tmp_path / "leaf.pem")])
    assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), r.stdout + r.stderr


@pytest.mark.parametrize("make_key", [ec_key, rsa_key], ids=["ec-p256", "rsa-2048"])
def test_issues_svid_root_only(server, cadir, tmp_path, make_key):
    key = make_key()
    status, _, body = server.certify(cadir.token(), csr_pem(key), ttl=900)
    assert status == 200, body
    assert body["spiffe_id"] == spiffe()
    assert len(body["cert_chain"]) == 1
    assert body["trust_bundle"] == [cadir.root.read_text()]
    cert = check_svid(body["cert_chain"][0], key, spiffe(), 900, cadir.root.read_text())
    assert body["expires_at"] == cert.not_valid_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    openssl_verify(tmp_path, cadir.root, body["cert_chain"])
    rec = server.audit()[-1]
    assert rec["outcome"] == "issued" and rec["spiffe_id"] == spiffe()
    assert rec["serial"] == format(cert.serial_number, "x")
    assert rec["pod_name"] == "web-1" and rec["pod_uid"] == "pod-uid-1"
    assert rec["key_type"] == ("ec-p256" if make_key is ec_key else "rsa-2048")
    assert rec["client"].startswith("127.0.0.1:")
    assert rec["not_after"] == body["expires_at"]


def test_issues_svid_with_intermediate(tmp_path):
    d = CADir(tmp_path, intermediate=True)
    s = CAServer(d)
    try:
        key = ec_key()
        status, _, body = s.certify(d.token(ns="shop", sa="cart"), csr_pem(key))
        assert status == 200, body
        assert len(body["cert_chain"]) == 2, "leaf then intermediate, never the root"
        assert body["cert_chain"][1] == (d.ca / "ca-cert.pem").read_text()
        assert body["trust_bundle"] == [d.root.read_text()]
        check_svid(body["cert_chain"][0], key, spiffe("shop", "cart"), 3600,
                   body["cert_chain"][1])
        openssl_verify(tmp_path, d.root, body["cert_chain"])
    finally:
        assert s.stop() == 0


def test_csr_may_ask_for_its_own_id(server, cadir):
    status, _, body = server.certify(cadir.token(), csr_pem(ec_key(), uris=[spiffe()]))
    assert status == 200, body


def hs256_with_public_key(cadir):
    """The classic attack: HS256, keyed with the verifier's public key."""
    pub = cadir.issuer_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": kid_of(cadir.issuer_key)}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims()).encode())
    sig = hmac.new(pub, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def tampered_signature(cadir):
    head, payload, sig = cadir.token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[5] ^= 1
    return ".".join([head, payload, b64url(bytes(raw))])


def bad_csr_signature():
    pem = csr_pem(ec_key())
    from cryptography.x509 import load_pem_x509_csr
    der = bytearray(load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 1
    return ("-----BEGIN CERTIFICATE REQUEST-----\n" +
            base64.encodebytes(bytes(der)).decode() + "-----END CERTIFICATE REQUEST-----\n")


# name: (request arguments, status, error code, words in the message)
BAD = {
    "expired token": (lambda d: {"token": d.token(exp=int(time.time()) - 600)}, 401,
                      "jwt_expired", "expired"),
    "wrong audience": (lambda d: {"token": d.token(aud=["someone-else"])}, 401,
                       "jwt_audience", "audience"),
    "wrong issuer": (lambda d: {"token": d.token(iss="https://evil.example")}, 401,
                     "jwt_issuer", "issuer"),
    "alg none": (lambda d: {"token": jws({"alg": "none"}, claims())}, 401,
                 "jwt_alg_none", "none"),
    "HS256 keyed with the public key": (lambda d: {"token": hs256_with_public_key(d)}, 401,
                                        "jwt_alg_hmac", "HMAC"),
    "unknown kid": (lambda d: {"token": jws({"alg": "ES256", "kid": "nobody"}, claims(),
                                            d.issuer_key)}, 401, "jwt_unknown_kid", "nobody"),
    "tampered signature": (lambda d: {"token": tampered_signature(d)}, 401,
                           "jwt_signature", "signature"),
    "token from another issuer key": (lambda d: {"token": jws(
        {"alg": "ES256", "kid": kid_of(d.issuer_key)}, claims(), ec_key())}, 401,
        "jwt_signature", "signature"),
    "no token": (lambda d: {"token": None}, 401, "missing_token", "Authorization"),
    "CSR with a bad signature": (lambda d: {"csr": bad_csr_signature()}, 400,
                                 "csr_signature", "signature"),
    "CSR for another SPIFFE ID": (lambda d: {"csr": csr_pem(
        ec_key(), uris=["spiffe://example.org/ns/kube-system/sa/admin"])}, 403,
        "csr_identity", "spiffe://example.org/ns/kube-system/sa/admin"),
    "RSA-1024 key": (lambda d: {"csr": csr_pem(rsa_key(1024))}, 400, "csr_key", "RSA-1024"),
    "malformed PEM": (lambda d: {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n"
                                        "-----END CERTIFICATE REQUEST-----\n"}, 400,
                      "csr_malformed", ""),
    "TTL over the maximum": (lambda d: {"ttl": 90000}, 400, "ttl_too_long", "86400 (24h)"),
    "TTL under the minimum": (lambda d: {"ttl": 9}, 400, "ttl_too_short", "minimum of 10"),
    "body not JSON": (lambda d: {"body": "{\"csr\": "}, 400, "invalid_json", "not JSON"),
    "body without csr": (lambda d: {"body": "{\"ttl_seconds\": 60}"}, 400, "invalid_request",
                         "no \"csr\""),
    "a 1 MiB body": (lambda d: {"body": "x" * (1 << 20)}, 413, "payload_too_large", "65536"),
    "wrong content type": (lambda d: {"content_type": "text/plain"}, 415,
                           "unsupported_media_type", "text/plain"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_refused_and_audited(server, cadir, name):
    make, status, code, words = BAD[name]
    args = {"token": cadir.token(), "csr": csr_pem(ec_key())}
    args.update(make(cadir))
    before = len(server.audit())
    got, _, body = server.certify(**args)
    assert got == status, body
    assert body["error"] == code, body
    assert words in body["message"], body
    records = server.audit()
    assert len(records) == before + 1
    assert records[-1]["outcome"] != "issued" and records[-1]["status"] == status
    assert records[-1]["reason"] == code and records[-1]["message"] == body["message"]
    # Nothing of the token ever reaches the audit trail or the log.
    secret = (args.get("token") or "").split(".")[-1][:20]
    if len(secret) == 20:
        assert secret not in json.dumps(records[-1])
        assert secret not in server.log()
    # And the CA still serves.
    ok, _, body = server.certify(cadir.token(), csr_pem(ec_key()))
    assert ok == 200, body


def test_other_methods_and_paths(server):
    status, headers, body = server.request("GET", "/v1/certify")
    assert status == 405 and headers["Allow"] == "POST"
    assert json.loads(body)["error"] == "method_not_allowed"
    assert server.audit()[-1]["status"] == 405
    status, _, body = server.request("GET", "/nope")
    assert status == 404 and json.loads(body)["error"] == "not_found"
    status, headers, _ = server.request("POST", "/v1/bundle")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    # The query string does not change the route.
    status, _, _ = server.request("GET", "/healthz?verbose=1")
    assert status == 200


def test_bundle_endpoints(server, cadir):
    status, headers, body = server.request("GET", "/v1/bundle")
    assert status == 200 and headers["Content-Type"] == "application/x-pem-file"
    assert body.decode() == cadir.root.read_text()
    status, headers, body = server.request("GET", "/v1/bundle.jwks")
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert isinstance(doc["spiffe_sequence"], int) and doc["spiffe_refresh_hint"] > 0
    root = x509.load_pem_x509_certificate(cadir.root.read_bytes())
    [key] = doc["keys"]
    assert key["use"] == "x509-svid" and key["kty"] == "EC" and key["crv"] == "P-256"
    assert len(key["x5c"]) == 1
    assert x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0])) == root
    nums = root.public_key().public_numbers()
    assert base64.urlsafe_b64decode(key["x"] + "==") == nums.x.to_bytes(32, "big")


def test_health_ready_and_metrics(server):
    assert server.request("GET", "/healthz")[0] == 200
    assert server.request("GET", "/readyz")[0] == 200
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    issued = [l for l in text.splitlines()
              if l.startswith('meshlet_ca_certify_requests_total{outcome="issued"}')]
    assert issued and int(issued[0].split()[-1]) >= 1
    assert "meshlet_ca_certify_duration_seconds_bucket{le=\"+Inf\"}" in text
    expiry = [l for l in text.splitlines()
              if l.startswith("meshlet_ca_signing_certificate_expiry_seconds ")]
    assert float(expiry[0].split()[1]) > 86400 * 365 * 9


@needs_speed("a certify takes longer than the 1-per-second refill the test relies on")
def test_rate_limit_per_identity(cadir, tmp_path):
    cfg = tmp_path / "ca.yaml"
    cfg.write_text("rate_limit:\n  per_second: 1\n  burst: 2\n")
    s = CAServer(cadir, config=cfg)
    try:
        for _ in range(2):
            assert s.certify(cadir.token(), csr_pem(ec_key()))[0] == 200
        status, headers, body = s.certify(cadir.token(), csr_pem(ec_key()))
        assert status == 429 and body["error"] == "rate_limited"
        assert int(headers["Retry-After"]) >= 1
        assert s.audit()[-1]["reason"] == "rate_limited"
        # Another identity is not held back by the first.
        assert s.certify(cadir.token(sa="other"), csr_pem(ec_key()))[0] == 200
    finally:
        assert s.stop() == 0


def test_namespace_policy(cadir, tmp_path):
    cfg = tmp_path / "ca.yaml"
    cfg.write_text("auth:\n  denied_namespaces: [kube-system]\n")
    s = CAServer(cadir, config=cfg)
    try:
        status, _, body = s.certify(cadir.token(ns="kube-system", sa="admin"),
                                    csr_pem(ec_key()))
        assert status == 403 and body["error"] == "namespace_denied"
        assert "kube-system" in body["message"]
        assert s.certify(cadir.token(), csr_pem(ec_key()))[0] == 200
    finally:
        assert s.stop() == 0


def served_serial(port, root):
    ctx = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_serving_certificate_reload_without_restart(tmp_path):
    d = CADir(tmp_path)
    s = CAServer(d)
    try:
        before = served_serial(s.port, d.root)
        r = run([binary("meshlet-ca"), "issue", "--dir", str(d.ca), "--dns", "localhost",
                 "--out", str(tmp_path / "serving")])
        assert r.returncode == 0, r.stderr
        new = x509.load_pem_x509_certificate((tmp_path / "serving.crt").read_bytes())
        deadline = time.time() + 5
        while served_serial(s.port, d.root) != new.serial_number and time.time() < deadline:
            time.sleep(0.1)
        assert served_serial(s.port, d.root) == new.serial_number != before
        assert s.proc.poll() is None
        assert "serving certificate reloaded" in s.log()
        # A pair that does not load leaves the current one in place.
        (tmp_path / "serving.key").write_text("garbage")
        os.chmod(tmp_path / "serving.key", 0o600)
        time.sleep(2.5)
        assert served_serial(s.port, d.root) == new.serial_number
        assert "keeping the current one" in s.log()
        assert s.certify(d.token(), csr_pem(ec_key()))[0] == 200
    finally:
        assert s.stop() == 0


def test_serving_certificate_reloads_under_load(tmp_path):
    """Certificate reloads while clients keep connecting: each reload starts a new server
    on the same socket and retires the old one (libmicrohttpd's quiesce, which with its
    epoll workers could abort the process). No connection fails, the daemon lives on."""
    import threading

    d = CADir(tmp_path)
    s = CAServer(d)
    stop = threading.Event()
    served, failures = [], []

    def client():
        while not stop.is_set():
            try:
                served.append(served_serial(s.port, d.root))
            except (OSError, ssl.SSLError) as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        serials = []
        for i in range(5):
            r = run([binary("meshlet-ca"), "issue", "--dir", str(d.ca), "--dns", "localhost",
                     "--out", str(tmp_path / "serving")])
            assert r.returncode == 0, r.stderr
            serials.append(x509.load_pem_x509_certificate(
                (tmp_path / "serving.crt").read_bytes()).serial_number)
            deadline = time.time() + 10
            while (not served or served[-1] != serials[-1]) and time.time() < deadline:
                time.sleep(0.05)
            assert served and served[-1] == serials[-1], f"reload {i} not served"
            assert s.proc.poll() is None, s.log()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[:5]
    assert s.log().count("serving certificate reloaded") >= 5
    assert s.certify(d.token(), csr_pem(ec_key()))[0] == 200
    assert s.stop() == 0


def test_token_keys_reload(tmp_path):
    d = CADir(tmp_path)
    s = CAServer(d)
    try:
        other = ec_key()
        token = jws({"alg": "ES256", "kid": kid_of(other)}, claims(), other)
        assert s.certify(token, csr_pem(ec_key()))[1:] and \
            s.certify(token, csr_pem(ec_key()))[0] == 401
        from cahelp import write_key
        write_key(tmp_path / "other.key", other)
        r = run([binary("meshlet-ca"), "jwks", "--key", str(tmp_path / "other.key")])
        d.jwks.write_text(r.stdout)
        deadline = time.time() + 5
        while s.certify(token, csr_pem(ec_key()))[0] != 200 and time.time() < deadline:
            time.sleep(0.2)
        assert s.certify(token, csr_pem(ec_key()))[0] == 200
        assert "token keys loaded" in s.log()
    finally:
        assert s.stop() == 0


def test_serve_refuses_bad_setup(tmp_path):
    d = CADir(tmp_path)
    base = [binary("meshlet-ca"), "serve", "--listen", "127.0.0.1:0", "--ca-dir", str(d.ca),
            "--jwks-file", str(d.jwks)]
    tls = ["--tls-cert", str(tmp_path / "serving.crt"), "--tls-key", str(tmp_path / "serving.key")]
    r = run(base)
    assert r.returncode == 1 and "HTTPS only" in r.stderr
    os.chmod(tmp_path / "serving.key", 0o644)
    r = run(base + tls)
    assert r.returncode == 1
    assert f"{tmp_path / 'serving.key'}: mode 0644 lets group or others read" in r.stderr
    os.chmod(tmp_path / "serving.key", 0o600)
    os.chmod(d.ca / "root-key.pem", 0o640)
    if os.geteuid() == 0:
        # Group read is allowed for files that root owns (Kubernetes' fsGroup Secrets);
        # another owner's 0640 key is refused.
        os.chown(d.ca / "root-key.pem", 1000, 1000)
    r = run(base + tls)
    assert r.returncode == 1 and "root-key.pem: mode 0640" in r.stderr
    if os.geteuid() == 0:
        os.chown(d.ca / "root-key.pem", 0, 0)
    os.chmod(d.ca / "root-key.pem", 0o600)
    r = run(base + tls + ["--trust-domain", "other.org"])
    assert r.returncode == 1 and 'differs from the CA\'s "example.org"' in r.stderr
    r = run(base + tls + ["--listen", "nonsense"])
    assert r.returncode == 1 and "--listen" in r.stderr
    (tmp_path / "bad.json").write_text("{\"keys\": []}")
    r = run(base[:-1] + [str(tmp_path / "bad.json")] + tls)
    assert r.returncode == 1 and "bad.json" in r.stderr
    r = run(base + tls + ["--bogus"])
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr


def test_init_and_issue_commands(tmp_path):
    ca = tmp_path / "ca"
    r = run([binary("meshlet-ca"), "init", "--dir", str(ca), "--trust-domain", "corp.example",
             "--key-type", "ec-p384", "--intermediate"])
    assert r.returncode == 0, r.stderr
    for name, mode in [("root-cert.pem", 0o644), ("root-key.pem", 0o600),
                       ("ca-cert.pem", 0o644), ("ca-key.pem", 0o600), ("cert-chain.pem", 0o644)]:
        assert stat.S_IMODE(os.stat(ca / name).st_mode) == mode, name
    r = run([binary("meshlet-ca"), "init", "--dir", str(ca), "--trust-domain", "corp.example"])
    assert r.returncode == 1 and "already" in r.stderr
    r = run([binary("meshlet-ca"), "init", "--dir", str(tmp_path / "x"), "--trust-domain",
             "Bad_TD!"])
    assert r.returncode == 1
    r = run([binary("meshlet-ca"), "init", "--dir", str(tmp_path / "x"), "--trust-domain", "a",
             "--key-type", "dsa"])
    assert r.returncode == 2 and "--key-type" in r.stderr
    r = run([binary("meshlet-ca"), "issue", "--dir", str(ca), "--dns", "meshlet-webhook.svc",
             "--dns", "localhost", "--out", str(tmp_path / "wh"), "--ttl", "48h"])
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "wh.key").st_mode) == 0o600
    text = (tmp_path / "wh.crt").read_text()
    certs = [x509.load_pem_x509_certificate(("-----BEGIN" + part).encode())
             for part in text.split("-----BEGIN")[1:]]
    assert len(certs) == 2
    san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["meshlet-webhook.svc", "localhost"]
    r = run(["openssl", "verify", "-CAfile", str(ca / "root-cert.pem"), "-untrusted",
             str(ca / "cert-chain.pem"), str(tmp_path / "wh.crt")])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([binary("meshlet-ca"), "issue", "--dir", str(ca), "--out", str(tmp_path / "y")])
    assert r.returncode == 2 and "--dns" in r.stderr
    r = run([binary("meshlet-ca"), "issue", "--dir", str(ca), "--spiffe-id", "http://x",
             "--out", str(tmp_path / "y")])
    assert r.returncode == 2 and "spiffe://" in r.stderr


def test_token_command_is_a_kubernetes_shaped_token(tmp_path):
    d = CADir(tmp_path)
    r = run([binary("meshlet-ca"), "token", "--key", str(tmp_path / "issuer.key"), "--issuer",
             ISSUER, "--audience", AUDIENCE, "--namespace", "shop", "--service-account",
             "cart", "--pod", "cart-7d9", "--pod-uid", "0f1e", "--ttl", "10m"])
    assert r.returncode == 0, r.stderr
    head, payload, sig = r.stdout.strip().split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)
    header = json.loads(base64.urlsafe_b64decode(pad(head)))
    body = json.loads(base64.urlsafe_b64decode(pad(payload)))
    assert header == {"alg": "ES256", "kid": kid_of(d.issuer_key)}
    assert body["iss"] == ISSUER and body["aud"] == [AUDIENCE]
    assert body["sub"] == "system:serviceaccount:shop:cart"
    assert body["kubernetes.io"]["namespace"] == "shop"
    assert body["kubernetes.io"]["serviceaccount"]["name"] == "cart"
    assert body["kubernetes.io"]["pod"] == {"name": "cart-7d9", "uid": "0f1e"}
    assert body["exp"] - body["iat"] == 600
    # python3-cryptography verifies the ES256 signature independently.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import utils
    raw = base64.urlsafe_b64decode(pad(sig))
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                     int.from_bytes(raw[32:], "big"))
    d.issuer_key.public_key().verify(der, f"{head}.{payload}".encode(),
                                     ec.ECDSA(hashes.SHA256()))
    r = run([binary("meshlet-ca"), "token", "--help"])
    assert "DEVELOPMENT" in r.stdout
    r = run([binary("meshlet-ca"), "token", "--key", str(tmp_path / "issuer.key")])
    assert r.returncode == 2 and "required" in r.stderr


def test_sigterm_stops_cleanly(tmp_path):
    d = CADir(tmp_path)
    s = CAServer(d)
    assert s.stop() == 0
    assert '"msg":"stopping"' in s.log()
