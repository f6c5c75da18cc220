# SPDX-License-Identifier: Apache-2.0
"""meshlet-ca with auth.jwks_url: the issuer's keys fetched from an HTTPS URL (as the API
server serves them at /openid/v1/jwks) and fetched again periodically."""
import time

import pytest

from cahelp import (OWN_TOKEN, CADir, CAServer, FakeAPIServer, claims, csr_pem, ec_key, jws,
                    kid_of, write_key)
from conftest import binary, run


def wait_for(check, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


@pytest.fixture
def setup(tmp_path):
    d = CADir(tmp_path)
    api = FakeAPIServer(d)
    (tmp_path / "own-token").write_text(OWN_TOKEN + "\n")
    cfg = tmp_path / "ca.yaml"
    cfg.write_text(
        "auth:\n"
        f"  jwks_url: https://localhost:{api.port}/openid/v1/jwks\n"
        "  jwks_refresh: 1s\n"
        f"  api_ca_file: {d.root}\n"
        f"  api_token_file: {tmp_path / 'own-token'}\n")
    yield d, api, cfg
    api.stop()


def test_keys_from_url_and_their_rotation(setup):
    d, api, cfg = setup
    api.jwks = d.jwks.read_text()
    s = CAServer(d, config=cfg, jwks_file=False)
    try:
        assert s.request("GET", "/readyz")[0] == 200
        assert s.certify(d.token(), csr_pem(ec_key()))[0] == 200
        fetch = [r for r in api.reviews if r["path"] == "/openid/v1/jwks"][0]
        assert fetch["auth"] == "Bearer " + OWN_TOKEN
        # The issuer rotates its key: the new one is picked up, the old one is gone.
        other = ec_key()
        write_key(d.path / "other.key", other)
        api.jwks = run([binary("meshlet-ca"), "jwks", "--key", str(d.path / "other.key")]).stdout
        token = jws({"alg": "ES256", "kid": kid_of(other)}, claims(), other)
        assert wait_for(lambda: s.certify(token, csr_pem(ec_key()))[0] == 200)
        status, _, body = s.certify(d.token(), csr_pem(ec_key()))
        assert status == 401 and body["error"] == "jwt_unknown_kid"
    finally:
        assert s.stop() == 0


def test_not_ready_until_the_keys_load(setup):
    d, api, cfg = setup
    s = CAServer(d, config=cfg, jwks_file=False)
    try:
        assert s.request("GET", "/readyz")[0] == 503
        status, headers, body = s.certify(d.token(), csr_pem(ec_key()))
        assert status == 503 and body["error"] == "jwks_unavailable"
        assert "not ready" in s.log() and "answered HTTP 404" in s.log()
        api.jwks = d.jwks.read_text()
        assert wait_for(lambda: s.request("GET", "/readyz")[0] == 200)
        assert s.certify(d.token(), csr_pem(ec_key()))[0] == 200
    finally:
        assert s.stop() == 0


def test_a_bad_answer_keeps_the_current_keys(setup):
    d, api, cfg = setup
    api.jwks = d.jwks.read_text()
    s = CAServer(d, config=cfg, jwks_file=False)
    try:
        api.jwks = '{"keys": []}'
        assert wait_for(lambda: "keeping the current ones" in s.log())
        assert s.certify(d.token(), csr_pem(ec_key()))[0] == 200
    finally:
        assert s.stop() == 0


def test_file_and_url_together_are_refused(setup, tmp_path):
    d, api, cfg = setup
    r = run([binary("meshlet-ca"), "--check-config", str(cfg)])
    assert r.returncode == 0, r.stderr
    with open(cfg, "a") as f:
        f.write("  jwks_file: /etc/jwks.json\n")
    r = run([binary("meshlet-ca"), "--check-config", str(cfg)])
    assert r.returncode == 1
    assert "auth.jwks_url: set auth.jwks_file or auth.jwks_url, not both" in r.stderr
