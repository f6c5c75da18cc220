# SPDX-License-Identifier: Apache-2.0
"""meshlet-webhook end to end: real AdmissionReviews over TLS to the real binary, patches
applied by python3-jsonpatch, an independent RFC 6902 implementation."""
import base64
import copy
import http.client
import json
import ssl
import subprocess
import time
import uuid

import jsonpatch
import pytest

from cahelp import CADir
from conftest import SLOW, binary, daemon_argv, run


def pod(name="web-1", labels=None, annotations=None, containers=None, init=None, volumes=None,
        host_network=None, generate_name=None):
    meta = {}
    if name:
        meta["name"] = name
    if generate_name:
        meta["generateName"] = generate_name
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    spec = {"containers": containers or [{
        "name": "web", "image": "nginx:1.25",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}] if volumes else [],
    }], "serviceAccountName": "web"}
    if init is not None:
        spec["initContainers"] = init
    if volumes is not None:
        spec["volumes"] = volumes
    if host_network is not None:
        spec["hostNetwork"] = host_network
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def review(obj, operation="CREATE", kind="Pod", namespace="shop", resource="pods"):
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": resource},
            "requestKind": {"group": "", "version": "v1", "kind": kind},
            "namespace": namespace, "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj, "oldObject": None, "dryRun": False,
        },
    }


class Webhook:
    def __init__(self, cadir, config_text=""):
        self.dir = cadir
        self.cfg = cadir.path / f"webhook-{time.monotonic_ns()}.yaml"
        self.cfg.write_text(f"mesh:\n  trust_bundle_file: {cadir.root}\n" + config_text)
        self.audit_path = cadir.path / f"webhook-audit-{time.monotonic_ns()}.log"
        self.log_path = cadir.path / f"webhook-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(daemon_argv(
            [binary("meshlet-webhook"), "serve", "--config", str(self.cfg), "--listen",
             "127.0.0.1:0", "--tls-cert", str(cadir.path / "serving.crt"), "--tls-key",
             str(cadir.path / "serving.key")], "meshlet-webhook"),
            stdout=open(self.audit_path, "w"), stderr=open(self.log_path, "w"))
        self.port = None
        deadline = time.time() + 10 * SLOW
        while self.port is None and time.time() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            for line in self.log_path.read_text().splitlines():
                if '"msg":"serving"' in line:
                    self.port = json.loads(line)["port"]
            time.sleep(0.02)
        assert self.port, self.log_path.read_text()

    def post(self, body, path="/inject?timeout=10s", content_type="application/json",
             method="POST"):
        ctx = ssl.create_default_context(cafile=str(self.dir.root))
        conn = http.client.HTTPSConnection("localhost", self.port, context=ctx,
                                           timeout=10 * SLOW)
        try:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            conn.request(method, path, body=data, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def review(self, obj, **kw):
        req = review(obj, **kw)
        status, data = self.post(req)
        assert status == 200, data
        doc = json.loads(data)
        assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
        assert doc["response"]["uid"] == req["request"]["uid"]
        return doc["response"]

    def audit(self):
        return [json.loads(l) for l in self.audit_path.read_text().splitlines()]

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=10 * SLOW) == 0


@pytest.fixture(scope="module")
def hook(tmp_path_factory):
    w = Webhook(CADir(tmp_path_factory.mktemp("webhook")))
    yield w
    w.stop()


def apply(resp, obj):
    assert ("patch" in resp) == ("patchType" in resp)
    assert resp["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(resp["patch"]))
    return jsonpatch.JsonPatch(ops).apply(copy.deepcopy(obj)), ops


def check_injected(before, after, native=True):
    spec = after["spec"]
    containers = spec["containers"]
    inits = spec.get("initContainers", [])
    everything = containers + inits
    names = [c["name"] for c in everything]
    assert len(names) == len(set(names)), names
    assert names.count("meshlet-proxy") == 1 and names.count("meshlet-init") == 1
    # The user's containers are there, in order, unchanged but for rewritten probes.
    user = [c for c in containers if c["name"] != "meshlet-proxy"]
    assert [c["name"] for c in user] == [c["name"] for c in before["spec"]["containers"]]
    for was, now in zip(before["spec"]["containers"], user):
        assert {k: v for k, v in now.items() if not k.endswith("Probe")} == \
            {k: v for k, v in was.items() if not k.endswith("Probe")}
    volumes = {v["name"] for v in spec.get("volumes", [])}
    for c in everything:
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes, (c["name"], m["name"])
    proxy = next(c for c in everything if c["name"] == "meshlet-proxy")
    if native:
        assert [c["name"] for c in inits][:2] == ["meshlet-init", "meshlet-proxy"]
        assert proxy["restartPolicy"] == "Always"
    else:
        assert containers[-1]["name"] == "meshlet-proxy"
        assert inits[-1]["name"] == "meshlet-init"
    status = json.loads(after["metadata"]["annotations"]["meshlet.io/status"])
    assert "meshlet-proxy" in json.dumps(status)
    return proxy


def test_injects_a_pod(hook):
    p = pod(annotations={"team": "shop"}, volumes=[{"name": "data", "emptyDir": {}}],
            init=[{"name": "migrate", "image": "busybox"}])
    resp = hook.review(p)
    assert resp["allowed"] is True
    assert resp["auditAnnotations"] == {"decision": "injected", "reason": "injected"}
    after, ops = apply(resp, p)
    proxy = check_injected(p, after)
    assert after["metadata"]["annotations"]["team"] == "shop"
    assert after["spec"]["initContainers"][-1]["name"] == "migrate"
    env = {e["name"]: e for e in proxy["env"]}
    assert env["MESHLET_TRUST_BUNDLE"]["value"] == hook.dir.root.read_text()
    assert env["MESHLET_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # mesh.service_ranges by default: kubeadm's, kind's and minikube's Service range.
    assert env["MESHLET_SERVICE_RANGES"]["value"] == "10.96.0.0/12"
    assert proxy["securityContext"]["runAsUser"] == 1337
    assert proxy["securityContext"]["readOnlyRootFilesystem"] is True
    init = next(c for c in after["spec"]["initContainers"] if c["name"] == "meshlet-init")
    assert set(init["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    assert init["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # The app's probe now goes through the proxy's health port.
    web = after["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["port"] == 15021
    rec = hook.audit()[-1]
    assert rec["decision"] == "injected" and rec["namespace"] == "shop"
    assert rec["name"] == "web-1" and rec["patch_ops"] == len(ops)
    assert rec["user"].endswith("replicaset-controller") and rec["latency_us"] >= 0


@pytest.mark.parametrize("shape", ["bare", "no_annotations", "no_init", "no_volumes"])
def test_pods_missing_whole_fields_get_a_patch_that_applies(hook, shape):
    p = pod(annotations={"a": "b"}, init=[{"name": "i", "image": "busybox"}],
            volumes=[{"name": "data", "emptyDir": {}}])
    if shape in ("bare", "no_annotations"):
        del p["metadata"]["annotations"]
    if shape in ("bare", "no_init"):
        del p["spec"]["initContainers"]
    if shape in ("bare", "no_volumes"):
        del p["spec"]["volumes"]
        p["spec"]["containers"][0]["volumeMounts"] = []
    after, _ = apply(hook.review(p), p)
    check_injected(p, after)


def test_second_review_adds_nothing(hook):
    p = pod()
    after, _ = apply(hook.review(p), p)
    resp = hook.review(after)
    assert resp["allowed"] is True and "patch" not in resp and "patchType" not in resp
    assert resp["auditAnnotations"]["decision"] == "skipped"
    assert resp["auditAnnotations"]["reason"] == "already_injected"


def test_generate_name_only(hook):
    p = pod(name=None, generate_name="web-7d9f8-")
    after, _ = apply(hook.review(p), p)
    check_injected(p, after)
    assert hook.audit()[-1]["name"] == "web-7d9f8-"


@pytest.mark.parametrize("obj,kw,reason", [
    (pod(labels={"meshlet.io/inject": "disabled"}), {}, None),
    (pod(annotations={"meshlet.io/inject": "disabled"}), {}, None),
    (pod(host_network=True), {}, "host_network"),
    (pod(), {"namespace": "kube-system"}, None),
    (pod(), {"operation": "UPDATE"}, "not_create"),
    (pod(), {"operation": "DELETE"}, "not_create"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}},
     {"kind": "Service", "resource": "services"}, "not_a_pod"),
])
def test_no_patch(hook, obj, kw, reason):
    resp = hook.review(obj, **kw)
    assert resp["allowed"] is True and "patch" not in resp and "patchType" not in resp
    assert resp["auditAnnotations"]["decision"] == "skipped"
    if reason:
        assert resp["auditAnnotations"]["reason"] == reason
    if reason == "host_network":
        assert any("hostNetwork" in w for w in resp["warnings"])


def test_label_wins_over_annotation(hook):
    p = pod(labels={"meshlet.io/inject": "enabled"},
            annotations={"meshlet.io/inject": "disabled"})
    assert "patch" in hook.review(p)
    p = pod(labels={"meshlet.io/inject": "disabled"},
            annotations={"meshlet.io/inject": "enabled"})
    assert "patch" not in hook.review(p)


def test_classic_mode_by_annotation(hook):
    p = pod(annotations={"meshlet.io/native-sidecar": "false"},
            init=[{"name": "migrate", "image": "busybox"}])
    after, _ = apply(hook.review(p), p)
    check_injected(p, after, native=False)


def proxy_env(after):
    everything = after["spec"].get("initContainers", []) + after["spec"]["containers"]
    proxy = next(c for c in everything if c["name"] == "meshlet-proxy")
    return {e["name"]: e.get("value") for e in proxy["env"]}


def test_policy_settings_reach_the_proxy(hook):
    """The proxy reads policies from the mounted ConfigMap, the pod's labels from the
    downward API, and decides per request on the app's HTTP ports: container ports named
    http or http-*, or with appProtocol http, as Istio reads a Service's ports."""
    p = pod(containers=[
        {"name": "web", "image": "nginx:1.25",
         "ports": [{"name": "http", "containerPort": 8080},
                   {"name": "http-admin", "containerPort": 9000},
                   {"name": "grpc", "containerPort": 9090},
                   {"name": "http2", "containerPort": 9091},
                   {"name": "web", "containerPort": 8081, "appProtocol": "http"}]},
        {"name": "db", "image": "postgres:16", "ports": [{"containerPort": 5432}]}])
    after, _ = apply(hook.review(p), p)
    env = proxy_env(after)
    assert env["MESHLET_HTTP_PORTS"] == "8080,9000,8081"
    assert env["MESHLET_POLICY_PATHS"] == "/etc/meshlet/policy"
    assert env["MESHLET_POD_LABELS_FILE"] == "/etc/meshlet/podinfo/labels"
    # The annotation overrides what the ports say.
    p = pod(annotations={"meshlet.io/http-ports": "80,8080"})
    env = proxy_env(apply(hook.review(p), p)[0])
    assert env["MESHLET_HTTP_PORTS"] == "80,8080"
    # No HTTP port: every port is decided per connection.
    p = pod(containers=[{"name": "db", "image": "postgres:16",
                         "ports": [{"name": "tcp-pg", "containerPort": 5432}]}])
    assert "MESHLET_HTTP_PORTS" not in proxy_env(apply(hook.review(p), p)[0])


def test_service_ranges_reach_the_proxy(tmp_path):
    """mesh.service_ranges becomes MESHLET_SERVICE_RANGES: the CIDRs joined with commas,
    addresses written canonically; an empty list sets no variable."""
    d = CADir(tmp_path)
    w = Webhook(d, "  service_ranges: [10.0.0.0/16, \"FD00:10:96::/112\"]\n")
    try:
        p = pod()
        after, _ = apply(w.review(p), p)
        env = proxy_env(after)
        assert env["MESHLET_SERVICE_RANGES"] == "10.0.0.0/16,fd00:10:96::/112"
        # At a fixed place: after the entries every pod shares, before the log level.
        names = list(env)
        assert names.index("MESHLET_SERVICE_RANGES") == \
            names.index("MESHLET_LOG_LEVEL") - 1, names
    finally:
        w.stop()
    w = Webhook(d, "  service_ranges: []\n")
    try:
        p = pod()
        env = proxy_env(apply(w.review(p), p)[0])
        assert "MESHLET_SERVICE_RANGES" not in env
        assert env["MESHLET_LOG_LEVEL"] == "info"
    finally:
        w.stop()


@pytest.mark.parametrize("value,line,words", [
    ('["*"]', 2, 'mesh.service_ranges: item 1 "*" may not hold "*" here'),
    ("[10.96.0.0/12, 10.96.0.0/33]", 2,
     'mesh.service_ranges: item 2 "10.96.0.0/33" is not a CIDR'),
    ("[10.96.0.0]", 2,
     'mesh.service_ranges: item 1 "10.96.0.0" is not a CIDR: it needs a prefix length'),
    ("10.96.0.0/12", 2, "mesh.service_ranges: expected a list of strings, got a scalar"),
])
def test_bad_service_ranges_are_refused_at_start(tmp_path, value, line, words):
    d = CADir(tmp_path)
    cfg = tmp_path / "webhook.yaml"
    cfg.write_text(f"mesh:\n  service_ranges: {value}\n  trust_bundle_file: {d.root}\n")
    r = run([binary("meshlet-webhook"), "--check-config", str(cfg)])
    assert r.returncode == 1 and f"{cfg}:{line}: {words}" in r.stderr, r.stderr
    r = run([binary("meshlet-webhook"), "serve", "--config", str(cfg), "--listen",
             "127.0.0.1:0", "--tls-cert", str(d.path / "serving.crt"), "--tls-key",
             str(d.path / "serving.key")])
    assert r.returncode != 0 and f"{cfg}:{line}: {words}" in r.stderr, r.stderr


@pytest.mark.parametrize("key,value", [
    ("meshlet.io/http-ports", "http"),
    ("meshlet.io/exclude-outbound-ports", "80,99999"),
    ("meshlet.io/exclude-outbound-ip-ranges", "10.0.0.0/33"),
    ("meshlet.io/proxy-memory-limit", "lots"),
    ("meshlet.io/native-sidecar", "maybe"),
    ("meshlet.io/inject", "sometimes"),
])
def test_bad_annotation_denies_the_pod(hook, key, value):
    resp = hook.review(pod(annotations={key: value}))
    assert resp["allowed"] is False and "patch" not in resp
    assert resp["status"]["code"] == 400
    assert key in resp["status"]["message"] and value in resp["status"]["message"]
    assert resp["auditAnnotations"]["decision"] == "denied"
    assert hook.audit()[-1]["decision"] == "denied"


@pytest.mark.parametrize("body,words", [
    ('{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {',
     "not JSON"),
    ('{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "no request"),
    (json.dumps({**review(pod()), "request": {**review(pod())["request"], "uid": 7}}),
     "request.uid"),
    (json.dumps({**review(pod()), "request": {**review(pod())["request"], "object": None}}),
     "request.object"),
    (json.dumps({**review(pod()), "request": {**review(pod())["request"], "kind": "Pod"}}),
     "request.kind"),
    ('[1, 2]', "JSON object"),
    ('{"kind": "Pod"}', "AdmissionReview"),
])
def test_malformed_requests(hook, body, words):
    status, data = hook.post(body)
    assert status == 400, data
    doc = json.loads(data)
    assert doc["error"] == "bad_request" and words in doc["message"], doc
    assert hook.audit()[-1]["decision"] == "error"
    assert "patch" in hook.review(pod())  # still serving


def test_http_level_refusals(hook):
    status, data = hook.post(review(pod()), content_type="text/plain")
    assert status == 415
    status, data = hook.post(b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert status == 413
    status, data = hook.post("", method="GET")
    assert status == 405
    status, _ = hook.post("", path="/nope", method="GET")
    assert status == 404
    assert "patch" in hook.review(pod())


def test_health_and_metrics(hook):
    assert hook.post("", path="/healthz", method="GET")[0] == 200
    assert hook.post("", path="/readyz", method="GET")[0] == 200
    status, data = hook.post("", path="/metrics", method="GET")
    text = data.decode()
    assert status == 200
    injected = [l for l in text.splitlines()
                if l.startswith('meshlet_webhook_reviews_total{decision="injected"}')]
    assert int(injected[0].split()[-1]) >= 1
    assert 'meshlet_webhook_review_duration_seconds_bucket{le="+Inf"}' in text


def test_policy_disabled_and_annotation(tmp_path):
    d = CADir(tmp_path)
    w = Webhook(d, "inject:\n  policy: disabled\n")
    try:
        assert "patch" not in w.review(pod())
        assert "patch" in w.review(pod(annotations={"meshlet.io/inject": "enabled"}))
    finally:
        w.stop()
