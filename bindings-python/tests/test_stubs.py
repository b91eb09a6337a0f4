# SPDX-License-Identifier: Apache-2.0
"""The stubs match the native module (mypy.stubtest) and the package type-checks (mypy)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent
ALLOWLIST = HERE / "stubtest-allowlist.txt"

pytest.importorskip("mypy")


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=HERE, env=env,
                          timeout=600)


def test_stubtest_native() -> None:
    args = ["mypy.stubtest", "marketplace_metering._native", "marketplace_metering.exceptions"]
    if ALLOWLIST.exists():
        args += ["--allowlist", str(ALLOWLIST)]
    r = run(*args)
    assert r.returncode == 0, r.stdout + r.stderr


def test_exceptions_stub_is_generated_from_the_table() -> None:
    r = subprocess.run([sys.executable, str(HERE / "tools" / "gen_exceptions_stub.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_on_examples() -> None:
    r = run("mypy", "--strict", str(HERE / "tests" / "typecheck_sample.py"))
    assert r.returncode == 0, r.stdout + r.stderr
