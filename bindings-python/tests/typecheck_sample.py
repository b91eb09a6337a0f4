# SPDX-License-Identifier: Apache-2.0
"""Not a test: type-checked by test_stubs.py with mypy --strict (never run)."""

from __future__ import annotations

from datetime import datetime, timezone

import marketplace_metering as mm
from marketplace_metering.type_defs import BatchMeterUsageResultTypeDef


def sample(client: mm.Client) -> int:
    resp: BatchMeterUsageResultTypeDef = client.batch_meter_usage(
        ProductCode="prod-1234",
        UsageRecords=[{"Timestamp": datetime.now(timezone.utc), "CustomerIdentifier": "c",
                       "Dimension": "users", "Quantity": 3}],
    )
    n = 0
    for r in resp["Results"]:
        if r.get("Status") == "Success":
            n += 1
    try:
        client.resolve_customer(RegistrationToken="t")
    except mm.exceptions.InvalidTokenException as e:
        print(e.response["Error"]["Code"], e.operation_name)
    except mm.ParamValidationError as e:
        print(e.field)
    return n + resp["ResponseMetadata"]["RetryAttempts"]


async def asample(client: mm.AsyncClient) -> str:
    r = await client.meter_usage(ProductCode="p", Timestamp=1700000000, UsageDimension="users")
    return r.get("MeteringRecordId", "")
