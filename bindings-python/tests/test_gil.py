# SPDX-License-Identifier: Apache-2.0
"""Blocking calls release the GIL: 8 threads × a 0.5 s server delay take ~0.5 s, not 4 s."""

from __future__ import annotations

import threading
import time

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import records


def test_eight_threads_overlap(client: mm.Client, emu: Emulator) -> None:
    n = 8
    for _ in range(n):
        emu.push_fault({"kind": "delay", "seconds": 0.5})
    errors: list = []
    results: list = []

    def work(i: int) -> None:
        try:
            results.append(client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=records(1, start=i + 1)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    assert not errors, errors
    assert len(results) == n
    # One after another they take 4 s; a loaded 2-core machine (CI) may add a second or two.
    assert elapsed < 3.0, f"{elapsed:.2f}s: calls did not overlap (GIL held?)"
    assert emu.pending_faults() == []


def test_python_thread_runs_during_call(client: mm.Client, emu: Emulator) -> None:
    emu.push_fault({"kind": "delay", "seconds": 0.5})
    counter = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        client.resolve_customer(RegistrationToken="reg-token-valid")
    finally:
        stop.set()
        t.join()
    assert counter > 10_000


FIRST_CALLS = """
import sys, threading
sys.setswitchinterval(1e-6)
import marketplace_metering as mm
from marketplace_metering.config import Config
c = mm.client("meteringmarketplace", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
              aws_access_key_id="AKID", aws_secret_access_key="secret",
              config=Config(retries={"total_max_attempts": 1}))
start = threading.Barrier(16)
def first_call():
    start.wait()
    try:
        c.resolve_customer(RegistrationToken="x")
    except mm.exceptions.ClientError:
        pass
    except Exception as e:  # connection refused: the endpoint is closed
        if "127.0.0.1:9" not in str(e):
            raise
threads = [threading.Thread(target=first_call) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_a_thread_pools_first_calls_never_hang_the_process(tmp_path) -> None:
    """The first blocking call of a process asks Python which thread is the main one. It held
    a lock while it asked, Python handed the GIL to another thread midway, and that thread
    waited on the lock holding the GIL: the whole process hung (11 runs in 40, a pool of 16
    threads making their first calls at once, a 1 µs switch interval)."""
    import subprocess
    import sys

    script = tmp_path / "first_calls.py"
    script.write_text(FIRST_CALLS)
    for run in range(20):
        try:
            done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"run {run}: the process hung") from None
        assert done.returncode == 0, done.stderr
