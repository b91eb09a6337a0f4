// SPDX-License-Identifier: Apache-2.0
// Clock helpers: now, ISO-8601 basic format (20240102T030405Z) and HTTP dates.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Seconds since the epoch, as a float.
pub(crate) fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> i64 {
    now_f64().floor() as i64
}

/// Parses `YYYYMMDDTHHMMSSZ` into epoch seconds (`None` unless it names a real instant).
pub(crate) fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let month = Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(digits(0..4)? as i32, month, digits(6..8)? as u8).ok()?;
    let time = Time::from_hms(
        digits(9..11)? as u8,
        digits(11..13)? as u8,
        digits(13..15)? as u8,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Formats epoch seconds as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz_date(t: i64) -> String {
    let Ok(dt) = OffsetDateTime::from_unix_timestamp(t) else {
        return String::from("00000000T000000Z");
    };
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Formats epoch seconds as an HTTP date (`Wed, 02 Dec 2026 17:13:20 GMT`).
pub(crate) fn format_http_date(t: i64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    httpdate::fmt_http_date(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date() {
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(1_796_145_200),
            "Tue, 01 Dec 2026 17:13:20 GMT"
        );
    }

    #[test]
    fn round_trip() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(parse_amz_date("20150830T123600"), None);
        assert_eq!(parse_amz_date("2015083xT123600Z"), None);
        // Not a day of the calendar: refused, not rolled over into March.
        assert_eq!(parse_amz_date("20150230T000000Z"), None);
        assert_eq!(parse_amz_date("20150830T246000Z"), None);
        for t in [0, 951_782_400, 1_709_164_800, 4_102_444_799] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
    }
}
