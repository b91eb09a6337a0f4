// SPDX-License-Identifier: Apache-2.0
// Configuration as the AWS SDKs read it: code > environment > profile > default, every
// variable and profile key; then CA bundles and proxies against an https emulator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use marketplace_metering::profile::Origin;
use marketplace_metering::{Client, Config, ConfigBuilder, Error, ErrorCode, RetryMode};
use metering_emulator::{Emulator, EmulatorConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::tls_ca::Ca;

/// A private directory with a config file, a credentials file and CA files.
struct Dir(PathBuf);

impl Dir {
    fn new(config: &str, credentials: &str) -> Dir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mm-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(dir.join("credentials"), credentials).unwrap();
        std::fs::write(dir.join("ca.pem"), Ca::new().cert_pem).unwrap();
        std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();
        // PEM framing around a body that is no certificate: read, but no root.
        std::fs::write(
            dir.join("bogus.pem"),
            "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        Dir(dir)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
    /// An environment with only the files of this directory (and `vars`).
    fn env(&self, vars: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [
            ("HOME", self.0.display().to_string()),
            ("AWS_CONFIG_FILE", self.path("config")),
            ("AWS_SHARED_CREDENTIALS_FILE", self.path("credentials")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in vars {
            env.insert(
                (*k).to_owned(),
                v.replace("$DIR", &self.0.display().to_string()),
            );
        }
        env
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a row expects.
enum Want {
    /// `setting` resolved to a value whose shown form is `value`, from `origin`.
    Value(&'static str, &'static str, Origin),
    /// An `InvalidConfig` error whose field is `field` and whose message contains `text`.
    Invalid(&'static str, &'static str),
}

fn env(name: &'static str) -> Origin {
    Origin::Env(name)
}
fn code(name: &'static str) -> Origin {
    Origin::Code(name)
}
fn profile(p: &str, key: &str) -> Origin {
    Origin::Profile {
        profile: p.to_owned(),
        key: key.to_owned(),
    }
}

/// The shown value of a resolved setting.
fn shown(c: &Config, setting: &str) -> String {
    match setting {
        "region" => c.region().to_owned(),
        "endpoint_url" => c.endpoint_url().to_owned(),
        "use_fips" => c.use_fips().to_string(),
        "use_dual_stack" => c.use_dual_stack().to_string(),
        "retry_mode" => c.retry_config().mode.as_str().to_owned(),
        "max_attempts" => c.retry_config().max_attempts.to_string(),
        "ca_bundle" => c
            .ca_bundle()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .unwrap_or_default(),
        "app_id" => c.app_id().unwrap_or_default().to_owned(),
        "user_agent" => c.user_agent().to_owned(),
        "https_proxy" => c.https_proxy().unwrap_or_default(),
        "http_proxy" => c.http_proxy().unwrap_or_default(),
        "no_proxy" => c.no_proxy().unwrap_or_default().to_owned(),
        "profile" => c.profile_name().to_owned(),
        other => panic!("unknown setting {other}"),
    }
}

const CONFIG: &str = "\
# the shared config file
[default]
region = eu-west-1
[profile default]
region = eu-west-2
max_attempts = 4

[profile work] ; a comment
s3 =
  region = wrong-1
REGION = eu-central-1 # inline
retry_mode = legacy

[work]
region = wrong-2

[profile ep]
region = us-west-2
endpoint_url = https://profile.example.com
services = local

[services local]
marketplace_metering =
  endpoint_url = https://service.example.com

[profile eponly]
region = us-west-2
endpoint_url = https://profile.example.com

[profile flags]
region = us-gov-west-1
use_fips_endpoint = true
use_dualstack_endpoint = true
ignore_configured_endpoint_urls = true
endpoint_url = https://ignored.example.com
max_attempts = 9
retry_mode = adaptive
sdk_ua_app_id = from-profile
ca_bundle = $DIR/ca.pem

[profile bad]
region = us-east-1
max_attempts = many
retry_mode = fast
ca_bundle = $DIR/absent.pem
sdk_ua_app_id = has space

[profile badfips]
region = us-east-1
use_fips_endpoint = perhaps

[profile noregion]
max_attempts = 2
";

const CREDENTIALS: &str = "\
[creds]
region = ap-northeast-1
aws_access_key_id = AKIDFILE
aws_secret_access_key = secret
";

type Code = fn(ConfigBuilder) -> ConfigBuilder;
/// A row: its name, the environment, what the code sets, what is expected.
type Row = (&'static str, Vec<(&'static str, &'static str)>, Code, Want);

fn none(b: ConfigBuilder) -> ConfigBuilder {
    b
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use Want::*;
    vec![
        // --- region ---
        ("AWS_REGION", vec![("AWS_REGION", "us-west-2")], none, Value("region", "us-west-2", env("AWS_REGION"))),
        ("AWS_DEFAULT_REGION", vec![("AWS_DEFAULT_REGION", "ap-south-1")], none, Value("region", "ap-south-1", env("AWS_DEFAULT_REGION"))),
        ("AWS_REGION beats AWS_DEFAULT_REGION", vec![("AWS_REGION", "us-west-2"), ("AWS_DEFAULT_REGION", "ap-south-1")], none, Value("region", "us-west-2", env("AWS_REGION"))),
        ("an empty AWS_REGION is unset", vec![("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "ap-south-1")], none, Value("region", "ap-south-1", env("AWS_DEFAULT_REGION"))),
        ("[profile default] beats [default]", vec![("AWS_PROFILE", "default")], none, Value("region", "eu-west-2", profile("default", "region"))),
        ("environment beats profile", vec![("AWS_REGION", "us-west-2")], none, Value("region", "us-west-2", env("AWS_REGION"))),
        ("code beats environment", vec![("AWS_REGION", "us-west-2")], |b| b.region("sa-east-1"), Value("region", "sa-east-1", code("region"))),
        ("AWS_PROFILE selects the profile", vec![("AWS_PROFILE", "work")], none, Value("region", "eu-central-1", profile("work", "region"))),
        ("the code's profile beats AWS_PROFILE", vec![("AWS_PROFILE", "work")], |b| b.profile("ep"), Value("region", "us-west-2", profile("ep", "region"))),
        ("the credentials file's profile", vec![("AWS_PROFILE", "creds")], none, Value("region", "ap-northeast-1", profile("creds", "region"))),
        ("selected profile", vec![("AWS_PROFILE", "work")], none, Value("profile", "work", Origin::Default)),
        ("no region anywhere", vec![("AWS_PROFILE", "noregion")], none, Invalid("region", "region is required")),
        // A profile named but not in the files (a typo): botocore's ProfileNotFound. Read as
        // empty, it let the environment pick the region and the endpoint without the FIPS or
        // endpoint settings the intended profile held.
        ("a missing profile named by AWS_PROFILE", vec![("AWS_PROFILE", "wrok"), ("AWS_REGION", "us-east-1")], none, Invalid("AWS_PROFILE", "the profile `wrok` is not in")),
        ("a missing profile named in code", vec![("AWS_REGION", "us-east-1")], |b| b.profile("wrok"), Invalid("profile", "the profile `wrok` is not in")),
        ("a region that is no host label", vec![("AWS_REGION", "us east")], none, Invalid("AWS_REGION", "not a valid host label")),
        // --- endpoint ---
        ("AWS_ENDPOINT_URL", vec![("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:1/")], none, Value("endpoint_url", "http://127.0.0.1:1", env("AWS_ENDPOINT_URL"))),
        ("the service's variable beats AWS_ENDPOINT_URL", vec![("AWS_ENDPOINT_URL", "http://a.test"), ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "http://b.test")], |b| b.region("us-east-1"), Value("endpoint_url", "http://b.test", env("AWS_ENDPOINT_URL_MARKETPLACE_METERING"))),
        ("the profile's services section beats its endpoint_url", vec![("AWS_PROFILE", "ep")], none, Value("endpoint_url", "https://service.example.com", profile("ep", "services.marketplace_metering.endpoint_url"))),
        ("the profile's endpoint_url", vec![("AWS_PROFILE", "eponly")], none, Value("endpoint_url", "https://profile.example.com", profile("eponly", "endpoint_url"))),
        ("AWS_ENDPOINT_URL beats the profile", vec![("AWS_PROFILE", "ep"), ("AWS_ENDPOINT_URL", "http://a.test")], none, Value("endpoint_url", "http://a.test", env("AWS_ENDPOINT_URL"))),
        ("code beats AWS_ENDPOINT_URL", vec![("AWS_ENDPOINT_URL", "http://a.test")], |b| b.region("us-east-1").endpoint_url("http://c.test"), Value("endpoint_url", "http://c.test", code("endpoint_url"))),
        ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", vec![("AWS_PROFILE", "ep"), ("AWS_ENDPOINT_URL", "http://a.test"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")], none, Value("endpoint_url", "https://metering.marketplace.us-west-2.amazonaws.com", Origin::Default)),
        ("ignore_configured_endpoint_urls in the profile", vec![("AWS_PROFILE", "flags"), ("AWS_USE_FIPS_ENDPOINT", "false"), ("AWS_USE_DUALSTACK_ENDPOINT", "false")], none, Value("endpoint_url", "https://metering.marketplace.us-gov-west-1.amazonaws.com", Origin::Default)),
        ("ignoring keeps the code's endpoint", vec![("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE")], |b| b.region("us-east-1").endpoint_url("http://c.test"), Value("endpoint_url", "http://c.test", code("endpoint_url"))),
        ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is a boolean", vec![("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "1")], |b| b.region("us-east-1"), Invalid("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "must be `true` or `false`")),
        ("AWS_ENDPOINT_URL must be http(s)", vec![("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", "ftp://x.test")], none, Invalid("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL (environment variable)")),
        // --- FIPS and dual-stack ---
        ("AWS_USE_FIPS_ENDPOINT", vec![("AWS_REGION", "us-gov-west-1"), ("AWS_USE_FIPS_ENDPOINT", "true")], none, Value("endpoint_url", "https://metering.marketplace-fips.us-gov-west-1.amazonaws.com", Origin::Default)),
        ("AWS_USE_FIPS_ENDPOINT's origin", vec![("AWS_REGION", "us-east-1"), ("AWS_USE_FIPS_ENDPOINT", "True")], none, Value("use_fips", "true", env("AWS_USE_FIPS_ENDPOINT"))),
        ("use_fips_endpoint in the profile", vec![("AWS_PROFILE", "flags"), ("AWS_USE_DUALSTACK_ENDPOINT", "false")], none, Value("endpoint_url", "https://metering.marketplace-fips.us-gov-west-1.amazonaws.com", Origin::Default)),
        ("environment false beats profile true", vec![("AWS_PROFILE", "flags"), ("AWS_USE_FIPS_ENDPOINT", "false")], none, Value("use_fips", "false", env("AWS_USE_FIPS_ENDPOINT"))),
        ("code false beats environment true", vec![("AWS_REGION", "us-east-1"), ("AWS_USE_FIPS_ENDPOINT", "true")], |b| b.use_fips(false), Value("use_fips", "false", code("use_fips"))),
        ("AWS_USE_FIPS_ENDPOINT is a boolean", vec![("AWS_REGION", "us-east-1"), ("AWS_USE_FIPS_ENDPOINT", "yes")], none, Invalid("AWS_USE_FIPS_ENDPOINT", "AWS_USE_FIPS_ENDPOINT (environment variable): must be `true` or `false`, got \"yes\"")),
        ("use_fips_endpoint is a boolean", vec![("AWS_PROFILE", "badfips")], none, Invalid("use_fips_endpoint", "profile `badfips`")),
        ("AWS_USE_DUALSTACK_ENDPOINT", vec![("AWS_REGION", "eu-west-1"), ("AWS_USE_DUALSTACK_ENDPOINT", "true")], none, Value("endpoint_url", "https://metering-marketplace.eu-west-1.api.aws", Origin::Default)),
        ("use_dualstack_endpoint in the profile", vec![("AWS_PROFILE", "flags")], none, Value("use_dual_stack", "true", profile("flags", "use_dualstack_endpoint"))),
        ("FIPS and dual-stack together", vec![("AWS_PROFILE", "flags")], none, Value("endpoint_url", "https://metering.marketplace-fips.us-gov-west-1.api.aws", Origin::Default)),
        ("FIPS with a custom endpoint names both", vec![("AWS_REGION", "us-east-1"), ("AWS_USE_FIPS_ENDPOINT", "true"), ("AWS_ENDPOINT_URL", "http://a.test")], none, Invalid("AWS_ENDPOINT_URL", "FIPS from AWS_USE_FIPS_ENDPOINT (environment variable)")),
        // A FIPS pseudo-region, as SDK v3 and the SDK for Java read it: taken whole, it signed
        // for a region that does not exist, at a host that does not either.
        ("a FIPS pseudo-region", vec![("AWS_REGION", "us-gov-west-1-fips")], none, Value("endpoint_url", "https://metering.marketplace-fips.us-gov-west-1.amazonaws.com", Origin::Default)),
        ("a FIPS pseudo-region is its region", vec![("AWS_REGION", "fips-us-east-1")], none, Value("region", "us-east-1", env("AWS_REGION"))),
        ("a FIPS pseudo-region turns FIPS on", vec![("AWS_REGION", "us-east-1-fips"), ("AWS_USE_FIPS_ENDPOINT", "false")], none, Value("use_fips", "true", env("AWS_REGION"))),
        ("a FIPS pseudo-region in code", vec![], |b| b.region("fips-us-gov-east-1"), Value("endpoint_url", "https://metering.marketplace-fips.us-gov-east-1.amazonaws.com", Origin::Default)),
        ("only a FIPS marker is taken as it is", vec![("AWS_REGION", "fips-")], none, Value("region", "fips-", env("AWS_REGION"))),
        ("a FIPS pseudo-region with a custom endpoint", vec![("AWS_REGION", "us-east-1-fips"), ("AWS_ENDPOINT_URL", "http://a.test")], none, Invalid("AWS_ENDPOINT_URL", "FIPS from AWS_REGION")),
        // --- retries ---
        ("the default retries", vec![("AWS_REGION", "us-east-1"), ("AWS_PROFILE", "eponly")], none, Value("max_attempts", "3", Origin::Default)),
        ("AWS_MAX_ATTEMPTS", vec![("AWS_MAX_ATTEMPTS", "7")], none, Value("max_attempts", "7", env("AWS_MAX_ATTEMPTS"))),
        ("max_attempts in the profile", vec![], none, Value("max_attempts", "4", profile("default", "max_attempts"))),
        ("code beats AWS_MAX_ATTEMPTS", vec![("AWS_MAX_ATTEMPTS", "7")], |b| b.max_attempts(2u32), Value("max_attempts", "2", code("max_attempts"))),
        ("AWS_MAX_ATTEMPTS=0", vec![("AWS_MAX_ATTEMPTS", "0")], none, Invalid("AWS_MAX_ATTEMPTS", "at least 1, got \"0\"")),
        ("AWS_MAX_ATTEMPTS=abc", vec![("AWS_MAX_ATTEMPTS", "abc")], none, Invalid("AWS_MAX_ATTEMPTS", "AWS_MAX_ATTEMPTS (environment variable)")),
        ("max_attempts=many in the profile", vec![("AWS_PROFILE", "bad"), ("AWS_RETRY_MODE", "standard")], none, Invalid("max_attempts", "profile `bad`")),
        ("code max_attempts 0", vec![], |b| b.max_attempts(0u32), Invalid("max_attempts", "set in code")),
        ("AWS_RETRY_MODE", vec![("AWS_RETRY_MODE", "adaptive")], none, Value("retry_mode", "adaptive", env("AWS_RETRY_MODE"))),
        ("retry_mode legacy in the profile: 5 attempts", vec![("AWS_PROFILE", "work")], none, Value("max_attempts", "5", Origin::Default)),
        ("legacy is its own mode", vec![("AWS_PROFILE", "work")], none, Value("retry_mode", "legacy", profile("work", "retry_mode"))),
        ("legacy with AWS_MAX_ATTEMPTS", vec![("AWS_RETRY_MODE", "legacy"), ("AWS_MAX_ATTEMPTS", "2")], none, Value("max_attempts", "2", env("AWS_MAX_ATTEMPTS"))),
        ("code beats AWS_RETRY_MODE", vec![("AWS_RETRY_MODE", "adaptive")], |b| b.retry_mode(RetryMode::Standard), Value("retry_mode", "standard", code("retry_mode"))),
        ("AWS_RETRY_MODE=fast", vec![("AWS_RETRY_MODE", "fast")], none, Invalid("AWS_RETRY_MODE", "`standard`, `adaptive` or `legacy`, got \"fast\"")),
        ("retry_mode=fast in the profile", vec![("AWS_PROFILE", "bad"), ("AWS_MAX_ATTEMPTS", "3")], none, Invalid("retry_mode", "profile `bad`")),
        // --- CA bundle ---
        ("AWS_CA_BUNDLE", vec![("AWS_CA_BUNDLE", "$DIR/ca.pem")], none, Value("ca_bundle", "ca.pem", env("AWS_CA_BUNDLE"))),
        ("ca_bundle in the profile", vec![("AWS_PROFILE", "flags")], none, Value("ca_bundle", "ca.pem", profile("flags", "ca_bundle"))),
        ("code beats AWS_CA_BUNDLE", vec![("AWS_CA_BUNDLE", "$DIR/junk.pem")], |b| b.ca_bundle(std::env::temp_dir().join("none")), Invalid("ca_bundle", "set in code")),
        ("AWS_CA_BUNDLE that is missing", vec![("AWS_CA_BUNDLE", "$DIR/absent.pem")], none, Invalid("AWS_CA_BUNDLE", "cannot read")),
        ("AWS_CA_BUNDLE that is no PEM", vec![("AWS_CA_BUNDLE", "$DIR/junk.pem")], none, Invalid("AWS_CA_BUNDLE", "no PEM certificate")),
        ("AWS_CA_BUNDLE whose certificate is no root", vec![("AWS_CA_BUNDLE", "$DIR/bogus.pem")], none, Invalid("AWS_CA_BUNDLE", "certificate 1 of")),
        ("ca_bundle in the profile that is missing", vec![("AWS_PROFILE", "bad"), ("AWS_MAX_ATTEMPTS", "3"), ("AWS_RETRY_MODE", "standard")], none, Invalid("ca_bundle", "profile `bad`")),
        // --- user-agent app id ---
        ("AWS_SDK_UA_APP_ID", vec![("AWS_SDK_UA_APP_ID", "billing-7")], none, Value("app_id", "billing-7", env("AWS_SDK_UA_APP_ID"))),
        ("the app id goes into the User-Agent", vec![("AWS_SDK_UA_APP_ID", "billing-7")], |b| b.user_agent_extra("extra/1"), Value("user_agent", "app/billing-7 extra/1", Origin::Default)),
        ("sdk_ua_app_id in the profile", vec![("AWS_PROFILE", "flags")], none, Value("app_id", "from-profile", profile("flags", "sdk_ua_app_id"))),
        ("code beats AWS_SDK_UA_APP_ID", vec![("AWS_SDK_UA_APP_ID", "billing-7")], |b| b.app_id("mine"), Value("app_id", "mine", code("app_id"))),
        ("an app id longer than 50", vec![("AWS_SDK_UA_APP_ID", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")], none, Invalid("AWS_SDK_UA_APP_ID", "at most 50 characters")),
        ("an app id with a space", vec![("AWS_PROFILE", "bad"), ("AWS_MAX_ATTEMPTS", "3"), ("AWS_RETRY_MODE", "standard"), ("AWS_CA_BUNDLE", "$DIR/ca.pem")], none, Invalid("sdk_ua_app_id", "only letters, digits")),
        // --- proxies ---
        ("HTTPS_PROXY", vec![("HTTPS_PROXY", "http://proxy.test:3128")], none, Value("https_proxy", "http://proxy.test:3128", env("HTTPS_PROXY"))),
        ("https_proxy", vec![("https_proxy", "http://proxy.test:3128")], none, Value("https_proxy", "http://proxy.test:3128", env("https_proxy"))),
        ("HTTP_PROXY", vec![("HTTP_PROXY", "http://proxy.test:3128")], none, Value("http_proxy", "http://proxy.test:3128", env("HTTP_PROXY"))),
        ("http_proxy", vec![("http_proxy", "http://proxy.test:3128")], none, Value("http_proxy", "http://proxy.test:3128", env("http_proxy"))),
        ("NO_PROXY", vec![("NO_PROXY", "localhost,.internal")], none, Value("no_proxy", "localhost,.internal", env("NO_PROXY"))),
        ("HTTP_PROXY under CGI is the client's header (httpoxy)", vec![("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "http://evil.test:1"), ("http_proxy", "http://proxy.test:3128")], none, Value("http_proxy", "http://proxy.test:3128", env("http_proxy"))),
        ("no_proxy", vec![("no_proxy", "localhost")], none, Value("no_proxy", "localhost", env("no_proxy"))),
        ("code beats HTTPS_PROXY", vec![("HTTPS_PROXY", "http://proxy.test:3128")], |b| b.https_proxy("http://mine.test:8080"), Value("https_proxy", "http://mine.test:8080", code("https_proxy"))),
        ("a proxy password is never shown", vec![("HTTPS_PROXY", "http://user:hunter2@proxy.test:3128")], none, Value("https_proxy", "http://***@proxy.test:3128", env("HTTPS_PROXY"))),
        ("HTTPS_PROXY that is no URL", vec![("HTTPS_PROXY", "proxy test")], none, Invalid("HTTPS_PROXY", "HTTPS_PROXY (environment variable)")),
        // --- code-only checks every face shares ---
        ("verify=False is refused", vec![], |b| b.verify(false), Invalid("verify", "cannot be turned off")),
        ("a key id without its secret", vec![], |b| b.credentials_from_parts(Some("AKID".into()), None, None), Invalid("aws_secret_access_key", "missing")),
        ("a secret without its key id", vec![], |b| b.credentials_from_parts(None, Some("s".into()), None), Invalid("aws_access_key_id", "missing")),
        ("a session token alone", vec![], |b| b.credentials_from_parts(None, None, Some("t".into())), Invalid("aws_session_token", "needs an access key id")),
        ("a socks proxy is refused", vec![("HTTP_PROXY", "socks5://proxy.test:1080")], none, Invalid("HTTP_PROXY", "http:// or https://")),
    ]
}

#[test]
fn every_variable_and_profile_key() {
    let dir = Dir::new("", CREDENTIALS);
    std::fs::write(
        dir.0.join("config"),
        CONFIG.replace("$DIR", &dir.0.display().to_string()),
    )
    .unwrap();
    let mut failures = Vec::new();
    let rows = rows();
    for (name, vars, code, want) in &rows {
        let mut vars = vars.clone();
        // Rows about something else still need a region.
        if !vars
            .iter()
            .any(|(k, _)| k.contains("REGION") || *k == "AWS_PROFILE")
        {
            vars.push(("AWS_DEFAULT_REGION", "us-east-1"));
        }
        let built = code(Config::builder().environment(dir.env(&vars))).build();
        let problem = match (want, built) {
            (Want::Value(setting, value, origin), Ok(c)) => {
                let got = shown(&c, setting);
                let ok_value = if *setting == "user_agent" {
                    got.ends_with(value)
                } else {
                    got == *value
                };
                let got_origin = c.origin(setting);
                let ok_origin = *setting == "user_agent"
                    || *setting == "profile"
                    || (*setting == "endpoint_url" && *origin == Origin::Default)
                    || got_origin == *origin;
                (!(ok_value && ok_origin)).then(|| {
                    format!("got {got:?} from {got_origin:?}, want {value:?} from {origin:?}")
                })
            }
            (Want::Value(..), Err(e)) => Some(format!("failed: {e}")),
            (Want::Invalid(field, text), Err(e)) => (e.error_code() != ErrorCode::InvalidConfig
                || e.field() != Some(*field)
                || !e.message().contains(text))
            .then(|| {
                format!(
                    "got {:?} field {:?}: {}",
                    e.error_code(),
                    e.field(),
                    e.message()
                )
            }),
            (Want::Invalid(..), Ok(c)) => Some(format!("built {c:?}")),
        };
        if let Some(p) = problem {
            failures.push(format!("{name}: {p}"));
        }
    }
    assert!(rows.len() >= 60, "{} rows", rows.len());
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// A builder's `Debug` hides a proxy's user info by the rule the proxy's check uses: a token
/// alone holding a '/', or a password holding an '@' and a '/', showed whole or in part
/// (found by a review of secrets).
#[test]
fn a_builders_debug_hides_every_proxy_password() {
    for (url, secret) in [
        ("http://ab/cdhunter2+x@proxy.test:3128", "hunter2"),
        ("http://u:p@ss/w0rd@proxy.test:3128", "w0rd"),
    ] {
        let shown = format!("{:?}", Config::builder().https_proxy(url).http_proxy(url));
        assert!(!shown.contains(secret), "{shown}");
    }
    let e = Config::builder()
        .region("us-east-1")
        .endpoint_url("https://meter:p@ss/w0rd@h.test")
        .build()
        .unwrap_err();
    assert!(!format!("{e} {e:?}").contains("w0rd"), "{e:?}");
}

/// Nothing of a secret-looking setting reaches Debug output.
#[test]
fn debug_shows_no_proxy_password() {
    let dir = Dir::new("", "");
    let c = Config::builder()
        .environment(dir.env(&[
            ("AWS_REGION", "us-east-1"),
            ("HTTPS_PROXY", "http://u:hunter2@proxy.test:1"),
            ("HTTP_PROXY", "http://u:hunter2@proxy.test:1"),
        ]))
        .static_credentials("AKID", "s3cr3t-key", Some("s3ss10n".into()))
        .build()
        .unwrap();
    let text = format!("{c:?}");
    for secret in ["hunter2", "s3cr3t-key", "s3ss10n"] {
        assert!(!text.contains(secret), "{text}");
    }
}

/// A password (or a token alone) holding an unescaped `/`, `?` or `#` makes the URL parse as
/// something else or not at all: neither the refusal nor `Debug` shows it, and no other proxy
/// is used instead.
#[test]
fn a_proxy_password_with_url_delimiters_never_shows() {
    for url in [
        "http://u:hun#ter2@proxy.test:1",
        "http://u:hun?ter2@proxy.test:1",
        "http://u:hun/ter2@proxy.test:1",
        "http://u:1234/hunter2@proxy.test:3128",
        // A token alone, no password: base64 holds '/' and '+' (found by a review).
        "http://ab/cdhunter2+x@proxy.test:3128",
        "http://hunter2/x@proxy.test:3128",
        // The host forgotten: no '@' at all, so the password reads as a port (a review).
        "http://u:hunter2",
        "http://u:hunter2/",
        "u:hunter2",
        "http://u:hun/ter2",
        "http://u:hun:ter2",
        "http://u:ter2]",
    ] {
        let dir = Dir::new("", "");
        let e = Config::builder()
            .environment(dir.env(&[("AWS_REGION", "us-east-1"), ("HTTPS_PROXY", url)]))
            .static_credentials("AKID", "s3cr3t-key", None)
            .build()
            .expect_err(url);
        assert_eq!(e.error_code(), ErrorCode::InvalidConfig, "{e}");
        let text = format!("{e} {e:?}");
        assert!(!text.contains("ter2"), "{url}: {text}");
    }
    let e = Config::builder()
        .region("us-east-1")
        .endpoint_url("http://user:s3cr#t@127.0.0.1:1")
        .static_credentials("AKID", "s3cr3t-key", None)
        .build()
        .expect_err("user information in an endpoint");
    let text = format!("{e} {e:?}");
    assert!(!text.contains("s3cr"), "{text}");
    let e = Config::builder()
        .region("us-east-1")
        .endpoint_url("http://user:s3cret")
        .static_credentials("AKID", "s3cr3t-key", None)
        .build()
        .expect_err("an endpoint whose host was forgotten");
    let text = format!("{e} {e:?}");
    assert!(!text.contains("s3cr"), "{text}");
}

/// A file that is not a profile file is an error that names it, not a silent default.
#[test]
fn an_unparseable_config_file_is_invalid_config() {
    let dir = Dir::new("region = eu-west-1\n[profile x\n", "");
    let e = Config::builder()
        .environment(dir.env(&[("AWS_REGION", "us-east-1")]))
        .build()
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::InvalidConfig, "{e}");
    assert_eq!(e.field(), Some("AWS_CONFIG_FILE"));
}

// ---------------------------------------------------------------------------------------
// TLS and proxies on 127.0.0.1.

/// The emulator behind a TLS-terminating forwarder: `https://127.0.0.1:<port>`.
async fn https_emulator(ca: &Ca, emu: &Emulator) -> String {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream: SocketAddr = emu
        .endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    format!("https://{addr}")
}

/// A forward proxy on 127.0.0.1 that counts what it carries: CONNECT tunnels and
/// absolute-form requests.
struct CountingProxy {
    url: String,
    connects: Arc<AtomicUsize>,
    forwards: Arc<AtomicUsize>,
}

async fn counting_proxy() -> CountingProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connects = Arc::new(AtomicUsize::new(0));
    let forwards = Arc::new(AtomicUsize::new(0));
    let (c, f) = (connects.clone(), forwards.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (c, f) = (c.clone(), f.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut parts = head.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let authority = if method == "CONNECT" {
                    c.fetch_add(1, Ordering::SeqCst);
                    target.to_owned()
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                    target
                        .trim_start_matches("http://")
                        .split('/')
                        .next()
                        .unwrap_or("")
                        .to_owned()
                };
                let Ok(mut up) = TcpStream::connect(&authority).await else {
                    return;
                };
                if method == "CONNECT" {
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await;
                } else {
                    let _ = up.write_all(head.as_bytes()).await;
                }
                let buffered = reader.buffer().to_vec();
                let _ = up.write_all(&buffered).await;
                let mut tcp = reader.into_inner();
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
            });
        }
    });
    CountingProxy {
        url,
        connects,
        forwards,
    }
}

fn builder(endpoint: &str, env: HashMap<String, String>) -> ConfigBuilder {
    Config::builder()
        .environment(env)
        .region("us-east-1")
        .endpoint_url(endpoint)
        .static_credentials(
            metering_emulator::DEFAULT_ACCESS_KEY_ID,
            metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
            None,
        )
        .max_attempts(1u32)
}

async fn call(b: ConfigBuilder) -> Result<(), Error> {
    let client = Client::new(b.build()?);
    client
        .resolve_customer()
        .registration_token(metering_emulator::DEFAULT_ACCESS_KEY_ID)
        .send()
        .await
        .map(|_| ())
        .map_err(Error::from)
        .or_else(|e| match e.error_code() {
            // The emulator answered: TLS and the proxy did their part.
            ErrorCode::InvalidTokenException => Ok(()),
            _ => Err(e),
        })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A bundle whose PEM holds something that is no certificate is refused when the
/// configuration is built, naming the setting, as reqwest refused it when it built a client:
/// not left to fail every handshake (and be retried) once the roots are loaded lazily.
#[test]
fn a_bundle_of_no_usable_root_is_invalid_config() {
    let dir = Dir::new("", "");
    let bogus = dir.path("bogus.pem");
    for b in [
        builder("https://127.0.0.1:1", dir.env(&[])).ca_bundle(&bogus),
        builder("https://127.0.0.1:1", dir.env(&[])).extra_ca_bundle(&bogus),
    ] {
        let e = b.build().unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::InvalidConfig, "{e}");
        assert!(e.message().contains("cannot be a trusted root"), "{e}");
    }
}

#[tokio::test]
async fn a_ca_bundle_is_trusted_and_nothing_else_is() {
    let dir = Dir::new("", "");
    let ca = Ca::new();
    let other = Ca::new();
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let url = https_emulator(&ca, &emu).await;
    let ours = write(&dir.0, "ours.pem", &ca.cert_pem);
    let theirs = write(&dir.0, "theirs.pem", &other.cert_pem);

    // The platform's roots do not know the test CA.
    let e = call(builder(&url, dir.env(&[]))).await.unwrap_err();
    assert!(
        e.message().to_lowercase().contains("certificate")
            || format!("{e:?}").contains("certificate"),
        "{e:?}"
    );
    // AWS_CA_BUNDLE, the profile's ca_bundle and code each make it trusted.
    call(builder(&url, dir.env(&[("AWS_CA_BUNDLE", &ours)])))
        .await
        .unwrap();
    std::fs::write(
        dir.0.join("config"),
        format!("[default]\nca_bundle = {ours}\n"),
    )
    .unwrap();
    call(builder(&url, dir.env(&[]))).await.unwrap();
    call(builder(&url, dir.env(&[("AWS_CA_BUNDLE", &theirs)])).ca_bundle(&ours))
        .await
        .unwrap();
    // Added to the platform's roots (Node's NODE_EXTRA_CA_CERTS).
    std::fs::write(dir.0.join("config"), "").unwrap();
    call(builder(&url, dir.env(&[])).extra_ca_bundle(&ours))
        .await
        .unwrap();
    // A bundle with another CA only: refused, the bundle replaces the roots.
    let e = call(builder(&url, dir.env(&[("AWS_CA_BUNDLE", &theirs)])))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::Dispatch, "{e:?}");
    assert!(emu.requests().len() == 4, "{}", emu.requests().len());
}

#[tokio::test]
async fn proxies_carry_calls_except_no_proxy() {
    let dir = Dir::new("", "");
    let ca = Ca::new();
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let https = https_emulator(&ca, &emu).await;
    let ours = write(&dir.0, "ours.pem", &ca.cert_pem);
    let proxy = counting_proxy().await;
    let counts = || {
        (
            proxy.connects.load(Ordering::SeqCst),
            proxy.forwards.load(Ordering::SeqCst),
        )
    };

    // https through HTTPS_PROXY: one CONNECT tunnel.
    call(builder(
        &https,
        dir.env(&[("AWS_CA_BUNDLE", &ours), ("HTTPS_PROXY", &proxy.url)]),
    ))
    .await
    .unwrap();
    assert_eq!(counts(), (1, 0));
    // NO_PROXY names the host: straight there.
    call(builder(
        &https,
        dir.env(&[
            ("AWS_CA_BUNDLE", &ours),
            ("HTTPS_PROXY", &proxy.url),
            ("no_proxy", "127.0.0.1"),
        ]),
    ))
    .await
    .unwrap();
    assert_eq!(counts(), (1, 0));
    // From code, with nothing in the environment.
    call(builder(&https, dir.env(&[("AWS_CA_BUNDLE", &ours)])).https_proxy(proxy.url.as_str()))
        .await
        .unwrap();
    assert_eq!(counts(), (2, 0));
    // Code's no_proxy beats the environment's proxy.
    call(
        builder(
            &https,
            dir.env(&[("AWS_CA_BUNDLE", &ours), ("HTTPS_PROXY", &proxy.url)]),
        )
        .no_proxy("localhost,127.0.0.1"),
    )
    .await
    .unwrap();
    assert_eq!(counts(), (2, 0));
    // Plain http through HTTP_PROXY: an absolute-form request; HTTPS_PROXY does not apply.
    let http = emu.endpoint();
    call(builder(&http, dir.env(&[("HTTP_PROXY", &proxy.url)])))
        .await
        .unwrap();
    assert_eq!(counts(), (2, 1));
    call(builder(&http, dir.env(&[("HTTPS_PROXY", &proxy.url)])))
        .await
        .unwrap();
    assert_eq!(counts(), (2, 1));
    // A proxy that is down is a connection error, not a silent direct call.
    let e = call(builder(
        &http,
        dir.env(&[("HTTP_PROXY", "http://127.0.0.1:9")]),
    ))
    .await
    .unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::Dispatch, "{e:?}");
    assert_eq!(emu.requests().len(), 6);
}

/// The child of the next test: builds a configuration from this process's environment and
/// prints the error's field and message. Not a test on its own.
#[test]
fn non_utf8_environment_process() {
    if std::env::var_os("MM_NON_UTF8_CHILD").is_none() {
        return;
    }
    match Config::builder().build() {
        Ok(c) => println!("built: region {}", c.region()),
        Err(e) => println!("refused: {:?} {}", e.field(), e.message()),
    }
}

/// A variable whose value is not UTF-8 counted as unset: `AWS_REGION` fell through to
/// `AWS_DEFAULT_REGION` (another region), `AWS_PROFILE` to the default profile, and
/// `AWS_CONFIG_FILE` to `~/.aws/config`, without a word (found by a review of hostile process
/// environments). Such a value is now refused, naming the variable.
#[test]
fn a_variable_that_is_not_utf8_is_refused_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"us-west-2\xff");
    for (var, others) in [
        ("AWS_REGION", vec![("AWS_DEFAULT_REGION", "eu-west-1")]),
        ("AWS_PROFILE", vec![("AWS_REGION", "eu-west-1")]),
        // Read by aws-config itself, which counted it as unset too.
        ("AWS_CONFIG_FILE", vec![("AWS_REGION", "eu-west-1")]),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            vec![("AWS_REGION", "eu-west-1")],
        ),
    ] {
        let dir = std::env::temp_dir().join(format!("mm-nonutf8-{}-{var}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), "[default]\nregion = eu-west-1\n").unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "non_utf8_environment_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env_clear()
            .env("MM_NON_UTF8_CHILD", "1")
            .env("AWS_CONFIG_FILE", dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
            .envs(others)
            .env(var, bad)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("refused:") && text.contains(var),
            "{var}: {text}"
        );
    }
}
