# SPDX-License-Identifier: Apache-2.0
"""Smoke test of the installed wheel, run by scripts/test-all.sh in a fresh venv whose PATH
has no cargo or rustc: the in-process emulator answers a call, and a UsageMeter bills an hour
through it. Exits non-zero on any failure."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import marketplace_metering as mm
from marketplace_metering.testing import ManualClock, emulator

HOUR = 3600


def main() -> int:
    for tool in ("cargo", "rustc"):
        assert shutil.which(tool) is None, f"{tool} is on PATH: this must run without Rust"
    module = Path(mm.__file__).resolve()
    assert "site-packages" in module.parts, f"imported {module}, not the installed wheel"

    # Two real hours ago: the emulator, like the service, takes hours up to 6 hours old.
    start = int(time.time()) // HOUR * HOUR - 2 * HOUR
    clock = ManualClock(start)
    with emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        client = emu.client()
        out = client.batch_meter_usage(ProductCode=emu.product_code, UsageRecords=[{
            "Timestamp": datetime.fromtimestamp(start, timezone.utc),
            "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 2}])
        assert [r["Status"] for r in out["Results"]] == ["Success"], out
        with mm.UsageMeter(client, path=Path(tmp) / "metering.db", product_code=emu.product_code,
                           clock=clock) as meter:
            for _ in range(3):
                meter.record("cust-2", "gb", 5)
            clock.advance(66 * 60)  # the hour ended 6 minutes ago: past the grace, sealed
            summary = meter.flush()
        assert summary["acked"] == 1 and summary["interrupted"] is None, summary
        billed = sorted((e["customer_identifier"], e["dimension"], e["quantity"]) for e in emu.ledger())
        assert billed == [("cust-1", "users", 2), ("cust-2", "gb", 15)], billed
    print(f"python smoke test passed: marketplace-metering {mm.__version__} from {module.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
