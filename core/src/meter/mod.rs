// SPDX-License-Identifier: Apache-2.0
// The usage meter: record every billable event, bill every customer-hour exactly once.

//! The usage meter.
//!
//! Sellers call [`UsageMeter::record`] on every billable event; the meter adds it to a
//! *bucket* — (product or license, customer, dimension, hour of the event) — and later sends
//! each bucket exactly once.
//!
//! What "exactly once" rests on:
//!
//! * **Sealing.** A bucket's hour is *sealed* once the hour has ended and `grace` has passed.
//!   Sealing copies the bucket's quantity into a frozen `sealed_quantity` column, written once
//!   (a trigger refuses any later change). Only sealed buckets are ever sent, always with that
//!   frozen quantity. Events that arrive later for a sealed hour are counted in the *current*
//!   hour and reported as [`MeterEventKind::LateEvent`].
//! * **The service's dedup.** `BatchMeterUsage` answers an identical record (same customer,
//!   dimension, hour and quantity) with the first record's `MeteringRecordId` and bills it
//!   once; `MeterUsage` does the same for a repeated `ClientToken`, which the meter derives
//!   from the store's identity (a random id kept in the store) and the bucket's product,
//!   dimension, hour and frozen quantity: a resend is identical, and two stores (replicas of
//!   one seller account) never share a token. Before a call goes out its buckets are marked `sending` in a
//!   transaction; after a crash, buckets still `sending` are sent again with the same frozen
//!   quantity, so the service bills them once.
//!
//! Each result is recorded, matched to its bucket by the whole record (customer, license,
//! dimension, hour): `Success` → acked (with its `MeteringRecordId`);
//! `CustomerNotSubscribed`, `DuplicateRecord`, unknown statuses and errors about the records
//! (a dimension, a customer, a license, a quantity) → the `dead_letters` table and a
//! [`MeterEventKind::DeadLettered`] event; nothing is dropped silently. An error about the
//! whole call — who sends it or where (credentials, access, region, product code, a disabled
//! API, an entitlement, an unknown error) — dead-letters nothing: the buckets stay sealed and
//! `flush()` returns the error, so they bill once the configuration is fixed.
//! [`UsageMeter::requeue`] sends chosen dead letters again while their hour is in the window. A bucket within `alarm_before` of the end of the service's 6-hour window raises
//! [`MeterEventKind::WindowAlarm`]; a bucket past it is marked expired
//! ([`MeterEventKind::Expired`]) and never retried. Records carry the bucket's hour (its first
//! second) as their timestamp.
//!
//! Durability ([`Durability`]): `Durable` commits every `record()` to SQLite (WAL,
//! `synchronous=FULL`) before returning; `Group` does the same but one committer thread
//! commits all concurrent callers' events in one transaction; `Memory` keeps events in memory
//! and writes them to the store at every flush (and every `flush_interval`) — a crash loses
//! what was recorded since the last flush. [`Store::memory`] is for tests: nothing survives
//! the process, and `record()` always goes to the in-memory buffer.
//!
//! Event callbacks run on the thread that caused them (a `record()` caller, the group
//! committer thread or a runtime worker running a flush); they must not block for long.
//! A callback that calls its own meter's `flush()` or `close()`, or `record()` in the group
//! mode, gets `InvalidState` (each would wait for the callback itself); dropping the last
//! handle there does not wait for the committer thread it runs on.

mod crash;
#[cfg(feature = "fleet")]
mod fleet;
#[cfg(not(feature = "fleet"))]
#[path = "fleet_off.rs"]
mod fleet;
mod owner;
mod send;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::error::{BuildError, FieldPath};
use crate::operation::batch_meter_usage::BatchMeterUsageInput;
use crate::primitives::DateTime;
use crate::types::{UsageAllocation, UsageRecord};
use crate::{Client, Error};

use store::{Allocs, Db, Scope};

/// Who a usage event is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Customer {
    /// A SaaS `CustomerIdentifier` (from `ResolveCustomer`); needs the meter's product code.
    Identifier(String),
    /// A `CustomerAWSAccountId` with its `LicenseArn`.
    AwsAccount {
        /// The customer's AWS account id.
        account_id: String,
        /// The customer's license.
        license_arn: String,
    },
}

impl Customer {
    /// A `CustomerIdentifier` customer.
    pub fn identifier(id: impl Into<String>) -> Customer {
        Customer::Identifier(id.into())
    }
    /// A `CustomerAWSAccountId` + `LicenseArn` customer.
    pub fn aws_account(account_id: impl Into<String>, license_arn: impl Into<String>) -> Customer {
        Customer::AwsAccount {
            account_id: account_id.into(),
            license_arn: license_arn.into(),
        }
    }
}

impl Customer {
    /// The customer as every face shows it: `(customer_identifier, customer_aws_account_id,
    /// license_arn)`, each absent when it does not apply. A `MeterUsage`-mode bucket has no
    /// customer: all three are absent.
    pub fn parts(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        match self {
            Customer::Identifier(id) => ((!id.is_empty()).then_some(id.as_str()), None, None),
            Customer::AwsAccount {
                account_id,
                license_arn,
            } => (None, Some(account_id.as_str()), Some(license_arn.as_str())),
        }
    }

    /// The customer a face's three optional arguments give: `customer_identifier`, or
    /// `customer_aws_account_id` with its `license_arn`. Giving none is allowed only when
    /// `required` is false (the `MeterUsage` mode, whose buckets have no customer); then the
    /// customer is an empty identifier. Errors are `InvalidInput` naming the argument by
    /// those names (a face renames them to its own spelling).
    pub fn from_parts(
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
        required: bool,
    ) -> Result<Customer, Error> {
        match (customer_identifier, customer_aws_account_id, license_arn) {
            (Some(id), None, None) => Ok(Customer::Identifier(id)),
            (None, Some(a), Some(l)) => Ok(Customer::aws_account(a, l)),
            (None, None, None) if !required => Ok(Customer::Identifier(String::new())),
            (None, None, None) => Err(Error::invalid_input(
                FieldPath::argument("customer_identifier"),
                "is required (or an AWS account id with its license ARN)",
            )),
            (Some(_), None, Some(_)) => Err(Error::invalid_input(
                FieldPath::argument("license_arn"),
                "goes with an AWS account id, not with a customer identifier",
            )),
            (Some(_), _, _) => Err(Error::invalid_input(
                FieldPath::argument("customer_identifier"),
                "give one customer: an identifier, or an AWS account id with its license ARN",
            )),
            (None, Some(_), None) => Err(Error::invalid_input(
                FieldPath::argument("license_arn"),
                "is required with an AWS account id",
            )),
            (None, None, Some(_)) => Err(Error::invalid_input(
                FieldPath::argument("customer_aws_account_id"),
                "is required with a license ARN",
            )),
        }
    }
}

impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Customer::Identifier(id) => f.write_str(id),
            Customer::AwsAccount { account_id, .. } => f.write_str(account_id),
        }
    }
}

/// Which operation sends the buckets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MeterMode {
    /// `BatchMeterUsage`, up to 25 buckets per call (SaaS products).
    #[default]
    Batch,
    /// `MeterUsage`, one call per bucket with a `ClientToken` derived from the bucket (AMI and
    /// container products: usage of this instance, task or pod). The customer passed to
    /// `record()` is ignored: buckets are (dimension, hour).
    MeterUsage,
}

impl MeterMode {
    /// The name every face uses: `"batch"` or `"meter_usage"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MeterMode::Batch => "batch",
            MeterMode::MeterUsage => "meter_usage",
        }
    }
}

impl std::str::FromStr for MeterMode {
    type Err = Error;
    /// Parses [`MeterMode::as_str`]'s names; an error is `InvalidInput` naming `mode`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "batch" => Ok(MeterMode::Batch),
            "meter_usage" => Ok(MeterMode::MeterUsage),
            other => Err(Error::invalid_input(
                FieldPath::argument("mode"),
                format!("must be \"batch\" or \"meter_usage\", got {other:?}"),
            )),
        }
    }
}

/// When `record()` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// After the event is committed to the store (one transaction per call).
    #[default]
    Durable,
    /// After a group commit: one committer thread commits every caller waiting at that
    /// moment in one transaction, then wakes them all.
    Group,
    /// At once: events are buffered in memory and written to the store at every flush (and
    /// every `flush_interval`). A crash loses the events recorded since the last flush.
    Memory,
}

impl Durability {
    /// The name every face uses: `"durable"`, `"group"` or `"memory"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Group => "group",
            Durability::Memory => "memory",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = Error;
    /// Parses [`Durability::as_str`]'s names; an error is `InvalidInput` naming `durability`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "durable" => Ok(Durability::Durable),
            "group" => Ok(Durability::Group),
            "memory" => Ok(Durability::Memory),
            other => Err(Error::invalid_input(
                FieldPath::argument("durability"),
                format!("must be \"durable\", \"group\" or \"memory\", got {other:?}"),
            )),
        }
    }
}

/// Where the meter keeps its buckets.
#[derive(Clone)]
pub struct Store(StoreKind);

#[derive(Clone)]
enum StoreKind {
    Sqlite(PathBuf),
    Memory,
    Postgres(String),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            StoreKind::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            StoreKind::Memory => f.write_str("Memory"),
            // Never the URL: it may carry a password.
            StoreKind::Postgres(_) => f.write_str("Postgres(..)"),
        }
    }
}

impl Store {
    /// An SQLite file (created when missing), WAL mode, `synchronous=FULL`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Store {
        Store(StoreKind::Sqlite(path.into()))
    }
    /// Memory only, for tests: nothing survives the process.
    pub fn memory() -> Store {
        Store(StoreKind::Memory)
    }
    /// The fleet store: PostgreSQL at `database_url` (`postgresql://user@host:5432/db`, or
    /// `?host=/socket/dir` for a Unix socket), shared by every replica of a service; every
    /// customer-hour is billed once across the fleet. Needs the `fleet` feature.
    pub fn postgres(database_url: impl Into<String>) -> Store {
        Store(StoreKind::Postgres(database_url.into()))
    }
}

/// The fleet store's settings (from the builder).
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
pub(crate) struct FleetSettings {
    /// Never printed: it may carry a password.
    pub url: Redacted,
    pub replica_id: Option<String>,
    pub senders: u32,
    pub lease: Duration,
    /// The hour (epoch seconds) from which this store counts usage (a cut-over from a
    /// SQLite store); earlier events are refused.
    pub start_hour: Option<i64>,
    /// Seal by the meter's clock instead of the database's `now()` (a clock was given).
    pub use_meter_clock: bool,
}

/// A string Debug never shows.
#[derive(Clone)]
#[cfg_attr(not(feature = "fleet"), allow(dead_code))]
pub(crate) struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

/// What happened to a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeterEventKind {
    /// The service metered the bucket.
    Acked {
        /// The service's id for the record.
        metering_record_id: String,
    },
    /// The bucket was not metered and was kept in the dead-letter table.
    DeadLettered {
        /// The per-record `Status` (`CustomerNotSubscribed`, `DuplicateRecord`, …) or the
        /// error code.
        reason: String,
        /// Details.
        message: String,
    },
    /// An event for an hour already sealed; it was counted in `counted_in_hour` instead
    /// (`hour` is the event's own hour).
    LateEvent {
        /// The hour the quantity was added to.
        counted_in_hour: i64,
    },
    /// The bucket is still unsent and its window closes at `window_end` (epoch seconds).
    WindowAlarm {
        /// When the service stops accepting the bucket.
        window_end: i64,
    },
    /// The bucket passed the service's window unsent; it will not be sent.
    Expired,
}

impl MeterEventKind {
    /// The name every face uses: `"acked"`, `"dead_lettered"`, `"late_event"`,
    /// `"window_alarm"` or `"expired"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MeterEventKind::Acked { .. } => "acked",
            MeterEventKind::DeadLettered { .. } => "dead_lettered",
            MeterEventKind::LateEvent { .. } => "late_event",
            MeterEventKind::WindowAlarm { .. } => "window_alarm",
            MeterEventKind::Expired => "expired",
        }
    }
}

/// An event of the meter, passed to the `on_event` callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterEvent {
    /// What happened.
    pub kind: MeterEventKind,
    /// The bucket's customer.
    pub customer: Customer,
    /// The bucket's dimension.
    pub dimension: String,
    /// The bucket's hour (epoch seconds, a multiple of 3600).
    pub hour: i64,
    /// The bucket's quantity (for a late event, the event's quantity).
    pub quantity: i64,
}

/// A bucket the service did not meter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The customer.
    pub customer: Customer,
    /// The dimension.
    pub dimension: String,
    /// The hour (epoch seconds).
    pub hour: i64,
    /// The frozen quantity.
    pub quantity: i64,
    /// The status or error code.
    pub reason: String,
    /// Details.
    pub message: String,
    /// When it was dead-lettered (epoch seconds).
    pub at: i64,
}

/// Which dead letters [`UsageMeter::requeue`] sends again; every field left `None` matches
/// all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequeueFilter {
    /// The dead letter's reason (`"CustomerNotSubscribed"`, an error code, …).
    pub reason: Option<String>,
    /// The bucket's customer.
    pub customer: Option<Customer>,
    /// The bucket's hour: any second of it (epoch seconds).
    pub hour: Option<i64>,
}

impl RequeueFilter {
    /// A filter from a face's arguments, named as [`Customer::from_parts`] names them: no
    /// customer argument at all matches every customer; `hour` may be any second of it.
    pub fn from_parts(
        reason: Option<String>,
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
        hour: Option<i64>,
    ) -> Result<RequeueFilter, Error> {
        let customer = match (&customer_identifier, &customer_aws_account_id, &license_arn) {
            (None, None, None) => None,
            _ => Some(Customer::from_parts(
                customer_identifier,
                customer_aws_account_id,
                license_arn,
                true,
            )?),
        };
        Ok(RequeueFilter {
            reason,
            customer,
            hour: hour.map(|h| h.div_euclid(3600) * 3600),
        })
    }
}

/// Bucket counts per state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeterStatus {
    /// Hours still open (or within grace).
    pub pending: u64,
    /// Sealed, not yet acknowledged (includes buckets being sent).
    pub sealed: u64,
    /// Metered by the service.
    pub acked: u64,
    /// Refused by the service; see [`UsageMeter::dead_letters`].
    pub dead_lettered: u64,
    /// Passed the service's window unsent.
    pub expired: u64,
    /// The oldest hour not yet acknowledged, dead-lettered or expired.
    pub oldest_unsent_hour: Option<i64>,
}

impl MeterStatus {
    /// Counts `n` buckets in `state` whose oldest calendar hour is `min_hour`.
    fn count(&mut self, state: &str, n: i64, min_hour: Option<i64>) {
        let n = n.max(0) as u64;
        match state {
            "pending" => self.pending += n,
            "sealed" | "sending" => self.sealed += n,
            "acked" => self.acked += n,
            "dead_lettered" => self.dead_lettered += n,
            "expired" => self.expired += n,
            _ => {}
        }
        if matches!(state, "pending" | "sealed" | "sending") {
            if let Some(h) = min_hour {
                self.oldest_unsent_hour = Some(self.oldest_unsent_hour.map_or(h, |o| o.min(h)));
            }
        }
    }
}

/// What one flush did.
#[derive(Debug, Default)]
pub struct FlushSummary {
    /// Buckets sealed by this flush.
    pub sealed: usize,
    /// Records sent (re-sends included).
    pub sent: usize,
    /// Calls made.
    pub calls: usize,
    /// Buckets acknowledged.
    pub acked: usize,
    /// Buckets dead-lettered.
    pub dead_lettered: usize,
    /// Buckets expired.
    pub expired: usize,
    /// Records the service returned as unprocessed and that were sent again.
    pub resent_unprocessed: usize,
    /// Buckets left for a later flush.
    pub deferred: usize,
    /// The retryable error (throttling, transport) that stopped this flush early.
    pub interrupted: Option<Error>,
}

/// A clock returning epoch seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;
/// An event callback.
pub type EventCallback = Arc<dyn Fn(MeterEvent) + Send + Sync>;

/// A clock set by hand, for tests and examples: hours seal when the caller moves it, not when
/// real time passes. Every face offers it (Python `testing.ManualClock`, Node
/// `ManualClock`, C `mm_clock_*`) so sellers can test their own flushing code.
///
/// ```
/// use marketplace_metering::meter::ManualClock;
/// let clock = ManualClock::new(7_200);
/// clock.advance(3_600);
/// assert_eq!(clock.now(), 10_800);
/// assert_eq!((clock.clock())(), 10_800);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `epoch_secs`.
    pub fn new(epoch_secs: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(epoch_secs)))
    }
    /// The time it reads (epoch seconds).
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    /// Sets it to `epoch_secs`.
    pub fn set(&self, epoch_secs: i64) {
        self.0.store(epoch_secs, Ordering::SeqCst);
    }
    /// Moves it by `secs` (negative moves it back).
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    /// A [`Clock`] reading this clock, for [`MeterConfigBuilder::clock`].
    pub fn clock(&self) -> Clock {
        let c = self.0.clone();
        Arc::new(move || c.load(Ordering::SeqCst))
    }
}

/// How often a meter flushes in the background unless told otherwise, in every face.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// The meter's settings; see [`MeterConfig::builder`].
#[derive(Clone)]
pub struct MeterConfig {
    client: Client,
    store: Store,
    product_code: Option<String>,
    mode: MeterMode,
    durability: Durability,
    grace: Duration,
    zero_fill: bool,
    on_event: Option<EventCallback>,
    flush_interval: Option<Duration>,
    clock: Clock,
    window: Duration,
    alarm_before: Duration,
    group_max_wait: Duration,
    group_max_events: usize,
    max_unprocessed_rounds: u32,
    power_loss_safe: bool,
    clock_given: bool,
    replica_id: Option<String>,
    fleet_senders: u32,
    fleet_lease: Duration,
    start_hour: Option<i64>,
}

impl fmt::Debug for MeterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeterConfig")
            .field("store", &self.store)
            .field("product_code", &self.product_code)
            .field("mode", &self.mode)
            .field("durability", &self.durability)
            .field("grace", &self.grace)
            .field("zero_fill", &self.zero_fill)
            .field("flush_interval", &self.flush_interval)
            .field("window", &self.window)
            .field("alarm_before", &self.alarm_before)
            .field("power_loss_safe", &self.power_loss_safe)
            .field("replica_id", &self.replica_id)
            .field("fleet_senders", &self.fleet_senders)
            .field("fleet_lease", &self.fleet_lease)
            .field("start_hour", &self.start_hour)
            .finish_non_exhaustive()
    }
}

impl MeterConfig {
    /// A builder; `client` and `store` are required.
    pub fn builder() -> MeterConfigBuilder {
        MeterConfigBuilder::default()
    }
}

/// The meter's default clock: the client's, corrected for the skew it learnt from the service.
fn client_clock(client: Client) -> Clock {
    Arc::new(move || epoch_secs(client.now()))
}

fn epoch_secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Builds a [`MeterConfig`].
#[derive(Default)]
pub struct MeterConfigBuilder {
    client: Option<Client>,
    store: Option<Store>,
    product_code: Option<String>,
    mode: MeterMode,
    durability: Durability,
    grace: Option<Duration>,
    zero_fill: bool,
    on_event: Option<EventCallback>,
    flush_interval: Option<Duration>,
    clock: Option<Clock>,
    window: Option<Duration>,
    alarm_before: Option<Duration>,
    group_max_wait: Duration,
    group_max_events: Option<usize>,
    power_loss_safe: Option<bool>,
    replica_id: Option<String>,
    fleet_senders: Option<u32>,
    fleet_lease: Option<Duration>,
    start_hour: Option<i64>,
}

impl MeterConfigBuilder {
    /// `true` (default): every commit is fsynced (`synchronous=FULL`) and survives power
    /// loss. `false`: `synchronous=NORMAL` in WAL mode — a commit survives any crash of the
    /// process (kill -9) but the last commits may be lost if the machine itself fails; commits
    /// are then an order of magnitude faster.
    pub fn power_loss_safe(mut self, on: bool) -> Self {
        self.power_loss_safe = Some(on);
        self
    }
    /// The client that sends the buckets.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }
    /// Where buckets are kept.
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }
    /// The product code; without it every customer must be [`Customer::AwsAccount`].
    pub fn product_code(mut self, code: impl Into<String>) -> Self {
        self.product_code = Some(code.into());
        self
    }
    /// `Batch` (default) or `MeterUsage`.
    pub fn mode(mut self, mode: MeterMode) -> Self {
        self.mode = mode;
        self
    }
    /// When `record()` returns (default `Durable`).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Time after an hour's end before it is sealed (default 5 minutes).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }
    /// Report 0 for the hours of registered customers without usage.
    pub fn zero_fill(mut self, on: bool) -> Self {
        self.zero_fill = on;
        self
    }
    /// The event callback.
    pub fn on_event(mut self, f: impl Fn(MeterEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }
    /// Flush in the background on the shared runtime this often (default
    /// [`DEFAULT_FLUSH_INTERVAL`], in every face); zero: no background flusher.
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_interval = Some(every);
        self
    }
    /// The clock, in epoch seconds. For tests. The default is the client's clock
    /// ([`Client::now`]): the local clock, corrected by the skew the client learnt from the
    /// service, so hours, timestamps and the service's window are judged as the service does.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// How long after its hour a record is still accepted by the service (default 6 hours).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }
    /// How long before the window's end an unsent bucket raises an alarm (default 1 hour).
    pub fn alarm_before(mut self, d: Duration) -> Self {
        self.alarm_before = Some(d);
        self
    }
    /// Group commit: how long the committer waits for more callers and how many events
    /// one commit takes at most (default 4096). Default wait 0: adaptive — callers gather
    /// while the previous commit runs, and when commits wait for the disk (≥ 150 µs) a new
    /// group waits for as many callers as the last commit released, at most half the last
    /// commit's duration (≤ 1 ms).
    pub fn group_commit(mut self, max_wait: Duration, max_events: usize) -> Self {
        self.group_max_wait = max_wait;
        self.group_max_events = Some(max_events.max(1));
        self
    }
    /// Fleet store: the name of this writer in the store (default: host name and process
    /// id). Replicas must not share one while both run.
    pub fn replica_id(mut self, id: impl Into<String>) -> Self {
        self.replica_id = Some(id.into());
        self
    }
    /// Fleet store: how many meters of the fleet send at once per product (default 1, so
    /// the fleet calls the service at the rate one meter does).
    pub fn fleet_senders(mut self, n: u32) -> Self {
        self.fleet_senders = Some(n);
        self
    }
    /// Fleet store: how long a sender's claim on buckets lasts (default 2 minutes); a
    /// sender that dies is replaced after this, and its records are sent again, identical.
    pub fn fleet_lease(mut self, lease: Duration) -> Self {
        self.fleet_lease = Some(lease);
        self
    }
    /// Fleet store: the first hour (epoch seconds, rounded down to the hour) this store
    /// counts. Events of earlier hours are refused (`InvalidInput` naming `timestamp`):
    /// they belong to the SQLite meter this store takes over from (see the README's
    /// cut-over).
    pub fn start_hour(mut self, epoch_secs: i64) -> Self {
        self.start_hour = Some(hour_of(epoch_secs));
        self
    }
    /// Builds the settings; `client` and `store` are required.
    pub fn build(self) -> Result<MeterConfig, BuildError> {
        let client = self.client.ok_or(BuildError::missing("client"))?;
        let clock_given = self.clock.is_some();
        let clock = self.clock.unwrap_or_else(|| client_clock(client.clone()));
        Ok(MeterConfig {
            client,
            store: self.store.ok_or(BuildError::missing("store"))?,
            product_code: self.product_code,
            mode: self.mode,
            durability: self.durability,
            grace: self.grace.unwrap_or(Duration::from_secs(300)),
            zero_fill: self.zero_fill,
            on_event: self.on_event,
            flush_interval: Some(self.flush_interval.unwrap_or(DEFAULT_FLUSH_INTERVAL))
                .filter(|d| !d.is_zero()),
            clock,
            window: self.window.unwrap_or(Duration::from_secs(6 * 3600)),
            alarm_before: self.alarm_before.unwrap_or(Duration::from_secs(3600)),
            group_max_wait: self.group_max_wait,
            group_max_events: self.group_max_events.unwrap_or(4096),
            max_unprocessed_rounds: 5,
            power_loss_safe: self.power_loss_safe.unwrap_or(true),
            clock_given,
            replica_id: self.replica_id,
            fleet_senders: self.fleet_senders.unwrap_or(1),
            fleet_lease: self.fleet_lease.unwrap_or(Duration::from_secs(120)),
            start_hour: self.start_hour,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BucketKey {
    customer: Customer,
    dimension: String,
    hour: i64,
}

#[derive(Default)]
struct Acc {
    quantity: i64,
    allocations: Option<Allocs>,
    /// What the store held for the bucket when a `memory` buffer first took it (the rest of
    /// the bucket's sum, for the model's maximum); 0 elsewhere.
    base: i64,
}

impl Acc {
    fn add(&mut self, quantity: i64, allocations: Option<Allocs>) {
        self.quantity = self.quantity.saturating_add(quantity);
        if let Some(a) = allocations {
            let mine = self.allocations.get_or_insert_with(Allocs::new);
            for (k, v) in a {
                *mine.entry(k).or_insert(0) += v;
            }
        }
    }
    /// The bucket's sum with `quantity` more.
    fn total_with(&self, quantity: i64) -> i64 {
        self.base
            .saturating_add(self.quantity)
            .saturating_add(quantity)
    }
}

type Buffer = HashMap<BucketKey, Acc>;

/// The `memory` durability's buffer.
#[derive(Default)]
struct MemBuffer {
    map: Buffer,
    /// Counts drains, so a `record()` that read a bucket's stored sum without holding the
    /// buffer knows whether a drain changed it meanwhile.
    drains: u64,
}

/// The largest quantity a bucket may reach: the model's maximum for a record.
const MAX_BUCKET: i64 = i32::MAX as i64;

/// The error of a `record()` that would push a bucket past [`MAX_BUCKET`].
fn overflow_error(key: &BucketKey, quantity: i64, total: i64) -> Error {
    Error::invalid_input(
        FieldPath::argument("quantity"),
        format!(
            "adding {quantity} would bring the hour {} of {} / {} to {total}, past the largest \
             quantity the service accepts for an hour ({MAX_BUCKET}); nothing of it was \
             counted. Meter this dimension in a coarser unit",
            key.hour, key.customer, key.dimension
        ),
    )
}

/// Runs a fleet-store future to completion from synchronous code: on the calling thread
/// through [`crate::runtime::block_on`], or, when the caller is itself inside a tokio
/// runtime (a `#[tokio::test]`, an async seller), on a helper thread, so the call never
/// fails for where it was made. The database connections run on the shared runtime either
/// way.
fn wait<F>(fut: F) -> Result<F::Output, Error>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return crate::runtime::block_on(fut);
    }
    std::thread::scope(|s| {
        s.spawn(|| crate::runtime::block_on(fut))
            .join()
            .unwrap_or_else(|_| Err(Error::invalid_state("fleet store: a helper thread failed")))
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared by the meter, its committer thread and its background flusher.
struct Shared {
    db: Mutex<Db>,
    /// The fleet store; `db` is then an unused in-memory database.
    fleet: Option<fleet::Fleet>,
    buffer: Mutex<MemBuffer>,
    scope: Scope,
    clock: Clock,
    on_event: Option<EventCallback>,
}

/// What one write did besides adding.
#[derive(Default)]
struct Written {
    late: Vec<MeterEvent>,
    /// Entries refused because their bucket would pass [`MAX_BUCKET`], with that sum.
    refused: Vec<(BucketKey, i64)>,
}

impl Shared {
    fn emit(&self, events: Vec<MeterEvent>) {
        if let Some(cb) = &self.on_event {
            if events.is_empty() {
                return;
            }
            let _in = InCallback::enter(self);
            for e in events {
                cb(e);
            }
        }
    }

    /// Whether this thread is running this meter's event callback.
    fn in_callback(&self) -> bool {
        let me = self as *const Shared as usize;
        IN_CALLBACK
            .try_with(|v| v.borrow().contains(&me))
            .unwrap_or(false)
    }

    /// `InvalidState` when called from this meter's own event callback: `record()` there may
    /// wait for the thread running the callback (the group committer), and `flush()`,
    /// `close()` and dropping the last handle wait for work that is calling it.
    fn refuse_reentry(&self, what: &str) -> Result<(), Error> {
        if self.in_callback() {
            return Err(Error::invalid_state(format!(
                "{what} cannot be called from the meter's own event callback (it would wait for \
                 itself); do it after the callback returns"
            )));
        }
        Ok(())
    }

    fn current_hour(&self) -> i64 {
        hour_of((self.clock)())
    }

    /// Writes `entries` in one transaction. An entry whose bucket would pass the model's
    /// maximum is left out and listed, unless `must_land` (usage already acknowledged: the
    /// buffer of `memory` durability), which counts it in the next hour that has room.
    fn write(&self, db: &mut Db, entries: &Buffer, must_land: bool) -> Result<Written, Error> {
        let mut out = Written::default();
        if entries.is_empty() {
            return Ok(out);
        }
        let current = self.current_hour();
        let product = self.scope.product_code.as_str();
        let mut tx = db.transaction()?;
        // Several events without allocations (a group commit): one multi-row upsert, unless
        // one of them meets a bucket sealed meanwhile or full; then all go one by one below.
        let mut entries: Vec<(&BucketKey, &Acc)> = entries.iter().collect();
        if entries.len() > 1 {
            let plain: Vec<(&Customer, &str, i64, i64)> = entries
                .iter()
                .filter(|(_, a)| a.allocations.as_ref().is_none_or(|m| m.is_empty()))
                .map(|(k, a)| (&k.customer, k.dimension.as_str(), k.hour, a.quantity))
                .collect();
            if plain.len() > 1 && Db::apply_many(&mut tx, product, &plain)? {
                entries.retain(|(_, a)| a.allocations.as_ref().is_some_and(|m| !m.is_empty()));
            }
        }
        for (k, acc) in entries {
            let mut hour = k.hour;
            let mut tries = 0;
            let counted = loop {
                let applied = Db::apply(
                    &tx,
                    product,
                    &k.customer,
                    &k.dimension,
                    hour,
                    acc.quantity,
                    acc.allocations.as_ref(),
                    current.max(hour),
                )?;
                match applied {
                    store::Applied::Added => break Some(hour),
                    store::Applied::Moved(h) => break Some(h),
                    store::Applied::Overflow(total) if !must_land || tries >= 48 => {
                        out.refused.push((k.clone(), total));
                        break None;
                    }
                    store::Applied::Overflow(_) => {
                        hour = hour.max(current).saturating_add(3600);
                        tries += 1;
                    }
                }
            };
            if let Some(h) = counted.filter(|h| *h != k.hour) {
                out.late.push(MeterEvent {
                    kind: MeterEventKind::LateEvent { counted_in_hour: h },
                    customer: k.customer.clone(),
                    dimension: k.dimension.clone(),
                    hour: k.hour,
                    quantity: acc.quantity,
                });
            }
        }
        crash::hit("record_mid_txn");
        tx.commit().map_err(store::store_err)?;
        crash::hit("record_after_commit");
        Ok(out)
    }

    /// Writes `entries` to whichever store the meter has (see [`Shared::write`]); the fleet
    /// store's call blocks this thread.
    fn write_store(&self, entries: &Buffer, must_land: bool) -> Result<Written, Error> {
        match &self.fleet {
            Some(f) => wait(f.write(&self.scope.product_code, entries, self.current_hour()))?,
            None => self.write(&mut lock(&self.db), entries, must_land),
        }
    }

    /// Moves the in-memory buffer into the store. On any error (busy, disk full, read-only)
    /// the events go back into the buffer, to be written by the next drain: `record()`
    /// acknowledged them.
    fn drain(&self) -> Result<(), Error> {
        if let Some(f) = &self.fleet {
            let entries = self.take_buffer();
            if entries.is_empty() {
                return Ok(());
            }
            let r = wait(f.write(&self.scope.product_code, &entries, self.current_hour()))
                .and_then(|r| r);
            return self.drained(entries, r);
        }
        let mut db = lock(&self.db);
        let entries = self.take_buffer();
        if entries.is_empty() {
            return Ok(());
        }
        let result = self.write(&mut db, &entries, true);
        drop(db);
        self.drained(entries, result)
    }

    /// [`Shared::drain`] on the runtime (a flush).
    async fn drain_async(&self) -> Result<(), Error> {
        let Some(f) = &self.fleet else {
            return self.drain();
        };
        let entries = self.take_buffer();
        if entries.is_empty() {
            return Ok(());
        }
        let r = f
            .write(&self.scope.product_code, &entries, self.current_hour())
            .await;
        self.drained(entries, r)
    }

    fn take_buffer(&self) -> Buffer {
        let mut b = lock(&self.buffer);
        b.drains += 1;
        std::mem::take(&mut b.map)
    }

    /// Puts back what a drain could not write.
    fn drained(&self, entries: Buffer, result: Result<Written, Error>) -> Result<(), Error> {
        match result {
            Ok(w) => {
                for (k, total) in w.refused {
                    tracing::error!(customer = %k.customer, dimension = %k.dimension, hour = k.hour,
                        total, "meter: no hour had room for buffered usage; it stays buffered");
                    if let Some(acc) = entries.get(&k) {
                        let mut b = lock(&self.buffer);
                        let mine = b.map.entry(k).or_default();
                        mine.add(acc.quantity, acc.allocations.clone());
                    }
                }
                self.emit(w.late);
                Ok(())
            }
            Err(e) => {
                let mut b = lock(&self.buffer);
                for (k, acc) in entries {
                    let mine = b.map.entry(k).or_default();
                    mine.base = mine.base.max(acc.base);
                    mine.add(acc.quantity, acc.allocations);
                }
                Err(e)
            }
        }
    }
}

thread_local! {
    /// The meters (their `Shared`'s address) whose event callback this thread is running.
    static IN_CALLBACK: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks this thread as running a meter's callback until dropped (a panicking callback
/// included).
struct InCallback(usize);

impl InCallback {
    fn enter(shared: &Shared) -> InCallback {
        let me = shared as *const Shared as usize;
        let _ = IN_CALLBACK.try_with(|v| v.borrow_mut().push(me));
        InCallback(me)
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        let _ = IN_CALLBACK.try_with(|v| {
            let mut v = v.borrow_mut();
            if let Some(i) = v.iter().rposition(|m| *m == self.0) {
                v.remove(i);
            }
        });
    }
}

/// One group commit's result; its callers park until it is set.
///
/// Callers register their thread in the queue (under its lock) before checking the result,
/// and the committer sets the result before unparking them, so no wake-up is lost; a
/// spurious or stale unpark only makes a caller check again.
#[derive(Default)]
struct Slot {
    /// The buckets refused for the model's maximum, or the commit's error.
    result: std::sync::OnceLock<Result<Vec<(BucketKey, i64)>, String>>,
}

impl Slot {
    /// Waits for the commit; `key` and `quantity` are this caller's event.
    fn wait(&self, key: &BucketKey, quantity: i64) -> Result<(), Error> {
        // A commit that does not wait for the disk takes tens of microseconds, less than a
        // park/unpark round trip costs on a VM: yield for a while before parking.
        let spin_until = std::time::Instant::now() + SPIN;
        loop {
            if let Some(r) = self.result.get() {
                return match r {
                    Ok(refused) => match refused.iter().find(|(k, _)| k == key) {
                        Some((k, total)) => Err(overflow_error(k, quantity, *total)),
                        None => Ok(()),
                    },
                    Err(e) => Err(Error::invalid_state(e.clone())),
                };
            }
            if std::time::Instant::now() < spin_until {
                std::thread::yield_now();
            } else {
                std::thread::park();
            }
        }
    }
    fn finish(&self, r: Result<Vec<(BucketKey, i64)>, String>, waiters: Vec<std::thread::Thread>) {
        let _ = self.result.set(r);
        for t in waiters {
            t.unpark();
        }
    }
}

struct GroupQueue {
    open: Buffer,
    count: usize,
    slot: Arc<Slot>,
    /// The callers waiting for `slot`.
    waiters: Vec<std::thread::Thread>,
    stop: bool,
    /// How many callers the committer waits for (adaptive mode): as many as the last
    /// commit released. Callers wake the committer only on the first event of a group and
    /// when this many have arrived.
    want: usize,
}

struct Group {
    queue: Mutex<GroupQueue>,
    /// Wakes the committer.
    cv: Condvar,
    /// Wakes callers waiting for room (`max_events`).
    room: Condvar,
}

/// How long a group-commit caller yields before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// A commit at least this long is waiting for the disk (an fsync), not for the CPU.
const SLOW_COMMIT: Duration = Duration::from_micros(150);

/// The committer thread of `Durability::Group`.
///
/// With `max_wait` zero (the default) the group size adapts. When commits wait for the disk
/// (the last one took [`SLOW_COMMIT`] or more: an fsync), a started group waits until as
/// many callers have arrived as the last commit released (they are the ones likely to call
/// again at once), but no longer than half the last commit's duration (at most 1 ms), so a
/// caller that stopped costs one short wait, not throughput: 8 callers then share about
/// one fsync per 8 events instead of one per 4 to 5. When commits are cheap CPU work
/// (`synchronous=NORMAL`), it commits at once, so callers' own work overlaps the commit.
/// With `max_wait` set it waits up to `max_wait` for `max_events`.
fn committer(shared: Arc<Shared>, group: Arc<Group>, max_wait: Duration, max_events: usize) {
    use std::time::Instant;
    let mut last_commit = Duration::ZERO;
    loop {
        let (batch, slot, n, waiters) = {
            let mut q = lock(&group.queue);
            while q.count == 0 && !q.stop {
                q = group.cv.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.count == 0 && q.stop {
                return;
            }
            let (target, wait) = if max_wait.is_zero() {
                if last_commit >= SLOW_COMMIT {
                    (
                        q.want.min(max_events),
                        (last_commit / 2).min(Duration::from_millis(1)),
                    )
                } else {
                    (0, Duration::ZERO)
                }
            } else {
                (max_events, max_wait)
            };
            if q.count < target && !wait.is_zero() {
                let deadline = Instant::now() + wait;
                while q.count < target && !q.stop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    q = group
                        .cv
                        .wait_timeout(q, deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
            let n = q.count;
            q.count = 0;
            let batch = std::mem::take(&mut q.open);
            let slot = std::mem::take(&mut q.slot);
            let waiters = std::mem::take(&mut q.waiters);
            group.room.notify_all();
            (batch, slot, n, waiters)
        };
        let started = Instant::now();
        let result = shared.write_store(&batch, false);
        last_commit = started.elapsed();
        // The callers released now are the ones expected in the next group.
        lock(&group.queue).want = n.max(1);
        match result {
            Ok(w) => {
                slot.finish(Ok(w.refused), waiters);
                shared.emit(w.late);
            }
            Err(e) => slot.finish(Err(e.to_string()), waiters),
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    client: Client,
    mode: MeterMode,
    durability: Durability,
    memory_store: bool,
    max_unprocessed_rounds: u32,
    group: Option<(Arc<Group>, usize)>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    flush_lock: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    /// The process that created the meter (see `owner`).
    generation: u64,
}

impl Inner {
    /// Refuses every call in a process other than the one that created the meter.
    fn check_process(&self) -> Result<(), Error> {
        if self.generation == owner::process_generation() {
            Ok(())
        } else {
            Err(owner::forked_error())
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.check_process().is_err() {
            // Inherited across fork(): the threads are not in this process and the buffer is
            // the parent's to write. Touch nothing (the store's connection is leaked too).
            std::mem::forget(lock(&self.flusher).take());
            std::mem::forget(lock(&self.committer).take());
            return;
        }
        if let Some(h) = lock(&self.flusher).take() {
            h.abort();
        }
        if let Some((g, _)) = &self.group {
            lock(&g.queue).stop = true;
            g.cv.notify_all();
        }
        if let Some(h) = lock(&self.committer).take() {
            // Dropped by a callback on the committer thread itself: it ends on its own.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        // Memory durability: write what is buffered (a file store keeps it).
        if let Err(e) = self.shared.drain() {
            tracing::error!(error = %e, "meter: buffered usage could not be written at drop");
        }
    }
}

/// Starts the background flusher on the shared runtime, and has the runtime start it again
/// on its next runtime when [`crate::runtime::shutdown`] stops this one (C's `mm_shutdown()`
/// while the meter is alive), so a shutdown never ends a live meter's flushing for good.
fn start_flusher(inner: &Arc<Inner>, every: Duration) -> Result<(), Error> {
    spawn_flusher(inner, every)?;
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let owner: Weak<dyn std::any::Any + Send + Sync> = weak.clone();
    crate::runtime::restart_after_shutdown(owner, move || {
        if let Some(inner) = weak.upgrade() {
            if !inner.closed.load(Ordering::SeqCst) {
                let _ = spawn_flusher(&inner, every);
            }
        }
    });
    Ok(())
}

fn spawn_flusher(inner: &Arc<Inner>, every: Duration) -> Result<(), Error> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let h = crate::runtime::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(inner) = weak.upgrade() else { break };
            if inner.closed.load(Ordering::SeqCst) {
                break;
            }
            let _ = UsageMeter { inner }.flush_now().await;
        }
    })?;
    if let Some(old) = lock(&inner.flusher).replace(h) {
        old.abort();
    }
    Ok(())
}

/// Records billable events and bills every customer-hour exactly once; see the
/// [module documentation](self).
///
/// Cheap to clone (an `Arc` inside); all methods take `&self`.
#[derive(Clone)]
pub struct UsageMeter {
    inner: Arc<Inner>,
}

impl fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageMeter")
            .field("product_code", &self.inner.shared.scope.product_code)
            .field("mode", &self.inner.mode)
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

fn hour_of(secs: i64) -> i64 {
    secs.div_euclid(3600).saturating_mul(3600)
}

/// How far ahead of the meter's clock a timestamp may be (5 minutes).
pub const MAX_AHEAD_SECS: i64 = 300;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years a calendar (and every face's
/// date type) holds.
const CALENDAR: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// Checks an event's timestamp against the meter's clock `now`.
fn check_timestamp(secs: i64, now: i64) -> Result<i64, Error> {
    if !CALENDAR.contains(&secs) {
        return Err(Error::invalid_input(
            FieldPath::argument("timestamp"),
            format!("{secs} is not a time any calendar holds (seconds since 1970-01-01)"),
        ));
    }
    if secs > now.saturating_add(MAX_AHEAD_SECS) {
        return Err(Error::invalid_input(
            FieldPath::argument("timestamp"),
            format!(
                "{secs} is more than {MAX_AHEAD_SECS} seconds ahead of the meter's clock \
                 ({now}); timestamps are seconds since 1970-01-01 (milliseconds, as from \
                 Date.now() or time.time() * 1000, are refused)"
            ),
        ));
    }
    Ok(secs)
}

fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn canonical_allocations(allocs: &[UsageAllocation]) -> Result<Allocs, Error> {
    let mut out = Allocs::new();
    for a in allocs {
        let key = match &a.tags {
            None => String::new(),
            Some(tags) => {
                let mut t = tags.clone();
                t.sort_by(|x, y| (&x.key, &x.value).cmp(&(&y.key, &y.value)));
                serde_json::to_string(&t).map_err(|e| {
                    Error::invalid_input(
                        FieldPath::argument("allocations"),
                        format!("cannot encode the tags: {e}"),
                    )
                })?
            }
        };
        *out.entry(key).or_insert(0) += i64::from(a.allocated_usage_quantity);
    }
    Ok(out)
}

impl UsageMeter {
    /// Opens the store (creating or migrating it) and starts the committer thread
    /// (`Group`) and the background flusher (`flush_interval`).
    pub fn new(config: MeterConfig) -> Result<UsageMeter, Error> {
        if config.mode == MeterMode::MeterUsage && config.product_code.is_none() {
            return Err(Error::invalid_config(
                "the MeterUsage mode needs a product code",
            ));
        }
        if let Some(p) = &config.product_code {
            if p.is_empty() {
                return Err(Error::invalid_input(
                    FieldPath::argument("product_code"),
                    "must not be empty",
                ));
            }
        }
        let memory_store = matches!(config.store.0, StoreKind::Memory);
        let mut fleet = None;
        let db = match &config.store.0 {
            StoreKind::Sqlite(p) => Db::open(Some(p), config.power_loss_safe)?,
            StoreKind::Memory => Db::open(None, true)?,
            StoreKind::Postgres(url) => {
                let settings = FleetSettings {
                    url: Redacted(url.clone()),
                    replica_id: config.replica_id.clone(),
                    senders: config.fleet_senders,
                    lease: config.fleet_lease,
                    start_hour: config.start_hour,
                    use_meter_clock: config.clock_given,
                };
                fleet = Some(wait(fleet::Fleet::open(settings))??);
                Db::open(None, true)?
            }
        };
        let scope = Scope {
            product_code: config.product_code.clone().unwrap_or_default(),
            grace: duration_secs(config.grace),
            window: duration_secs(config.window),
            alarm_before: duration_secs(config.alarm_before),
            zero_fill: config.zero_fill,
        };
        let shared = Arc::new(Shared {
            db: Mutex::new(db),
            fleet,
            buffer: Mutex::new(MemBuffer::default()),
            scope,
            clock: config.clock.clone(),
            on_event: config.on_event.clone(),
        });
        let mut group = None;
        let mut committer_handle = None;
        if config.durability == Durability::Group && !memory_store {
            let g = Arc::new(Group {
                queue: Mutex::new(GroupQueue {
                    open: Buffer::new(),
                    count: 0,
                    slot: Arc::default(),
                    waiters: Vec::new(),
                    stop: false,
                    want: 1,
                }),
                cv: Condvar::new(),
                room: Condvar::new(),
            });
            let (s, g2) = (shared.clone(), g.clone());
            let (wait, max) = (config.group_max_wait, config.group_max_events);
            let h = std::thread::Builder::new()
                .name("mm-meter-commit".into())
                .spawn(move || committer(s, g2, wait, max))
                .map_err(|e| {
                    Error::invalid_state(format!("cannot start the committer thread: {e}"))
                })?;
            group = Some((g, config.group_max_events));
            committer_handle = Some(h);
        }
        let inner = Arc::new(Inner {
            shared,
            client: config.client,
            mode: config.mode,
            durability: config.durability,
            memory_store,
            max_unprocessed_rounds: config.max_unprocessed_rounds,
            group,
            committer: Mutex::new(committer_handle),
            flusher: Mutex::new(None),
            flush_lock: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            generation: owner::process_generation(),
        });
        if let Some(every) = config.flush_interval {
            start_flusher(&inner, every)?;
        }
        Ok(UsageMeter { inner })
    }

    /// Adds `quantity` of `dimension` used by `customer` at `at` (default: now) to its
    /// bucket, and returns once the event is as durable as the meter's [`Durability`] says.
    ///
    /// An event whose hour is already sealed (or older than its grace) is counted in the
    /// current hour, or the next open one when the clock stepped back into a sealed hour,
    /// and reported as [`MeterEventKind::LateEvent`]. Refused with `InvalidInput`: a
    /// timestamp more than [`MAX_AHEAD_SECS`] ahead of the meter's clock (a timestamp in
    /// milliseconds, say) or outside the years 1 to 9999 (`timestamp`), and an event that
    /// would push its bucket past the model's 2,147,483,647 (`quantity`; nothing of it is
    /// counted). `allocations`, when given, must sum to `quantity`. In `MeterUsage` mode the
    /// customer is ignored.
    pub fn record(
        &self,
        customer: Customer,
        dimension: &str,
        quantity: i64,
        at: Option<DateTime>,
        allocations: Option<Vec<UsageAllocation>>,
    ) -> Result<(), Error> {
        let inner = &*self.inner;
        inner.check_process()?;
        if inner.group.is_some() {
            // A group record waits for the committer thread, which may be the one calling.
            inner.shared.refuse_reentry("record() in the group mode")?;
        }
        if inner.closed.load(Ordering::Relaxed) {
            return Err(Error::invalid_state("the meter is closed"));
        }
        let q = crate::validate::quantity_with(quantity, || FieldPath::argument("quantity"))?;
        let customer = if inner.mode == MeterMode::MeterUsage {
            Customer::Identifier(String::new())
        } else {
            customer
        };
        let shared = &*inner.shared;
        let now = (shared.clock)();
        let at_secs = match at {
            Some(t) => check_timestamp(t.secs(), now)?,
            None => now,
        };
        self.validate(&customer, dimension, q, at_secs, allocations.as_deref())?;
        let allocs = match &allocations {
            Some(a) => Some(canonical_allocations(a)?),
            None => None,
        };
        let mut hour = hour_of(at_secs);
        if let Some(start) = shared.fleet.as_ref().and_then(fleet::Fleet::start_hour) {
            if hour < start || hour_of(now) < start {
                return Err(Error::invalid_input(
                    FieldPath::argument("timestamp"),
                    format!(
                        "{at_secs} is before this fleet store's start hour {start}: usage before \
                         the cut-over belongs to the SQLite meter it took over from"
                    ),
                ));
            }
        }
        if hour.saturating_add(3600 + shared.scope.grace) <= now {
            let current = hour_of(now);
            shared.emit(vec![MeterEvent {
                kind: MeterEventKind::LateEvent {
                    counted_in_hour: current,
                },
                customer: customer.clone(),
                dimension: dimension.to_owned(),
                hour,
                quantity,
            }]);
            hour = current;
        }
        let key = BucketKey {
            customer,
            dimension: dimension.to_owned(),
            hour,
        };
        if inner.memory_store || inner.durability == Durability::Memory {
            return self.buffer(key, quantity, allocs);
        }
        match &inner.group {
            Some((g, max_events)) => {
                let mine = key.clone();
                let slot = {
                    let mut qg = lock(&g.queue);
                    while qg.count >= *max_events && !qg.stop {
                        qg = g.room.wait(qg).unwrap_or_else(|p| p.into_inner());
                    }
                    if qg.stop {
                        return Err(Error::invalid_state("the meter is closed"));
                    }
                    qg.open.entry(key).or_default().add(quantity, allocs);
                    qg.count += 1;
                    // Wake the committer to start a group, and when it is complete.
                    if qg.count == 1 || qg.count == qg.want || qg.count >= *max_events {
                        g.cv.notify_one();
                    }
                    qg.waiters.push(std::thread::current());
                    qg.slot.clone()
                };
                slot.wait(&mine, quantity)
            }
            None => {
                let mut one = Buffer::with_capacity(1);
                one.insert(
                    key,
                    Acc {
                        quantity,
                        allocations: allocs,
                        base: 0,
                    },
                );
                let w = shared.write_store(&one, false)?;
                if let Some((k, total)) = w.refused.first() {
                    return Err(overflow_error(k, quantity, *total));
                }
                shared.emit(w.late);
                Ok(())
            }
        }
    }

    /// `memory` durability: adds to the buffer, unless the bucket's sum (the store's part
    /// and the buffer's) would pass the model's maximum.
    fn buffer(&self, key: BucketKey, quantity: i64, allocs: Option<Allocs>) -> Result<(), Error> {
        let shared = &*self.inner.shared;
        loop {
            let drains = {
                let mut b = lock(&shared.buffer);
                if let Some(acc) = b.map.get_mut(&key) {
                    let total = acc.total_with(quantity);
                    if total > MAX_BUCKET {
                        return Err(overflow_error(&key, quantity, total));
                    }
                    acc.add(quantity, allocs);
                    return Ok(());
                }
                b.drains
            };
            // First event of this bucket since the last drain: read what the store holds,
            // without holding the buffer (a drain holds the store, then the buffer).
            let base = if shared.fleet.is_some() {
                // The fleet's sum is spread over replicas; the write checks it.
                Ok(0)
            } else {
                lock(&shared.db).pending_quantity(
                    &shared.scope.product_code,
                    &key.customer,
                    &key.dimension,
                    key.hour,
                )
            }?;
            let mut b = lock(&shared.buffer);
            if b.drains != drains || b.map.contains_key(&key) {
                continue; // a drain or another caller came first: look again
            }
            let acc = Acc {
                quantity,
                allocations: allocs,
                base,
            };
            let total = acc.total_with(0);
            if total > MAX_BUCKET {
                return Err(overflow_error(&key, quantity, total));
            }
            b.map.insert(key, acc);
            return Ok(());
        }
    }

    fn validate(
        &self,
        customer: &Customer,
        dimension: &str,
        q: i32,
        at_secs: i64,
        allocations: Option<&[UsageAllocation]>,
    ) -> Result<(), Error> {
        if self.inner.mode == MeterMode::MeterUsage {
            crate::validate::dimension_argument("dimension", dimension)?;
            if let Some(a) = allocations {
                let input = crate::operation::meter_usage::MeterUsageInput {
                    product_code: self.inner.shared.scope.product_code.clone(),
                    timestamp: DateTime::from_secs(at_secs),
                    usage_dimension: dimension.to_owned(),
                    usage_quantity: Some(q),
                    dry_run: None,
                    usage_allocations: Some(a.to_vec()),
                    client_token: None,
                };
                crate::validate::meter_usage(&input)
                    .map_err(crate::validate::as_record_arguments)?;
            }
            return Ok(());
        }
        let product = &self.inner.shared.scope.product_code;
        match customer {
            Customer::Identifier(id) if allocations.is_none() => {
                if product.is_empty() {
                    return Err(Error::invalid_input(
                        FieldPath::argument("customer_identifier"),
                        "a CustomerIdentifier needs the meter's product code",
                    ));
                }
                crate::validate::customer_identifier_argument("customer_identifier", id)?;
                crate::validate::dimension_argument("dimension", dimension)
            }
            _ => {
                let record = self.usage_record(customer, dimension, q, at_secs, allocations);
                let input = BatchMeterUsageInput {
                    usage_records: vec![record],
                    product_code: (!product.is_empty()).then(|| product.clone()),
                };
                crate::validate::batch_meter_usage(&input)
                    .map_err(crate::validate::as_record_arguments)
            }
        }
    }

    fn usage_record(
        &self,
        customer: &Customer,
        dimension: &str,
        q: i32,
        at_secs: i64,
        allocations: Option<&[UsageAllocation]>,
    ) -> UsageRecord {
        let (ci, acct, lic) = match customer {
            Customer::Identifier(id) => (Some(id.clone()), None, None),
            Customer::AwsAccount {
                account_id,
                license_arn,
            } => (None, Some(account_id.clone()), Some(license_arn.clone())),
        };
        UsageRecord {
            timestamp: DateTime::from_secs(at_secs),
            customer_identifier: ci,
            dimension: dimension.to_owned(),
            quantity: Some(q),
            usage_allocations: allocations.map(<[UsageAllocation]>::to_vec),
            customer_aws_account_id: acct,
            license_arn: lic,
        }
    }

    /// Registers a customer for zero-fill: from the current hour on, each of `dimensions`
    /// is reported every hour, as 0 when there was no usage (only with `zero_fill` on).
    pub fn register_customer(&self, customer: Customer, dimensions: &[&str]) -> Result<(), Error> {
        self.inner.check_process()?;
        for d in dimensions {
            self.validate(&customer, d, 0, (self.inner.shared.clock)(), None)?;
        }
        let dims: Vec<String> = dimensions.iter().map(|d| (*d).to_owned()).collect();
        let shared = &self.inner.shared;
        let hour = shared.current_hour();
        if let Some(f) = &shared.fleet {
            return wait(f.register(&shared.scope.product_code, &customer, &dims, hour))?;
        }
        lock(&shared.db).register(&shared.scope.product_code, &customer, &dims, hour)
    }

    /// Seals what may be sealed and sends every sealed bucket now.
    ///
    /// A retryable failure that outlasts the client's retries (throttling, transport) stops
    /// the flush and is returned in [`FlushSummary::interrupted`]; the buckets stay sealed
    /// for the next flush. Other errors not tied to a record (credentials, access) are
    /// returned as `Err`.
    pub async fn flush(&self) -> Result<FlushSummary, Error> {
        self.inner.check_process()?;
        self.inner.shared.refuse_reentry("flush()")?;
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(Error::invalid_state("the meter is closed"));
        }
        self.flush_now().await
    }

    async fn flush_now(&self) -> Result<FlushSummary, Error> {
        let _g = self.inner.flush_lock.lock().await;
        send::flush(&self.inner).await
    }

    /// [`flush`](Self::flush), blocking the calling thread (not from an async task).
    pub fn flush_blocking(&self) -> Result<FlushSummary, Error> {
        self.inner.shared.refuse_reentry("flush()")?;
        crate::runtime::block_on(self.flush())?
    }

    /// Bucket counts per state (writes the in-memory buffer to the store first).
    pub fn status(&self) -> Result<MeterStatus, Error> {
        self.inner.check_process()?;
        let shared = &self.inner.shared;
        shared.drain()?;
        if let Some(f) = &shared.fleet {
            return wait(f.status(&shared.scope.product_code))?;
        }
        lock(&shared.db).status(&shared.scope.product_code)
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        self.inner.check_process()?;
        let shared = &self.inner.shared;
        if let Some(f) = &shared.fleet {
            return wait(f.dead_letters(&shared.scope.product_code))?;
        }
        lock(&shared.db).dead_letters(&shared.scope.product_code)
    }

    /// Stops the background flusher, flushes what may be flushed and gives up the store's
    /// claim (another meter may open it now); later `record()` and `flush()` calls fail with
    /// `InvalidState`. Unsealed hours stay in the store (a file
    /// store sends them after a restart).
    pub async fn close(&self) -> Result<FlushSummary, Error> {
        self.inner.check_process()?;
        self.inner.shared.refuse_reentry("close()")?;
        if let Some(h) = lock(&self.inner.flusher).take() {
            h.abort();
        }
        self.inner.closed.store(true, Ordering::Relaxed);
        let flushed = self.flush_now().await;
        // Closed: another meter may own the store now (this one only reads it from here on).
        lock(&self.inner.shared.db).release_claim();
        flushed
    }

    /// [`close`](Self::close), blocking the calling thread.
    pub fn close_blocking(&self) -> Result<FlushSummary, Error> {
        self.inner.shared.refuse_reentry("close()")?;
        crate::runtime::block_on(self.close())?
    }

    /// Sends chosen dead letters again: those `filter` selects whose hour is still inside the
    /// service's window go back to `sealed` (with their frozen quantity) and leave the
    /// dead-letter list, in one transaction; the next flush sends them. Returns how many.
    /// Dead letters whose window has closed stay where they are.
    pub fn requeue(&self, filter: &RequeueFilter) -> Result<usize, Error> {
        let shared = &self.inner.shared;
        let now = (shared.clock)();
        // An hour is inside the window while now < hour + window (as `flush` expires it).
        let after = now.saturating_sub(shared.scope.window);
        if let Some(f) = &shared.fleet {
            return wait(f.requeue(&shared.scope.product_code, filter, after))?;
        }
        lock(&shared.db).requeue(&shared.scope.product_code, filter, after)
    }

    /// Writes the events `Durability::Memory` buffered to the store now (nothing is sent).
    /// For a face's exit hook: a process that ends without dropping the meter keeps them.
    pub fn write_buffered(&self) -> Result<(), Error> {
        self.inner.shared.drain()
    }

    /// The fleet store's name for this writer (`None` on a SQLite store).
    pub fn replica_id(&self) -> Option<&str> {
        self.inner.shared.fleet.as_ref().map(fleet::Fleet::replica)
    }

    /// Whether the calling thread is running this meter's event callback, where `flush()`,
    /// `close()` and a group-mode `record()` are refused (and the C face's `mm_meter_free`).
    pub fn in_event_callback(&self) -> bool {
        self.inner.shared.in_callback()
    }

    /// `InvalidState` naming `call` when [`in_event_callback`](Self::in_event_callback): for
    /// a face's calls that would wait for the callback (C's `mm_meter_free`).
    pub fn refuse_in_event_callback(&self, call: &str) -> Result<(), Error> {
        self.inner.shared.refuse_reentry(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_are_deterministic_and_short() {
        let a = send::client_token("s1", "p", "users", 3600, 5);
        assert_eq!(a, send::client_token("s1", "p", "users", 3600, 5));
        assert_ne!(a, send::client_token("s1", "p", "users", 7200, 5));
        assert_ne!(a, send::client_token("s1", "p", "users", 3600, 6));
        assert_ne!(a, send::client_token("s2", "p", "users", 3600, 5));
        assert!(a.len() <= 64 && a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// Item 13: a face's exit hook writes what `Durability::Memory` buffered, for a process
    /// that ends without dropping the meter.
    #[test]
    fn write_buffered_puts_memory_events_in_the_store() {
        let path = std::env::temp_dir().join(format!(
            "mm-write-buffered-{}-{}.db",
            std::process::id(),
            epoch_secs(std::time::SystemTime::now())
        ));
        let client = Client::new(
            crate::Config::builder()
                .region("us-east-1")
                .endpoint_url("http://127.0.0.1:9")
                .static_credentials("AKID", "secret", None)
                .build()
                .unwrap(),
        );
        let meter = UsageMeter::new(
            MeterConfig::builder()
                .client(client)
                .store(Store::sqlite(&path))
                .product_code("p")
                .durability(Durability::Memory)
                .build()
                .unwrap(),
        )
        .unwrap();
        meter
            .record(Customer::identifier("c"), "users", 7, None, None)
            .unwrap();
        let stored = || -> i64 {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.query_row("SELECT COALESCE(SUM(quantity), 0) FROM buckets", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(stored(), 0);
        meter.write_buffered().unwrap();
        assert_eq!(stored(), 7);
        // The process ends without dropping it (Node's `process.exit()`).
        std::mem::forget(meter);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn customers_from_parts_name_the_argument() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            Customer::from_parts(s("c"), None, None, true).unwrap(),
            Customer::identifier("c")
        );
        assert_eq!(
            Customer::from_parts(None, s("1"), s("arn"), true).unwrap(),
            Customer::aws_account("1", "arn")
        );
        assert_eq!(
            Customer::from_parts(None, None, None, false).unwrap(),
            Customer::identifier("")
        );
        // No customer is absent in every face, not an empty string.
        let none = Customer::from_parts(None, None, None, false).unwrap();
        assert_eq!(none.parts(), (None, None, None));
        assert_eq!(Customer::identifier("c").parts(), (Some("c"), None, None));
        assert_eq!(
            Customer::aws_account("1", "arn").parts(),
            (None, Some("1"), Some("arn"))
        );
        for (parts, field) in [
            ((None, None, None), "customer_identifier"),
            ((s("c"), s("1"), s("arn")), "customer_identifier"),
            ((s("c"), None, s("arn")), "license_arn"),
            ((None, s("1"), None), "license_arn"),
            ((None, None, s("arn")), "customer_aws_account_id"),
        ] {
            let e = Customer::from_parts(parts.0, parts.1, parts.2, true).unwrap_err();
            assert_eq!(e.error_code(), crate::ErrorCode::InvalidInput);
            assert_eq!(e.field(), Some(field));
        }
    }

    #[test]
    fn every_face_shares_one_default_and_one_spelling() {
        let client = Client::new(
            crate::Config::builder()
                .region("us-east-1")
                .static_credentials("AKIDEXAMPLE", "secret", None)
                .build()
                .unwrap(),
        );
        let b = || {
            MeterConfig::builder()
                .client(client.clone())
                .store(Store::memory())
        };
        assert_eq!(
            b().build().unwrap().flush_interval,
            Some(DEFAULT_FLUSH_INTERVAL)
        );
        assert_eq!(
            b().flush_interval(Duration::ZERO)
                .build()
                .unwrap()
                .flush_interval,
            None
        );
        for m in [MeterMode::Batch, MeterMode::MeterUsage] {
            assert_eq!(m.as_str().parse::<MeterMode>().unwrap(), m);
        }
        for d in [Durability::Durable, Durability::Group, Durability::Memory] {
            assert_eq!(d.as_str().parse::<Durability>().unwrap(), d);
        }
        let e = "fast".parse::<Durability>().unwrap_err();
        assert_eq!(e.field(), Some("durability"));
        assert_eq!(
            "Batch".parse::<MeterMode>().unwrap_err().field(),
            Some("mode")
        );
    }

    #[test]
    fn allocations_are_canonical() {
        use crate::types::Tag;
        let tag = |k: &str, v: &str| Tag {
            key: k.into(),
            value: v.into(),
        };
        let a = UsageAllocation {
            allocated_usage_quantity: 2,
            tags: Some(vec![tag("b", "1"), tag("a", "2")]),
        };
        let b = UsageAllocation {
            allocated_usage_quantity: 3,
            tags: Some(vec![tag("a", "2"), tag("b", "1")]),
        };
        let m = canonical_allocations(&[a, b]).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m.values().next(), Some(&5));
    }
}
