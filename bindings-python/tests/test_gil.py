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
    assert elapsed < 2.0, f"{elapsed:.2f}s: calls did not overlap (GIL held?)"
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
