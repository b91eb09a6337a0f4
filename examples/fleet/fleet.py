#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The fleet store: three replica processes in two languages, one PostgreSQL, each
customer-hour billed once.

Starts a private PostgreSQL (scripts/private-postgres.sh) and the emulator, runs two Python
replicas and one Node replica that all serve the same four customers in the same hour, then
flushes once the hour has ended and checks the emulator's ledger: one record per
customer-hour, holding the sum of all three replicas' usage. With one SQLite file per
replica the service would have billed the first replica's part and answered DuplicateRecord
to the others. Exits non-zero on any mismatch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

import marketplace_metering as mm
from marketplace_metering.testing import ManualClock, emulator

HOUR = 3600
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
PG = os.path.join(ROOT, "scripts", "private-postgres.sh")


def pg(*args: str) -> str:
    return subprocess.run(["bash", PG, *args], check=True, capture_output=True, text=True).stdout.strip()


def main() -> int:
    hour = int(time.time()) // HOUR * HOUR - HOUR  # the previous hour: inside the 6-hour window
    pgdir = tempfile.mkdtemp(prefix="mm-fleet-example-")
    pg("start", pgdir)
    try:
        url = pg("createdb", pgdir, "billing")
        with emulator() as emu:
            env = {**os.environ, "MM_REGION": emu.region_name, "MM_AKID": emu.aws_access_key_id,
                   "MM_SECRET": emu.aws_secret_access_key, "MM_PRODUCT": emu.product_code}
            cmds = [
                [sys.executable, os.path.join(HERE, "replica.py"), url, emu.endpoint_url, "py-1", str(hour)],
                [sys.executable, os.path.join(HERE, "replica.py"), url, emu.endpoint_url, "py-2", str(hour)],
                ["node", os.path.join(HERE, "replica.js"), url, emu.endpoint_url, "node-1", str(hour)],
            ]
            procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, text=True) for c in cmds]
            recorded = 0
            for c, p in zip(cmds, procs):
                out, _ = p.communicate(timeout=120)
                if p.returncode != 0:
                    print(f"replica {c[4]} failed", file=sys.stderr)
                    return 1
                print(f"replica {c[4]:7} recorded {out.strip()} units")
                recorded += int(out.strip())
            # The hour has ended and its grace passed: any replica may flush; this one does.
            with mm.UsageMeter(emu.client(), product_code=emu.product_code, database_url=url,
                               replica_id="flusher", clock=ManualClock(hour + HOUR + 400),
                               flush_interval=None) as meter:
                summary = meter.flush()
                print(f"flush: sealed {summary['sealed']}, acked {summary['acked']}")
            billed: Counter = Counter()
            for e in emu.ledger():
                key = (e["customer_identifier"], e["dimension"], int(e["hour"]))
                if key in billed:
                    print(f"billed twice: {key}", file=sys.stderr)
                    return 1
                billed[key] = e["quantity"]
                print(f"ledger: {key[0]}/{key[1]} hour {key[2]}: {e['quantity']}")
            if sum(billed.values()) != recorded or len(billed) != 4:
                print(f"billed {sum(billed.values())} in {len(billed)} records, recorded {recorded}",
                      file=sys.stderr)
                return 1
            print(f"OK: {recorded} units from 3 replicas billed once per customer-hour ({len(billed)} records)")
            return 0
    finally:
        pg("stop", pgdir)


if __name__ == "__main__":
    sys.exit(main())
