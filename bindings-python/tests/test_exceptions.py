# SPDX-License-Identifier: Apache-2.0
"""The exception hierarchy comes from the core's ErrorCode table; every class pickles."""

from __future__ import annotations

import pickle

import pytest

import marketplace_metering as mm
from marketplace_metering import _native, exceptions
from marketplace_metering.testing import Emulator

TABLE = _native.error_codes()


def test_table_is_complete_and_ordered() -> None:
    codes = [row[0] for row in TABLE]
    assert len(codes) == len(set(codes)) >= 40
    assert list(exceptions.CODES) == codes
    kinds = {row[0]: row[3] for row in TABLE}
    assert kinds["InvalidInput"] == "local"
    assert kinds["ThrottlingException"] == "modeled"
    assert kinds["DryRunOperation"] == "common"


@pytest.mark.parametrize("code,name,bases,kind,server_fault,number", TABLE)
def test_each_code_has_its_class(code: str, name: str, bases: list, kind: str, server_fault: bool, number: int) -> None:
    cls = getattr(exceptions, name)
    assert exceptions.CODES[code] is cls
    assert issubclass(cls, mm.MeteringError)
    assert cls.__module__ == "marketplace_metering.exceptions"
    if kind == "local":
        assert not issubclass(cls, mm.ClientError) or code == "Unhandled"
    else:
        assert issubclass(cls, mm.ClientError)
        assert name == code
        assert cls.error_code == code
        assert cls.server_fault == server_fault


def test_named_local_classes() -> None:
    assert issubclass(mm.ParamValidationError, ValueError)
    assert issubclass(mm.ParamValidationError, mm.MeteringError)
    assert mm.exceptions.CODES["Credentials"] is mm.NoCredentialsError
    assert mm.exceptions.CODES["Dispatch"] is mm.EndpointConnectionError
    assert not issubclass(mm.ConnectTimeoutError, mm.EndpointConnectionError)
    assert mm.exceptions.CODES["ReadTimeout"] is mm.ReadTimeoutError
    assert mm.exceptions.CODES["Unhandled"] is mm.ClientError
    assert mm.exceptions.ThrottlingException.server_fault is False
    assert mm.exceptions.InternalServiceErrorException.server_fault is True


@pytest.mark.parametrize("name", ["EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"])
def test_connection_classes_stand_where_botocore_puts_them(name: str) -> None:
    # An `except` written against botocore's classes catches the same of ours: the chain of
    # botocore.exceptions ancestors, BotoCoreError standing for MeteringError.
    botocore_exceptions = pytest.importorskip("botocore.exceptions")
    theirs = [c.__name__ for c in getattr(botocore_exceptions, name).__mro__
              if c.__module__ == "botocore.exceptions"]
    ours = [c.__name__ for c in getattr(exceptions, name).__mro__
            if c.__module__ == "marketplace_metering.exceptions"]
    assert ours == [n if n != "BotoCoreError" else "MeteringError" for n in theirs]


def test_client_exceptions_namespace(emu: Emulator) -> None:
    c = emu.client()
    assert c.exceptions.ThrottlingException is mm.exceptions.ThrottlingException
    assert c.exceptions.ClientError is mm.ClientError


def test_client_error_constructor_like_botocore() -> None:
    meta = {"RequestId": "r-1", "HTTPStatusCode": 400, "RetryAttempts": 2}
    e = mm.exceptions.ThrottlingException(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"},
         "ResponseMetadata": {**meta, "MaxAttemptsReached": True}},
        "MeterUsage")
    assert str(e) == ("An error occurred (ThrottlingException) when calling the MeterUsage "
                      "operation (reached max retries: 2): slow down")
    # botocore's text: the retries are named only when they ran out.
    quiet = mm.exceptions.ThrottlingException(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}, "ResponseMetadata": meta},
        "MeterUsage")
    assert str(quiet) == "An error occurred (ThrottlingException) when calling the MeterUsage operation: slow down"
    assert e.code == "ThrottlingException" and e.message == "slow down"
    assert e.request_id == "r-1" and e.status_code == 400 and e.operation_name == "MeterUsage"


def roundtrip(e: BaseException) -> BaseException:
    return pickle.loads(pickle.dumps(e))


def test_pickle_service_error(emu: Emulator) -> None:
    c = emu.client()
    with pytest.raises(mm.exceptions.InvalidTokenException) as ei:
        c.resolve_customer(RegistrationToken="bad")
    e2 = roundtrip(ei.value)
    assert type(e2) is mm.exceptions.InvalidTokenException
    assert e2.response == ei.value.response
    assert e2.operation_name == "ResolveCustomer"
    assert str(e2) == str(ei.value)
    assert (e2.code, e2.message, e2.request_id, e2.status_code, e2.retryable) == (
        ei.value.code, ei.value.message, ei.value.request_id, ei.value.status_code, ei.value.retryable)


def test_pickle_local_error(emu: Emulator) -> None:
    c = emu.client()
    with pytest.raises(mm.ParamValidationError) as ei:
        c.meter_usage(ProductCode="p", Timestamp=1, UsageDimension="d", UsageQuantity=-1)
    e2 = roundtrip(ei.value)
    assert type(e2) is mm.ParamValidationError
    assert e2.code == "InvalidInput" and str(e2) == str(ei.value)
    assert e2.field == "UsageQuantity"


@pytest.mark.parametrize("name", [row[1] for row in TABLE])
def test_pickle_every_class(name: str) -> None:
    cls = getattr(exceptions, name)
    if issubclass(cls, mm.ClientError):
        e = cls({"Error": {"Code": name, "Message": "m"}, "ResponseMetadata": {}}, "Op")
    else:
        e = cls("m", code=name, request_id="r", status_code=500, retryable=True)
    e2 = roundtrip(e)
    assert type(e2) is cls and str(e2) == str(e) and e2.__dict__ == e.__dict__


def test_from_code_as_botocores(emu: Emulator) -> None:
    """``client.exceptions.from_code``, as botocore's: the class of a service code, else
    ``ClientError`` (it was an AttributeError)."""
    with emu.client() as c:
        assert c.exceptions.from_code("ThrottlingException") is c.exceptions.ThrottlingException
        assert c.exceptions.from_code("NoSuchCode") is c.exceptions.ClientError
        assert c.exceptions.from_code("InvalidInput") is c.exceptions.ClientError  # local, not a service code
