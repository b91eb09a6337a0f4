# SPDX-License-Identifier: Apache-2.0
"""Client configuration, with botocore's ``Config`` meanings."""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs ~15 ms of import time; annotations only
    from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = ["Config"]

_RETRY_KEYS = frozenset({"max_attempts", "total_max_attempts", "mode"})
_MODES = ("standard", "adaptive", "legacy")


class Config:
    """Advanced client settings, as ``botocore.config.Config``.

    Parameters
    ----------
    region_name : str, optional
        The region, used when the client is given none.
    retries : dict, optional
        ``{"max_attempts": int, "total_max_attempts": int, "mode": str}``.
        ``max_attempts`` counts the retries after the first attempt,
        ``total_max_attempts`` counts every attempt (it wins when both are given); ``mode``
        is ``"standard"`` (default), ``"adaptive"`` or ``"legacy"`` (treated as standard).
        Without it, ``AWS_MAX_ATTEMPTS`` and ``AWS_RETRY_MODE`` are read, as botocore does.
    connect_timeout : float, optional
        Seconds allowed to open a connection (default 5).
    read_timeout : float, optional
        Seconds allowed between bytes of a response (default 30; botocore's is 60).
    attempt_timeout : float, optional
        Seconds allowed for one attempt, response body included (default 60). An attempt
        that runs out is retried as a read timeout is. botocore has no such setting.
    operation_timeout : float, optional
        Seconds allowed for a whole call, retries included (default: no bound); past it,
        ``ReadTimeoutError``. botocore has no such setting.
    max_pool_connections, user_agent_extra, tcp_keepalive
        Accepted for compatibility with botocore; they have no effect.
    """

    def __init__(
        self,
        *,
        region_name: Optional[str] = None,
        retries: Optional[Mapping[str, Any]] = None,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        attempt_timeout: Optional[float] = None,
        operation_timeout: Optional[float] = None,
        max_pool_connections: Optional[int] = None,
        user_agent_extra: Optional[str] = None,
        tcp_keepalive: Optional[bool] = None,
    ) -> None:
        if retries is not None:
            unknown = set(retries) - _RETRY_KEYS
            if unknown:
                raise ValueError(
                    f"invalid retries key(s) {sorted(unknown)}; valid keys: {sorted(_RETRY_KEYS)}"
                )
            mode = retries.get("mode")
            if mode is not None and mode not in _MODES:
                raise ValueError(f"retries mode must be one of {_MODES}, got {mode!r}")
            for k in ("max_attempts", "total_max_attempts"):
                v = retries.get(k)
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                    raise ValueError(f"retries {k} must be a non-negative int, got {v!r}")
        self.region_name = region_name
        self.retries: Optional[Dict[str, Any]] = dict(retries) if retries is not None else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempt_timeout = attempt_timeout
        self.operation_timeout = operation_timeout
        self.max_pool_connections = max_pool_connections
        self.user_agent_extra = user_agent_extra
        self.tcp_keepalive = tcp_keepalive

    def merge(self, other: "Config") -> "Config":
        """A new Config with ``other``'s settings taking precedence, as botocore."""
        kw: Dict[str, Any] = {}
        for k in ("region_name", "retries", "connect_timeout", "read_timeout",
                  "attempt_timeout", "operation_timeout", "max_pool_connections", "user_agent_extra", "tcp_keepalive"):
            v = getattr(other, k)
            kw[k] = v if v is not None else getattr(self, k)
        return Config(**kw)

    def __repr__(self) -> str:
        return (f"Config(region_name={self.region_name!r}, retries={self.retries!r}, "
                f"connect_timeout={self.connect_timeout!r}, read_timeout={self.read_timeout!r}, "
                f"attempt_timeout={self.attempt_timeout!r}, "
                f"operation_timeout={self.operation_timeout!r})")

    def _retry_settings(self) -> Tuple[Optional[int], Optional[str]]:
        """(total attempts, mode) for the core, or ``None`` for its defaults."""
        return retry_settings(self.retries)


def retry_settings(retries: Optional[Mapping[str, Any]]) -> Tuple[Optional[int], Optional[str]]:
    """botocore's retry meanings → the core's total attempts and mode."""
    total: Optional[int] = None
    mode: Optional[str] = None
    if retries is not None:
        mode = retries.get("mode")
        if retries.get("total_max_attempts") is not None:
            total = int(retries["total_max_attempts"])
        elif retries.get("max_attempts") is not None:
            total = int(retries["max_attempts"]) + 1
    if total is None:
        env = os.environ.get("AWS_MAX_ATTEMPTS")
        if env and env.strip().isdigit():
            total = int(env)
    if mode is None:
        mode = os.environ.get("AWS_RETRY_MODE") or None
        if mode is not None and mode not in _MODES:
            mode = None
    if total is not None:
        total = max(total, 1)
    return total, mode
