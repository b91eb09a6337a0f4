// SPDX-License-Identifier: Apache-2.0
// Tests of the credentials provider and the default chain. Over 600 lines: each test sets up
// its own environment, files and credential endpoint, so none of them depends on another.

use super::*;
use crate::ErrorCode;

const SECRET: &str = "SECRETVALUE";

#[tokio::test]
async fn static_credentials_are_returned_as_given() {
    let c = Credentials::new(
        "AKIDSTATIC",
        SECRET,
        Some("TOKENVALUE".into()),
        None,
        "Static",
    );
    let p = CredentialsProvider::new(CredentialsSource::Static(c));
    let got = p.credentials().await.unwrap();
    assert_eq!(got.access_key_id(), "AKIDSTATIC");
    assert_eq!(got.secret_access_key(), SECRET);
    assert_eq!(got.session_token(), Some("TOKENVALUE"));
    assert_eq!(p.provider_name().as_deref(), Some("Static"));
}

#[test]
fn the_provider_and_its_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let p = CredentialsProvider::new(CredentialsSource::Static(Credentials::new(
        "AKID", "s", None, None, "Static",
    )));
    send_sync(&p);
    send(&p.credentials());
}

#[test]
fn debug_never_shows_secrets() {
    let c = Credentials::new(
        "AKIDSTATIC",
        SECRET,
        Some("TOKENVALUE".into()),
        None,
        "Static",
    );
    let src = CredentialsSource::Static(c.clone());
    let p = CredentialsProvider::new(src.clone());
    for text in [
        format!("{src:?}"),
        format!("{src:#?}"),
        format!("{p:?}"),
        format!("{c:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("TOKENVALUE"), "{text}");
        assert!(text.contains("AKIDSTATIC"), "{text}");
    }
}

#[cfg(not(feature = "default-chain"))]
#[test]
fn without_the_feature_the_default_chain_is_an_error() {
    let e = CredentialsSource::default_chain(None).unwrap_err();
    assert_eq!(e.error_code(), ErrorCode::Credentials);
}

#[cfg(feature = "default-chain")]
mod chain {
    use super::*;
    use std::ffi::OsString;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    /// Serialises the tests that read or write process-wide environment variables.
    static ENV_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// Every variable the chain or the region lookup reads.
    const VARS: &[&str] = &[
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCOUNT_ID",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_SSO",
        "HOME",
    ];

    /// A clean AWS environment (IMDS disabled, config files pointing into an empty
    /// temporary directory), restored on drop. Hold `ENV_LOCK` while it lives.
    struct Env {
        saved: Vec<(&'static str, Option<OsString>)>,
        dir: PathBuf,
    }

    impl Env {
        fn clean() -> Env {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "mm-cred-test-{}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let saved = VARS.iter().map(|&k| (k, std::env::var_os(k))).collect();
            for k in VARS {
                std::env::remove_var(k);
            }
            std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            std::env::set_var("AWS_CONFIG_FILE", dir.join("config"));
            std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"));
            // No real `~/.aws/sso/cache` either.
            std::env::set_var("HOME", &dir);
            Env { saved, dir }
        }

        fn set(&self, k: &str, v: impl AsRef<std::ffi::OsStr>) {
            assert!(VARS.contains(&k), "{k} is not restored");
            std::env::set_var(k, v);
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for Env {
        fn drop(&mut self) {
            for (k, v) in &self.saved {
                match v {
                    Some(v) => std::env::set_var(k, v),
                    None => std::env::remove_var(k),
                }
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn chain(profile: Option<&str>) -> CredentialsProvider {
        CredentialsProvider::new(
            CredentialsSource::default_chain(profile.map(str::to_owned)).unwrap(),
        )
        .with_region("us-east-1")
    }

    #[tokio::test]
    async fn environment_variables() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
        env.set("AWS_SECRET_ACCESS_KEY", SECRET);
        let p = chain(None);
        assert_eq!(p.provider_name(), None);
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDENV");
        assert_eq!(c.secret_access_key(), SECRET);
        assert_eq!(p.provider_name().as_deref(), Some("EnvironmentVariable"));
        assert_eq!(provider_name_of(&c), "EnvironmentVariable");
        // The cached copy drops aws-config's user-agent properties, so cloning it on
        // the hot path does not allocate.
        use aws_credential_types::credential_feature::AwsCredentialFeature;
        assert!(c.get_property::<Vec<AwsCredentialFeature>>().is_none());
        // Cached: a changed environment is not seen before the TTL.
        env.set("AWS_ACCESS_KEY_ID", "AKIDOTHER");
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDENV");
        let text = format!("{p:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("EnvironmentVariable"), "{text}");
    }

    #[tokio::test]
    async fn profile_files_with_a_named_profile() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        env.write(
            "credentials",
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\
             [work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = SECRETVALUE\n",
        );
        env.write("config", "[profile work]\nregion = eu-west-3\n");

        let p = chain(Some("work"));
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDWORK");
        assert_eq!(p.provider_name().as_deref(), Some("ProfileFile"));

        let p = chain(None);
        assert_eq!(
            p.credentials().await.unwrap().access_key_id(),
            "AKIDDEFAULT"
        );

        env.set("AWS_PROFILE", "work");
        let p = chain(None);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDWORK");
    }

    /// The chain reads the profile the configuration reads: `AWS_PROFILE` and a profile given
    /// in code are trimmed. Before, `AWS_PROFILE="work\r"` (a `.env` file with CRLF line
    /// ends) gave the configuration profile `work` and the chain no profile at all, so it went
    /// on to the container's credentials and signed as the task's role (found by a review).
    #[tokio::test]
    async fn a_profile_name_with_blanks_around_it_is_the_profile() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        env.write(
            "credentials",
            "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = SECRETVALUE\n",
        );
        let (url, hits, _) = serve(|n| ecs_body(n, Duration::from_secs(3600)));
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        for name in ["work\r", " work ", "work\n"] {
            env.set("AWS_PROFILE", name);
            let p = chain(None);
            assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDWORK");
        }
        std::env::remove_var("AWS_PROFILE");
        let p = chain(Some(" work\t"));
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDWORK");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "the container was never asked"
        );
    }

    #[tokio::test]
    async fn environment_wins_over_profile() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        env.write(
            "credentials",
            "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s1\n",
        );
        env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
        env.set("AWS_SECRET_ACCESS_KEY", "s2");
        let p = chain(None);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDENV");
    }

    #[tokio::test]
    async fn nothing_configured_is_a_credentials_error_quickly() {
        let _g = ENV_LOCK.lock().await;
        let _env = Env::clean();
        let started = Instant::now();
        // No region given either: aws-config's region lookup must not reach IMDS.
        let p = CredentialsProvider::new(CredentialsSource::default_chain(None).unwrap());
        let e = p.credentials().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(e.error_code(), ErrorCode::Credentials);
        assert!(!e.is_retryable());
        let msg = e.message();
        assert!(msg.contains("Environment"), "{msg}");
        assert!(msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(p.provider_name(), None);
    }

    #[tokio::test]
    async fn a_broken_profile_is_a_credentials_error_without_the_secret() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        // A profile with a key id but no secret: the profile provider fails outright.
        env.write(
            "config",
            "[profile broken]\naws_access_key_id = AKIDBROKEN\n\
             aws_session_token = SECRETVALUE\n",
        );
        let p = chain(Some("broken"));
        let e = p.credentials().await.unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::Credentials);
        assert!(e.message().contains("profile `broken`"), "{}", e.message());
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(SECRET), "{text}");
        }
    }

    /// An IAM Identity Center (SSO) profile without the token `aws sso login` caches is
    /// a credentials error that says to run it, not a silent fall-through to another
    /// provider. (tests/sso.rs covers the portal call and the expired token.)
    #[tokio::test]
    async fn an_sso_profile_without_a_token_says_to_run_aws_sso_login() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        env.write(
            "config",
            "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\n\
             sso_role_name = Dev\n[sso-session corp]\nsso_region = us-east-1\n\
             sso_start_url = https://corp.awsapps.com/start\n",
        );
        let e = chain(Some("dev")).credentials().await.unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::Credentials);
        assert!(
            e.message().contains("aws sso login --profile dev"),
            "{}",
            e.message()
        );
    }

    /// A loopback HTTP server answering every request with the JSON `body(n)` returns
    /// for request number `n` (from 0). Returns its URL and the request counter.
    fn serve(
        body: impl Fn(usize) -> String + Send + 'static,
    ) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
        serve_as(move |n, _head| ("application/json", body(n)))
    }

    /// [`serve`], answering with the content type and body `answer(n, request head)`
    /// returns.
    fn serve_as(
        answer: impl Fn(usize, &str) -> (&'static str, String) + Send + 'static,
    ) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/creds", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (h, hd) = (hits.clone(), heads.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body_in = vec![0; len];
                let _ = reader.read_exact(&mut body_in);
                let n = h.fetch_add(1, Ordering::SeqCst);
                let (ct, b) = answer(n, &head);
                hd.lock().unwrap().push(head);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                );
            }
        });
        (url, hits, heads)
    }

    fn rfc3339(t: SystemTime) -> String {
        // Days-from-civil inverse (Howard Hinnant), UTC, whole seconds.
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    fn ecs_body(n: usize, expires_in: Duration) -> String {
        ecs_body_expiring(n, SystemTime::now() + expires_in)
    }

    fn ecs_body_expiring(n: usize, expiration: SystemTime) -> String {
        serde_json::json!({
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": format!("AKIDECS{n}"),
            "SecretAccessKey": SECRET,
            "Token": format!("TOKEN{n}"),
            "Expiration": rfc3339(expiration),
            "LastUpdated": rfc3339(SystemTime::now()),
        })
        .to_string()
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_456_380_211);
        assert_eq!(rfc3339(t), "2016-02-25T06:03:31Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    /// EKS IRSA: the token file is exchanged at STS (`AWS_ENDPOINT_URL_STS` on loopback)
    /// through the crate's own HTTP client.
    #[tokio::test]
    async fn web_identity_goes_to_sts_through_the_crates_http_client() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, hits, heads) = serve_as(|_, _| {
            let xml = format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <AssumeRoleWithWebIdentityResult><Credentials>\
                 <AccessKeyId>ASIAWEBID</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey>\
                 <SessionToken>TOKENWEBID</SessionToken><Expiration>{}</Expiration>\
                 </Credentials></AssumeRoleWithWebIdentityResult>\
                 <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>\
                 </AssumeRoleWithWebIdentityResponse>",
                rfc3339(SystemTime::now() + Duration::from_secs(3600))
            );
            ("text/xml", xml)
        });
        let token = env.write("token", "eyJ.web.identity");
        env.set("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
        env.set("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/metering");
        env.set("AWS_ROLE_SESSION_NAME", "mm-test");
        env.set("AWS_ENDPOINT_URL_STS", url.trim_end_matches("/creds"));
        let p = chain(None);
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "ASIAWEBID");
        assert_eq!(c.session_token(), Some("TOKENWEBID"));
        assert_eq!(p.provider_name().as_deref(), Some("WebIdentityToken"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let head = heads.lock().unwrap()[0].clone();
        assert!(head.starts_with("POST / "), "{head}");
    }

    /// The client's FIPS and dual-stack settings reach the chain's STS call, wherever they
    /// were set (here in code, which aws-config cannot see): an EKS pod's web identity token
    /// went to the non-FIPS STS while metering went to the FIPS endpoint. Seen at the proxy,
    /// which is asked to tunnel to the STS host.
    #[tokio::test]
    async fn web_identity_uses_the_clients_fips_and_dual_stack_settings() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (proxy, _, heads) = serve_as(|_, _| ("text/plain", String::new()));
        let proxy = proxy.trim_end_matches("/creds").to_owned();
        let token = env.write("token", "eyJ.web.identity");
        env.set("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
        env.set("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/metering");
        for (fips, dual, host) in [
            (true, false, "sts-fips.us-east-1.amazonaws.com:443"),
            (false, true, "sts.us-east-1.api.aws:443"),
            (false, false, "sts.us-east-1.amazonaws.com:443"),
        ] {
            let cfg = crate::Config::builder()
                .region("us-east-1")
                .use_fips(fips)
                .use_dual_stack(dual)
                .environment([("HTTPS_PROXY", proxy.as_str())])
                .build()
                .unwrap();
            let _ = CredentialsProvider::for_client(&cfg).credentials().await;
            let head = heads.lock().unwrap().pop().unwrap_or_default();
            let want = format!("CONNECT {host} ");
            assert!(head.starts_with(&want), "want {want:?}, got {head:?}");
        }
    }

    /// EC2: IMDSv2's token PUT, role name and credentials GETs, on loopback.
    #[tokio::test]
    async fn imds_v2_goes_through_the_crates_http_client() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, _hits, heads) = serve_as(|_, head| {
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            if path == "/latest/api/token" {
                // The token's TTL header rides after the content type.
                let ct = "text/plain\r\nX-Aws-Ec2-Metadata-Token-Ttl-Seconds: 21600";
                (ct, "imds-session-token".to_owned())
            } else if path.ends_with("/security-credentials/") {
                ("text/plain", "metering-role".to_owned())
            } else {
                ("text/plain", ecs_body(0, Duration::from_secs(6 * 3600)))
            }
        });
        std::env::remove_var("AWS_EC2_METADATA_DISABLED");
        env.set(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            url.trim_end_matches("/creds"),
        );
        let p = chain(None);
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDECS0");
        assert_eq!(p.provider_name().as_deref(), Some("IMDSv2"));
        let heads = heads.lock().unwrap().join("\n").to_ascii_lowercase();
        assert!(heads.contains("put /latest/api/token"), "{heads}");
        assert!(
            heads.contains("x-aws-ec2-metadata-token: imds-session-token"),
            "{heads}"
        );
        assert!(
            heads.contains("/latest/meta-data/iam/security-credentials/metering-role"),
            "{heads}"
        );
    }

    /// Credentials the service refused are loaded again at most once per 10 s, counted
    /// from the last ask, a failed one too: with the source down, a second refusal after a
    /// failed load loaded again at every call (found by a last read).
    #[tokio::test]
    async fn refused_credentials_are_asked_for_once_per_gap_when_the_source_fails() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, hits, _) = serve(|n| {
            if n == 0 {
                ecs_body(0, Duration::from_secs(3600))
            } else {
                "not json".to_owned()
            }
        });
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = chain(None);
        let c = p.credentials().await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(10_100)).await;
        // Refused: asked again (aws-config's container provider tries a bad answer more
        // than once), the ask fails, the cached ones (still valid) are used.
        p.refused(&c, 0);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        let asked = hits.load(Ordering::SeqCst);
        assert!(asked > 1);
        // Refused again at once: not asked again before the gap.
        for _ in 0..3 {
            p.refused(&c, 0);
            assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        }
        assert_eq!(hits.load(Ordering::SeqCst), asked);
    }

    /// A credential source that is down for a moment (a container's agent restarting, IMDS
    /// throttling with 503s, STS throttled) is a retryable error, as a load's timeout was: a
    /// caller that keeps what a retryable error failed to send keeps it, and a meter's flush
    /// stops (its next comes soon) rather than fails. Before, it was final, and a caller's own
    /// retry loop dropped the usage (found by a review of credential setups). An answer that
    /// cannot be read stays final, and so does a source that is not there (a role profile
    /// whose `credential_source` is IMDS, off EC2: not loaded, whatever failed inside).
    #[tokio::test]
    async fn a_source_down_for_a_moment_is_a_retryable_credentials_error() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/creds", closed.local_addr().unwrap());
        drop(closed);
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let e = chain(None).credentials().await.unwrap_err();
        assert!(e.is_retryable(), "connection refused: {e}");
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/creds", busy.local_addr().unwrap());
        std::thread::spawn(move || {
            for s in busy.incoming() {
                let Ok(mut s) = s else { return };
                let _ = s.read(&mut [0u8; 4096]);
                let _ = s.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let e = chain(None).credentials().await.unwrap_err();
        assert!(e.is_retryable(), "503: {e}");
        let (url, _, _) = serve(|_| "not json".to_owned());
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let e = chain(None).credentials().await.unwrap_err();
        assert!(!e.is_retryable(), "an unreadable answer: {e}");
        std::env::remove_var("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        let no_imds = TcpListener::bind("127.0.0.1:0").unwrap();
        let imds = format!("http://{}", no_imds.local_addr().unwrap());
        drop(no_imds);
        env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds);
        env.write(
            "config",
            "[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\n\
             credential_source = Ec2InstanceMetadata\n",
        );
        let e = chain(Some("ops")).credentials().await.unwrap_err();
        assert!(!e.is_retryable(), "IMDS not there: {e}");
    }

    /// Credentials the source hands out already expired (a stale container endpoint) are
    /// asked for again after the gap, not at every call, refused or not.
    #[tokio::test]
    async fn refused_credentials_already_expired_are_asked_for_once_per_gap() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, hits, _) =
            serve(|n| ecs_body_expiring(n, SystemTime::now() - Duration::from_secs(60)));
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = chain(None);
        for _ in 0..3 {
            let c = p.credentials().await.unwrap();
            assert_eq!(c.access_key_id(), "AKIDECS0");
            p.refused(&c, 0);
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn ecs_container_credentials_are_refreshed_before_expiry() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        // The first answer expires 5 minutes and 3 seconds from now, so it is fresh for
        // about 3 seconds; the next ones last an hour.
        let (url, hits, heads) = serve(|n| {
            let life = if n == 0 { 303 } else { 3600 };
            ecs_body(n, Duration::from_secs(life))
        });
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        env.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer-xyz");
        let p = chain(None);

        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDECS0");
        assert_eq!(c.session_token(), Some("TOKEN0"));
        assert!(c.expiry().is_some());
        assert_eq!(p.provider_name().as_deref(), Some("EcsContainer"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let head = heads.lock().unwrap()[0].to_ascii_lowercase();
        assert!(head.starts_with("get /creds "), "{head}");
        assert!(head.contains("authorization: bearer-xyz"), "{head}");

        // Still outside the refresh window: served from the cache.
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        // Now within 5 minutes of expiry: the next call loads again.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDECS1");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS1");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    /// The container credentials endpoint is reached directly whatever `HTTP_PROXY` says, as
    /// botocore and SDK v3 reach it: through the proxy, the bearer token (and the role's
    /// credentials coming back) would cross it in plain HTTP (found by a hostile review: a
    /// proxy received `authorization: <token>` three times). The chain's other calls keep
    /// the proxies: an IMDS endpoint named off this host goes through `HTTP_PROXY` unless
    /// `NO_PROXY` names it (IMDS's own link-local addresses never do: see `tls.rs`).
    #[tokio::test]
    async fn container_and_link_local_calls_never_use_the_proxy_and_other_imds_calls_do() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, direct, heads) = serve(|n| ecs_body(n, Duration::from_secs(3600)));
        // A forward proxy answers absolute-form requests itself: enough to count them.
        let (proxy, proxied, _) = serve(|n| ecs_body(n, Duration::from_secs(3600)));
        let proxy = proxy.trim_end_matches("/creds").to_owned();
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        env.set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer-secret-token");
        for no_proxy in ["", "localhost,127.0.0.1"] {
            let cfg = crate::Config::builder()
                .region("us-east-1")
                .environment([("HTTP_PROXY", proxy.as_str()), ("NO_PROXY", no_proxy)])
                .build()
                .unwrap();
            let p = CredentialsProvider::new(cfg.credentials.clone()).with_http(cfg.http.clone());
            let (d0, p0) = (
                direct.load(Ordering::SeqCst),
                proxied.load(Ordering::SeqCst),
            );
            p.credentials().await.unwrap();
            let (d1, p1) = (
                direct.load(Ordering::SeqCst),
                proxied.load(Ordering::SeqCst),
            );
            assert_eq!((d1 - d0, p1 - p0), (1, 0), "NO_PROXY={no_proxy:?}");
        }
        assert!(heads.lock().unwrap()[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer-secret-token"));

        // IMDS named on another host: through the proxy (which answers the token PUT and the role GET with the
        // same canned body; the chain then fails to parse it, which is enough here).
        std::env::remove_var("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        std::env::remove_var("AWS_CONTAINER_AUTHORIZATION_TOKEN");
        std::env::remove_var("AWS_EC2_METADATA_DISABLED");
        // How many requests one load from IMDS at `endpoint` sends through the proxy.
        let through_proxy = |endpoint: &'static str| {
            env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint);
            let cfg = crate::Config::builder()
                .region("us-east-1")
                .environment([("HTTP_PROXY", proxy.as_str()), ("NO_PROXY", "")])
                .build()
                .unwrap();
            let p = CredentialsProvider::new(cfg.credentials.clone()).with_http(cfg.http.clone());
            let proxied = proxied.clone();
            let p0 = proxied.load(Ordering::SeqCst);
            async move {
                let _ = p.credentials().await;
                proxied.load(Ordering::SeqCst) - p0
            }
        };
        assert!(
            through_proxy("http://127.0.0.1:9").await > 0,
            "IMDS did not go through the proxy"
        );

        // IMDS at a link-local address: direct, whatever `HTTP_PROXY` says (no proxy reaches
        // this host's). `fe80::1` without a zone: the kernel refuses the connect outright,
        // so nothing leaves this host.
        assert_eq!(
            through_proxy("http://[fe80::1]:9").await,
            0,
            "link-local IMDS went through the proxy"
        );
    }

    /// The chain of a profile whose `credential_process` runs `script` (sh), each caller
    /// waiting `load_timeout` for a load.
    fn process_chain(env: &Env, script: &str, load_timeout: Duration) -> CredentialsProvider {
        let file = env.write("process.sh", script);
        let config = format!(
            "[profile process]\ncredential_process = sh {}\n",
            file.display()
        );
        env.write("config", &config);
        let mut p = chain(Some("process"));
        p.chain.as_mut().unwrap().load_timeout = load_timeout;
        p
    }

    /// The child of the next test: with SIGCHLD ignored, loads a profile's
    /// `credential_process` and prints the error. Not a test on its own.
    #[tokio::test]
    async fn sigchld_ignored_child() {
        if std::env::var_os("MM_SIGCHLD_CHILD").is_none() {
            return;
        }
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let script = format!(
            "echo '{{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": \"{SECRET}\"}}'\n"
        );
        let p = process_chain(&env, &script, Duration::from_secs(10));
        // SAFETY: sets this (child) process's SIGCHLD disposition, as a daemon may.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        match p.credentials().await {
            Ok(c) => println!("loaded {}", c.access_key_id()),
            Err(e) => println!("refused: {e}"),
        }
    }

    /// A host that ignores SIGCHLD (a daemon's habit) has its children reaped by the kernel,
    /// so the chain could not read a `credential_process`'s exit status and failed with "No
    /// child processes (os error 10)", which said nothing of the cause (found by a review of
    /// hostile process environments). The error now names SIGCHLD and what to do.
    #[test]
    fn a_credential_process_under_an_ignored_sigchld_says_so() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "credentials::tests::chain::sigchld_ignored_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MM_SIGCHLD_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("loaded AKIDPROC") || text.contains("SIGCHLD is ignored in this process"),
            "{text}"
        );
        assert!(!text.contains(SECRET), "{text}");
    }

    /// The hint of the test above is for ECHILD alone: a connection reset (`os error 104`)
    /// or an unreachable network (`101`) from STS or a container endpoint is not told to
    /// mend its SIGCHLD handling (a review's point).
    #[test]
    fn only_echild_gets_the_sigchld_hint() {
        use aws_credential_types::provider::error::CredentialsError;
        let p = chain(None);
        let cache = p.chain.as_ref().unwrap();
        for (errno, hinted) in [(10, true), (104, false), (101, false), (1, false)] {
            let e = CredentialsError::provider_error(format!(
                "Error retrieving credentials from external process: oops (os error {errno})"
            ));
            let message = cache.error(&e).message().to_owned();
            assert_eq!(message.contains("SIGCHLD"), hinted, "{errno}: {message}");
        }
    }

    /// A `credential_process` that hangs is run once, not once a call: aws-config does not
    /// kill the process when a timed-out load is dropped, so every call (a meter's flush each
    /// minute) left one more hung process behind. The load now goes on alone past the
    /// caller's timeout, and later callers wait for it.
    #[tokio::test]
    async fn a_hung_credential_process_is_started_once_not_once_a_call() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let pids = env.dir.join("pids");
        let script = format!("echo $$ >> {}\nexec sleep 30\n", pids.display());
        let p = process_chain(&env, &script, Duration::from_millis(700));
        for _ in 0..3 {
            let e = p.credentials().await.unwrap_err();
            assert!(e.message().contains("took longer than"), "{e}");
            assert!(e.is_retryable());
        }
        let started = std::fs::read_to_string(&pids).unwrap_or_default();
        for pid in started.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert_eq!(started.lines().count(), 1, "processes started: {started:?}");
    }

    /// A `credential_process` that answers after a caller's timeout serves the next caller
    /// (it answers at 3 s; the first caller gives up at 2 s, the second waits until 4 s):
    /// its answer was thrown away with the timed-out load, so one that always took longer
    /// than the limit never worked, and every call started it again.
    #[tokio::test]
    async fn a_slow_credential_process_serves_the_next_caller() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let runs = env.dir.join("runs");
        let script = format!(
            "echo run >> {}\nsleep 3\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIDSLOW\", \"SecretAccessKey\": \"{SECRET}\"}}'\n",
            runs.display()
        );
        let p = process_chain(&env, &script, Duration::from_secs(2));
        let e = p.credentials().await.unwrap_err();
        assert!(e.message().contains("took longer than"), "{e}");
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDSLOW");
        let runs = std::fs::read_to_string(&runs).unwrap();
        assert_eq!(runs.lines().count(), 1, "{runs:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_load() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, hits, _) = serve(|n| {
            std::thread::sleep(Duration::from_millis(200));
            ecs_body(n, Duration::from_secs(3600))
        });
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = Arc::new(chain(None));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(
                    async move { p.credentials().await.map(|c| c.access_key_id().to_owned()) },
                )
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "AKIDECS0");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn short_lived_credentials_are_not_reloaded_on_every_call() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, hits, _) = serve(|n| ecs_body(n, Duration::from_secs(120)));
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = chain(None);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    /// Credentials that arrive already expired by the local clock (a clock hours fast, a
    /// provider handing out stale ones), or within seconds of it, were loaded again on every
    /// call: a round trip to the provider each, one at a time behind the chain's lock (found
    /// by a review). They are asked for again at most every 10 s.
    #[tokio::test]
    async fn expired_credentials_are_not_reloaded_on_every_call() {
        let _g = ENV_LOCK.lock().await;
        for expiration in [
            SystemTime::now() - Duration::from_secs(60),
            SystemTime::now() + Duration::from_secs(5),
        ] {
            let env = Env::clean();
            let (url, hits, _) = serve(move |n| ecs_body_expiring(n, expiration));
            env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
            let p = chain(None);
            for _ in 0..5 {
                p.credentials().await.unwrap();
            }
            assert_eq!(hits.load(Ordering::SeqCst), 1, "{expiration:?}");
        }
        // Ones with seconds left are asked for again once they have run out, not later.
        let env = Env::clean();
        let (url, hits, _) = serve(|n| ecs_body(n, Duration::from_secs(2)));
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = chain(None);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS1");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    /// An expiry is the issuer's time: judged by a local clock 2 hours behind the service's
    /// (a VM restored from a snapshot before NTP catches up), credentials that expired an
    /// hour ago were kept, and every call was refused for that hour. Judged by the client's
    /// corrected clock, they are loaded again.
    #[tokio::test]
    async fn expiry_is_judged_by_the_service_clock() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, hits, _) = serve(|n| ecs_body(n, Duration::from_secs(3600)));
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = chain(None);
        let hours = |h: i64| h * 3600 * 1000;
        assert_eq!(
            p.credentials_at(hours(0)).await.unwrap().access_key_id(),
            "AKIDECS0"
        );
        // The client learnt that the service's clock is 2 hours ahead of this one's.
        assert_eq!(
            p.credentials_at(hours(2)).await.unwrap().access_key_id(),
            "AKIDECS1"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // Loaded by a clock 2 hours fast, before the client learnt it: credentials an hour
        // from expiring are already out by that clock, so they are used for the gap of 10 s
        // and asked for again after it. The next ask was a time of that fast clock, which a
        // caller on the service's clock reached only 2 hours on, an hour after the
        // credentials had expired (found by the review).
        let env = Env::clean();
        let (url, hits, _) = serve(|n| ecs_body(n, Duration::from_secs(3600)));
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = chain(None);
        assert_eq!(
            p.credentials_at(hours(2)).await.unwrap().access_key_id(),
            "AKIDECS0"
        );
        tokio::time::sleep(Duration::from_millis(10_300)).await;
        // On the service's clock, an hour on: they have expired.
        assert_eq!(
            p.credentials_at(hours(1) + 60_000)
                .await
                .unwrap()
                .access_key_id(),
            "AKIDECS1"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_valid_credentials() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        // 303 s of life: fresh for ~3 s, then the endpoint answers garbage.
        let (url, hits, _) = serve(|n| match n {
            0 => ecs_body(0, Duration::from_secs(303)),
            _ => format!("{{\"Code\":\"Nope\",\"Message\":\"{SECRET}\"}}"),
        });
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = chain(None);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        tokio::time::sleep(Duration::from_millis(3200)).await;
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        assert!(hits.load(Ordering::SeqCst) >= 2);
        // Retried only after the gap, not on every call.
        let n = hits.load(Ordering::SeqCst);
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "AKIDECS0");
        assert_eq!(hits.load(Ordering::SeqCst), n);
    }

    /// Callers waiting for a load that fails get its error; they do not each load again, one
    /// after another (found by a review: against an endpoint that never answers, N callers
    /// waited N times the load's 30 s limit).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_failed_load() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, hits, _) = serve(|_| {
            std::thread::sleep(Duration::from_millis(300));
            "not json".to_owned()
        });
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        let p = Arc::new(chain(None));
        // One load: as many requests as the container provider's own tries.
        assert!(p.credentials().await.is_err());
        let one_load = hits.load(Ordering::SeqCst);
        assert!(one_load >= 1);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.credentials().await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert_eq!(e.error_code(), ErrorCode::Credentials, "{e}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2 * one_load);
    }

    #[tokio::test]
    async fn ecs_errors_do_not_leak_secrets() {
        let _g = ENV_LOCK.lock().await;
        let env = Env::clean();
        let (url, _, _) = serve(|_| format!("{{\"Code\":\"Nope\",\"Message\":\"{SECRET}\"}}"));
        env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url);
        env.set("AWS_SECRET_ACCESS_KEY", SECRET); // a stray secret without a key id
        let p = chain(None);
        let e = p.credentials().await.unwrap_err();
        assert_eq!(e.error_code(), ErrorCode::Credentials);
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(SECRET), "{text}");
        }
    }

    /// A child forked while a thread of its parent's refreshed the chain (holding its slot's
    /// lock, or the last failure's) loads credentials anew: those locks stayed held in the
    /// child for good, and its first refresh waited on them forever (a review found it).
    #[cfg(unix)]
    #[test]
    fn a_child_forked_while_a_refresh_held_the_chain_loads_its_own() {
        static P: std::sync::OnceLock<CredentialsProvider> = std::sync::OnceLock::new();
        let _g = ENV_LOCK.blocking_lock();
        let env = Env::clean();
        env.set("AWS_ACCESS_KEY_ID", "AKIDENV");
        env.set("AWS_SECRET_ACCESS_KEY", SECRET);
        let p = P.get_or_init(|| chain(None));
        assert!(!p.chain.as_ref().unwrap().chain_built_for_test());
        let [loaded] = crate::runtime::forked_while_held(
            || {
                P.get()
                    .unwrap()
                    .chain
                    .as_ref()
                    .unwrap()
                    .hold_locks_for_test()
            },
            || {
                let p = P.get().unwrap();
                let loaded = crate::runtime::block_on(p.credentials())
                    .ok()
                    .and_then(Result::ok)
                    .is_some_and(|c| c.access_key_id() == "AKIDENV");
                // The chain it loaded with is its own, not its parent's.
                let built = p.chain.as_ref().unwrap().chain_built_for_test();
                [(loaded && built) as u8]
            },
        );
        assert_eq!(loaded, 1);
        drop(env);
    }
}
