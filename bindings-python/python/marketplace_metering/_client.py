# SPDX-License-Identifier: Apache-2.0
"""``Client`` and ``AsyncClient``: boto3's ``meteringmarketplace`` client, on the Rust core."""

from __future__ import annotations

import os
import sys
import time
from . import _native, exceptions
from .config import Config, retry_settings
from .exceptions import MeteringError

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs ~15 ms of import time; annotations only
    import logging
    from typing import Any, Callable, Dict, Optional, Tuple, Union

    from typing_extensions import Self
    from collections.abc import Awaitable

    from typing_extensions import Unpack

    from .type_defs import (
        BatchMeterUsageRequestTypeDef,
        BatchMeterUsageResultTypeDef,
        MeterUsageRequestTypeDef,
        MeterUsageResultTypeDef,
        RegisterUsageRequestTypeDef,
        RegisterUsageResultTypeDef,
        ResolveCustomerRequestTypeDef,
        ResolveCustomerResultTypeDef,
    )

__all__ = ["Client", "AsyncClient"]

LOGGER_NAME = "marketplace_metering"


def _debug_logger() -> Optional["logging.Logger"]:
    # Nobody can have enabled DEBUG if `logging` was never imported: keep calls cheap then.
    logging = sys.modules.get("logging")
    if logging is None:
        return None
    log = logging.getLogger(LOGGER_NAME)
    return log if log.isEnabledFor(logging.DEBUG) else None


def _log_attempts(log: "logging.Logger", attempts: Any) -> None:
    """One DEBUG record per attempt, with the core's fields as record attributes."""
    for op, n, status, request_id, latency_ms, outcome, reason, delay_ms in attempts or ():
        log.debug(
            "%s attempt %d: status=%s request_id=%s latency_ms=%.1f outcome=%s retry_reason=%s",
            op, n, status, request_id, latency_ms, outcome, reason,
            extra={
                "operation": op, "attempt": n, "status": status, "request_id": request_id,
                "latency_ms": latency_ms, "outcome": outcome, "retry_reason": reason,
                "retry_delay_ms": delay_ms,
            },
        )


def _log_ok(log: "logging.Logger", op: str, resp: Dict[str, Any], t0: float) -> None:
    meta = resp.get("ResponseMetadata", {})
    _log_attempts(log, meta.pop("_AttemptLog", None))
    log.debug(
        "%s succeeded: status=%s attempts=%d request_id=%s elapsed_ms=%.1f",
        op, meta.get("HTTPStatusCode"), meta.get("RetryAttempts", 0) + 1,
        meta.get("RequestId"), (time.perf_counter() - t0) * 1000.0,
    )


def _log_err(log: "logging.Logger", op: str, e: MeteringError, t0: float) -> None:
    _log_attempts(log, getattr(e, "_attempt_log", None))
    log.debug(
        "%s failed: code=%s status=%s attempts=%d request_id=%s retryable=%s elapsed_ms=%.1f",
        op, e.code, e.status_code, e.attempts, e.request_id, e.retryable,
        (time.perf_counter() - t0) * 1000.0,
    )


class _ClientMeta:
    """``client.meta``, as boto3's (``region_name``, ``endpoint_url``, ``config``)."""

    def __init__(self, native: _native.Client, config: Config) -> None:
        self.region_name: str = native.region_name
        self.endpoint_url: str = native.endpoint_url
        self.service_name = "meteringmarketplace"
        #: The client's ``Config`` with what the core resolved filled in, as boto3's.
        self.config: Config = config.merge(Config(
            region_name=native.region_name,
            retries={"total_max_attempts": native.max_attempts, "mode": native.retry_mode},
            use_fips_endpoint=native.use_fips_endpoint,
            use_dualstack_endpoint=native.use_dualstack_endpoint,
            user_agent_appid=native.app_id,
        ))
        # The proxies as the caller gave them: the core's are shown with the password
        # masked, and a config passed on to another client must still reach the proxy.


def _verify_setting(verify: object) -> "Tuple[Optional[str], Optional[bool]]":
    """``verify`` as the core's ``(ca_bundle, verify)``: None/True → the platform's roots, a
    path (``str`` or ``os.PathLike``, as boto3 takes) → that CA bundle, False → refused by the
    core (TLS verification cannot be turned off). Any other type is refused here: dropping it
    would trust the platform's roots or ``AWS_CA_BUNDLE`` instead of what the caller named."""
    if verify is None or isinstance(verify, bool):
        return None, verify
    path = os.fspath(verify) if isinstance(verify, os.PathLike) else verify
    if not isinstance(path, str):
        raise TypeError(f"verify must be a bool or a CA bundle path (str or os.PathLike), got {verify!r}")
    return path, None


class _BaseClient:
    def __init__(
        self,
        *,
        region_name: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        aws_access_key_id: Optional[str] = None,
        aws_secret_access_key: Optional[str] = None,
        aws_session_token: Optional[str] = None,
        profile_name: Optional[str] = None,
        config: Optional[Config] = None,
        verify: "Optional[Union[bool, str, os.PathLike[str]]]" = None,
        use_ssl: bool = True,
        api_version: Optional[str] = None,
        aws_account_id: Optional[str] = None,
        _initial_backoff: Optional[float] = None,
    ) -> None:
        from . import __version__

        # boto3's client() arguments that this service does not need: one API version,
        # HTTPS unless the endpoint URL says http, no account-based endpoints.
        if api_version is not None and api_version != "2016-01-14":
            raise ValueError(
                f"api_version {api_version!r}: the Metering Service has one, '2016-01-14'"
            )
        if not use_ssl and endpoint_url is None:
            raise ValueError(
                "use_ssl=False without endpoint_url: the service's endpoints are HTTPS; give "
                "endpoint_url='http://...' for a plain-HTTP endpoint (an emulator)"
            )
        del aws_account_id

        cfg = config if config is not None else Config()
        attempts, mode = retry_settings(cfg.retries)
        proxies = cfg.proxies or {}
        ca_bundle, verify_flag = _verify_setting(verify)
        self._native = _native.Client(
            region_name=region_name or cfg.region_name,
            endpoint_url=endpoint_url,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            profile_name=profile_name,
            max_attempts=attempts,
            retry_mode=mode,
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            attempt_timeout=cfg.attempt_timeout,
            operation_timeout=cfg.operation_timeout,
            face_version=__version__,
            initial_backoff=_initial_backoff,
            use_fips_endpoint=cfg.use_fips_endpoint,
            use_dualstack_endpoint=cfg.use_dualstack_endpoint,
            ignore_configured_endpoint_urls=cfg.ignore_configured_endpoint_urls,
            ca_bundle=ca_bundle,
            verify=verify_flag,
            https_proxy=proxies.get("https"),
            http_proxy=proxies.get("http"),
            app_id=cfg.user_agent_appid,
            user_agent_extra=cfg.user_agent_extra,
        )
        #: The exception classes, as ``client.exceptions.ThrottlingException``.
        self.exceptions = exceptions
        #: ``region_name`` and ``endpoint_url``, as boto3's ``client.meta``.
        self.meta = _ClientMeta(self._native, cfg)

    def close(self) -> None:
        """Closes the idle connections of the client's pool, as boto3's ``close()``; calls in
        flight finish on theirs, and a later call opens new ones."""
        self._native.close()

    def can_paginate(self, operation_name: str) -> bool:
        """``False``: no Metering Service operation has a paginator (as boto3's client)."""
        return False

    def get_paginator(self, operation_name: str) -> Any:
        """Raises ``OperationNotPageableError``, as boto3's client does for this service."""
        raise OperationNotPageableError(operation_name=operation_name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} region={self.meta.region_name!r} endpoint={self.meta.endpoint_url!r}>"

    def __enter__(self) -> "Self":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "Self":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def _started(start: "Callable[[], Awaitable[Any]]") -> Any:
    """The native meter's ``flush_async()`` and ``close_async()`` as coroutines, which
    ``asyncio.create_task`` and ``asyncio.run`` take: the work starts when it is awaited, in
    that event loop, and not at all if it never is."""
    return await start()


async def _entered(obj: Any) -> Any:
    """``async with``'s ``__aenter__`` of the native meter."""
    return obj


async def _exited(start: "Callable[[], Awaitable[Any]]") -> None:
    """``async with``'s ``__aexit__`` of the native meter: its close, answering ``None`` (a
    true answer would swallow the block's exception). A task cancelled while it leaves the
    block (a server shutting down) waits for the final flush to end, then is cancelled."""
    import asyncio

    closing = asyncio.ensure_future(start())
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        await closing
        raise


class OperationNotPageableError(MeteringError):
    """botocore's ``OperationNotPageableError``: the operation has no paginator."""

    def __init__(self, operation_name: str) -> None:
        super().__init__(
            f"Operation cannot be paginated: {operation_name}",
            code="OperationNotPageable",
            operation_name=operation_name,
        )


class Client(_BaseClient):
    """A blocking client for the AWS Marketplace Metering Service, shaped as boto3's.

    ``boto3.client("meteringmarketplace", ...)`` becomes ``marketplace_metering.Client(...)``:
    same keyword arguments, same response dicts, same exception classes. Calls release the
    GIL; one client may be shared by many threads, and keeps working after ``os.fork()``.

    Parameters
    ----------
    region_name : str, optional
        The AWS Region. Without it ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's
        region or ``config.region_name`` are used.
    endpoint_url : str, optional
        A custom endpoint (the emulator, a VPC endpoint).
    aws_access_key_id, aws_secret_access_key, aws_session_token : str, optional
        Static credentials. Without them the standard chain is used (environment, shared
        files and profiles, web identity, ECS, EC2 instance metadata, assume-role).
    profile_name : str, optional
        The shared config/credentials profile.
    config : Config, optional
        Retries, timeouts, proxies, FIPS / dual-stack and the User-Agent, with botocore's
        meanings.
    verify : bool, str or os.PathLike, optional
        A path: the PEM CA bundle trusted instead of the platform's roots (else
        ``AWS_CA_BUNDLE``, profile ``ca_bundle``). ``False`` is refused: TLS verification
        cannot be turned off.

    Raises
    ------
    InvalidConfigError
        When no region can be found or a setting is invalid.
    TypeError
        When ``verify`` is neither a bool nor a path.
    """

    def batch_meter_usage(
        self, **kwargs: "Unpack[BatchMeterUsageRequestTypeDef]"
    ) -> "BatchMeterUsageResultTypeDef":
        """Meters up to 25 usage records for SaaS customers (``BatchMeterUsage``).

        Parameters
        ----------
        **kwargs
            ``UsageRecords`` (required) and ``ProductCode``, as boto3.

        Returns
        -------
        dict
            ``Results``, ``UnprocessedRecords`` and ``ResponseMetadata``.

        Raises
        ------
        ParamValidationError
            The input violates the model; nothing was sent.
        ClientError
            The service answered an error (a subclass named after its code).
        """
        return self._call("BatchMeterUsage", self._native.batch_meter_usage, kwargs)  # type: ignore[no-any-return]

    def meter_usage(self, **kwargs: "Unpack[MeterUsageRequestTypeDef]") -> "MeterUsageResultTypeDef":
        """Meters one dimension's usage for AMI and container products (``MeterUsage``).

        Parameters
        ----------
        **kwargs
            ``ProductCode``, ``Timestamp``, ``UsageDimension`` (required), ``UsageQuantity``,
            ``DryRun``, ``UsageAllocations``, ``ClientToken``.

        Returns
        -------
        dict
            ``MeteringRecordId`` and ``ResponseMetadata``.
        """
        return self._call("MeterUsage", self._native.meter_usage, kwargs)  # type: ignore[no-any-return]

    def resolve_customer(
        self, **kwargs: "Unpack[ResolveCustomerRequestTypeDef]"
    ) -> "ResolveCustomerResultTypeDef":
        """Resolves a SaaS registration token to its customer (``ResolveCustomer``).

        Parameters
        ----------
        **kwargs
            ``RegistrationToken`` (required).

        Returns
        -------
        dict
            ``CustomerIdentifier``, ``ProductCode``, ``CustomerAWSAccountId``,
            ``LicenseArn`` and ``ResponseMetadata``.
        """
        return self._call("ResolveCustomer", self._native.resolve_customer, kwargs)  # type: ignore[no-any-return]

    def register_usage(
        self, **kwargs: "Unpack[RegisterUsageRequestTypeDef]"
    ) -> "RegisterUsageResultTypeDef":
        """Checks entitlement of a paid container product (``RegisterUsage``).

        Parameters
        ----------
        **kwargs
            ``ProductCode``, ``PublicKeyVersion`` (required) and ``Nonce``.

        Returns
        -------
        dict
            ``PublicKeyRotationTimestamp``, ``Signature`` and ``ResponseMetadata``.
        """
        return self._call("RegisterUsage", self._native.register_usage, kwargs)  # type: ignore[no-any-return]

    @staticmethod
    def _call(op: str, fn: "Callable[..., Any]", kwargs: Any) -> Any:
        log = _debug_logger()
        if log is None:
            return fn(kwargs)
        t0 = time.perf_counter()
        try:
            resp = fn(kwargs, True)
        except MeteringError as e:
            _log_err(log, op, e, t0)
            raise
        _log_ok(log, op, resp, t0)
        return resp


class AsyncClient(_BaseClient):
    """The asyncio client: :class:`Client`'s methods as coroutines.

    The requests run on the library's own runtime threads; the event loop is never
    blocked. Takes the same parameters as :class:`Client`.
    """

    async def batch_meter_usage(
        self, **kwargs: "Unpack[BatchMeterUsageRequestTypeDef]"
    ) -> "BatchMeterUsageResultTypeDef":
        """``BatchMeterUsage``; see :meth:`Client.batch_meter_usage`."""
        return await self._call("BatchMeterUsage", self._native.batch_meter_usage_async, kwargs)  # type: ignore[no-any-return]

    async def meter_usage(self, **kwargs: "Unpack[MeterUsageRequestTypeDef]") -> "MeterUsageResultTypeDef":
        """``MeterUsage``; see :meth:`Client.meter_usage`."""
        return await self._call("MeterUsage", self._native.meter_usage_async, kwargs)  # type: ignore[no-any-return]

    async def resolve_customer(
        self, **kwargs: "Unpack[ResolveCustomerRequestTypeDef]"
    ) -> "ResolveCustomerResultTypeDef":
        """``ResolveCustomer``; see :meth:`Client.resolve_customer`."""
        return await self._call("ResolveCustomer", self._native.resolve_customer_async, kwargs)  # type: ignore[no-any-return]

    async def register_usage(
        self, **kwargs: "Unpack[RegisterUsageRequestTypeDef]"
    ) -> "RegisterUsageResultTypeDef":
        """``RegisterUsage``; see :meth:`Client.register_usage`."""
        return await self._call("RegisterUsage", self._native.register_usage_async, kwargs)  # type: ignore[no-any-return]

    @staticmethod
    async def _call(op: str, fn: "Callable[..., Awaitable[Any]]", kwargs: Any) -> Any:
        log = _debug_logger()
        if log is None:
            return await fn(kwargs)
        t0 = time.perf_counter()
        try:
            resp = await fn(kwargs, True)
        except MeteringError as e:
            _log_err(log, op, e, t0)
            raise
        _log_ok(log, op, resp, t0)
        return resp
