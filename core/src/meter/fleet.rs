// SPDX-License-Identifier: Apache-2.0
// The fleet store: the meter on PostgreSQL, shared by every replica of a service.

//! The fleet store.
//!
//! Many replicas (pods, instances, workers) record into one PostgreSQL database; every
//! customer-hour is billed once across the fleet, whatever replica dies when.
//!
//! * **Writes.** Each write appends one row to the journal (`mm_journal`): its entries as
//!   arrays, so a group commit of many customers costs one insert, and writers never queue
//!   on a shared row. Every write transaction first inserts its commit key (replica,
//!   session, sequence) into `mm_commits`; when a COMMIT's outcome is unknown (the
//!   connection dropped, the server restarted) the same transaction is run again with the
//!   same key, and a key already there means the first attempt committed: nothing is
//!   counted twice. An INSERT of a key another, still-running, attempt holds waits for that
//!   attempt to end, so the check is exact even when the old backend has not noticed its
//!   client left. A write is one statement, a call of the store's `mm_add_v3` function (see
//!   `schema.rs`), so one round trip: the function runs the steps below in the statement's
//!   own transaction.
//! * **Folding.** `mm_fold_v1` (`mm_fold_v2` in the sealer, which also names the buckets
//!   it added into past 2^30) moves the journal into each replica's partial sums
//!   (`mm_partials`, keyed by the bucket and the replica id) in one statement that deletes
//!   the rows it adds: each journal row counts once, whoever folds it, whenever a folder
//!   dies. Every seal folds first, and a trigger folds again as each hour is sealed (so a
//!   sealer of a release two back, which sums the partial rows only, misses nothing).
//! * **The maximum.** A replica journals at most 2^23 into a bucket per session (counted
//!   in `write.rs`); past that its writes to the bucket add into its partial rows. A write
//!   that takes a replica's partial past 2^23 makes the bucket *checked*: it folds the
//!   journal and marks the bucket, and from then on every write into it, from any replica,
//!   adds into the partial rows and sums the whole bucket against the model's maximum,
//!   one check at a time (see `mm_add_v3` in `schema.rs`); so does a write into the
//!   partial rows that takes the bucket's sum past 2^30. Every fold marks the buckets it
//!   takes past 2^30 (the sealer's through `mm_mark_v1`), so many sessions journaling into
//!   one bucket, each below its own limit, are checked from the next flush on. A record
//!   that would pass the maximum is refused when it is written, never found over at the
//!   seal. Replicas of the previous release (`mm_add_v2`), still writing during a rolling
//!   upgrade, do not look for the mark.
//! * **Sealing.** Which hours are sealable is decided by the database's `now()` (or the
//!   meter's `clock` when one was given, as tests do), never by a replica's clock. A
//!   writer holds a shared advisory lock on (product, hour) while it adds and checks,
//!   after taking it, whether the hour is sealed (`mm_sealed_hours`); the sealer takes the
//!   lock exclusively, so no in-flight add is missed and none lands after the seal (READ
//!   COMMITTED is enough: each statement sees what committed before it started, and the
//!   check runs after the lock is granted). The sealed sum goes to `mm_buckets`, where a
//!   trigger refuses any change to a sealed quantity. An add for a sealed hour is counted
//!   in the first open hour from the writer's current hour on (a late event).
//! * **Sending.** A flush holds a sender slot (a session advisory lock; `fleet_senders` per
//!   product, default 1) so the fleet's call rate stays that of one meter; it claims up to 25
//!   sealed buckets with `FOR UPDATE SKIP LOCKED`, a lease and a fencing counter, commits,
//!   calls the service, and applies each answer only if the bucket's counter still matches.
//!   A crashed sender's claim expires and the same records (same quantity, same timestamp)
//!   are sent again; the service's de-duplication makes the resend harmless. A frozen
//!   sender's slot is taken over once its connection has been silent for a lease (see
//!   `Fleet::sender`).

mod claim;
mod schema;
mod seal;
mod write;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::AtomicI64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

use super::store::{customer_from, customer_parts};
use super::{lock, FleetSettings};
use crate::error::FieldPath;
use crate::Error;

/// How long an operation keeps retrying a lost connection (a server restart, a terminated
/// backend) before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// How long one try of an operation (a connection's start-up included) may take before its
/// connection is dropped and the try counts as a lost connection: a server that accepts and
/// never answers (a hung backend, a black-holed route) would otherwise hang `flush()` and
/// `close()` for good. A try is one short transaction; waits for another replica's lock
/// are as short.
const ATTEMPT_FOR: Duration = Duration::from_secs(30);

/// [`ATTEMPT_FOR`] of the operations whose one transaction grows with the data: sealing
/// (which folds the whole journal, after an outage hours of it) and migrating the schema.
const LONG_ATTEMPT_FOR: Duration = Duration::from_secs(600);

/// TCP keepalives every [`KEEPALIVE_IDLE`] of quiet unless the connection string sets them
/// (libpq's `keepalives_idle`, `keepalives_interval`, `keepalives_retries`; a
/// `keepalives_idle` of 7200, the default, reads as unset): the default
/// (two hours) outlasts the idle timeout of every NAT and load balancer on the way (Azure's
/// 4 minutes, AWS NAT gateways' 350 s), which forget a quiet flow without telling either
/// end, and the pool's connections sit quiet between bursts.
fn keep_alive(config: &mut tokio_postgres::Config) {
    if !config.get_keepalives() {
        return;
    }
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(10));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
}

/// How long a pooled connection is quiet before TCP checks that its peer is there.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// How long a pooled connection may sit idle and still be taken: longer than a running
/// process's keepalives take to find a dead one ([`KEEPALIVE_IDLE`] and three probes 10 s
/// apart) and than the default flush interval (a meter flushing every minute keeps its
/// connections), shorter than the idle timeouts of NATs and load balancers (Azure's 4
/// minutes, AWS NAT gateways' 350 s).
const POOL_IDLE_FOR: Duration = Duration::from_secs(90);

/// When a pooled connection went idle, by both clocks.
struct Quiet {
    since: Instant,
    wall: std::time::SystemTime,
}

impl Quiet {
    fn now() -> Quiet {
        Quiet {
            since: Instant::now(),
            wall: std::time::SystemTime::now(),
        }
    }

    /// Whether the connection sat idle past [`POOL_IDLE_FOR`]: it may be dead without anyone
    /// having seen it, since keepalives do not run in a frozen or suspended process (an AWS
    /// Lambda environment between invocations, a stopped VM or container) while a NAT
    /// forgets its flow, and a dead one took a whole try ([`ATTEMPT_FOR`]) to find out.
    /// Either clock: a suspended machine's monotonic clock stands still.
    fn too_long(&self) -> bool {
        self.since.elapsed() > POOL_IDLE_FOR || self.wall.elapsed().is_ok_and(|d| d > POOL_IDLE_FOR)
    }
}

/// A connection: its client and the task driving its socket. Dropped, it closes the socket
/// at once (tokio-postgres would keep it open while an answer is pending), so a try
/// abandoned on a timeout leaves no backend holding its transaction and its locks, and no
/// connection outside [`POOL_MAX`]. An idle backend takes the close quietly.
pub(crate) struct PgClient {
    client: tokio_postgres::Client,
    task: tokio::task::AbortHandle,
}

impl std::ops::Deref for PgClient {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for PgClient {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.client
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connections a meter uses at once (and keeps idle), besides a flush's sender slot. More
/// concurrent writers (durable records from many threads) wait for one rather than open
/// more: a database's `max_connections` is shared with the seller's other services.
const POOL_MAX: usize = 16;

/// The longest `fleet_lease` taken: half an hour. A sender that dies holding a claim keeps
/// its buckets from the others until the lease ends, and an hour past its grace can be sent
/// for at least an hour (the grace leaves one): a claim must end well within it.
const MAX_LEASE: Duration = Duration::from_secs(1_800);

/// The default replica id: host name and process id.
pub(crate) fn default_replica_id() -> String {
    format!("{}:{}", super::owner::host_name(), std::process::id())
}

fn pg_err(e: tokio_postgres::Error) -> Error {
    let mut msg = match e.as_db_error() {
        Some(db) => format!("fleet store: {} ({})", db.message(), db.code().code()),
        // With its causes ("error performing TLS handshake" alone does not say that the
        // certificate's CA is not trusted). They hold no password: the URL is never in one.
        None => format!("fleet store: {}", crate::error::with_causes(&e)),
    };
    // Not for other settings tokio-postgres refuses (no host, a bad port count).
    let password = msg.contains("password") || e.to_string().starts_with("authentication");
    if e.code().is_some_and(|c| c.code().starts_with("28")) || (login_unmade(&e) && password) {
        msg.push_str(LOGIN_HINT);
    }
    if e.code().map(SqlState::code) == Some(REPLICA_ROLE) {
        let msg = e.as_db_error().map_or("", |db| db.message());
        return Error::invalid_config(format!("fleet store: {msg}")).with_source(e);
    }
    Error::invalid_state(msg).with_source(e)
}

/// The SQLSTATE of a session whose `session_replication_role` is `replica` (see [`SESSION`]).
const REPLICA_ROLE: &str = "MM002";

/// What each session sets for itself, whatever the DBA made the default for the role or the
/// database (found by a review):
/// * read committed: the writes' check of sealed hours and the seal's fold read what
///   committed while they waited for a lock; under `repeatable read` a seal missed a write
///   committed meanwhile (sealed without it, then a unique violation at every later seal);
/// * a commit that reaches the disk before it is acknowledged (`synchronous_commit` `off` or
///   `local` raised to `on`; stronger settings kept): with `off`, a crash dropped records
///   `record()` had acknowledged;
/// * no `statement_timeout` or `lock_timeout`: the seal's fold is a long statement under its
///   locks, cancelled at every flush by a role's timeout; the store bounds its own
///   waits ([`ATTEMPT_FOR`], [`RETRY_FOR`]);
/// * a refusal (SQLSTATE MM002, an `InvalidConfig` error) of a session whose
///   `session_replication_role` is `replica` (AWS DMS's guides set it in a target's
///   parameter group, where it often stays; it may be set while the meter runs): the store's
///   triggers do not fire there, so the fold a sealer's insert makes was skipped, an hour was
///   sealed without what the journal held, and every later seal failed on a unique key
///   (found by a review). The triggers are not made to fire always instead: a logical
///   replication subscriber of the database applies rows with that role, and must not fold;
/// * and, added at connect (through `pg_settings`, since older servers lack them), an
///   `idle_in_transaction_session_timeout` of a lease (see [`idle_in_transaction_limit`]),
///   no `transaction_timeout` (PostgreSQL 17: a seal is one transaction, which grows with
///   the journal after an outage; one ended by a role's limit at every flush left the fleet
///   sealing nothing again, found by a review) and no `idle_session_timeout` (below the
///   slot's ping, it ended the sender's session mid-flush).
const SESSION: &str = "SET default_transaction_isolation = 'read committed';
    SELECT set_config('synchronous_commit', 'on', false)
     WHERE current_setting('synchronous_commit') IN ('off', 'local');
    SET statement_timeout = 0;
    SET lock_timeout = 0;
    DO $$ BEGIN
        IF current_setting('session_replication_role') = 'replica' THEN
            RAISE EXCEPTION USING ERRCODE = 'MM002', MESSAGE =
                'this role''s sessions start with session_replication_role = replica, which '
                'turns off the store''s triggers (an hour would be sealed without what was '
                'recorded): reset it for the role or the database (ALTER ROLE ... RESET '
                'session_replication_role, or ALTER DATABASE ...), or, for a role allowed to '
                'set it, put options=-csession_replication_role=origin in the URL';
        END IF;
    END $$;";

/// How long a session of the store may sit idle inside a transaction before the server ends
/// it (`idle_in_transaction_session_timeout`): a lease, and at least 5 s. The store never
/// waits for anything but the server inside a transaction, so only a replica that died or
/// froze there (SIGSTOP, a paused VM, a connection cut off with no reset) reaches it. Its
/// session held the product's fold lock and its hours' locks, which every other replica's
/// seal waits for: a process the replica had forked keeps its socket open after it dies, so
/// the server never saw it go, and the fleet billed nothing for as long as that process
/// lived. The floor keeps a starved but live replica's transaction from being ended (it
/// would retry, as after any lost connection).
fn idle_in_transaction_limit(lease: Duration) -> Duration {
    lease.max(Duration::from_secs(5))
}

/// Whether an error is about the connection or a transient state of the database, so the
/// whole operation may run again (writes are protected by their commit key).
///
/// A read-only database is one: during a failover the store's address still reaches the
/// old primary, now a standby, until the DNS name moves (seconds to a minute); a record
/// refused then as final is dropped by a caller that retries only retryable errors. So are
/// the DBA's `lock_timeout` (a seal holds an hour's lock while it folds) and
/// `statement_timeout` or a cancelled query, and a full disk or out of memory on the server.
fn retryable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // I/O, connect, protocol: the connection is gone; but a certificate this client does
        // not trust stays untrusted (it was retried for the store's whole minute).
        // Nor a login this client cannot make (no password in the URL, an authentication
        // method it does not offer): retried for a minute before, as a lost connection.
        None => !tls_refused(e) && !login_unmade(e),
        Some(c) => {
            let code = c.code();
            code.starts_with("08") // connection exceptions
                || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || code.starts_with("53") // insufficient resources: disk full, out of memory
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::READ_ONLY_SQL_TRANSACTION
                || *c == SqlState::LOCK_NOT_AVAILABLE
                || *c == SqlState::QUERY_CANCELED
        }
    }
}

/// The connection string with libpq's TLS settings that tokio-postgres does not read taken
/// out, and the CA file named: `sslmode=verify-full` and `verify-ca` become `require` (this
/// connector always checks the certificate's chain and host name, as `verify-full` does),
/// and `sslrootcert=FILE` names the CAs to trust instead of the platform's (a managed
/// database's own CA). Given whole, tokio-postgres refused both as no connection string.
/// Both spellings: a URL's query (`?sslmode=verify-full&sslrootcert=/etc/rds.pem`) and
/// key=value words.
fn libpq_tls_settings(url: &str) -> (String, Option<String>) {
    let mut root = None;
    // What to put in place of one setting: `None` keeps it as written.
    let mut rewrite = |key: &str, value: &str| -> Option<&'static str> {
        match key {
            "sslrootcert" => {
                root = Some(value.to_owned());
                Some("")
            }
            "sslmode" if matches!(value, "verify-full" | "verify-ca") => Some("sslmode=require"),
            _ => None,
        }
    };
    let mut out = String::with_capacity(url.len());
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        // The query begins at the first `?` after the user info, which tokio-postgres reads up
        // to the last `@` before the path (a password may hold a `?`).
        let authority = rest.find('/').map_or(rest, |p| &rest[..p]);
        let after_user = authority.rfind('@').map_or(0, |a| a + 1);
        let base_len = url.len() - rest.len();
        let Some(q) = rest[after_user..]
            .find('?')
            .map(|q| base_len + after_user + q)
        else {
            return (url.to_owned(), None);
        };
        out.push_str(&url[..q]);
        let mut kept = Vec::new();
        for item in url[q + 1..].split('&') {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            match rewrite(key, &percent_decode(value)) {
                Some("") => {}
                Some(other) => kept.push(other.to_owned()),
                None => kept.push(item.to_owned()),
            }
        }
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    } else {
        // key=value words, as libpq reads them: blanks around `=`, a value in single quotes
        // with backslash escapes. Only the two settings change; the rest stays byte for byte.
        let mut copied = 0;
        for (span, key, value) in conninfo_pairs(url) {
            if let Some(with) = rewrite(&key, &value) {
                out.push_str(&url[copied..span.start]);
                out.push_str(with);
                copied = span.end;
            }
        }
        out.push_str(&url[copied..]);
    }
    (out, root)
}

/// The `key=value` settings of a libpq key=value connection string, with each one's byte
/// span; stops at the first thing that is not one (tokio-postgres then says what is wrong).
fn conninfo_pairs(s: &str) -> Vec<(std::ops::Range<usize>, String, String)> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    let skip_blanks = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_blanks(&mut it);
        let Some(&(start, _)) = it.peek() else {
            return out;
        };
        let mut key = String::new();
        while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        skip_blanks(&mut it);
        if it.next_if(|(_, c)| *c == '=').is_none() {
            return out;
        }
        skip_blanks(&mut it);
        let mut value = String::new();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match it.next() {
                    None => return out,
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => match it.next() {
                        Some((_, c)) => value.push(c),
                        None => return out,
                    },
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        let end = it.peek().map_or(s.len(), |(i, _)| *i);
        out.push((start..end, key, value));
    }
}

/// `%XX` escapes decoded (a URL's query value); anything else kept.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `e` is a TLS handshake that refused the server's certificate (from a CA this
/// client does not trust, for another name): no retry makes it pass. Other TLS failures (an
/// alert, a connection cut mid-record during a failover) stay retryable.
/// Whether `e` is a login this client could not make, whatever the server: tokio-postgres's
/// authentication and configuration errors (a password the server asks for and the URL
/// lacks: it reads neither `PGPASSWORD` nor `~/.pgpass`).
fn login_unmade(e: &tokio_postgres::Error) -> bool {
    let s = e.to_string();
    s.starts_with("authentication error") || s.starts_with("invalid configuration")
}

/// What to do about a login the database refused (SQLSTATE class 28) or this client could
/// not make: the URL is read once, as the meter opens.
const LOGIN_HINT: &str = "; the fleet store logs in with the user and password of its URL, \
    read once as the meter opens (not PGPASSWORD or ~/.pgpass): a password that changes \
    (rotated by Secrets Manager; an RDS IAM authentication token, valid for 15 minutes) needs \
    a meter opened with the new URL, or a pooler such as RDS Proxy that keeps one password \
    for the meter";

fn tls_refused(e: &tokio_postgres::Error) -> bool {
    let refused = |r: &rustls::Error| {
        matches!(
            r,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    };
    let mut next = std::error::Error::source(e);
    while let Some(err) = next {
        let io_inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>());
        if err.downcast_ref::<rustls::Error>().is_some_and(refused) || io_inner.is_some_and(refused)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// The TLS connector: rustls on *ring* with the platform's root certificates, or the CAs of
/// `root_file` (`sslrootcert`) instead, used when the URL's `sslmode` asks for it (`prefer`,
/// the default, falls back to plain on a server without TLS; Unix sockets never use it).
fn tls(root_file: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match root_file {
        Some(path) => {
            let refused = |why: String| {
                Error::invalid_input(
                    FieldPath::argument("database_url"),
                    format!("sslrootcert {path:?}: {why}"),
                )
            };
            let pem = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| refused(format!("not a PEM certificate file: {e}")))?;
                roots.add(c).map_err(|e| refused(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(refused("holds no certificate".into()));
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid_config(format!("fleet store TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

pub(crate) struct Fleet {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Idle connections, each with when it was put back, newest last.
    pool: Mutex<Vec<(PgClient, Quiet)>>,
    /// [`POOL_MAX`] permits: one held by each operation while it has a connection.
    in_use: tokio::sync::Semaphore,
    replica: String,
    /// The commit keys' session (see `write.rs`); a copy of the process (restored from a
    /// snapshot) holds the same one, so [`Fleet::adopt_keys_of`] may set it in tests.
    session: Mutex<String>,
    seq: AtomicI64,
    /// Whether commit keys have bits drawn from the kernel (see [`Fleet::next_seq`]): always
    /// but in tests.
    draw_keys: std::sync::atomic::AtomicBool,
    /// Whether [`Fleet::leave_copied_keys`] has said so on standard error.
    copy_said: std::sync::atomic::AtomicBool,
    settings: FleetSettings,
    /// The fencing counter of each bucket this meter has claimed and not yet answered.
    claims: Mutex<HashMap<i64, i64>>,
    /// Whether this meter's role may write the journal (a runtime role granted its tables
    /// before the journal existed may not: it then adds into partial rows, as before).
    journal: std::sync::atomic::AtomicBool,
    /// The database's encoding when it is neither UTF8 nor SQL_ASCII: strings must be ASCII.
    narrow_encoding: std::sync::OnceLock<String>,
    /// What this session has journaled per bucket (see `write.rs`).
    budget: Mutex<write::Budget>,
    /// When this meter's seal last deleted the commit keys no retry needs (see `seal.rs`):
    /// that reads the whole table, so once an hour.
    commits_pruned: Mutex<Option<std::time::Instant>>,
    /// The newest hour of the product the service took or found past its window, and when
    /// it was read (see `write.rs`).
    closed_through: Mutex<Option<(Instant, Option<i64>)>>,
    /// Since when an event callback of the meter has been running (see `Fleet::hold`).
    callback_since: std::sync::Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Fleet")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Connects, migrates the schema and returns the store.
    pub(crate) async fn open(settings: FleetSettings) -> Result<Fleet, Error> {
        let (url, root_file) = libpq_tls_settings(&settings.url.0);
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            Error::invalid_input(
                FieldPath::argument("database_url"),
                format!("is not a PostgreSQL connection string: {e}"),
            )
        })?;
        keep_alive(&mut config);
        let wants_tls = config.get_ssl_mode() != tokio_postgres::config::SslMode::Disable;
        let replica = settings
            .replica_id
            .clone()
            .unwrap_or_else(default_replica_id);
        if replica.is_empty() || replica.len() > 200 {
            return Err(Error::invalid_input(
                FieldPath::argument("replica_id"),
                "must be 1 to 200 characters",
            ));
        }
        // PostgreSQL's text cannot hold it: every write naming the replica would fail.
        super::record::no_nul("replica_id", &replica)?;
        if settings.senders == 0 {
            return Err(Error::invalid_input(
                FieldPath::argument("fleet_senders"),
                "must be at least 1",
            ));
        }
        if settings.lease.is_zero() {
            // Every claim would expire as it is made: replicas would keep taking each
            // other's buckets mid-call.
            return Err(Error::invalid_input(
                FieldPath::argument("fleet_lease"),
                "must be longer than zero",
            ));
        }
        if settings.lease > MAX_LEASE {
            // Past it, a dead sender's claim could outlast the service's window; and one past
            // what a PostgreSQL timestamp holds (an "infinite" `u64::MAX` milliseconds) failed
            // every claim, so nothing was ever sent.
            return Err(Error::invalid_input(
                FieldPath::argument("fleet_lease"),
                format!(
                    "must be at most {} seconds: a sender that dies holding a claim keeps its \
                     hours from the other replicas until the lease ends, and they must still \
                     be sendable then",
                    MAX_LEASE.as_secs()
                ),
            ));
        }
        let fleet = Fleet {
            config,
            tls: if wants_tls {
                Some(tls(root_file.as_deref())?)
            } else {
                None
            },
            pool: Mutex::new(Vec::new()),
            in_use: tokio::sync::Semaphore::new(POOL_MAX),
            replica,
            session: Mutex::new(uuid::Uuid::new_v4().simple().to_string()),
            seq: AtomicI64::new(1),
            copy_said: std::sync::atomic::AtomicBool::new(false),
            draw_keys: std::sync::atomic::AtomicBool::new(true),
            settings,
            claims: Mutex::new(HashMap::new()),
            journal: std::sync::atomic::AtomicBool::new(false),
            narrow_encoding: std::sync::OnceLock::new(),
            budget: Mutex::new(write::Budget::default()),
            commits_pruned: Mutex::new(None),
            closed_through: Mutex::new(None),
            callback_since: std::sync::Arc::new(Mutex::new(None)),
        };
        fleet.refuse_transaction_pooler().await?;
        fleet.migrate().await?;
        if let Some(encoding) = fleet.narrow_encoding() {
            tracing::warn!(
                encoding,
                "fleet store: the database's encoding is not UTF8; customers, dimensions and \
                 the replica id must be ASCII"
            );
            // Known only once connected, after the schema is made: the replica id (the
            // caller's, or the host name's) is written with every event.
            if !fleet.holds(&fleet.replica) {
                return Err(Error::invalid_input(
                    FieldPath::argument("replica_id"),
                    super::record::ascii_problem(encoding),
                ));
            }
        }
        Ok(fleet)
    }

    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    /// Refuses a store reached through a pooler that hands a connection's server to another
    /// client between transactions (pgbouncer's `pool_mode = transaction`, the pooled port of
    /// many managed platforms) or statements: a sender's session advisory lock stays on a
    /// server connection another replica is then handed, so more replicas send at once than
    /// `fleet_senders` allows and a release may free another's slot; the settings each
    /// connection makes once (`SESSION`) reach only some; prepared statements fail now and
    /// then. Nothing of it errs at once, so it is looked for: one connection marks its
    /// session, and a second connection's open transaction, then the first again, look for
    /// the mark. Directly, or through a pooler in session mode, a server serves one client:
    /// the second never sees the mark and the first always does. (A pooler that hands out
    /// its least recently used server may pass unseen.)
    async fn refuse_transaction_pooler(&self) -> Result<(), Error> {
        async fn mark(c: &PgClient) -> Result<String, tokio_postgres::Error> {
            // Simple queries: no prepared statement, which such a pooler may refuse. A `SET`
            // (not `set_config`): a balancer sends it to every server of the session.
            let rows = c
                .simple_query("SELECT current_setting('marketplace_metering.probe', true)")
                .await?;
            Ok(rows
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
                .unwrap_or_default())
        }
        let probe = uuid::Uuid::new_v4().simple().to_string();
        let probe = &probe;
        let pooled = retry_within(self, "connect", ATTEMPT_FOR, |c| async move {
            let r = async {
                let other = self.connect().await?;
                // A server that refuses the mark for good (a setting name it reserves, a
                // version before 9.6) is not probed: refusing would fail every open.
                let set = format!("SET marketplace_metering.probe = '{probe}'");
                match c.batch_execute(&set).await {
                    Err(e) if e.as_db_error().is_some() && !retryable(&e) => {
                        tracing::debug!(error = %e, "fleet store: cannot look for a pooler");
                        return Ok(false);
                    }
                    r => r?,
                }
                match other.batch_execute("BEGIN").await {
                    // A pooler per statement refuses transaction blocks.
                    Err(e)
                        if e.as_db_error()
                            .is_some_and(|d| d.message().contains("pooling mode")) =>
                    {
                        return Ok(true)
                    }
                    r => r?,
                }
                // Seen at once (and with a pooler of one server, the first would wait for
                // the second's transaction to end).
                if mark(&other).await? == *probe {
                    return Ok(true);
                }
                let kept = mark(&c).await? == *probe;
                other.batch_execute("ROLLBACK").await?;
                Ok(!kept)
            }
            .await;
            (c, r)
        })
        .await?;
        if pooled {
            return Err(Error::invalid_config(
                "fleet store: the database URL reaches PostgreSQL through a pooler that shares \
                 each server connection between clients per transaction or statement \
                 (pgbouncer `pool_mode = transaction` or `statement`); the store needs a session \
                 of its own: connect \
                 directly, or through a pooler with `pool_mode = session` (Supabase: port 5432, \
                 not 6543; Neon: the host without `-pooler`)",
            ));
        }
        Ok(())
    }

    /// The database's encoding when it holds only ASCII of every character the model allows.
    pub(crate) fn narrow_encoding(&self) -> Option<&str> {
        self.narrow_encoding.get().map(String::as_str)
    }

    /// `text` as the database can hold it: the service's words (a dead letter's reason and
    /// message, a record id) and the meter's own ellipsis are not all ASCII, and a database
    /// of a narrow encoding refused the whole outcome, acks included, for good (22P05).
    fn holdable(&self, text: &str) -> String {
        if self.holds(text) {
            return text.to_owned();
        }
        text.chars()
            .map(|c| match c {
                '\0' => "?".to_owned(),
                c if c.is_ascii() || self.narrow_encoding().is_none() => c.to_string(),
                '…' => "...".to_owned(),
                _ => "?".to_owned(),
            })
            .collect()
    }

    /// Whether the database can hold `text`: no NUL (PostgreSQL's `text` has none), and only
    /// ASCII in a database of a narrow encoding.
    pub(crate) fn holds(&self, text: &str) -> bool {
        !text.contains('\0') && (self.narrow_encoding().is_none() || text.is_ascii())
    }

    /// Who holds a claim: this meter (replica and session). Its own claims whose answer
    /// never came are sent again at its next flush, as a SQLite meter does; another
    /// meter's wait for their lease.
    fn claimer(&self) -> String {
        format!("{}/{}", self.replica, lock(&self.session))
    }

    pub(crate) fn start_hour(&self) -> Option<i64> {
        self.settings.start_hour
    }

    async fn connect(&self) -> Result<PgClient, tokio_postgres::Error> {
        // Connected on the shared runtime, whose task then drives the connection: its socket
        // belongs to that runtime, so a client made by a blocking call keeps working for the
        // background flusher and the other way round.
        let config = self.config.clone();
        let tls = self.tls.clone();
        // Through `pg_settings`: a server without such a setting (before 9.6, 14 or 17)
        // refused the `SET` (the store opens there, without it).
        let session = format!(
            "{SESSION}
    SELECT set_config(name, CASE name WHEN 'idle_in_transaction_session_timeout' THEN '{}'
                                      ELSE '0' END, false)
      FROM pg_settings
     WHERE name IN ('idle_in_transaction_session_timeout', 'transaction_timeout',
                    'idle_session_timeout');",
            idle_in_transaction_limit(self.settings.lease).as_millis()
        );
        let task = crate::runtime::spawn(async move {
            let connect = async move {
                let c = match tls {
                    Some(tls) => {
                        let (client, conn) = config.connect(tls).await?;
                        let task = tokio::spawn(async move {
                            let _ = conn.await;
                        })
                        .abort_handle();
                        PgClient { client, task }
                    }
                    None => {
                        let (client, conn) = config.connect(NoTls).await?;
                        let task = tokio::spawn(async move {
                            let _ = conn.await;
                        })
                        .abort_handle();
                        PgClient { client, task }
                    }
                };
                c.client.batch_execute(&session).await?;
                Ok(c)
            };
            // A start-up the server never answers ends here, not with the caller's wait.
            match tokio::time::timeout(ATTEMPT_FOR, connect).await {
                Ok(r) => r,
                Err(_) => Err(closed_error().await),
            }
        });
        match task {
            Ok(h) => match h.await {
                Ok(r) => r,
                Err(_) => Err(closed_error().await),
            },
            Err(_) => Err(closed_error().await),
        }
    }

    async fn get(&self) -> Result<PgClient, tokio_postgres::Error> {
        loop {
            let c = lock(&self.pool).pop();
            match c {
                // The newest idle past the limit: so are the others.
                Some((_, quiet)) if quiet.too_long() => self.retire_idle(),
                Some((c, _)) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    /// Cancels what an abandoned try's backend runs. Dropping the connection is not enough:
    /// a backend waiting on a lock notices that its client left only once it has the lock,
    /// and keeps one of the database's connections until then.
    fn cancel(&self, token: tokio_postgres::CancelToken) {
        let tls = self.tls.clone();
        let _ = crate::runtime::spawn(async move {
            let cancel = async move {
                match tls {
                    Some(tls) => token.cancel_query(tls).await,
                    None => token.cancel_query(NoTls).await,
                }
            };
            if let Ok(Err(e)) = tokio::time::timeout(ATTEMPT_FOR, cancel).await {
                tracing::debug!(error = %e, "fleet store: an abandoned try could not be cancelled");
            }
        });
    }

    /// Closes every idle pooled connection: a try got no answer, and the connections that
    /// sat idle beside its own are as likely dead (a NAT that forgot its flows, a failover).
    /// Each would cost the next tries their whole limit; a new connection costs a start-up.
    pub(crate) fn retire_idle(&self) {
        let idle = std::mem::take(&mut *lock(&self.pool));
        drop(idle);
    }

    fn put(&self, c: PgClient) {
        if !c.is_closed() {
            let mut p = lock(&self.pool);
            if p.len() < POOL_MAX {
                p.push((c, Quiet::now()));
            }
            // The oldest first: a burst's connections, idle since, that the newest (taken
            // again and again) kept from being retired, each holding one of the database's
            // connections (found by a review of processes with many meters).
            while p.first().is_some_and(|(_, q)| q.too_long()) {
                p.remove(0);
            }
        }
    }

    pub(crate) async fn status(&self, product: &str) -> Result<super::MeterStatus, Error> {
        let (first, last) = (*super::CALENDAR.start(), *super::CALENDAR.end());
        // A role that may not read the journal writes none (see `write.rs`), and naming the
        // table at all would fail its query: it folds the journal (with the owner's rights)
        // and counts the partial rows.
        let readable = self.journal.load(std::sync::atomic::Ordering::Relaxed);
        let journal = if readable {
            "UNION
             SELECT e.h, e.l, e.k, e.c, e.d
             FROM mm_journal j, unnest(j.hour, j.license_arn, j.customer_kind, j.customer,
                                       j.dimension) AS e(h, l, k, c, d)
             WHERE j.product_code = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT state, COUNT(*)::bigint, MIN(CASE WHEN hour BETWEEN $2 AND $3 THEN hour END)
             FROM mm_buckets WHERE product_code = $1 GROUP BY state
             UNION ALL
             SELECT 'pending', COUNT(*)::bigint, MIN(CASE WHEN hour BETWEEN $2 AND $3 THEN hour END)
             FROM (SELECT DISTINCT hour, license_arn, customer_kind, customer, dimension
                   FROM mm_partials WHERE product_code = $1
                   {journal}) p"
        );
        let rows = retry(self, "status", |c| {
            let sql = &sql;
            async move {
                let r = async {
                    if !readable {
                        seal::fold_and_mark(&c, product).await?;
                    }
                    c.query(sql.as_str(), &[&product, &first, &last]).await
                }
                .await;
                (c, r)
            }
        })
        .await?;
        let mut s = super::MeterStatus::default();
        for r in rows {
            s.count(&r.get::<_, String>(0), r.get(1), r.get(2));
        }
        Ok(s)
    }

    /// The fleet's identity, shared by every replica: `MeterUsage` client tokens are then
    /// the same whichever replica sends a bucket.
    pub(crate) async fn store_id(&self) -> Result<String, Error> {
        retry(self, "store id", |c| async move {
            let r = async {
                c.execute(schema::MAKE_STORE_ID, &[]).await?;
                Ok(
                    c.query_one("SELECT value FROM mm_meta WHERE key = 'store_id'", &[])
                        .await?
                        .get::<_, String>(0),
                )
            }
            .await;
            (c, r)
        })
        .await
    }

    pub(crate) async fn register(
        &self,
        product: &str,
        customer: Option<&super::Customer>,
        dimensions: &[String],
        hour: i64,
    ) -> Result<(), Error> {
        let (kind, id, license) = customer_parts(customer);
        let dims = dimensions.to_vec();
        let (kind, id, license) = (kind.to_owned(), id.to_owned(), license.to_owned());
        let (kind, id, license, dims) = (&kind, &id, &license, &dims);
        retry(self, "register", |c| async move {
            let r = c
                .execute(
                    "INSERT INTO mm_registered (product_code, license_arn, customer_kind, customer, dimension,
                                                from_hour, filled_through)
                     SELECT $1, $2, $3, $4, d, $6::int8, $6::int8 - 3600 FROM unnest($5::text[]) AS d
                     ON CONFLICT DO NOTHING",
                    &[&product, license, kind, id, dims, &hour],
                )
                .await
                .map(|_| ());
            (c, r)
        })
        .await
    }

    pub(crate) async fn unregister(
        &self,
        product: &str,
        customer: Option<&super::Customer>,
        dimensions: Option<&[String]>,
    ) -> Result<usize, Error> {
        let (kind, id, license) = customer_parts(customer);
        if !self.holds(id) || !self.holds(license) {
            // No registration holds one (register_customer() refuses them), and PostgreSQL
            // refuses it as a parameter: nothing to remove, as in a local store.
            return Ok(0);
        }
        let dims: Option<Vec<String>> =
            dimensions.map(|d| d.iter().filter(|d| self.holds(d)).cloned().collect());
        let (kind, id, license) = (kind.to_owned(), id.to_owned(), license.to_owned());
        let (kind, id, license, dims) = (&kind, &id, &license, &dims);
        retry(self, "unregister", |c| async move {
            let r = c
                .execute(
                    "DELETE FROM mm_registered WHERE product_code = $1 AND license_arn = $2
                     AND customer_kind = $3 AND customer = $4
                     AND ($5::text[] IS NULL OR dimension = ANY($5::text[]))",
                    &[&product, license, kind, id, dims],
                )
                .await
                .map(|n| n as usize);
            (c, r)
        })
        .await
    }

    pub(crate) async fn dead_letters(
        &self,
        product: &str,
    ) -> Result<Vec<super::DeadLetter>, Error> {
        let rows = retry(self, "dead letters", |c| async move {
            let r = c
                .query(
                    "SELECT license_arn, customer_kind, customer, dimension, hour, quantity, reason, message, at
                     FROM mm_dead_letters WHERE product_code = $1 ORDER BY id",
                    &[&product],
                )
                .await;
            (c, r)
        })
        .await?;
        Ok(rows
            .iter()
            .map(|r| super::DeadLetter {
                customer: customer_from(r.get(1), r.get(2), r.get(0)),
                dimension: r.get(3),
                hour: r.get(4),
                quantity: r.get(5),
                reason: r.get(6),
                message: r.get(7),
                at: r.get(8),
            })
            .collect())
    }

    pub(crate) async fn requeue(
        &self,
        product: &str,
        filter: &super::RequeueFilter,
        after: i64,
    ) -> Result<usize, Error> {
        let (kind, id, license) = match &filter.customer {
            Some(c) => {
                let (k, i, l) = customer_parts(Some(c));
                (Some(k.to_owned()), Some(i.to_owned()), Some(l.to_owned()))
            }
            None => (None, None, None),
        };
        let hour = filter.hour.map(|h| h.div_euclid(3600) * 3600);
        let texts = [&id, &license, &filter.reason];
        if texts
            .iter()
            .any(|t| t.as_deref().is_some_and(|t| !self.holds(t)))
        {
            // No bucket here holds one (record() refuses a NUL, and anything but ASCII in a
            // database of a narrow encoding), and PostgreSQL refuses it as a parameter:
            // nothing matches, as in a local store.
            return Ok(0);
        }
        let (kind, id, license, hour, reason) = (&kind, &id, &license, &hour, &filter.reason);
        retry(self, "requeue", |mut c| async move {
            let r = async {
                let tx = c.transaction().await?;
                let ids: Vec<i64> = tx
                    .query(
                        "UPDATE mm_buckets b SET state = 'sealed', alarmed = false
                         WHERE b.state = 'dead_lettered' AND b.product_code = $1 AND b.hour > $2
                           AND ($3::text IS NULL OR b.customer_kind = $3)
                           AND ($4::text IS NULL OR b.customer = $4)
                           AND ($5::text IS NULL OR b.license_arn = $5)
                           AND ($6::bigint IS NULL OR b.hour = $6)
                           AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM mm_dead_letters d
                                                            WHERE d.bucket_id = b.id AND d.reason = $7))
                         RETURNING b.id",
                        &[&product, &after, kind, id, license, hour, reason],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                tx.execute(
                    "DELETE FROM mm_dead_letters WHERE bucket_id = ANY($1)",
                    &[&ids],
                )
                .await?;
                tx.commit().await?;
                Ok(ids.len())
            }
            .await;
            (c, r)
        })
        .await
    }
}

/// A held sender slot and the connection holding it (see [`Fleet::sender`]).
pub(crate) struct Sender {
    conn: std::sync::Arc<PgClient>,
    /// Speaks on `conn` every third of a lease while the slot is held (see
    /// [`Fleet::sender`]); `None` when the runtime could not take it.
    keepalive: Option<tokio::task::JoinHandle<()>>,
}

/// An error standing for "no connection" when the runtime could not run the connect.
async fn closed_error() -> tokio_postgres::Error {
    // Connecting to nowhere yields an I/O error (retryable).
    let mut c = tokio_postgres::Config::new();
    c.host_path("/nonexistent/mm-fleet").port(1);
    match c.connect(NoTls).await {
        Err(e) => e,
        Ok(_) => unreachable!("no server listens on /nonexistent"),
    }
}

/// A typed statement parameter.
type P<'a> = (&'a (dyn tokio_postgres::types::ToSql + Sync), Type);

/// The advisory-lock key of an hour: hours since 1970 (fits an `int4` for every calendar
/// year).
fn hour_key(hour: i64) -> i32 {
    hour.div_euclid(3600) as i32
}

/// Runs `op` with a pooled connection, again on a new one while the error is about the
/// connection (or a deadlock / serialization conflict, or a try that took longer than
/// [`ATTEMPT_FOR`]) until [`RETRY_FOR`] has passed. `op` hands the connection back with its
/// result; it goes back to the pool after a success.
async fn retry<'a, T, F, Fut>(fleet: &'a Fleet, what: &str, op: F) -> Result<T, Error>
where
    F: FnMut(PgClient) -> Fut,
    Fut: std::future::Future<Output = (PgClient, Result<T, tokio_postgres::Error>)> + 'a,
{
    retry_within(fleet, what, ATTEMPT_FOR, op).await
}

/// [`retry`], each try bounded by `limit`.
async fn retry_within<'a, T, F, Fut>(
    fleet: &'a Fleet,
    what: &str,
    limit: Duration,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut(PgClient) -> Fut,
    Fut: std::future::Future<Output = (PgClient, Result<T, tokio_postgres::Error>)> + 'a,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    // Never closed, so acquiring only waits.
    let _permit = fleet.in_use.acquire().await.ok();
    loop {
        // A connection, and for a long operation an answer to an empty statement, within
        // the short limit: a server that does not answer at all is found as fast for a
        // seal as for a write.
        let ready = tokio::time::timeout(ATTEMPT_FOR, async {
            let c = fleet.get().await?;
            if limit > ATTEMPT_FOR {
                c.batch_execute("").await?;
            }
            Ok(c)
        })
        .await;
        let tried = match ready {
            Ok(Ok(c)) => {
                let token = c.cancel_token();
                let r = tokio::time::timeout(limit, async {
                    let (c, r) = op(c).await;
                    r.map(|v| (c, v))
                })
                .await;
                if r.is_err() {
                    fleet.cancel(token);
                }
                r.map_err(|_| limit)
            }
            Ok(Err(e)) => Ok(Err(e)),
            Err(_) => Err(ATTEMPT_FOR),
        };
        let err = match tried {
            Ok(Ok((c, v))) => {
                fleet.put(c);
                return Ok(v);
            }
            Ok(Err(e)) => (retryable(&e), pg_err(e)),
            // The try's connection was closed with it: the server ends its transaction.
            Err(waited) => {
                fleet.retire_idle();
                (
                    true,
                    Error::invalid_state(format!(
                        "fleet store: no answer within {waited:?} ({what})"
                    )),
                )
            }
        };
        let (again, err) = err;
        if !again || started.elapsed() >= RETRY_FOR {
            tracing::warn!(operation = what, error = %err, "fleet store: giving up");
            // A connection lost, a server that does not answer, a transient conflict: the
            // same call may succeed later (a durable record refused this way is made again).
            return Err(err.with_retryable(again));
        }
        tracing::debug!(operation = what, error = %err, "fleet store: retrying on a new connection");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::libpq_tls_settings as read;
    use std::str::FromStr;
    use std::time::Duration;

    /// Keepalives a NAT's idle timeout never outlasts, unless the connection string says
    /// otherwise.
    #[test]
    fn keepalives_come_before_a_nat_forgets() {
        let kept = |s: &str| {
            let mut c = tokio_postgres::Config::from_str(s).unwrap();
            super::keep_alive(&mut c);
            (
                c.get_keepalives(),
                c.get_keepalives_idle(),
                c.get_keepalives_interval(),
                c.get_keepalives_retries(),
            )
        };
        let secs = Duration::from_secs;
        assert_eq!(kept("host=h"), (true, secs(30), Some(secs(10)), Some(3)));
        assert_eq!(
            kept("postgresql://h/db?keepalives_idle=600&keepalives_retries=9"),
            (true, secs(600), Some(secs(10)), Some(9))
        );
        assert_eq!(kept("host=h keepalives=0"), (false, secs(7200), None, None));
    }

    /// Only the two TLS settings change, in either spelling; everything else stays as written
    /// (a review found the key=value words re-joined, which changed a quoted password).
    #[test]
    fn only_the_tls_settings_of_a_connection_string_change() {
        for unchanged in [
            "host=h password='a  b'",
            "host=h  user=u",
            "postgresql://u:pa?ss@h/db",
            "postgresql://u@h/db?sslmode=require&application_name=x",
        ] {
            assert_eq!(read(unchanged), (unchanged.to_owned(), None));
        }
        let (s, root) = read(
            "host=h password='x sslrootcert=y z' sslmode = verify-full sslrootcert='/etc/r ds.pem'",
        );
        assert_eq!(s, "host=h password='x sslrootcert=y z' sslmode=require ");
        assert_eq!(root.as_deref(), Some("/etc/r ds.pem"));
        let (s, root) =
            read("postgresql://u:pa?ss@h/db?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(s, "postgresql://u:pa?ss@h/db?sslmode=require");
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (s, root) = read("postgres://h?sslrootcert=/ca.pem");
        assert_eq!(
            (s.as_str(), root.as_deref()),
            ("postgres://h", Some("/ca.pem"))
        );
    }
}
