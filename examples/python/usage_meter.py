#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Meter usage with the UsageMeter against the in-process emulator.

Records billable events for several customers into a durable SQLite store, restarts the
meter half-way (the store keeps the events), lets the hours seal, flushes, and checks that
the emulator billed every customer-hour exactly once with exactly the recorded quantity.
Exits non-zero on any mismatch.

A ManualClock stands in for the wall clock so the example does not wait for hours to end.
Against AWS, use ``mm.Client(region_name=...)`` and leave ``clock`` out.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List

import marketplace_metering as mm
from marketplace_metering.testing import ManualClock, emulator

HOUR = 3600


def main() -> int:
    events: List[Dict[str, Any]] = []
    recorded: Counter = Counter()
    # Two real hours ago: the emulator, like the service, takes past hours up to 6 hours old.
    start = int(time.time()) // HOUR * HOUR - 2 * HOUR
    clock = ManualClock(start)
    with emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "metering.db"
        client = emu.client()

        def open_meter() -> mm.UsageMeter:
            return mm.UsageMeter(client, path=store, product_code=emu.product_code,
                                 on_event=events.append, clock=clock)

        meter = open_meter()
        for i in range(200):
            customer, dimension, quantity = f"cust-{i % 12 + 1}", ("users", "gb")[i % 2], i % 5 + 1
            meter.record(customer, dimension, quantity)
            recorded[(customer, dimension, start)] += quantity
        meter.record("cust-unsubscribed", "users", 1)  # the service will refuse this customer
        meter.close()  # a restart: the hour is still open, its events wait in the store

        clock.advance(timedelta(minutes=30))
        meter = open_meter()
        with meter:
            for i in range(50):
                meter.record(f"cust-{i % 3 + 1}", "users", 2)
                recorded[(f"cust-{i % 3 + 1}", "users", start)] += 2
            clock.advance(timedelta(minutes=36))  # the hour ended 6 minutes ago: sealed
            summary = meter.flush()
            status = meter.status()
            dead = meter.dead_letters()

        billed = Counter({(e["customer_identifier"], e["dimension"], e["hour"]): e["quantity"]
                          for e in emu.ledger()})
        once = len(billed) == len(emu.ledger())
        acked = sum(1 for e in events if e["kind"] == "acked")
        print(f"recorded {sum(recorded.values())} units in {len(recorded)} customer-hours; "
              f"flush: {summary['calls']} call(s), {summary['acked']} acked, "
              f"{summary['dead_lettered']} dead-lettered")
        print(f"billed {len(emu.ledger())} records, {sum(billed.values())} units; "
              f"status: {status['acked']} acked, {status['dead_lettered']} dead-lettered, "
              f"{status['pending'] + status['sealed']} unsent")
        for d in dead:
            print(f"  dead letter: {d['customer_identifier']} {d['dimension']} {d['hour']:%H:%M} "
                  f"x{d['quantity']}: {d['reason']}")
        ok = (billed == recorded and once and acked == len(recorded) and len(dead) == 1
              and summary["interrupted"] is None)
        print("ledger matches what was recorded" if ok else "MISMATCH", file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
