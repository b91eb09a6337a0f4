# SPDX-License-Identifier: Apache-2.0
"""An in-process Metering Service emulator for tests.

::

    from marketplace_metering.testing import emulator

    with emulator() as emu:
        client = emu.client()
        client.batch_meter_usage(ProductCode=emu.product_code, UsageRecords=[...])
        assert len(emu.ledger()) == 1

With pytest, the ``metering_emulator`` fixture (registered as a plugin through the
``pytest11`` entry point, or imported from here) yields a fresh, reset emulator.

The emulator knows product ``prod-1234`` (dimensions ``users``, ``gb``, ``requests``),
subscribed customers ``cust-1`` … ``cust-50``, ``cust-unsubscribed``, registration
tokens ``reg-token-valid`` (→ ``cust-1``), ``reg-token-expired`` and
``reg-token-license`` (→ the account and the license only, without ``CustomerIdentifier``
or ``ProductCode``, as for a product metered by license).

:class:`ManualClock` drives a :class:`~marketplace_metering.UsageMeter` in tests. The
emulator accepts records up to 6 real hours old: start the clock at a recent real hour.
"""

from __future__ import annotations

import atexit
import contextlib
from typing import Any, Dict, Iterator, List, Mapping, Optional

from . import _native
from ._client import AsyncClient, Client
from .config import Config

__all__ = ["Emulator", "ManualClock", "emulator", "metering_emulator"]

#: A clock set by hand for :class:`~marketplace_metering.UsageMeter` (``clock=``): hours seal
#: when the test moves it. ``ManualClock(start)`` takes a datetime (naive means UTC), epoch
#: seconds or an ISO-8601 string; ``.now()`` returns epoch seconds, ``.set(when)`` and
#: ``.advance(seconds_or_timedelta)`` move it. The meter reads it without calling Python.
ManualClock = _native.ManualClock

_DEFAULTS: Dict[str, str] = dict(_native.emulator_defaults())


class Emulator:
    """A running emulator on ``127.0.0.1`` and the credentials it accepts.

    Attributes
    ----------
    endpoint_url : str
        ``http://127.0.0.1:<port>``.
    region_name, aws_access_key_id, aws_secret_access_key : str
        What clients must use.
    product_code, license_arn, customer_aws_account_id : str
        The emulator's default catalog.
    """

    def __init__(self, port: int = 0) -> None:
        self._native = _native.Emulator(port)
        self.port: int = self._native.port
        self.endpoint_url: str = self._native.endpoint
        self.region_name: str = _DEFAULTS["region_name"]
        self.aws_access_key_id: str = _DEFAULTS["aws_access_key_id"]
        self.aws_secret_access_key: str = _DEFAULTS["aws_secret_access_key"]
        self.product_code: str = _DEFAULTS["product_code"]
        self.license_arn: str = _DEFAULTS["license_arn"]
        self.customer_aws_account_id: str = _DEFAULTS["customer_aws_account_id"]

    def client_kwargs(self) -> Dict[str, Any]:
        """The keyword arguments that point a client (ours or boto3's) at this emulator."""
        return {
            "region_name": self.region_name,
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
        }

    def client(self, **kw: Any) -> Client:
        """A :class:`~marketplace_metering.Client` for this emulator; ``kw`` overrides.

        Retries back off from 10 ms (instead of 1 s) unless ``_initial_backoff`` is given.
        """
        args = self.client_kwargs()
        args.setdefault("config", Config())
        args["_initial_backoff"] = 0.01
        args.update(kw)
        return Client(**args)

    def async_client(self, **kw: Any) -> AsyncClient:
        """An :class:`~marketplace_metering.AsyncClient` for this emulator."""
        args = self.client_kwargs()
        args["_initial_backoff"] = 0.01
        args.update(kw)
        return AsyncClient(**args)

    def ledger(self) -> List[Dict[str, Any]]:
        """Billed records, oldest first (``customer_identifier``, ``dimension``, ``quantity``, ...)."""
        return self._native.ledger()

    def requests(self) -> List[Dict[str, Any]]:
        """Service requests answered, oldest first (``operation``, ``status``, ``error_code``, ...)."""
        return self._native.requests()

    def push_fault(self, fault: Mapping[str, Any]) -> None:
        """Queues a fault for the next request: ``{"kind": "throttle"}``, ``"internal_error"``,
        ``"unavailable"``, ``"reset"``, ``{"kind": "delay", "seconds": 0.5}``,
        ``{"kind": "partial", "count": 2}``, ``"truncated"``, ``"garbage"``, or
        ``{"kind": "error", "status": 400, "code": "X", "message": "m"}``."""
        self._native.push_fault(dict(fault))

    def pending_faults(self) -> List[Dict[str, Any]]:
        """Faults still queued."""
        return self._native.pending_faults()

    def reset(self) -> None:
        """Clears the ledger, de-duplication state, request log and queued faults."""
        self._native.reset()

    def shutdown(self) -> None:
        """Stops the emulator (idempotent)."""
        self._native.shutdown()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


@contextlib.contextmanager
def emulator(port: int = 0) -> Iterator[Emulator]:
    """Starts an emulator on a free port (or ``port``) for the ``with`` block.

    Yields
    ------
    Emulator
        The running emulator.
    """
    emu = Emulator(port)
    try:
        yield emu
    finally:
        emu.shutdown()


try:  # the fixture exists only where pytest does
    import pytest as _pytest
except ImportError:  # pragma: no cover
    _pytest = None  # type: ignore[assignment]

if _pytest is not None:
    _SESSION: Optional[Emulator] = None

    @_pytest.fixture
    def metering_emulator() -> Iterator[Emulator]:
        """A running emulator, reset before each test (one per test session)."""
        global _SESSION
        if _SESSION is None:
            _SESSION = Emulator()
            atexit.register(_SESSION.shutdown)
        _SESSION.reset()
        yield _SESSION
