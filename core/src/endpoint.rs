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
pub(crate) fn redact_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_len = url[start..]
        .find(['/', '?', '#'])
        .unwrap_or(url.len() - start);
    match url[start..start + authority_len].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]).into(),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_redacted() {
        assert_eq!(
            redact_userinfo("https://user:pass@host:1/p?q=a@b"),
            "https://***@host:1/p?q=a@b"
        );
        assert_eq!(redact_userinfo("http://h/a@b"), "http://h/a@b");
        assert_eq!(redact_userinfo("user:pw@host"), "***@host");
    }
    use crate::ErrorCode;

    fn resolve(
        region: Option<&str>,
        fips: bool,
        dual: bool,
        endpoint: Option<&str>,
    ) -> Result<String, String> {
        resolve_endpoint(&EndpointParams {
            region,
            use_fips: fips,
            use_dual_stack: dual,
            endpoint,
        })
        .map_err(|e| {
            assert_eq!(e.error_code(), ErrorCode::InvalidConfig, "{}", e.message());
            e.message().to_owned()
        })
    }

    #[test]
    fn regions_in_all_four_modes() {
        // (region, plain, FIPS, dual-stack, FIPS + dual-stack), read off the rule set.
        let table: &[(&str, &str, &str, &str, &str)] = &[
            (
                "us-east-1",
                "https://metering.marketplace.us-east-1.amazonaws.com",
                "https://metering.marketplace-fips.us-east-1.amazonaws.com",
                "https://metering-marketplace.us-east-1.api.aws",
                "https://metering.marketplace-fips.us-east-1.api.aws",
            ),
            (
                "us-gov-west-1",
                "https://metering.marketplace.us-gov-west-1.amazonaws.com",
                "https://metering.marketplace-fips.us-gov-west-1.amazonaws.com",
                "https://metering-marketplace.us-gov-west-1.api.aws",
                "https://metering.marketplace-fips.us-gov-west-1.api.aws",
            ),
            (
                "cn-northwest-1",
                "https://metering.marketplace.cn-northwest-1.amazonaws.com.cn",
                "https://metering.marketplace-fips.cn-northwest-1.amazonaws.com.cn",
                "https://metering-marketplace.cn-northwest-1.api.amazonwebservices.com.cn",
                "https://metering.marketplace-fips.cn-northwest-1.api.amazonwebservices.com.cn",
            ),
            (
                "eusc-de-east-1",
                "https://metering-marketplace.eusc-de-east-1.amazonaws.eu",
                "https://metering.marketplace-fips.eusc-de-east-1.amazonaws.eu",
                "https://metering.marketplace.eusc-de-east-1.api.amazonwebservices.eu",
                "https://metering.marketplace-fips.eusc-de-east-1.api.amazonwebservices.eu",
            ),
            (
                "us-iso-east-1",
                "https://metering.marketplace.us-iso-east-1.c2s.ic.gov",
                "https://metering.marketplace-fips.us-iso-east-1.c2s.ic.gov",
                "https://metering.marketplace.us-iso-east-1.api.aws.ic.gov",
                "https://metering.marketplace-fips.us-iso-east-1.api.aws.ic.gov",
            ),
            (
                "us-isob-east-1",
                "https://metering.marketplace.us-isob-east-1.sc2s.sgov.gov",
                "https://metering.marketplace-fips.us-isob-east-1.sc2s.sgov.gov",
                "https://metering.marketplace.us-isob-east-1.api.aws.scloud",
                "https://metering.marketplace-fips.us-isob-east-1.api.aws.scloud",
            ),
            (
                "eu-isoe-west-1",
                "https://metering.marketplace.eu-isoe-west-1.cloud.adc-e.uk",
                "https://metering.marketplace-fips.eu-isoe-west-1.cloud.adc-e.uk",
                "https://metering.marketplace.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
                "https://metering.marketplace-fips.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
            ),
            (
                "us-isof-south-1",
                "https://metering.marketplace.us-isof-south-1.csp.hci.ic.gov",
                "https://metering.marketplace-fips.us-isof-south-1.csp.hci.ic.gov",
                "https://metering.marketplace.us-isof-south-1.api.aws.hci.ic.gov",
                "https://metering.marketplace-fips.us-isof-south-1.api.aws.hci.ic.gov",
            ),
        ];
        for &(region, plain, fips, dual, fips_dual) in table {
            let r = Some(region);
            assert_eq!(
                resolve(r, false, false, None).as_deref(),
                Ok(plain),
                "{region} plain"
            );
            assert_eq!(
                resolve(r, true, false, None).as_deref(),
                Ok(fips),
                "{region} fips"
            );
            assert_eq!(
                resolve(r, false, true, None).as_deref(),
                Ok(dual),
                "{region} dualstack"
            );
            assert_eq!(
                resolve(r, true, true, None).as_deref(),
                Ok(fips_dual),
                "{region} fips+dualstack"
            );
        }
    }

    #[test]
    fn partition_lookup() {
        let name = |r: &str| partition(r).name;
        // Listed by name.
        assert_eq!(name("aws-global"), "aws");
        assert_eq!(name("aws-us-gov-global"), "aws-us-gov");
        assert_eq!(name("aws-cn-global"), "aws-cn");
        assert_eq!(name("aws-iso-b-global"), "aws-iso-b");
        // By regex: regions not (yet) in the table.
        assert_eq!(name("us-east-9"), "aws");
        assert_eq!(name("mx-central-2"), "aws");
        assert_eq!(name("il-central-7"), "aws");
        assert_eq!(name("cn-south-1"), "aws-cn");
        assert_eq!(name("us-gov-central-1"), "aws-us-gov");
        assert_eq!(name("us-iso-north-1"), "aws-iso");
        assert_eq!(name("us-isob-north-1"), "aws-iso-b");
        assert_eq!(name("eu-isoe-north-1"), "aws-iso-e");
        assert_eq!(name("us-isof-north-1"), "aws-iso-f");
        assert_eq!(name("eusc-de-west-1"), "aws-eusc");
        // No match: the aws partition.
        assert_eq!(name("eusc-fr-east-1"), "aws");
        assert_eq!(name("xx-east-1"), "aws");
        assert_eq!(name("us-east"), "aws");
        assert_eq!(name("us-east-1a"), "aws");
        assert_eq!(name("US-GOV-WEST-1"), "aws");
        assert_eq!(name("local"), "aws");
        assert_eq!(name(""), "aws");
    }

    #[test]
    fn region_patterns() {
        let aws = &PARTITIONS[0].region_regex;
        assert!(aws.is_match("us-east-1"));
        assert!(aws.is_match("ap-southeast-12"));
        assert!(aws.is_match("us-east_x-1"));
        assert!(!aws.is_match("us-gov-west-1"));
        assert!(!aws.is_match("us--1"));
        assert!(!aws.is_match("us-east-"));
        assert!(!aws.is_match("us-east-1-"));
        assert!(!aws.is_match("us-east-x"));
        assert!(!aws.is_match("usa-east-1"));
        let gov = &PARTITIONS[7].region_regex;
        assert!(gov.is_match("us-gov-west-1"));
        assert!(!gov.is_match("us-gov-1"));
        assert!(!gov.is_match("us-east-1"));
    }

    #[test]
    fn unknown_regions_use_the_aws_partition() {
        assert_eq!(
            resolve(Some("local"), false, false, None).as_deref(),
            Ok("https://metering.marketplace.local.amazonaws.com")
        );
        assert_eq!(
            resolve(Some("xx-west-1"), false, true, None).as_deref(),
            Ok("https://metering-marketplace.xx-west-1.api.aws")
        );
        assert_eq!(
            resolve(Some("aws-global"), true, false, None).as_deref(),
            Ok("https://metering.marketplace-fips.aws-global.amazonaws.com")
        );
    }

    #[test]
    fn rule_set_errors() {
        let e = |r: Result<String, String>| r.unwrap_err();
        assert_eq!(
            e(resolve(None, false, false, None)),
            "Invalid Configuration: Missing Region"
        );
        assert_eq!(
            e(resolve(None, true, true, None)),
            "Invalid Configuration: Missing Region"
        );
        assert_eq!(
            e(resolve(
                Some("us-east-1"),
                true,
                false,
                Some("https://example.com")
            )),
            "Invalid Configuration: FIPS and custom endpoint are not supported"
        );
        // FIPS is checked before dual-stack.
        assert_eq!(
            e(resolve(
                Some("us-east-1"),
                true,
                true,
                Some("https://example.com")
            )),
            "Invalid Configuration: FIPS and custom endpoint are not supported"
        );
        assert_eq!(
            e(resolve(None, false, true, Some("https://example.com"))),
            "Invalid Configuration: Dualstack and custom endpoint are not supported"
        );
    }

    #[test]
    fn partitions_without_fips_or_dual_stack() {
        static NEITHER: Partition = Partition {
            name: "aws-test",
            dns_suffix: "example.test",
            dual_stack_dns_suffix: "ds.example.test",
            supports_fips: false,
            supports_dual_stack: false,
            region_regex: RegionPattern {
                first: &[],
                second: None,
            },
            regions: &[],
        };
        static FIPS_ONLY: Partition = Partition {
            name: "aws-test",
            dns_suffix: "example.test",
            dual_stack_dns_suffix: "ds.example.test",
            supports_fips: true,
            supports_dual_stack: false,
            region_regex: RegionPattern {
                first: &[],
                second: None,
            },
            regions: &[],
        };
        let run = |part: &'static Partition, fips, dual| {
            resolve_with(
                &EndpointParams {
                    region: Some("test-1"),
                    use_fips: fips,
                    use_dual_stack: dual,
                    endpoint: None,
                },
                |_| part,
            )
            .map_err(|e| {
                assert_eq!(e.error_code(), ErrorCode::InvalidConfig);
                e.message().to_owned()
            })
        };
        assert_eq!(
            run(&NEITHER, false, false).as_deref(),
            Ok("https://metering.marketplace.test-1.example.test")
        );
        assert_eq!(
            run(&NEITHER, true, false).unwrap_err(),
            "FIPS is enabled but this partition does not support FIPS"
        );
        assert_eq!(
            run(&NEITHER, false, true).unwrap_err(),
            "DualStack is enabled but this partition does not support DualStack"
        );
        assert_eq!(
            run(&NEITHER, true, true).unwrap_err(),
            "FIPS and DualStack are enabled, but this partition does not support one or both"
        );
        assert_eq!(
            run(&FIPS_ONLY, true, false).as_deref(),
            Ok("https://metering.marketplace-fips.test-1.example.test")
        );
        assert_eq!(
            run(&FIPS_ONLY, true, true).unwrap_err(),
            "FIPS and DualStack are enabled, but this partition does not support one or both"
        );
    }

    #[test]
    fn invalid_regions() {
        for bad in [
            "",
            "-us-east-1",
            "us_east_1",
            "us-east-1.evil.com",
            "us-east-1/",
            "us east 1",
            "us-east-1\n",
            "ü-east-1",
            &"a".repeat(64),
        ] {
            let msg = resolve(Some(bad), false, false, None).unwrap_err();
            assert!(
                msg.contains(&format!("{bad:?}")) && msg.contains("not a valid host label"),
                "{bad:?}: {msg}"
            );
        }
        // Valid labels, even if no partition knows them.
        for good in ["a", "1", "us-east-1-", &"a".repeat(63), "US-EAST-1"] {
            assert!(resolve(Some(good), false, false, None).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn custom_endpoints() {
        let ok = |url: &str| resolve(Some("us-east-1"), false, false, Some(url));
        assert_eq!(
            ok("https://example.com").as_deref(),
            Ok("https://example.com")
        );
        assert_eq!(
            ok("https://example.com/").as_deref(),
            Ok("https://example.com")
        );
        assert_eq!(
            ok("https://example.com//").as_deref(),
            Ok("https://example.com")
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        assert_eq!(ok("http://[::1]:8080").as_deref(), Ok("http://[::1]:8080"));
        assert_eq!(ok("http://[::1]").as_deref(), Ok("http://[::1]"));
        assert_eq!(
            ok("HTTPS://Example.com/prefix/").as_deref(),
            Ok("HTTPS://Example.com/prefix")
        );
        assert_eq!(
            ok("https://vpce-1.metering.marketplace.us-east-1.vpce.amazonaws.com").as_deref(),
            Ok("https://vpce-1.metering.marketplace.us-east-1.vpce.amazonaws.com")
        );
        // No region is needed with a custom endpoint, and the region is not checked.
        assert_eq!(
            resolve(None, false, false, Some("http://localhost:4566")).as_deref(),
            Ok("http://localhost:4566")
        );
        assert_eq!(
            resolve(Some("not a region"), false, false, Some("http://localhost")).as_deref(),
            Ok("http://localhost")
        );
        for bad in [
            "",
            "example.com",
            "localhost:8080",
            "ftp://example.com",
            "https//example.com",
            "https://",
            "https:///path",
            "https://:443",
            "https://example.com:",
            "https://example.com:http",
            "https://example.com:99999",
            "https://user:pw@example.com",
            "https://exa mple.com",
            " https://example.com",
            "https://example.com\n",
            "http://[::1",
            "http://[::1]x",
        ] {
            let msg = ok(bad).unwrap_err();
            assert!(
                msg.starts_with("Invalid Configuration: custom endpoint")
                    && msg.contains(&format!("{:?}", redact_userinfo(bad))),
                "{bad:?}: {msg}"
            );
        }
    }
}
