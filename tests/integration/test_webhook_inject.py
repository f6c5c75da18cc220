# SPDX-License-Identifier: Apache-2.0
"""`meshlet-webhook inject`: offline injection into every workload kind, read back with
python3-yaml."""
import copy
import json

import pytest
import yaml

from cahelp import CADir
from conftest import binary, run

CONTAINER = {"name": "app", "image": "example/app:1.0",
             "ports": [{"containerPort": 8080}]}
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [CONTAINER]}}


def workload(kind, api="apps/v1"):
    obj = {"apiVersion": api, "kind": kind, "metadata": {"name": "web", "namespace": "shop"}}
    if kind == "Pod":
        obj["spec"] = copy.deepcopy(TEMPLATE["spec"])
    elif kind == "CronJob":
        obj["spec"] = {"schedule": "*/5 * * * *",
                       "jobTemplate": {"spec": {"template": copy.deepcopy(TEMPLATE)}}}
    else:
        obj["spec"] = {"selector": {"matchLabels": {"app": "web"}},
                       "template": copy.deepcopy(TEMPLATE)}
    return obj


KINDS = {
    "Pod": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1", "ReplicationController": "v1", "Job": "batch/v1",
    "CronJob": "batch/v1",
}


def pod_spec(obj):
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"], obj["metadata"]
    if kind == "CronJob":
        t = obj["spec"]["jobTemplate"]["spec"]["template"]
    else:
        t = obj["spec"]["template"]
    return t["spec"], t["metadata"]


def assert_injected(obj):
    spec, meta = pod_spec(obj)
    names = [c["name"] for c in spec.get("initContainers", []) + spec["containers"]]
    assert names.count("meshlet-proxy") == 1 and names.count("meshlet-init") == 1, names
    assert len(names) == len(set(names))
    assert "meshlet.io/status" in meta["annotations"]
    assert [c for c in spec["containers"] if c["name"] == "app"] == [CONTAINER]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = CADir(tmp_path_factory.mktemp("inject"))
    cfg = d.path / "webhook.yaml"
    cfg.write_text(f"mesh:\n  trust_bundle_file: {d.root}\n")
    return d, cfg


def inject(env, text, *extra, input_=None):
    d, cfg = env
    src = d.path / "in.yaml"
    src.write_text(text)
    args = [binary("meshlet-webhook"), "inject", "--config", str(cfg), "-f"]
    args += ["-"] if input_ is not None else [str(src)]
    return run(args + list(extra), input=input_)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_workload_kind(env, kind):
    obj = workload(kind, KINDS[kind])
    r = inject(env, yaml.safe_dump(obj))
    assert r.returncode == 0, r.stderr
    [out] = list(yaml.safe_load_all(r.stdout))
    assert out["kind"] == kind
    assert {k: v for k, v in out["metadata"].items() if k != "annotations"} == obj["metadata"]
    assert_injected(out)


def test_list_and_pass_through_in_one_stream(env):
    items = [workload("Deployment"), {"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": "web"},
                                      "spec": {"ports": [{"port": 80}]}}]
    stream = yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "List", "items": items},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
         "data": {"enabled": "yes", "port": "80"}},
        workload("Job", "batch/v1"),
    ])
    r = inject(env, stream)
    assert r.returncode == 0, r.stderr
    docs = list(yaml.safe_load_all(r.stdout))
    assert [d["kind"] for d in docs] == ["List", "ConfigMap", "Job"]
    assert_injected(docs[0]["items"][0])
    assert docs[0]["items"][1] == items[1]
    # Strings that look like booleans or numbers stay strings on the way out.
    assert docs[1]["data"] == {"enabled": "yes", "port": "80"}
    assert_injected(docs[2])


def test_json_input_from_stdin_and_output_file(env):
    d, _ = env
    out = d.path / "out.yaml"
    r = inject(env, "", "-o", str(out), input_=json.dumps(workload("Deployment")))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert_injected(yaml.safe_load(out.read_text()))


def test_skips_are_reported_and_left_alone(env):
    obj = workload("Deployment")
    obj["spec"]["template"]["spec"]["hostNetwork"] = True
    r = inject(env, yaml.safe_dump(obj))
    assert r.returncode == 0, r.stderr
    assert "Deployment shop/web: skipped" in r.stderr and "hostNetwork" in r.stderr
    assert yaml.safe_load(r.stdout) == obj


def test_injecting_twice_changes_nothing(env):
    first = inject(env, yaml.safe_dump(workload("StatefulSet")))
    second = inject(env, first.stdout)
    assert second.returncode == 0, second.stderr
    assert yaml.safe_load(second.stdout) == yaml.safe_load(first.stdout)
    assert "not injected again" in second.stderr


def proxy_env(obj):
    spec, _ = pod_spec(obj)
    proxy = next(c for c in spec.get("initContainers", []) + spec["containers"]
                 if c["name"] == "meshlet-proxy")
    return {e["name"]: e.get("value") for e in proxy["env"]}


@pytest.mark.parametrize("setting,want", [
    (None, "10.96.0.0/12"),
    ("[10.0.0.0/16, \"fd00:10:96::/112\"]", "10.0.0.0/16,fd00:10:96::/112"),
    ("[]", None),
])
def test_service_ranges(env, setting, want):
    d, cfg = env
    if setting is not None:
        cfg = d.path / "webhook-ranges.yaml"
        cfg.write_text(f"mesh:\n  trust_bundle_file: {d.root}\n  service_ranges: {setting}\n")
    r = inject((d, cfg), yaml.safe_dump(workload("Deployment")))
    assert r.returncode == 0, r.stderr
    assert proxy_env(yaml.safe_load(r.stdout)).get("MESHLET_SERVICE_RANGES") == want


def test_a_pod_the_webhook_would_deny_is_an_error(env):
    obj = workload("Deployment")
    obj["spec"]["template"]["metadata"]["annotations"] = {
        "meshlet.io/exclude-outbound-ports": "99999"}
    r = inject(env, yaml.safe_dump(obj))
    assert r.returncode == 1 and r.stdout == ""
    assert "Deployment shop/web: denied" in r.stderr and "99999" in r.stderr


@pytest.mark.parametrize("text,words", [
    ("kind: Pod\n\tmetadata: {}\n", "in.yaml:2"),
    ("a: 1\na: 2\n", "in.yaml:2"),
    ("[unclosed\n", "in.yaml"),
])
def test_bad_input(env, text, words):
    r = inject(env, text)
    assert r.returncode == 1 and words in r.stderr, r.stderr


def test_usage_errors(env):
    d, cfg = env
    r = run([binary("meshlet-webhook"), "inject"])
    assert r.returncode == 2 and "-f FILE" in r.stderr
    r = run([binary("meshlet-webhook"), "inject", "--config", str(cfg), "-f",
             str(d.path / "missing.yaml")])
    assert r.returncode == 1 and "missing.yaml" in r.stderr
