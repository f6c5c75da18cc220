# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures for the integration tests: where the built binaries are."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("MESHLET_BUILD", "build")
PROGRAMS = ("meshlet-ca", "meshlet-webhook", "meshlet-proxy")


def binary(name):
    path = BUILD / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'make' first")
    return str(path)


def run(args, **kw):
    """Runs a command with a timeout, capturing text output."""
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)


@pytest.fixture(params=PROGRAMS)
def program(request):
    return request.param
