# SPDX-License-Identifier: Apache-2.0
"""TypedDicts of the requests and responses, named as mypy-boto3-meteringmarketplace's."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Dict, List, Optional, TypedDict, Union

if TYPE_CHECKING:
    from .exceptions import MeteringError

__all__ = [
    "TimestampTypeDef",
    "TagTypeDef",
    "UsageAllocationTypeDef",
    "UsageRecordTypeDef",
    "UsageRecordOutputTypeDef",
    "UsageRecordResultTypeDef",
    "ResponseMetadataTypeDef",
    "BatchMeterUsageRequestTypeDef",
    "BatchMeterUsageResultTypeDef",
    "MeterUsageRequestTypeDef",
    "MeterUsageResultTypeDef",
    "ResolveCustomerRequestTypeDef",
    "ResolveCustomerResultTypeDef",
    "RegisterUsageRequestTypeDef",
    "RegisterUsageResultTypeDef",
    "MeterEventTypeDef",
    "FlushInterruptionTypeDef",
    "FlushSummaryTypeDef",
    "MeterStatusTypeDef",
    "DeadLetterTypeDef",
]

#: A timestamp in: a datetime (naive means UTC), epoch seconds, or an ISO-8601 string.
TimestampTypeDef = Union[datetime, int, float, str]


class TagTypeDef(TypedDict):
    Key: str
    Value: str


class _UsageAllocationRequired(TypedDict):
    AllocatedUsageQuantity: int


class UsageAllocationTypeDef(_UsageAllocationRequired, total=False):
    Tags: List[TagTypeDef]


class _UsageRecordRequired(TypedDict):
    Timestamp: TimestampTypeDef
    Dimension: str


class UsageRecordTypeDef(_UsageRecordRequired, total=False):
    CustomerIdentifier: str
    Quantity: int
    UsageAllocations: List[UsageAllocationTypeDef]
    CustomerAWSAccountId: str
    LicenseArn: str


class _UsageRecordOutputRequired(TypedDict):
    Timestamp: datetime
    Dimension: str


class UsageRecordOutputTypeDef(_UsageRecordOutputRequired, total=False):
    CustomerIdentifier: str
    Quantity: int
    UsageAllocations: List[UsageAllocationTypeDef]
    CustomerAWSAccountId: str
    LicenseArn: str


class UsageRecordResultTypeDef(TypedDict, total=False):
    UsageRecord: UsageRecordOutputTypeDef
    MeteringRecordId: str
    Status: str


class ResponseMetadataTypeDef(TypedDict):
    RequestId: str
    HTTPStatusCode: int
    HTTPHeaders: Dict[str, str]
    RetryAttempts: int


class _BatchMeterUsageRequired(TypedDict):
    UsageRecords: List[UsageRecordTypeDef]


class BatchMeterUsageRequestTypeDef(_BatchMeterUsageRequired, total=False):
    ProductCode: str


class BatchMeterUsageResultTypeDef(TypedDict):
    Results: List[UsageRecordResultTypeDef]
    UnprocessedRecords: List[UsageRecordOutputTypeDef]
    ResponseMetadata: ResponseMetadataTypeDef


class _MeterUsageRequired(TypedDict):
    ProductCode: str
    Timestamp: TimestampTypeDef
    UsageDimension: str


class MeterUsageRequestTypeDef(_MeterUsageRequired, total=False):
    UsageQuantity: int
    DryRun: bool
    UsageAllocations: List[UsageAllocationTypeDef]
    ClientToken: str


class _MeterUsageResultRequired(TypedDict):
    ResponseMetadata: ResponseMetadataTypeDef


class MeterUsageResultTypeDef(_MeterUsageResultRequired, total=False):
    MeteringRecordId: str


class ResolveCustomerRequestTypeDef(TypedDict):
    RegistrationToken: str


class _ResolveCustomerResultRequired(TypedDict):
    ResponseMetadata: ResponseMetadataTypeDef


class ResolveCustomerResultTypeDef(_ResolveCustomerResultRequired, total=False):
    CustomerIdentifier: str
    ProductCode: str
    CustomerAWSAccountId: str
    LicenseArn: str


class _RegisterUsageRequired(TypedDict):
    ProductCode: str
    PublicKeyVersion: int


class RegisterUsageRequestTypeDef(_RegisterUsageRequired, total=False):
    Nonce: str


class _RegisterUsageResultRequired(TypedDict):
    ResponseMetadata: ResponseMetadataTypeDef


class RegisterUsageResultTypeDef(_RegisterUsageResultRequired, total=False):
    PublicKeyRotationTimestamp: datetime
    Signature: str


# ---------------------------------------------------------------- UsageMeter


class _MeterEventRequired(TypedDict):
    #: ``"acked"``, ``"dead_lettered"``, ``"late_event"``, ``"window_alarm"`` or ``"expired"``.
    kind: str
    #: The bucket's customer: ``customer_identifier``, or ``customer_aws_account_id`` with
    #: ``license_arn`` (the others are None; all None in ``"meter_usage"`` mode).
    customer_identifier: Optional[str]
    customer_aws_account_id: Optional[str]
    license_arn: Optional[str]
    dimension: str
    #: The bucket's hour (UTC, tz-aware); for a late event, the event's own hour.
    hour: datetime
    #: The bucket's quantity; for a late event, the event's quantity.
    quantity: int
    #: On the fleet store (``database_url``), the ``replica_id`` of the meter that emitted
    #: the event; None on a local store.
    replica_id: Optional[str]


class MeterEventTypeDef(_MeterEventRequired, total=False):
    """An event of :class:`~marketplace_metering.UsageMeter` (``on_event`` / ``events()``)."""

    #: ``acked``: the service's id for the record.
    metering_record_id: str
    #: ``dead_lettered``: why: the record's Status (``CustomerNotSubscribed``, ...) or the error
    #: code; the dead letter's ``reason`` and ``requeue(reason=...)``'s filter. ``expired``:
    #: ``"OutcomeUnknown"`` when an earlier send of the bucket got no answer, so the service may
    #: have metered it then (check its records before billing it another way); absent when every
    #: earlier send, if any, was answered (refused or throttled).
    reason: str
    #: ``dead_lettered``, and ``expired`` with a ``reason``: details.
    message: str
    #: ``late_event``: the hour the quantity was counted in instead.
    counted_in_hour: datetime
    #: ``window_alarm``: when the service stops accepting the bucket.
    window_end: datetime


class FlushInterruptionTypeDef(TypedDict):
    """Why a flush stopped early (throttling, transport); the buckets stay sealed."""

    code: str
    message: str
    #: The exception the same failure raises elsewhere (not raised here).
    error: "MeteringError"


class FlushSummaryTypeDef(TypedDict):
    """What ``UsageMeter.flush()`` / ``close()`` did."""

    sealed: int
    sent: int
    calls: int
    acked: int
    dead_lettered: int
    expired: int
    resent_unprocessed: int
    deferred: int
    interrupted: Optional[FlushInterruptionTypeDef]


class MeterStatusTypeDef(TypedDict):
    """``UsageMeter.status()``: bucket counts per state."""

    pending: int
    sealed: int
    acked: int
    dead_lettered: int
    expired: int
    oldest_unsent_hour: Optional[datetime]
    #: On the fleet store, this meter's ``replica_id`` (the counts are the whole fleet's for
    #: the product); None on a local store.
    replica_id: Optional[str]
    #: When this meter's last flush ended (the caller's, ``close()``'s or the background
    #: flusher's), by the meter's clock; None before the first.
    last_flush_at: Optional[datetime]
    #: Why this meter's last flush did not do all it could (``"Code: message"``: an error, or
    #: what stopped it); None when it went well. A health check reads it: a background
    #: flush has no caller to raise it to.
    last_flush_error: Optional[str]


class DeadLetterTypeDef(TypedDict):
    """A bucket the service did not meter (``UsageMeter.dead_letters()``)."""

    customer_identifier: Optional[str]
    customer_aws_account_id: Optional[str]
    license_arn: Optional[str]
    dimension: str
    hour: datetime
    quantity: int
    #: The record's Status or the error code.
    reason: str
    message: str
    #: When it was dead-lettered.
    at: datetime
