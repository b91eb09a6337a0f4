// SPDX-License-Identifier: Apache-2.0
// SigV4 for the one request shape this client sends, with aws-sigv4's key and signature.

//! Every call is a `POST /` with no query and the same five or six headers. aws-sigv4's
//! general signer canonicalizes any request: it copies every header into a map of its own,
//! lower-cases and normalizes each name and value, formats the canonical request and the
//! string to sign through `Display`, and derives the signing key (four HMACs) again at every
//! call: about 75 allocations and a ninth of a call's CPU with calls in flight.
//!
//! [`sign`] writes the canonical request of that one shape straight into a buffer, and keeps
//! the signing key for the day, the region and the secret on the calling thread. The key
//! and the signature are aws-sigv4's own (`generate_signing_key`, `calculate_signature`).
//! Anything else (a path or query on the endpoint, a user name in it, a session token that
//! is not plain visible ASCII, a time outside years 1970–9999) returns `None`, and the caller
//! signs with aws-sigv4's general signer. The tests check that both give the same headers.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sigv4::sign::v4;
use aws_smithy_types::date_time::{DateTime, Format};
use sha2::{Digest, Sha256};

/// What a signature adds to the request.
pub(super) struct Signed {
    pub(super) authorization: String,
    pub(super) date_time: String,
}

/// The signed headers of the request besides `host`, `x-amz-date` and the session token,
/// in their canonical order: `amz-sdk-invocation-id`, `content-type`, `x-amz-target`.
pub(super) struct Headers<'a> {
    pub(super) invocation_id: &'a str,
    pub(super) content_type: &'a str,
    pub(super) target: &'a str,
}

/// A signing key, kept for the calls of one thread while its day, region, service and secret
/// hold.
struct Key {
    secret: String,
    day: [u8; 8],
    region: String,
    service: String,
    key: [u8; 32],
}

thread_local! {
    static KEY: RefCell<Option<Key>> = const { RefCell::new(None) };
}

/// Signs a `POST` of `body` to `url` (see the module's doc); `None` when the request is not
/// of the one shape this signs.
pub(super) fn sign(
    url: &reqwest::Url,
    region: &str,
    service: &str,
    creds: &aws_credential_types::Credentials,
    time: SystemTime,
    headers: &Headers<'_>,
    body: &[u8],
) -> Option<Signed> {
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    // Values aws-sigv4 would not change: no space to trim or fold, nothing to escape.
    let visible = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
    let token = creds.session_token();
    if !token.is_none_or(visible)
        || ![headers.invocation_id, headers.content_type, headers.target]
            .into_iter()
            .all(visible)
    {
        return None;
    }
    let host = url.host_str()?;
    let date_time = date_time(time)?;
    let day = &date_time[..8];

    let mut creq = String::with_capacity(512);
    creq.push_str("POST\n/\n\namz-sdk-invocation-id:");
    creq.push_str(headers.invocation_id);
    creq.push_str("\ncontent-type:");
    creq.push_str(headers.content_type);
    creq.push_str("\nhost:");
    creq.push_str(host);
    if let Some(port) = url.port() {
        let _ = write!(creq, ":{port}");
    }
    creq.push_str("\nx-amz-date:");
    creq.push_str(&date_time);
    if let Some(t) = token {
        creq.push_str("\nx-amz-security-token:");
        creq.push_str(t);
    }
    creq.push_str("\nx-amz-target:");
    creq.push_str(headers.target);
    let signed_headers = if token.is_some() {
        "amz-sdk-invocation-id;content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
    } else {
        "amz-sdk-invocation-id;content-type;host;x-amz-date;x-amz-target"
    };
    creq.push_str("\n\n");
    creq.push_str(signed_headers);
    creq.push('\n');
    push_hex(&mut creq, &Sha256::digest(body));

    let mut scope = String::with_capacity(64);
    let _ = write!(scope, "{day}/{region}/{service}/aws4_request");
    let mut to_sign = String::with_capacity(160);
    to_sign.push_str("AWS4-HMAC-SHA256\n");
    to_sign.push_str(&date_time);
    to_sign.push('\n');
    to_sign.push_str(&scope);
    to_sign.push('\n');
    push_hex(&mut to_sign, &Sha256::digest(creq.as_bytes()));

    let secret = creds.secret_access_key();
    let signature = KEY.with(|cell| {
        let mut cached = cell.borrow_mut();
        let fresh = cached.as_ref().is_some_and(|k| {
            k.day.as_slice() == day.as_bytes()
                && k.region == region
                && k.service == service
                && k.secret == secret
        });
        if !fresh {
            let key = v4::generate_signing_key(secret, time, region, service);
            let mut k = [0u8; 32];
            k.copy_from_slice(key.as_ref());
            let mut d = [0u8; 8];
            d.copy_from_slice(day.as_bytes());
            *cached = Some(Key {
                secret: secret.to_owned(),
                day: d,
                region: region.to_owned(),
                service: service.to_owned(),
                key: k,
            });
        }
        let key = cached.as_ref().map(|k| k.key).unwrap_or_default();
        v4::calculate_signature(key, to_sign.as_bytes())
    });

    let mut authorization = String::with_capacity(256);
    let _ = write!(
        authorization,
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id()
    );
    Some(Signed {
        authorization,
        date_time,
    })
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC, as aws-sigv4 writes it (whole seconds); `None` before 1970 or
/// after 9999.
fn date_time(time: SystemTime) -> Option<String> {
    let secs = i64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    // `2026-12-31T23:59:59Z` → `20261231T235959Z`.
    let text = DateTime::from_secs(secs).fmt(Format::DateTime).ok()?;
    let compact: String = text.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    (compact.len() == 16).then_some(compact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    use aws_smithy_runtime_api::client::identity::Identity;
    use std::time::Duration;

    /// aws-sigv4's general signer, as the client called it before: its headers by name.
    fn reference(
        url: &str,
        (region, service): (&str, &str),
        creds: &aws_credential_types::Credentials,
        time: SystemTime,
        h: &Headers<'_>,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let identity: Identity = creds.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("content-type", h.content_type),
            ("x-amz-target", h.target),
            ("amz-sdk-invocation-id", h.invocation_id),
        ];
        let signable =
            SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
                .unwrap();
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
            .unwrap()
            .into_parts();
        let mut out: Vec<(String, String)> = instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        out.sort();
        out
    }

    fn ours(s: &Signed, creds: &aws_credential_types::Credentials) -> Vec<(String, String)> {
        let mut out = vec![
            ("authorization".to_owned(), s.authorization.clone()),
            ("x-amz-date".to_owned(), s.date_time.clone()),
        ];
        if let Some(t) = creds.session_token() {
            out.push(("x-amz-security-token".to_owned(), t.to_owned()));
        }
        out.sort();
        out
    }

    fn keys(akid: &str, secret: &str, token: Option<String>) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(akid, secret, token, None, "test")
    }

    #[test]
    fn signs_as_aws_sigv4_does() {
        let urls = [
            "http://127.0.0.1:41999/",
            "https://metering.marketplace.us-east-1.amazonaws.com/",
            "https://metering.marketplace.us-east-1.amazonaws.com:443/",
            "http://example.com:80/",
            "https://metering-marketplace-fips.us-gov-west-1.amazonaws.com:8443",
            "http://[::1]:9000/",
            "http://LOCALHOST:9000/",
        ];
        let creds = [
            keys("AKIDEXAMPLE", "secret/key+1", None),
            keys(
                "ASIAEXAMPLE",
                "another",
                Some("IQoJb3JpZ2luX2VjE/token+with=chars".to_owned()),
            ),
        ];
        let times = [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_secs(951_782_400), // 2000-02-29
            UNIX_EPOCH + Duration::from_millis(1_798_761_599_999), // 2026-12-31 23:59:59.999
            UNIX_EPOCH + Duration::from_secs(4_107_542_400), // 2100-03-01
            UNIX_EPOCH + Duration::from_secs(253_402_300_799), // 9999-12-31 23:59:59
        ];
        let headers = Headers {
            invocation_id: "c7a1f1c2-4a8e-4c1e-9e0b-0f5b6b6f2c11",
            content_type: "application/x-amz-json-1.1",
            target: "AWSMPMeteringService.BatchMeterUsage",
        };
        let mut n = 0;
        for url in urls {
            let parsed = reqwest::Url::parse(url).unwrap();
            for c in &creds {
                for t in times {
                    for region in ["us-east-1", "eu-west-2"] {
                        for body in [&b"{}"[..], br#"{"ProductCode":"p","UsageRecords":[]}"#] {
                            let s = sign(&parsed, region, "aws-marketplace", c, t, &headers, body)
                                .unwrap_or_else(|| panic!("{url} {t:?}: not signed"));
                            assert_eq!(
                                ours(&s, c),
                                reference(
                                    parsed.as_str(),
                                    (region, "aws-marketplace"),
                                    c,
                                    t,
                                    &headers,
                                    body
                                ),
                                "{url} {region} {t:?}"
                            );
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 7 * 2 * 5 * 2 * 2);
    }

    #[test]
    fn other_shapes_are_left_to_the_general_signer() {
        let creds = keys("AKID", "secret", None);
        let h = Headers {
            invocation_id: "id",
            content_type: "application/x-amz-json-1.1",
            target: "T",
        };
        let now = SystemTime::now();
        for url in [
            "https://host/prefix/",
            "https://host/?a=b",
            "https://host/#f",
            "https://user:pw@host/",
        ] {
            let u = reqwest::Url::parse(url).unwrap();
            assert!(
                sign(&u, "us-east-1", "s", &creds, now, &h, b"{}").is_none(),
                "{url}"
            );
        }
        let u = reqwest::Url::parse("https://host/").unwrap();
        for token in ["", "with space", "tab\t", "é"] {
            let c = keys("AKID", "secret", Some(token.to_owned()));
            assert!(
                sign(&u, "us-east-1", "s", &c, now, &h, b"{}").is_none(),
                "{token:?}"
            );
        }
        let spaced = Headers {
            invocation_id: " id",
            ..h
        };
        assert!(sign(&u, "us-east-1", "s", &creds, now, &spaced, b"{}").is_none());
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(sign(&u, "us-east-1", "s", &creds, before, &h, b"{}").is_none());
        let after = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(sign(&u, "us-east-1", "s", &creds, after, &h, b"{}").is_none());
    }

    #[test]
    fn the_kept_key_follows_the_day_the_region_and_the_secret() {
        let u = reqwest::Url::parse("https://host/").unwrap();
        let h = Headers {
            invocation_id: "id",
            content_type: "application/x-amz-json-1.1",
            target: "T",
        };
        let day = UNIX_EPOCH + Duration::from_secs(1_798_675_200); // 2026-12-31
        let next = day + Duration::from_secs(86_400);
        let cases = [
            ("AKID", "one", "us-east-1", day),
            ("AKID", "one", "us-east-1", next - Duration::from_secs(1)),
            ("AKID", "one", "us-east-1", next),
            ("AKID", "one", "eu-west-1", next),
            ("AKID", "two", "eu-west-1", next),
            ("AKID2", "two", "eu-west-1", next),
        ];
        for (akid, secret, region, t) in cases {
            let c = keys(akid, secret, None);
            let s = sign(&u, region, "svc", &c, t, &h, b"{}").unwrap();
            let mut want = reference(u.as_str(), (region, "svc"), &c, t, &h, b"{}");
            want.retain(|(k, _)| k == "authorization");
            assert_eq!(s.authorization, want[0].1, "{akid} {secret} {region} {t:?}");
        }
    }
}
