# SPDX-License-Identifier: Apache-2.0
"""Bad input raises ParamValidationError naming the field, and nothing is sent."""

from __future__ import annotations

from typing import Any, Callable, Dict

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import now, records

PRODUCT = "prod-1234"


def rec(**over: Any) -> Dict[str, Any]:
    r: Dict[str, Any] = {"Timestamp": now(), "CustomerIdentifier": "cust-1", "Dimension": "users", "Quantity": 1}
    r.update(over)
    return {k: v for k, v in r.items() if v is not ...}


def many(n: int, **over: Any) -> list:
    out = records(n)
    out[-1].update(over)
    return out


BATCH_CASES = {
    # name: (UsageRecords, expected field in the message)
    "26 records": (lambda: records(26), "UsageRecords"),
    "negative quantity": (lambda: many(4, Quantity=-1), "UsageRecords[3].Quantity"),
    "quantity above i32": (lambda: [rec(Quantity=2**31)], "UsageRecords[0].Quantity"),
    "quantity above i64": (lambda: [rec(Quantity=2**70)], "UsageRecords[0].Quantity"),
    "quantity str": (lambda: [rec(Quantity="3")], "UsageRecords[0].Quantity"),
    "quantity float": (lambda: [rec(Quantity=3.0)], "UsageRecords[0].Quantity"),
    "quantity bool": (lambda: [rec(Quantity=True)], "UsageRecords[0].Quantity"),
    "missing Timestamp": (lambda: [rec(Timestamp=...)], "UsageRecords[0].Timestamp"),
    "missing Dimension": (lambda: [rec(Dimension=...)], "UsageRecords[0].Dimension"),
    "unknown key": (lambda: [rec(Quantityy=3)], "UsageRecords[0].Quantityy"),
    "unparseable Timestamp": (lambda: [rec(Timestamp="yesterday-ish")], "UsageRecords[0].Timestamp"),
    "Timestamp wrong type": (lambda: [rec(Timestamp=[1])], "UsageRecords[0].Timestamp"),
    "Timestamp nan": (lambda: [rec(Timestamp=float("nan"))], "UsageRecords[0].Timestamp"),
    "record not a dict": (lambda: [rec(), "x"], "UsageRecords[1]"),
    "records not a list": (lambda: "abc", "UsageRecords"),
    "dimension wrong type": (lambda: [rec(Dimension=5)], "UsageRecords[0].Dimension"),
    "empty dimension (core)": (lambda: [rec(Dimension="")], "UsageRecords[0].Dimension"),
    "customer too long (core)": (lambda: [rec(CustomerIdentifier="c" * 300)], "UsageRecords[0].CustomerIdentifier"),
    "allocation negative": (lambda: [rec(UsageAllocations=[{"AllocatedUsageQuantity": -2}])],
                            "UsageRecords[0].UsageAllocations[0].AllocatedUsageQuantity"),
    "allocation missing quantity": (lambda: [rec(UsageAllocations=[{"Tags": []}])],
                                    "UsageRecords[0].UsageAllocations[0].AllocatedUsageQuantity"),
    "tag unknown key": (lambda: [rec(UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Val": "v"}]}])],
                        "UsageRecords[0].UsageAllocations[0].Tags[0].Val"),
    "tag missing value": (lambda: [rec(UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k"}]}])],
                          "UsageRecords[0].UsageAllocations[0].Tags[0].Value"),
    # A str Python holds but UTF-8 cannot carry (a lone surrogate, as from a bad decode with
    # errors="surrogateescape"): named like any other bad value, never a bare UnicodeEncodeError.
    "surrogate customer": (lambda: [rec(CustomerIdentifier="cust-\ud800")], "UsageRecords[0].CustomerIdentifier"),
    "surrogate dimension": (lambda: many(3, Dimension="\udcff"), "UsageRecords[2].Dimension"),
    "surrogate tag value": (lambda: [rec(UsageAllocations=[{"AllocatedUsageQuantity": 1,
                                                           "Tags": [{"Key": "k", "Value": "v\udfff"}]}])],
                            "UsageRecords[0].UsageAllocations[0].Tags[0].Value"),
    "surrogate key": (lambda: [rec(**{"Dimension\ud800": "x"})], "UsageRecords[0].Dimension\\ud800"),
    "surrogate Timestamp": (lambda: [rec(Timestamp="2026-01-01T00:00:00Z\udc00")], "UsageRecords[0].Timestamp"),
    "six tags (core)": (lambda: [rec(UsageAllocations=[{"AllocatedUsageQuantity": 1,
                                                       "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(6)]}])],
                        "UsageRecords[0].UsageAllocations[0].Tags"),
}


@pytest.mark.parametrize("name", list(BATCH_CASES))
def test_batch_bad_input(client: mm.Client, emu: Emulator, name: str) -> None:
    make, field = BATCH_CASES[name]
    with pytest.raises(mm.ParamValidationError) as ei:
        client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=make())
    e = ei.value
    assert isinstance(e, ValueError) and e.code == "InvalidInput"
    assert str(e).startswith("Parameter validation failed:\n")
    assert field in str(e), str(e)
    assert e.field is not None and e.field.startswith(field.split(".")[0])
    assert e.attempts == 0 and e.request_id is None
    assert emu.requests() == [] and emu.ledger() == []


TOP_CASES: Dict[str, tuple] = {
    "batch missing UsageRecords": ("batch_meter_usage", {"ProductCode": PRODUCT}, "UsageRecords"),
    "batch unknown parameter": ("batch_meter_usage", {"UsageRecords": [], "Foo": 1}, "Foo"),
    "batch product code type": ("batch_meter_usage", {"ProductCode": 3, "UsageRecords": []}, "ProductCode"),
    "meter missing dimension": ("meter_usage", {"ProductCode": PRODUCT, "Timestamp": 1}, "UsageDimension"),
    "meter DryRun type": ("meter_usage", {"ProductCode": PRODUCT, "Timestamp": 1, "UsageDimension": "users",
                                          "DryRun": "yes"}, "DryRun"),
    "meter quantity too large": ("meter_usage", {"ProductCode": PRODUCT, "Timestamp": 1, "UsageDimension": "users",
                                                 "UsageQuantity": 2**40}, "UsageQuantity"),
    "meter bad timestamp": ("meter_usage", {"ProductCode": PRODUCT, "Timestamp": "2024-13-45T99:00:00Z",
                                            "UsageDimension": "users"}, "Timestamp"),
    "resolve missing token": ("resolve_customer", {}, "RegistrationToken"),
    "resolve empty token (core)": ("resolve_customer", {"RegistrationToken": ""}, "RegistrationToken"),
    "register version 0": ("register_usage", {"ProductCode": PRODUCT, "PublicKeyVersion": 0}, "PublicKeyVersion"),
    "register version type": ("register_usage", {"ProductCode": PRODUCT, "PublicKeyVersion": "1"}, "PublicKeyVersion"),
    "register unknown": ("register_usage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "nonce": "x"}, "nonce"),
    "batch surrogate product code": ("batch_meter_usage", {"ProductCode": "p\ud800", "UsageRecords": []},
                                     "ProductCode"),
    "meter surrogate dimension": ("meter_usage", {"ProductCode": PRODUCT, "Timestamp": 1,
                                                  "UsageDimension": "users\udc80"}, "UsageDimension"),
    "resolve surrogate token": ("resolve_customer", {"RegistrationToken": "\ud83d"}, "RegistrationToken"),
    "resolve surrogate parameter name": ("resolve_customer", {"RegistrationToken": "t", "Token\ud800": "t"},
                                         "Token\\ud800"),
    "register product pattern (core)": ("register_usage", {"ProductCode": "bad code!", "PublicKeyVersion": 1},
                                        "ProductCode"),
}


@pytest.mark.parametrize("name", list(TOP_CASES))
def test_top_level_bad_input(client: mm.Client, emu: Emulator, name: str) -> None:
    method, kwargs, field = TOP_CASES[name]
    with pytest.raises(mm.ParamValidationError) as ei:
        getattr(client, method)(**kwargs)
    assert field in str(ei.value)
    assert ei.value.field == field
    assert emu.requests() == [] and emu.ledger() == []


def test_messages_read_like_botocore(client: mm.Client) -> None:
    with pytest.raises(mm.ParamValidationError) as ei:
        client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=many(4, Quantity=-1))
    assert str(ei.value).startswith(
        "Parameter validation failed:\nInvalid value for parameter UsageRecords[3].Quantity: ")
    with pytest.raises(mm.ParamValidationError) as ei:
        client.resolve_customer()
    assert str(ei.value) == "Parameter validation failed:\nMissing required parameter in input: RegistrationToken"
    # botocore keeps the report in kwargs: handlers that show it read it there.
    assert ei.value.kwargs == {"report": "Missing required parameter in input: RegistrationToken"}
    with pytest.raises(mm.ParamValidationError) as ei:
        client.resolve_customer(RegistrationToken="t", Extra=1)
    assert str(ei.value).startswith("Parameter validation failed:\nUnknown parameter in input: Extra, must be one of:")
    with pytest.raises(mm.ParamValidationError) as ei:
        client.batch_meter_usage(UsageRecords=[rec(Quantity="3")])
    assert "Invalid type for parameter UsageRecords[0].Quantity, expected int, got str" in str(ei.value)


def test_async_validation_nothing_sent(emu: Emulator) -> None:
    import asyncio

    async def go() -> None:
        with pytest.raises(mm.ParamValidationError):
            await emu.async_client().meter_usage(ProductCode=PRODUCT, Timestamp=object(), UsageDimension="users")

    asyncio.run(go())
    assert emu.requests() == []


def test_timestamps_as_botocore_reads_them(client: mm.Client, emu: Emulator) -> None:
    """Epoch seconds as text, ``Decimal`` and numpy-like integers are timestamps, as botocore
    reads them (``float(value)``); they were refused. ``bool`` stays refused."""
    import decimal

    class Int64:  # numpy.int64: not an int, but has __index__
        def __init__(self, n: int) -> None:
            self.n = n

        def __index__(self) -> int:
            return self.n

    hour = int(now().timestamp()) // 3600 * 3600
    for given in (str(hour), f" {hour}.0 ", decimal.Decimal(hour), Int64(hour)):
        out = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[rec(Timestamp=given)])
        assert out["Results"][0]["UsageRecord"]["Timestamp"].timestamp() == hour, given
    for bad in (True, "1e400", decimal.Decimal("NaN")):
        with pytest.raises(mm.ParamValidationError, match="Timestamp"):
            client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[rec(Timestamp=bad)])


def test_a_timestamp_whose_index_is_not_an_int_is_refused(client: mm.Client) -> None:
    """An ``__index__`` returning its own object recursed until the stack ran out, which
    killed the interpreter; one returning a float was taken. Both are refused, naming the
    field, as ``operator.index`` refuses them."""

    class Loop:
        def __index__(self) -> "Loop":
            return self

    class Floaty:
        def __index__(self) -> float:
            return 1700000000.0

    for bad in (Loop(), Floaty()):
        with pytest.raises(mm.ParamValidationError, match="Timestamp"):
            client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[rec(Timestamp=bad)])
