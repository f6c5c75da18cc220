# SPDX-License-Identifier: Apache-2.0
"""The Kubernetes manifests: the base and every overlay rendered with `kubectl kustomize`
(and the overlay that manifests/bootstrap.sh writes), checked object by object; then the
bootstrap install's own Secrets, ConfigMaps and commands run by the real daemons, laid out
on disk as the kubelet would, and asked what a cluster would ask them."""
import base64
import http.client
import json
import os
import pathlib
import re
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import uuid

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cahelp import claims, csr_pem, ec_key, jws, kid_of, write_key
from conftest import ROOT, binary, run

MANIFESTS = ROOT / "manifests"
VERSION = (ROOT / "VERSION").read_text().strip()
NS = "meshlet-system"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: the manifests cannot be rendered "
    "without `kubectl kustomize` (install kubectl to run these tests)")

# The Secrets the base mounts and leaves to an overlay, with the keys it reads.
OVERLAY_SECRETS = {
    "meshlet-ca-root": {"tls.crt", "tls.key"},
    "meshlet-ca-tls": {"tls.crt", "tls.key"},
    "meshlet-webhook-tls": {"tls.crt", "tls.key", "ca.crt"},
}
OVERLAYS = sorted(p.parent.relative_to(MANIFESTS).as_posix()
                  for p in MANIFESTS.glob("overlays/*/kustomization.yaml"))
RENDERINGS = ["base"] + OVERLAYS + ["bootstrap", "bootstrap --tokenreview"]
# Renderings without Secrets: applied alone they are not a complete install.
INCOMPLETE = {"base", "overlays/tokenreview"}


# --- rendering ---------------------------------------------------------------------------

def kustomize(path):
    r = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"kubectl kustomize {path} failed:\n{r.stderr}"
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert docs, f"kubectl kustomize {path} rendered nothing"
    return docs


def bootstrap(out, *args):
    return run(["bash", str(MANIFESTS / "bootstrap.sh"), "--meshlet-ca", binary("meshlet-ca"),
                "-o", str(out)] + list(args))


class Rendering:
    def __init__(self, name, docs, out=None):
        self.name, self.docs, self.out = name, docs, out

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind, name):
        """The object of that kind and name; generated ConfigMaps and Secrets carry a hash
        suffix, which a reference names in full."""
        found = [d for d in self.all(kind)
                 if re.fullmatch(re.escape(name) + r"(-[a-z0-9]{10})?", d["metadata"]["name"])]
        assert len(found) <= 1, (kind, name, found)
        return found[0] if found else None

    def exact(self, kind, name):
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        return found[0] if found else None

    def deployment(self, name):
        d = self.get("Deployment", name)
        assert d is not None, f"{self.name}: no Deployment {name}"
        return d

    def config(self, deployment):
        """The configuration file a Deployment's main container runs with, parsed, and the
        binary that reads it."""
        pod = self.deployment(deployment)["spec"]["template"]["spec"]
        c = main_container(pod, deployment)
        cmd = c["command"] + c.get("args", [])
        path = cmd[cmd.index("--config") + 1]
        text = mounted_file(self, pod, c, path)
        return cmd[0], text, yaml.safe_load(text)

    def webhook(self):
        mwcs = self.all("MutatingWebhookConfiguration")
        assert len(mwcs) == 1, mwcs
        assert len(mwcs[0]["webhooks"]) == 1
        return mwcs[0], mwcs[0]["webhooks"][0]


_cache = {}


@pytest.fixture(params=RENDERINGS)
def rendering(request, tmp_path_factory):
    if KUBECTL is None:
        pytest.skip(needs_kubectl.kwargs["reason"])
    name = request.param
    if name not in _cache:
        out = None
        if name.startswith("bootstrap"):
            out = tmp_path_factory.mktemp("bootstrap") / "install"
            r = bootstrap(out, *name.split()[1:])
            assert r.returncode == 0, r.stderr
            docs = kustomize(out)
        else:
            docs = kustomize(MANIFESTS / name)
        _cache[name] = Rendering(name, docs, out)
    return _cache[name]


def main_container(pod, name):
    found = [c for c in pod["containers"] if c["name"] == name]
    assert len(found) == 1, (name, [c["name"] for c in pod["containers"]])
    return found[0]


def all_containers(pod):
    return pod.get("initContainers", []) + pod["containers"]


def volume_of(pod, container, path):
    """The volume (and mount) under which a container sees path."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    assert best is not None, f"{container['name']}: nothing is mounted at {path}"
    vols = [v for v in pod["volumes"] if v["name"] == best["name"]]
    assert len(vols) == 1, (best["name"], pod["volumes"])
    rel = path[len(best["mountPath"].rstrip("/")) + 1:]
    return vols[0], best, rel


def mounted_file(r, pod, container, path):
    vol, _, rel = volume_of(pod, container, path)
    assert "configMap" in vol, f"{path} is not in a ConfigMap: {vol}"
    cm = r.exact("ConfigMap", vol["configMap"]["name"])
    assert cm is not None, f"{r.name}: ConfigMap {vol['configMap']['name']} is not rendered"
    return cm["data"][rel]


def port_number(container, port):
    if isinstance(port, int):
        return port
    found = [p["containerPort"] for p in container.get("ports", []) if p["name"] == port]
    assert len(found) == 1, (container["name"], port)
    return found[0]


def listen_port(config):
    return int(config["listen"].rsplit(":", 1)[1])


def service_target(r, service_name, port):
    """The container port that port of the Service reaches, and the Deployment behind it."""
    svc = r.exact("Service", service_name)
    assert svc is not None, f"{r.name}: no Service {service_name}"
    sp = [p for p in svc["spec"]["ports"] if p["port"] == port]
    assert len(sp) == 1, (service_name, port, svc["spec"]["ports"])
    sel = svc["spec"]["selector"]
    deps = [d for d in r.all("Deployment")
            if sel.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert len(deps) == 1, f"Service {service_name} selects {len(deps)} Deployments"
    pod = deps[0]["spec"]["template"]["spec"]
    c = main_container(pod, deps[0]["metadata"]["name"])
    return port_number(c, sp[0].get("targetPort", port)), deps[0]


def selector_matches(sel, labels):
    """A Kubernetes LabelSelector, evaluated as the API server does."""
    for k, v in sel.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions", []):
        k, op, vals = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def reference_default(program, key):
    r = run([binary(program), "--config-reference"])
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1] == f"`{key}`":
            return cells[3].strip("`")
    raise AssertionError(f"{program} --config-reference has no {key}")


def lookup(config, dotted, program):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return reference_default(program, dotted)
        node = node[part]
    return node


# --- the objects -------------------------------------------------------------------------

@needs_kubectl
def test_every_rendering_has_the_whole_install(rendering):
    r = rendering
    assert [n["metadata"]["name"] for n in r.all("Namespace")] == [NS]
    assert {s["metadata"]["name"] for s in r.all("ServiceAccount")} == \
        {"meshlet-ca", "meshlet-webhook"}
    for name in ("meshlet-ca", "meshlet-webhook"):
        assert r.deployment(name)["spec"]["template"]["spec"]["serviceAccountName"] == name
        assert r.exact("Service", name) is not None
        assert r.exact("PodDisruptionBudget", name) is not None
    r.webhook()
    cluster_scoped = {"Namespace", "MutatingWebhookConfiguration", "ClusterRole",
                      "ClusterRoleBinding"}
    for d in r.docs:
        if d["kind"] not in cluster_scoped:
            assert d["metadata"].get("namespace") == NS, (d["kind"], d["metadata"])


@needs_kubectl
@pytest.mark.parametrize("name", ["meshlet-ca", "meshlet-webhook"])
def test_deployment_shape(rendering, name):
    dep = rendering.deployment(name)
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = spec["template"]["metadata"]["labels"]
    assert selector_matches(spec["selector"], labels)
    assert labels.get("meshlet.io/inject") == "disabled"
    pod = spec["template"]["spec"]
    c = main_container(pod, name)
    https = port_number(c, "https")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert (get["path"], get["scheme"], port_number(c, get["port"])) == \
            (path, "HTTPS", https), (name, probe)
    for ct in all_containers(pod):
        res = ct["resources"]
        assert res["requests"]["cpu"] and res["requests"]["memory"], ct["name"]
        assert res["limits"]["memory"], ct["name"]
    spread = [t for t in pod["topologySpreadConstraints"]
              if t["topologyKey"] == "kubernetes.io/hostname"]
    assert len(spread) == 1 and spread[0]["maxSkew"] == 1
    assert selector_matches(spread[0]["labelSelector"], labels)
    pdb = rendering.exact("PodDisruptionBudget", name)
    assert pdb["apiVersion"] == "policy/v1"
    assert selector_matches(pdb["spec"]["selector"], labels)
    assert 1 <= pdb["spec"]["minAvailable"] < spec["replicas"]


@needs_kubectl
def test_security_context(rendering):
    for dep in rendering.all("Deployment"):
        pod = dep["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), key
        for c in all_containers(pod):
            sc = c["securityContext"]
            where = (dep["metadata"]["name"], c["name"])
            assert sc["runAsNonRoot"] is True, where
            assert sc.get("runAsUser", psc["runAsUser"]) != 0, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert not sc.get("privileged"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
    ns = rendering.exact("Namespace", NS)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@needs_kubectl
def test_mutating_webhook_configuration(rendering):
    _, wh = rendering.webhook()
    assert wh["name"] == "sidecar-injector.meshlet.io"
    assert wh["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                            "resources": ["pods"], "scope": "Namespaced"}]
    assert wh["sideEffects"] == "None"
    assert wh["admissionReviewVersions"] == ["v1"]
    assert wh["timeoutSeconds"] == 5
    assert wh["reinvocationPolicy"] == "IfNeeded"
    assert wh["failurePolicy"] == "Fail"

    def ns(name, **labels):
        return {"kubernetes.io/metadata.name": name, **labels}
    on = {"meshlet.io/inject": "enabled"}
    sel = wh["namespaceSelector"]
    assert selector_matches(sel, ns("shop", **on))
    assert not selector_matches(sel, ns("shop"))
    assert not selector_matches(sel, ns("shop", **{"meshlet.io/inject": "disabled"}))
    assert not selector_matches(sel, ns("kube-system", **on))
    assert not selector_matches(sel, ns(NS, **on))
    # The API server sees the selector's keys literally: both exclusions are by name.
    names = [e for e in sel["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name"]
    assert names and names[0]["operator"] == "NotIn"
    assert {"kube-system", NS} <= set(names[0]["values"])

    obj = wh["objectSelector"]
    assert selector_matches(obj, {})
    assert selector_matches(obj, {"app": "web", "meshlet.io/inject": "enabled"})
    assert not selector_matches(obj, {"app": "web", "meshlet.io/inject": "disabled"})

    svc = wh["clientConfig"]["service"]
    assert (svc["namespace"], svc["path"]) == (NS, "/inject")
    port, dep = service_target(rendering, svc["name"], svc.get("port", 443))
    assert dep["metadata"]["name"] == "meshlet-webhook"
    _, _, cfg = rendering.config("meshlet-webhook")
    assert port == listen_port(cfg)
    assert "url" not in wh["clientConfig"]


@needs_kubectl
def test_ca_bundle(rendering):
    mwc, wh = rendering.webhook()
    annotation = mwc["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
    bundle = wh["clientConfig"].get("caBundle")
    if rendering.name in INCOMPLETE:
        assert bundle is None and annotation is None
    elif rendering.name == "overlays/cert-manager":
        assert bundle is None
        ns, name = annotation.split("/")
        cert = rendering.exact("Certificate", name)
        assert ns == NS and cert is not None and cert["metadata"]["namespace"] == NS
        assert cert["spec"]["secretName"] == "meshlet-webhook-tls"
        assert "meshlet-webhook.meshlet-system.svc" in cert["spec"]["dnsNames"]
    else:
        assert annotation is None
        pem = base64.b64decode(bundle)
        assert pem == (rendering.out / "ca" / "root-cert.pem").read_bytes()
        assert x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca


def secret_refs(pod):
    """Every Secret and ConfigMap a pod mounts or takes values from: (kind, name, keys)."""
    refs = []
    for v in pod.get("volumes", []):
        if "secret" in v:
            refs.append(("Secret", v["secret"]["secretName"],
                         {i["key"] for i in v["secret"].get("items", [])}))
        if "configMap" in v:
            refs.append(("ConfigMap", v["configMap"]["name"],
                         {i["key"] for i in v["configMap"].get("items", [])}))
        for src in v.get("projected", {}).get("sources", []):
            for kind, field in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if field in src:
                    refs.append((kind, src[field]["name"],
                                 {i["key"] for i in src[field].get("items", [])}))
    for c in all_containers(pod):
        for e in c.get("envFrom", []):
            for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if field in e:
                    refs.append((kind, e[field]["name"], set()))
        for e in c.get("env", []):
            vf = e.get("valueFrom", {})
            for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if field in vf:
                    refs.append((kind, vf[field]["name"], {vf[field]["key"]}))
    return refs


@needs_kubectl
def test_every_mounted_secret_and_configmap_exists(rendering):
    r = rendering
    certificates = {c["spec"]["secretName"]: c for c in r.all("Certificate")}
    missing = {}
    for dep in r.all("Deployment"):
        for kind, name, keys in secret_refs(dep["spec"]["template"]["spec"]):
            obj = r.exact(kind, name)
            if obj is not None:
                data = set(obj.get("data", {})) | set(obj.get("binaryData", {}))
                assert keys <= data, (kind, name, keys - data)
            elif kind == "Secret" and name in certificates:
                # cert-manager writes tls.crt, tls.key and ca.crt.
                assert keys <= {"tls.crt", "tls.key", "ca.crt"}, (name, keys)
            else:
                assert kind == "Secret", f"{r.name}: ConfigMap {name} is not rendered"
                missing.setdefault(name, set()).update(keys)
    if r.name in INCOMPLETE:
        # The base leaves exactly these to an overlay (and says so).
        assert missing == OVERLAY_SECRETS
    else:
        assert missing == {}, f"{r.name}: Secrets mounted but not rendered: {missing}"
    for issuer in r.all("Issuer"):
        if "ca" in issuer["spec"]:
            assert issuer["spec"]["ca"]["secretName"] in certificates
    for cert in r.all("Certificate"):
        assert r.exact(cert["spec"]["issuerRef"]["kind"], cert["spec"]["issuerRef"]["name"])
    # Only meshlet-ca mounts the CA's key.
    for dep in r.all("Deployment"):
        names = {n for k, n, _ in secret_refs(dep["spec"]["template"]["spec"])
                 if k == "Secret"}
        if dep["metadata"]["name"] != "meshlet-ca":
            assert not any(n.startswith("meshlet-ca-root") for n in names)


@needs_kubectl
def test_secrets_are_mounted_for_the_pod_user(rendering):
    """The kubelet makes Secret files owned by root, group fsGroup, mode defaultMode plus
    0440; meshlet accepts group read on a key only in that case (root owns it). The pod
    runs one container, no sidecar: nothing here needs Kubernetes 1.29's native sidecars
    (manifests/README.md states 1.25)."""
    for dep in rendering.all("Deployment"):
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsUser"] > 0 and psc["runAsGroup"] > 0, (name, psc)
        assert psc["fsGroup"] > 0, (name, psc)
        assert [c["name"] for c in all_containers(pod)] == [name]
        for v in pod["volumes"]:
            if "secret" not in v:
                assert "emptyDir" not in v, (name, v)
                continue
            s = v["secret"]
            keys = [i["key"] for i in s["items"]] if "items" in s else None
            if keys is None or "tls.key" in keys:
                assert s.get("defaultMode") in (0o440, 0o400), (name, v)
                assert not [i for i in s.get("items", []) if "mode" in i], (name, v)
            assert not s.get("optional"), (name, v)


def secret_source(r, pod, container, path):
    """Where the file at path comes from: (Secret name, key). It must be a Secret volume
    mounted whole: with subPath the kubelet would never replace the file when the Secret
    changes, and the daemons would keep an expired certificate."""
    vol, mount, rel = volume_of(pod, container, path)
    assert "secret" in vol, f"{path} is not in a Secret volume: {vol}"
    assert "subPath" not in mount and "subPathExpr" not in mount, (path, mount)
    assert mount.get("readOnly") is True, (path, mount)
    items = vol["secret"].get("items")
    if items:
        key = [i["key"] for i in items if i["path"] == rel]
        assert key, f"{path}: no item of Secret {vol['secret']['secretName']} is {rel}"
        return vol["secret"]["secretName"], key[0]
    return vol["secret"]["secretName"], rel


@needs_kubectl
def test_config_files_pass_check_config_and_name_mounted_files(rendering, tmp_path):
    for name, files in (("meshlet-ca", ("ca_dir/root-cert.pem", "tls.cert_file",
                                        "tls.key_file")),
                        ("meshlet-webhook", ("tls.cert_file", "tls.key_file",
                                             "mesh.trust_bundle_file"))):
        program, text, cfg = rendering.config(name)
        assert program == name
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        r = run([binary(program), "--check-config", str(path)])
        assert (r.returncode, r.stdout, r.stderr) == (0, "configuration OK\n", ""), \
            (rendering.name, name)
        pod = rendering.deployment(name)["spec"]["template"]["spec"]
        c = main_container(pod, name)
        for f in files:
            key, _, leaf = f.partition("/")
            value = lookup(cfg, key, program) + ("/" + leaf if leaf else "")
            secret, skey = secret_source(rendering, pod, c, value)
            base_name = next(s for s in OVERLAY_SECRETS
                             if re.fullmatch(re.escape(s) + r"(-[a-z0-9]{10})?", secret))
            assert skey in OVERLAY_SECRETS[base_name], (f, secret, skey)
            expect = {"root-cert.pem": "tls.crt", "tls.cert_file": "tls.crt",
                      "tls.key_file": "tls.key", "mesh.trust_bundle_file": "ca.crt"}
            assert skey == expect[leaf or key], (name, f, secret, skey)
            if leaf == "root-cert.pem":
                assert base_name == "meshlet-ca-root"
                key_src = secret_source(rendering, pod, c, lookup(cfg, key, program) +
                                        "/root-key.pem")
                assert key_src == (secret, "tls.key")


@needs_kubectl
def test_images_ports_and_names_agree_with_the_webhook(rendering):
    r = rendering
    _, _, wcfg = r.config("meshlet-webhook")
    _, _, ccfg = r.config("meshlet-ca")
    image = lookup(wcfg, "proxy.image", "meshlet-webhook")
    assert image.rsplit(":", 1)[1] == VERSION
    for dep in r.all("Deployment"):
        for c in all_containers(dep["spec"]["template"]["spec"]):
            assert c["image"] == image, (dep["metadata"]["name"], c["name"], c["image"])
    # meshlet-ca listens where its Service sends proxies.
    host, port = lookup(wcfg, "mesh.ca_address", "meshlet-webhook").rsplit(":", 1)
    svc, ns, suffix = host.split(".", 2)
    assert (ns, suffix) == (NS, "svc")
    target, dep = service_target(r, svc, int(port))
    assert dep["metadata"]["name"] == "meshlet-ca"
    assert target == listen_port(ccfg)
    assert lookup(wcfg, "mesh.trust_domain", "meshlet-webhook") == ccfg["trust_domain"]
    assert lookup(wcfg, "mesh.token_audience", "meshlet-webhook") == \
        lookup(ccfg, "auth.audience", "meshlet-ca")
    for cert in r.all("Certificate"):
        if cert["spec"]["secretName"] == "meshlet-ca-tls":
            assert host in cert["spec"]["dnsNames"]
        if cert["spec"].get("isCA"):
            assert f"spiffe://{ccfg['trust_domain']}" in cert["spec"]["uris"]


@needs_kubectl
def test_rbac_only_for_tokenreview(rendering):
    r = rendering
    _, _, cfg = r.config("meshlet-ca")
    mode = lookup(cfg, "auth.mode", "meshlet-ca")
    assert not r.all("Role") and not r.all("RoleBinding")
    assert r.exact("ServiceAccount", "meshlet-webhook")["automountServiceAccountToken"] is False
    if mode == "jwks":
        assert not r.all("ClusterRole") and not r.all("ClusterRoleBinding")
        assert cfg["auth"]["jwks_url"].endswith("/openid/v1/jwks")
        return
    assert mode == "tokenreview"
    assert rendering.name in ("overlays/tokenreview", "bootstrap --tokenreview")
    [role] = r.all("ClusterRole")
    assert role["rules"] == [{"apiGroups": ["authentication.k8s.io"],
                              "resources": ["tokenreviews"], "verbs": ["create"]}]
    [binding] = r.all("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "meshlet-ca",
                                    "namespace": NS}]


# --- bootstrap.sh ------------------------------------------------------------------------

def test_bootstrap_files_and_rerun(tmp_path):
    out = tmp_path / "install"
    r = bootstrap(out)
    assert r.returncode == 0, r.stderr
    assert f"kubectl apply -k {out}" in r.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    keys = sorted(out.glob("ca/*key*")) + sorted(out.glob("tls/*.key"))
    assert [k.name for k in keys] == ["root-key.pem", "meshlet-ca.key", "meshlet-webhook.key"]
    for k in keys:
        assert stat.S_IMODE(k.stat().st_mode) == 0o600, k
    for svc in ("meshlet-ca", "meshlet-webhook"):
        # openssl, not meshlet, judges the chain and the names the clients check.
        v = run(["openssl", "verify", "-CAfile", str(out / "ca/root-cert.pem"),
                 "-purpose", "sslserver", "-verify_hostname", f"{svc}.{NS}.svc",
                 str(out / f"tls/{svc}.crt")])
        assert v.returncode == 0, v.stdout + v.stderr
    root = (out / "ca/root-cert.pem").read_bytes()
    serving = (out / "tls/meshlet-ca.crt").read_bytes()
    r = bootstrap(out)
    assert r.returncode == 0, r.stderr
    assert "keeping the root CA" in r.stdout
    assert (out / "ca/root-cert.pem").read_bytes() == root
    assert (out / "tls/meshlet-ca.crt").read_bytes() != serving


def test_bootstrap_refuses_the_repository_and_bad_arguments(tmp_path):
    inside = MANIFESTS / f"test-install-{uuid.uuid4().hex[:8]}"
    r = bootstrap(inside)
    assert r.returncode == 1
    assert "inside the meshlet repository" in r.stderr
    assert not inside.exists()
    r = run(["bash", str(MANIFESTS / "bootstrap.sh"), "--frobnicate"])
    assert r.returncode == 2 and "unknown argument --frobnicate" in r.stderr
    # meshlet-ca's own error reaches the user, and the script stops there.
    r = bootstrap(tmp_path / "x", "--ttl", "ten days")
    assert r.returncode != 0 and "ten days" in r.stderr
    assert not (tmp_path / "x" / "kustomization.yaml").exists()
    r = run(["bash", str(MANIFESTS / "bootstrap.sh"), "--meshlet-ca", "/nonexistent",
             "-o", str(tmp_path / "y")])
    assert r.returncode == 1 and "/nonexistent is not an executable" in r.stderr


def wait_for(cond, timeout=10):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


# --- the bootstrap install, run -----------------------------------------------------------

# Laying Secret files out as the kubelet does (owner root, group fsGroup) and running the
# daemons as the pod's user take root; without it the Secrets are laid out owner-only
# (0400, the test's user), which proves less, and the test says so by skipping at its end.
AS_KUBELET = os.geteuid() == 0 and shutil.which("setpriv") is not None
NOT_AS_KUBELET = ("not root (or no setpriv): the Secret files were laid out owned by the "
                  "test's user, mode 0400, and the daemons ran as that user, so the "
                  "kubelet's fsGroup layout (owner root, group fsGroup, 0440) read by the "
                  "pod's runAsUser went unchecked")


@pytest.fixture
def kubelet_dir():
    """A directory that the pod's user may traverse (pytest's tmp_path is root's, 0700)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="meshlet-kubelet-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class PodOnDisk:
    """A Deployment's pod laid out under a directory as the kubelet would: each volume a
    directory written as the kubelet's atomic writer does (a timestamped directory,
    ..data and a link per file), Secret files owned by root, group fsGroup, mode
    defaultMode plus 0440; then the main container's command with the paths it names
    moved under the directory, run as the pod's runAsUser and runAsGroup with fsGroup as
    a supplementary group, as the container runtime would."""

    def __init__(self, r, name, root, config_edit=None, extra=()):
        self.r, self.root = r, root
        pod = r.deployment(name)["spec"]["template"]["spec"]
        assert not pod.get("initContainers"), (name, pod["initContainers"])
        psc = pod["securityContext"]
        self.user = (psc["runAsUser"], psc["runAsGroup"], psc["fsGroup"])
        (root / "volumes").mkdir(mode=0o755, parents=True)
        self.vols, self.specs = {}, {}
        for v in pod["volumes"]:
            d = root / "volumes" / v["name"]
            d.mkdir()
            self.vols[v["name"]], self.specs[v["name"]] = d, v
            if "secret" in v or "configMap" in v:
                kind = "Secret" if "secret" in v else "ConfigMap"
                ref = v["secret"]["secretName"] if kind == "Secret" else v["configMap"]["name"]
                self.update(v["name"], r.exact(kind, ref))
        c = main_container(pod, name)
        cmd = c["command"] + c.get("args", [])
        i = cmd.index("--config") + 1
        cfg = yaml.safe_load((pathlib.Path(self.host(c, cmd[i]))).read_text())
        cfg = self.move(c, cfg)
        if config_edit:
            config_edit(cfg)
        self.config = root / f"{name}.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        cmd[i] = str(self.config)
        self.log = root / f"{name}.log"
        uid, gid, fs_group = self.user
        prefix = (["setpriv", "--reuid", str(uid), "--regid", str(gid),
                   "--groups", str(fs_group), "--no-new-privs", "--"] if AS_KUBELET else [])
        self.proc = subprocess.Popen(prefix + [binary(cmd[0])] + cmd[1:] +
                                     ["--listen", "127.0.0.1:0"] + list(extra),
                                     stdout=open(root / f"{name}.out", "w"),
                                     stderr=open(self.log, "w"))
        self.procs = [self.proc]
        self.port = None
        deadline = time.time() + 10
        while self.port is None and time.time() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            for line in self.log.read_text().splitlines():
                if '"msg":"serving"' in line:
                    self.port = json.loads(line)["port"]
            time.sleep(0.02)
        assert self.port, self.log.read_text()
        if AS_KUBELET:
            # setpriv exec'd the daemon: this pid is it, with the pod's identity.
            status = pathlib.Path(f"/proc/{self.proc.pid}/status").read_text()
            ids = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            assert ids["Uid"].split()[:2] == [str(uid)] * 2, ids["Uid"]
            assert ids["Gid"].split()[:2] == [str(gid)] * 2, ids["Gid"]
            assert ids["Groups"].split() == [str(fs_group)], ids["Groups"]
            assert int(ids["CapEff"], 16) == 0, ids["CapEff"]

    def update(self, volume, obj):
        """Writes a Secret or ConfigMap into its volume as the kubelet's atomic writer does,
        first or on a change: the files in a new timestamped directory, then ..data
        switched to it with a rename, so that a reader sees the old set or the new one."""
        v, d = self.specs[volume], self.vols[volume]
        secret = "secret" in v
        src = v["secret"] if secret else v["configMap"]
        data = obj["data"]
        items = src.get("items") or [{"key": k, "path": k} for k in data]
        mode = src.get("defaultMode", 0o644)
        if AS_KUBELET:
            # With fsGroup, the kubelet adds group read to a read-only volume's files and
            # makes fsGroup their group; the owner stays root.
            mode |= 0o440
        elif secret:
            mode &= 0o700
        stamp = d / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{uuid.uuid4().hex[:9]}"
        stamp.mkdir()
        os.chmod(stamp, 0o755)
        for i in items:
            raw = data[i["key"]]
            f = stamp / i["path"]
            f.write_bytes(base64.b64decode(raw) if secret else raw.encode())
            if AS_KUBELET:
                os.chown(f, 0, self.user[2])
            os.chmod(f, mode)
        old = d / "..data"
        previous = os.readlink(old) if old.is_symlink() else None
        os.symlink(stamp.name, d / "..data_tmp")
        os.rename(d / "..data_tmp", old)
        for i in items:
            link = d / i["path"]
            if not link.is_symlink():
                os.symlink("..data/" + i["path"], link)
        if previous:
            shutil.rmtree(d / previous)

    def host(self, container, path):
        vol, mount, rel = volume_of({"volumes": [{"name": n} for n in self.vols]},
                                    container, path)
        return str(self.vols[vol["name"]] / rel) if rel else str(self.vols[vol["name"]])

    def move(self, container, node):
        if isinstance(node, dict):
            return {k: self.move(container, v) for k, v in node.items()}
        if isinstance(node, str) and node.startswith("/run/"):
            return self.host(container, node)
        return node

    def request(self, hostname, cafile_pem, method, path, body=None, headers=None):
        """HTTPS as a client in the cluster would: the name checked is the Service's."""
        ctx = ssl.create_default_context(cadata=cafile_pem.decode())
        conn = http.client.HTTPSConnection(hostname, self.port, context=ctx, timeout=10)
        conn._create_connection = lambda addr, *a, **k: socket.create_connection(
            ("127.0.0.1", self.port), *a, **k)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def served_certificate(self, hostname, cafile_pem):
        """The certificate a new connection gets, in DER."""
        ctx = ssl.create_default_context(cadata=cafile_pem.decode())
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=hostname) as tls:
                return tls.getpeercert(binary_form=True)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@needs_kubectl
def test_bootstrap_install_runs_and_injects_what_it_deploys(tmp_path, kubelet_dir):
    """The rendered bootstrap install, its objects as they are: the webhook, trusted through
    the caBundle under its Service's name, injects the manifests' image and the CA's
    Service; meshlet-ca, reached as an injected proxy would (MESHLET_CA_ADDRESS, trusting
    MESHLET_TRUST_BUNDLE), issues an identity for a token with the injected audience.
    Both daemons read their keys where the kubelet mounts them (owner root, group fsGroup,
    0440), as the pod's non-root user, and the webhook serves a renewed certificate once
    the kubelet has replaced its Secret's files. Only the CA's token source differs: a
    local JWKS stands in for the API server's."""
    out = tmp_path / "install"
    assert bootstrap(out).returncode == 0
    r = Rendering("bootstrap", kustomize(out), out)
    _, wh = r.webhook()
    ca_bundle = base64.b64decode(wh["clientConfig"]["caBundle"])
    svc = wh["clientConfig"]["service"]

    webhook = PodOnDisk(r, "meshlet-webhook", kubelet_dir / "webhook")
    ca = None
    try:
        name = f"{svc['name']}.{svc['namespace']}.svc"
        assert webhook.request(name, ca_bundle, "GET", "/readyz")[0] == 200
        # A renewal: bootstrap.sh run again issues new serving certificates under the same
        # root, and the kubelet swaps the Secret's files under the running daemon.
        first = webhook.served_certificate(name, ca_bundle)
        assert first == x509.load_pem_x509_certificate(
            (out / "tls/meshlet-webhook.crt").read_bytes()).public_bytes(
                serialization.Encoding.DER)
        assert bootstrap(out).returncode == 0
        renewed = Rendering("bootstrap", kustomize(out), out)
        pod = r.deployment("meshlet-webhook")["spec"]["template"]["spec"]
        vol = next(v for v in pod["volumes"] if "secret" in v and
                   v["secret"]["secretName"].startswith("meshlet-webhook-tls"))
        webhook.update(vol["name"], renewed.get("Secret", "meshlet-webhook-tls"))
        wait_for(lambda: webhook.served_certificate(name, ca_bundle) != first)
        assert webhook.served_certificate(name, ca_bundle) == x509.load_pem_x509_certificate(
            (out / "tls/meshlet-webhook.crt").read_bytes()).public_bytes(
                serialization.Encoding.DER)
        assert "serving certificate reloaded" in webhook.log.read_text()
        assert webhook.request(name, ca_bundle, "GET", "/readyz")[0] == 200
        review = {
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop", "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset"},
                "object": {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "web-1", "namespace": "shop"},
                           "spec": {"serviceAccountName": "web", "containers": [
                               {"name": "web", "image": "nginx:1.25"}]}},
            },
        }
        status, data = webhook.request(name, ca_bundle, "POST", svc["path"] + "?timeout=5s",
                                       json.dumps(review),
                                       {"Content-Type": "application/json"})
        assert status == 200, data
        resp = json.loads(data)["response"]
        assert resp["allowed"] is True and resp["patchType"] == "JSONPatch", resp
        text = base64.b64decode(resp["patch"]).decode()
        ops = json.loads(text)
        injected = [v for op in ops for v in (op["value"] if isinstance(op.get("value"), list)
                                              else [op.get("value")])
                    if isinstance(v, dict) and v.get("name") in ("meshlet-init",
                                                                  "meshlet-proxy")]
        assert {c["name"] for c in injected} == {"meshlet-init", "meshlet-proxy"}, text
        image = r.deployment("meshlet-ca")["spec"]["template"]["spec"]["containers"][0]["image"]
        assert {c["image"] for c in injected} == {image}
        proxy = next(c for c in injected if c["name"] == "meshlet-proxy")
        env = {e["name"]: e.get("value") for e in proxy["env"]}
        audience = re.search(r'"audience":"([^"]+)"', text).group(1)
    finally:
        webhook.stop()

    # meshlet-ca as a proxy finds it: the injected address, trust bundle and audience.
    ca_host, ca_port = env["MESHLET_CA_ADDRESS"].rsplit(":", 1)
    target, _ = service_target(r, ca_host.split(".")[0], int(ca_port))
    issuer_key = ec_key()
    write_key(tmp_path / "issuer.key", issuer_key)
    jwks = run([binary("meshlet-ca"), "jwks", "--key", str(tmp_path / "issuer.key")])
    assert jwks.returncode == 0, jwks.stderr
    # Where the pod's user can read it.
    (kubelet_dir / "jwks.json").write_text(jwks.stdout)
    issuer = []

    def local_tokens(cfg):
        assert cfg["auth"]["mode"] == "jwks"
        issuer.append(cfg["auth"]["issuer"])
        del cfg["auth"]["jwks_url"]
        cfg["auth"]["jwks_file"] = str(kubelet_dir / "jwks.json")
        assert listen_port(cfg) == target
    try:
        ca = PodOnDisk(r, "meshlet-ca", kubelet_dir / "ca", config_edit=local_tokens)
        trust = env["MESHLET_TRUST_BUNDLE"].encode()
        assert trust.strip() == ca_bundle.strip()
        assert ca.request(ca_host, trust, "GET", "/readyz")[0] == 200
        token = jws({"alg": "ES256", "kid": kid_of(issuer_key)},
                    claims(ns="shop", sa="web", aud=[audience], iss=issuer[0]), issuer_key)
        status, data = ca.request(ca_host, trust, "POST", "/v1/certify",
                                  json.dumps({"csr": csr_pem(ec_key())}),
                                  {"Content-Type": "application/json",
                                   "Authorization": "Bearer " + token})
        assert status == 200, data
        answer = json.loads(data)
        td = env["MESHLET_TRUST_DOMAIN"]
        assert answer["spiffe_id"] == f"spiffe://{td}/ns/shop/sa/web"
        (tmp_path / "leaf.pem").write_text(answer["cert_chain"][0])
        (tmp_path / "trust.pem").write_bytes(trust)
        v = run(["openssl", "verify", "-CAfile", str(tmp_path / "trust.pem"),
                 "-purpose", "sslclient", str(tmp_path / "leaf.pem")])
        assert v.returncode == 0, v.stdout + v.stderr
    finally:
        if ca is not None:
            ca.stop()
    if not AS_KUBELET:
        pytest.skip(NOT_AS_KUBELET)


# --- the image -----------------------------------------------------------------------------

def test_dockerfile_builds_the_image_the_manifests_name():
    """Read only: no container engine builds it here."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", text, re.M)
    assert stages == [("debian:12", "build"), ("debian:12-slim", "")]
    runtime = text.split("FROM debian:12-slim", 1)[1]
    installed = set(re.findall(r"[\w.+-]+", runtime.split("install -y", 1)[1].split("&&")[0]))
    assert {"libmicrohttpd12", "libssl3", "libjansson4", "libyaml-0-2", "iptables"} <= installed
    assert not {p for p in installed if p.endswith("-dev")}
    assert re.search(r"^USER 1337(:1337)?$", runtime, re.M)
    assert "COPY --from=build" in runtime
    build = text.split("FROM debian:12-slim", 1)[0]
    for pkg in ("libmicrohttpd-dev", "libssl-dev", "libjansson-dev", "libyaml-dev", "make"):
        assert pkg in build
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and "build/" in ignored and "**/*.key" in ignored
    if shutil.which("apt-cache"):
        for pkg in sorted(installed & {"libmicrohttpd12", "libssl3", "libjansson4",
                                       "libyaml-0-2", "iptables"}):
            assert run(["apt-cache", "show", pkg]).returncode == 0, pkg
