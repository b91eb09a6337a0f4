# SPDX-License-Identifier: Apache-2.0
"""TypedDicts of the requests and responses, named as mypy-boto3-meteringmarketplace's."""

from __future__ import annotations

from datetime import datetime
from typing import Dict, List, TypedDict, Union

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
