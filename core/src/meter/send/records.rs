// SPDX-License-Identifier: Apache-2.0
// Turning sealed buckets into the service's records: client tokens, quantities, allocations, record keys.

use compact_str::CompactString;
use std::collections::BTreeMap;

use crate::meter::store::{SendItem, V1_TOKEN};
use crate::meter::{MeterEvent, MeterEventKind};
use crate::primitives::DateTime;
use crate::types::{Tag, UsageAllocation, UsageRecord};

/// The `ClientToken` of a `MeterUsage` bucket: 32 hex digits of two FNV-1a hashes of the
/// store's identity, the product, dimension, hour and sealed quantity, and the bucket's own
/// random part (`nonce`, drawn when the local store made the bucket).
///
/// A resend of the bucket (after a crash, a timeout) carries the same token, because every
/// part is frozen once the bucket is sealed and the identity and nonce are kept in the store.
/// Two stores (replicas sharing one AWS account) never share a token, so one never meets the
/// other's `IdempotencyConflictException`; nor do copies of one store (instances launched
/// from an image with the store in it), whose buckets made after the copy drew their own
/// nonces. The service keeps tokens per account: a shared token billed one copy's usage only.
/// A copied bucket (a restored backup) keeps its nonce, and so its token. Buckets with no
/// nonce (made before the store kept one; the fleet store's) keep the token they had; a
/// bucket release 0.1.0 may have sent (nonce [`V1_TOKEN`]) keeps that release's token, of the
/// product, dimension and hour alone.
pub(crate) fn client_token(
    store_id: &str,
    product: &str,
    dimension: &str,
    hour: i64,
    quantity: i64,
    nonce: Option<&str>,
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
    let v1: [&[u8]; 4] = [
        b"mm-meter-v1",
        product.as_bytes(),
        dimension.as_bytes(),
        hour.as_bytes(),
    ];
    let all: [&[u8]; 7] = [
        b"mm-meter-v2",
        store_id.as_bytes(),
        product.as_bytes(),
        dimension.as_bytes(),
        hour.as_bytes(),
        quantity.as_bytes(),
        nonce.unwrap_or_default().as_bytes(),
    ];
    let parts = match nonce {
        Some(V1_TOKEN) => &v1[..],
        Some(_) => &all[..],
        None => &all[..6],
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325, parts),
        fnv(0x6c62_272e_07bb_0142, parts)
    )
}

pub(super) fn allocations(it: &SendItem) -> Result<Option<Vec<UsageAllocation>>, String> {
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
    let mut out = Vec::with_capacity(merged.len().min(MAX_ALLOCATIONS));
    for (k, v) in fold_past_the_maximum(merged) {
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

/// The most allocations one record holds (the model's `UsageAllocations`).
const MAX_ALLOCATIONS: usize = 2500;
/// The most bytes of allocations one record carries: three quarters of the most the client
/// sends in one request, the rest for the record's other members.
const MAX_ALLOCATION_BYTES: usize = crate::validate::MAX_REQUEST_BYTES / 4 * 3;

/// What one allocation of tag set `key` (its tags as JSON) costs in the request.
fn allocation_bytes(key: &str) -> usize {
    key.len() + r#"{"AllocatedUsageQuantity":2147483647,"Tags":},"#.len()
}

/// A bucket's allocations (tag set → units, `""` untagged) as one record holds them: at most
/// [`MAX_ALLOCATIONS`], in at most [`MAX_ALLOCATION_BYTES`]. Past either, the units of the
/// smallest tag sets (ties by tag set) go to the untagged one. Every event was valid on its
/// own, and the hour's units are billed whole whatever their tags: refused at the send, the
/// bucket was dead-lettered for good. The same bucket always folds the same way, so a resend
/// is the same record.
fn fold_past_the_maximum(mut merged: BTreeMap<&str, i64>) -> Vec<(&str, i64)> {
    let bytes: usize = merged.keys().map(|k| allocation_bytes(k)).sum();
    if merged.len() <= MAX_ALLOCATIONS && bytes <= MAX_ALLOCATION_BYTES {
        return merged.into_iter().collect();
    }
    let mut untagged = merged.remove("").unwrap_or(0);
    let mut tagged: Vec<(&str, i64)> = merged.into_iter().collect();
    tagged.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    // The largest first, while they fit beside the untagged one.
    let mut room = MAX_ALLOCATION_BYTES - allocation_bytes("");
    let mut kept = 0;
    for (k, _) in tagged.iter().take(MAX_ALLOCATIONS - 1) {
        match room.checked_sub(allocation_bytes(k)) {
            Some(left) => room = left,
            None => break,
        }
        kept += 1;
    }
    let folded = tagged.split_off(kept);
    untagged += folded.iter().map(|(_, q)| q).sum::<i64>();
    tracing::warn!(
        tag_sets = folded.len() + tagged.len(),
        folded = folded.len(),
        units = untagged,
        "an hour's usage carries more tag sets than a record holds; the smallest are sent untagged"
    );
    tagged.push(("", untagged));
    tagged
}

pub(super) fn quantity(it: &SendItem) -> Result<i32, String> {
    i32::try_from(it.quantity).map_err(|_| {
        format!(
            "the hour's quantity {} is larger than the service accepts ({})",
            it.quantity,
            i32::MAX
        )
    })
}

pub(super) fn usage_record(it: &SendItem) -> Result<UsageRecord, String> {
    let Some(customer) = &it.customer else {
        // A bucket recorded in the MeterUsage mode, in a store now flushed in the batch mode.
        return Err("the bucket has no customer (it was recorded in the MeterUsage mode)".into());
    };
    let (ci, acct, lic) = customer.parts();
    let (ci, acct, lic) = (
        ci.map(CompactString::from),
        acct.map(CompactString::from),
        lic.map(CompactString::from),
    );
    Ok(UsageRecord {
        timestamp: DateTime::from_secs(it.hour),
        customer_identifier: ci,
        dimension: it.dimension.as_str().into(),
        quantity: Some(quantity(it)?),
        usage_allocations: allocations(it)?,
        customer_aws_account_id: acct,
        license_arn: lic,
    })
}

/// Who, which license, what and when: everything that tells two records of one call apart
/// (buckets are unique by it within a meter's product).
pub(super) type RecordKey = (
    Option<CompactString>,
    Option<CompactString>,
    Option<CompactString>,
    CompactString,
    i64,
);

pub(super) fn record_key(r: &UsageRecord) -> RecordKey {
    (
        r.customer_identifier.clone(),
        r.customer_aws_account_id.clone(),
        r.license_arn.clone(),
        r.dimension.clone(),
        r.timestamp.secs(),
    )
}

pub(super) fn event(it: &SendItem, kind: MeterEventKind) -> MeterEvent {
    MeterEvent {
        kind,
        customer: it.customer.clone(),
        dimension: it.dimension.clone(),
        hour: it.hour,
        quantity: it.quantity,
        replica_id: None, // set by `Shared::emit`
    }
}
