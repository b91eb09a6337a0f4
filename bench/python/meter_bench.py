#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""UsageMeter.record() calls/s from Python, and one flush to the in-process emulator.

    pip install ./bindings-python          # a release build (maturin develop --release)
    python bench/python/meter_bench.py [--seconds 2] [--threads 8]

Cases: the in-memory store (``path=None``), a file store with ``durability="memory"``,
``"group"`` (N threads sharing group commits) and ``"durable"`` (one commit per call, one
thread), the last two also with ``power_loss_safe=False`` (no fsync per commit). Each case records for ``--seconds`` into 50 customers × 3 dimensions of one
hour, then the clock moves past the hour and one flush sends what was recorded.
Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Optional

import marketplace_metering as mm
from marketplace_metering.testing import Emulator, ManualClock

CUSTOMERS = [f"cust-{i}" for i in range(1, 51)]  # the emulator's subscribed customers
DIMENSIONS = ["users", "gb", "requests"]


def run(emu: Emulator, name: str, path: Optional[Path], durability: str, threads: int,
        seconds: float, power_loss_safe: bool = True) -> Dict[str, Any]:
    start = int(time.time()) // 3600 * 3600 - 2 * 3600
    clock = ManualClock(start)
    meter = mm.UsageMeter(emu.client(), path=path, product_code=emu.product_code,
                          durability=durability, flush_interval=None, clock=clock,
                          power_loss_safe=power_loss_safe)
    counts = [0] * threads
    stop = threading.Event()

    def work(k: int) -> None:
        record = meter.record
        n = 0
        while not stop.is_set():
            for i in range(600):
                record(CUSTOMERS[(i + k) % 50], DIMENSIONS[i % 3], 1)
            n += 600
        counts[k] = n

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    total = sum(counts)
    clock.advance(timedelta(hours=1, minutes=6))
    emu.reset()
    f0 = time.perf_counter()
    summary = meter.flush()
    flush_s = time.perf_counter() - f0
    meter.close()
    billed = sum(e["quantity"] for e in emu.ledger())
    assert billed == total, f"{name}: billed {billed}, recorded {total}: {summary}"
    return {"case": name, "threads": threads, "calls": total,
            "calls_per_s": round(total / elapsed), "flushed_buckets": summary["acked"],
            "flush_s": round(flush_s, 3), "billed_matches": billed == total}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cases = [
            ("memory store", None, "durable", 1, True),
            ("memory store", None, "durable", a.threads, True),
            ("file, durability=memory", d / "m.db", "memory", 1, True),
            ("file, durability=group", d / "g.db", "group", a.threads, True),
            ("file, durability=group, power_loss_safe=False", d / "gn.db", "group", a.threads, False),
            ("file, durability=durable", d / "d.db", "durable", 1, True),
            ("file, durability=durable, power_loss_safe=False", d / "dn.db", "durable", 1, False),
        ]
        for name, path, durability, threads, safe in cases:
            print(json.dumps(run(emu, name, path, durability, threads, a.seconds, safe)), flush=True)


if __name__ == "__main__":
    main()
