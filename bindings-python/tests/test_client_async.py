# SPDX-License-Identifier: Apache-2.0
"""The asyncio client against the in-process emulator (mirrors test_client_sync.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import now, records

PRODUCT = "prod-1234"


@pytest.fixture
def aclient(emu: Emulator) -> mm.AsyncClient:
    return emu.async_client()


def assert_metadata(resp: dict, retries: int = 0) -> None:
    meta = resp["ResponseMetadata"]
    assert set(meta) == {"RequestId", "HTTPStatusCode", "HTTPHeaders", "RetryAttempts"}
    assert meta["RequestId"] and meta["HTTPStatusCode"] == 200
    assert meta["RetryAttempts"] == retries


async def test_batch_meter_usage_success(aclient: mm.AsyncClient, emu: Emulator) -> None:
    recs = records(3)
    resp = await aclient.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=recs)
    assert [r["Status"] for r in resp["Results"]] == ["Success"] * 3
    assert resp["UnprocessedRecords"] == []
    assert resp["Results"][0]["UsageRecord"]["Timestamp"] == recs[0]["Timestamp"]
    assert_metadata(resp)
    assert len(emu.ledger()) == 3


async def test_batch_per_record_statuses(aclient: mm.AsyncClient, emu: Emulator) -> None:
    ts = now()
    await aclient.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 5}])
    resp = await aclient.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 5},
        {"Timestamp": ts, "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 6},
        {"Timestamp": ts, "CustomerIdentifier": "cust-unsubscribed", "Dimension": "users", "Quantity": 1},
    ])
    assert [r["Status"] for r in resp["Results"]] == ["Success", "DuplicateRecord", "CustomerNotSubscribed"]
    assert len(emu.ledger()) == 1


async def test_gather_many(aclient: mm.AsyncClient, emu: Emulator) -> None:
    resps = await asyncio.gather(*[
        aclient.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(1, start=i + 1))
        for i in range(20)
    ])
    assert all(r["Results"][0]["Status"] == "Success" for r in resps)
    assert len(emu.ledger()) == 20


async def test_meter_usage(aclient: mm.AsyncClient, emu: Emulator) -> None:
    ts = now()
    resp = await aclient.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=4)
    assert set(resp) == {"MeteringRecordId", "ResponseMetadata"}
    with pytest.raises(aclient.exceptions.DuplicateRequestException) as ei:
        await aclient.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=9)
    assert ei.value.operation_name == "MeterUsage"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_meter_usage_dry_run_and_client_token(aclient: mm.AsyncClient, emu: Emulator) -> None:
    with pytest.raises(mm.exceptions.DryRunOperation):
        await aclient.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="gb", DryRun=True)
    token = str(uuid.uuid4())
    await aclient.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="gb", UsageQuantity=1, ClientToken=token)
    with pytest.raises(mm.exceptions.IdempotencyConflictException):
        await aclient.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="gb", UsageQuantity=2, ClientToken=token)


async def test_resolve_customer(aclient: mm.AsyncClient) -> None:
    resp = await aclient.resolve_customer(RegistrationToken="reg-token-valid")
    assert resp["CustomerIdentifier"] == "cust-1"
    with pytest.raises(mm.exceptions.InvalidTokenException):
        await aclient.resolve_customer(RegistrationToken="no-such-token")
    with pytest.raises(mm.exceptions.ExpiredTokenException):
        await aclient.resolve_customer(RegistrationToken="reg-token-expired")


async def test_register_usage(aclient: mm.AsyncClient) -> None:
    resp = await aclient.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    assert resp["Signature"]
    assert isinstance(resp["PublicKeyRotationTimestamp"], datetime)


async def test_faults_retried(aclient: mm.AsyncClient, emu: Emulator) -> None:
    emu.push_fault({"kind": "throttle"})
    emu.push_fault({"kind": "unavailable"})
    resp = await aclient.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(2))
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2


async def test_retries_exhausted(aclient: mm.AsyncClient, emu: Emulator) -> None:
    for _ in range(3):
        emu.push_fault({"kind": "throttle"})
    with pytest.raises(mm.exceptions.ThrottlingException) as ei:
        await aclient.resolve_customer(RegistrationToken="reg-token-valid")
    assert ei.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert ei.value.retryable


async def test_partial_unprocessed(aclient: mm.AsyncClient, emu: Emulator) -> None:
    emu.push_fault({"kind": "partial", "count": 2})
    resp = await aclient.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(5))
    assert len(resp["UnprocessedRecords"]) == 2


async def test_validation_raises_on_await(aclient: mm.AsyncClient, emu: Emulator) -> None:
    with pytest.raises(mm.ParamValidationError):
        await aclient.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(26))
    assert emu.requests() == []


async def test_read_timeout(emu: Emulator) -> None:
    c = emu.async_client(config=mm.Config(read_timeout=0.2, retries={"max_attempts": 0}))
    emu.push_fault({"kind": "delay", "seconds": 1.0})
    with pytest.raises(mm.ReadTimeoutError):
        await c.resolve_customer(RegistrationToken="reg-token-valid")


async def test_concurrent_with_delay_does_not_block_loop(aclient: mm.AsyncClient, emu: Emulator) -> None:
    for _ in range(4):
        emu.push_fault({"kind": "delay", "seconds": 0.4})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.02)
            ticks += 1

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.gather(ticker(), *[aclient.resolve_customer(RegistrationToken="reg-token-valid") for _ in range(4)])
    assert ticks == 10
    assert loop.time() - t0 < 1.5


def test_an_async_call_after_the_exit_hook_is_refused() -> None:
    """An ``atexit`` hook registered before the package's runs after it: its async call was
    answered by a thread started anew and left attached to the interpreter, and an answer
    arriving while the interpreter finalized aborted the process. It is refused now, as a
    meter's calls are; a blocking call still works."""
    import subprocess
    import sys

    script = """
import asyncio
import marketplace_metering as mm
from marketplace_metering.testing import Emulator
emu = Emulator()
ac, c = emu.async_client(), emu.client()
asyncio.run(ac.resolve_customer(RegistrationToken="reg-token-valid"))
mm._native._shutdown()
try:
    asyncio.run(ac.resolve_customer(RegistrationToken="reg-token-valid"))
    print("answered")
except mm.exceptions.InvalidStateError as e:
    print("refused" if "exit hook has run" in str(e) else e)
print(c.resolve_customer(RegistrationToken="reg-token-valid")["CustomerIdentifier"])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "cust-1"], out.stdout + out.stderr
