// SPDX-License-Identifier: Apache-2.0
// IAM Identity Center (SSO) profiles through the default chain: a profile with an
// `sso_session`, the token `aws sso login` caches, the SSO portal on loopback, and a call to
// the emulator signed with the role credentials the portal returned.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use marketplace_metering::{Client, Config, ErrorCode};
use metering_emulator::{Emulator, EmulatorConfig};
use sha1::Digest;

mod support;

/// The tests change process-wide variables (the chain reads the process environment).
static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ACCESS_TOKEN: &str = "sso-access-token-from-aws-sso-login";

/// Requests the fake portal saw: (request line, bearer token header).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// The SSO portal's `GetRoleCredentials` on 127.0.0.1, handing out the emulator's session
/// identity. Returns its base URL.
fn portal(expiry: SystemTime) -> (String, Seen) {
    slow_portal(expiry, Duration::ZERO)
}

/// [`portal`], answering each request after `delay`.
fn slow_portal(expiry: SystemTime, delay: Duration) -> (String, Seen) {
    portal_revoking(expiry, delay, 0)
}

/// [`slow_portal`], whose first `revoked` answers hand out credentials the service no longer
/// knows (a session revoked before its expiry).
fn portal_revoking(expiry: SystemTime, delay: Duration, revoked: usize) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut bearer = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("x-amz-sso_bearer_token") {
                        bearer = v.trim().to_owned();
                    }
                }
            }
            log.lock().unwrap().push((line.trim().to_owned(), bearer));
            std::thread::sleep(delay);
            let millis = expiry
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let key = if log.lock().unwrap().len() <= revoked {
                "ASIAREVOKEDSESSION00"
            } else {
                metering_emulator::SESSION_ACCESS_KEY_ID
            };
            let body = format!(
                "{{\"roleCredentials\":{{\"accessKeyId\":\"{key}\",\"secretAccessKey\":\"{}\",\
                 \"sessionToken\":\"{}\",\"expiration\":{millis}}}}}",
                metering_emulator::SESSION_SECRET_ACCESS_KEY,
                metering_emulator::SESSION_TOKEN,
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

/// A fake home with `~/.aws/config` (an `sso-session` and a profile using it) and, when
/// `token_expiry` is given, the token `aws sso login` caches in `~/.aws/sso/cache/`.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(token_expiry: Option<&str>) -> Home {
        let dir = std::env::temp_dir().join(format!(
            "mm-sso-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(dir.join(".aws/sso/cache")).unwrap();
        std::fs::write(
            dir.join(".aws/config"),
            "[profile dev]\n\
             sso_session = corp\n\
             sso_account_id = 111122223333\n\
             sso_role_name = MeteringRole\n\
             region = us-east-1\n\
             \n\
             [sso-session corp]\n\
             sso_region = us-east-1\n\
             sso_start_url = https://corp.awsapps.com/start\n\
             sso_registration_scopes = sso:account:access\n",
        )
        .unwrap();
        if let Some(expiry) = token_expiry {
            // The cache file is named after the SHA-1 of the session name.
            let name: String = sha1::Sha1::digest(b"corp")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(
                dir.join(format!(".aws/sso/cache/{name}.json")),
                format!(
                    "{{\"startUrl\":\"https://corp.awsapps.com/start\",\"region\":\"us-east-1\",\
                     \"accessToken\":\"{ACCESS_TOKEN}\",\"expiresAt\":\"{expiry}\"}}"
                ),
            )
            .unwrap();
        }
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SSO",
        ] {
            std::env::remove_var(k);
        }
        std::env::set_var("HOME", &dir);
        std::env::set_var("AWS_CONFIG_FILE", dir.join(".aws/config"));
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        Home { dir }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client(emu: &Emulator) -> Client {
    client_with(emu, |b| b.max_attempts(1u32))
}

/// A client of profile `dev` for the emulator, its configuration changed by `tune`.
fn client_with(
    emu: &Emulator,
    tune: impl FnOnce(marketplace_metering::ConfigBuilder) -> marketplace_metering::ConfigBuilder,
) -> Client {
    let b = Config::builder()
        .profile("dev")
        .region("us-east-1")
        .endpoint_url(emu.endpoint());
    Client::new(tune(b).build().unwrap())
}

/// A ResolveCustomer call the emulator refuses (the token is not one), once signed.
async fn resolve_refused(c: &Client) -> marketplace_metering::error::ResolveCustomerError {
    c.resolve_customer()
        .registration_token("not-a-token")
        .send()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn an_sso_profile_signs_calls_with_the_role_credentials_of_the_cached_token() {
    let _g = ENV.lock().await;
    let home = Home::new(Some("2099-01-01T00:00:00Z"));
    let (url, seen) = portal(SystemTime::now() + Duration::from_secs(3600));
    std::env::set_var("AWS_ENDPOINT_URL_SSO", &url);
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let c = client(&emu);

    let e = resolve_refused(&c).await;
    // The emulator checked the signature and the session token, then rejected the token.
    assert_eq!(e.error_code(), ErrorCode::InvalidTokenException, "{e}");
    assert_eq!(c.credentials_provider_name().await.unwrap(), "SSO");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (line, bearer) = &seen[0];
    assert!(line.starts_with("GET /federation/credentials?"), "{line}");
    assert!(line.contains("account_id=111122223333"), "{line}");
    assert!(line.contains("role_name=MeteringRole"), "{line}");
    assert_eq!(bearer, ACCESS_TOKEN);
    drop(home);
}

/// A seller's subscriber that takes every level from every crate (`RUST_LOG=trace`) saw the
/// SSO portal's answer whole: the client's connector handed the credential chain's answers
/// over as in-memory bodies, which aws-smithy's orchestrator prints in full at trace
/// ("received response from service"), the role's secret key and session token with them.
/// Its own connector's streaming bodies print as `BoxBody`; so do the client's now. (The
/// orchestrator also prints each request at trace, the SSO bearer token among its headers:
/// its own doing, before any connector, which the README tells sellers to filter.)
#[tokio::test]
async fn a_subscriber_taking_every_level_sees_no_credentials_of_the_chain() {
    let _g = ENV.lock().await;
    let everything = support::trace::Everything::install_global();
    let home = Home::new(Some("2099-01-01T00:00:00Z"));
    let (url, _seen) = portal(SystemTime::now() + Duration::from_secs(3600));
    std::env::set_var("AWS_ENDPOINT_URL_SSO", &url);
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let e = resolve_refused(&client(&emu)).await;
    assert_eq!(e.error_code(), ErrorCode::InvalidTokenException, "{e}");
    drop(home);
    let text = everything.text();
    assert!(
        text.contains("received response"),
        "the orchestrator's events were seen"
    );
    for secret in [
        metering_emulator::SESSION_SECRET_ACCESS_KEY,
        metering_emulator::SESSION_TOKEN,
    ] {
        assert!(!text.contains(secret), "{secret} reached the subscriber");
    }
}

/// An SSO endpoint with user information that cannot be reached: the credentials error
/// names the URL the chain's call went to, as reqwest writes it, and so would show a
/// password in it. The chain's client drops user information before the connector sees the
/// URL (a review suspected otherwise); this keeps it so.
#[tokio::test]
async fn an_unreachable_chain_endpoint_shows_no_password() {
    let _g = ENV.lock().await;
    let home = Home::new(Some("2099-01-01T00:00:00Z"));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    std::env::set_var(
        "AWS_ENDPOINT_URL_SSO",
        format!("http://user:hunter2pw@127.0.0.1:{port}"),
    );
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let e = resolve_refused(&client(&emu)).await;
    drop(home);
    assert_eq!(e.error_code(), ErrorCode::Credentials, "{e}");
    let text = format!("{e} {e:?}");
    assert!(!text.contains("hunter2pw"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

/// Credentials that take longer to load than the attempt timeout still load: the load has
/// its own limit and happens before the attempt's clock starts. Before, every attempt
/// cancelled the load it started, so no call could ever be signed (each failed as a read
/// timeout on the metering endpoint, which was never contacted; found by a review).
#[tokio::test]
async fn a_load_slower_than_the_attempt_timeout_still_signs_the_call() {
    let _g = ENV.lock().await;
    let home = Home::new(Some("2099-01-01T00:00:00Z"));
    let (url, seen) = slow_portal(
        SystemTime::now() + Duration::from_secs(3600),
        Duration::from_millis(1500),
    );
    std::env::set_var("AWS_ENDPOINT_URL_SSO", &url);
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let c = client_with(&emu, |b| {
        b.max_attempts(3u32).attempt_timeout(Duration::from_secs(1))
    });
    let e = resolve_refused(&c).await;
    assert_eq!(e.error_code(), ErrorCode::InvalidTokenException, "{e}");
    assert_eq!(e.attempts(), 1, "{e}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(emu.requests().len(), 1);
    drop(home);
}

/// Credentials the service refuses before their expiry (a revoked session, a key deleted, a
/// `credential_process` that reported the wrong expiry) are loaded again at the next call.
/// Before, the cache kept signing with them until 5 minutes before their stated expiry (up
/// to 12 hours for a role's session), and a meter's hours aged out of the service's window.
#[tokio::test]
async fn credentials_the_service_refuses_are_loaded_again() {
    let _g = ENV.lock().await;
    let home = Home::new(Some("2099-01-01T00:00:00Z"));
    let (url, seen) = portal_revoking(
        SystemTime::now() + Duration::from_secs(6 * 3600),
        Duration::ZERO,
        1,
    );
    std::env::set_var("AWS_ENDPOINT_URL_SSO", &url);
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let c = client(&emu);
    // Loaded again at most once per 10 s however many calls are refused: the second call,
    // at once, signs with the same.
    for _ in 0..2 {
        let e = resolve_refused(&c).await;
        assert_eq!(e.code(), "UnrecognizedClientException", "{e}");
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(10_100)).await;
    let e = resolve_refused(&c).await;
    assert_eq!(e.error_code(), ErrorCode::InvalidTokenException, "{e}");
    assert_eq!(seen.lock().unwrap().len(), 2);
    drop(home);
}

/// An operation timeout that ends a call while its credentials still load sent nothing: a
/// retryable credentials error with no attempt, which a meter puts back to sealed. Before,
/// it was a read timeout on the metering endpoint, and a meter kept the call's hours as
/// possibly metered (an expiry then said "may have been billed" of usage never sent).
#[tokio::test]
async fn an_operation_timeout_during_the_load_is_a_credentials_error() {
    let _g = ENV.lock().await;
    let home = Home::new(Some("2099-01-01T00:00:00Z"));
    let (url, _seen) = slow_portal(
        SystemTime::now() + Duration::from_secs(3600),
        Duration::from_millis(1500),
    );
    std::env::set_var("AWS_ENDPOINT_URL_SSO", &url);
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let c = client_with(&emu, |b| {
        b.max_attempts(3u32)
            .operation_timeout(Duration::from_millis(300))
    });
    let e = resolve_refused(&c).await;
    assert_eq!(e.error_code(), ErrorCode::Credentials, "{e}");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.attempts(), 0, "{e}");
    assert!(e.message().contains("operation timeout"), "{e}");
    assert!(emu.requests().is_empty());
    drop(home);
}

async fn login_error(_home: &Home) -> String {
    let (url, seen) = portal(SystemTime::now() + Duration::from_secs(3600));
    std::env::set_var("AWS_ENDPOINT_URL_SSO", &url);
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let e = resolve_refused(&client(&emu)).await;
    assert_eq!(e.error_code(), ErrorCode::Credentials, "{e}");
    assert!(seen.lock().unwrap().is_empty(), "the portal was called");
    assert!(emu.requests().is_empty(), "the emulator was called");
    let text = e.to_string();
    assert!(text.contains("aws sso login --profile dev"), "{text}");
    assert!(!text.contains(ACCESS_TOKEN), "{text}");
    text
}

#[tokio::test]
async fn no_cached_token_says_to_run_aws_sso_login() {
    let _g = ENV.lock().await;
    let home = Home::new(None);
    login_error(&home).await;
}

#[tokio::test]
async fn an_expired_token_says_to_run_aws_sso_login() {
    let _g = ENV.lock().await;
    let home = Home::new(Some("2020-01-01T00:00:00Z"));
    let text = login_error(&home).await;
    assert!(text.contains("expired"), "{text}");
}
