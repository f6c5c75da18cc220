# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures for the integration tests: where the built binaries are, and how the
long-running daemons run under valgrind when MESHLET_VALGRIND names a directory (make
valgrind)."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("MESHLET_BUILD", "build")
PROGRAMS = ("meshlet-ca", "meshlet-webhook", "meshlet-proxy")

# MESHLET_VALGRIND=DIR runs each daemon under memcheck with its log in DIR/<name>.<pid>.log;
# tests/valgrind-check.py reads them. Everything is 20-50 times slower there: waits scale
# by SLOW, and tests that need speed are marked @needs_speed("why") to skip.
VALGRIND = os.path.abspath(os.environ["MESHLET_VALGRIND"]) \
    if os.environ.get("MESHLET_VALGRIND") else None
SLOW = 20 if VALGRIND else 1


def needs_speed(why):
    """Skips a test under MESHLET_VALGRIND, saying why it cannot pass that slowly."""
    return pytest.mark.skipif(VALGRIND is not None,
                              reason=f"too slow under valgrind (MESHLET_VALGRIND): {why}")


def binary(name):
    path = BUILD / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'make' first")
    return str(path)


def daemon_argv(argv, name):
    """argv, under valgrind memcheck when MESHLET_VALGRIND is set; name names its log.
    --fullpath-after shows our frames as ca/..., lib/..., proxy/..., webhook/..., which is
    how valgrind-check.py tells our code from the libraries'."""
    if not VALGRIND:
        return list(argv)
    os.makedirs(VALGRIND, exist_ok=True)
    return ["valgrind", "--tool=memcheck", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
            "--track-fds=no", "--num-callers=30", f"--fullpath-after={ROOT}/",
            f"--suppressions={ROOT / 'tests' / 'valgrind.supp'}",
            f"--log-file={VALGRIND}/{name}.%p.log"] + list(argv)


def run(args, **kw):
    """Runs a command with a timeout, capturing text output."""
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)


@pytest.fixture(params=PROGRAMS)
def program(request):
    return request.param
