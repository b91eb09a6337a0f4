// SPDX-License-Identifier: Apache-2.0
// The awsJson1.1 protocol: request bodies, and responses or errors read back.

//! awsJson1.1: `POST /`, `X-Amz-Target: AWSMPMeteringService.<Op>`, JSON both ways, errors
//! from `X-Amzn-Errortype`, then body `code`, then `__type`.

use crate::operation::ReadOutput;
use http::HeaderMap;
use serde::Deserialize;

use crate::{Error, ErrorCode};

/// The protocol's content type.
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The request id of a response: `x-amzn-RequestId`, else `x-amz-request-id`.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-amzn-requestid", "x-amz-request-id"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `aws.protocols#awsJson1_1` error-code sanitation: cut at the first `:`, keep what follows `#`.
pub(crate) fn sanitize_error_code(raw: &str) -> &str {
    let s = raw.split(':').next().unwrap_or(raw);
    let s = s.rsplit('#').next().unwrap_or(s);
    s.trim()
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(rename = "__type", default)]
    type_: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(rename = "Message", default)]
    message_upper: Option<String>,
}

/// A short, printable excerpt of a body for error messages.
fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(120)]);
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > 120 {
        out.push('…');
    }
    out
}

/// The longest server message an error keeps, in characters.
const MAX_MESSAGE_CHARS: usize = 1024;
/// The longest server error code an error keeps, in characters.
const MAX_CODE_CHARS: usize = 128;

/// A server's text as errors, logs and dead letters keep it: control characters (a forged
/// log line) become spaces, and it is cut after `max` characters (marked with `…`).
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Reads an error response (status ≥ 300). Always yields an error: an unreadable body keeps
/// the status (as the code string, like botocore) and what the body began with.
pub(crate) fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let header_code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(sanitize_error_code)
        .filter(|c| !c.is_empty());
    let parsed: Option<ErrorBody> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    let (body_code, message) = match &parsed {
        Some(b) => (
            b.code
                .as_deref()
                .or(b.type_.as_deref())
                .map(sanitize_error_code)
                .filter(|c| !c.is_empty()),
            b.message.clone().or_else(|| b.message_upper.clone()),
        ),
        None => (None, None),
    };
    match header_code.or(body_code) {
        Some(code) => Error::service(
            &printable(code, MAX_CODE_CHARS),
            printable(&message.unwrap_or_default(), MAX_MESSAGE_CHARS),
        ),
        None => {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let what = if parsed.is_some() {
                "an error body with no code".to_owned()
            } else if body.is_empty() {
                "an empty body".to_owned()
            } else {
                format!("a body that is not JSON: {:?}", excerpt(body))
            };
            Error::service(
                &status.to_string(),
                format!("HTTP {status} {reason} with {what}"),
            )
        }
    }
}

/// Reads a successful response body as `O`.
pub(crate) fn parse_output<O: ReadOutput>(operation: &str, body: &[u8]) -> Result<O, Error> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let unreadable = |why: &dyn std::fmt::Display| {
        // serde quotes a mistyped value whole: bounded, as a server's error messages are,
        // keeping its end (where in the body).
        let why = why.to_string();
        let why = match why.char_indices().nth_back(96) {
            Some((tail, _)) if why.chars().count() > 512 => {
                format!("{} {}", printable(&why, 384), printable(&why[tail..], 97))
            }
            _ => printable(&why, 512),
        };
        format!(
            "the {operation} response could not be read ({why}); the body began {:?}",
            excerpt(body)
        )
    };
    // UTF-8 is checked once over the whole body, so the parser reads each string without
    // checking it again (a quarter of the parse of a 25-result response).
    let text = std::str::from_utf8(body)
        .map_err(|e| Error::new(ErrorCode::InvalidResponse, unreadable(&e)).with_source(e))?;
    if let Some(out) = O::read_direct(text) {
        return Ok(out);
    }
    serde_json::from_str(text)
        .map_err(|e| Error::new(ErrorCode::InvalidResponse, unreadable(&e)).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::batch_meter_usage::BatchMeterUsageOutput;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn sanitizes_codes() {
        assert_eq!(
            sanitize_error_code("ThrottlingException"),
            "ThrottlingException"
        );
        assert_eq!(
            sanitize_error_code("com.amazonaws.marketplace#ThrottlingException"),
            "ThrottlingException"
        );
        assert_eq!(
            sanitize_error_code("ThrottlingException:http://internal.amazon.com/coral/"),
            "ThrottlingException"
        );
        assert_eq!(
            sanitize_error_code("aws.protocoltests#FooError:http://x/#y"),
            "FooError"
        );
    }

    #[test]
    fn error_code_precedence_header_then_code_then_type() {
        let body =
            br#"{"__type":"a#InvalidTokenException","code":"ExpiredTokenException","message":"m"}"#;
        let e = parse_error(
            400,
            &headers(&[("x-amzn-errortype", "ThrottlingException:x")]),
            body,
        );
        assert_eq!(e.code(), "ThrottlingException");
        let e = parse_error(400, &HeaderMap::new(), body);
        assert_eq!(e.code(), "ExpiredTokenException");
        assert_eq!(e.message(), "m");
        let e = parse_error(
            400,
            &HeaderMap::new(),
            br#"{"__type":"x#InvalidTokenException","Message":"M"}"#,
        );
        assert_eq!(e.error_code(), ErrorCode::InvalidTokenException);
        assert_eq!(e.message(), "M");
    }

    #[test]
    fn html_and_garbage_keep_the_status() {
        let e = parse_error(
            503,
            &HeaderMap::new(),
            b"<html><body>Service Unavailable</body></html>",
        );
        assert_eq!(e.error_code(), ErrorCode::Unhandled);
        assert_eq!(e.code(), "503");
        assert!(e.message().contains("HTTP 503"), "{}", e.message());
        assert!(e.message().contains("<html>"), "{}", e.message());
        let e = parse_error(500, &HeaderMap::new(), b"");
        assert!(e.message().contains("empty body"));
    }

    /// A server's message and code reach logs, exceptions and every dead-letter row: a
    /// hostile or broken one must not forge log lines or store megabytes per record (found
    /// by a review). Control characters become spaces; the message keeps its first 1,024
    /// characters, the code its first 128.
    #[test]
    fn a_servers_message_and_code_are_bounded_and_printable() {
        let long = format!("first line\nforged: line\r\t{}", "x".repeat(100_000));
        let body = serde_json::json!({ "__type": "ThrottlingException", "message": long });
        let e = parse_error(400, &HeaderMap::new(), body.to_string().as_bytes());
        assert_eq!(e.error_code(), ErrorCode::ThrottlingException);
        let shown: String = e.message().chars().take(40).collect();
        assert!(
            e.message().starts_with("first line forged: line"),
            "{shown}"
        );
        assert!(!e.message().chars().any(char::is_control));
        assert_eq!(e.message().chars().count(), 1025, "1,024 and an ellipsis");
        let code = format!("Weird\u{7}{}", "Y".repeat(10_000));
        let body = serde_json::json!({ "__type": code, "message": "m" });
        let e = parse_error(400, &HeaderMap::new(), body.to_string().as_bytes());
        assert_eq!(e.error_code(), ErrorCode::Unhandled);
        assert!(!e.code().chars().any(char::is_control));
        assert!(e.code().len() <= 128 * 4, "{}", e.code().len());
        assert_eq!(e.message(), "m");
    }

    #[test]
    fn truncated_success_is_invalid_response() {
        let e = parse_output::<BatchMeterUsageOutput>("BatchMeterUsage", br#"{"Results":[{"Meter"#)
            .unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidResponse);
        assert!(e.message().contains("BatchMeterUsage"));
        let ok = parse_output::<BatchMeterUsageOutput>("BatchMeterUsage", b"").unwrap();
        assert!(ok.results().is_empty());
    }

    /// A mistyped value is quoted whole in serde's error: a hostile server's 3 MB string
    /// made a 3 MB error message, logged by every meter flush.
    #[test]
    fn an_unreadable_success_is_reported_bounded() {
        let huge = "A".repeat(3 << 20);
        let body = format!(
            r#"{{"Results":[{{"UsageRecord":{{"Timestamp":1,"Dimension":"d","Quantity":"{huge}"}}}}]}}"#
        );
        let e =
            parse_output::<BatchMeterUsageOutput>("BatchMeterUsage", body.as_bytes()).unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidResponse);
        assert!(e.message().contains("invalid type"), "{}", e.message());
        assert!(e.message().contains("at line 1 column"), "{}", e.message());
        assert!(e.message().len() < 1500, "{} bytes", e.message().len());
    }

    #[test]
    fn success_that_is_not_utf8_is_invalid_response() {
        // A broken server or proxy: bytes that are not UTF-8 inside a string, and outside one.
        for body in [
            &b"{\"Results\":[{\"MeteringRecordId\":\"m-\xff\xfe\",\"Status\":\"Success\"}]}"[..],
            &b"{\"Results\":[]}\xc3"[..],
            &b"\xef\xbb\xbf{\"Results\":[]}"[..], // a byte-order mark is not JSON either
        ] {
            let e = parse_output::<BatchMeterUsageOutput>("BatchMeterUsage", body).unwrap_err();
            assert_eq!(e.error_code(), ErrorCode::InvalidResponse, "{body:?}");
            assert!(e.message().contains("could not be read"), "{}", e.message());
            assert!(std::error::Error::source(&e).is_some());
        }
        // A server past the 25-record limit: every result is still read, none dropped.
        let many = format!(
            "{{\"Results\":[{}],\"UnprocessedRecords\":[]}}",
            (0..40)
                .map(|i| format!("{{\"MeteringRecordId\":\"m-{i}\",\"Status\":\"Success\"}}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let ok = parse_output::<BatchMeterUsageOutput>("BatchMeterUsage", many.as_bytes()).unwrap();
        assert_eq!(ok.results().len(), 40);
        assert_eq!(ok.results()[39].metering_record_id(), Some("m-39"));
        assert!(ok.unprocessed_records().is_empty());
        // Escaped non-ASCII in strings is fine.
        let ok = parse_output::<BatchMeterUsageOutput>(
            "BatchMeterUsage",
            "{\"Results\":[{\"MeteringRecordId\":\"m-\\u00e9-é\"}]}".as_bytes(),
        )
        .unwrap();
        assert_eq!(ok.results()[0].metering_record_id(), Some("m-é-é"));
    }

    #[test]
    fn request_id_header() {
        assert_eq!(
            request_id(&headers(&[("x-amzn-requestid", "abc")])).as_deref(),
            Some("abc")
        );
        assert_eq!(request_id(&HeaderMap::new()), None);
    }
}
