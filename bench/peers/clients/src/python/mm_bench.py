"""Bench client for the project's Python face (marketplace_metering), same workload as boto3_bench.

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
    dist = metadata.distribution("marketplace-metering")
    total = files = 0
    for f in dist.files or ():
        p = os.path.realpath(dist.locate_file(f))
        if os.path.isfile(p):
            total += os.path.getsize(p)
            files += 1
    print(json.dumps({"client": "mm-python", "version": dist.version,
                      "footprint_bytes": total, "footprint_files": files,
                      "footprint_what": "site-packages files of marketplace-metering"}))


def usage_records():
    now = int(time.time())
    ts = now - now % 3600
    from datetime import datetime, timezone
    ts = datetime.fromtimestamp(ts, tz=timezone.utc)
    return [{"Timestamp": ts, "CustomerIdentifier": f"c-{i}",
             "Dimension": "users", "Quantity": 1} for i in range(25)]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--info":
        return info()
    endpoint = os.environ["BENCH_ENDPOINT"]
    calls = int(os.environ.get("BENCH_CALLS", "2000"))
    conc = max(1, int(os.environ.get("BENCH_CONCURRENCY", "1")))
    warmup = int(os.environ.get("BENCH_WARMUP", "50"))

    if len(sys.argv) > 1 and sys.argv[1] == "--harness":
        # Cold-start reference (clients/ref/python-harness): this script's start-up and its
        # records, without the library and without a call.
        usage_records()
        print(json.dumps({"calls": 0, "harness": True}))
        return

    import marketplace_metering as mm
    Config = mm.Config

    client = mm.Client(
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLEBENCH0000",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    records = usage_records()

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
