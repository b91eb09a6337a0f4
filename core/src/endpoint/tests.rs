// SPDX-License-Identifier: Apache-2.0
// Tests of the endpoint rules.

use super::*;

#[test]
fn user_info_is_redacted() {
    // Indistinguishable from a password with an '@' and a '/' (below): up to the last '@'.
    assert_eq!(
        redact_userinfo("https://user:pass@host:1/p?q=a@b"),
        "https://***@b"
    );
    assert_eq!(redact_userinfo("http://h/a@b"), "http://h/a@b");
    assert_eq!(redact_userinfo("user:pw@host"), "***@host");
    // A password with an unescaped '/', '?' or '#' never shows.
    for (url, shown) in [
        ("http://u:pa#ss@proxy:3128", "http://***@proxy:3128"),
        ("http://u:pa?ss@proxy:3128", "http://***@proxy:3128"),
        ("http://u:12/34@proxy:3128", "http://***@proxy:3128"),
        ("http://u:1/2@p:1/x?y=a@b", "http://***@b"),
        // An '@' and a '/' in the password: `meter:p@ss` reads as the authority (a review
        // of secrets found `@ss/w0rd@h.test` shown).
        ("https://meter:p@ss/w0rd@h.test", "https://***@h.test"),
        // A user name with an '@' (an email) and a '/' in the password.
        ("https://me@corp.com:se/cret@h.test", "https://***@h.test"),
    ] {
        assert_eq!(redact_userinfo(url), shown);
    }
    // No '@' at all (the host forgotten): a password reads as the port, and never shows.
    for (url, shown) in [
        ("http://u:s3cret", "http://u:***"),
        ("http://u:s3cret/x", "http://u:***"),
        ("http://u:s3c/ret", "http://u:***"),
        ("http://u:ab:cd", "http://u:***"),
        ("http://u:secret]", "http://u:***"),
        ("http://u:123456", "http://u:***"),
        ("http://u:70000", "http://u:***"),
        ("u:s3cret", "u:***"),
        ("http://proxy:3128", "http://proxy:3128"),
        ("http://proxy:3128/p?q", "http://proxy:3128/p?q"),
        ("http://proxy:", "http://proxy:"),
        ("http://[::1]", "http://[::1]"),
        ("http://[::1]:80/p", "http://[::1]:80/p"),
        ("http://[::1]:s3cret", "http://[::1]:***"),
    ] {
        assert_eq!(redact_userinfo(url), shown);
    }
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
        // What the URL parser reads differently: the request would go to another host
        // than the one checked and shown.
        "http://127.0.0.1\\.metering.marketplace.us-east-1.amazonaws.com",
        "https://evil.test\\@metering.marketplace.us-east-1.amazonaws.com",
        "http://127.1",
        "http://0x7f.0.0.1",
        "https://ex%61mple.com",
        "https://bücher.example",
    ] {
        let msg = ok(bad).unwrap_err();
        assert!(
            msg.starts_with("Invalid Configuration: custom endpoint")
                && msg.contains(&format!("{:?}", redact_userinfo(bad))),
            "{bad:?}: {msg}"
        );
    }
}
