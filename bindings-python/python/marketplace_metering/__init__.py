# SPDX-License-Identifier: Apache-2.0
"""marketplace_metering: a fast client for the AWS Marketplace Metering Service.

A drop-in for boto3's ``meteringmarketplace`` client on a Rust core::

    import marketplace_metering as mm
    client = mm.Client(region_name="us-east-1")
    resp = client.batch_meter_usage(ProductCode="prod-1234", UsageRecords=[...])

``AsyncClient`` has the same methods as coroutines. :class:`UsageMeter` records every
billable event and bills every customer-hour exactly once (a durable SQLite store). Errors are in
:mod:`marketplace_metering.exceptions`; an in-process emulator for tests is in
:mod:`marketplace_metering.testing`.
"""

from __future__ import annotations

import atexit

from . import _native, exceptions
from ._native import UsageMeter, __version__
from ._client import AsyncClient, Client, OperationNotPageableError
from .config import Config
from .exceptions import (  # built from the core's error-code table
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    MeteringError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "UsageMeter",
    "Config",
    "client",
    "exceptions",
    "MeteringError",
    "ClientError",
    "ParamValidationError",
    "NoCredentialsError",
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "OperationNotPageableError",
]


def client(service_name: str = "meteringmarketplace", **kwargs: object) -> Client:
    """``boto3.client("meteringmarketplace", ...)``'s signature: returns a :class:`Client`.

    Parameters
    ----------
    service_name : str
        Must be ``"meteringmarketplace"``.
    **kwargs
        As :class:`Client`.
    """
    if service_name != "meteringmarketplace":
        raise ValueError(f"only 'meteringmarketplace' is supported, got {service_name!r}")
    return Client(**kwargs)  # type: ignore[arg-type]


# Join the core's runtime threads before the interpreter tears down: a runtime thread still
# running while the interpreter finalizes can crash the process at exit.
atexit.register(_native._shutdown)
