// SPDX-License-Identifier: Apache-2.0
// The meter's flush: seal, then send sealed buckets and record every result.

//! Sending sealed buckets.
//!
//! Every call is preceded by a transaction marking its buckets `sending`; its results are
//! recorded in one transaction after it returns. A crash in between leaves the buckets
//! `sending`, and the next flush sends them again with the same frozen quantities.

mod records;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::store::{Outcome, SendItem};
use super::{lock, Customer, FlushSummary, Inner, MeterEvent, MeterEventKind, MeterMode};
use crate::error::{Blame, LocalCode};
use crate::operation::batch_meter_usage::BatchMeterUsageInput;
use crate::operation::meter_usage::MeterUsageInput;
use crate::primitives::DateTime;
use crate::types::{UsageRecord, UsageRecordResultStatus};
use crate::{Error, ErrorCode};
pub(crate) use records::client_token;
use records::{allocations, event, quantity, record_key, usage_record, RecordKey};

/// Records per `BatchMeterUsage` call.
const BATCH: usize = crate::validate::MAX_USAGE_RECORDS;

enum Flow {
    Continue,
    /// Stop this flush; the buckets wait for the next one.
    Stop,
    /// A record-level error rejected a whole batch: send its records one by one.
    Split(Vec<SendItem>),
    /// A non-retryable error about the call, not the records: the call's buckets went back
    /// to sealed.
    Refused(Error),
    /// The service refused a record of this hour as past its window (the local clock
    /// agreeing), and its bucket is expired: so is every queued one of this hour or an
    /// earlier one that the local clock places past the window (see [`run`]), the call's
    /// buckets not sent yet among them (`MeterUsage` sends a call's buckets one by one).
    PastWindow(i64, Vec<SendItem>),
}

/// How [`run`] ended.
#[derive(Default)]
struct Ran {
    /// A retryable failure stopped the flush; the rest waits for the next one.
    stopped: bool,
    /// The first refusal of a license's (or another product's) call for a reason of its own
    /// (see [`concerns_one_license`]); every other group's calls were sent.
    refused: Option<Error>,
    /// The licenses refused: their buckets wait, sealed.
    refused_licenses: Vec<String>,
}

/// The calls a refusal about one license or product holds back (see [`group_of`]).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Group {
    /// Calls without a product code, for this license.
    License(String),
    /// Calls for a product code the meter no longer has: usage its store recorded before
    /// a change of configuration.
    Product(String),
}

/// Collects outcomes and events of one call, then writes them, and counts and emits those
/// that applied (a fleet store refuses an answer that came back after the claim expired).
#[derive(Default)]
struct Results {
    outcomes: Vec<Outcome>,
    events: Vec<MeterEvent>,
}

/// The longest `MeteringRecordId` and dead-letter message kept (the service's are a UUID and
/// a sentence), and the longest reason (a status or an error code), as the client bounds a
/// server's error codes and messages: a hostile server's text is kept printable and bounded
/// in the store, the events and the seller's logs.
const MAX_KEPT: usize = 1024;
const MAX_REASON: usize = 128;

impl Results {
    fn ack(&mut self, it: &SendItem, id: String) {
        let id = if id.len() > MAX_KEPT || id.chars().any(char::is_control) {
            crate::wire::printable(&id, MAX_KEPT)
        } else {
            id
        };
        self.events.push(event(
            it,
            MeterEventKind::Acked {
                metering_record_id: id.clone(),
            },
        ));
        self.outcomes.push(Outcome::Ack(it.id, id));
    }
    fn dead(&mut self, it: &SendItem, reason: &str, message: &str) {
        let reason = &crate::wire::printable(reason, MAX_REASON);
        let message = &crate::wire::printable(message, MAX_KEPT);
        self.events.push(event(
            it,
            MeterEventKind::DeadLettered {
                reason: reason.to_owned(),
                message: message.to_owned(),
            },
        ));
        self.outcomes
            .push(Outcome::Dead(it.id, reason.to_owned(), message.to_owned()));
    }
    fn expire(&mut self, it: &SendItem) {
        self.events.push(event(
            it,
            MeterEventKind::Expired {
                unanswered: it.unanswered,
            },
        ));
        self.outcomes.push(Outcome::Expire(it.id));
    }
    async fn commit(self, inner: &Inner, sum: &mut FlushSummary) -> Result<(), Error> {
        let applied = record_outcomes(inner, &self.outcomes).await?;
        let mut events = Vec::with_capacity(self.events.len());
        // One event per outcome, in the same order.
        for (o, e) in self.outcomes.iter().zip(self.events) {
            let (id, counter) = match o {
                Outcome::Ack(id, _) => (id, &mut sum.acked),
                Outcome::Dead(id, ..) => (id, &mut sum.dead_lettered),
                Outcome::Expire(id) => (id, &mut sum.expired),
                Outcome::Revert(_) => continue,
            };
            if applied.as_ref().is_none_or(|a| a.contains(id)) {
                *counter += 1;
                events.push(e);
            }
        }
        inner.shared.emit(events);
        Ok(())
    }
}

/// What a non-retryable error of a whole call is about: the error-code table's `blame` column
/// for a service code; a local code is placed here by hand (the match has no wildcard arm, so
/// a new local code must be placed here).
pub(crate) fn blame(code: ErrorCode) -> Blame {
    use LocalCode as L;
    code.blame(|local| match local {
        L::InvalidInput => Blame::Records,
        L::InvalidState | L::InvalidConfig | L::Credentials | L::Unhandled => Blame::Call,
        // The fleet store's, never a call's; the call is not the records' fault.
        L::OutcomeUnknown => Blame::Call,
        // Retryable kinds that arrive without retries left: the call failed, not the records.
        L::Dispatch | L::ConnectTimeout | L::ReadTimeout | L::InvalidResponse => Blame::Call,
    })
}

/// Whether a refusal of a whole call can concern the call's license alone (an entitlement, a
/// product the license names, an error code this library does not know), so that without a
/// product code the other licenses' calls are still sent. Anything about the caller
/// (credentials, signature, access, region, a disabled API, a local error, an answer with no
/// error code at all: a redirect, a proxy's or a firewall's page) answers every call alike
/// and stops the flush at once.
fn concerns_one_license(e: &Error) -> bool {
    match e.error_code() {
        ErrorCode::CustomerNotEntitledException | ErrorCode::InvalidProductCodeException => true,
        // A bare HTTP status stands in as the code when the answer carried none; the codes
        // of a signature at a skewed time or of credentials refused (unknown keys, an
        // expired or revoked session, access withdrawn) are about the caller.
        ErrorCode::Unhandled => {
            !e.code().bytes().all(|b| b.is_ascii_digit())
                && !crate::client::CLOCK_SKEW_CODES.contains(&e.code())
                && !crate::client::REFUSED_CREDENTIALS_CODES.contains(&e.code())
        }
        _ => false,
    }
}

/// The group of calls a refusal of `batch`'s call for a reason of its own holds back: its
/// license (a call without a product code), or a product code other than the meter's.
/// `None`: the meter's own product, whose refusal stops the flush.
fn group_of(inner: &Inner, batch: &[SendItem]) -> Option<Group> {
    let first = batch.first()?;
    if first.product.is_empty() && inner.mode == MeterMode::Batch {
        return match &first.customer {
            Some(Customer::AwsAccount { license_arn, .. }) => {
                Some(Group::License(license_arn.clone()))
            }
            _ => None,
        };
    }
    (first.product != inner.shared.scope.product_code)
        .then(|| Group::Product(first.product.clone()))
}

/// Whether the local clock, too, places the bucket's hour past the service's window: an
/// hour expires only when the service's answer and the local clock agree.
fn past_window(inner: &Inner, it: &SendItem) -> bool {
    let scope = &inner.shared.scope;
    (inner.shared.clock)() >= it.hour.saturating_add(scope.window)
}

fn is_throttling(e: &Error) -> bool {
    e.error_code() == ErrorCode::ThrottlingException || e.http_status() == Some(429)
}

pub(super) async fn flush(inner: &Inner) -> Result<FlushSummary, Error> {
    let shared = &inner.shared;
    if let Some(f) = &shared.fleet {
        return super::shared::IN_FLEET_FLUSH
            .scope((), flush_fleet(inner, f))
            .await;
    }
    if let Err(e) = shared.drain() {
        if let Ok(now) = super::record::clock_now(shared) {
            alarm_unwritten(inner, now);
        }
        return Err(e);
    }
    let now = super::record::clock_now(shared)?;
    let prepared = lock(&shared.db).prepare(&shared.scope, now);
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            alarm_unwritten(inner, now);
            return Err(e);
        }
    };
    let items = std::mem::take(&mut prepared.items);
    let mut sum = sealed(inner, prepared);
    let queue = batches(inner, items);
    let ran = run(inner, queue, &mut None, &mut sum).await;
    // After the sends, whatever became of them: usage first.
    prune_closed(inner, now).await;
    match ran?.refused {
        Some(e) => Err(e),
        None => Ok(sum),
    }
}

/// Prunes the SQLite store's closed buckets a week old (see [`super::store::Db::prune_step`]),
/// a batch a transaction, until none is left or [`super::store::PRUNE_FOR`] has passed. Each
/// batch is short and a pause follows it, so the store's lock and the runtime's thread go to
/// what waits for them (a `record()`, the other meters' calls) between batches. A failure
/// waits for the next flush.
async fn prune_closed(inner: &Inner, now: i64) {
    let started = std::time::Instant::now();
    loop {
        let step = lock(&inner.shared.db).prune_step(now);
        match step {
            Ok(true) if started.elapsed() < super::store::PRUNE_FOR => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "{}", super::store::PRUNE_FAILED);
                return;
            }
        }
    }
}

/// Raises the window alarms due for the hours the store and the buffer hold, read without
/// writing, when the store refused the flush's writes (a full disk, a disk remounted
/// read-only): the seal that raises them could not run, and the hours would run out of the
/// service's window unannounced. Once each: the seal that marks them later skips them.
fn alarm_unwritten(inner: &Inner, now: i64) {
    raise_alarms(inner, now, true);
}

/// Raises the window alarms due for the usage the fleet store's meter holds in memory, when
/// it could not be written to the database (see `flush_fleet`). Once each, as
/// [`alarm_unwritten`]; the quantity is this replica's part.
fn alarm_buffered(inner: &Inner, now: i64) {
    raise_alarms(inner, now, false);
}

/// [`alarm_unwritten`]; `read_store`: the store's due buckets too, not only the buffer's.
fn raise_alarms(inner: &Inner, now: i64, read_store: bool) {
    let shared = &inner.shared;
    let scope = &shared.scope;
    let due = |hour: i64| hour.saturating_add(scope.window - scope.alarm_before) <= now;
    let mut quantities: HashMap<super::BucketKey, i64> = HashMap::new();
    let read = match read_store {
        true => lock(&shared.db).due_alarms(scope, now),
        false => Ok(Vec::new()),
    };
    match read {
        Ok(rows) => {
            for (customer, dimension, hour, quantity) in rows {
                let key = super::BucketKey {
                    customer,
                    dimension,
                    hour,
                };
                *quantities.entry(key).or_default() += quantity;
            }
        }
        Err(e) => tracing::warn!(error = %e, "meter: cannot read the store for window alarms"),
    }
    {
        // What a write of unknown outcome holds too: it may not have committed.
        let buffer = lock(&shared.buffer);
        let unsettled = buffer.unsettled.iter().flat_map(|(_, b, _)| b.iter());
        for (k, acc) in buffer.map.iter().chain(unsettled) {
            if due(k.hour) {
                *quantities.entry(k.clone()).or_default() += acc.quantity;
            }
        }
    }
    // The fleet's buffered alarms are kept apart: they must not hide the seal's alarm for
    // the whole bucket (every replica's usage) once the database is back.
    let mut alarmed = match read_store {
        true => lock(&shared.alarmed_outside),
        false => lock(&shared.alarmed_buffered),
    };
    let events: Vec<MeterEvent> = quantities
        .into_iter()
        .filter(|(k, _)| alarmed.insert(k.clone()))
        .map(|(k, quantity)| MeterEvent {
            kind: MeterEventKind::WindowAlarm {
                window_end: k.hour.saturating_add(scope.window),
            },
            customer: k.customer,
            dimension: k.dimension,
            hour: k.hour,
            quantity,
            replica_id: None, // set by `Shared::emit`
        })
        .collect();
    drop(alarmed);
    shared.emit(events);
}

/// A flush's summary once sealing is done; reports its events (not the alarms raised while
/// the store refused writes: see [`alarm_unwritten`]).
fn sealed(inner: &Inner, mut prepared: super::store::Prepared) -> FlushSummary {
    if prepared.sealed > 0 {
        super::crash::hit("after_seal");
    }
    {
        let mut alarmed = lock(&inner.shared.alarmed_outside);
        if !alarmed.is_empty() {
            prepared.events.retain(|e| {
                !matches!(e.kind, MeterEventKind::WindowAlarm { .. })
                    || !alarmed.remove(&super::BucketKey {
                        customer: e.customer.clone(),
                        dimension: e.dimension.clone(),
                        hour: e.hour,
                    })
            });
        }
    }
    inner.shared.emit(prepared.events);
    FlushSummary {
        sealed: prepared.sealed,
        ..FlushSummary::default()
    }
}

/// The fleet store's flush: seal (by the database's clock), then, holding a sender slot,
/// claim up to one call's worth of buckets at a time and send them.
async fn flush_fleet(inner: &Inner, f: &super::fleet::Fleet) -> Result<FlushSummary, Error> {
    let shared = &inner.shared;
    // Usage this replica still holds could not reach the database (an outage): no seal
    // raises the alarm of an hour of it near the window's end, so it is raised from what
    // the replica holds.
    if let Err(e) = shared.drain_async().await {
        if let Ok(now) = super::record::clock_now(shared) {
            alarm_buffered(inner, now);
        }
        return Err(e);
    }
    // Written: from here the seals raise their alarms.
    lock(&shared.alarmed_buffered).clear();
    let now = super::record::clock_now(shared)?;
    let mut sum = sealed(inner, f.seal(&shared.scope, now).await?);
    let product = shared.scope.product_code.as_str();
    let Some(sender) = f.sender(product).await? else {
        // Another replica sends now; the buckets are its to send.
        f.prune_closed(product, now).await;
        return Ok(sum);
    };
    let mut seen: Vec<i64> = Vec::new();
    // Refused licenses are not claimed again in this flush: each would cost a refused call
    // per claim of its buckets before the licenses after it.
    let mut refused: Option<Error> = None;
    let mut refused_licenses: Vec<String> = Vec::new();
    // The latest hour the service refused as past its window in this flush (see `run`).
    let mut past: Option<i64> = None;
    let result = loop {
        if !seen.is_empty() && !f.keep_sender(&sender).await {
            // The slot was lost: this replica was frozen past its lease and another one
            // took the slot over, or the connection ended. What is left waits.
            sum.deferred += f
                .count_sendable(product, &seen, &refused_licenses)
                .await
                .unwrap_or(0);
            sum.interrupted = Some(
                Error::invalid_state("fleet store: the sender slot was lost mid-flush")
                    .with_retryable(true),
            );
            break Ok(());
        }
        // Hours the meter's clock places past the service's window go last (see the SQLite
        // store's `prepare`).
        let window_start = (inner.shared.clock)().saturating_sub(inner.shared.scope.window);
        let items = match f
            .claim(
                product,
                BATCH as i64,
                &seen,
                &refused_licenses,
                window_start,
            )
            .await
        {
            Ok(items) => items,
            Err(e) => break Err(e),
        };
        if items.is_empty() {
            break Ok(());
        }
        seen.extend(items.iter().map(|i| i.id));
        match run(inner, batches(inner, items), &mut past, &mut sum).await {
            Ok(ran) => {
                refused_licenses.extend(ran.refused_licenses);
                if refused.is_none() {
                    refused = ran.refused;
                }
                if ran.stopped {
                    // Stopped (throttled): what was never claimed waits too.
                    sum.deferred += f
                        .count_sendable(product, &seen, &refused_licenses)
                        .await
                        .unwrap_or(0);
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    f.release_sender(sender).await;
    // After the sends, once they went well (a database that failed them would hold up the
    // flush's end): usage first.
    if result.is_ok() {
        f.prune_closed(product, now).await;
    }
    result?;
    match refused {
        Some(e) => Err(e),
        None => Ok(sum),
    }
}

/// The calls that send `items`: one product (or, without a product code, one license) and
/// at most [`BATCH`] records per `BatchMeterUsage` call; one bucket per `MeterUsage` call.
fn batches(inner: &Inner, items: Vec<SendItem>) -> VecDeque<Vec<SendItem>> {
    let shared = &inner.shared;
    let mut queue: VecDeque<Vec<SendItem>> = VecDeque::new();
    let prepared_items = items;
    match inner.mode {
        MeterMode::Batch => {
            // One product (or, without a product code, one license) per call; hours still
            // in the window by the meter's clock first (see the store's `prepare`), then the
            // meter's own product, then what its store recorded under another.
            let own = shared.scope.product_code.as_str();
            let mut groups: BTreeMap<(bool, bool, String, String), Vec<SendItem>> = BTreeMap::new();
            for it in prepared_items {
                let license = match (&it.customer, it.product.is_empty()) {
                    (Some(Customer::AwsAccount { license_arn, .. }), true) => license_arn.clone(),
                    _ => String::new(),
                };
                let past = past_window(inner, &it);
                groups
                    .entry((past, it.product != own, it.product.clone(), license))
                    .or_default()
                    .push(it);
            }
            for (_, items) in groups {
                let mut items = items.into_iter().peekable();
                while items.peek().is_some() {
                    queue.push_back(items.by_ref().take(BATCH).collect());
                }
            }
        }
        MeterMode::MeterUsage => queue.extend(prepared_items.into_iter().map(|it| vec![it])),
    }
    queue
}

/// The buckets a stopped flush will not send go back to sealed at once: a fleet store's
/// claimed ones (not after their lease), and the records of a split batch, which its
/// refusal left `sending` (see [`revert_unsent`]).
async fn revert_claimed(inner: &Inner, queue: &VecDeque<Vec<SendItem>>) -> Result<(), Error> {
    revert_unsent(inner, queue.iter().flatten()).await
}

/// Sends the calls of `queue`. A retryable failure stops the flush (the rest is left for the
/// next one; claimed fleet buckets go back to sealed), and so does a refusal about the caller;
/// a refusal about one license skips that license's calls and sends the others. A refusal
/// is returned even when a later failure stopped the flush.
async fn run(
    inner: &Inner,
    mut queue: VecDeque<Vec<SendItem>>,
    past: &mut Option<i64>,
    sum: &mut FlushSummary,
) -> Result<Ran, Error> {
    let mut ran = Ran::default();
    if let Some(hour) = *past {
        expire_past(inner, &mut queue, hour, sum).await?;
    }
    while let Some(batch) = queue.pop_front() {
        let n = batch.len();
        let group = group_of(inner, &batch);
        let flow = match inner.mode {
            MeterMode::Batch => send_batch(inner, batch, sum).await,
            MeterMode::MeterUsage => send_meter_usage(inner, batch, sum).await,
        };
        let e = match flow {
            Ok(Flow::Continue) => continue,
            Ok(Flow::Split(items)) => {
                for it in items.into_iter().rev() {
                    queue.push_front(vec![it]);
                }
                continue;
            }
            Ok(Flow::Stop) => {
                sum.deferred += queue.iter().map(Vec::len).sum::<usize>();
                revert_claimed(inner, &queue).await?;
                ran.stopped = true;
                return Ok(ran);
            }
            Ok(Flow::PastWindow(hour, unsent)) => {
                if !unsent.is_empty() {
                    queue.push_front(unsent);
                }
                *past = Some(past.map_or(hour, |h| h.max(hour)));
                expire_past(inner, &mut queue, hour, sum).await?;
                continue;
            }
            Ok(Flow::Refused(e)) => match group {
                Some(group) if concerns_one_license(&e) => {
                    tracing::warn!(records = n, error = %e, calls = ?group,
                        "meter calls refused for one license or product; the others are still sent");
                    let (skipped, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut queue)
                        .into_iter()
                        .partition(|b| group_of(inner, b).as_ref() == Some(&group));
                    queue = rest;
                    sum.deferred += n + skipped.iter().map(Vec::len).sum::<usize>();
                    revert_claimed(inner, &skipped).await?;
                    ran.refused.get_or_insert(e);
                    if let Group::License(license) = group {
                        ran.refused_licenses.push(license);
                    }
                    continue;
                }
                _ => e,
            },
            Err(e) => e,
        };
        tracing::warn!(records = n, error = %e, "meter flush stopped");
        let _ = revert_claimed(inner, &queue).await;
        return Err(e);
    }
    Ok(ran)
}

/// Expires the buckets of `queue` of hour `through` or an earlier one that the local clock
/// places past the window: the service refused a record of hour `through` as past it, and
/// each record carries its hour as its timestamp, so those would be refused the same, a call
/// each (a day's outage left days of such calls, while what was recorded meanwhile aged out
/// in turn). Not those an earlier send of which got no answer: sent again, the service may
/// still answer with the record it metered then.
async fn expire_past(
    inner: &Inner,
    queue: &mut VecDeque<Vec<SendItem>>,
    through: i64,
    sum: &mut FlushSummary,
) -> Result<(), Error> {
    let mut res = Results::default();
    for batch in std::mem::take(queue) {
        let (gone, kept): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|it| it.hour <= through && !it.unanswered && past_window(inner, it));
        for it in &gone {
            res.expire(it);
        }
        if !kept.is_empty() {
            queue.push_back(kept);
        }
    }
    res.commit(inner, sum).await
}

/// Records the outcomes of a call in whichever store the meter has. `Some(ids)`: the
/// buckets they applied to (a fleet store); `None`: all of them (a meter's own store).
async fn record_outcomes(
    inner: &Inner,
    outcomes: &[Outcome],
) -> Result<Option<HashSet<i64>>, Error> {
    let now = (inner.shared.clock)();
    match &inner.shared.fleet {
        Some(f) => f.record_outcomes(outcomes, now).await.map(Some),
        None => lock(&inner.shared.db)
            .record_outcomes(outcomes, now)
            .map(|()| None),
    }
}

/// Marks `items` sending (a fleet store's claim already did).
fn mark_sending(inner: &Inner, items: &[SendItem]) -> Result<(), Error> {
    if inner.shared.fleet.is_some() {
        super::crash::hit("before_send");
        return Ok(());
    }
    let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
    let now = (inner.shared.clock)();
    lock(&inner.shared.db).mark_sending(&ids, now)?;
    super::crash::hit("before_send");
    Ok(())
}

/// Whether an attempt of a call (its metadata: the error's, or the answer's) was retried
/// without an answer that says it was not processed (a timeout, a connection cut, a server
/// error): it may have been.
fn unanswered_attempt(meta: &crate::ResponseMetadata) -> bool {
    meta.attempt_log()
        .iter()
        .any(|a| matches!(a.retry_reason, Some("transient" | "timeout")))
}

/// Handles an error that answered a whole call.
async fn call_failed(
    inner: &Inner,
    mut items: Vec<SendItem>,
    e: Error,
    sum: &mut FlushSummary,
) -> Result<Flow, Error> {
    // An earlier attempt of this call got no answer: whatever the last one says, the items
    // may have been metered, and stay so when split or refused after it.
    if unanswered_attempt(e.metadata()) {
        for it in &mut items {
            it.unanswered = true;
        }
    }
    if e.is_retryable() {
        // Throttled calls were not processed: back to sealed. Others (timeouts, resets,
        // truncated answers) may have been: they stay `sending`, which is re-sent the same.
        // Credentials that did not load, or a call that sent no request (its operation
        // timeout passed first): nothing was sent either.
        if is_throttling(&e) || e.error_code() == ErrorCode::Credentials || e.attempts() == 0 {
            revert_unsent(inner, &items).await?;
        }
        sum.deferred += items.len();
        sum.interrupted = Some(e);
        return Ok(Flow::Stop);
    }
    if blame(e.error_code()) == Blame::Records {
        if items.len() > 1 {
            return Ok(Flow::Split(items));
        }
        if e.error_code() == ErrorCode::TimestampOutOfBoundsException
            && !items.iter().all(|it| past_window(inner, it))
        {
            // The service refuses an hour the local clock still places inside the window:
            // one of the two clocks is wrong. Nothing is final; the bucket waits, sealed, and
            // the flush goes on with the others.
            revert_unsent(inner, &items).await?;
            sum.deferred += items.len();
            sum.interrupted = Some(e);
            return Ok(Flow::Continue);
        }
        let mut res = Results::default();
        let past = e.error_code() == ErrorCode::TimestampOutOfBoundsException;
        for it in &items {
            if past {
                res.expire(it);
            } else {
                res.dead(it, e.code(), e.message());
            }
        }
        res.commit(inner, sum).await?;
        return Ok(match items.iter().map(|it| it.hour).max() {
            Some(hour) if past => Flow::PastWindow(hour, Vec::new()),
            _ => Flow::Continue,
        });
    }
    if e.error_code() == ErrorCode::InvalidProductCodeException
        && matches!(group_of(inner, &items), Some(Group::Product(_)))
    {
        // A product code the meter no longer has, recorded before a change of
        // configuration, that the service does not know (retired, or a typo fixed since):
        // no configuration of this meter can bill it. Dead letters, to look at and requeue,
        // not sealed buckets that fail every flush for good.
        let mut res = Results::default();
        for it in &items {
            res.dead(it, e.code(), e.message());
        }
        res.commit(inner, sum).await?;
        return Ok(Flow::Continue);
    }
    // About the caller, not the records: nothing was metered; they stay sealed.
    revert_unsent(inner, &items).await?;
    Ok(Flow::Refused(e))
}

/// Puts `items` back to `sealed` (a fleet store's out of their claim) when they were not
/// processed, except those an earlier send (or attempt) of which got no answer: they stay
/// `sending`, which the next flush counts among the sends the service may have metered (see
/// [`SendItem::unanswered`](super::store::SendItem)) and sends again the same.
async fn revert_unsent<'a>(
    inner: &Inner,
    items: impl IntoIterator<Item = &'a SendItem>,
) -> Result<(), Error> {
    let outcomes: Vec<Outcome> = items
        .into_iter()
        .filter(|i| !i.unanswered)
        .map(|i| Outcome::Revert(i.id))
        .collect();
    record_outcomes(inner, &outcomes).await?;
    Ok(())
}

/// What one Result says of a record sent.
#[derive(Clone, PartialEq)]
enum Verdict {
    /// Metered, under this id.
    Ack(String),
    /// Refused for good: the status, and what it means.
    Dead(String, &'static str),
    /// Nothing to believe either way (no status, a Success without an id): the record is
    /// sent again.
    Unsure(&'static str),
}

/// Whether a `MeteringRecordId` names anything: one of nothing but spaces or control
/// characters (a broken hop's) is no id.
fn usable_id(id: &str) -> bool {
    id.chars().any(|c| !c.is_whitespace() && !c.is_control())
}

fn verdict(status: Option<&UsageRecordResultStatus>, id: Option<&str>) -> Verdict {
    let id = id.filter(|id| usable_id(id));
    match (status, id) {
        (Some(UsageRecordResultStatus::Success), Some(id)) => Verdict::Ack(id.to_owned()),
        (Some(UsageRecordResultStatus::Success), None) => {
            Verdict::Unsure("the service reported Success without a MeteringRecordId")
        }
        (Some(s), _) if s.as_str().is_empty() => Verdict::Unsure("the result's Status was empty"),
        (Some(s), _) => {
            let msg = match s {
                UsageRecordResultStatus::CustomerNotSubscribed => {
                    "the customer is not subscribed to the product"
                }
                UsageRecordResultStatus::DuplicateRecord => {
                    "the service holds a record with another quantity for this hour"
                }
                _ => "a status this library does not know",
            };
            Verdict::Dead(s.as_str().to_owned(), msg)
        }
        (None, _) => Verdict::Unsure("the result carried no Status"),
    }
}

/// Whether a Result's record is exactly the one sent: the same quantity too, not only the
/// same customer, dimension and hour (a Success for another quantity does not bill this
/// one), and the same allocations when the answer echoes them, in any order.
fn confirms(sent: &UsageRecord, answered: &UsageRecord) -> bool {
    /// Each allocation's quantity and sorted tags, sorted.
    fn canonical(r: &UsageRecord) -> Vec<(i32, Vec<(&str, &str)>)> {
        let mut all: Vec<_> = r
            .usage_allocations()
            .iter()
            .map(|a| {
                let mut tags: Vec<_> = a.tags().iter().map(|t| (t.key(), t.value())).collect();
                tags.sort_unstable();
                (a.allocated_usage_quantity(), tags)
            })
            .collect();
        all.sort_unstable();
        all
    }
    sent.quantity().unwrap_or(0) == answered.quantity().unwrap_or(0)
        && (answered.usage_allocations().is_empty() || canonical(sent) == canonical(answered))
}

async fn send_batch(
    inner: &Inner,
    mut items: Vec<SendItem>,
    sum: &mut FlushSummary,
) -> Result<Flow, Error> {
    // The product the buckets were recorded under (one per call; see `batches`).
    let product = items
        .first()
        .map(|it| it.product.clone())
        .filter(|p| !p.is_empty());
    let mut rounds = 0u32;
    loop {
        let mut records = Vec::with_capacity(items.len());
        let mut keep = Vec::with_capacity(items.len());
        let mut res = Results::default();
        for it in items {
            match usage_record(&it) {
                Ok(r) => {
                    records.push(r);
                    keep.push(it);
                }
                Err(m) => res.dead(&it, ErrorCode::InvalidInput.as_str(), &m),
            }
        }
        res.commit(inner, sum).await?;
        items = keep;
        if items.is_empty() {
            return Ok(Flow::Continue);
        }
        mark_sending(inner, &items)?;
        sum.calls += 1;
        sum.sent += records.len();
        let input = BatchMeterUsageInput {
            usage_records: records,
            product_code: product.clone(),
        };
        let out = inner.client.send_batch_meter_usage(input).await;
        super::crash::hit("after_send_before_ack");
        let out = match out {
            Ok(out) => out,
            Err(e) => return call_failed(inner, items, e.into(), sum).await,
        };
        // Answered after an attempt that was not: what this answer leaves unprocessed, that
        // attempt may have metered.
        if unanswered_attempt(out.metadata()) {
            for it in &mut items {
                it.unanswered = true;
            }
        }
        let mut index: HashMap<RecordKey, usize> = HashMap::new();
        let mut sent: Vec<Option<UsageRecord>> = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let r = usage_record(it).ok();
            if let Some(r) = &r {
                index.insert(record_key(r), i);
            }
            sent.push(r);
        }
        // One verdict per record, from the Results that confirm exactly what was sent.
        let mut verdicts: Vec<Option<Verdict>> = vec![None; items.len()];
        for r in out.results() {
            let Some((i, _)) = r
                .usage_record()
                .and_then(|u| Some((*index.get(&record_key(u))?, u)))
                .filter(|(i, u)| sent[*i].as_ref().is_some_and(|s| confirms(s, u)))
            else {
                continue;
            };
            let v = verdict(r.status(), r.metering_record_id());
            verdicts[i] = Some(match verdicts[i].take() {
                None => v,
                Some(before) if before == v => before,
                // Results that contradict each other: neither is believed.
                Some(_) => Verdict::Unsure("the service sent contradicting Results for it"),
            });
        }
        // A record the service both answered and left unprocessed contradicts itself too:
        // "metered" may be the wrong half, and an identical resend is answered with what
        // the service holds.
        for u in out.unprocessed_records() {
            if let Some(&i) = index.get(&record_key(u)) {
                if verdicts[i].is_some() {
                    verdicts[i] = Some(Verdict::Unsure(
                        "the service both answered it and left it unprocessed",
                    ));
                }
            }
        }
        let mut res = Results::default();
        for (it, v) in items.iter().zip(&verdicts) {
            match v {
                Some(Verdict::Ack(id)) => res.ack(it, id.clone()),
                Some(Verdict::Dead(status, message)) => res.dead(it, status, message),
                Some(Verdict::Unsure(why)) => {
                    tracing::warn!(customer = ?it.customer, dimension = %it.dimension,
                        hour = it.hour, "meter: {why}; the record is sent again at the next flush");
                }
                None => {}
            }
        }
        let mut done: Vec<bool> = verdicts.iter().map(Option::is_some).collect();
        let mut unprocessed = Vec::new();
        for u in out.unprocessed_records() {
            if let Some(&i) = index.get(&record_key(u)) {
                if !done[i] {
                    done[i] = true;
                    unprocessed.push(i);
                }
            }
        }
        // Neither answered nor unprocessed, or answered with no verdict to believe: left
        // `sending` for the next flush, which sends the same record again (the service
        // answers a record it holds with the same result).
        sum.deferred += done.iter().filter(|d| !**d).count()
            + verdicts
                .iter()
                .filter(|v| matches!(v, Some(Verdict::Unsure(_))))
                .count();
        res.commit(inner, sum).await?;
        if unprocessed.is_empty() {
            return Ok(Flow::Continue);
        }
        let mut slots: Vec<Option<SendItem>> = items.into_iter().map(Some).collect();
        items = unprocessed
            .into_iter()
            .filter_map(|i| slots[i].take())
            .collect();
        rounds += 1;
        if rounds > inner.max_unprocessed_rounds {
            revert_unsent(inner, &items).await?;
            sum.deferred += items.len();
            return Ok(Flow::Continue);
        }
        sum.resent_unprocessed += items.len();
        let backoff = Duration::from_millis(20u64 << rounds.min(6));
        tokio::time::sleep(backoff).await;
    }
}

async fn send_meter_usage(
    inner: &Inner,
    items: Vec<SendItem>,
    sum: &mut FlushSummary,
) -> Result<Flow, Error> {
    let store_id = match &inner.shared.fleet {
        Some(f) => f.store_id().await?,
        None => lock(&inner.shared.db).store_id()?,
    };
    let mut items = items.into_iter();
    while let Some(it) = items.next() {
        let mut res = Results::default();
        let built = if it.customer.is_some() {
            // A bucket recorded in the batch mode, in a store now flushed in this one: sent
            // without its customer, it would be billed as nobody's (and two customers' equal
            // buckets would share a client token, so one would be acked unbilled).
            Err(
                "the bucket has a customer (it was recorded in the batch mode); MeterUsage \
                 has none"
                    .to_owned(),
            )
        } else {
            quantity(&it).and_then(|q| Ok((q, allocations(&it)?)))
        };
        let (q, allocs) = match built {
            Ok(b) => b,
            Err(m) => {
                res.dead(&it, ErrorCode::InvalidInput.as_str(), &m);
                res.commit(inner, sum).await?;
                continue;
            }
        };
        let product = it.product.clone();
        let input = MeterUsageInput {
            product_code: product.clone(),
            timestamp: DateTime::from_secs(it.hour),
            usage_dimension: it.dimension.clone(),
            usage_quantity: Some(q),
            dry_run: None,
            usage_allocations: allocs,
            client_token: Some(client_token(
                &store_id,
                &product,
                &it.dimension,
                it.hour,
                it.quantity,
                it.token_nonce.as_deref(),
            )),
        };
        mark_sending(inner, std::slice::from_ref(&it))?;
        sum.calls += 1;
        sum.sent += 1;
        let out = inner.client.send_meter_usage(input).await;
        super::crash::hit("after_send_before_ack");
        match out {
            Ok(out) => {
                // As the batch mode: an answer with no record id (an empty 200 from a broken
                // hop reads as `{}`) proves nothing either way. The bucket stays `sending`,
                // and the next flush sends it again under the same client token.
                match out.metering_record_id().filter(|id| usable_id(id)) {
                    Some(id) => res.ack(&it, id.to_owned()),
                    None => {
                        tracing::warn!(dimension = %it.dimension, hour = it.hour,
                            "meter: the service answered MeterUsage without a MeteringRecordId; \
                             it is sent again at the next flush");
                        sum.deferred += 1;
                    }
                }
                res.commit(inner, sum).await?;
            }
            Err(e) => match call_failed(inner, vec![it], e.into(), sum).await? {
                Flow::Continue | Flow::Split(_) => {}
                Flow::PastWindow(hour, _) => return Ok(Flow::PastWindow(hour, items.collect())),
                Flow::Stop => return Ok(Flow::Stop),
                Flow::Refused(e) => return Ok(Flow::Refused(e)),
            },
        }
    }
    Ok(Flow::Continue)
}
