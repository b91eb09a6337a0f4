// SPDX-License-Identifier: Apache-2.0
// A direct reader of the BatchMeterUsage response as the service writes it.

//! The `BatchMeterUsage` response is the one body a call reads that is large: 25 results,
//! each echoing its record, about 4.5 kB. serde_json's derived visitors took about 10 µs of
//! it, a sixth of a call's CPU with calls in flight, much of it moving each result whole
//! through the layers of visitors.
//!
//! This reader takes only the shape the service writes: the known members in any order,
//! `null` where serde reads a missing value, strings without escapes or control
//! characters, integers. It returns `None` at anything else (an escape, an unknown or repeated
//! member, a fraction, a leading zero, a truncated body), and the caller then reads the body
//! with serde_json, which decides what it means or why it is refused. So a body it reads
//! gives exactly what serde_json gives, which the tests check over every prefix and thousands
//! of mutations of real bodies.

use compact_str::CompactString;

use super::BatchMeterUsageOutput;
use crate::primitives::DateTime;
use crate::types::{Tag, UsageAllocation, UsageRecord, UsageRecordResult, UsageRecordResultStatus};
use crate::validate::MAX_USAGE_RECORDS;

/// Where a string's text ends: the index of the first `"`, `\` or control character in `b`.
/// Looked for 8 bytes at a time (a quarter of the reader's time went to a byte-by-byte
/// search): for each byte of a word, the high bit of `x - 0x01` and not `x` is set where `x` is
/// zero, here where the byte equals `"` or `\` (`x` is the byte xor it), and `w - 0x20` and not
/// `w` where the byte is below 0x20. A borrow only carries upward, so the lowest bit set is the
/// first such byte.
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w)
            & HIGH;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = words.remainder();
    rest.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// Reads `text` if it has only the shape above; `None` leaves it to serde_json.
pub(crate) fn read(text: &str) -> Option<BatchMeterUsageOutput> {
    let mut r = Reader {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    let mut out = BatchMeterUsageOutput::default();
    r.object(&["Results", "UnprocessedRecords"], |r, key| {
        match key {
            "Results" => {
                out.results = r.list(MAX_USAGE_RECORDS, Reader::result)?;
            }
            "UnprocessedRecords" => {
                out.unprocessed_records = r.list(MAX_USAGE_RECORDS, Reader::record)?;
            }
            _ => return None,
        }
        Some(())
    })?;
    r.ws();
    (r.i == r.b.len()).then_some(out)
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    /// JSON's whitespace, as serde_json skips it.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn null(&mut self) -> bool {
        self.ws();
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A string serde_json would borrow as written: no escape, no control character.
    fn string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let len = string_end(&self.b[start..])?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        // Both ends are next to an ASCII quote, so on character boundaries.
        self.s.get(start..start + len)
    }

    /// `null` (a missing value to serde) or a string.
    fn optional_string(&mut self) -> Option<Option<&'a str>> {
        if self.null() {
            Some(None)
        } else {
            self.string().map(Some)
        }
    }

    fn optional_compact(&mut self) -> Option<Option<CompactString>> {
        self.optional_string().map(|s| s.map(CompactString::from))
    }

    /// An integer as serde_json reads one: no leading zero, no fraction or exponent (serde
    /// reads those as floats), no `-0` (a float to serde_json too), at most 18 digits.
    fn integer(&mut self) -> Option<i64> {
        self.ws();
        let negative = self.b.get(self.i) == Some(&b'-');
        let start = self.i + usize::from(negative);
        let digits = self.b[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let leading_zero = self.b.get(start) == Some(&b'0');
        if digits == 0 || digits > 18 || (leading_zero && (digits > 1 || negative)) {
            return None;
        }
        let end = start + digits;
        if let Some(b'.' | b'e' | b'E') = self.b.get(end) {
            return None;
        }
        let magnitude = self.b[start..end]
            .iter()
            .fold(0i64, |n, c| n * 10 + i64::from(c - b'0'));
        self.i = end;
        Some(if negative { -magnitude } else { magnitude })
    }

    fn int32(&mut self) -> Option<i32> {
        i32::try_from(self.integer()?).ok()
    }

    /// `{ "key": value, ... }` with members among `keys`, each at most once (serde refuses a
    /// repeated one), each read by `member`, which must consume the value.
    fn object(
        &mut self,
        keys: &[&'static str],
        mut member: impl FnMut(&mut Self, &'static str) -> Option<()>,
    ) -> Option<()> {
        let mut seen = 0u8;
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            let index = keys.iter().position(|k| *k == key)?;
            if seen & (1 << index) != 0 || !self.eat(b':') {
                return None;
            }
            seen |= 1 << index;
            member(self, keys[index])?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// `[ item, ... ]`, with room for `room` items at the first (a whole batch for results,
    /// as the serde path makes).
    fn list<T>(
        &mut self,
        room: usize,
        mut item: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut out = Vec::new();
        if self.eat(b']') {
            return Some(out);
        }
        out.reserve_exact(room);
        loop {
            out.push(item(self)?);
            if self.eat(b']') {
                return Some(out);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn result(&mut self) -> Option<UsageRecordResult> {
        let mut out = UsageRecordResult {
            usage_record: None,
            metering_record_id: None,
            status: None,
        };
        self.object(&["MeteringRecordId", "Status", "UsageRecord"], |r, key| {
            match key {
                "MeteringRecordId" => {
                    out.metering_record_id = r.optional_compact()?;
                }
                "Status" => {
                    out.status = r.optional_string()?.map(UsageRecordResultStatus::from);
                }
                "UsageRecord" => {
                    out.usage_record = if r.null() { None } else { Some(r.record()?) };
                }
                _ => return None,
            }
            Some(())
        })?;
        Some(out)
    }

    fn record(&mut self) -> Option<UsageRecord> {
        let mut timestamp = None;
        let mut dimension = None;
        let mut out = UsageRecord {
            timestamp: DateTime::from_secs(0),
            customer_identifier: None,
            dimension: CompactString::default(),
            quantity: None,
            usage_allocations: None,
            customer_aws_account_id: None,
            license_arn: None,
        };
        self.object(UsageRecord::MEMBERS, |r, key| {
            match key {
                "Timestamp" => {
                    timestamp = Some(DateTime::from_secs(r.integer()?));
                }
                "CustomerIdentifier" => {
                    out.customer_identifier = r.optional_compact()?;
                }
                "Dimension" => {
                    dimension = Some(CompactString::from(r.string()?));
                }
                "Quantity" => {
                    out.quantity = if r.null() { None } else { Some(r.int32()?) };
                }
                "UsageAllocations" => {
                    out.usage_allocations = if r.null() {
                        None
                    } else {
                        Some(r.list(0, Reader::allocation)?)
                    };
                }
                "CustomerAWSAccountId" => {
                    out.customer_aws_account_id = r.optional_compact()?;
                }
                "LicenseArn" => {
                    out.license_arn = r.optional_compact()?;
                }
                _ => return None,
            }
            Some(())
        })?;
        out.timestamp = timestamp?;
        out.dimension = dimension?;
        Some(out)
    }

    fn allocation(&mut self) -> Option<UsageAllocation> {
        let mut quantity = None;
        let mut tags = None;
        self.object(&["AllocatedUsageQuantity", "Tags"], |r, key| {
            match key {
                "AllocatedUsageQuantity" => {
                    quantity = Some(r.int32()?);
                }
                "Tags" => {
                    tags = if r.null() {
                        None
                    } else {
                        Some(r.list(0, Reader::tag)?)
                    };
                }
                _ => return None,
            }
            Some(())
        })?;
        Some(UsageAllocation {
            allocated_usage_quantity: quantity?,
            tags,
        })
    }

    fn tag(&mut self) -> Option<Tag> {
        let (mut key, mut value) = (None, None);
        self.object(&["Key", "Value"], |r, member| {
            match member {
                "Key" => {
                    key = Some(CompactString::from(r.string()?));
                }
                "Value" => {
                    value = Some(CompactString::from(r.string()?));
                }
                _ => return None,
            }
            Some(())
        })?;
        Some(Tag {
            key: key?,
            value: value?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json makes of `text`, and whether the reader took it; when the reader
    /// takes a body, its output must be serde_json's.
    fn agree(text: &str) -> bool {
        let serde = serde_json::from_str::<BatchMeterUsageOutput>(text);
        match read(text) {
            Some(direct) => {
                let serde = serde.unwrap_or_else(|e| panic!("read {text:?}, serde refused: {e}"));
                assert_eq!(direct, serde, "{text}");
                true
            }
            None => false,
        }
    }

    fn result(i: usize, record: &str) -> String {
        format!(
            r#"{{"MeteringRecordId":"{:08x}-067a-54d8-b964-5c7ff2716bc8","Status":"Success","UsageRecord":{record}}}"#,
            i * 7919
        )
    }

    /// Bodies in the shapes the service and the emulator write.
    fn bodies() -> Vec<String> {
        let plain = |i: usize| {
            format!(
                r#"{{"CustomerIdentifier":"c-{i}","Dimension":"users","Quantity":{i},"Timestamp":1767225600}}"#
            )
        };
        let batch = (0..25)
            .map(|i| result(i, &plain(i)))
            .collect::<Vec<_>>()
            .join(",");
        let tagged = r#"{"Timestamp":-86400,"LicenseArn":"arn:aws:license-manager::123456789012:license:l-0123456789abcdef0123456789abcdef","CustomerAWSAccountId":"123456789012","Dimension":"é😀-gb","Quantity":2147483647,"UsageAllocations":[{"AllocatedUsageQuantity":3,"Tags":[{"Key":"k","Value":"v"},{"Value":"","Key":"ünïcode"}]},{"AllocatedUsageQuantity":-1},{"AllocatedUsageQuantity":0,"Tags":[]},{"Tags":null,"AllocatedUsageQuantity":4}]}"#;
        let odd = [
            r#"{"MeteringRecordId":null,"Status":null,"UsageRecord":null}"#,
            r#"{}"#,
            r#"{"Status":"Throttled","MeteringRecordId":""}"#,
            r#"{"UsageRecord":{"Dimension":"d","Timestamp":0,"Quantity":null,"CustomerIdentifier":null,"UsageAllocations":null,"LicenseArn":null,"CustomerAWSAccountId":null}}"#,
        ]
        .join(",");
        let mut out = vec![
            format!(r#"{{"Results":[{batch}],"UnprocessedRecords":[]}}"#),
            format!(
                r#"{{"UnprocessedRecords":[{}],"Results":[{}]}}"#,
                plain(3),
                result(1, tagged)
            ),
            format!(r#"{{"Results":[{odd}]}}"#),
            "{}".into(),
            r#"{"Results":[]}"#.into(),
            format!(
                r#"{{"Results":[],"UnprocessedRecords":[{}, {tagged}]}}"#,
                plain(0)
            ),
        ];
        let pretty: Vec<String> = out
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_str(b).unwrap();
                format!(" \r\n\t{}\n", serde_json::to_string_pretty(&v).unwrap())
            })
            .collect();
        out.extend(pretty);
        out
    }

    #[test]
    fn a_string_ends_where_a_byte_by_byte_search_says() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        // Bytes around each boundary: the three that end a string, their neighbours, UTF-8.
        let alphabet = [
            0x00, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x61, 0x7f, 0x80,
        ];
        let more = [0xa2, 0xdc, 0xe0, 0xff];
        let mut rng = fastrand::Rng::with_seed(20);
        for n in 0..20_000 {
            let len = n % 40;
            let b: Vec<u8> = (0..len)
                .map(|_| match rng.u8(0..4) {
                    0 => alphabet[rng.usize(..alphabet.len())],
                    1 => more[rng.usize(..more.len())],
                    _ => b'a' + rng.u8(0..26),
                })
                .collect();
            assert_eq!(string_end(&b), naive(&b), "{b:?}");
        }
        for stop in [b'"', b'\\', 0, 0x1f] {
            for at in 0..24 {
                let mut b = vec![b'x'; 24];
                b[at] = stop;
                assert_eq!(string_end(&b), Some(at));
            }
        }
        assert_eq!(string_end(b"no end in sight"), None);
    }

    #[test]
    fn takes_what_the_service_writes_and_reads_it_as_serde_does() {
        for body in bodies() {
            assert!(agree(&body), "not read directly: {body}");
        }
    }

    /// A list written as `null` (a Java serializer, a proxy that writes every member) is an
    /// empty list, as the AWS SDKs read it. It failed the whole answer as `InvalidResponse`:
    /// the call was retried and failed, and the meter never settled what the service billed.
    #[test]
    fn a_null_list_reads_as_empty() {
        let rec = r#"{"Dimension":"d","Timestamp":1,"CustomerIdentifier":"c","Quantity":1}"#;
        let body = format!(
            r#"{{"Results":[{}],"UnprocessedRecords":null}}"#,
            result(0, rec)
        );
        let out: BatchMeterUsageOutput =
            crate::wire::parse_output("BatchMeterUsage", body.as_bytes()).unwrap();
        assert_eq!((out.results.len(), out.unprocessed_records.len()), (1, 0));
        let body = format!(r#"{{"Results":null,"UnprocessedRecords":[{rec}]}}"#);
        let out: BatchMeterUsageOutput =
            crate::wire::parse_output("BatchMeterUsage", body.as_bytes()).unwrap();
        assert_eq!((out.results.len(), out.unprocessed_records.len()), (0, 1));
    }

    /// Whatever the reader does not take exactly as serde_json reads it, it leaves to serde:
    /// escapes, unknown and repeated members, numbers serde reads as floats or refuses, values
    /// of the wrong type, trailing text.
    #[test]
    fn leaves_every_other_shape_to_serde() {
        let r = |record: &str| format!(r#"{{"Results":[{}]}}"#, result(0, record));
        let left = [
            r#"{"Results":[{"Status":"Succ\u0065ss"}]}"#.to_string(),
            r#"{"Results":[{"Status":"a\nb"}]}"#.into(),
            r#"{"Result\u0073":[]}"#.into(),
            r#"{"Results":[],"Results":[]}"#.into(),
            r#"{"Results":[{"Status":"Success","Status":"Success"}]}"#.into(),
            r#"{"Results":[],"Other":1}"#.into(),
            r#"{"Results":null}"#.into(),
            r#"{"Results":[],}"#.into(),
            r#"{"Results":[]} x"#.into(),
            r#"{"Results":[]}{}"#.into(),
            "\u{FEFF}{}".into(),
            r#"{"Results":[{"Extra":1}]}"#.into(),
            r#"{"Results":[{"Status":1}]}"#.into(),
            r#"{"Results":[1]}"#.into(),
            r#"{"Results":[{},]}"#.into(),
            r#"{"Results":[{} {}]}"#.into(),
            r#"{"Results":[{"Status":nul}]}"#.into(),
            r#"{"Results":[{"Status":nullx}]}"#.into(),
            r#"{"Results":[{"Status":"Success"}"#.into(),
            r#"[]"#.into(),
            r#""#.into(),
            r(r#"{"Dimension":"d","Timestamp":1767225600.0}"#),
            r(r#"{"Dimension":"d","Timestamp":1767225600.5}"#),
            r(r#"{"Dimension":"d","Timestamp":1.7E9}"#),
            r(r#"{"Dimension":"d","Timestamp":1e9}"#),
            r(r#"{"Dimension":"d","Timestamp":-0}"#),
            r(r#"{"Dimension":"d","Timestamp":01}"#),
            r(r#"{"Dimension":"d","Timestamp":-}"#),
            r(r#"{"Dimension":"d","Timestamp":"1"}"#),
            r(r#"{"Dimension":"d","Timestamp":1234567890123456789}"#),
            r(r#"{"Dimension":"d","Timestamp":99999999999999999999999}"#),
            r(r#"{"Dimension":"d","Timestamp":null}"#),
            r(r#"{"Dimension":"d"}"#),
            r(r#"{"Timestamp":1}"#),
            r(r#"{"Dimension":null,"Timestamp":1}"#),
            r(r#"{"Dimension":"d","Timestamp":1,"Quantity":2147483648}"#),
            r(r#"{"Dimension":"d","Timestamp":1,"Quantity":-2147483649}"#),
            r(r#"{"Dimension":"d","Timestamp":1,"Quantity":1.0}"#),
            r(r#"{"Dimension":"d","Timestamp":1,"UsageAllocations":[{}]}"#),
            r(
                r#"{"Dimension":"d","Timestamp":1,"UsageAllocations":[{"AllocatedUsageQuantity":1,"Tags":[{"Key":"k"}]}]}"#,
            ),
            r(
                r#"{"Dimension":"d","Timestamp":1,"UsageAllocations":[{"AllocatedUsageQuantity":1,"Tags":[{"Key":"k","Value":null}]}]}"#,
            ),
            r(
                r#"{"Dimension":"d","Timestamp":1,"UsageAllocations":[{"AllocatedUsageQuantity":null}]}"#,
            ),
            r(r#"{"Dimension":"d","Timestamp":1,"Dimension":"d"}"#),
        ];
        for body in left {
            assert!(!agree(&body), "read directly: {body}");
        }
    }

    /// Every prefix of each body, and thousands of single-byte changes, insertions and
    /// deletions: where the reader takes the result, it is serde_json's.
    #[test]
    fn agrees_with_serde_on_every_prefix_and_mutation() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"\"\\,:{}[]0123456789-+.eEnul tr\n\t\x01xa";
        let (mut taken, mut left) = (0, 0);
        for body in bodies() {
            for end in (0..body.len()).filter(|&e| body.is_char_boundary(e)) {
                if agree(&body[..end]) {
                    taken += 1;
                }
            }
            let ascii: Vec<usize> = (0..body.len())
                .filter(|&i| body.as_bytes()[i].is_ascii())
                .collect();
            for _ in 0..3000 {
                let mut bytes = body.clone().into_bytes();
                let at = ascii[next() as usize % ascii.len()];
                let c = alphabet[next() as usize % alphabet.len()];
                match next() % 3 {
                    0 => bytes[at] = c,
                    1 => bytes.insert(at, c),
                    _ => {
                        bytes.remove(at);
                    }
                }
                let text = String::from_utf8(bytes).expect("ASCII edits keep UTF-8");
                if agree(&text) {
                    taken += 1;
                } else {
                    left += 1;
                }
            }
        }
        // Both sides of the split are exercised: some edits keep the shape (a digit for a
        // digit, a blank), most leave it.
        assert!(taken > 1000 && left > 10_000, "taken {taken}, left {left}");
    }
}
