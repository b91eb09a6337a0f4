// SPDX-License-Identifier: Apache-2.0
// Public records of the emulator: injected faults, the billing ledger and the request log.

use serde::{Deserialize, Serialize};

/// A failure injected into the next service request (control requests never consume one).
///
/// Faults are kept in a FIFO queue; each service request takes the front one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// 400 `ThrottlingException`; the request is not processed.
    Throttle,
    /// 500 `InternalServiceErrorException`; the request is not processed.
    InternalError,
    /// 503 with an HTML body; the request is not processed.
    Unavailable,
    /// The connection is closed (RST) without a response; the request is not processed.
    Reset,
    /// Waits, then processes and answers normally.
    Delay {
        /// How long to wait, in seconds.
        seconds: f64,
    },
    /// `BatchMeterUsage`: the last `count` records come back in `UnprocessedRecords` and
    /// are not billed. Other operations consume it without effect.
    Partial {
        /// How many records (from the end) to leave unprocessed.
        count: usize,
    },
    /// The request is processed (and billed), then answered with status 200 and the
    /// body cut in the middle of the JSON (`Content-Length` matches the cut body).
    Truncated,
    /// The request is processed (and billed), then answered with status 200 and a
    /// `Content-Length` of the whole body, and the connection closes after half of it.
    ShortBody,
    /// 200 with a body that is not JSON; the request is not processed.
    Garbage,
    /// An HTTP redirect (`status` 3xx, `Location: location`) and nothing else; the request
    /// is not processed.
    Redirect {
        /// HTTP status (301, 302, 303, 307, 308).
        status: u16,
        /// The `Location` header.
        location: String,
    },
    /// The request is processed (and billed), then answered with status 200 and its body sent
    /// one byte every `interval` seconds: each read is quick, the whole answer is slow.
    Trickle {
        /// Seconds between two bytes.
        interval: f64,
    },
    /// 200 with a body of `bytes` bytes (JSON whitespace around `{}`); the request is not
    /// processed.
    Oversize {
        /// The body's size.
        bytes: usize,
    },
    /// An arbitrary error answer; the request is not processed.
    Error {
        /// HTTP status.
        status: u16,
        /// Error code written to `__type`.
        code: String,
        /// Error message.
        message: String,
        /// Write `__type` as `com.amazonaws.marketplace.metering#Code`.
        #[serde(default)]
        namespaced: bool,
    },
}

/// One billed usage record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LedgerEntry {
    /// `BatchMeterUsage` or `MeterUsage`.
    pub operation: String,
    /// Product billed (from the request or, for license records, from the license).
    pub product_code: Option<String>,
    /// `CustomerIdentifier`, when the record named one.
    pub customer_identifier: Option<String>,
    /// `CustomerAWSAccountId`, when the record named one.
    pub customer_aws_account_id: Option<String>,
    /// `LicenseArn`, when the record named one.
    pub license_arn: Option<String>,
    /// Dimension.
    pub dimension: String,
    /// Usage hour: epoch seconds floored to the hour.
    pub hour: i64,
    /// Usage timestamp as sent, epoch seconds.
    pub timestamp: f64,
    /// Quantity (0 when absent).
    pub quantity: i64,
    /// `UsageAllocations` as sent (`null` when absent).
    pub allocations: serde_json::Value,
    /// The `MeteringRecordId` returned.
    pub metering_record_id: String,
}

/// One request the emulator answered (control requests are not logged).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestLogEntry {
    /// The `x-amzn-RequestId` returned.
    pub request_id: String,
    /// Arrival time, epoch seconds.
    pub time: f64,
    /// HTTP method.
    pub method: String,
    /// Request path (with query, if any).
    pub path: String,
    /// Raw `X-Amz-Target` header.
    pub target: Option<String>,
    /// Operation name when the target named a known one.
    pub operation: Option<String>,
    /// HTTP status returned (0 when the connection was reset).
    pub status: u16,
    /// Error code returned, if any.
    pub error_code: Option<String>,
    /// Whether the SigV4 signature verified.
    pub signature_ok: bool,
    /// Access key id named by the `Authorization` header.
    pub access_key_id: Option<String>,
    /// Header names, lowercase (grouped by name, in first-seen order).
    pub header_names: Vec<String>,
    /// Headers (name lowercase, value lossily decoded), grouped by name.
    pub headers: Vec<(String, String)>,
    /// Request body, lossily decoded as UTF-8.
    pub body: String,
    /// Fault consumed by this request, if any.
    pub fault: Option<Fault>,
    /// Which TCP connection carried the request: the emulator numbers the connections it
    /// accepts from 1, so the distinct values show how many connections a client opened.
    #[serde(default)]
    pub connection: u64,
}
