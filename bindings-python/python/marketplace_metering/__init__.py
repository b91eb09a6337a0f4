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
import os
import sys

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


class _MultiprocessingExit:
    """multiprocessing's workers (``Process``, ``Pool``, ``ProcessPoolExecutor``, started by
    fork or forkserver) leave by ``os._exit()``, which runs no ``atexit`` hook, only
    multiprocessing's own finalizers: a memory-durability meter the worker made would lose
    what it buffered. Each worker runs the package's exit hook among those finalizers
    (multiprocessing clears them as a worker starts, then calls its after-fork hooks; a worker
    that imports the package later registers it at once)."""

    hooked = False

    @classmethod
    def hook(cls) -> None:
        util = sys.modules.get("multiprocessing.util")
        if util is None or cls.hooked:
            return
        cls.hooked = True
        util.register_after_fork(_MP_EXIT, _MultiprocessingExit.in_worker)
        if sys.modules["multiprocessing"].parent_process() is not None:
            _MP_EXIT.in_worker()

    def in_worker(self) -> None:
        sys.modules["multiprocessing.util"].Finalize(None, _worker_exit, exitpriority=0)


def _worker_exit() -> None:
    """The package's exit hook in a multiprocessing worker, in the order an interpreter's exit
    keeps: multiprocessing runs its finalizers before it waits for the worker's non-daemon
    threads, which may still be recording."""
    import threading

    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon:
            t.join()
    _native._shutdown()


def _uwsgi_hook() -> None:
    """uWSGI ends a worker (a graceful reload, ``--max-requests``, ``--touch-reload``) by
    calling ``uwsgi.atexit`` and then finalizing the interpreter, which runs the ``atexit``
    hooks; with ``--skip-atexit-teardown`` it does not finalize, and
    a memory-durability meter's buffer was lost. Each meter's buffer is written from
    ``uwsgi.atexit`` too, after the hook the application set there before importing the
    package (one set after must call the one it replaces), and the meters stay open: the
    interpreter's ``atexit`` hooks, which uWSGI runs next unless told not to, may still
    close them (the package's own hook runs there as before)."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is None:
        return
    previous = getattr(uwsgi, "atexit", None)
    if getattr(previous, "_marketplace_metering", False):
        return

    def at_worker_exit() -> None:
        try:
            if callable(previous):
                previous()
        finally:
            _native._write_buffers()

    at_worker_exit._marketplace_metering = True  # type: ignore[attr-defined]
    setattr(uwsgi, "atexit", at_worker_exit)


_uwsgi_hook()


_MP_EXIT = _MultiprocessingExit()
# multiprocessing imported before this package (and a spawned or forkserver worker, which
# imports it first), or after it: the hook is taken in the forked child, before the worker
# starts.
_MultiprocessingExit.hook()
os.register_at_fork(after_in_child=_MultiprocessingExit.hook)
