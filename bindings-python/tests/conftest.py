# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

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


# The start of a child script: a client of a server that accepts and never answers (read
# timeout 60 s, one attempt).
HUNG_SERVER_CHILD = """
import socket, sys, time
import marketplace_metering as mm
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(16)
client = mm.Client(region_name="us-east-1", endpoint_url="http://127.0.0.1:%d" % srv.getsockname()[1],
                   aws_access_key_id="AKIDTEST", aws_secret_access_key="secret-value",
                   config=mm.Config(read_timeout=60, retries={"total_max_attempts": 1}))
"""


def interrupt_child(script: Path, setup: str, wait: str) -> Tuple[int, float, str, str]:
    """Runs HUNG_SERVER_CHILD, then ``setup``, then ``wait`` (a call that waits on the server)
    on the main thread of a child, sends it SIGINT once it waits, and returns its exit code
    (7 when ``wait`` raised KeyboardInterrupt), the seconds the signal took to end it, and
    its output."""
    body = "\n".join("    " + line for line in wait.strip().splitlines())
    script.write_text(HUNG_SERVER_CHILD + setup + f"""
import signal, threading
signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the parent ignores
def ready():
    time.sleep(0.3)  # the main thread waits by now
    print("ready", flush=True)
try:
    threading.Thread(target=ready, daemon=True).start()
{body}
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(7)
""")
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=10)
        took = time.monotonic() - started
    finally:
        child.kill()
    out, err = child.communicate()
    return code, took, out, err
