# SPDX-License-Identifier: Apache-2.0
"""The fleet store from Python: two replicas record into one private PostgreSQL and the
emulator's ledger bills each customer-hour once. A test that cannot start PostgreSQL fails."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections import Counter
from typing import Iterator

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator, ManualClock

H = 3600
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "private-postgres.sh")


def pg(*args: str) -> str:
    out = subprocess.run(
        ["bash", SCRIPT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PG_FSYNC": "off"},
    )
    assert out.returncode == 0, f"private-postgres.sh {args} failed (PostgreSQL is required):\n{out.stderr}"
    return out.stdout.strip()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="mm-pg-py-")
    pg("start", d)
    try:
        yield d
    finally:
        pg("stop", d)


_n = [0]


@pytest.fixture
def database_url(cluster: str) -> str:
    _n[0] += 1
    return pg("createdb", cluster, f"py{_n[0]}")


def test_two_replicas_bill_each_customer_hour_once(emu: Emulator, database_url: str) -> None:
    b = int(time.time()) // H * H - 2 * H
    clock = ManualClock(b + 10)
    replicas = [
        mm.UsageMeter(
            emu.client(),
            product_code=emu.product_code,
            flush_interval=None,
            clock=clock,
            database_url=database_url,
            replica_id=f"py-{i}",
        )
        for i in range(2)
    ]
    for i, m in enumerate(replicas):
        for c in (1, 2, 3):
            m.record(f"cust-{c}", "users", c + i)
    clock.advance(H + 400)
    replicas[0].flush()
    replicas[1].flush()
    billed: Counter = Counter()
    for e in emu.ledger():
        key = (e["customer_identifier"], e["dimension"], int(e["hour"]))
        assert key not in billed, f"billed twice: {key}"
        billed[key] = e["quantity"]
    assert billed == {(f"cust-{c}", "users", b): 2 * c + 1 for c in (1, 2, 3)}
    s = replicas[1].status()
    assert (s["pending"], s["sealed"], s["acked"]) == (0, 0, 3)
    for m in replicas:
        m.close()


def test_bad_fleet_arguments_name_the_field(emu: Emulator, database_url: str, tmp_path) -> None:
    with pytest.raises(mm.exceptions.ParamValidationError) as e:
        mm.UsageMeter(emu.client(), path=str(tmp_path / "m.db"), database_url=database_url)
    assert e.value.field == "database_url"
    with pytest.raises(mm.exceptions.ParamValidationError) as e:
        mm.UsageMeter(emu.client(), database_url=42)  # type: ignore[arg-type]
    assert e.value.field == "database_url"
    with pytest.raises(mm.exceptions.ParamValidationError) as e:
        mm.UsageMeter(emu.client(), database_url="postgresql://u@h/db?sslmode=nonsense")
    assert e.value.field == "database_url"
    with pytest.raises(mm.exceptions.ParamValidationError) as e:
        mm.UsageMeter(emu.client(), database_url=database_url, replica_id="")
    assert e.value.field == "replica_id"
