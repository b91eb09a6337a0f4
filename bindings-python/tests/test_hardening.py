# SPDX-License-Identifier: Apache-2.0
"""What leaves the process: no redirects, bounded calls, accurate read errors."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import records

PRODUCT = "prod-1234"


@pytest.fixture
def elsewhere() -> Iterator[Emulator]:
    emu = Emulator()
    yield emu
    emu.shutdown()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(client: mm.Client, emu: Emulator, elsewhere: Emulator, status: int) -> None:
    emu.push_fault({"kind": "redirect", "status": status, "location": elsewhere.endpoint_url + "/"})
    with pytest.raises(mm.ClientError) as ei:
        client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(1))
    err = ei.value.response
    assert err["Error"]["Code"] == str(status)
    assert elsewhere.endpoint_url in err["Error"]["Message"]
    assert err["ResponseMetadata"]["HTTPStatusCode"] == status
    assert elsewhere.requests() == [] and elsewhere.ledger() == []
    assert emu.ledger() == []


def test_attempt_timeout_bounds_a_trickled_answer(emu: Emulator) -> None:
    c = emu.client(config=mm.Config(read_timeout=1, attempt_timeout=0.7, retries={"total_max_attempts": 2}))
    emu.push_fault({"kind": "trickle", "interval": 0.3})
    emu.push_fault({"kind": "trickle", "interval": 0.3})
    started = time.monotonic()
    with pytest.raises(mm.ReadTimeoutError) as ei:
        c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(1))
    assert time.monotonic() - started < 4
    assert ei.value.attempts == 2 and ei.value.retryable


def test_operation_timeout_bounds_the_call(emu: Emulator) -> None:
    c = emu.client(config=mm.Config(operation_timeout=0.9, retries={"total_max_attempts": 5}))
    for _ in range(5):
        emu.push_fault({"kind": "trickle", "interval": 0.3})
    started = time.monotonic()
    with pytest.raises(mm.ReadTimeoutError) as ei:
        c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(1))
    assert time.monotonic() - started < 3
    assert "operation timeout" in str(ei.value)


@pytest.mark.parametrize("kw", ["attempt_timeout", "operation_timeout"])
def test_timeouts_must_be_positive(emu: Emulator, kw: str) -> None:
    with pytest.raises(ValueError) as ei:
        emu.client(config=mm.Config(**{kw: 0}))
    assert kw in str(ei.value)


def test_oversized_answer_is_refused(emu: Emulator) -> None:
    c = emu.client(config=mm.Config(retries={"total_max_attempts": 1}))
    emu.push_fault({"kind": "oversize", "bytes": 6 << 20})
    with pytest.raises(mm.MeteringError) as ei:
        c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(1))
    assert "larger than" in str(ei.value)


def test_a_body_that_ends_early_says_so(emu: Emulator) -> None:
    c = emu.client(config=mm.Config(retries={"total_max_attempts": 1}))
    emu.push_fault({"kind": "short_body"})
    with pytest.raises(mm.MeteringError) as ei:
        c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=records(1))
    assert "ended early" in str(ei.value) and "could not reach" not in str(ei.value)


def _shown(o: object) -> list:
    import pickle
    out = [repr(o), str(o)]
    try:
        out.append(repr(vars(o)))
    except TypeError:
        pass
    try:
        out.append(repr(pickle.dumps(o)))
    except Exception as e:  # refusing to pickle is fine; the refusal must not show a secret
        out.append(repr(e))
    return out


def test_no_public_object_shows_a_secret(emu: Emulator, tmp_path) -> None:
    secret, token = "SECRET-do-not-print-0123456789", "TOKEN-do-not-print-9876543210"
    kw = dict(emu.client_kwargs(), aws_secret_access_key=secret, aws_session_token=token)
    c = mm.Client(**kw)
    ac = mm.AsyncClient(**kw)
    with pytest.raises(mm.ClientError) as ei:  # signed with the wrong secret: refused
        c.resolve_customer(RegistrationToken="reg-token-valid")
    meter = mm.UsageMeter(c, path=str(tmp_path / "m.db"), product_code=PRODUCT, flush_interval=None)
    try:
        for o in [c, ac, c.meta, c._native, ei.value, ei.value.response, mm.Config(), meter]:
            for s in _shown(o):
                assert secret not in s and token not in s, s
    finally:
        meter.close()


def test_a_list_past_the_models_maximum_is_refused_by_its_length(client: mm.Client, emu: Emulator) -> None:
    rec = dict(records(1)[0], Quantity=1)
    cases = [
        ([rec] * 1_000_000, "UsageRecords"),
        ([dict(rec, UsageAllocations=[{"AllocatedUsageQuantity": 0}] * 1_000_000)], "UsageRecords[0].UsageAllocations"),
        ([dict(rec, UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}] * 6}])],
         "UsageRecords[0].UsageAllocations[0].Tags"),
    ]
    for usage_records, field in cases:
        started = time.monotonic()
        with pytest.raises(mm.ParamValidationError) as ei:
            client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=usage_records)
        assert field in str(ei.value)
        assert time.monotonic() - started < 0.5
    assert emu.requests() == []


def test_only_the_models_rules_are_checked(client: mm.Client, emu: Emulator) -> None:
    # A boto3 user's working call: ProductCode and a CustomerAWSAccountId without LicenseArn.
    rec = {"Timestamp": records(1)[0]["Timestamp"], "CustomerAWSAccountId": emu.customer_aws_account_id,
           "Dimension": "users", "Quantity": 2}
    resp = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[rec])
    assert resp["Results"][0]["Status"] == "Success"
    assert len(emu.ledger()) == 1
    # Allocations that do not sum: the service's own exception, and nothing is sent.
    sent = len(emu.requests())
    bad = dict(records(1)[0], Quantity=5, UsageAllocations=[{"AllocatedUsageQuantity": 2}])
    with pytest.raises(client.exceptions.InvalidUsageAllocationsException) as ei:
        client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[bad])
    assert ei.value.response["Error"]["Code"] == "InvalidUsageAllocationsException"
    assert len(emu.requests()) == sent


def test_a_record_changed_while_it_is_converted_raises_runtime_error(client: mm.Client) -> None:
    # Found by a review: Python code the conversion runs (here a tzinfo's utcoffset) removed
    # a key from the record being read; pyo3's dict iterator panicked, and the caller got a
    # PanicException (a BaseException `except Exception` misses) instead of Python's own error.
    from datetime import datetime, timedelta, tzinfo

    rec: dict = {"CustomerIdentifier": "c", "Dimension": "users", "Quantity": 1}

    class Shrinking(tzinfo):
        def utcoffset(self, dt):  # type: ignore[no-untyped-def]
            rec.pop("Quantity", None)
            return timedelta(0)

        def dst(self, dt):  # type: ignore[no-untyped-def]
            return None

    rec["Timestamp"] = datetime(2024, 1, 1, tzinfo=Shrinking())
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=[rec])


def test_retry_counts_beyond_64_bits_saturate_as_smaller_ones_do() -> None:
    # Found by a review: 2**64 raised pyo3's bare OverflowError, where any count past the
    # core's range means as many attempts as it can count.
    c = mm.Client(region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                  aws_secret_access_key="secret",
                  config=mm.Config(retries={"max_attempts": 2**64}))
    assert c.meta.config.retries["total_max_attempts"] == 2**32 - 1
