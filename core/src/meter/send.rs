// SPDX-License-Identifier: Apache-2.0
// The meter's flush: seal, then send sealed buckets and record every result.

//! Sending sealed buckets.
//!
//! Every call is preceded by a transaction marking its buckets `sending`; its results are
//! recorded in one transaction after it returns. A crash in between leaves the buckets
//! `sending`, and the next flush sends them again with the same frozen quantities.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use super::store::{Outcome, SendItem};
use super::{lock, Customer, FlushSummary, Inner, MeterEvent, MeterEventKind, MeterMode};
use crate::operation::batch_meter_usage::BatchMeterUsageInput;
use crate::operation::meter_usage::MeterUsageInput;
use crate::primitives::DateTime;
use crate::types::{Tag, UsageAllocation, UsageRecord, UsageRecordResultStatus};
use crate::{Error, ErrorCode};

/// Records per `BatchMeterUsage` call.
const BATCH: usize = crate::validate::MAX_USAGE_RECORDS;

/// The `ClientToken` of a `MeterUsage` bucket: 32 hex digits of two FNV-1a hashes of the
/// store's identity, the product, dimension, hour and sealed quantity.
///
/// A resend of the bucket (after a crash, a timeout) carries the same token, because every
/// part is frozen once the bucket is sealed and the identity is kept in the store. Two stores
/// (replicas sharing one AWS account) never share a token, so one never meets the other's
/// `IdempotencyConflictException`.
pub(crate) fn client_token(
    store_id: &str,
    product: &str,
    dimension: &str,
    hour: i64,
    quantity: i64,
) -> String {
    fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
        let mut h = seed;
        for p in parts {
            for b in p.iter().chain(std::iter::once(&0xffu8)) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
    let (hour, quantity) = (hour.to_string(), quantity.to_string());
    let parts: [&[u8]; 6] = [
        b"mm-meter-v2",
        store_id.as_bytes(),
        product.as_bytes(),
        dimension.as_bytes(),
        hour.as_bytes(),
        quantity.as_bytes(),
    ];
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325, &parts),
        fnv(0x6c62_272e_07bb_0142, &parts)
    )
}

enum Flow {
    Continue,
    /// Stop this flush; the buckets wait for the next one.
    Stop,
    /// A record-level error rejected a whole batch: send its records one by one.
    Split(Vec<SendItem>),
}

fn allocations(it: &SendItem) -> Result<Option<Vec<UsageAllocation>>, String> {
    let Some(map) = it.allocations.as_ref().filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let mut merged: BTreeMap<&str, i64> = map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let allocated: i64 = map.values().sum();
    let rest = it.quantity - allocated;
    if rest < 0 {
        return Err(format!(
            "allocations sum to {allocated}, more than the quantity {}",
            it.quantity
        ));
    }
    if rest > 0 {
        *merged.entry("").or_insert(0) += rest;
    }
    let mut out = Vec::with_capacity(merged.len());
    for (k, v) in merged {
        let tags = if k.is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Vec<Tag>>(k).map_err(|e| e.to_string())?)
        };
        let q = i32::try_from(v).map_err(|_| format!("allocated quantity {v} overflows"))?;
        out.push(UsageAllocation {
            allocated_usage_quantity: q,
            tags,
        });
    }
    Ok(Some(out))
}

fn quantity(it: &SendItem) -> Result<i32, String> {
    i32::try_from(it.quantity).map_err(|_| {
        format!(
            "the hour's quantity {} is larger than the service accepts ({})",
            it.quantity,
            i32::MAX
        )
    })
}

fn usage_record(it: &SendItem) -> Result<UsageRecord, String> {
    let (ci, acct, lic) = match &it.customer {
        Customer::Identifier(id) => (Some(id.clone()), None, None),
        Customer::AwsAccount {
            account_id,
            license_arn,
        } => (None, Some(account_id.clone()), Some(license_arn.clone())),
    };
    Ok(UsageRecord {
        timestamp: DateTime::from_secs(it.hour),
        customer_identifier: ci,
        dimension: it.dimension.clone(),
        quantity: Some(quantity(it)?),
        usage_allocations: allocations(it)?,
        customer_aws_account_id: acct,
        license_arn: lic,
    })
}

/// Who, which license, what and when: everything that tells two records of one call apart
/// (buckets are unique by it within a meter's product).
type RecordKey = (Option<String>, Option<String>, Option<String>, String, i64);

fn record_key(r: &UsageRecord) -> RecordKey {
    (
        r.customer_identifier.clone(),
        r.customer_aws_account_id.clone(),
        r.license_arn.clone(),
        r.dimension.clone(),
        r.timestamp.secs(),
    )
}

fn event(it: &SendItem, kind: MeterEventKind) -> MeterEvent {
    MeterEvent {
        kind,
        customer: it.customer.clone(),
        dimension: it.dimension.clone(),
        hour: it.hour,
        quantity: it.quantity,
    }
}

/// Collects outcomes and events of one call, then writes and emits them.
#[derive(Default)]
struct Results {
    outcomes: Vec<Outcome>,
    events: Vec<MeterEvent>,
}

impl Results {
    fn ack(&mut self, it: &SendItem, id: String, sum: &mut FlushSummary) {
        sum.acked += 1;
        self.events.push(event(
            it,
            MeterEventKind::Acked {
                metering_record_id: id.clone(),
            },
        ));
        self.outcomes.push(Outcome::Ack(it.id, id));
    }
    fn dead(&mut self, it: &SendItem, reason: &str, message: &str, sum: &mut FlushSummary) {
        sum.dead_lettered += 1;
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
    fn expire(&mut self, it: &SendItem, sum: &mut FlushSummary) {
        sum.expired += 1;
        self.events.push(event(it, MeterEventKind::Expired));
        self.outcomes.push(Outcome::Expire(it.id));
    }
    async fn commit(self, inner: &Inner) -> Result<(), Error> {
        record_outcomes(inner, &self.outcomes).await?;
        inner.shared.emit(self.events);
        Ok(())
    }
}

/// What a failed call's error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blame {
    /// The records themselves (a dimension, a customer, a timestamp, a quantity): the
    /// records are dead-lettered (a batch is first split to find the bad one).
    Records,
    /// The caller or the whole call (credentials, access, region, product code, a disabled
    /// API, an entitlement, a protocol error, an unknown error): nothing was metered and
    /// nothing about the records is wrong, so they stay sealed and the error is returned
    /// from the flush; once the configuration is fixed they are billed.
    Call,
}

/// What a non-retryable error of a whole call is about. The one place this is decided: the
/// match has no wildcard arm, so a new code must be placed here.
pub(crate) fn blame(code: ErrorCode) -> Blame {
    use ErrorCode as C;
    match code {
        C::InvalidInput
        | C::ValidationException
        | C::InvalidUsageDimensionException
        | C::InvalidTagException
        | C::InvalidUsageAllocationsException
        | C::InvalidCustomerIdentifierException
        | C::InvalidLicenseException
        | C::TimestampOutOfBoundsException
        | C::DuplicateRequestException
        | C::IdempotencyConflictException => Blame::Records,
        C::InvalidProductCodeException
        | C::InvalidEndpointRegionException
        | C::DisabledApiException
        | C::CustomerNotEntitledException
        | C::InvalidRegionException
        | C::PlatformNotSupportedException
        | C::InvalidPublicKeyVersionException
        | C::InvalidTokenException
        | C::ExpiredTokenException
        | C::UnrecognizedClientException
        | C::InvalidSignatureException
        | C::IncompleteSignatureException
        | C::MissingAuthenticationTokenException
        | C::RequestExpired
        | C::AccessDeniedException
        | C::UnauthorizedException
        | C::Credentials
        | C::InvalidConfig
        | C::InvalidState
        | C::SerializationException
        | C::UnknownOperationException
        | C::DryRunOperation
        | C::Unhandled
        // Retryable kinds that arrive without retries left (or marked final): the call
        // failed, the records did not.
        | C::ThrottlingException
        | C::InternalServiceErrorException
        | C::ServiceUnavailableException
        | C::Dispatch
        | C::ConnectTimeout
        | C::ReadTimeout
        | C::InvalidResponse => Blame::Call,
    }
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
        return flush_fleet(inner, f).await;
    }
    shared.drain()?;
    let now = (shared.clock)();
    let mut prepared = lock(&shared.db).prepare(&shared.scope, now)?;
    let items = std::mem::take(&mut prepared.items);
    let mut sum = sealed(inner, prepared);
    let queue = batches(inner, items);
    run(inner, queue, &mut sum).await?;
    Ok(sum)
}

/// A flush's summary once sealing is done; reports its events.
fn sealed(inner: &Inner, prepared: super::store::Prepared) -> FlushSummary {
    if prepared.sealed > 0 {
        super::crash::hit("after_seal");
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
    shared.drain_async().await?;
    let now = (shared.clock)();
    let mut sum = sealed(inner, f.seal(&shared.scope, now).await?);
    let product = shared.scope.product_code.as_str();
    let Some(sender) = f.sender(product).await? else {
        // Another replica sends now; the buckets are its to send.
        return Ok(sum);
    };
    let mut seen: Vec<i64> = Vec::new();
    let result = loop {
        let items = match f.claim(product, BATCH as i64, &seen).await {
            Ok(items) => items,
            Err(e) => break Err(e),
        };
        if items.is_empty() {
            break Ok(());
        }
        seen.extend(items.iter().map(|i| i.id));
        match run(inner, batches(inner, items), &mut sum).await {
            Ok(true) => {}
            Ok(false) => {
                // Stopped (throttled): what was never claimed waits too.
                sum.deferred += f.count_sendable(product, &seen).await.unwrap_or(0);
                break Ok(());
            }
            Err(e) => break Err(e),
        }
    };
    f.release_sender(sender).await;
    result.map(|()| sum)
}

/// The calls that send `items`: one product (or, without a product code, one license) and
/// at most [`BATCH`] records per `BatchMeterUsage` call; one bucket per `MeterUsage` call.
fn batches(inner: &Inner, items: Vec<SendItem>) -> VecDeque<Vec<SendItem>> {
    let shared = &inner.shared;
    let mut queue: VecDeque<Vec<SendItem>> = VecDeque::new();
    let prepared_items = items;
    match inner.mode {
        MeterMode::Batch => {
            // One product (or, without a product code, one license) per call.
            let by_product = !shared.scope.product_code.is_empty();
            let mut groups: BTreeMap<String, Vec<SendItem>> = BTreeMap::new();
            for it in prepared_items {
                let g = match (&it.customer, by_product) {
                    (Customer::AwsAccount { license_arn, .. }, false) => license_arn.clone(),
                    _ => String::new(),
                };
                groups.entry(g).or_default().push(it);
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

/// A fleet store's claimed buckets that a stopped flush will not send go back to sealed
/// at once (not after their lease).
async fn revert_claimed(inner: &Inner, queue: &VecDeque<Vec<SendItem>>) -> Result<(), Error> {
    if inner.shared.fleet.is_none() {
        return Ok(());
    }
    let rest: Vec<Outcome> = queue
        .iter()
        .flatten()
        .map(|i| Outcome::Revert(i.id))
        .collect();
    record_outcomes(inner, &rest).await
}

/// Sends the calls of `queue`; `false` when a retryable failure stopped the flush (the
/// rest is left for the next one; claimed fleet buckets go back to sealed).
async fn run(
    inner: &Inner,
    mut queue: VecDeque<Vec<SendItem>>,
    sum: &mut FlushSummary,
) -> Result<bool, Error> {
    while let Some(batch) = queue.pop_front() {
        let n = batch.len();
        let flow = match inner.mode {
            MeterMode::Batch => send_batch(inner, batch, sum).await,
            MeterMode::MeterUsage => send_meter_usage(inner, batch, sum).await,
        };
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Split(items)) => {
                for it in items.into_iter().rev() {
                    queue.push_front(vec![it]);
                }
            }
            Ok(Flow::Stop) => {
                sum.deferred += queue.iter().map(Vec::len).sum::<usize>();
                revert_claimed(inner, &queue).await?;
                return Ok(false);
            }
            Err(e) => {
                tracing::warn!(records = n, error = %e, "meter flush stopped");
                let _ = revert_claimed(inner, &queue).await;
                return Err(e);
            }
        }
    }
    Ok(true)
}

/// Records the outcomes of a call in whichever store the meter has.
async fn record_outcomes(inner: &Inner, outcomes: &[Outcome]) -> Result<(), Error> {
    let now = (inner.shared.clock)();
    match &inner.shared.fleet {
        Some(f) => f.record_outcomes(outcomes, now).await,
        None => lock(&inner.shared.db).record_outcomes(outcomes, now),
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

/// Handles an error that answered a whole call.
async fn call_failed(
    inner: &Inner,
    items: Vec<SendItem>,
    e: Error,
    sum: &mut FlushSummary,
) -> Result<Flow, Error> {
    if e.is_retryable() {
        // Throttled calls were not processed: back to sealed. Others (timeouts, resets,
        // truncated answers) may have been: they stay `sending`, which is re-sent the same.
        if is_throttling(&e) {
            let outcomes: Vec<Outcome> = items.iter().map(|i| Outcome::Revert(i.id)).collect();
            record_outcomes(inner, &outcomes).await?;
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
            let outcomes: Vec<Outcome> = items.iter().map(|i| Outcome::Revert(i.id)).collect();
            record_outcomes(inner, &outcomes).await?;
            sum.deferred += items.len();
            sum.interrupted = Some(e);
            return Ok(Flow::Continue);
        }
        let mut res = Results::default();
        for it in &items {
            if e.error_code() == ErrorCode::TimestampOutOfBoundsException {
                res.expire(it, sum);
            } else {
                res.dead(it, e.code(), e.message(), sum);
            }
        }
        res.commit(inner).await?;
        return Ok(Flow::Continue);
    }
    // About the caller, not the records: nothing was metered; they stay sealed.
    let outcomes: Vec<Outcome> = items.iter().map(|i| Outcome::Revert(i.id)).collect();
    record_outcomes(inner, &outcomes).await?;
    Err(e)
}

async fn send_batch(
    inner: &Inner,
    mut items: Vec<SendItem>,
    sum: &mut FlushSummary,
) -> Result<Flow, Error> {
    let scope = &inner.shared.scope;
    let product = (!scope.product_code.is_empty()).then(|| scope.product_code.clone());
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
                Err(m) => res.dead(&it, ErrorCode::InvalidInput.as_str(), &m, sum),
            }
        }
        res.commit(inner).await?;
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
        let mut index: HashMap<RecordKey, usize> = HashMap::new();
        for (i, it) in items.iter().enumerate() {
            let r = usage_record(it).map(|r| record_key(&r));
            if let Ok(k) = r {
                index.insert(k, i);
            }
        }
        let mut res = Results::default();
        let mut done = vec![false; items.len()];
        for r in out.results() {
            let Some(&i) = r.usage_record().and_then(|u| index.get(&record_key(u))) else {
                continue;
            };
            if done[i] {
                continue;
            }
            done[i] = true;
            let it = &items[i];
            match (r.status(), r.metering_record_id()) {
                (Some(UsageRecordResultStatus::Success), Some(id)) => {
                    res.ack(it, id.to_owned(), sum)
                }
                (Some(UsageRecordResultStatus::Success), None) => res.dead(
                    it,
                    "Success",
                    "the service reported Success without a MeteringRecordId",
                    sum,
                ),
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
                    res.dead(it, s.as_str(), msg, sum)
                }
                (None, _) => res.dead(it, "MissingStatus", "the result carried no Status", sum),
            }
        }
        let mut unprocessed = Vec::new();
        for u in out.unprocessed_records() {
            if let Some(&i) = index.get(&record_key(u)) {
                if !done[i] {
                    done[i] = true;
                    unprocessed.push(i);
                }
            }
        }
        // Neither answered nor unprocessed: left `sending` for the next flush.
        sum.deferred += done.iter().filter(|d| !**d).count();
        res.commit(inner).await?;
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
            let outcomes: Vec<Outcome> = items.iter().map(|i| Outcome::Revert(i.id)).collect();
            record_outcomes(inner, &outcomes).await?;
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
    let product = inner.shared.scope.product_code.clone();
    let store_id = match &inner.shared.fleet {
        Some(f) => f.store_id().await?,
        None => lock(&inner.shared.db).store_id()?,
    };
    for it in items {
        let mut res = Results::default();
        let built = quantity(&it).and_then(|q| Ok((q, allocations(&it)?)));
        let (q, allocs) = match built {
            Ok(b) => b,
            Err(m) => {
                res.dead(&it, ErrorCode::InvalidInput.as_str(), &m, sum);
                res.commit(inner).await?;
                continue;
            }
        };
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
            )),
        };
        mark_sending(inner, std::slice::from_ref(&it))?;
        sum.calls += 1;
        sum.sent += 1;
        let out = inner.client.send_meter_usage(input).await;
        super::crash::hit("after_send_before_ack");
        match out {
            Ok(out) => {
                let id = out.metering_record_id().unwrap_or_default().to_owned();
                res.ack(&it, id, sum);
                res.commit(inner).await?;
            }
            Err(e) => match call_failed(inner, vec![it], e.into(), sum).await? {
                Flow::Continue | Flow::Split(_) => {}
                Flow::Stop => return Ok(Flow::Stop),
            },
        }
    }
    Ok(Flow::Continue)
}
