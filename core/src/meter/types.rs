// SPDX-License-Identifier: Apache-2.0
// The meter's public value types: customers, modes, durability, stores, events, statuses, clocks.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::FieldPath;
use crate::Error;

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
    /// license_arn)`, each absent when it does not apply.
    pub fn parts(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        self.by_ref().parts()
    }

    /// [`Customer::parts`] of a bucket's customer, which a `MeterUsage`-mode bucket does not
    /// have: then all three are absent. The one accessor the faces show a customer through.
    pub fn parts_of(customer: Option<&Customer>) -> (Option<&str>, Option<&str>, Option<&str>) {
        customer.map_or((None, None, None), Customer::parts)
    }

    /// The customer a face's three optional arguments give: `customer_identifier`, or
    /// `customer_aws_account_id` with its `license_arn`. Giving none is allowed only when
    /// `required` is false (the `MeterUsage` mode, whose buckets have no customer): then it
    /// is `None`. Errors are `InvalidInput` naming the argument by those names (a face
    /// renders them in its own spelling).
    pub fn from_parts(
        customer_identifier: Option<String>,
        customer_aws_account_id: Option<String>,
        license_arn: Option<String>,
        required: bool,
    ) -> Result<Option<Customer>, Error> {
        match (customer_identifier, customer_aws_account_id, license_arn) {
            (Some(id), None, None) => Ok(Some(Customer::Identifier(id))),
            (None, Some(a), Some(l)) => Ok(Some(Customer::aws_account(a, l))),
            (None, None, None) if !required => Ok(None),
            (None, None, None) => Err(Customer::required_error()),
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

    /// No customer where one is needed (every mode but `MeterUsage`).
    pub(super) fn required_error() -> Error {
        Error::invalid_input(
            FieldPath::argument("customer_identifier"),
            "is required (or an AWS account id with its license ARN)",
        )
    }
}

impl fmt::Display for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.by_ref().shown())
    }
}

/// A customer borrowed: [`Customer`]'s shape over `&str`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum CustomerRef<'a> {
    Identifier(&'a str),
    AwsAccount {
        account_id: &'a str,
        license_arn: &'a str,
    },
}

impl<'a> CustomerRef<'a> {
    pub(super) fn to_customer(self) -> Customer {
        match self {
            CustomerRef::Identifier(id) => Customer::identifier(id),
            CustomerRef::AwsAccount {
                account_id,
                license_arn,
            } => Customer::aws_account(account_id, license_arn),
        }
    }
    /// See [`Customer::parts`].
    pub(super) fn parts(self) -> (Option<&'a str>, Option<&'a str>, Option<&'a str>) {
        match self {
            CustomerRef::Identifier(id) => (Some(id), None, None),
            CustomerRef::AwsAccount {
                account_id,
                license_arn,
            } => (None, Some(account_id), Some(license_arn)),
        }
    }
    /// How a customer is shown (its `Display`): the identifier or the account id.
    pub(super) fn shown(self) -> &'a str {
        match self {
            CustomerRef::Identifier(id) => id,
            CustomerRef::AwsAccount { account_id, .. } => account_id,
        }
    }
}

impl Customer {
    pub(super) fn by_ref(&self) -> CustomerRef<'_> {
        match self {
            Customer::Identifier(id) => CustomerRef::Identifier(id),
            Customer::AwsAccount {
                account_id,
                license_arn,
            } => CustomerRef::AwsAccount {
                account_id,
                license_arn,
            },
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
    /// `record()` is ignored: buckets are (dimension, hour), with no customer (`None` in
    /// events and dead letters).
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
pub struct Store(pub(super) StoreKind);

#[derive(Clone)]
pub(super) enum StoreKind {
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
    /// The store a face's options name: `database_url` (the fleet store), else `path`
    /// (SQLite), else memory. Both at once is `InvalidInput` naming `database_url`: a seller
    /// moving to the fleet store must not keep billing from the old file by accident.
    pub fn from_options(
        path: Option<PathBuf>,
        database_url: Option<String>,
    ) -> Result<Store, Error> {
        match (path, database_url) {
            (Some(_), Some(_)) => Err(Error::invalid_input(
                FieldPath::argument("database_url"),
                "give either a store path (SQLite) or a database URL (PostgreSQL), not both",
            )),
            (_, Some(url)) => Ok(Store::postgres(url)),
            (Some(p), None) => Ok(Store::sqlite(p)),
            (None, None) => Ok(Store::memory()),
        }
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
    /// The service refused the bucket as past its window; it will not be sent again.
    Expired {
        /// An earlier send of the bucket got no answer (in an earlier flush, or an earlier
        /// attempt of the refused call: an answer lost to a timeout, a connection cut, a
        /// process killed mid-call): the service may have metered it then, and it now says
        /// only that the hour is past its window. Check the service's records before billing
        /// it another way. `false`: every earlier send, if any, was answered with a refusal,
        /// so nothing of it was billed.
        unanswered: bool,
    },
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
            MeterEventKind::Expired { .. } => "expired",
        }
    }

    /// Why, for the kinds that say: a dead letter's `Status` or error code, and
    /// `"OutcomeUnknown"` for a bucket expired after a send that got no answer. Every face
    /// shows it as the event's `reason`.
    pub fn reason(&self) -> Option<&str> {
        match self {
            MeterEventKind::DeadLettered { reason, .. } => Some(reason),
            MeterEventKind::Expired { unanswered: true } => Some("OutcomeUnknown"),
            _ => None,
        }
    }

    /// The details of [`Self::reason`], the event's `message` in every face.
    pub fn message(&self) -> Option<&str> {
        match self {
            MeterEventKind::DeadLettered { message, .. } => Some(message),
            MeterEventKind::Expired { unanswered: true } => Some(
                "an earlier send of this bucket got no answer, so the service may have metered \
                 it then; it now refuses the hour as past its window. Check the service's \
                 records before billing it another way",
            ),
            _ => None,
        }
    }
}

/// An event of the meter, passed to the `on_event` callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterEvent {
    /// What happened.
    pub kind: MeterEventKind,
    /// The bucket's customer; `None` in the `MeterUsage` mode, whose buckets have none.
    pub customer: Option<Customer>,
    /// The bucket's dimension.
    pub dimension: String,
    /// The bucket's hour (epoch seconds, a multiple of 3600).
    pub hour: i64,
    /// The bucket's quantity (for a late event, the event's quantity).
    pub quantity: i64,
    /// On the fleet store, the replica whose meter emitted the event (its `replica_id`);
    /// `None` on a local store.
    pub replica_id: Option<String>,
}

/// A bucket the service did not meter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The customer; `None` in the `MeterUsage` mode, whose buckets have none.
    pub customer: Option<Customer>,
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

/// Which dead letters [`UsageMeter::requeue`](super::UsageMeter::requeue) sends again; every field left `None` matches
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
        // No customer argument at all is no filter on the customer.
        let customer = Customer::from_parts(
            customer_identifier,
            customer_aws_account_id,
            license_arn,
            false,
        )?;
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
    /// Refused by the service; see [`UsageMeter::dead_letters`](super::UsageMeter::dead_letters).
    pub dead_lettered: u64,
    /// Passed the service's window unsent.
    pub expired: u64,
    /// The oldest hour not yet acknowledged, dead-lettered or expired.
    pub oldest_unsent_hour: Option<i64>,
    /// On the fleet store, this meter's replica id (the counts are the whole fleet's, for
    /// the meter's product); `None` on a local store.
    pub replica_id: Option<String>,
    /// When this meter's last flush ended (a caller's, `close()`'s or the background
    /// flusher's), in seconds since the epoch by the meter's clock; `None` before the first.
    pub last_flush_at: Option<i64>,
    /// Why this meter's last flush did not do all it could: its error, or what stopped it
    /// (throttling, a transport failure, credentials), as `"Code: message"`; `None` when it
    /// went well, and before the first. A background flush has no caller to return it to:
    /// a health check reads it here.
    pub last_flush_error: Option<String>,
}

impl MeterStatus {
    /// Counts `n` buckets in `state` whose oldest calendar hour is `min_hour`.
    pub(super) fn count(&mut self, state: &str, n: i64, min_hour: Option<i64>) {
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
    /// A [`Clock`] reading this clock, for [`MeterConfigBuilder::clock`](super::MeterConfigBuilder::clock).
    pub fn clock(&self) -> Clock {
        let c = self.0.clone();
        Arc::new(move || c.load(Ordering::SeqCst))
    }
}
