// SPDX-License-Identifier: Apache-2.0
// SigV4 verification written from the specification (hmac + sha2), independent of aws-sigv4.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::Catalog;
use crate::error::ApiError;
use crate::time::{format_amz_date, parse_amz_date};

/// The SigV4 signing name of the service.
pub(crate) const SERVICE: &str = "aws-marketplace";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Derives the SigV4 signing key.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// HMAC-SHA256 helper shared with the RegisterUsage signer.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    hmac(key, data)
}

fn incomplete(msg: impl Into<String>) -> ApiError {
    ApiError::client("IncompleteSignatureException", msg)
}

fn invalid(status: u16, msg: impl Into<String>) -> ApiError {
    ApiError::new(status, "InvalidSignatureException", msg)
}

fn unrecognized() -> ApiError {
    ApiError::client(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

/// The parsed `Authorization` header.
struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signed_headers_raw: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, ApiError> {
    let whole = || format!("Authorization={value}");
    let rest = match value.strip_prefix(ALGORITHM) {
        Some(r) if r.starts_with(' ') => r,
        _ => {
            return Err(incomplete(format!(
                "Authorization header requires the '{ALGORITHM}' algorithm. {}",
                whole()
            )))
        }
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header requires each component to be of the form key=value. {}",
                whole()
            )));
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(format!("{} {}", missing.join(" "), whole())));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope.iter().any(|s| s.is_empty()) {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    }
    if scope[4] != "aws4_request" {
        return Err(invalid(
            403,
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
                scope[4]
            ),
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(incomplete(format!(
            "Signature must be 64 hexadecimal characters. {}",
            whole()
        )));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if signed_headers.iter().any(|h| h.is_empty()) {
        return Err(incomplete(format!(
            "SignedHeaders must be a semicolon-separated list of header names. {}",
            whole()
        )));
    }
    Ok(AuthHeader {
        access_key_id: scope[0],
        date: scope[1],
        region: scope[2],
        service: scope[3],
        signed_headers,
        signed_headers_raw: signed,
        signature,
    })
}

/// Appends a header value with surrounding whitespace trimmed and inner runs of spaces collapsed.
fn push_trimmed(out: &mut Vec<u8>, v: &[u8]) {
    let v = v.trim_ascii();
    let mut prev_space = false;
    for &c in v {
        if c == b' ' || c == b'\t' {
            if !prev_space {
                out.push(b' ');
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
}

/// The outcome of a verification: the access key id named by the request (if any) and the result.
pub(crate) struct Verified {
    pub access_key_id: Option<String>,
    pub result: Result<(), ApiError>,
}

/// Verifies a request's SigV4 signature against the configured identities.
pub(crate) fn verify(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    catalog: &Catalog,
    now: i64,
) -> Verified {
    let mut ak = None;
    let result = verify_inner(method, path, query, headers, body, catalog, now, &mut ak);
    Verified {
        access_key_id: ak,
        result,
    }
}

#[allow(clippy::too_many_arguments)]
fn verify_inner(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    catalog: &Catalog,
    now: i64,
    ak_out: &mut Option<String>,
) -> Result<(), ApiError> {
    let Some(auth) = headers.get(http::header::AUTHORIZATION) else {
        return Err(ApiError::client(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = auth
        .to_str()
        .map_err(|_| incomplete("Authorization header is not valid ASCII"))?;
    let parsed = parse_authorization(auth)?;
    *ak_out = Some(parsed.access_key_id.to_string());

    // Signed header requirements.
    let signed_has = |name: &str| parsed.signed_headers.contains(&name);
    if !signed_has("host") {
        return Err(incomplete(format!(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization. Authorization={auth}"
        )));
    }
    if !signed_has("x-amz-date") {
        return Err(incomplete(format!(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization. Authorization={auth}"
        )));
    }
    for name in &parsed.signed_headers {
        if *name != name.to_ascii_lowercase() {
            return Err(incomplete(format!(
                "SignedHeaders must be lowercase, got '{name}'. Authorization={auth}"
            )));
        }
        if !headers.contains_key(*name) {
            return Err(incomplete(format!(
                "Header '{name}' is listed in SignedHeaders but is not present in the request."
            )));
        }
    }
    let mut sorted = parsed.signed_headers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted != parsed.signed_headers {
        return Err(incomplete(format!(
            "SignedHeaders must be sorted and unique. Authorization={auth}"
        )));
    }

    // Date.
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(request_time) = parse_amz_date(amz_date) else {
        return Err(incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };

    // Identity.
    let Some(identity) = catalog.credentials.get(parsed.access_key_id) else {
        return Err(unrecognized());
    };
    let token = headers.get("x-amz-security-token");
    match (&identity.session_token, token) {
        (None, None) => {}
        (None, Some(_)) => return Err(unrecognized()),
        (Some(_), None) => return Err(unrecognized()),
        (Some(expected), Some(got)) => {
            if got.as_bytes() != expected.as_bytes() {
                return Err(unrecognized());
            }
            if !signed_has("x-amz-security-token") {
                return Err(incomplete(format!(
                    "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization. Authorization={auth}"
                )));
            }
        }
    }

    // Scope.
    if parsed.service != SERVICE {
        return Err(invalid(
            403,
            format!(
                "Credential should be scoped to correct service: '{SERVICE}'. Authorization={auth}"
            ),
        ));
    }
    if parsed.region != catalog.config.region {
        return Err(invalid(
            403,
            format!(
                "Credential should be scoped to a valid region, not '{}'. Expected '{}'.",
                parsed.region, catalog.config.region
            ),
        ));
    }
    if !amz_date.starts_with(parsed.date) || parsed.date.len() != 8 {
        return Err(invalid(
            403,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                parsed.date,
                amz_date.get(..8).unwrap_or(amz_date),
                "x-amz-date"
            ),
        ));
    }
    let skew = catalog.config.max_clock_skew_secs;
    if request_time < now - skew {
        return Err(invalid(
            400,
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - {} min.)",
                format_amz_date(now - skew),
                format_amz_date(now),
                skew / 60
            ),
        ));
    }
    if request_time > now + skew {
        return Err(invalid(
            400,
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + {} min.)",
                format_amz_date(now + skew),
                format_amz_date(now),
                skew / 60
            ),
        ));
    }

    // Canonical request.
    let body_hash = hex32(&Sha256::digest(body));
    if let Some(declared) = headers.get("x-amz-content-sha256") {
        if declared.as_bytes() != body_hash.as_bytes() {
            return Err(invalid(
                400,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }
    let mut canonical = Vec::with_capacity(512);
    canonical.extend_from_slice(method.as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(path.as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(canonical_query(query).as_bytes());
    canonical.push(b'\n');
    for name in &parsed.signed_headers {
        canonical.extend_from_slice(name.as_bytes());
        canonical.push(b':');
        for (i, v) in headers.get_all(*name).iter().enumerate() {
            if i > 0 {
                canonical.push(b',');
            }
            push_trimmed(&mut canonical, v.as_bytes());
        }
        canonical.push(b'\n');
    }
    canonical.push(b'\n');
    canonical.extend_from_slice(parsed.signed_headers_raw.as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(body_hash.as_bytes());

    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        parsed.date,
        parsed.region,
        parsed.service,
        hex32(&Sha256::digest(&canonical))
    );
    let key = signing_key(
        &identity.secret_access_key,
        parsed.date,
        parsed.region,
        parsed.service,
    );
    let expected = hex32(&hmac(&key, string_to_sign.as_bytes()));
    let provided = parsed.signature.to_ascii_lowercase();
    if !constant_time_eq(expected.as_bytes(), provided.as_bytes()) {
        return Err(invalid(
            403,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    // A session past its end, signed right: what the service answers an expired STS session.
    if identity.expires_at.is_some_and(|end| now >= end) {
        return Err(ApiError::client(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    Ok(())
}

/// Lowercase hex of a SHA-256 sized value, without a per-character iterator.
fn hex32(bytes: &[u8]) -> String {
    let mut buf = [0u8; 64];
    if bytes.len() == 32 && hex::encode_to_slice(bytes, &mut buf).is_ok() {
        return String::from_utf8_lossy(&buf).into_owned();
    }
    hex::encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Canonical query string: parameters sorted by name then value (values taken as sent,
/// already URI-encoded). The service itself takes no query parameters.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_documented_signing_key() {
        // From the SigV4 documentation example (iam, us-east-1, 20150830).
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn trims_and_collapses() {
        let mut out = Vec::new();
        push_trimmed(&mut out, b"  a   b\tc  ");
        assert_eq!(out, b"a b c");
    }
}
