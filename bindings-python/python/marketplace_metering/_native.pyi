# SPDX-License-Identifier: Apache-2.0
"""Type stubs of the native module (checked by ``python -m mypy.stubtest``)."""

import os
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Awaitable, Callable, Coroutine, Dict, Iterator, List, Optional, Sequence, Tuple, Type, Union

from typing_extensions import Literal, Self, final

from .type_defs import (
    DeadLetterTypeDef,
    FlushSummaryTypeDef,
    MeterEventTypeDef,
    MeterStatusTypeDef,
    TimestampTypeDef,
    UsageAllocationTypeDef,
)

__all__ = ['__version__', '__core_version__', 'Client', 'Emulator', 'UsageMeter', 'ManualClock', 'error_codes', 'emulator_defaults', '_shutdown', '_write_buffers']

__version__: str
__core_version__: str

@final
class Client:
    """The native client behind ``Client`` and ``AsyncClient``."""

    def __new__(
        cls,
        *,
        region_name: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        aws_access_key_id: Optional[str] = None,
        aws_secret_access_key: Optional[str] = None,
        aws_session_token: Optional[str] = None,
        profile_name: Optional[str] = None,
        max_attempts: Optional[int] = None,
        retry_mode: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        operation_timeout: Optional[float] = None,
        face_version: Optional[str] = None,
        initial_backoff: Optional[float] = None,
        use_fips_endpoint: Optional[bool] = None,
        use_dualstack_endpoint: Optional[bool] = None,
        ignore_configured_endpoint_urls: Optional[bool] = None,
        ca_bundle: Optional[str] = None,
        verify: Optional[bool] = None,
        https_proxy: Optional[str] = None,
        http_proxy: Optional[str] = None,
        app_id: Optional[str] = None,
        user_agent_extra: Optional[str] = None,
    ) -> "Client": ...
    @property
    def region_name(self) -> str: ...
    @property
    def endpoint_url(self) -> str: ...
    @property
    def user_agent(self) -> str: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def retry_mode(self) -> str: ...
    @property
    def use_fips_endpoint(self) -> bool: ...
    @property
    def use_dualstack_endpoint(self) -> bool: ...
    @property
    def app_id(self) -> Optional[str]: ...
    @property
    def ca_bundle(self) -> Optional[str]: ...
    @property
    def proxies(self) -> Dict[str, str]: ...
    def origin(self, setting: str) -> str: ...
    def close(self) -> int: ...
    def batch_meter_usage(self, params: Dict[str, Any], with_log: bool = ...) -> Dict[str, Any]: ...
    def meter_usage(self, params: Dict[str, Any], with_log: bool = ...) -> Dict[str, Any]: ...
    def resolve_customer(self, params: Dict[str, Any], with_log: bool = ...) -> Dict[str, Any]: ...
    def register_usage(self, params: Dict[str, Any], with_log: bool = ...) -> Dict[str, Any]: ...
    def batch_meter_usage_async(self, params: Dict[str, Any], with_log: bool = ...) -> Awaitable[Dict[str, Any]]: ...
    def meter_usage_async(self, params: Dict[str, Any], with_log: bool = ...) -> Awaitable[Dict[str, Any]]: ...
    def resolve_customer_async(self, params: Dict[str, Any], with_log: bool = ...) -> Awaitable[Dict[str, Any]]: ...
    def register_usage_async(self, params: Dict[str, Any], with_log: bool = ...) -> Awaitable[Dict[str, Any]]: ...

@final
class Emulator:
    """The in-process metering-emulator."""

    def __new__(cls, port: int = 0) -> "Emulator": ...
    @property
    def port(self) -> int: ...
    @property
    def endpoint(self) -> str: ...
    def ledger(self) -> List[Dict[str, Any]]: ...
    def requests(self) -> List[Dict[str, Any]]: ...
    def push_fault(self, fault: Dict[str, Any]) -> None: ...
    def pending_faults(self) -> List[Dict[str, Any]]: ...
    def reset(self) -> None: ...
    def shutdown(self) -> None: ...

@final
class ManualClock:
    """A clock set by hand, for tests and examples (``marketplace_metering.testing.ManualClock``).

    Parameters
    ----------
    start : datetime, int, float or str
        The time it reads: a datetime (naive means UTC), epoch seconds or ISO-8601.
    """

    def __new__(cls, start: TimestampTypeDef) -> "ManualClock": ...
    def now(self) -> int:
        """The time it reads, in epoch seconds."""
    def set(self, when: TimestampTypeDef) -> None:
        """Sets it to ``when`` (a datetime, epoch seconds or ISO-8601)."""
    def advance(self, delta: Union[timedelta, int, float]) -> None:
        """Moves it by ``delta`` (a timedelta or seconds; negative moves it back)."""

@final
class UsageMeter:
    """Records every billable event and bills every customer-hour exactly once.

    Each :meth:`record` adds to a bucket (product or license, customer, dimension, hour of the
    event). When an hour has ended and ``grace`` has passed its buckets are *sealed* (their
    quantity never changes again) and sent through ``BatchMeterUsage`` (or ``MeterUsage``),
    once; each result is stored (acked, dead-lettered or expired) and reported as an event.

    Parameters
    ----------
    client : Client or AsyncClient
        The client that sends the buckets (its settings, credentials and retries are used).
    path : str or os.PathLike, optional
        The SQLite store (created when missing). ``None``: in memory, for tests — nothing
        survives the process.
    product_code : str, optional
        The product; ``None`` when every customer is given as ``customer_aws_account_id``
        with ``license_arn``.
    mode : {"batch", "meter_usage"}
        ``"batch"``: ``BatchMeterUsage`` (SaaS). ``"meter_usage"``: ``MeterUsage``, one record
        per dimension per hour for this instance/task/pod (customers are ignored).
    durability : {"durable", "group", "memory"}
        When :meth:`record` returns: after its own commit, after a group commit shared with
        concurrent callers, or at once (buffered in memory and written at each flush: a crash
        loses what was recorded since the last flush).
    grace : timedelta or float, default 5 minutes
        Time after an hour's end before it is sealed; at most 4 hours (the service's window
        less two hours, so an hour is left to send in).
    zero_fill : bool, default False
        Report 0 for the hours without usage of customers given to :meth:`register_customer`.
    on_event : callable, optional
        Called with each event (a :class:`~marketplace_metering.type_defs.MeterEventTypeDef`
        dict) on the thread that caused it — a :meth:`record` caller, the group-commit thread,
        a library runtime thread, or the meter's event thread, which delivers the background
        flush's events in order as they come. It must return quickly and must not call the meter's
        blocking methods; an exception it raises is logged on the ``marketplace_metering``
        logger and ignored. Without it, events are queued for :meth:`events`.
    flush_interval : timedelta or float or None, default 60 seconds
        Flush in the background this often, at most 30 minutes (window alarms are raised
        by flushes); ``None`` or 0: only :meth:`flush` and :meth:`close`.
    clock : ManualClock, optional
        Keyword only; for tests and examples (``marketplace_metering.testing.ManualClock``).
    database_url : str, optional
        Keyword only. The fleet store instead of ``path``: ``"postgresql://user@host:5432/db"``,
        one PostgreSQL shared by every replica; each customer-hour is billed once across the
        fleet. Which hours are sealed is decided by the database's clock (``clock`` replaces it).
    replica_id : str, optional
        Keyword only. This writer's name in the fleet store (default: host name and pid).
    fleet_senders : int, optional
        Keyword only. How many replicas send at a time per product (default 1: the fleet
        calls the service at the rate one meter does).
    fleet_lease : timedelta or float, optional
        Keyword only. How long a sender's claim lasts (default 2 minutes, at most 30); a dead
        sender's buckets are sent again, identical, by another replica after it.
    start_hour : datetime or int, optional
        Keyword only. The cut-over from a SQLite meter: the first hour this fleet store
        counts (rounded down to the hour). Before it every event, and after it an event of
        an earlier hour still within its grace, raise ``ParamValidationError`` naming
        ``timestamp``: they belong to the SQLite meter. A late event of an earlier hour is
        counted in the current hour, as any late event.
    power_loss_safe : bool, default True
        Keyword only; the SQLite store. ``True``: every commit is fsynced and survives the
        machine losing power. ``False``: a commit survives the process being killed
        (``kill -9``, an out-of-memory kill, a crash) but the last commits before the machine
        itself fails may be lost; commits are then several times faster (no fsync per
        commit: SQLite's ``synchronous=NORMAL`` in WAL mode). For a store on a disk that does not outlive its machine (a
        container's ephemeral storage) ``True`` protects nothing. The fleet store refuses
        ``False``: its commits are as durable as the database's own settings make them.

    Raises
    ------
    ParamValidationError
        An argument has the wrong type or value (``.field`` names it).
    InvalidConfigError
        ``mode="meter_usage"`` without a product code.

    Notes
    -----
    A meter belongs to the process that created it: in a child made by ``os.fork()`` every
    method raises :class:`InvalidStateError` ("create the UsageMeter after fork"); create
    the meter in the child (gunicorn: in ``post_fork``). One meter owns a store file at a
    time: a second one, in this process or another, raises naming the holder's pid and host.
    Use :meth:`close` (or ``with``) before exit; at interpreter exit a meter still open is
    dropped, which writes its buffered events to a file store but sends nothing.
    """

    def __new__(
        cls,
        client: Any,
        path: Union[str, "os.PathLike[str]", None] = None,
        product_code: Optional[str] = None,
        mode: Literal["batch", "meter_usage"] = ...,
        durability: Literal["durable", "group", "memory"] = ...,
        grace: Union[timedelta, float, None] = None,
        zero_fill: bool = ...,
        on_event: Optional[Callable[[MeterEventTypeDef], object]] = None,
        flush_interval: Union[timedelta, float, None] = ...,
        *,
        clock: Optional[ManualClock] = None,
        database_url: Optional[str] = None,
        replica_id: Optional[str] = None,
        fleet_senders: Optional[int] = None,
        fleet_lease: Union[timedelta, float, None] = None,
        start_hour: Union[datetime, int, None] = None,
        power_loss_safe: bool = ...,
    ) -> "UsageMeter": ...
    def record(
        self,
        customer_identifier: Optional[str] = None,
        dimension: Optional[str] = None,
        quantity: Optional[int] = None,
        *,
        customer_aws_account_id: Optional[str] = None,
        license_arn: Optional[str] = None,
        timestamp: Optional[TimestampTypeDef] = None,
        allocations: Optional[Sequence[UsageAllocationTypeDef]] = None,
    ) -> None:
        """Adds ``quantity`` of ``dimension`` used by a customer to its hour's bucket.

        Returns once the event is as durable as ``durability`` says; the GIL is released
        meanwhile. An event for an hour already sealed is counted in the current hour and
        reported as a ``late_event``.

        Parameters
        ----------
        customer_identifier : str, optional
            A SaaS ``CustomerIdentifier`` (needs the meter's ``product_code``). Or give
            ``customer_aws_account_id`` with ``license_arn``. Ignored (may be omitted) in
            ``"meter_usage"`` mode.
        dimension : str
            The usage dimension.
        quantity : int
            0 to 2,147,483,647.
        customer_aws_account_id, license_arn : str, optional
            The customer's AWS account id and its license.
        timestamp : datetime, int, float or str, optional
            When it happened (default: now): a datetime (naive means UTC), epoch seconds or
            ISO-8601.
        allocations : list of dict, optional
            boto3's ``UsageAllocations`` shape; must sum to ``quantity``.

        Raises
        ------
        ParamValidationError
            A missing, conflicting or invalid argument (``.field`` names it).
        InvalidStateError
            The meter is closed.
        """
    def register_customer(
        self,
        customer_identifier: Optional[str] = None,
        dimensions: Optional[Sequence[str]] = None,
        *,
        customer_aws_account_id: Optional[str] = None,
        license_arn: Optional[str] = None,
    ) -> None:
        """Registers a customer for zero-fill: from the current hour on, each of ``dimensions``
        is reported every hour, as 0 when unused (only with ``zero_fill=True``)."""
    def unregister_customer(
        self,
        customer_identifier: Optional[str] = None,
        dimensions: Optional[Sequence[str]] = None,
        *,
        customer_aws_account_id: Optional[str] = None,
        license_arn: Optional[str] = None,
    ) -> int:
        """Stops zero-filling a customer (one that churned): its registrations for
        ``dimensions`` (every dimension when ``None``) are removed at once, so no zero is made
        for an hour not zero-filled yet; usage recorded is still sent. Returns how many
        registrations were removed."""
    def flush(self) -> FlushSummaryTypeDef:
        """Seals what may be sealed and sends every sealed bucket now (releases the GIL).

        Returns
        -------
        dict
            Counts (``sealed``, ``sent``, ``calls``, ``acked``, ``dead_lettered``,
            ``expired``, ``resent_unprocessed``, ``deferred``) and ``interrupted``: ``None``,
            or ``{"code", "message", "error"}`` when a retryable failure (throttling,
            transport) outlasted the client's retries — the buckets stay sealed for the next
            flush, and nothing is raised.

        Raises
        ------
        MeteringError
            A failure not tied to records (credentials, access, a closed meter; a store
            busy, full or failing I/O, with ``retryable`` true), as the client raises it.
        """
    def flush_async(self) -> Coroutine[Any, Any, FlushSummaryTypeDef]:
        """:meth:`flush` as a coroutine (runs on the library's runtime threads)."""
    def _flush_started(self) -> Awaitable[FlushSummaryTypeDef]: ...
    def close(self) -> FlushSummaryTypeDef:
        """Stops the background flusher and flushes what may be flushed.

        Later :meth:`record` and :meth:`flush` calls raise ``InvalidStateError``; :meth:`status`
        and :meth:`dead_letters` still answer. Unsealed hours stay in a file store and are
        sent by the next meter opened on it.
        """
    def close_async(self) -> Coroutine[Any, Any, FlushSummaryTypeDef]:
        """:meth:`close` as a coroutine."""
    def _close_started(self) -> Awaitable[FlushSummaryTypeDef]: ...
    def status(self) -> MeterStatusTypeDef:
        """Bucket counts per state: ``pending``, ``sealed``, ``acked``, ``dead_lettered``,
        ``expired``, ``oldest_unsent_hour`` (a tz-aware datetime or ``None``),
        ``replica_id`` (this meter's, on the fleet store; ``None`` on a local store),
        ``last_flush_at`` and ``last_flush_error`` (this meter's last flush: when it ended,
        and ``"Code: message"`` of what failed or stopped it, ``None`` when it went well)."""
    def dead_letters(self) -> List[DeadLetterTypeDef]:
        """Every bucket the service did not meter, oldest first."""
    def requeue(
        self,
        reason: Optional[str] = None,
        customer_identifier: Optional[str] = None,
        *,
        customer_aws_account_id: Optional[str] = None,
        license_arn: Optional[str] = None,
        hour: Optional[TimestampTypeDef] = None,
    ) -> int:
        """Sends chosen dead letters again and returns how many.

        The dead letters matching every filter given (``reason``: ``"CustomerNotSubscribed"``,
        an error code, …; a customer; ``hour``: any time within it) whose hour is still inside
        the service's window go back to sealed with their frozen quantity and leave
        :meth:`dead_letters`; the next flush sends them. Without filters, every one.

        Raises ``ParamValidationError`` for a bad argument (``.field`` names it).
        """
    def events(self) -> Iterator[MeterEventTypeDef]:
        """The events queued since the last call, oldest first (they are removed).

        Only without ``on_event``; the newest 10,000 are kept (see :attr:`events_dropped`).
        """
    @property
    def events_dropped(self) -> int:
        """Events dropped from the queue because more than 10,000 were left unread."""
    @property
    def mode(self) -> str:
        """``"batch"`` or ``"meter_usage"``."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        *_exc: object,
    ) -> bool:
        """Closes the meter (:meth:`close`); exceptions propagate."""
    def __aenter__(self) -> Coroutine[Any, Any, Self]: ...
    def __aexit__(
        self,
        *_exc: object,
    ) -> Coroutine[Any, Any, None]:
        """Closes the meter (:meth:`close_async`); exceptions propagate."""

def error_codes() -> List[Tuple[str, str, List[str], str, bool, int]]:
    """The core's error-code table: (code, class name, bases, kind, server fault, number)."""

def emulator_defaults() -> Dict[str, str]:
    """The emulator's region, credentials and default catalog."""

def _shutdown() -> None:
    """Stops the shared runtime (registered with ``atexit``)."""

def _write_buffers() -> None:
    """Writes what each live meter buffered, leaving it open (from ``uwsgi.atexit``)."""
