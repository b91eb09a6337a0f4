// SPDX-License-Identifier: Apache-2.0
// The cached default chain, one per process (feature `default-chain`).

//! The cached default chain, one per process.

use std::sync::{Arc, MutexGuard};
use std::time::{Instant, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;

use super::Credentials;
use crate::runtime::PerProcess;
use crate::{Client, Error};

/// How long before expiry cached credentials are refreshed.
const REFRESH_BEFORE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// How long credentials without an expiry are reused before the chain is asked again.
const NO_EXPIRY_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The least time between two loads when the last one failed (and cached credentials are
/// still valid) or returned credentials already inside the refresh window.
const RETRY_GAP: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest one load through the chain may take (the chain's own HTTP calls have shorter
/// timeouts; this bounds `credential_process` and chained assume-role calls).
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest a load goes on past its callers' timeouts (a hung `credential_process`)
/// before it is given up and the chain is free for another.
const TASK_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Credentials within this margin of their expiry are never handed out when a
/// refresh fails: a request signed with them could expire in flight.
const EXPIRY_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone)]
struct Cached {
    creds: Credentials,
    /// The time, on the service's clock, from which they are refreshed (5 minutes before
    /// they expire); `None` for credentials without an expiry.
    refresh_from: Option<SystemTime>,
    /// Reused until this instant of the monotonic clock whatever the service's says:
    /// credentials without an expiry for 15 minutes, ones that arrived inside the refresh
    /// window for the gap between two asks, those a refresh failed to replace likewise. A
    /// span counted from one caller's clock is read the same by every other's (the
    /// callers' clocks differ by the offset each learnt from the service when it called).
    reuse_until: Instant,
    /// When the chain was last asked for them (monotonic clock): their load, or a later
    /// refresh that failed and kept them.
    asked: Instant,
}

impl Cached {
    fn new(creds: &Credentials, now: SystemTime) -> Self {
        let creds = without_properties(creds);
        let loaded = Instant::now();
        let (refresh_from, reuse_until) = match creds.expiry() {
            None => (None, loaded + NO_EXPIRY_TTL),
            Some(exp) => {
                let advisory = exp.checked_sub(REFRESH_BEFORE_EXPIRY).unwrap_or(exp);
                if advisory > now {
                    (Some(advisory), loaded)
                } else {
                    // Already inside the window: use them, but do not ask again on
                    // every call; ask again sooner if they are about to run out, and at
                    // the latest when they do. Ones already out (by this clock, which may
                    // be fast) are what the chain has: asked again after the gap, not at
                    // every call.
                    let left = |t: SystemTime| t.duration_since(now).unwrap_or_default();
                    let last = exp.checked_sub(EXPIRY_MARGIN).unwrap_or(exp);
                    let gap = if last > now {
                        RETRY_GAP.min(left(last))
                    } else if exp > now {
                        RETRY_GAP.min(left(exp))
                    } else {
                        RETRY_GAP
                    };
                    (Some(advisory), loaded + gap)
                }
            }
        };
        Cached {
            creds,
            refresh_from,
            reuse_until,
            asked: loaded,
        }
    }

    /// Still safe to sign with (not within `EXPIRY_MARGIN` of expiry).
    fn usable(&self, now: SystemTime) -> bool {
        match self.creds.expiry() {
            None => true,
            Some(exp) => now + EXPIRY_MARGIN < exp,
        }
    }

    /// How long they may still be handed out, by `now`: until `EXPIRY_MARGIN` before their
    /// expiry (zero once inside it), at most `most` (and `most` without an expiry).
    fn left(&self, now: SystemTime, most: std::time::Duration) -> std::time::Duration {
        self.creds
            .expiry()
            .and_then(|exp| exp.checked_sub(EXPIRY_MARGIN))
            .map_or(most, |last| {
                last.duration_since(now).unwrap_or_default().min(most)
            })
    }
}

/// The cached credentials, locked; a forked child starts with its parent's (plain values)
/// when no thread of the parent's held them at the fork, and loads its own otherwise.
fn locked(cached: &PerProcess<Option<Cached>>) -> MutexGuard<'_, Option<Cached>> {
    cached.lock_or_inherit(|parent| parent.cloned().flatten())
}

/// The built chain and the single-flight lock, of one process.
struct Slot {
    chain: Arc<tokio::sync::Mutex<Option<DefaultCredentialsChain>>>,
}

impl Slot {
    fn new() -> Arc<Slot> {
        Arc::new(Slot {
            chain: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }
}

/// What one load of the chain needs, owned by the task that runs it.
struct ChainSettings {
    /// Trimmed, as the configuration reads it (see [`ChainCache::profile_name`]).
    profile: Option<String>,
    region: Option<String>,
    use_fips: bool,
    use_dual_stack: bool,
    http: crate::tls::HttpSettings,
}

impl ChainSettings {
    async fn build(self) -> DefaultCredentialsChain {
        // The chain's own calls (IMDS, ECS, STS) go through the crate's reqwest.
        let conf = aws_config::provider_config::ProviderConfig::default()
            .with_http_client(crate::tls::smithy::ReqwestHttpClient::new(
                self.http.clone(),
            ))
            .with_use_fips(Some(self.use_fips))
            .with_use_dual_stack(Some(self.use_dual_stack));
        let mut builder = DefaultCredentialsChain::builder().configure(conf);
        // Always named, and trimmed as the configuration reads it: aws-config reads
        // `AWS_PROFILE` untrimmed, so `prod\r` (a `.env` file with CRLF line ends) or `prod `
        // gave the region and endpoint of profile `prod` while the chain, finding no such
        // profile, went on to the container's or the instance's role and signed as it.
        if let Some(p) = &self.profile {
            builder = builder.profile_name(p);
        }
        if let Some(r) = &self.region {
            builder = builder.region(aws_config::Region::new(r.clone()));
        }
        builder.build().await
    }
}

/// How one refresh went, short of its timeout.
enum Attempt {
    /// Another caller's load left fresh credentials.
    Fresh(Credentials),
    /// Another caller's load failed while this one waited (or the task could not start).
    Shared(Error),
    /// This caller's load, and the chain it held (none if the task failed).
    Done(
        Option<tokio::sync::OwnedMutexGuard<Option<DefaultCredentialsChain>>>,
        Result<Credentials, CredentialsError>,
    ),
}

pub(super) struct ChainCache {
    profile: Option<String>,
    pub(super) region: Option<String>,
    pub(super) use_fips: bool,
    pub(super) use_dual_stack: bool,
    pub(super) http: crate::tls::HttpSettings,
    /// Shared with a load's task, which records what it loaded itself (see `refresh`).
    /// Read at every call: one process's lock (see `runtime::PerProcess`), so a child forked
    /// while a parent's thread read it does not wait for good at its first refresh.
    cached: Arc<PerProcess<Option<Cached>>>,
    /// This process's chain (built at its first refresh). One process's lock, as `cached`
    /// is: a child forked while a parent's thread refreshed builds its own; the parent's
    /// holds connections tied to the parent's runtime and is kept, never dropped, there.
    slot: PerProcess<Option<Arc<Slot>>>,
    /// How long a caller waits for a load ([`LOAD_TIMEOUT`]; shorter in tests).
    pub(super) load_timeout: std::time::Duration,
    /// The last load that failed: when it ended, and its error's message and whether it is
    /// retryable. Callers that waited for that load get its error rather than each starting
    /// their own, one after another (a hung STS or SSO endpoint cost N callers N times the
    /// load's limit).
    /// One process's, as `slot` is: a child starts with none.
    failed: PerProcess<Option<(std::time::Instant, String, bool)>>,
}

impl ChainCache {
    pub(super) fn new(profile: Option<String>) -> Self {
        ChainCache {
            profile,
            region: None,
            use_fips: false,
            use_dual_stack: false,
            http: crate::tls::HttpSettings::default(),
            cached: Arc::new(PerProcess::new()),
            slot: PerProcess::new(),
            load_timeout: LOAD_TIMEOUT,
            failed: PerProcess::new(),
        }
    }

    pub(super) fn provider_name(&self) -> Option<String> {
        let cached = locked(&self.cached);
        cached.as_ref().map(|c| super::provider_name_of(&c.creds))
    }

    /// The service refused `creds`: if they are the cached ones, a refresh is due once
    /// [`RETRY_GAP`] has passed since the chain was last asked for them (their load, or a
    /// refresh that failed), so that credentials the chain hands out again (IMDS's, until it
    /// rotates them) or a source that is down are asked at most once per gap however many
    /// calls are refused, and refusals of calls still in flight do not undo a load made
    /// meanwhile. Never reused past their expiry's margin, unless they came already past it
    /// (what the chain has: asked again after the gap, as [`Cached::new`] does).
    pub(super) fn refused(&self, creds: &Credentials, now: SystemTime) {
        let mut cached = locked(&self.cached);
        if let Some(c) = cached.as_mut() {
            if c.creds.access_key_id() == creds.access_key_id()
                && c.creds.session_token() == creds.session_token()
            {
                c.refresh_from = Some(SystemTime::UNIX_EPOCH);
                let left = c.left(now, RETRY_GAP);
                let gap_end = c.asked + RETRY_GAP;
                c.reuse_until = if left.is_zero() {
                    gap_end
                } else {
                    gap_end.min(Instant::now() + left)
                };
            }
        }
    }

    /// The cached credentials when no refresh is due.
    fn fresh(&self, now: SystemTime) -> Option<Credentials> {
        let cached = locked(&self.cached);
        match cached.as_ref() {
            Some(c)
                if c.refresh_from.is_some_and(|t| now < t) || Instant::now() < c.reuse_until =>
            {
                Some(c.creds.clone())
            }
            _ => None,
        }
    }

    /// Judged by the local clock corrected by `offset_ms` (see
    /// `CredentialsProvider::credentials_at`).
    pub(super) async fn credentials(&self, offset_ms: i64) -> Result<Credentials, Error> {
        if let Some(c) = self.fresh(Client::local_plus(offset_ms)) {
            return Ok(c);
        }
        // Boxed: the chain's loading future is kilobytes, and inline it would make every
        // call's future (moved several times on its way to a runtime) that much larger.
        Box::pin(self.refresh(offset_ms)).await
    }

    /// This process's slot; a forked child gets a new one (see the module docs).
    fn slot(&self) -> Arc<Slot> {
        Arc::clone(self.slot.lock().get_or_insert_with(Slot::new))
    }

    #[cold]
    async fn refresh(&self, offset_ms: i64) -> Result<Credentials, Error> {
        let asked = std::time::Instant::now();
        let slot = self.slot();
        let loaded = tokio::time::timeout(self.load_timeout, async {
            let mut chain = Arc::clone(&slot.chain).lock_owned().await;
            // Another caller may have refreshed while this one waited for the lock.
            if let Some(c) = self.fresh(Client::local_plus(offset_ms)) {
                return Attempt::Fresh(c);
            }
            // Or failed to: its answer is this caller's too.
            if let Some((at, message, retryable)) = &*self.failed.lock() {
                if *at >= asked {
                    return Attempt::Shared(
                        Error::credentials(message.clone()).with_retryable(*retryable),
                    );
                }
            }
            // The load is a task of its own that holds the chain: one that outlasts the
            // timeout (a hung `credential_process`, which aws-config does not kill when its
            // future is dropped) goes on alone, and later loads wait for it instead of each
            // starting another process that hangs too.
            let settings = self.settings();
            let cache = Arc::clone(&self.cached);
            // It records credentials it loaded before it lets go of the chain, so that a load
            // that ends after this caller's timeout (a process taking 40 s) serves the next
            // caller instead of being thrown away; and hands the chain back with its answer,
            // so that this caller records a failure before the next waiter looks for it.
            let task = crate::runtime::spawn_io(async move {
                // Bounded too, so that a process that never ends holds the chain for
                // [`TASK_LIMIT`], not until the service restarts (each caller meanwhile fails
                // after its own timeout). What it left running is aws-config's to reap.
                let load = async {
                    if chain.is_none() {
                        *chain = Some(settings.build().await);
                    }
                    match chain.as_ref() {
                        Some(c) => c.provide_credentials().await,
                        None => Err(CredentialsError::unhandled("default chain not built")),
                    }
                };
                let loaded = tokio::time::timeout(TASK_LIMIT, load)
                    .await
                    .unwrap_or_else(|_| {
                        Err(CredentialsError::unhandled(format!(
                            "still loading after {} s; given up",
                            TASK_LIMIT.as_secs()
                        )))
                    });
                if let Ok(creds) = &loaded {
                    let fresh = Cached::new(creds, Client::local_plus(offset_ms));
                    *locked(&cache) = Some(fresh);
                }
                (chain, loaded)
            });
            match task {
                Ok(task) => match task.await {
                    Ok((chain, loaded)) => Attempt::Done(Some(chain), loaded),
                    Err(e) => Attempt::Done(
                        None,
                        Err(CredentialsError::unhandled(format!(
                            "the load did not finish: {e}"
                        ))),
                    ),
                },
                Err(e) => Attempt::Shared(e),
            }
        })
        .await;
        // The chain stays locked (`_chain`) until the answer is recorded below.
        let (_chain, loaded) = match loaded {
            Ok(Attempt::Fresh(c)) => return Ok(c),
            Ok(Attempt::Shared(e)) => return Err(e),
            Ok(Attempt::Done(chain, result)) => (chain, Ok(result)),
            Err(elapsed) => (None, Err(elapsed)),
        };
        let now = Client::local_plus(offset_ms);
        let err = match loaded {
            Ok(Ok(creds)) => {
                tracing::debug!(
                    provider = %super::provider_name_of(&creds),
                    "loaded credentials from the default chain"
                );
                // The task cached them (without aws-config's user-agent properties).
                let cached = locked(&self.cached);
                return Ok(cached.as_ref().map_or(creds, |c| c.creds.clone()));
            }
            Ok(Err(e)) => self.error(&e),
            Err(_) => Error::credentials(format!(
                "loading credentials from the default chain{} took longer than {:?}",
                self.profile_note(),
                self.load_timeout
            ))
            .with_retryable(true),
        };
        let mut cached = locked(&self.cached);
        match cached.as_mut() {
            Some(c) if c.usable(now) => {
                tracing::warn!(
                    provider = %super::provider_name_of(&c.creds),
                    error = err.message(),
                    "refreshing credentials failed; using the cached ones, still valid"
                );
                // Never past their margin: a request signed then could expire in flight.
                let left = c.left(now, RETRY_GAP);
                c.asked = Instant::now();
                c.reuse_until = c.asked + left;
                Ok(c.creds.clone())
            }
            _ => {
                *self.failed.lock() = Some((
                    std::time::Instant::now(),
                    err.message().to_owned(),
                    err.is_retryable(),
                ));
                Err(err)
            }
        }
    }

    /// Whether the current slot holds a built chain.
    #[cfg(test)]
    pub(super) fn chain_built_for_test(&self) -> bool {
        let slot = self.slot();
        let built = slot.chain.try_lock().map(|c| c.is_some()).unwrap_or(true);
        built
    }

    /// The locks a refresh takes, held.
    #[cfg(test)]
    pub(super) fn hold_locks_for_test(&self) -> impl Sized + '_ {
        (self.slot.lock(), self.failed.lock())
    }

    /// What a load needs of this cache, for the task that runs it.
    fn settings(&self) -> ChainSettings {
        ChainSettings {
            profile: self.profile_name(),
            region: self.region.clone(),
            use_fips: self.use_fips,
            use_dual_stack: self.use_dual_stack,
            http: self.http.clone(),
        }
    }

    /// The profile to read: the one given in code, else `AWS_PROFILE`; trimmed, and empty
    /// counts as unset.
    fn profile_name(&self) -> Option<String> {
        let trimmed = |p: &str| Some(p.trim().to_owned()).filter(|p| !p.is_empty());
        self.profile.as_deref().and_then(trimmed).or_else(|| {
            crate::profile::env_lossy("AWS_PROFILE")
                .as_deref()
                .and_then(trimmed)
        })
    }

    fn profile_note(&self) -> String {
        match &self.profile {
            Some(p) => format!(" (profile `{p}`)"),
            None => String::new(),
        }
    }

    /// A helpful, single-line message for a chain error, with no secret in it.
    pub(super) fn error(&self, e: &CredentialsError) -> Error {
        let not_loaded = matches!(e, CredentialsError::CredentialsNotLoaded(_));
        // For "nothing found" the chain's own error (one line per provider tried) is the
        // useful part; the outer "the credential provider was not enabled" is noise.
        let start: &(dyn std::error::Error + 'static) = match std::error::Error::source(e) {
            Some(src) if not_loaded => src,
            _ => e,
        };
        let detail = one_line(&crate::error::with_causes(start));
        let detail = self.scrub(detail);
        let hint: &str = if not_loaded {
            ". Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, configure a profile \
             (AWS_PROFILE, ~/.aws/config, ~/.aws/credentials), run with an IAM role (EKS \
             IRSA or pod identity, ECS task role, EC2 instance profile) or pass static \
             credentials"
        } else if detail.contains("SSO token") {
            // aws-config says the cached IAM Identity Center token is missing, unreadable
            // or expired, but not what to do about it.
            &match &self.profile {
                Some(p) => {
                    format!(". Sign in to IAM Identity Center again: aws sso login --profile {p}")
                }
                None => ". Sign in to IAM Identity Center again: aws sso login".to_owned(),
            }
        } else if detail.contains("(os error 10)") {
            // ECHILD: a `credential_process` was reaped before its status was read. Not told
            // from the disposition afterwards: tokio replaces an ignored SIGCHLD with its own
            // handler when it cannot wait on the child otherwise.
            ". The exit status of the profile's credential_process was taken before it could \
             be read: SIGCHLD is ignored in this process (SIG_IGN), or a SIGCHLD handler of \
             the host reaps every child (waitpid(-1)); restore SIGCHLD's default action \
             before loading credentials, or use another credential source"
        } else {
            ""
        };
        Error::credentials(format!(
            "could not load credentials from the default chain{}: {detail}{hint}",
            self.profile_note()
        ))
        .with_retryable(transient(e))
    }

    /// Removes every secret we know of from `text`: the environment's and the cached
    /// credentials' secret key and session token.
    fn scrub(&self, mut text: String) -> String {
        let mut secrets: Vec<String> = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .collect();
        if let Some(c) = locked(&self.cached).as_ref() {
            secrets.push(c.creds.secret_access_key().to_owned());
            secrets.extend(c.creds.session_token().map(str::to_owned));
        }
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), "** redacted **");
            }
        }
        text
    }
}

/// A copy of `c` without its type-erased properties.
///
/// aws-config attaches SDK user-agent metrics (`AwsCredentialFeature`) to the credentials
/// it loads, and `Credentials::clone` deep-copies that map: a `HashMap` and a boxed `Vec`
/// allocated on every clone. This crate signs with aws-sigv4 and never reads them, so the
/// cache keeps a copy without them and the hot path's clone is one `Arc` increment.
fn without_properties(c: &Credentials) -> Credentials {
    let mut b = Credentials::builder()
        .access_key_id(c.access_key_id())
        .secret_access_key(c.secret_access_key())
        .provider_name(intern(super::provider_name_of(c)));
    b.set_session_token(c.session_token().map(str::to_owned));
    b.set_expiry(c.expiry());
    b.set_account_id(c.account_id().cloned());
    b.build()
}

/// `name` as a `&'static str` (what `Credentials` stores): the names aws-config uses
/// are constants; any other is leaked once and reused.
fn intern(name: String) -> &'static str {
    const KNOWN: &[&str] = &[
        "EnvironmentVariable",
        "ProfileFile",
        "AssumeRoleProvider",
        "WebIdentityToken",
        "EcsContainer",
        "IMDSv2",
        "SSO",
        "CredentialProcess",
        "Login",
        "Unknown",
    ];
    if let Some(k) = KNOWN.iter().find(|k| **k == name) {
        return k;
    }
    // One process's, as every lock a load takes (see `runtime::PerProcess`).
    static OTHERS: PerProcess<Vec<&'static str>> = PerProcess::new();
    let mut others = OTHERS.lock_or_inherit(|parent| parent.cloned().unwrap_or_default());
    if let Some(k) = others.iter().find(|k| **k == name) {
        return k;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    others.push(leaked);
    leaked
}

/// Whether a failed load may work if tried again: its timeout, or a source down for a
/// moment (a connection refused or reset: a container's agent restarting; an HTTP 5xx or
/// 429: IMDS throttling; STS throttled or unable to reach the identity provider). Not a
/// configuration error, no source at all (even when something failed inside on the way), a
/// name that does not resolve, or an answer that cannot be read.
fn transient(e: &CredentialsError) -> bool {
    match e {
        CredentialsError::ProviderTimedOut(_) => true,
        CredentialsError::ProviderError(_) | CredentialsError::Unhandled(_) => {
            let mut at: Option<&(dyn std::error::Error + 'static)> = Some(e);
            while let Some(cause) = at {
                // A source that is not there (IMDS off EC2 under a role profile) stays so,
                // whatever failed on the way.
                if let Some(CredentialsError::CredentialsNotLoaded(_)) = cause.downcast_ref() {
                    return false;
                }
                if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                    use std::io::ErrorKind::*;
                    if matches!(
                        io.kind(),
                        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected
                    ) {
                        return true;
                    }
                }
                let text = cause.to_string();
                let busy = [
                    "StatusCode(5",
                    "StatusCode(429",
                    "Throttling",
                    "IDPCommunicationError",
                ];
                if busy.iter().any(|t| text.contains(t)) {
                    return true;
                }
                at = cause.source();
            }
            false
        }
        _ => false,
    }
}

/// Joins the lines of a multi-line message: `"head:\n  a\n  b"` becomes `"head: a; b"`.
fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut out = lines.next().unwrap_or_default().to_owned();
    for (i, l) in lines.enumerate() {
        out.push_str(if i == 0 { " " } else { "; " });
        out.push_str(l);
    }
    out
}
