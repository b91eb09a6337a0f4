// SPDX-License-Identifier: Apache-2.0
// The meter's settings (`MeterConfig`) and their builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::BuildError;
use crate::Client;

use super::{hour_of, Clock, Durability, EventCallback, MeterEvent, MeterMode, Store};

/// How often a meter flushes in the background unless told otherwise, in every face.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// The longest background flush interval `alarm_before` allows: half of it (at least a
/// second). Window alarms are raised by flushes, so a slower flusher raises one with less
/// than half the notice asked for, or none before the window ends.
pub(crate) fn longest_flush_interval(alarm_before: Duration) -> Duration {
    (alarm_before / 2).max(Duration::from_secs(1))
}

/// The meter's settings; see [`MeterConfig::builder`].
#[derive(Clone)]
pub struct MeterConfig {
    pub(super) client: Client,
    pub(super) store: Store,
    pub(super) product_code: Option<String>,
    pub(super) mode: MeterMode,
    pub(super) durability: Durability,
    pub(super) grace: Duration,
    pub(super) zero_fill: bool,
    pub(super) on_event: Option<EventCallback>,
    pub(super) flush_interval: Option<Duration>,
    pub(super) clock: Clock,
    pub(super) window: Duration,
    pub(super) alarm_before: Duration,
    pub(super) group_max_wait: Duration,
    pub(super) group_max_events: usize,
    pub(super) max_unprocessed_rounds: u32,
    pub(super) power_loss_safe: bool,
    pub(super) clock_given: bool,
    pub(super) replica_id: Option<String>,
    pub(super) fleet_senders: u32,
    pub(super) fleet_lease: Duration,
    pub(super) start_hour: Option<i64>,
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
pub(super) fn client_clock(client: Client) -> Clock {
    Arc::new(move || epoch_secs(client.now()))
}

pub(super) fn epoch_secs(t: std::time::SystemTime) -> i64 {
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
    /// The product code; without it every customer must be [`Customer::AwsAccount`](super::Customer::AwsAccount).
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
    /// Time after an hour's end before it is sealed (default 5 minutes). At most the
    /// service's window less two hours (4 hours), so an hour is left to send in: more is
    /// refused by [`UsageMeter::new`](crate::UsageMeter::new), naming `grace`.
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
    /// [`DEFAULT_FLUSH_INTERVAL`] in every face, or half of a shorter `alarm_before`, at
    /// least a second); zero: no background flusher. At most half of
    /// [`MeterConfigBuilder::alarm_before`] (30 minutes by default), or
    /// [`UsageMeter::new`](crate::UsageMeter::new) refuses it: window alarms are raised by
    /// flushes.
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_interval = Some(every);
        self
    }
    /// [`MeterConfigBuilder::flush_interval`] from a face's number of seconds. A positive one
    /// is at least a millisecond, as the JVM face's milliseconds: a float below a nanosecond
    /// made `Duration::ZERO`, which turned the flusher off. One too large for a `Duration`
    /// (infinity) is the largest; zero, a negative number or NaN is no flusher (the faces
    /// refuse the last two before this).
    pub fn flush_interval_secs(self, secs: f64) -> Self {
        let every = match secs > 0.0 {
            true => Duration::try_from_secs_f64(secs)
                .unwrap_or(Duration::MAX)
                .max(Duration::from_millis(1)),
            false => Duration::ZERO,
        };
        self.flush_interval(every)
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
    /// counts. Before it, every event is refused (`InvalidInput` naming `timestamp`); from
    /// it on, an event of an earlier hour is refused while that hour is within its grace
    /// (it belongs to the SQLite meter this store takes over from), and counted in the
    /// current hour once late, as any late event (see the README's cut-over).
    pub fn start_hour(mut self, epoch_secs: i64) -> Self {
        self.start_hour = Some(hour_of(epoch_secs));
        self
    }
    /// Builds the settings; `client` and `store` are required.
    pub fn build(self) -> Result<MeterConfig, BuildError> {
        let client = self.client.ok_or(BuildError::missing("client"))?;
        let clock_given = self.clock.is_some();
        let alarm_before = self.alarm_before.unwrap_or(Duration::from_secs(3600));
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
            // The default is never longer than `alarm_before` allows (see
            // [`longest_flush_interval`]): a short notice shortens it, unasked.
            flush_interval: Some(
                self.flush_interval
                    .unwrap_or(DEFAULT_FLUSH_INTERVAL.min(longest_flush_interval(alarm_before))),
            )
            .filter(|d| !d.is_zero()),
            clock,
            window: self.window.unwrap_or(Duration::from_secs(6 * 3600)),
            alarm_before,
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
