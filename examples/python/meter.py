#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Meter 25 records with BatchMeterUsage against the in-process emulator.

Checks each record's Status, re-sends UnprocessedRecords, prints a summary and exits
non-zero on failure. Against AWS, use ``mm.Client(region_name=...)`` instead of ``emu.client()``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import marketplace_metering as mm
from marketplace_metering.testing import emulator


def main() -> int:
    with emulator() as emu:
        client = emu.client()
        emu.push_fault({"kind": "partial", "count": 3})  # the service may leave records unprocessed
        now = datetime.now(timezone.utc)
        pending = [
            {"Timestamp": now, "CustomerIdentifier": f"cust-{i}", "Dimension": "users", "Quantity": i}
            for i in range(1, 26)
        ]
        statuses: dict = {}
        for attempt in range(1, 6):
            try:
                resp = client.batch_meter_usage(ProductCode=emu.product_code, UsageRecords=pending)
            except mm.ClientError as e:
                print(f"BatchMeterUsage failed: {e.code}: {e.message} (request id {e.request_id})", file=sys.stderr)
                return 1
            for r in resp["Results"]:
                statuses[r["UsageRecord"]["CustomerIdentifier"]] = r.get("Status", "?")
            pending = resp["UnprocessedRecords"]
            if not pending:
                break
            print(f"attempt {attempt}: {len(pending)} unprocessed record(s), re-sending")
        ok = sum(1 for s in statuses.values() if s == "Success")
        failed = {c: s for c, s in statuses.items() if s != "Success"}
        print(f"metered {ok}/25 records, {len(emu.ledger())} billed, {len(pending)} unprocessed")
        for c, s in failed.items():
            print(f"  {c}: {s}", file=sys.stderr)
        return 0 if ok == 25 and not pending else 1


if __name__ == "__main__":
    sys.exit(main())
