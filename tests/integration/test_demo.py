# SPDX-License-Identifier: Apache-2.0
"""`make demo` (demo/demo.sh) runs the whole story and leaves nothing behind: as root with
network namespaces, interrupted half-way, and as a user without root on loopback."""
import glob
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BUILD, ROOT

SCRIPT = ROOT / "demo" / "demo.sh"


def leftovers(pid, before):
    """What a demo run with this PID could have left: namespaces, processes, directories."""
    out = []
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    out += [l for l in r.stdout.splitlines() if l.startswith(f"mldemo{pid}-")]
    for d in set(glob.glob("/tmp/meshlet-demo.*")) - before:
        out.append(d)
        for p in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                if d.encode() in open(p, "rb").read():
                    out.append(p)
            except OSError:
                pass
    return out


def demo(user=None, **kw):
    cmd = ["bash", str(SCRIPT), str(BUILD)]
    if user is not None:
        cmd = ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups"] + cmd
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHLET_")}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, **kw)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


@needs_root
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump (make deps)")
def test_the_demo_tells_the_whole_story_and_cleans_up():
    before = set(glob.glob("/tmp/meshlet-demo.*"))
    start = time.monotonic()
    p = demo()
    out, _ = p.communicate(timeout=170)
    took = time.monotonic() - start
    assert p.returncode == 0, out
    for evidence in ("JSON Patch of", "meshlet-init, meshlet-proxy", '"event":"admission"',
                     "peer=spiffe://demo.local/ns/demo/sa/backend",
                     "peer=spiffe://demo.local/ns/demo/sa/frontend",
                     "appears in 0 of them", "application_data",
                     "pod C -> B: HTTP 403", "pod A -> B: HTTP 200",
                     "STRICT: X -> B: refused", "mTLS is STRICT (demo/strict)",
                     "demo OK: every step did what it said."):
        assert evidence in out, (evidence, out)
    # A renewal, shown by its log line: the first, or a later one when the earlier steps
    # ran slowly enough (20 s certificates renew at about half their life).
    assert re.search(r'"rotations":[1-9]', out), out
    assert took < 120, f"the demo took {took:.0f} s"
    assert leftovers(p.pid, before) == []


@needs_root
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump (make deps)")
def test_ctrl_c_half_way_leaves_nothing():
    before = set(glob.glob("/tmp/meshlet-demo.*"))
    p = demo(start_new_session=True)
    out = ""
    deadline = time.monotonic() + 90
    for line in p.stdout:
        out += line
        if line.startswith("4. ") or time.monotonic() > deadline:
            break
    assert "4. " in out, out
    os.killpg(p.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
    rest, _ = p.communicate(timeout=60)
    assert p.returncode != 0
    assert "Cleaned up" in out + rest
    assert leftovers(p.pid, before) == []


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="runs the demo as another user, which needs root to start")
def test_without_root_the_demo_runs_on_loopback():
    before = set(glob.glob("/tmp/meshlet-demo.*"))
    p = demo(user=1000)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert "needs root" not in out or "which need root" in out
    assert "which need root" in out
    assert '"peer":"spiffe://demo.local/ns/demo/sa/frontend"' in out
    assert "demo OK" in out
    assert leftovers(p.pid, before) == []
