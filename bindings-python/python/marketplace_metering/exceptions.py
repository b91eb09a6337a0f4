# SPDX-License-Identifier: Apache-2.0
"""Exceptions raised by :mod:`marketplace_metering`, shaped like botocore's.

Every exception derives from :class:`MeteringError`. Errors answered by the service are
:class:`ClientError` subclasses named after the service's code (``ThrottlingException``,
``InvalidTokenException``, ``DryRunOperation``, ...); an unknown service code raises plain
:class:`ClientError`. Local failures have their own classes: :class:`ParamValidationError`
(also a :class:`ValueError`), ``NoCredentialsError``, ``EndpointConnectionError``,
``ConnectTimeoutError``, ``ReadTimeoutError``, ``ResponseParserError``,
``InvalidConfigError`` and ``InvalidStateError``. As in botocore, ``EndpointConnectionError``
and ``ConnectTimeoutError`` are siblings under :class:`ConnectionError`, and
``ReadTimeoutError`` is an :class:`HTTPClientError`.

The subclasses are built at import time from the core's error-code table
(``_native.error_codes()``); there is no second list here.
"""

from __future__ import annotations

import builtins
TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs ~15 ms of import time; annotations only
    from typing import Any, Dict, List, Optional, Tuple, Type

from . import _native

__all__ = ["MeteringError", "ClientError"]


def _rebuild(cls: Type[BaseException], args: Tuple[Any, ...], state: Dict[str, Any]) -> BaseException:
    obj = cls.__new__(cls)
    BaseException.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


class MeteringError(Exception):
    """Base class of every error raised by this package.

    Attributes
    ----------
    code : str
        The service's error code (``"ThrottlingException"``) or the local one
        (``"InvalidInput"``, ``"Dispatch"``, ``"ReadTimeout"``, ...).
    message : str
        The human-readable message.
    request_id : str or None
        The service's request id, when a response was received.
    status_code : int or None
        The HTTP status of the last response, when one was received.
    retryable : bool
        Whether the same call could succeed if made again later.
    attempts : int
        Attempts made, the first included (0 when nothing was sent).
    operation_name : str or None
        The operation that failed (``"MeterUsage"``).
    kwargs : dict
        What botocore's exceptions keep there: ``{"report": ...}`` of a
        :class:`ParamValidationError` (its text after the first line), else empty.
    """

    #: The code this class stands for (``""`` for the roots).
    error_code: str = ""
    #: ``"local"``, ``"modeled"`` or ``"common"``.
    kind: str = ""
    #: ``True`` when the failure is the server's.
    server_fault: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
        status_code: Optional[int] = None,
        retryable: bool = False,
        attempts: int = 0,
        operation_name: Optional[str] = None,
        text: Optional[str] = None,
    ) -> None:
        super().__init__(text if text is not None else message)
        self.code: str = code if code is not None else type(self).error_code
        self.message: str = message
        self.request_id: Optional[str] = request_id
        self.status_code: Optional[int] = status_code
        self.retryable: bool = retryable
        self.attempts: int = attempts
        self.operation_name: Optional[str] = operation_name
        self.kwargs: Dict[str, Any] = {}

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ClientError(MeteringError):
    """An error answered by the service, as botocore's ``ClientError``.

    Parameters
    ----------
    error_response : dict
        ``{"Error": {"Code": ..., "Message": ...}, "ResponseMetadata": {...}}``.
    operation_name : str
        The operation that failed.

    Attributes
    ----------
    response : dict
        The error response, as ``error_response``.
    operation_name : str
        The operation that failed.
    """

    MSG_TEMPLATE = (
        "An error occurred ({error_code}) when calling the {operation_name} "
        "operation{retry_info}: {error_message}"
    )

    def __init__(self, error_response: Dict[str, Any], operation_name: str) -> None:
        error = error_response.get("Error", {})
        meta = error_response.get("ResponseMetadata", {})
        retries = meta.get("RetryAttempts", 0)
        # As botocore: only when its retries ran out, not after a retry and then a refusal.
        retry_info = f" (reached max retries: {retries})" if meta.get("MaxAttemptsReached") else ""
        code = error.get("Code", "Unknown")
        message = error.get("Message", "Unknown")
        text = self.MSG_TEMPLATE.format(
            error_code=code,
            operation_name=operation_name,
            retry_info=retry_info,
            error_message=message,
        )
        super().__init__(
            message,
            code=code,
            request_id=meta.get("RequestId") or None,
            status_code=meta.get("HTTPStatusCode") or None,
            attempts=retries + 1 if meta else 0,
            operation_name=operation_name,
            text=text,
        )
        self.response: Dict[str, Any] = error_response
        self.operation_name: str = operation_name  # type: ignore[assignment]


class ConnectionError(MeteringError):  # noqa: A001 (botocore's name; not in __all__)
    """No connection to the endpoint could be made, as botocore's ``ConnectionError``: the
    parent of :class:`EndpointConnectionError` and :class:`ConnectTimeoutError`.

    Only ``exceptions.ConnectionError``: it is not in ``__all__``, so a star import does not
    shadow the builtin.
    """


class HTTPClientError(MeteringError):
    """The HTTP exchange failed once connected, as botocore's ``HTTPClientError``: the parent
    of :class:`ReadTimeoutError`."""


def _param_text(field: Optional[str], message: str) -> str:
    problem = message
    if field and message.startswith(field + ": "):
        problem = message[len(field) + 2 :]
    if not field:
        return "Parameter validation failed:\n" + message
    if problem == "is required":
        line = f"Missing required parameter in input: {field}"
    elif problem.startswith("unknown parameter, "):
        line = f"Unknown parameter in input: {field}, {problem[len('unknown parameter, '):]}"
    elif problem.startswith("invalid type: "):
        line = f"Invalid type for parameter {field}, {problem[len('invalid type: '):]}"
    else:
        line = f"Invalid value for parameter {field}: {problem}"
    return "Parameter validation failed:\n" + line


#: The roots the table's bases name, besides builtins.
_CLASSES: Dict[str, Type[MeteringError]] = {
    "MeteringError": MeteringError,
    "ClientError": ClientError,
    "ConnectionError": ConnectionError,
    "HTTPClientError": HTTPClientError,
}
#: Every code of the core's table, in table order, with its Python class.
CODES: Dict[str, Type[MeteringError]] = {}


def _build() -> None:
    g = globals()
    for code, name, bases, kind, server_fault, _number in _native.error_codes():
        cls = _CLASSES.get(name)
        if cls is None:
            resolved = tuple(_CLASSES.get(b) or getattr(builtins, b) for b in bases)
            doc = (
                f"The service answered ``{code}``." if kind != "local"
                else f"Local failure ``{code}`` (raised before or around the HTTP exchange)."
            )
            cls = type(name, resolved, {"__module__": __name__, "__qualname__": name, "__doc__": doc,
                                        "error_code": code, "kind": kind,
                                        "server_fault": server_fault})
            _CLASSES[name] = cls
            g[name] = cls
            __all__.append(name)
        CODES[code] = cls


_build()


def from_code(code: str) -> Type[ClientError]:
    """The class of a service error ``code``, as botocore's ``client.exceptions.from_code``;
    ``ClientError`` for a code this client does not know."""
    cls = CODES.get(code)
    return cls if cls is not None and issubclass(cls, ClientError) else ClientError


def _from_native(
    class_name: str,
    code: str,
    message: str,
    field: Optional[str],
    request_id: Optional[str],
    status: Optional[int],
    headers: Dict[str, str],
    attempts: int,
    retryable: bool,
    operation: str,
    attempt_log: Optional[List[Tuple[Any, ...]]] = None,
    max_attempts_reached: bool = False,
) -> MeteringError:
    """Called by the native module to build the exception of a failed call."""
    cls = _CLASSES[class_name]
    exc: MeteringError
    if issubclass(cls, ClientError):
        response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "RequestId": request_id or "",
                "HTTPStatusCode": status or 0,
                "HTTPHeaders": headers,
                "RetryAttempts": max(attempts - 1, 0),
            },
        }
        if max_attempts_reached:
            # The last attempt was the last one allowed, as botocore marks it (the core
            # decides, by the retry mode's rule).
            response["ResponseMetadata"]["MaxAttemptsReached"] = True
        if status:
            # botocore copies the body's members next to "Error"; the JSON protocol's is "message".
            response["message"] = message
        exc = cls(response, operation)
        exc.retryable = retryable
        exc.attempts = attempts
    else:
        text = _param_text(field, message) if code == "InvalidInput" else message
        exc = cls(
            message,
            code=code,
            request_id=request_id,
            status_code=status,
            retryable=retryable,
            attempts=attempts,
            operation_name=operation,
            text=text,
        )
        if code in ("InvalidInput", "InvalidConfig"):
            # The model path, or the setting as its source spells it (AWS_MAX_ATTEMPTS).
            exc.field = field  # type: ignore[attr-defined]
        if code == "InvalidInput":
            # botocore's ParamValidationError(report=...): callers read it to show the problem.
            exc.kwargs = {"report": text.split("\n", 1)[-1]}
    # Each attempt of the call, for the client's log records (private: not botocore's).
    exc._attempt_log = attempt_log or []  # type: ignore[attr-defined]
    return exc
