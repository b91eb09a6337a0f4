#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""One Python replica of a service: records its share of the usage into the fleet store.

Usage: replica.py DATABASE_URL ENDPOINT REPLICA_ID HOUR (credentials in MM_REGION, MM_AKID,
MM_SECRET, MM_PRODUCT)
Prints the total it recorded. Its clock reads 20 minutes into HOUR, so nothing seals here:
the coordinator flushes once the hour has ended (any replica could).
"""

import os
import sys

import marketplace_metering as mm
from marketplace_metering.testing import ManualClock

url, endpoint, replica, hour = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = os.environ
client = mm.Client(region_name=env["MM_REGION"], endpoint_url=endpoint,
                   aws_access_key_id=env["MM_AKID"], aws_secret_access_key=env["MM_SECRET"])
total = 0
with mm.UsageMeter(client, product_code=env["MM_PRODUCT"], database_url=url, replica_id=replica,
                   clock=ManualClock(hour + 1200), flush_interval=None) as meter:
    for i in range(60):
        # Every replica serves every customer: the case one SQLite file per replica bills wrong.
        meter.record(f"cust-{i % 4 + 1}", "users", 1 + i % 3)
        total += 1 + i % 3
print(total)
