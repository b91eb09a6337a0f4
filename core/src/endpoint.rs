// SPDX-License-Identifier: Apache-2.0
// Endpoint resolution from the service's endpoint rule set.

//! Endpoint resolution, following `meteringmarketplace-2016-01-14.endpoint-rule-set-1.json`.
//!
//! The rule set is small, so its tree is written out by hand in [`resolve_endpoint`] instead of
//! being interpreted by a generic rules engine; each branch quotes the rule it implements, in
//! the rule set's order (the first rule that matches wins). The one library function the rule
//! set calls, `aws.partition`, is implemented here with a built-in copy of the AWS SDKs'
//! `partitions.json` (version 1.1).
//!
//! Two checks are added on top of the rule set, both for inputs the rule set would turn into a
//! broken URL rather than an error:
//!
//! * the `Region` must be a valid host label (`isValidHostLabel(Region, false)`: 1 to 63 ASCII
//!   letters, digits and hyphens, not starting with a hyphen), since it is spliced into the
//!   host name;
//! * a custom `Endpoint` must be an absolute `http://` or `https://` URL with a host.

use crate::Error;

/// The rule set's parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointParams<'a> {
    /// `Region`.
    pub region: Option<&'a str>,
    /// `UseFIPS`.
    pub use_fips: bool,
    /// `UseDualStack`.
    pub use_dual_stack: bool,
    /// `Endpoint` (a custom URL).
    pub endpoint: Option<&'a str>,
}

/// Resolves the endpoint URL (no trailing slash), or an [`crate::ErrorCode::InvalidConfig`] error.
///
/// Error messages are the rule set's own (`"Invalid Configuration: Missing Region"`, …) for the
/// rule set's errors.
#[allow(clippy::result_large_err)] // `Error` is the crate-wide error; its size is error.rs's concern
pub fn resolve_endpoint(p: &EndpointParams<'_>) -> Result<String, Error> {
    resolve_with(p, partition)
}

/// The rule tree, with `aws.partition` passed in so tests can use partitions lacking FIPS or
/// dual-stack support (every partition of the built-in table supports both).
#[allow(clippy::result_large_err)]
fn resolve_with(
    p: &EndpointParams<'_>,
    partition_of: impl Fn(&str) -> &'static Partition,
) -> Result<String, Error> {
    // Rule 1: isSet(Endpoint).
    if let Some(endpoint) = p.endpoint {
        if p.use_fips {
            return Err(Error::invalid_config(
                "Invalid Configuration: FIPS and custom endpoint are not supported",
            ));
        }
        if p.use_dual_stack {
            return Err(Error::invalid_config(
                "Invalid Configuration: Dualstack and custom endpoint are not supported",
            ));
        }
        if let Err(why) = check_custom_endpoint(endpoint) {
            return Err(Error::invalid_config(format!(
                "Invalid Configuration: custom endpoint {:?} is not an http(s) URL: {why}",
                redact_userinfo(endpoint)
            )));
        }
        return Ok(endpoint.trim_end_matches('/').to_owned());
    }

    // Rule 2: isSet(Region), else the "Missing Region" error.
    let Some(region) = p.region else {
        return Err(Error::invalid_config(
            "Invalid Configuration: Missing Region",
        ));
    };
    if !is_valid_host_label(region) {
        return Err(Error::invalid_config(format!(
            "Invalid Configuration: Region {region:?} is not a valid host label \
             (1 to 63 letters, digits and hyphens, not starting with a hyphen)"
        )));
    }

    // aws.partition(Region) -> PartitionResult (it always yields one: unknown regions fall
    // back to the aws partition).
    let pr = partition_of(region);
    let (fips, dual) = (p.use_fips, p.use_dual_stack);

    // Rules 2.1-2.3: aws, aws-cn and aws-us-gov dual-stack (without FIPS) use a hyphenated host.
    if matches!(pr.name, "aws" | "aws-cn" | "aws-us-gov") && !fips && dual {
        return Ok(format!(
            "https://metering-marketplace.{region}.{}",
            pr.dual_stack_dns_suffix
        ));
    }
    // Rule 2.4: aws-eusc without FIPS or dual-stack uses a hyphenated host on amazonaws.eu.
    if pr.name == "aws-eusc" && !fips && !dual {
        return Ok(format!(
            "https://metering-marketplace.{region}.amazonaws.eu"
        ));
    }
    // Rule 2.5: FIPS and dual-stack.
    if fips && dual {
        if pr.supports_fips && pr.supports_dual_stack {
            return Ok(format!(
                "https://metering.marketplace-fips.{region}.{}",
                pr.dual_stack_dns_suffix
            ));
        }
        return Err(Error::invalid_config(
            "FIPS and DualStack are enabled, but this partition does not support one or both",
        ));
    }
    // Rule 2.6: FIPS only.
    if fips {
        if pr.supports_fips {
            return Ok(format!(
                "https://metering.marketplace-fips.{region}.{}",
                pr.dns_suffix
            ));
        }
        return Err(Error::invalid_config(
            "FIPS is enabled but this partition does not support FIPS",
        ));
    }
    // Rule 2.7: dual-stack only.
    if dual {
        if pr.supports_dual_stack {
            return Ok(format!(
                "https://metering.marketplace.{region}.{}",
                pr.dual_stack_dns_suffix
            ));
        }
        return Err(Error::invalid_config(
            "DualStack is enabled but this partition does not support DualStack",
        ));
    }
    // Rule 2.8: the default endpoint.
    Ok(format!(
        "https://metering.marketplace.{region}.{}",
        pr.dns_suffix
    ))
}

/// `isValidHostLabel(value, false)`: 1 to 63 ASCII letters, digits and hyphens, the first not
/// a hyphen.
fn is_valid_host_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0] != b'-'
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// Accepts an absolute `http://` or `https://` URL with a non-empty host, an optional numeric
/// port, and no whitespace or control characters. The error says what is wrong.
fn check_custom_endpoint(url: &str) -> Result<(), &'static str> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters");
    }
    let rest = match url.find("://") {
        Some(i)
            if url[..i].eq_ignore_ascii_case("http") || url[..i].eq_ignore_ascii_case("https") =>
        {
            &url[i + 3..]
        }
        _ => return Err("it must start with http:// or https://"),
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err("it must not contain user information");
    }
    // Split off the port; an IPv6 literal is bracketed.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.find(']') {
            Some(end) => {
                let after = &v6[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None if after.is_empty() => None,
                    None => return Err("unexpected text after the IPv6 address"),
                };
                (&v6[..end], port)
            }
            None => return Err("unterminated IPv6 address"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host");
    }
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|c| c.is_ascii_digit()) {
            return Err("the port is not a number");
        }
        if port.parse::<u32>().map_or(true, |n| n > 65535) {
            return Err("the port is out of range");
        }
    }
    // The host checked (and shown in errors and `Debug`) must be the one the HTTP client
    // connects to. Its URL parser reads `\\` as `/` and rewrites hosts (`127.1`, `0x7f.1`,
    // non-ASCII names): `http://127.0.0.1\\.amazonaws.com` would show an amazonaws.com host
    // and send the signed request to 127.0.0.1.
    let parsed = reqwest::Url::parse(url).map_err(|_| "it is not a URL")?;
    let same_host = parsed.host_str().is_some_and(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .eq_ignore_ascii_case(host)
    });
    if url.contains('\\') || !same_host {
        return Err("its host is not written as URLs are read (no backslash, no shorthand or non-ASCII host)");
    }
    Ok(())
}

/// The outputs of `aws.partition` that the rule set reads.
#[derive(Debug, PartialEq, Eq)]
struct Partition {
    /// `name`.
    name: &'static str,
    /// `dnsSuffix`.
    dns_suffix: &'static str,
    /// `dualStackDnsSuffix`.
    dual_stack_dns_suffix: &'static str,
    /// `supportsFIPS`.
    supports_fips: bool,
    /// `supportsDualStack`.
    supports_dual_stack: bool,
    /// `regionRegex`, as data: see [`RegionPattern`].
    region_regex: RegionPattern,
    /// The regions the partition lists by name.
    regions: &'static [&'static str],
}

/// A `regionRegex` of `partitions.json`, all of which have the shape
/// `^<first>\-[<second>\-]\w+\-\d+$` where `<first>` is one of a few words (`(us|eu|…)`) and
/// `<second>` is optional and fixed (`gov`, `iso`, …). `\w` and `\d` are ASCII, as in the
/// JavaScript and Rust regex engines the SDKs use.
#[derive(Debug, PartialEq, Eq)]
struct RegionPattern {
    first: &'static [&'static str],
    second: Option<&'static str>,
}

impl RegionPattern {
    fn is_match(&self, region: &str) -> bool {
        // `\w` cannot match '-', so a match has exactly one '-'-separated part per element.
        let mut parts = region.split('-');
        let Some(first) = parts.next() else {
            return false;
        };
        if !self.first.contains(&first) {
            return false;
        }
        if let Some(second) = self.second {
            if parts.next() != Some(second) {
                return false;
            }
        }
        let word = parts.next().is_some_and(|w| {
            !w.is_empty() && w.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        });
        let digits = parts
            .next()
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
        word && digits && parts.next().is_none()
    }
}

/// `partitions.json` version 1.1, as shipped by the AWS SDKs (2025), in its order.
static PARTITIONS: [Partition; 8] = [
    Partition {
        name: "aws",
        dns_suffix: "amazonaws.com",
        dual_stack_dns_suffix: "api.aws",
        supports_fips: true,
        supports_dual_stack: true,
        // ^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"],
            second: None,
        },
        regions: &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "aws-global",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    },
    Partition {
        name: "aws-cn",
        dns_suffix: "amazonaws.com.cn",
        dual_stack_dns_suffix: "api.amazonwebservices.com.cn",
        supports_fips: true,
        supports_dual_stack: true,
        // ^cn\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["cn"],
            second: None,
        },
        regions: &["aws-cn-global", "cn-north-1", "cn-northwest-1"],
    },
    Partition {
        name: "aws-eusc",
        dns_suffix: "amazonaws.eu",
        dual_stack_dns_suffix: "api.amazonwebservices.eu",
        supports_fips: true,
        supports_dual_stack: true,
        // ^eusc\-(de)\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["eusc"],
            second: Some("de"),
        },
        regions: &["eusc-de-east-1"],
    },
    Partition {
        name: "aws-iso",
        dns_suffix: "c2s.ic.gov",
        dual_stack_dns_suffix: "api.aws.ic.gov",
        supports_fips: true,
        supports_dual_stack: true,
        // ^us\-iso\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["us"],
            second: Some("iso"),
        },
        regions: &["aws-iso-global", "us-iso-east-1", "us-iso-west-1"],
    },
    Partition {
        name: "aws-iso-b",
        dns_suffix: "sc2s.sgov.gov",
        dual_stack_dns_suffix: "api.aws.scloud",
        supports_fips: true,
        supports_dual_stack: true,
        // ^us\-isob\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["us"],
            second: Some("isob"),
        },
        regions: &["aws-iso-b-global", "us-isob-east-1", "us-isob-west-1"],
    },
    Partition {
        name: "aws-iso-e",
        dns_suffix: "cloud.adc-e.uk",
        dual_stack_dns_suffix: "api.cloud-aws.adc-e.uk",
        supports_fips: true,
        supports_dual_stack: true,
        // ^eu\-isoe\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["eu"],
            second: Some("isoe"),
        },
        regions: &["aws-iso-e-global", "eu-isoe-west-1"],
    },
    Partition {
        name: "aws-iso-f",
        dns_suffix: "csp.hci.ic.gov",
        dual_stack_dns_suffix: "api.aws.hci.ic.gov",
        supports_fips: true,
        supports_dual_stack: true,
        // ^us\-isof\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["us"],
            second: Some("isof"),
        },
        regions: &["aws-iso-f-global", "us-isof-east-1", "us-isof-south-1"],
    },
    Partition {
        name: "aws-us-gov",
        dns_suffix: "amazonaws.com",
        dual_stack_dns_suffix: "api.aws",
        supports_fips: true,
        supports_dual_stack: true,
        // ^us\-gov\-\w+\-\d+$
        region_regex: RegionPattern {
            first: &["us"],
            second: Some("gov"),
        },
        regions: &["aws-us-gov-global", "us-gov-east-1", "us-gov-west-1"],
    },
];

/// `aws.partition(region)`, as the SDKs implement it: a region listed by name first, then the
/// first partition whose `regionRegex` matches, else the `aws` partition.
fn partition(region: &str) -> &'static Partition {
    PARTITIONS
        .iter()
        .find(|p| p.regions.contains(&region))
        .or_else(|| PARTITIONS.iter().find(|p| p.region_regex.is_match(region)))
        .unwrap_or(&PARTITIONS[0])
}

/// A URL as it may be shown (Debug, errors, logs): user info (`user:pass@`) becomes `***@`.
/// A proxy's URL has no path, and is shown by [`redact_proxy`]'s stricter rule.
///
/// User info ends the authority's last `@`. A password holding an unescaped `/`, `?` or `#`
/// (`http://u:pa#ss@proxy:3128`), or an `@` and a `/` (`https://u:p@ss/w0rd@host`), cuts
/// the authority short, and the URL parses another way or not at all: when the text before
/// the first `@` has a `:` (`user:pa`...), or the authority has an `@` and another follows
/// it, everything up to the last `@` goes, so that text never shows either way (a query's
/// `@` then hides the host too: better than a password).
pub fn redact_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    // An '@' in the authority with another after it: a user name with an '@' (an email)
    // and a '/' in the password (`https://me@corp.com:se/cret@host`) reads so too.
    let later = rest[authority.len()..].contains('@');
    let end = match rest.find('@') {
        Some(first) if rest[..first].contains(':') => rest.rfind('@'),
        Some(_) if authority.contains('@') && later => rest.rfind('@'),
        _ => authority.rfind('@'),
    };
    match end {
        Some(at) => format!("{}***{}", &url[..start], &rest[at..]).into(),
        None => redact_port_password(url, start),
    }
}

/// A proxy URL as it may be shown: a proxy URL has no path, so an `@` anywhere past the
/// scheme ends user info, however the rest parses; a token alone with an unescaped `/`
/// (base64) never shows either.
pub(crate) fn redact_proxy(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]).into(),
        None => redact_userinfo(url),
    }
}

/// With no `@` at all (`http://user:s3cret`, the host forgotten), a password reads as the
/// port: everything after the first `:` past the host (an IPv6 literal's brackets skipped)
/// shows only when what follows it, up to a `/`, `?` or `#`, is a port (1 to 65535).
/// Otherwise the rest goes, path included: a password may hold a `/` or a `:`.
fn redact_port_password(url: &str, start: usize) -> std::borrow::Cow<'_, str> {
    let rest = &url[start..];
    let host_end = match rest.strip_prefix('[') {
        Some(v6) => v6.find(']').map_or(rest.len(), |i| i + 2),
        None => 0,
    };
    let Some(colon) = rest[host_end..].find(':').map(|i| host_end + i) else {
        return url.into();
    };
    let after = &rest[colon + 1..];
    let port = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
    let is_port = port.is_empty()
        || (port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65_535));
    if is_port {
        return url.into();
    }
    format!("{}{}:***", &url[..start], &rest[..colon]).into()
}

#[cfg(test)]
mod tests;
