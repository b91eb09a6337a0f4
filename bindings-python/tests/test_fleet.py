# SPDX-License-Identifier: Apache-2.0
"""The fleet store from Python: two replicas record into one private PostgreSQL and the
emulator's ledger bills each customer-hour once. A test that cannot start PostgreSQL fails."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
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
    assert s["replica_id"] == "py-1"
    # Every event names the replica whose meter emitted it.
    acked = 0
    for i, m in enumerate(replicas):
        for e in m.events():
            assert e["replica_id"] == f"py-{i}", e
            acked += e["kind"] == "acked"
    assert acked == 3
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


def test_cut_over_from_sqlite_at_an_hour_boundary_bills_each_hour_once(
    emu: Emulator, database_url: str, tmp_path
) -> None:
    """The README's cut-over from Python: SQLite until T, the fleet (start_hour=T) from T."""
    t = int(time.time()) // H * H - 2 * H
    clock = ManualClock(t - H + 60)
    old = mm.UsageMeter(
        emu.client(), path=str(tmp_path / "old.db"), product_code=emu.product_code, flush_interval=None, clock=clock
    )
    new = mm.UsageMeter(
        emu.client(),
        product_code=emu.product_code,
        flush_interval=None,
        clock=clock,
        database_url=database_url,
        start_hour=datetime.fromtimestamp(t + 1234, timezone.utc),
    )
    old.record("cust-1", "users", 5)
    with pytest.raises(mm.exceptions.ParamValidationError) as e:
        new.record("cust-1", "users", 7)
    assert e.value.field == "timestamp", "an hour before T belongs to the SQLite meter"
    clock.set(t + 60)
    new.record("cust-1", "users", 7)
    clock.set(t + H + 400)
    new.flush()
    old.close()
    new.close()
    billed = sorted((int(e["hour"]), e["quantity"]) for e in emu.ledger())
    assert billed == [(t - H, 5), (t, 7)]


def test_fleet_tuning_is_passed_and_checked_by_the_core(emu: Emulator, database_url: str) -> None:
    for kwargs, field in (
        ({"fleet_senders": 0}, "fleet_senders"),
        ({"fleet_senders": -3}, "fleet_senders"),
        ({"fleet_senders": "2"}, "fleet_senders"),
        ({"fleet_senders": True}, "fleet_senders"),
        ({"fleet_lease": 0}, "fleet_lease"),
        ({"fleet_lease": -1.0}, "fleet_lease"),
        ({"fleet_lease": timedelta(seconds=1801)}, "fleet_lease"),  # past half an hour: a dead sender's claim
        ({"start_hour": "soon"}, "start_hour"),
        ({"power_loss_safe": False}, "power_loss_safe"),  # the database's durability, not ours
    ):
        with pytest.raises(mm.exceptions.ParamValidationError) as e:
            mm.UsageMeter(emu.client(), database_url=database_url, **kwargs)
        assert e.value.field == field, kwargs
    m = mm.UsageMeter(
        emu.client(),
        product_code=emu.product_code,
        database_url=database_url,
        flush_interval=None,
        fleet_senders=3,
        fleet_lease=timedelta(seconds=30),
    )
    m.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fleet_meter_made_before_fork_is_dropped_in_children_and_the_parent_bills(
    emu: Emulator, database_url: str
) -> None:
    """gunicorn --preload with a fleet meter: each worker inherits the master's meter, its
    pool of PostgreSQL connections and its runtime, with the flusher busy at the fork. A
    worker must be refused, drop the meter without hanging on a lock a runtime thread held at
    the fork, and leave the parent's connections working."""
    import gc

    from conftest import run_in_child

    b = int(time.time()) // H * H - 2 * H
    clock = ManualClock(b + 10)
    holder = [
        mm.UsageMeter(
            emu.client(), product_code=emu.product_code, flush_interval=0.005, clock=clock,
            database_url=database_url, durability="memory",
        )
    ]
    m = holder[0]
    m.record("cust-1", "users", 1)

    def child() -> None:
        with pytest.raises(mm.exceptions.InvalidStateError, match="after fork"):
            holder[0].record("cust-2", "users", 1)
        with pytest.raises(mm.exceptions.InvalidStateError, match="after fork"):
            holder[0].flush()
        holder.clear()
        gc.collect()

    for i in range(12):
        m.record("cust-1", "users", 1)
        start = time.monotonic()
        assert run_in_child(child) == 0, f"child {i}"
        assert time.monotonic() - start < 10, f"child {i} took {time.monotonic() - start:.1f} s"
    m.record("cust-1", "users", 1)
    clock.advance(H + 400)
    m.flush()
    m.close()
    assert [(e["customer_identifier"], e["quantity"]) for e in emu.ledger()] == [("cust-1", 14)]


EXIT_CHILD = """
import sys
import marketplace_metering as mm
from marketplace_metering.testing import ManualClock
endpoint, url, path, base, product, key, secret = sys.argv[1:8]
client = mm.client("meteringmarketplace", region_name="us-east-1", endpoint_url=endpoint,
                   aws_access_key_id=key, aws_secret_access_key=secret)
clock = ManualClock(int(base) + 600)
fleet = mm.UsageMeter(client, product_code=product, flush_interval=None, clock=clock,
                      database_url=url, durability="memory")
local = mm.UsageMeter(client, path=path, product_code=product, flush_interval=None,
                      clock=clock, durability="memory")
print("opened", flush=True)
sys.stdin.readline()
fleet.record("cust-40", "users", 3)
local.record("cust-40", "users", 5)
"""


def test_the_exit_hook_writes_each_meter_on_its_own_within_10_s_while_one_store_holds_it_up(
    emu: Emulator, cluster: str, tmp_path
) -> None:
    """The package's exit hook wrote the meters' buffers one at a time with no deadline: a
    fleet store that did not answer (its table held here) held up the SQLite meter after it,
    and the interpreter's exit with it, until a container's stop timeout killed the process
    and lost both buffers. Each meter is written on a thread of its own now, within 10 s, as
    in the other faces."""
    url = pg("createdb", cluster, "py_exit")
    b = int(time.time()) // H * H - 2 * H
    db = tmp_path / "exit.db"
    script = tmp_path / "exit_child.py"
    script.write_text(EXIT_CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), emu.endpoint_url, url, str(db), str(b), emu.product_code,
         emu.aws_access_key_id, emu.aws_secret_access_key],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    holder = None
    try:
        assert child.stdout.readline().strip() == "opened"
        holder = subprocess.Popen(
            ["bash", SCRIPT, "psql", cluster, "py_exit", "-c",
             "BEGIN; LOCK TABLE mm_commits IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(45); COMMIT;"],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        held = ("SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND granted "
                "AND mode = 'AccessExclusiveLock' AND relation = 'mm_commits'::regclass")
        waited = time.monotonic()
        while pg("psql", cluster, "py_exit", "-tAc", held) == "0":
            assert time.monotonic() - waited < 30, "the lock was never taken"
            time.sleep(0.05)
        started = time.monotonic()
        _, err = child.communicate("go\n", timeout=90)
        took = time.monotonic() - started
        assert took < 25, f"the exit took {took:.1f} s"
        assert child.returncode == 0, err
        assert "did not answer within 10 s" in err, err
    finally:
        child.kill()
        if holder is not None:
            # psql runs under the script's shell (and runuser as root): its session ends too.
            os.killpg(holder.pid, 9)
            holder.wait()
    check = mm.UsageMeter(emu.client(), path=str(db), product_code=emu.product_code,
                          flush_interval=None, clock=ManualClock(b + H + 400))
    try:
        assert check.flush()["acked"] == 1
    finally:
        check.close()
