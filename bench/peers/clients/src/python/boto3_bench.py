"""Bench client for boto3 client('meteringmarketplace').

Contract (bench/peers/README.md): env BENCH_ENDPOINT, BENCH_CALLS, BENCH_CONCURRENCY,
BENCH_WARMUP; prints one JSON line on stdout. `--info` prints footprint JSON.
"""
import itertools
import json
import os
import sys
import threading
import time

FOOTPRINT_DISTS = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3",
                   "python-dateutil", "six")


def info():
    from importlib import metadata
    total, files, versions = 0, 0, {}
    seen = set()
    for name in FOOTPRINT_DISTS:
        dist = metadata.distribution(name)
        versions[name] = dist.version
        for f in dist.files or ():
            p = os.path.realpath(dist.locate_file(f))
            if p in seen or not os.path.isfile(p):
                continue
            seen.add(p)
            total += os.path.getsize(p)
            files += 1
    # .pyc files written at import time that RECORD does not list
    for name in FOOTPRINT_DISTS:
        dist = metadata.distribution(name)
        for f in dist.files or ():
            d = os.path.dirname(os.path.realpath(dist.locate_file(f)))
            pc = os.path.join(d, "__pycache__")
            if os.path.isdir(pc):
                for fn in os.listdir(pc):
                    p = os.path.join(pc, fn)
                    if p not in seen and os.path.isfile(p):
                        seen.add(p)
                        total += os.path.getsize(p)
                        files += 1
    print(json.dumps({"client": "boto3", "version": versions["boto3"],
                      "versions": versions, "footprint_bytes": total,
                      "footprint_files": files,
                      "footprint_what": "site-packages files of " + "+".join(FOOTPRINT_DISTS)}))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--info":
        return info()
    endpoint = os.environ["BENCH_ENDPOINT"]
    calls = int(os.environ.get("BENCH_CALLS", "2000"))
    conc = max(1, int(os.environ.get("BENCH_CONCURRENCY", "1")))
    warmup = int(os.environ.get("BENCH_WARMUP", "50"))

    import boto3
    from botocore.config import Config

    client = boto3.client(
        "meteringmarketplace",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLEBENCH0000",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      max_pool_connections=max(10, conc)),
    )
    now = int(time.time())
    ts = now - now % 3600
    from datetime import datetime, timezone
    ts = datetime.fromtimestamp(ts, tz=timezone.utc)
    records = [{"Timestamp": ts, "CustomerIdentifier": f"c-{i}",
                "Dimension": "users", "Quantity": 1} for i in range(25)]

    def one():
        r = client.batch_meter_usage(UsageRecords=records, ProductCode="prod-123")
        if len(r["Results"]) != 25:
            raise SystemExit("unexpected result count %d" % len(r["Results"]))

    def run(n):
        if conc == 1:
            for _ in range(n):
                one()
            return
        counter = itertools.count()  # next() is atomic under the GIL
        errors = []

        def worker():
            try:
                while next(counter) < n:
                    one()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        ts_ = [threading.Thread(target=worker) for _ in range(conc)]
        for t in ts_:
            t.start()
        for t in ts_:
            t.join()
        if errors:
            raise errors[0]

    if warmup:
        run(warmup)
    c0 = time.process_time()
    t0 = time.perf_counter()
    run(calls)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(json.dumps({"calls": calls, "seconds": round(secs, 6),
                      "calls_per_sec": round(calls / secs, 2),
                      "concurrency": conc, "warmup": warmup,
                      "cpu_seconds": round(cpu, 6)}))


if __name__ == "__main__":
    main()
