# SPDX-License-Identifier: Apache-2.0
"""Client configuration, with botocore's ``Config`` meanings."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs ~15 ms of import time; annotations only
    from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = ["Config"]

_RETRY_KEYS = frozenset({"max_attempts", "total_max_attempts", "mode"})

#: botocore ``Config`` options that mean nothing for this service or this client (S3, host
#: prefixes, endpoint discovery, compression, checksums, SigV4a, account-id endpoints, the
#: defaults mode, the pool's cap): taken and kept, as botocore takes them, so that a
#: ``Config`` written for boto3 works here unchanged.
_BOTOCORE_ONLY = frozenset({
    "signature_version", "user_agent", "parameter_validation", "proxies_config", "s3",
    "s3_disable_express_session_auth", "client_cert", "inject_host_prefix",
    "endpoint_discovery_enabled", "defaults_mode", "request_min_compression_size_bytes",
    "disable_request_compression", "client_context_params", "sigv4a_signing_region_set",
    "request_checksum_calculation", "response_checksum_validation",
    "account_id_endpoint_mode", "auth_scheme_preference",
})
_PROXY_KEYS = frozenset({"http", "https"})


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
        is ``"standard"`` (default), ``"adaptive"`` or ``"legacy"`` (boto3's: 5 attempts,
        ``rand * 2**n`` s backoff, no retry quota). Without it, ``AWS_MAX_ATTEMPTS`` and
        ``AWS_RETRY_MODE``, then the profile's ``max_attempts`` and ``retry_mode`` are read
        (by the core, as every face does).
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
    proxies : dict, optional
        ``{"https": url, "http": url}``: the proxy per endpoint scheme. Without it,
        ``HTTPS_PROXY`` / ``HTTP_PROXY`` (either case) are used, minus ``NO_PROXY``.
    use_fips_endpoint, use_dualstack_endpoint : bool, optional
        The FIPS and dual-stack endpoints (else ``AWS_USE_FIPS_ENDPOINT``,
        ``AWS_USE_DUALSTACK_ENDPOINT``, the profile's keys).
    ignore_configured_endpoint_urls : bool, optional
        Ignore endpoint URLs from the environment and the profile.
    user_agent_appid : str, optional
        The app id in the User-Agent (else ``AWS_SDK_UA_APP_ID``, profile
        ``sdk_ua_app_id``).
    user_agent_extra : str, optional
        Text appended to the User-Agent.
    max_pool_connections : int, optional
        Accepted for compatibility with botocore. The pool needs no cap: it holds at most
        one connection per call in flight.
    tcp_keepalive : bool, optional
        Accepted for compatibility with botocore. TCP keep-alive is always on (probes after
        15 s idle, every 15 s, 3 of them), which is what ``True`` asks for; ``False`` does
        not turn it off.
    **botocore_options
        botocore's other options, taken so that a ``Config`` written for boto3 works here:
        those that mean nothing for this service (``s3``, ``inject_host_prefix``,
        ``defaults_mode``, compression and checksum settings, ...) are kept and unused.
        Those this client cannot honour are refused, naming them: ``signature_version``
        other than ``"v4"`` (the service takes SigV4 only; ``botocore.UNSIGNED`` would send
        unsigned requests), ``user_agent`` (use ``user_agent_extra``), ``client_cert``,
        ``proxies_config`` and ``parameter_validation=False`` (input is always checked
        against the model). Unknown names are a ``TypeError``, as in botocore.
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
        proxies: Optional[Mapping[str, str]] = None,
        use_fips_endpoint: Optional[bool] = None,
        use_dualstack_endpoint: Optional[bool] = None,
        ignore_configured_endpoint_urls: Optional[bool] = None,
        user_agent_appid: Optional[str] = None,
        **botocore_options: Any,
    ) -> None:
        unknown = set(botocore_options) - _BOTOCORE_ONLY
        if unknown:
            raise TypeError(f"Got unexpected keyword argument '{sorted(unknown)[0]}'")
        _refuse_unhonoured(botocore_options)
        for k in _BOTOCORE_ONLY:
            setattr(self, k, botocore_options.get(k))
        # Only the shapes are checked here (as botocore does); values and ranges are the
        # core's to judge, the same way in every face.
        if retries is not None:
            unknown = set(retries) - _RETRY_KEYS
            if unknown:
                raise ValueError(
                    f"invalid retries key(s) {sorted(unknown)}; valid keys: {sorted(_RETRY_KEYS)}"
                )
            for k in ("max_attempts", "total_max_attempts"):
                v = retries.get(k)
                if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                    raise TypeError(f"retries {k} must be an int, got {v!r}")
        if proxies is not None:
            unknown = set(proxies) - _PROXY_KEYS
            if unknown:
                raise ValueError(
                    f"invalid proxies key(s) {sorted(unknown)}; valid keys: {sorted(_PROXY_KEYS)}"
                )
        self.proxies: Optional[Dict[str, str]] = dict(proxies) if proxies is not None else None
        self.use_fips_endpoint = use_fips_endpoint
        self.use_dualstack_endpoint = use_dualstack_endpoint
        self.ignore_configured_endpoint_urls = ignore_configured_endpoint_urls
        self.user_agent_appid = user_agent_appid
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
                  "attempt_timeout", "operation_timeout", "max_pool_connections", "user_agent_extra", "tcp_keepalive",
                  "proxies", "use_fips_endpoint", "use_dualstack_endpoint",
                  "ignore_configured_endpoint_urls", "user_agent_appid"):
            v = getattr(other, k)
            kw[k] = v if v is not None else getattr(self, k)
        for k in _BOTOCORE_ONLY:
            # Read as attributes: a Config made before these options existed (unpickled)
            # has none, and one set after construction is what it says.
            v = getattr(other, k, None)
            v = v if v is not None else getattr(self, k, None)
            if v is not None:
                kw[k] = v
        return Config(**kw)

    def __repr__(self) -> str:
        return (f"Config(region_name={self.region_name!r}, retries={self.retries!r}, "
                f"connect_timeout={self.connect_timeout!r}, read_timeout={self.read_timeout!r}, "
                f"attempt_timeout={self.attempt_timeout!r}, "
                f"operation_timeout={self.operation_timeout!r}, "
                f"use_fips_endpoint={self.use_fips_endpoint!r}, "
                f"use_dualstack_endpoint={self.use_dualstack_endpoint!r}, "
                f"user_agent_appid={self.user_agent_appid!r})")


def _refuse_unhonoured(options: Mapping[str, Any]) -> None:
    """Refuses the botocore options whose meaning this client cannot give, naming them:
    taken and unused, they would change nothing the caller asked for."""
    signature = options.get("signature_version")
    if signature is not None and signature != "v4":
        raise ValueError(
            f"signature_version {signature!r} is not supported: the Metering Service takes "
            "SigV4 (\"v4\"), which this client always signs with"
        )
    for name, why in (
        ("user_agent", "the User-Agent is this library's; add to it with user_agent_extra"),
        ("client_cert", "client certificates (mutual TLS) are not supported"),
        ("proxies_config", "proxy TLS settings are not supported; a proxy is set with proxies"),
    ):
        if options.get(name):
            raise ValueError(f"{name} is not supported: {why}")
    if options.get("parameter_validation") is False:
        raise ValueError(
            "parameter_validation=False is not supported: input is always checked against "
            "the service model before it is sent"
        )


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
    # Unset stays unset: the core reads AWS_MAX_ATTEMPTS / AWS_RETRY_MODE and the profile.
    # Beyond 64 bits: as many attempts as the core can count (it checks the range).
    if total is not None:
        total = max(-(2**63), min(total, 2**63 - 1))
    return total, mode
