# SPDX-License-Identifier: Apache-2.0
"""Blocking calls share one connection pool per client: connections are bounded by the calls in
flight, not by the threads that ever called (a thread pool that recycles its workers). The
emulator numbers the TCP connections it accepts and logs each request with its number."""

from __future__ import annotations

import os
import threading
from typing import Set

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import records
from test_fork import run_in_child


def connections(emu: Emulator) -> Set[int]:
    return {r["connection"] for r in emu.requests()}


def call(client: mm.Client, customer: int) -> None:
    r = client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=records(1, start=customer))
    assert r["Results"][0]["Status"] == "Success"


def in_fresh_thread(fn, *args) -> None:  # type: ignore[no-untyped-def]
    failures = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001
            failures.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert not failures, failures


def test_calls_from_fresh_threads_one_at_a_time_reuse_one_connection(emu: Emulator) -> None:
    client = emu.client(config=mm.Config(retries={"total_max_attempts": 1}))
    for i in range(16):
        in_fresh_thread(call, client, i + 1)
    assert len(emu.requests()) == 16
    assert len(connections(emu)) == 1, connections(emu)


def test_parallel_calls_from_fresh_threads_open_at_most_one_connection_per_call_in_flight(
    emu: Emulator,
) -> None:
    client = emu.client(config=mm.Config(retries={"total_max_attempts": 1}))
    failures = []
    for rnd in range(3):
        for _ in range(8):
            emu.push_fault({"kind": "delay", "seconds": 0.05})
        start = threading.Barrier(8)

        def run(customer: int) -> None:
            start.wait()
            try:
                call(client, customer)
            except BaseException as e:  # noqa: BLE001
                failures.append(e)

        threads = [threading.Thread(target=run, args=(rnd * 8 + t + 1,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not failures, failures
    assert len(emu.requests()) == 24
    assert len(connections(emu)) <= 8, connections(emu)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_client_works_after_fork_with_calls_from_fresh_threads(emu: Emulator) -> None:
    client = emu.client(config=mm.Config(retries={"total_max_attempts": 1}))
    in_fresh_thread(call, client, 1)

    def child() -> None:
        call(client, 2)
        in_fresh_thread(call, client, 3)

    assert run_in_child(child) == 0
    for i in range(4, 8):
        in_fresh_thread(call, client, i)
    assert len(emu.ledger()) == 7
