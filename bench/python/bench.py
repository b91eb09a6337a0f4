#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""BatchMeterUsage (25 records) on loopback against the in-process emulator:
marketplace_metering vs boto3, in the same run.

    pip install ./bindings-python boto3
    python bench/python/bench.py [--seconds 3] [--threads 8] [--cold-runs 5]

Reports sequential calls/s (both), calls/s with N threads on one client (ours), cold start
(fresh interpreter: import + client + one call; median) and installed size (the package vs
boto3 + botocore + their dependencies).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import marketplace_metering as mm
from marketplace_metering.testing import Emulator


def batch() -> list:
    ts = datetime.now(timezone.utc)
    return [{"Timestamp": ts, "CustomerIdentifier": f"cust-{i}", "Dimension": "users", "Quantity": 1}
            for i in range(1, 26)]


def sequential(call, seconds: float) -> float:
    recs = batch()
    call(recs)  # warm up: connection, credentials
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call(recs)
        n += 1
    return n / (time.perf_counter() - t0)


def threaded(call, seconds: float, threads: int) -> float:
    recs = batch()
    call(recs)
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            call(recs)
            counts[i] += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


COLD_OURS = """
import marketplace_metering as mm
from datetime import datetime, timezone
c = mm.Client(**KW)
c.batch_meter_usage(ProductCode="prod-1234", UsageRecords=[{"Timestamp": datetime.now(timezone.utc), "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1}])
"""
COLD_BOTO = """
import boto3
from datetime import datetime, timezone
c = boto3.client("meteringmarketplace", **KW)
c.batch_meter_usage(ProductCode="prod-1234", UsageRecords=[{"Timestamp": datetime.now(timezone.utc), "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1}])
"""


def cold(code: str, kw: dict, runs: int) -> float:
    src = f"KW = {kw!r}\n" + code
    env = dict(os.environ, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", src], check=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def dist_size(names: list) -> int:
    seen: set = set()
    total = 0
    for name in names:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for f in dist.files or []:
            p = Path(dist.locate_file(f)).resolve()
            if p in seen or not p.is_file():
                continue
            seen.add(p)
            total += p.stat().st_size
    return total


def deps_closure(name: str) -> list:
    out, todo = [], [name]
    while todo:
        n = todo.pop()
        key = n.lower().replace("_", "-")
        if key in out:
            continue
        try:
            reqs = md.requires(n) or []
        except md.PackageNotFoundError:
            continue
        out.append(key)
        for r in reqs:
            if "extra ==" in r:
                continue
            dep = r.split(";")[0].split("[")[0]
            for sep in "<>=!~ (":
                dep = dep.split(sep)[0]
            todo.append(dep.strip())
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    res: dict = {"python": sys.version.split()[0], "marketplace_metering": mm.__version__}
    with Emulator() as emu:
        kw = emu.client_kwargs()
        ours = mm.Client(**kw)

        def ours_call(recs: list) -> None:
            r = ours.batch_meter_usage(ProductCode="prod-1234", UsageRecords=recs)
            assert len(r["Results"]) == 25

        res["ours_seq_calls_per_s"] = sequential(ours_call, a.seconds)
        res[f"ours_{a.threads}threads_calls_per_s"] = threaded(ours_call, a.seconds, a.threads)
        res["ours_cold_start_s"] = cold(COLD_OURS, kw, a.cold_runs)
        try:
            import boto3
        except ImportError:
            boto3 = None
        if boto3 is not None:
            res["boto3"] = boto3.__version__
            b = boto3.client("meteringmarketplace", **kw)

            def boto_call(recs: list) -> None:
                r = b.batch_meter_usage(ProductCode="prod-1234", UsageRecords=recs)
                assert len(r["Results"]) == 25

            res["boto3_seq_calls_per_s"] = sequential(boto_call, a.seconds)
            res["boto3_cold_start_s"] = cold(COLD_BOTO, kw, a.cold_runs)
    res["ours_installed_bytes"] = dist_size(["marketplace-metering"])
    boto_dists = deps_closure("boto3")
    res["boto3_dists"] = boto_dists
    res["boto3_installed_bytes"] = dist_size(boto_dists)
    if "boto3_seq_calls_per_s" in res:
        res["speedup_sequential"] = res["ours_seq_calls_per_s"] / res["boto3_seq_calls_per_s"]
        res["cold_start_ratio"] = res["ours_cold_start_s"] / res["boto3_cold_start_s"]
    if res["boto3_installed_bytes"]:
        res["size_ratio"] = res["ours_installed_bytes"] / res["boto3_installed_bytes"]
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:32} {v:,.3f}" if isinstance(v, float) else f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
