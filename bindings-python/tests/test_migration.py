# SPDX-License-Identifier: Apache-2.0
"""The same scenario through boto3 and through this package, against the emulator:
the same response shapes and the same exception class names and codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

import marketplace_metering as mm
from marketplace_metering.testing import Emulator

from conftest import now

boto3 = pytest.importorskip("boto3")
import botocore.exceptions  # noqa: E402

PRODUCT = "prod-1234"


def shape(x: Any) -> Any:
    """Keys and types, values aside."""
    if isinstance(x, dict):
        return {k: shape(v) for k, v in x.items()}
    if isinstance(x, list):
        return [shape(x[0])] if x else []
    if isinstance(x, datetime):
        return ("datetime", x.tzinfo is not None)
    return type(x).__name__


def strip_headers(resp: dict) -> dict:
    resp = dict(resp)
    meta = dict(resp["ResponseMetadata"])
    meta["HTTPHeaders"] = {}  # header sets differ between HTTP stacks; both are dict[str, str]
    resp["ResponseMetadata"] = meta
    return resp


def scenario(client: Any, base: int) -> dict:
    ts = now()
    out = {}
    out["batch"] = client.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": ts, "CustomerIdentifier": f"cust-{base}", "Dimension": "users", "Quantity": 2,
         "UsageAllocations": [{"AllocatedUsageQuantity": 2, "Tags": [{"Key": "k", "Value": "v"}]}]},
        {"Timestamp": ts, "CustomerIdentifier": "cust-unsubscribed", "Dimension": "users", "Quantity": 1},
    ])
    out["meter"] = client.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="gb", UsageQuantity=base)
    out["resolve"] = client.resolve_customer(RegistrationToken="reg-token-valid")
    out["register"] = client.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1, Nonce="n")
    return out


def errors(client: Any) -> list:
    got = []
    for call in (
        lambda: client.resolve_customer(RegistrationToken="no-such-token"),
        lambda: client.resolve_customer(RegistrationToken="reg-token-expired"),
        lambda: client.meter_usage(ProductCode="unknown-product", Timestamp=now(), UsageDimension="users"),
        lambda: client.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="gb", DryRun=True),
    ):
        try:
            call()
        except Exception as e:  # noqa: BLE001
            got.append((type(e).__name__, e.response["Error"]["Code"], e.operation_name,
                        isinstance(e, (botocore.exceptions.ClientError, mm.ClientError)),
                        shape(strip_headers(e.response))))
        else:
            got.append(None)
    try:
        client.resolve_customer()
    except Exception as e:  # noqa: BLE001
        got.append((type(e).__name__,))
    return got


def test_same_shapes_and_errors(emu: Emulator) -> None:
    b = boto3.client("meteringmarketplace", **emu.client_kwargs())
    ours = emu.client()
    theirs = scenario(b, 1)
    emu.reset()
    mine = scenario(ours, 1)
    for op in theirs:
        assert shape(strip_headers(mine[op])) == shape(strip_headers(theirs[op])), op
        assert set(mine[op]["ResponseMetadata"]) == set(theirs[op]["ResponseMetadata"])
    assert [r["Status"] for r in mine["batch"]["Results"]] == [r["Status"] for r in theirs["batch"]["Results"]]
    for op in ("resolve",):
        assert {k: v for k, v in mine[op].items() if k != "ResponseMetadata"} == \
               {k: v for k, v in theirs[op].items() if k != "ResponseMetadata"}
    assert errors(ours) == errors(b)


def test_exception_classes_reachable_the_same_way(emu: Emulator) -> None:
    b = boto3.client("meteringmarketplace", **emu.client_kwargs())
    ours = emu.client()
    for name in ("InvalidTokenException", "ThrottlingException", "DuplicateRequestException",
                 "InternalServiceErrorException", "ExpiredTokenException"):
        assert getattr(ours.exceptions, name).__name__ == getattr(b.exceptions, name).__name__
    with pytest.raises(ours.exceptions.InvalidTokenException):
        ours.resolve_customer(RegistrationToken="bad")
    with pytest.raises(b.exceptions.InvalidTokenException):
        b.resolve_customer(RegistrationToken="bad")
