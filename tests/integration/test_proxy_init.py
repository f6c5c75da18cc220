# SPDX-License-Identifier: Apache-2.0
"""meshlet-proxy init: dry-run text, bad flags, and real capture in network namespaces."""
import itertools
import json
import os
import re
import select
import shutil
import subprocess
import sys

import pytest

from conftest import binary, run

PROG = "meshlet-proxy init"
WEBHOOK_ARGS = ["--proxy-uid", "1337", "--proxy-gid", "1337", "--inbound-port", "15006",
                "--outbound-port", "15001", "--include-inbound-ports", "*",
                "--include-outbound-cidrs", "*"]

DEFAULT_RULES = """\
*nat
:MESHLET_INBOUND - [0:0]
:MESHLET_IN_REDIRECT - [0:0]
:MESHLET_OUTPUT - [0:0]
:MESHLET_REDIRECT - [0:0]
-A PREROUTING -p tcp -j MESHLET_INBOUND
-A OUTPUT -p tcp -j MESHLET_OUTPUT
-A MESHLET_INBOUND -p tcp --dport 15008 -j RETURN
-A MESHLET_INBOUND -p tcp --dport 15021 -j RETURN
-A MESHLET_INBOUND -p tcp --dport 15006 -j RETURN
-A MESHLET_INBOUND -p tcp --dport 15001 -j RETURN
-A MESHLET_INBOUND -p tcp -j MESHLET_IN_REDIRECT
-A MESHLET_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A MESHLET_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A MESHLET_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A MESHLET_OUTPUT -o lo -j RETURN
-A MESHLET_OUTPUT -j MESHLET_REDIRECT
-A MESHLET_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
"""
V4_HEAD = "# meshlet-proxy capture rules (IPv4): iptables-restore --noflush\n"
V6_HEAD = "# meshlet-proxy capture rules (IPv6): ip6tables-restore --noflush\n"


def init(*args, netns=None, env=None, prefix=()):
    cmd = list(prefix) + [binary("meshlet-proxy"), "init", *args]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns] + cmd
    return run(cmd, env=env)


def webhook_args(*extra):
    """The webhook's arguments, with the flags in extra (pairs) replaced or added."""
    args = list(WEBHOOK_ARGS)
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


def dry_run(*extra, ipv6="off"):
    r = init(*webhook_args(*extra), "--dry-run", "--ipv6", ipv6)
    assert r.returncode == 0, r.stderr
    return r


def rules(r):
    return [line for line in r.stdout.splitlines() if line.startswith("-A ")]


# ---- --dry-run: no privileges, and iptables is never run ----

def test_dry_run_defaults():
    r = dry_run()
    assert r.stdout == V4_HEAD + DEFAULT_RULES
    assert r.stderr == f"{PROG}: IPv6: not captured (--ipv6 off)\n"


def test_dry_run_ipv6_on_prints_both_families():
    r = dry_run(ipv6="on")
    assert r.stdout == V4_HEAD + DEFAULT_RULES + V6_HEAD + DEFAULT_RULES
    assert r.stderr == ""


def test_dry_run_never_runs_iptables(tmp_path):
    """Fake iptables tools first in PATH would leave a mark if dry-run ran any of them."""
    mark = tmp_path / "ran"
    for tool in ("iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"):
        fake = tmp_path / tool
        fake.write_text(f"#!/bin/sh\necho {tool} >> {mark}\nexit 1\n")
        fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    for ipv6 in ("auto", "on", "off"):
        r = init(*WEBHOOK_ARGS, "--dry-run", "--ipv6", ipv6, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(V4_HEAD)
    assert not mark.exists(), mark.read_text()


@pytest.mark.parametrize("extra, present, absent", [
    (["--include-inbound-ports", "8080, 9090,8080"],
     ["-A MESHLET_INBOUND -p tcp --dport 8080 -j MESHLET_IN_REDIRECT",
      "-A MESHLET_INBOUND -p tcp --dport 9090 -j MESHLET_IN_REDIRECT"],
     ["-A MESHLET_INBOUND -p tcp -j MESHLET_IN_REDIRECT"]),
    (["--include-inbound-ports", ""], [],
     ["-A MESHLET_INBOUND -p tcp -j MESHLET_IN_REDIRECT"]),
    (["--exclude-inbound-ports", "22,15008,15021"],
     ["-A MESHLET_INBOUND -p tcp --dport 22 -j RETURN"], []),
    (["--exclude-outbound-ports", "5432,6379"],
     ["-A MESHLET_OUTPUT -p tcp --dport 5432 -j RETURN",
      "-A MESHLET_OUTPUT -p tcp --dport 6379 -j RETURN"], []),
    (["--exclude-outbound-cidrs", "10.96.0.1/12,169.254.169.254/32,fd00::/8"],
     ["-A MESHLET_OUTPUT -d 10.96.0.0/12 -j RETURN",
      "-A MESHLET_OUTPUT -d 169.254.169.254/32 -j RETURN"], ["fd00::/8"]),
    (["--tunnel-port", "16008", "--admin-port", "16021"],
     ["-A MESHLET_INBOUND -p tcp --dport 16008 -j RETURN",
      "-A MESHLET_INBOUND -p tcp --dport 16021 -j RETURN"], ["15008", "15021"]),
])
def test_dry_run_each_flag(extra, present, absent):
    r = dry_run(*extra)
    got = rules(r)
    base = rules(dry_run())
    for line in present:
        assert line in got, got
    for text in absent:
        assert not any(text in line for line in got), got
    # Everything else is the default text: the flag changed only its own lines.
    assert [x for x in got if x not in present] == [
        x for x in base if x not in present and not any(t in x for t in absent)]


def test_dry_run_include_cidrs_split_by_family():
    r = dry_run("--include-outbound-cidrs", "10.0.0.0/8,fd00:1::/64", ipv6="on")
    v4, v6 = r.stdout.split(V6_HEAD)
    assert "-A MESHLET_OUTPUT -d 10.0.0.0/8 -j MESHLET_REDIRECT\n" in v4
    assert "fd00" not in v4
    assert "-A MESHLET_OUTPUT -d fd00:1::/64 -j MESHLET_REDIRECT\n" in v6
    assert "10.0.0.0" not in v6
    assert "-A MESHLET_OUTPUT -j MESHLET_REDIRECT\n" not in r.stdout


def test_dry_run_ports_ids_and_ipv6_text():
    r = init("--proxy-uid", "2000", "--proxy-gid", "3000", "--inbound-port", "16006",
             "--outbound-port", "16001", "--include-inbound-ports", "*",
             "--include-outbound-cidrs", "*", "--exclude-outbound-cidrs", "fd00::1/8,::1/128",
             "--ipv6", "on", "--dry-run")
    assert r.returncode == 0, r.stderr
    v6 = r.stdout.split(V6_HEAD)[1]
    for line in ("-A MESHLET_OUTPUT -m owner --uid-owner 2000 -j RETURN",
                 "-A MESHLET_OUTPUT -m owner --gid-owner 3000 -j RETURN",
                 "-A MESHLET_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006",
                 "-A MESHLET_REDIRECT -p tcp -j REDIRECT --to-ports 16001",
                 "-A MESHLET_INBOUND -p tcp --dport 16006 -j RETURN",
                 "-A MESHLET_INBOUND -p tcp --dport 16001 -j RETURN",
                 "-A MESHLET_OUTPUT -d fd00::/8 -j RETURN",
                 "-A MESHLET_OUTPUT -d ::1/128 -j RETURN"):
        assert line + "\n" in v6


def test_help():
    r = init("--help")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage: meshlet-proxy init ")
    for flag in ("--proxy-uid", "--proxy-gid", "--inbound-port", "--outbound-port",
                 "--tunnel-port", "--admin-port", "--include-inbound-ports",
                 "--exclude-inbound-ports", "--exclude-outbound-ports",
                 "--include-outbound-cidrs", "--exclude-outbound-cidrs", "--ipv6", "--dry-run",
                 "--cleanup", "--help"):
        assert flag in r.stdout
    top = run([binary("meshlet-proxy"), "--help"])
    assert re.search(r"^  init  ", top.stdout, re.M), top.stdout


def replace(args, flag, value):
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def without(args, flag):
    i = args.index(flag)
    return args[:i] + args[i + 2:]


@pytest.mark.parametrize("args, message", [
    (WEBHOOK_ARGS + ["--frobnicate"], "unknown option --frobnicate"),
    (WEBHOOK_ARGS + ["--tunnel-port"], "option --tunnel-port needs a value"),
    (WEBHOOK_ARGS + ["extra"], 'unexpected argument "extra"'),
    (replace(WEBHOOK_ARGS, "--inbound-port", "0"), '--inbound-port: "0" is not a port (1 to 65535)'),
    (replace(WEBHOOK_ARGS, "--outbound-port", "70000"),
     '--outbound-port: "70000" is not a port (1 to 65535)'),
    (WEBHOOK_ARGS + ["--admin-port", "http"], '--admin-port: "http" is not a port (1 to 65535)'),
    (WEBHOOK_ARGS + ["--tunnel-port", "15006"], '--tunnel-port: "15006" is already the --inbound-port'),
    (replace(WEBHOOK_ARGS, "--include-inbound-ports", "80,"),
     '--include-inbound-ports "80,": empty item (separate items with single commas)'),
    (WEBHOOK_ARGS + ["--exclude-inbound-ports", "80,,90"],
     '--exclude-inbound-ports "80,,90": empty item (separate items with single commas)'),
    (WEBHOOK_ARGS + ["--exclude-outbound-ports", "443,http"],
     '--exclude-outbound-ports "443,http": "http" is not a port (1 to 65535)'),
    (replace(WEBHOOK_ARGS, "--include-inbound-ports", "*,80"),
     '--include-inbound-ports "*,80": "*" must be the only item'),
    (WEBHOOK_ARGS + ["--exclude-inbound-ports", "*"],
     '--exclude-inbound-ports: "*" (everything) is allowed only in an include list'),
    (WEBHOOK_ARGS + ["--exclude-outbound-cidrs", "10.0.0.0/33"],
     '--exclude-outbound-cidrs: "10.0.0.0/33" has a prefix length over 32'),
    (WEBHOOK_ARGS + ["--exclude-outbound-cidrs", "192.168.0.0/16,300.1.1.1/8"],
     '--exclude-outbound-cidrs "192.168.0.0/16,300.1.1.1/8": "300.1.1.1/8" is not a CIDR '
     '(like 10.0.0.0/8 or fd00::/8)'),
    (replace(WEBHOOK_ARGS, "--include-outbound-cidrs", "junk"),
     '--include-outbound-cidrs: "junk" is not a CIDR (like 10.0.0.0/8 or fd00::/8)'),
    (replace(WEBHOOK_ARGS, "--include-outbound-cidrs", "10.1.2.3"),
     '--include-outbound-cidrs: "10.1.2.3" has no prefix length (like 10.1.2.3/32)'),
    (replace(WEBHOOK_ARGS, "--include-outbound-cidrs", "*,10.0.0.0/8"),
     '--include-outbound-cidrs "*,10.0.0.0/8": "*" must be the only item'),
    (WEBHOOK_ARGS + ["--exclude-outbound-cidrs", "fd00::/129"],
     '--exclude-outbound-cidrs: "fd00::/129" has a prefix length over 128'),
    (replace(WEBHOOK_ARGS, "--proxy-uid", "0"),
     '--proxy-uid: "0" is root: every such process would bypass the proxy'),
    (replace(WEBHOOK_ARGS, "--proxy-gid", "-1"),
     '--proxy-gid: "-1" is not a number from 1 to 4294967294'),
    (WEBHOOK_ARGS + ["--ipv6", "yes"], '--ipv6: "yes" is not auto, on or off'),
    (WEBHOOK_ARGS + ["--inbound-port", "15006"], "--inbound-port is given more than once"),
    (WEBHOOK_ARGS + ["--dry-run", "--cleanup"],
     "--dry-run and --cleanup cannot be combined: --dry-run prints the rules init would write"),
    (without(WEBHOOK_ARGS, "--proxy-uid"), "required flag missing: --proxy-uid"),
    (without(without(WEBHOOK_ARGS, "--include-inbound-ports"), "--include-outbound-cidrs"),
     "required flags missing: --include-inbound-ports, --include-outbound-cidrs"),
    ([], "required flags missing: --proxy-uid, --proxy-gid, --inbound-port, --outbound-port, "
         "--include-inbound-ports, --include-outbound-cidrs"),
])
def test_bad_flags(args, message):
    # --dry-run on every case: were a bad flag accepted, nothing would change anyway.
    if "--cleanup" not in args and "--dry-run" not in args:
        args = ["--dry-run"] + args
    r = init(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr == f"{PROG}: {message}\nRun '{PROG} --help' for usage.\n"


# ---- In network namespaces, as root ----

NEEDS_ROOT = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables-save") is None,
    reason="meshlet-proxy init needs root for network namespaces (and iproute2, iptables)")

_names = itertools.count()

# A listener that answers each connection with one line: who it is, the connection's
# original destination (SO_ORIGINAL_DST: where a REDIRECT sent it from) and the client.
LISTENER = r"""
import json, socket, struct, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(16)
s.settimeout(60)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    try:
        if fam == socket.AF_INET:
            raw = c.getsockopt(socket.SOL_IP, 80, 16)
            orig = "%s:%d" % (socket.inet_ntoa(raw[4:8]), struct.unpack("!H", raw[2:4])[0])
        else:
            raw = c.getsockopt(socket.IPPROTO_IPV6, 80, 28)
            orig = "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, raw[8:24]),
                                struct.unpack("!H", raw[2:4])[0])
    except OSError:
        orig = None
    c.sendall((json.dumps({"server": name, "orig": orig, "client": peer[0]}) + "\n").encode())
    c.close()
"""

CLIENT = r"""
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.settimeout(5)
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode(), end="")
"""


class Netns:
    """Two namespaces joined by a veth pair: a pod (10.251.0.1) and a peer (10.251.0.2)."""

    POD_IP, PEER_IP = "10.251.0.1", "10.251.0.2"
    POD_IP6, PEER_IP6 = "fd00:251::1", "fd00:251::2"

    def __init__(self, ipv6=False):
        n = next(_names)
        self.pod = f"meshlet-cap{os.getpid()}-{n}p"
        self.peer = f"meshlet-cap{os.getpid()}-{n}q"
        self.procs = []
        self.made = []
        try:
            self._make(ipv6)
        except BaseException:
            self.close()
            raise

    def _make(self, ipv6):
        for ns in (self.pod, self.peer):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # The veth pair is made inside the pod's namespace: it never exists on the host.
        sh("ip", "-n", self.pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
           "netns", self.peer)
        for ns, ip in ((self.pod, self.POD_IP), (self.peer, self.PEER_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", "eth0")
            if ipv6:
                ip6 = self.POD_IP6 if ns == self.pod else self.PEER_IP6
                sh("ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def listen(self, ns, host, port, name):
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, host, str(port), name]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        ready, _, _ = select.select([p.stdout], [], [], 10)
        line = p.stdout.readline() if ready else ""
        if line != "ready\n":
            p.kill()
            pytest.fail(f"listener {name} did not start: {p.stderr.read() if not ready else ''}")
        return p

    def connect(self, ns, host, port, user=None):
        """Connects from ns and returns the listener's answer, or None when refused."""
        r = run(["ip", "netns", "exec", ns] + setpriv(user) + [
            sys.executable, "-c", CLIENT, host, str(port)])
        if r.returncode != 0:
            assert "ConnectionRefusedError" in r.stderr, r.stderr
            return None
        return json.loads(r.stdout)

    def iptables_save(self, six=False):
        r = run(["ip", "netns", "exec", self.pod, "ip6tables-save" if six else "iptables-save",
                 "-t", "nat"])
        assert r.returncode == 0, r.stderr
        return r.stdout

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)
            p.stdout.close()
            p.stderr.close()
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def sh(*cmd):
    r = run(list(cmd))
    assert r.returncode == 0, (cmd, r.stderr)


def setpriv(user):
    if user is None:
        return []
    return ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups"]


@pytest.fixture
def nets():
    made = []

    def make(ipv6=False):
        n = Netns(ipv6)  # a half-made pair cleans up after itself
        made.append(n)
        return n

    try:
        yield make
    finally:
        for n in made:
            n.close()


def our_lines(saved):
    return sorted(line for line in saved.splitlines() if "MESHLET_" in line)


@NEEDS_ROOT
def test_init_twice_leaves_one_set_and_cleanup_removes_it(nets):
    n = nets(ipv6=True)
    args = WEBHOOK_ARGS + ["--exclude-outbound-ports", "5432", "--ipv6", "on"]
    r = init(*args, netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"{PROG}: IPv4: capture rules written\n"
                        f"{PROG}: IPv6: capture rules written\n")
    first = {six: our_lines(n.iptables_save(six)) for six in (False, True)}
    for six in (False, True):
        saved = n.iptables_save(six)
        assert saved.count("-A PREROUTING -p tcp -j MESHLET_INBOUND\n") == 1
        assert saved.count("-A OUTPUT -p tcp -j MESHLET_OUTPUT\n") == 1
        for chain in ("MESHLET_INBOUND", "MESHLET_IN_REDIRECT", "MESHLET_OUTPUT",
                      "MESHLET_REDIRECT"):
            assert saved.count(f":{chain} - ") == 1
        # iptables-save spells matches out (-m tcp); the rules are the dry-run's.
        expect = len(rules(dry_run("--exclude-outbound-ports", "5432")))
        assert len([x for x in saved.splitlines() if x.startswith("-A ")]) == expect
        assert "--dport 5432 -j RETURN" in saved
    # An init container restarted: the same rules, once.
    r = init(*args, netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert {six: our_lines(n.iptables_save(six)) for six in (False, True)} == first
    # Changed flags replace the rules rather than adding to them.
    r = init(*WEBHOOK_ARGS, "--ipv6", "on", netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert "5432" not in n.iptables_save() and "5432" not in n.iptables_save(True)
    assert n.iptables_save().count("-j MESHLET_INBOUND") == 1
    r = init("--cleanup", netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{PROG}: IPv4: capture rules removed\n{PROG}: IPv6: capture rules removed\n"
    assert our_lines(n.iptables_save()) == [] and our_lines(n.iptables_save(True)) == []
    r = init("--cleanup", netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{PROG}: IPv4: nothing to remove\n{PROG}: IPv6: nothing to remove\n"


@NEEDS_ROOT
def test_init_removes_leftovers_of_another_version(nets):
    n = nets()
    for cmd in (["-N", "MESHLET_OLD"], ["-A", "MESHLET_OLD", "-p", "tcp", "-j", "RETURN"],
                ["-I", "OUTPUT", "-j", "MESHLET_OLD"], ["-N", "MESHLET_OUTPUT"],
                ["-A", "OUTPUT", "-p", "tcp", "-j", "MESHLET_OUTPUT"],
                ["-A", "OUTPUT", "-p", "tcp", "-j", "MESHLET_OUTPUT"],
                ["-A", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "RETURN"]):
        sh("ip", "netns", "exec", n.pod, "iptables", "-t", "nat", *cmd)
    r = init(*WEBHOOK_ARGS, "--ipv6", "off", netns=n.pod)
    assert r.returncode == 0, r.stderr
    saved = n.iptables_save()
    assert "MESHLET_OLD" not in saved
    assert saved.count("-A OUTPUT -p tcp -j MESHLET_OUTPUT\n") == 1
    # A rule that is not ours stays.
    assert "-A OUTPUT -p udp -m udp --dport 53 -j RETURN\n" in saved
    r = init("--cleanup", "--ipv6", "off", netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert "MESHLET" not in n.iptables_save()
    assert "--dport 53 -j RETURN" in n.iptables_save()


@NEEDS_ROOT
def test_init_without_privileges_says_why(nets):
    n = nets()
    r = init(*WEBHOOK_ARGS, "--ipv6", "off", netns=n.pod, prefix=setpriv(65534))
    assert r.returncode == 1
    assert f"{PROG}: iptables-save -t nat failed with exit status 4: " in r.stderr
    assert "needs the NET_ADMIN capability" in r.stderr
    r = init("--cleanup", netns=n.pod, prefix=setpriv(65534))
    assert r.returncode == 1
    assert "needs the NET_ADMIN capability" in r.stderr


@NEEDS_ROOT
def test_init_reports_a_failing_restore(nets, tmp_path):
    """A restore that fails is reported with its status and its own words."""
    fake = tmp_path / "iptables-restore"
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'line 3: CHAIN_ADD failed' >&2\nexit 1\n")
    fake.chmod(0o755)
    n = nets()
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    r = init(*WEBHOOK_ARGS, "--ipv6", "off", netns=n.pod, env=env)
    assert r.returncode == 1
    assert r.stderr == (f"{PROG}: iptables-restore --noflush failed with exit status 1: "
                        "line 3: CHAIN_ADD failed\n")
    assert "MESHLET" not in n.iptables_save()


@NEEDS_ROOT
def test_outbound_redirect(nets):
    n = nets()
    n.listen(n.pod, "127.0.0.1", 15001, "outbound")
    n.listen(n.peer, "0.0.0.0", 8080, "peer-8080")
    n.listen(n.peer, "0.0.0.0", 8081, "peer-8081")
    n.listen(n.pod, "0.0.0.0", 9090, "pod-app")
    before = n.connect(n.pod, n.PEER_IP, 8080)
    assert before["server"] == "peer-8080"
    r = init(*WEBHOOK_ARGS, "--exclude-outbound-ports", "8081", "--ipv6", "off", netns=n.pod)
    assert r.returncode == 0, r.stderr

    # The app's connection lands on the outbound port, which sees where it was going.
    got = n.connect(n.pod, n.PEER_IP, 8080)
    assert got == {"server": "outbound", "orig": f"{n.PEER_IP}:8080", "client": n.POD_IP}
    # The proxy's own user (and group) reaches the peer for real.
    got = n.connect(n.pod, n.PEER_IP, 8080, user=1337)
    assert got["server"] == "peer-8080"
    # An excluded port is not redirected.
    assert n.connect(n.pod, n.PEER_IP, 8081)["server"] == "peer-8081"
    # Loopback and the pod's own address: app to app, never leaving the pod.
    assert n.connect(n.pod, "127.0.0.1", 9090)["server"] == "pod-app"
    assert n.connect(n.pod, n.POD_IP, 9090)["server"] == "pod-app"
    # UDP is left alone (a DNS query would pass): no UDP rule, no jump for it.
    assert "udp" not in n.iptables_save()


@NEEDS_ROOT
def test_outbound_cidrs(nets):
    n = nets()
    n.listen(n.pod, "127.0.0.1", 15001, "outbound")
    n.listen(n.peer, "0.0.0.0", 8080, "peer")
    r = init(*WEBHOOK_ARGS, "--exclude-outbound-cidrs", f"{n.PEER_IP}/32", "--ipv6", "off",
             netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert n.connect(n.pod, n.PEER_IP, 8080)["server"] == "peer"
    args = replace(WEBHOOK_ARGS, "--include-outbound-cidrs", "192.0.2.0/24")
    assert init(*args, "--ipv6", "off", netns=n.pod).returncode == 0
    assert n.connect(n.pod, n.PEER_IP, 8080)["server"] == "peer"
    args = replace(WEBHOOK_ARGS, "--include-outbound-cidrs", "192.0.2.0/24,10.251.0.0/30")
    assert init(*args, "--ipv6", "off", netns=n.pod).returncode == 0
    assert n.connect(n.pod, n.PEER_IP, 8080)["server"] == "outbound"


@NEEDS_ROOT
def test_inbound_redirect(nets):
    n = nets()
    n.listen(n.pod, "0.0.0.0", 15006, "inbound")
    n.listen(n.pod, "0.0.0.0", 15008, "tunnel")
    n.listen(n.pod, "0.0.0.0", 15021, "admin")
    n.listen(n.pod, "0.0.0.0", 8081, "app-8081")
    r = init(*replace(WEBHOOK_ARGS, "--include-inbound-ports", "8080,8082"), "--ipv6", "off",
             "--exclude-inbound-ports", "8082", netns=n.pod)
    assert r.returncode == 0, r.stderr
    got = n.connect(n.peer, n.POD_IP, 8080)
    assert got == {"server": "inbound", "orig": f"{n.POD_IP}:8080", "client": n.PEER_IP}
    # The proxy's own ports are reached directly.
    assert n.connect(n.peer, n.POD_IP, 15008)["server"] == "tunnel"
    assert n.connect(n.peer, n.POD_IP, 15021)["server"] == "admin"
    # Not in the include list: straight to the app. Excluded too: refused, nobody there.
    assert n.connect(n.peer, n.POD_IP, 8081)["server"] == "app-8081"
    assert n.connect(n.peer, n.POD_IP, 8082) is None
    # With "*", every other port is captured.
    assert init(*WEBHOOK_ARGS, "--ipv6", "off", netns=n.pod).returncode == 0
    assert n.connect(n.peer, n.POD_IP, 8081)["orig"] == f"{n.POD_IP}:8081"
    assert n.connect(n.peer, n.POD_IP, 15008)["server"] == "tunnel"


@NEEDS_ROOT
def test_ipv6_auto_and_redirect(nets):
    plain = nets()
    r = init(*WEBHOOK_ARGS, netns=plain.pod)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"{PROG}: IPv4: capture rules written\n"
                        f"{PROG}: IPv6: not captured: the pod has no global or unique-local "
                        "IPv6 address (--ipv6 on captures it anyway)\n")
    assert "MESHLET" not in plain.iptables_save(six=True)

    n = nets(ipv6=True)
    n.listen(n.pod, "::1", 15001, "outbound")
    n.listen(n.pod, "::", 15006, "inbound")
    n.listen(n.peer, "::", 8080, "peer")
    r = init(*WEBHOOK_ARGS, netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert f"{PROG}: IPv6: the pod has {n.POD_IP6} on eth0\n" in r.stdout
    assert n.iptables_save(six=True).count("-j MESHLET_OUTPUT") == 1
    got = n.connect(n.pod, n.PEER_IP6, 8080)
    assert got == {"server": "outbound", "orig": f"[{n.PEER_IP6}]:8080", "client": n.POD_IP6}
    assert n.connect(n.pod, n.PEER_IP6, 8080, user=1337)["server"] == "peer"
    got = n.connect(n.peer, n.POD_IP6, 8080)
    assert got == {"server": "inbound", "orig": f"[{n.POD_IP6}]:8080", "client": n.PEER_IP6}
    r = init("--cleanup", netns=n.pod)
    assert r.returncode == 0, r.stderr
    assert "MESHLET" not in n.iptables_save(six=True)
    assert n.connect(n.pod, n.PEER_IP6, 8080)["server"] == "peer"
