# SPDX-License-Identifier: Apache-2.0
"""How much of the Python module a cold process maps: fails when the link order has gone stale.

    .venv/bin/python scripts/cold-rss.py [LIMIT_KIB]

Drops the installed module from the page cache (as after a reboot, so the kernel reads it
back the way a new container does), then runs a fresh interpreter that imports
marketplace_metering, makes a Client and sends one BatchMeterUsage of 25 records and one
MeterUsage to a canned responder in this process, and prints the module's code resident in
that process and its peak RSS. bindings-python/build.rs links the code a cold start runs
together (bindings-python/link-order.txt); unordered, the same process maps about 4 MB of the
module's code. Over LIMIT_KIB (default 2560) means the order no longer matches the code:
run scripts/link-order.sh. Only on x86_64 Linux, where build.rs orders the link.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

CHILD = r"""
import os, time
from datetime import datetime, timezone
import marketplace_metering as mm

client = mm.Client(region_name="us-east-1", endpoint_url=os.environ["MM_ENDPOINT"],
                   aws_access_key_id="AKIDCOLDRSS000000000", aws_secret_access_key="cold-rss-secret")
hour = datetime.fromtimestamp(int(time.time()) // 3600 * 3600, tz=timezone.utc)
records = [{"Timestamp": hour, "CustomerIdentifier": f"cust-{i}", "Dimension": "users",
            "Quantity": 1} for i in range(1, 26)]
assert len(client.batch_meter_usage(UsageRecords=records, ProductCode="prod-1234")["Results"]) == 25
client.meter_usage(ProductCode="prod-1234", Timestamp=hour, UsageDimension="users", UsageQuantity=1)
code = hwm = 0
mapping = ""
for line in open("/proc/self/smaps"):
    fields = line.split()
    if "-" in fields[0] and not fields[0].endswith(":"):
        mapping = fields[1] + " " + (fields[5] if len(fields) > 5 else "")
    elif fields[0] == "Rss:" and mapping.startswith("r-xp") and "_native" in mapping:
        code += int(fields[1])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1])
print(code, hwm)
"""


class Canned(http.server.BaseHTTPRequestHandler):
    """Answers BatchMeterUsage with every record processed and MeterUsage with a record id."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers["X-Amz-Target"].endswith(".BatchMeterUsage"):
            answer = {"Results": [{"UsageRecord": r, "MeteringRecordId": f"id-{i}",
                                   "Status": "Success"}
                                  for i, r in enumerate(body["UsageRecords"])],
                      "UnprocessedRecords": []}
        else:
            answer = {"MeteringRecordId": "id-meter-usage"}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 2560
    if sys.platform != "linux" or platform.machine() != "x86_64":
        print("cold-rss: the link is ordered on x86_64 Linux only; nothing to check here")
        return 0
    spec = importlib.util.find_spec("marketplace_metering")  # finds it without importing it
    assert spec and spec.submodule_search_locations
    (module,) = Path(spec.submodule_search_locations[0]).glob("_native*.so")
    fd = os.open(module, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "MM_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True,
                         capture_output=True, text=True).stdout
    server.shutdown()
    code, hwm = (int(v) for v in out.split())
    print(f"cold-rss: {module.name} code resident after a cold call {code} KiB "
          f"(limit {limit}), peak RSS {hwm / 1024:.1f} MiB")
    if code > limit:
        print("cold-rss: the module's link order no longer matches its code: "
              "run scripts/link-order.sh and commit bindings-python/link-order.txt",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
