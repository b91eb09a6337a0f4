# SPDX-License-Identifier: Apache-2.0
"""Not a test: type-checked by test_stubs.py with mypy --strict (never run)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

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


def verify_sample() -> mm.Client:
    return mm.Client(region_name="us-east-1", verify=Path("ca.pem"))


async def asample(client: mm.AsyncClient) -> str:
    r = await client.meter_usage(ProductCode="p", Timestamp=1700000000, UsageDimension="users")
    return r.get("MeteringRecordId", "")


def meter_sample(client: mm.Client) -> int:
    from datetime import timedelta

    from marketplace_metering.testing import ManualClock
    from marketplace_metering.type_defs import FlushSummaryTypeDef, MeterEventTypeDef

    def on_event(e: MeterEventTypeDef) -> None:
        if e["kind"] == "dead_lettered":
            print(e["customer_identifier"], e.get("status"), e["hour"].isoformat())

    clock = ManualClock(datetime.now(timezone.utc))
    with mm.UsageMeter(client, path="metering.db", product_code="prod-1234", durability="group",
                       grace=timedelta(minutes=5), on_event=on_event, flush_interval=None,
                       clock=clock) as meter:
        meter.record("cust-1", "users", 3)
        meter.record(customer_aws_account_id="111122223333", license_arn="arn:aws:license-manager::1",
                     dimension="users", quantity=3, timestamp=datetime.now(timezone.utc),
                     allocations=[{"AllocatedUsageQuantity": 3, "Tags": [{"Key": "k", "Value": "v"}]}])
        clock.advance(timedelta(hours=1))
        summary: FlushSummaryTypeDef = meter.flush()
        if summary["interrupted"] is not None:
            print(summary["interrupted"]["error"].code)
        oldest = meter.status()["oldest_unsent_hour"]
        for ev in meter.events():
            print(ev["kind"], ev.get("metering_record_id"))
        for d in meter.dead_letters():
            print(d["reason"], d["at"])
    return summary["acked"] + (0 if oldest is None else oldest.hour)


async def ameter_sample(client: mm.AsyncClient) -> int:
    meter = mm.UsageMeter(client, mode="meter_usage", product_code="prod-1234")
    meter.record(dimension="users", quantity=1)
    return (await meter.flush_async())["sent"] + (await meter.close_async())["sent"]
