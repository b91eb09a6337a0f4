# SPDX-License-Identifier: Apache-2.0
"""A Python replica of the fleet chaos test (core/tests/fleet_chaos.rs), run when
MM_FLEET_PYTHON names an interpreter that imports marketplace_metering.

Same protocol as the Rust `replica_process`: the same environment variables, the same seeded
event stream (fastrand's WyRand, reproduced below), the same simulated clock, and each
acknowledged record() journaled as "customer hour quantity" and fsynced before the next.

Where the Rust replica has constants, it reads MM_FLEET_REGION, MM_FLEET_KEY_ID,
MM_FLEET_SECRET (the emulator's fixed test credentials) and MM_FLEET_PRODUCT.

It records and sends as the Rust replica does: a background flush every 200 ms with a 1 s
fleet lease, so a Python replica SIGKILLed mid-send leaves a claim another replica takes over.
"""

from __future__ import annotations

import os
import time

import marketplace_metering as mm
from marketplace_metering.testing import ManualClock

H = 3600
M64 = (1 << 64) - 1


class WyRand:
    """fastrand 2's Rng: `with_seed`, and `gen_mod_u64` behind `usize(..n)` / `i64(a..=b)`."""

    def __init__(self, seed: int) -> None:
        self.s = seed & M64

    def u64(self) -> int:
        self.s = (self.s + 0x2D358DCCAA6C78A5) & M64
        t = self.s * (self.s ^ 0x8BB84B93962EACC9)
        return (t & M64) ^ (t >> 64)

    def below(self, n: int) -> int:
        r = self.u64()
        hi, lo = (r * n) >> 64, (r * n) & M64
        if lo < n:
            t = ((-n) & M64) % n
            while lo < t:
                r = self.u64()
                hi, lo = (r * n) >> 64, (r * n) & M64
        return hi


def main() -> None:
    env = os.environ
    start, t0, end = int(env["MM_FLEET_START"]), int(env["MM_FLEET_T0"]), int(env["MM_FLEET_END"])
    speed = int(env.get("MM_FLEET_SPEED") or 0) or 600

    def sim() -> int:
        return start + (time.time_ns() // 1_000_000 - t0) * speed // 1000

    clock = ManualClock(sim())
    client = mm.Client(
        region_name=env["MM_FLEET_REGION"],
        endpoint_url=env["MM_FLEET_ENDPOINT"],
        aws_access_key_id=env["MM_FLEET_KEY_ID"],
        aws_secret_access_key=env["MM_FLEET_SECRET"],
    )
    meter = mm.UsageMeter(
        client,
        product_code=env["MM_FLEET_PRODUCT"],
        durability="durable",
        grace=300,
        # Sends as the Rust replicas do: a background flush every 200 ms, and a 1 s lease so a
        # killed sender's claim passes to another replica quickly.
        flush_interval=0.2,
        fleet_lease=1,
        clock=clock,
        database_url=env["MM_FLEET_URL"],
        replica_id=env["MM_FLEET_REPLICA"],
    )
    rng = WyRand(int(env["MM_FLEET_SEED"]))
    fd = os.open(env["MM_FLEET_JOURNAL"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    while sim() < end:
        c = 1 + rng.below(10)
        q = 1 + rng.below(5)
        t = sim()
        clock.set(t)
        meter.record(f"cust-{c}", "users", q)
        os.write(fd, f"cust-{c} {t // H * H} {q}\n".encode())
        os.fdatasync(fd)
        time.sleep(0.002)
    os.close(fd)
    # No close(): every record() above was committed before it returned; what is left to
    # send is the drain's (or any replica's) to send, as after a kill.


if __name__ == "__main__":
    main()
