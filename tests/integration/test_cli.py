# SPDX-License-Identifier: Apache-2.0
"""Every binary's common command line: --help, --version, --check-config, --config-reference."""
import re

import pytest

from conftest import ROOT, binary, run

VERSION = (ROOT / "VERSION").read_text().strip()


def test_help_lists_only_working_options(program):
    r = run([binary(program), "--help"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Usage: {program} ")
    options = re.findall(r"^\s+(?:-\w, )?(--[a-z-]+)", r.stdout, re.M)
    assert set(options) == {"--check-config", "--config-reference", "--help", "--version"}
    # Each option the help lists is accepted (none answers "unknown option").
    for opt in options:
        args = [binary(program), opt] + (["/dev/null"] if opt == "--check-config" else [])
        r = run(args)
        assert "unknown option" not in r.stderr, (opt, r.stderr)
        assert r.returncode == 0, (opt, r.stdout, r.stderr)


def test_version(program):
    r = run([binary(program), "--version"])
    assert r.returncode == 0
    first, second = r.stdout.splitlines()
    assert first == f"{program} {VERSION}"
    assert "OpenSSL 3" in second and "jansson" in second and "libyaml" in second
    # Only the HTTPS daemons link an HTTP server library; the sidecar does not.
    assert ("libmicrohttpd" in second) == (program != "meshlet-proxy"), second


def test_the_sidecar_links_no_http_server_library():
    r = run(["ldd", binary("meshlet-proxy")])
    assert r.returncode == 0
    assert "libmicrohttpd" not in r.stdout and "libgnutls" not in r.stdout, r.stdout


def test_unknown_option_and_command(program):
    r = run([binary(program), "--no-such-option"])
    assert r.returncode == 2
    assert f"{program}: unknown option --no-such-option" in r.stderr
    assert f"Run '{program} --help' for usage." in r.stderr
    r = run([binary(program), "frobnicate"])
    assert r.returncode == 2
    assert 'unknown command "frobnicate"' in r.stderr
    r = run([binary(program), "--check-config"])
    assert r.returncode == 2
    assert "option --check-config needs a value" in r.stderr
    r = run([binary(program)])
    assert r.returncode == 2


def test_check_config_ok(program, tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("# every key at its default\nlog:\n  level: debug\n  format: json\n")
    r = run([binary(program), "--check-config", str(cfg)])
    assert (r.returncode, r.stdout, r.stderr) == (0, "configuration OK\n", "")


def test_check_config_reports_every_error_with_file_and_line(tmp_path):
    cfg = tmp_path / "ca.yaml"
    cfg.write_text(
        "trust_domain: example.org\n"
        "lisen: 0.0.0.0:8443\n"          # unknown key
        "log:\n"
        "  level: [debug]\n"             # wrong type
        "cert:\n"
        "  max_ttl: 9000h\n"             # out of range
    )
    r = run([binary("meshlet-ca"), "--check-config", str(cfg)])
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f'{cfg}:2: unknown key "lisen" (did you mean "listen"?)',
        f"{cfg}:4: log.level: expected one of debug|info|warn|error, got a list",
        f"{cfg}:6: cert.max_ttl: 9000h is out of range (10s to 168h)",
        "meshlet-ca: 3 configuration errors",
    ]


@pytest.mark.parametrize("prog,yaml,line", [
    ("meshlet-ca", "timeouts:\n  request: 10m\n",
     "2: timeouts.request: 10m is out of range (1s to 5m)"),
    ("meshlet-webhook", "timeouts:\n  request: 0s\n",
     "2: timeouts.request: 0s is out of range (1s to 5m)"),
    ("meshlet-proxy", "timeouts:\n  request_head: 10m\n",
     "2: timeouts.request_head: 10m is out of range (1s to 5m)"),
])
def test_check_config_request_deadlines_out_of_range(tmp_path, prog, yaml, line):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml)
    r = run([binary(prog), "--check-config", str(cfg)])
    assert r.returncode == 1
    assert f"{cfg}:{line}" in r.stderr.splitlines(), r.stderr


def test_check_config_wrong_scalar_types(tmp_path):
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text("workers: two\nports:\n  admin: 70000\nmtls:\n  mode: STRICT\n")
    r = run([binary("meshlet-proxy"), "--check-config", str(cfg)])
    assert r.returncode == 1
    assert r.stderr.splitlines()[:3] == [
        f'{cfg}:1: workers: expected an integer, got "two"',
        f"{cfg}:3: ports.admin: 70000 is out of range (1 to 65535)",
        f'{cfg}:5: mtls.mode: "STRICT" is not one of: strict, permissive, disable',
    ]


def test_check_config_cross_key_rules(tmp_path):
    cfg = tmp_path / "webhook.yaml"
    cfg.write_text("tls:\n  cert_file: /etc/meshlet/tls.crt\n")
    r = run([binary("meshlet-webhook"), "--check-config", str(cfg)])
    assert r.returncode == 1
    assert (f"{cfg}:2: tls.cert_file: tls.cert_file and tls.key_file must be set together"
            in r.stderr)


def test_check_config_unreadable_and_malformed(program, tmp_path):
    missing = tmp_path / "missing.yaml"
    r = run([binary(program), "--check-config", str(missing)])
    assert r.returncode == 1
    assert f"{missing}: cannot read: No such file or directory" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("log:\n  level: [info\n")
    r = run([binary(program), "--check-config", str(bad)])
    assert r.returncode == 1
    assert re.search(rf"^{re.escape(str(bad))}:\d+: not valid YAML: ", r.stderr, re.M)
    r = run([binary(program), "--check-config", str(tmp_path)])
    assert r.returncode == 1
    assert f"{tmp_path}: cannot read: Is a directory" in r.stderr


def test_check_config_reads_a_pipe(tmp_path):
    r = run([binary("meshlet-ca"), "--check-config", "/dev/stdin"],
            input="trust_domain: example.org\ncert:\n  default_ttl: 30m\n")
    assert (r.returncode, r.stdout) == (0, "configuration OK\n"), r.stderr
    r = run([binary("meshlet-ca"), "--check-config", "/dev/stdin"], input="cert: {ttl: 1}\n")
    assert r.returncode == 1
    assert '/dev/stdin:1: unknown key "cert.ttl"' in r.stderr


def test_config_reference_matches_docs(program):
    """docs/configuration.md holds each program's table as the binary prints it."""
    r = run([binary(program), "--config-reference"])
    assert r.returncode == 0
    assert r.stdout.startswith("| key | type | default | description |\n")
    docs = (ROOT / "docs" / "configuration.md").read_text()
    begin = f"<!-- begin {program} reference -->\n"
    end = f"<!-- end {program} reference -->"
    assert begin in docs and end in docs, f"docs/configuration.md has no {program} section"
    section = docs.split(begin, 1)[1].split(end, 1)[0]
    assert section == r.stdout, "docs/configuration.md is stale: run 'make docs'"
