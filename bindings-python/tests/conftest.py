# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import os
import signal
import sys
import warnings
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator


@pytest.fixture(scope="session")
def emu_session() -> Iterator[Emulator]:
    emu = Emulator()
    yield emu
    emu.shutdown()


@pytest.fixture
def emu(emu_session: Emulator) -> Emulator:
    emu_session.reset()
    return emu_session


@pytest.fixture
def client(emu: Emulator) -> mm.Client:
    return emu.client()


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def records(n: int, *, start: int = 1, quantity: int = 3, dimension: str = "users") -> List[Dict[str, Any]]:
    ts = now()
    return [
        {"Timestamp": ts, "CustomerIdentifier": f"cust-{start + i}", "Dimension": dimension, "Quantity": quantity}
        for i in range(n)
    ]


def run_in_child(fn: Callable[[], Any]) -> int:
    """Runs ``fn`` in a forked child and returns the child's exit code: 0 when ``fn``
    returned, 1 when it raised (printed to stderr). A hang fails after 20 s (SIGALRM)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
        pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            signal.alarm(20)
            fn()
            code = 0
        except BaseException as e:  # noqa: BLE001
            print(f"child failed: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
