# SPDX-License-Identifier: Apache-2.0
"""A cold start of the Python face, the one both link-order tools run.

    MM_ENDPOINT=http://127.0.0.1:PORT python scripts/cold_call.py

Imports marketplace_metering, makes a Client and sends one BatchMeterUsage of 25 records and
one MeterUsage to the emulator at MM_ENDPOINT (its default identity, product and customers).
`scripts/link-order.sh` runs it under callgrind to write bindings-python/link-order.txt;
`scripts/cold-rss.py` runs it to check that order. Prints the module's code resident in this
process (KiB) and the process's peak RSS (KiB), read from /proc.
"""

import os
import time
from datetime import datetime, timezone

import marketplace_metering as mm

client = mm.Client(
    region_name="us-east-1",
    endpoint_url=os.environ["MM_ENDPOINT"],
    aws_access_key_id="EMULATORKEYID0000001",
    aws_secret_access_key="emulator-secret-access-key",
)
hour = datetime.fromtimestamp(int(time.time()) // 3600 * 3600, tz=timezone.utc)
records = [
    {"Timestamp": hour, "CustomerIdentifier": f"cust-{i}", "Dimension": "users", "Quantity": 1}
    for i in range(1, 26)
]
out = client.batch_meter_usage(UsageRecords=records, ProductCode="prod-1234")
assert len(out["Results"]) == 25, out
client.meter_usage(
    ProductCode="prod-1234", Timestamp=hour, UsageDimension="users", UsageQuantity=1
)

code = 0
mapping = ""
for line in open("/proc/self/smaps"):
    fields = line.split()
    if "-" in fields[0] and not fields[0].endswith(":"):
        mapping = fields[1] + " " + (fields[5] if len(fields) > 5 else "")
    elif fields[0] == "Rss:" and mapping.startswith("r-xp") and "_native" in mapping:
        code += int(fields[1])
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(code, hwm)
