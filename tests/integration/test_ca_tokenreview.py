# SPDX-License-Identifier: Apache-2.0
"""meshlet-ca in tokenreview mode, against a small local HTTPS server that answers
TokenReview requests as the Kubernetes API server does (no kube-apiserver runs here)."""
import json
import time

import pytest

from cahelp import OWN_TOKEN, CADir, CAServer, FakeAPIServer, b64url, csr_pem, ec_key



def fake_token(kind, exp_in=3600):
    """A token-shaped string; only the fake API server reads it."""
    payload = b64url(json.dumps({"exp": int(time.time()) + exp_in, "kind": kind,
                                 "jti": time.monotonic_ns()}).encode())
    return f"{b64url(b'{}')}.{payload}.{b64url(kind.encode() + b'-signature')}"


@pytest.fixture
def setup(tmp_path):
    d = CADir(tmp_path)
    api = FakeAPIServer(d)
    (tmp_path / "own-token").write_text(OWN_TOKEN + "\n")
    cfg = tmp_path / "ca.yaml"
    cfg.write_text(
        "auth:\n"
        "  mode: tokenreview\n"
        f"  api_server: https://localhost:{api.port}\n"
        f"  api_ca_file: {d.root}\n"
        f"  api_token_file: {tmp_path / 'own-token'}\n"
        "  review_timeout: 2s\n")
    s = CAServer(d, config=cfg)
    yield d, api, s
    assert s.stop() == 0
    api.stop()


def test_authenticated_token_gets_a_certificate(setup):
    d, api, s = setup
    status, _, body = s.certify(fake_token("good"), csr_pem(ec_key()))
    assert status == 200, body
    assert body["spiffe_id"] == "spiffe://example.org/ns/default/sa/web"
    [review] = api.reviews
    assert review["path"] == "/apis/authentication.k8s.io/v1/tokenreviews"
    assert review["auth"] == "Bearer " + OWN_TOKEN
    assert review["body"]["apiVersion"] == "authentication.k8s.io/v1"
    assert review["body"]["kind"] == "TokenReview"
    assert review["body"]["spec"]["audiences"] == ["meshlet-ca"]
    rec = s.audit()[-1]
    assert rec["outcome"] == "issued" and rec["pod_name"] == "web-1" and rec["pod_uid"] == "pod-9"


def test_positive_answers_are_cached(setup):
    d, api, s = setup
    token = fake_token("good")
    for _ in range(3):
        assert s.certify(token, csr_pem(ec_key()))[0] == 200
    assert len(api.reviews) == 1
    # A new token is reviewed again.
    assert s.certify(fake_token("good"), csr_pem(ec_key()))[0] == 200
    assert len(api.reviews) == 2


def test_never_cached_past_the_token_expiry(setup):
    d, api, s = setup
    token = fake_token("good", exp_in=1)
    assert s.certify(token, csr_pem(ec_key()))[0] == 200
    time.sleep(2.2)
    assert s.certify(token, csr_pem(ec_key()))[0] == 200
    assert len(api.reviews) == 2


@pytest.mark.parametrize("kind,words", [
    ("denied", "did not authenticate the token: token has expired"),
    ("other-audience", "not meant for audience \"meshlet-ca\""),
    ("user", "not a service account's (user \"alice\")"),
])
def test_refused_tokens(setup, kind, words):
    d, api, s = setup
    status, _, body = s.certify(fake_token(kind), csr_pem(ec_key()))
    assert status == 401 and body["error"] == "tokenreview_denied", body
    assert words in body["message"]
    assert s.audit()[-1]["reason"] == "tokenreview_denied"


def test_api_server_down(setup):
    d, api, s = setup
    cached = fake_token("good")
    assert s.certify(cached, csr_pem(ec_key()))[0] == 200
    api.stop()
    status, headers, body = s.certify(fake_token("good"), csr_pem(ec_key()))
    assert status == 503 and body["error"] == "tokenreview_unavailable", body
    assert "cannot ask the Kubernetes API" in body["message"] and "refused" in body["message"]
    assert headers["Retry-After"] == "1"
    assert s.audit()[-1]["outcome"] == "error"
    # Everything that does not need the API keeps working, the cached token included.
    assert s.request("GET", "/healthz")[0] == 200
    assert s.request("GET", "/v1/bundle")[0] == 200
    assert s.certify(cached, csr_pem(ec_key()))[0] == 200


def test_own_token_rejected_by_the_api(setup):
    d, api, s = setup
    (d.path / "own-token").write_text("stale-token\n")
    status, _, body = s.certify(fake_token("good"), csr_pem(ec_key()))
    assert status == 503 and "answered the TokenReview with HTTP 401" in body["message"]
