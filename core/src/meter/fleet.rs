// SPDX-License-Identifier: Apache-2.0
// The fleet store: the meter on PostgreSQL, shared by every replica of a service.

//! The fleet store.
//!
//! Many replicas (pods, instances, workers) record into one PostgreSQL database; every
//! customer-hour is billed once across the fleet, whatever replica dies when.
//!
//! * **Writes.** Each replica adds into its own partial rows (`mm_partials`, keyed by the
//!   bucket and the replica id), so writers never queue on one shared row. Every write
//!   transaction first inserts its commit key (replica, session, sequence) into
//!   `mm_commits`; when a COMMIT's outcome is unknown (the connection dropped, the server
//!   restarted) the same transaction is run again with the same key, and a key already
//!   there means the first attempt committed: nothing is counted twice. An INSERT of a key
//!   another, still-running, attempt holds waits for that attempt to end, so the check is
//!   exact even when the old backend has not noticed its client left.
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
//!   are sent again; the service's de-duplication makes the resend harmless.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client as PgClient, NoTls};

use super::store::{customer_from, customer_parts, Allocs, Outcome, Prepared, Scope, SendItem};
use super::{
    lock, BucketKey, Buffer, FleetSettings, MeterEvent, MeterEventKind, Written, MAX_BUCKET,
};
use crate::Error;

/// The schema version this code writes (`mm_schema`).
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Migrations: entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE mm_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE mm_commits (
    replica text        NOT NULL,
    session text        NOT NULL,
    seq     bigint      NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, session, seq)
);
CREATE TABLE mm_partials (
    product_code  text   NOT NULL,
    hour          bigint NOT NULL,
    license_arn   text   NOT NULL,
    customer_kind text   NOT NULL,
    customer      text   NOT NULL,
    dimension     text   NOT NULL,
    replica       text   NOT NULL,
    quantity      bigint NOT NULL,
    PRIMARY KEY (product_code, hour, license_arn, customer_kind, customer, dimension, replica)
);
CREATE TABLE mm_partial_allocs (
    product_code  text   NOT NULL,
    hour          bigint NOT NULL,
    license_arn   text   NOT NULL,
    customer_kind text   NOT NULL,
    customer      text   NOT NULL,
    dimension     text   NOT NULL,
    replica       text   NOT NULL,
    tags          text   NOT NULL,
    quantity      bigint NOT NULL,
    PRIMARY KEY (product_code, hour, license_arn, customer_kind, customer, dimension, replica, tags)
);
CREATE TABLE mm_sealed_hours (
    product_code text        NOT NULL,
    hour         bigint      NOT NULL,
    sealed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_code, hour)
);
CREATE TABLE mm_buckets (
    id                 bigserial PRIMARY KEY,
    product_code       text    NOT NULL,
    license_arn        text    NOT NULL,
    customer_kind      text    NOT NULL,
    customer           text    NOT NULL,
    dimension          text    NOT NULL,
    hour               bigint  NOT NULL,
    quantity           bigint  NOT NULL,
    allocations        text,
    state              text    NOT NULL DEFAULT 'sealed'
        CHECK (state IN ('sealed', 'sending', 'acked', 'dead_lettered', 'expired')),
    claim              bigint  NOT NULL DEFAULT 0,
    claimed_by         text,
    lease_until        timestamptz,
    attempts           integer NOT NULL DEFAULT 0,
    alarmed            boolean NOT NULL DEFAULT false,
    metering_record_id text,
    sealed_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product_code, license_arn, customer_kind, customer, dimension, hour)
);
CREATE INDEX mm_buckets_by_state ON mm_buckets (product_code, state, hour);
CREATE SEQUENCE mm_claims;
CREATE FUNCTION mm_sealed_quantity_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.quantity IS DISTINCT FROM OLD.quantity
       OR NEW.allocations IS DISTINCT FROM OLD.allocations
       OR NEW.product_code IS DISTINCT FROM OLD.product_code
       OR NEW.license_arn IS DISTINCT FROM OLD.license_arn
       OR NEW.customer_kind IS DISTINCT FROM OLD.customer_kind
       OR NEW.customer IS DISTINCT FROM OLD.customer
       OR NEW.dimension IS DISTINCT FROM OLD.dimension
       OR NEW.hour IS DISTINCT FROM OLD.hour THEN
        RAISE EXCEPTION 'a sealed quantity never changes';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER mm_buckets_sealed_quantity_frozen BEFORE UPDATE ON mm_buckets
    FOR EACH ROW EXECUTE FUNCTION mm_sealed_quantity_frozen();
CREATE TABLE mm_dead_letters (
    id            bigserial PRIMARY KEY,
    bucket_id     bigint NOT NULL,
    product_code  text   NOT NULL,
    license_arn   text   NOT NULL,
    customer_kind text   NOT NULL,
    customer      text   NOT NULL,
    dimension     text   NOT NULL,
    hour          bigint NOT NULL,
    quantity      bigint NOT NULL,
    reason        text   NOT NULL,
    message       text   NOT NULL,
    at            bigint NOT NULL
);
CREATE TABLE mm_registered (
    product_code   text   NOT NULL,
    license_arn    text   NOT NULL,
    customer_kind  text   NOT NULL,
    customer       text   NOT NULL,
    dimension      text   NOT NULL,
    from_hour      bigint NOT NULL,
    filled_through bigint NOT NULL,
    PRIMARY KEY (product_code, license_arn, customer_kind, customer, dimension)
);
"#];

/// How long an operation keeps retrying a lost connection (a server restart, a terminated
/// backend) before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Idle connections kept per meter.
const POOL_MAX: usize = 16;

/// A partial sum past this is checked against the bucket's whole sum (all replicas) for the
/// model's maximum; below it, 128 replicas could not pass the maximum together.
const CHECK_SUM_ABOVE: i64 = 1 << 24;

/// The default replica id: host name and process id.
pub(crate) fn default_replica_id() -> String {
    format!("{}:{}", super::owner::host_name(), std::process::id())
}

fn pg_err(e: tokio_postgres::Error) -> Error {
    let msg = match e.as_db_error() {
        Some(db) => format!("fleet store: {} ({})", db.message(), db.code().code()),
        None => format!("fleet store: {e}"),
    };
    Error::invalid_state(msg).with_source(e)
}

/// Whether an error is about the connection or a transient conflict, so the whole
/// operation may run again (writes are protected by their commit key).
fn retryable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => true, // I/O, connect, protocol: the connection is gone
        Some(c) => {
            let code = c.code();
            code.starts_with("08") // connection exceptions
                || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::TOO_MANY_CONNECTIONS
        }
    }
}

/// The TLS connector: rustls on *ring* with the platform's root certificates, used when the
/// URL's `sslmode` asks for it (`prefer`, the default, falls back to plain on a server
/// without TLS; Unix sockets never use it).
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for c in found.certs {
        let _ = roots.add(c);
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
    pool: Mutex<Vec<PgClient>>,
    replica: String,
    session: String,
    seq: AtomicI64,
    settings: FleetSettings,
    /// The fencing counter of each bucket this meter has claimed and not yet answered.
    claims: Mutex<HashMap<i64, i64>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Fleet")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// One write's rows: the bucket key columns and the quantity.
#[derive(Default)]
struct Rows {
    license: Vec<String>,
    kind: Vec<String>,
    customer: Vec<String>,
    dimension: Vec<String>,
    hour: Vec<i64>,
    quantity: Vec<i64>,
}

impl Rows {
    fn push(&mut self, customer: &super::Customer, dimension: &str, hour: i64, quantity: i64) {
        let (kind, id, license) = customer_parts(customer);
        self.license.push(license.to_owned());
        self.kind.push(kind.to_owned());
        self.customer.push(id.to_owned());
        self.dimension.push(dimension.to_owned());
        self.hour.push(hour);
        self.quantity.push(quantity);
    }
}

async fn rollback(c: &PgClient) {
    let _ = c.batch_execute("ROLLBACK").await;
}

impl Fleet {
    /// Connects, migrates the schema and returns the store.
    pub(crate) async fn open(settings: FleetSettings) -> Result<Fleet, Error> {
        let config = tokio_postgres::Config::from_str(&settings.url.0).map_err(|e| {
            Error::invalid_input(
                "database_url",
                format!("is not a PostgreSQL connection string: {e}"),
            )
        })?;
        let wants_tls = config.get_ssl_mode() != tokio_postgres::config::SslMode::Disable;
        let replica = settings
            .replica_id
            .clone()
            .unwrap_or_else(default_replica_id);
        if replica.is_empty() || replica.len() > 200 {
            return Err(Error::invalid_input(
                "replica_id",
                "must be 1 to 200 characters",
            ));
        }
        if settings.senders == 0 {
            return Err(Error::invalid_input("fleet_senders", "must be at least 1"));
        }
        let fleet = Fleet {
            config,
            tls: if wants_tls { Some(tls()?) } else { None },
            pool: Mutex::new(Vec::new()),
            replica,
            session: uuid::Uuid::new_v4().simple().to_string(),
            seq: AtomicI64::new(1),
            settings,
            claims: Mutex::new(HashMap::new()),
        };
        fleet.migrate().await?;
        Ok(fleet)
    }

    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    /// Who holds a claim: this meter (replica and session). Its own claims whose answer
    /// never came are sent again at its next flush, as a SQLite meter does; another
    /// meter's wait for their lease.
    fn claimer(&self) -> String {
        format!("{}/{}", self.replica, self.session)
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
        let task = crate::runtime::spawn(async move {
            match tls {
                Some(tls) => {
                    let (c, conn) = config.connect(tls).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(c)
                }
                None => {
                    let (c, conn) = config.connect(NoTls).await?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(c)
                }
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
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    fn put(&self, c: PgClient) {
        if !c.is_closed() {
            let mut p = lock(&self.pool);
            if p.len() < POOL_MAX {
                p.push(c);
            }
        }
    }

    /// Drops every idle connection (after `fork()`, or in tests).
    #[allow(dead_code)]
    pub(crate) fn clear_pool(&self) {
        lock(&self.pool).clear();
    }

    async fn migrate(&self) -> Result<(), Error> {
        retry(self, "migrate", |mut c| async move {
            let r = async {
                let tx = c.transaction().await?;
                tx.batch_execute(
                    "SELECT pg_advisory_xact_lock(hashtext('mm_schema'));
                     CREATE TABLE IF NOT EXISTS mm_schema (version integer NOT NULL);",
                )
                .await?;
                let v: Option<i32> = tx
                    .query_one("SELECT max(version) FROM mm_schema", &[])
                    .await?
                    .get(0);
                let v = v.unwrap_or(0);
                if v > SCHEMA_VERSION {
                    return Ok(Some(v));
                }
                for (i, sql) in MIGRATIONS.iter().enumerate().skip(v as usize) {
                    tx.batch_execute(sql).await?;
                    tx.execute(
                        "INSERT INTO mm_schema (version) VALUES ($1)",
                        &[&(i as i32 + 1)],
                    )
                    .await?;
                }
                tx.execute(
                    "INSERT INTO mm_meta (key, value) VALUES ('library_version', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&crate::VERSION],
                )
                .await?;
                tx.commit().await?;
                Ok(None)
            }
            .await;
            (c, r)
        })
        .await
        .and_then(|newer| match newer {
            Some(v) => Err(Error::invalid_state(format!(
                "fleet store: schema version {v} is newer than this library's {SCHEMA_VERSION}"
            ))),
            None => Ok(()),
        })
    }

    /// Adds `entries` in one transaction (see the module docs). `current` is the writer's
    /// current hour, where an add for a sealed hour goes (or the first open hour after it).
    pub(crate) async fn write(
        &self,
        product: &str,
        entries: &Buffer,
        current: i64,
    ) -> Result<Written, Error> {
        let mut refused: Vec<(BucketKey, i64)> = Vec::new();
        loop {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let skip: HashSet<&BucketKey> = refused.iter().map(|(k, _)| k).collect();
            let mine: Vec<(&BucketKey, &super::Acc)> =
                entries.iter().filter(|(k, _)| !skip.contains(k)).collect();
            if mine.is_empty() {
                return Ok(Written {
                    late: Vec::new(),
                    refused,
                });
            }
            let out = retry(self, "record", |mut c| {
                let mine = &mine;
                async move {
                    let r = self.write_once(&mut c, product, mine, current, seq).await;
                    (c, r)
                }
            })
            .await?;
            match out {
                WriteOutcome::Done(late) => {
                    return Ok(Written { late, refused });
                }
                WriteOutcome::Refused(more) => refused.extend(more),
            }
        }
    }

    async fn write_once(
        &self,
        c: &mut PgClient,
        product: &str,
        entries: &[(&BucketKey, &super::Acc)],
        current: i64,
        seq: i64,
    ) -> Result<WriteOutcome, tokio_postgres::Error> {
        let mut hours: BTreeSet<i64> = entries.iter().map(|(k, _)| k.hour).collect();
        hours.insert(current);
        let hours: Vec<i64> = hours.into_iter().collect();
        let keys: Vec<i32> = hours.iter().map(|h| hour_key(*h)).collect();
        // One round trip: the statements are sent together and run in order. The locks are
        // taken ascending (a function scan returns the array in order), and the sealed check
        // runs after them.
        let p_key: [P<'_>; 3] = [
            (&self.replica, Type::TEXT),
            (&self.session, Type::TEXT),
            (&seq, Type::INT8),
        ];
        let p_lock: [P<'_>; 2] = [(&product, Type::TEXT), (&keys, Type::INT4_ARRAY)];
        let p_sealed: [P<'_>; 2] = [(&product, Type::TEXT), (&hours, Type::INT8_ARRAY)];
        let (begin, first, locks, sealed) = tokio::join!(
            c.batch_execute("BEGIN"),
            c.query_typed(
                "INSERT INTO mm_commits (replica, session, seq) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING RETURNING 1",
                &p_key,
            ),
            c.query_typed(
                "SELECT pg_advisory_xact_lock_shared(hashtext($1), k) FROM unnest($2::int4[]) AS k",
                &p_lock,
            ),
            c.query_typed(
                "SELECT hour FROM mm_sealed_hours WHERE product_code = $1 AND hour = ANY($2)",
                &p_sealed,
            ),
        );
        begin?;
        let checked = match (first, locks, sealed) {
            (Ok(f), Ok(_), Ok(s)) => Ok((f, s)),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        };
        let (first, sealed) = match checked {
            Ok(v) => v,
            Err(e) => {
                rollback(c).await;
                return Err(e);
            }
        };
        if first.is_empty() {
            // An earlier attempt of this very write committed (its COMMIT's answer was lost).
            rollback(c).await;
            return Ok(WriteOutcome::Done(Vec::new()));
        }
        let r = self
            .write_rows(c, product, entries, current, &hours, sealed)
            .await;
        match r {
            Ok(WriteOutcome::Done(late)) => {
                super::crash::hit("fleet_before_commit");
                c.batch_execute("COMMIT").await?;
                super::crash::hit("fleet_after_commit");
                Ok(WriteOutcome::Done(late))
            }
            Ok(refused) => {
                rollback(c).await;
                Ok(refused)
            }
            Err(e) => {
                rollback(c).await;
                Err(e)
            }
        }
    }

    /// The body of a write, inside its transaction, after the locks.
    async fn write_rows(
        &self,
        c: &PgClient,
        product: &str,
        entries: &[(&BucketKey, &super::Acc)],
        current: i64,
        hours: &[i64],
        sealed: Vec<tokio_postgres::Row>,
    ) -> Result<WriteOutcome, tokio_postgres::Error> {
        let mut sealed: BTreeSet<i64> = sealed.iter().map(|r| r.get(0)).collect();
        let mut locked: BTreeSet<i64> = hours.iter().copied().collect();
        let mut late = Vec::new();
        let mut landed: Vec<(&BucketKey, &super::Acc, i64)> = Vec::with_capacity(entries.len());
        for (k, acc) in entries {
            let mut h = k.hour;
            if sealed.contains(&h) {
                // Counted in the first open hour from the writer's current hour on.
                h = current.max(k.hour);
                for _ in 0..48 {
                    if !locked.contains(&h) {
                        let hk = hour_key(h);
                        let p_lock: [P<'_>; 2] = [(&product, Type::TEXT), (&hk, Type::INT4)];
                        let p_sealed: [P<'_>; 2] = [(&product, Type::TEXT), (&h, Type::INT8)];
                        let (l, s) = tokio::join!(
                            c.query_typed(
                                "SELECT pg_advisory_xact_lock_shared(hashtext($1), $2)",
                                &p_lock,
                            ),
                            c.query_typed(
                                "SELECT hour FROM mm_sealed_hours WHERE product_code = $1 AND hour = $2",
                                &p_sealed,
                            ),
                        );
                        l?;
                        locked.insert(h);
                        sealed.extend(s?.iter().map(|r| r.get::<_, i64>(0)));
                    }
                    if !sealed.contains(&h) {
                        break;
                    }
                    h += 3600;
                }
                late.push(MeterEvent {
                    kind: MeterEventKind::LateEvent { counted_in_hour: h },
                    customer: k.customer.clone(),
                    dimension: k.dimension.clone(),
                    hour: k.hour,
                    quantity: acc.quantity,
                });
            }
            landed.push((k, acc, h));
        }
        // One row per (bucket, hour): an entry moved into an hour another entry has.
        type Key<'a> = (&'a super::Customer, &'a str, i64);
        let mut sums: HashMap<Key<'_>, (i64, Vec<&BucketKey>)> = HashMap::new();
        let mut allocs: HashMap<(Key<'_>, &str), i64> = HashMap::new();
        for (k, acc, h) in &landed {
            let key = (&k.customer, k.dimension.as_str(), *h);
            let e = sums.entry(key).or_default();
            e.0 += acc.quantity;
            e.1.push(k);
            if let Some(a) = &acc.allocations {
                for (tags, q) in a {
                    *allocs.entry((key, tags.as_str())).or_default() += q;
                }
            }
        }
        let mut rows = Rows::default();
        let mut origin: Vec<&Vec<&BucketKey>> = Vec::with_capacity(sums.len());
        for ((cust, dim, h), (q, keys)) in &sums {
            rows.push(cust, dim, *h, *q);
            origin.push(keys);
        }
        let p_rows: [P<'_>; 8] = [
            (&product, Type::TEXT),
            (&self.replica, Type::TEXT),
            (&rows.license, Type::TEXT_ARRAY),
            (&rows.kind, Type::TEXT_ARRAY),
            (&rows.customer, Type::TEXT_ARRAY),
            (&rows.dimension, Type::TEXT_ARRAY),
            (&rows.hour, Type::INT8_ARRAY),
            (&rows.quantity, Type::INT8_ARRAY),
        ];
        let upsert = c.query_typed(
            "INSERT INTO mm_partials (product_code, hour, license_arn, customer_kind, customer,
                                      dimension, replica, quantity)
             SELECT $1, h, l, k, c, d, $2, q
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[])
                  AS t(l, k, c, d, h, q)
             ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension, replica)
             DO UPDATE SET quantity = mm_partials.quantity + excluded.quantity
             RETURNING quantity",
            &p_rows,
        );
        let mut a = Rows::default();
        let mut tags = Vec::new();
        for (((cust, dim, h), t), q) in &allocs {
            a.push(cust, dim, *h, *q);
            tags.push((*t).to_owned());
        }
        let alloc_upsert = async {
            if tags.is_empty() {
                return Ok(Vec::new());
            }
            c.query_typed(
                "INSERT INTO mm_partial_allocs (product_code, hour, license_arn, customer_kind, customer,
                                                dimension, replica, tags, quantity)
                 SELECT $1, h, l, k, c, d, $2, g, q
                 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::text[])
                      AS t(l, k, c, d, h, q, g)
                 ON CONFLICT (product_code, hour, license_arn, customer_kind, customer, dimension, replica, tags)
                 DO UPDATE SET quantity = mm_partial_allocs.quantity + excluded.quantity",
                &[
                    (&product, Type::TEXT),
                    (&self.replica, Type::TEXT),
                    (&a.license, Type::TEXT_ARRAY),
                    (&a.kind, Type::TEXT_ARRAY),
                    (&a.customer, Type::TEXT_ARRAY),
                    (&a.dimension, Type::TEXT_ARRAY),
                    (&a.hour, Type::INT8_ARRAY),
                    (&a.quantity, Type::INT8_ARRAY),
                    (&tags, Type::TEXT_ARRAY),
                ],
            )
            .await
        };
        let (returned, allocated) = tokio::join!(upsert, alloc_upsert);
        let returned = returned?;
        allocated?;
        // Rows come back in input order, one per input row.
        let mut over = Vec::new();
        for (i, r) in returned.iter().enumerate() {
            let q: i64 = r.get(0);
            if q <= CHECK_SUM_ABOVE {
                continue;
            }
            let total: i64 = c
                .query_typed(
                    "SELECT COALESCE(SUM(quantity), 0)::int8 FROM mm_partials
                     WHERE product_code = $1 AND hour = $2 AND license_arn = $3
                       AND customer_kind = $4 AND customer = $5 AND dimension = $6",
                    &[
                        (&product, Type::TEXT),
                        (&rows.hour[i], Type::INT8),
                        (&rows.license[i], Type::TEXT),
                        (&rows.kind[i], Type::TEXT),
                        (&rows.customer[i], Type::TEXT),
                        (&rows.dimension[i], Type::TEXT),
                    ],
                )
                .await?[0]
                .get(0);
            if total > MAX_BUCKET {
                for k in origin[i] {
                    over.push(((*k).clone(), total));
                }
            }
        }
        if !over.is_empty() {
            return Ok(WriteOutcome::Refused(over));
        }
        Ok(WriteOutcome::Done(late))
    }

    /// Zero-fills, seals what may be sealed and raises window alarms (one transaction per
    /// step). Returns the number of buckets sealed and the alarms.
    pub(crate) async fn seal(&self, scope: &Scope, clock_now: i64) -> Result<Prepared, Error> {
        let (sealed, events) = retry(self, "seal", |mut c| async move {
            let r = self.seal_once(&mut c, scope, clock_now).await;
            (c, r)
        })
        .await?;
        Ok(Prepared {
            sealed,
            items: Vec::new(),
            events,
        })
    }

    async fn seal_once(
        &self,
        c: &mut PgClient,
        scope: &Scope,
        clock_now: i64,
    ) -> Result<(usize, Vec<MeterEvent>), tokio_postgres::Error> {
        let product = scope.product_code.as_str();
        let tx = c.transaction().await?;
        let now: i64 = if self.settings.use_meter_clock {
            clock_now
        } else {
            tx.query_one("SELECT floor(extract(epoch FROM now()))::bigint", &[])
                .await?
                .get(0)
        };
        let limit = now - 3600 - scope.grace;
        let mut hours: BTreeSet<i64> = tx
            .query(
                "SELECT DISTINCT hour FROM mm_partials WHERE product_code = $1 AND hour <= $2",
                &[&product, &limit],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Zero-fill: the hours each registered customer still needs.
        let mut fills: Vec<(String, String, String, String, i64, i64)> = Vec::new();
        if scope.zero_fill {
            let regs = tx
                .query(
                    "SELECT license_arn, customer_kind, customer, dimension, from_hour, filled_through
                     FROM mm_registered WHERE product_code = $1 FOR UPDATE",
                    &[&product],
                )
                .await?;
            let oldest_sendable = (now - scope.window).div_euclid(3600) * 3600 + 3600;
            for r in regs {
                let (from, filled): (i64, i64) = (r.get(4), r.get(5));
                let mut h = (filled + 3600).max(from).max(oldest_sendable);
                let mut last = filled;
                while h <= limit {
                    hours.insert(h);
                    last = h;
                    h += 3600;
                }
                if last != filled {
                    fills.push((r.get(0), r.get(1), r.get(2), r.get(3), filled + 3600, last));
                }
            }
        }
        let mut sealed = 0usize;
        for h in &hours {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1), $2)",
                &[&product, &hour_key(*h)],
            )
            .await?;
            tx.execute(
                "INSERT INTO mm_sealed_hours (product_code, hour) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&product, h],
            )
            .await?;
            sealed += tx
                .execute(
                    "INSERT INTO mm_buckets (product_code, license_arn, customer_kind, customer, dimension,
                                             hour, quantity, allocations)
                     SELECT p.product_code, p.license_arn, p.customer_kind, p.customer, p.dimension, p.hour,
                            SUM(p.quantity),
                            (SELECT jsonb_object_agg(x.tags, x.q)::text FROM (
                                 SELECT a.tags, SUM(a.quantity) AS q FROM mm_partial_allocs a
                                 WHERE a.product_code = p.product_code AND a.hour = p.hour
                                   AND a.license_arn = p.license_arn AND a.customer_kind = p.customer_kind
                                   AND a.customer = p.customer AND a.dimension = p.dimension
                                 GROUP BY a.tags) x)
                     FROM mm_partials p WHERE p.product_code = $1 AND p.hour = $2
                     GROUP BY p.product_code, p.license_arn, p.customer_kind, p.customer, p.dimension, p.hour",
                    &[&product, h],
                )
                .await? as usize;
            tx.execute(
                "DELETE FROM mm_partials WHERE product_code = $1 AND hour = $2",
                &[&product, h],
            )
            .await?;
            tx.execute(
                "DELETE FROM mm_partial_allocs WHERE product_code = $1 AND hour = $2",
                &[&product, h],
            )
            .await?;
        }
        for (license, kind, cust, dim, from, last) in &fills {
            sealed += tx
                .execute(
                    "INSERT INTO mm_buckets (product_code, license_arn, customer_kind, customer, dimension,
                                             hour, quantity)
                     SELECT $1, $2, $3, $4, $5, h, 0 FROM generate_series($6::bigint, $7::bigint, 3600) AS h
                     ON CONFLICT DO NOTHING",
                    &[&product, license, kind, cust, dim, from, last],
                )
                .await? as usize;
            tx.execute(
                "UPDATE mm_registered SET filled_through = $6 WHERE product_code = $1 AND license_arn = $2
                 AND customer_kind = $3 AND customer = $4 AND dimension = $5",
                &[&product, license, kind, cust, dim, last],
            )
            .await?;
        }
        if sealed > 0 {
            super::crash::hit("seal_mid_txn");
        }
        // Commit keys older than any retry could be.
        tx.execute(
            "DELETE FROM mm_commits WHERE at < now() - interval '1 day'",
            &[],
        )
        .await?;
        let alarms = tx
            .query(
                "UPDATE mm_buckets SET alarmed = true
                 WHERE product_code = $1 AND state IN ('sealed', 'sending') AND NOT alarmed
                   AND $2::int8 >= hour + $3::int8 - $4::int8
                 RETURNING license_arn, customer_kind, customer, dimension, hour, quantity",
                &[&product, &now, &scope.window, &scope.alarm_before],
            )
            .await?;
        let events = alarms
            .iter()
            .map(|r| {
                let hour: i64 = r.get(4);
                MeterEvent {
                    kind: MeterEventKind::WindowAlarm {
                        window_end: hour.saturating_add(scope.window),
                    },
                    customer: customer_from(r.get(1), r.get(2), r.get(0)),
                    dimension: r.get(3),
                    hour,
                    quantity: r.get(5),
                }
            })
            .collect();
        tx.commit().await?;
        Ok((sealed, events))
    }

    /// Takes a sender slot for this product (a session advisory lock, released when the
    /// connection ends: a killed sender frees its slot); `None` when every slot is held by
    /// another meter.
    pub(crate) async fn sender(&self, product: &str) -> Result<Option<Sender>, Error> {
        let senders = self.settings.senders as i32;
        let started = Instant::now();
        loop {
            let r = async {
                let c = self.get().await?;
                for slot in 0..senders {
                    let got: bool = c
                        .query_one(
                            "SELECT pg_try_advisory_lock(hashtext('mm_sender:' || $1), $2)",
                            &[&product, &slot],
                        )
                        .await?
                        .get(0);
                    if got {
                        return Ok(Some(Sender(c)));
                    }
                }
                self.put(c);
                Ok(None)
            }
            .await;
            match r {
                Ok(s) => return Ok(s),
                Err(e) if retryable(&e) && started.elapsed() < RETRY_FOR => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(pg_err(e)),
            }
        }
    }

    /// Gives up the sender slot.
    pub(crate) async fn release_sender(&self, s: Sender) {
        if s.0
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .await
            .is_ok()
        {
            self.put(s.0);
        }
    }

    /// Claims up to `limit` sendable buckets (sealed, or sending with an expired lease)
    /// other than `exclude`: they go to `sending` with a new fencing counter and a lease.
    pub(crate) async fn claim(
        &self,
        product: &str,
        limit: i64,
        exclude: &[i64],
    ) -> Result<Vec<SendItem>, Error> {
        let lease_ms = self.settings.lease.as_secs_f64() * 1000.0;
        let rows = retry(self, "claim", |c| async move {
            let r = c
                .query(
                    "UPDATE mm_buckets b SET state = 'sending', claim = nextval('mm_claims'),
                            claimed_by = $3, lease_until = now() + $4::float8 * interval '1 millisecond',
                            attempts = attempts + 1
                     WHERE b.id IN (SELECT id FROM mm_buckets
                                    WHERE product_code = $1
                                      AND (state = 'sealed'
                                           OR (state = 'sending' AND (lease_until < now() OR claimed_by = $3)))
                                      AND id <> ALL($5)
                                    ORDER BY license_arn, hour, id LIMIT $2
                                    FOR UPDATE SKIP LOCKED)
                     RETURNING id, claim, license_arn, customer_kind, customer, dimension, hour, quantity,
                               allocations",
                    &[&product, &limit, &self.claimer(), &lease_ms, &exclude],
                )
                .await;
            (c, r)
        })
        .await?;
        let mut claims = lock(&self.claims);
        let mut items: Vec<SendItem> = rows
            .iter()
            .map(|r| {
                claims.insert(r.get(0), r.get(1));
                SendItem {
                    id: r.get(0),
                    customer: customer_from(r.get(3), r.get(4), r.get(2)),
                    dimension: r.get(5),
                    hour: r.get(6),
                    quantity: r.get(7),
                    allocations: r
                        .get::<_, Option<String>>(8)
                        .and_then(|s| serde_json::from_str::<Allocs>(&s).ok()),
                }
            })
            .collect();
        items.sort_by_key(|a| (a.hour, a.id));
        Ok(items)
    }

    /// How many buckets wait to be sent, other than `exclude`.
    pub(crate) async fn count_sendable(
        &self,
        product: &str,
        exclude: &[i64],
    ) -> Result<usize, Error> {
        let n: i64 = retry(self, "count", |c| async move {
            let r = c
                .query_one(
                    "SELECT count(*)::int8 FROM mm_buckets WHERE product_code = $1
                     AND state IN ('sealed', 'sending') AND id <> ALL($2)",
                    &[&product, &exclude],
                )
                .await
                .map(|r| r.get(0));
            (c, r)
        })
        .await?;
        Ok(n.max(0) as usize)
    }

    /// Applies outcomes whose bucket still carries this meter's fencing counter, and returns
    /// the buckets they applied to: an answer that came back after this meter's lease ran out
    /// (another replica claimed the bucket again) changes nothing and is not reported.
    pub(crate) async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: i64,
    ) -> Result<HashSet<i64>, Error> {
        if outcomes.is_empty() {
            return Ok(HashSet::new());
        }
        let fence = |id: &i64| lock(&self.claims).get(id).copied().unwrap_or(-1);
        let (mut ack_id, mut ack_claim, mut ack_rec) = (Vec::new(), Vec::new(), Vec::new());
        let (mut dead_id, mut dead_claim, mut dead_reason, mut dead_msg) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut exp_id, mut exp_claim) = (Vec::new(), Vec::new());
        let (mut rev_id, mut rev_claim) = (Vec::new(), Vec::new());
        for o in outcomes {
            match o {
                Outcome::Ack(id, r) => {
                    ack_id.push(*id);
                    ack_claim.push(fence(id));
                    ack_rec.push(r.clone());
                }
                Outcome::Dead(id, reason, msg) => {
                    dead_id.push(*id);
                    dead_claim.push(fence(id));
                    dead_reason.push(reason.clone());
                    dead_msg.push(msg.clone());
                }
                Outcome::Expire(id) => {
                    exp_id.push(*id);
                    exp_claim.push(fence(id));
                }
                Outcome::Revert(id) => {
                    rev_id.push(*id);
                    rev_claim.push(fence(id));
                }
            }
        }
        let (a, b, d, e, f) = (&ack_id, &ack_claim, &ack_rec, &dead_id, &dead_claim);
        let (g, h, i, j, k, l, m) = (
            &dead_reason,
            &dead_msg,
            &exp_id,
            &exp_claim,
            &rev_id,
            &rev_claim,
            &now,
        );
        let applied = retry(self, "record outcomes", |mut c| async move {
            let r = async {
                let tx = c.transaction().await?;
                let mut applied = HashSet::new();
                if !a.is_empty() {
                    let rows = tx
                        .query(
                            "UPDATE mm_buckets b SET state = 'acked', metering_record_id = t.r, lease_until = NULL
                             FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS t(id, claim, r)
                             WHERE b.id = t.id AND b.claim = t.claim AND b.state = 'sending'
                             RETURNING b.id",
                            &[a, b, d],
                        )
                        .await?;
                    applied.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                }
                if !e.is_empty() {
                    let rows = tx.query(
                        "WITH u AS (
                             UPDATE mm_buckets b SET state = 'dead_lettered', lease_until = NULL
                             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
                                  AS t(id, claim, reason, message)
                             WHERE b.id = t.id AND b.claim = t.claim AND b.state = 'sending'
                             RETURNING b.*, t.reason, t.message)
                         INSERT INTO mm_dead_letters (bucket_id, product_code, license_arn, customer_kind,
                                                      customer, dimension, hour, quantity, reason, message, at)
                         SELECT id, product_code, license_arn, customer_kind, customer, dimension, hour,
                                quantity, reason, message, $5 FROM u
                         RETURNING bucket_id",
                        &[e, f, g, h, m],
                    )
                    .await?;
                    applied.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                }
                for (state, ids, claims) in [("expired", i, j), ("sealed", k, l)] {
                    if ids.is_empty() {
                        continue;
                    }
                    let rows = tx
                        .query(
                            "UPDATE mm_buckets b SET state = $3, lease_until = NULL
                             FROM unnest($1::bigint[], $2::bigint[]) AS t(id, claim)
                             WHERE b.id = t.id AND b.claim = t.claim AND b.state = 'sending'
                             RETURNING b.id",
                            &[ids, claims, &state],
                        )
                        .await?;
                    applied.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                }
                super::crash::hit("mid_ack_txn");
                tx.commit().await.map(|()| applied)
            }
            .await;
            (c, r)
        })
        .await?;
        super::crash::hit("after_ack");
        let mut claims = lock(&self.claims);
        for o in outcomes {
            let id = match o {
                Outcome::Ack(id, _) | Outcome::Dead(id, ..) | Outcome::Expire(id) => id,
                Outcome::Revert(id) => id,
            };
            claims.remove(id);
        }
        Ok(applied)
    }

    pub(crate) async fn status(&self, product: &str) -> Result<super::MeterStatus, Error> {
        let (first, last) = (*super::CALENDAR.start(), *super::CALENDAR.end());
        let rows = retry(self, "status", |c| async move {
            let r = c
                .query(
                    "SELECT state, COUNT(*)::bigint, MIN(CASE WHEN hour BETWEEN $2 AND $3 THEN hour END)
                     FROM mm_buckets WHERE product_code = $1 GROUP BY state
                     UNION ALL
                     SELECT 'pending', COUNT(*)::bigint, MIN(CASE WHEN hour BETWEEN $2 AND $3 THEN hour END)
                     FROM (SELECT DISTINCT hour, license_arn, customer_kind, customer, dimension
                           FROM mm_partials WHERE product_code = $1) p",
                    &[&product, &first, &last],
                )
                .await;
            (c, r)
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
                c.execute(
                    "INSERT INTO mm_meta (key, value) VALUES ('store_id', md5(random()::text || clock_timestamp()::text))
                     ON CONFLICT DO NOTHING",
                    &[],
                )
                .await?;
                Ok(c.query_one("SELECT value FROM mm_meta WHERE key = 'store_id'", &[])
                    .await?
                    .get::<_, String>(0))
            }
            .await;
            (c, r)
        })
        .await
    }

    pub(crate) async fn register(
        &self,
        product: &str,
        customer: &super::Customer,
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
                let (k, i, l) = customer_parts(c);
                (Some(k.to_owned()), Some(i.to_owned()), Some(l.to_owned()))
            }
            None => (None, None, None),
        };
        let hour = filter.hour.map(|h| h.div_euclid(3600) * 3600);
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
pub(crate) struct Sender(PgClient);

enum WriteOutcome {
    Done(Vec<MeterEvent>),
    Refused(Vec<(BucketKey, i64)>),
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
/// connection (or a deadlock / serialization conflict), for up to [`RETRY_FOR`]. `op`
/// hands the connection back with its result; it goes back to the pool after a success.
async fn retry<'a, T, F, Fut>(fleet: &'a Fleet, what: &str, mut op: F) -> Result<T, Error>
where
    F: FnMut(PgClient) -> Fut,
    Fut: std::future::Future<Output = (PgClient, Result<T, tokio_postgres::Error>)> + 'a,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        let err = match fleet.get().await {
            Ok(c) => {
                let (c, r) = op(c).await;
                match r {
                    Ok(v) => {
                        fleet.put(c);
                        return Ok(v);
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        if !retryable(&err) || started.elapsed() >= RETRY_FOR {
            tracing::warn!(operation = what, error = %err, "fleet store: giving up");
            return Err(pg_err(err));
        }
        tracing::debug!(operation = what, error = %err, "fleet store: retrying on a new connection");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}
