// SPDX-License-Identifier: Apache-2.0
// What the meter hands to JS: events (and the barrier behind them), statuses, flush summaries, dead letters.

use std::sync::{Arc, RwLock};

use marketplace_metering::meter::{
    Customer, DeadLetter, FlushSummary, MeterEvent, MeterEventKind, MeterStatus,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;

/// What crosses the event queue: a meter event, or a barrier (`kind` absent).
#[napi(object)]
#[derive(Default)]
pub struct NativeMeterEvent {
    /// `acked`, `dead_lettered`, `late_event`, `window_alarm`, `expired`; absent for a barrier.
    pub kind: Option<String>,
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub dimension: Option<String>,
    /// Epoch seconds.
    pub hour: Option<f64>,
    pub quantity: Option<f64>,
    pub metering_record_id: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// Epoch seconds.
    pub counted_in_hour: Option<f64>,
    /// Epoch seconds.
    pub window_end: Option<f64>,
    /// The emitting meter's replica id on the fleet store.
    pub replica_id: Option<String>,
}

pub(super) type EventFn =
    ThreadsafeFunction<NativeMeterEvent, (), NativeMeterEvent, Status, false, true, 0>;
pub(super) type EventSlot = Arc<RwLock<Option<Arc<EventFn>>>>;

pub(super) fn customer_fields(c: Option<&Customer>, ev: &mut NativeMeterEvent) {
    let (id, acct, lic) = Customer::parts_of(c);
    ev.customer_identifier = id.map(str::to_owned);
    ev.customer_aws_account_id = acct.map(str::to_owned);
    ev.license_arn = lic.map(str::to_owned);
}

pub(super) fn to_native_event(e: MeterEvent) -> NativeMeterEvent {
    let mut ev = NativeMeterEvent {
        dimension: Some(e.dimension),
        hour: Some(e.hour as f64),
        quantity: Some(e.quantity as f64),
        replica_id: e.replica_id,
        ..Default::default()
    };
    customer_fields(e.customer.as_ref(), &mut ev);
    ev.kind = Some(e.kind.as_str().to_owned());
    ev.reason = e.kind.reason().map(str::to_owned);
    ev.message = e.kind.message().map(str::to_owned);
    match e.kind {
        MeterEventKind::Acked { metering_record_id } => {
            ev.metering_record_id = Some(metering_record_id);
        }
        MeterEventKind::LateEvent { counted_in_hour } => {
            ev.counted_in_hour = Some(counted_in_hour as f64);
        }
        MeterEventKind::WindowAlarm { window_end } => {
            ev.window_end = Some(window_end as f64);
        }
        // A kind added to the core still reaches the catch-all `"event"` listeners.
        _ => {}
    }
    ev
}

/// Waits until every event queued so far has been emitted on the JS thread.
pub(super) async fn barrier(slot: &EventSlot) {
    let tsfn = {
        let g = slot.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref().cloned()
    };
    if let Some(t) = tsfn {
        // Closing (worker exiting) or a throwing listener: nothing left to wait for.
        let _ = t.call_async_catch(NativeMeterEvent::default()).await;
    }
}

/// Bucket counts, as the JS layer reads them.
#[napi(object)]
pub struct NativeMeterStatus {
    pub pending: f64,
    pub sealed: f64,
    pub acked: f64,
    pub dead_lettered: f64,
    pub expired: f64,
    /// Epoch seconds.
    pub oldest_unsent_hour: Option<f64>,
    /// This meter's replica id on the fleet store.
    pub replica_id: Option<String>,
    /// Epoch seconds: when this meter's last flush ended.
    pub last_flush_at: Option<f64>,
    /// `"Code: message"` of what failed or stopped this meter's last flush.
    pub last_flush_error: Option<String>,
}

impl From<MeterStatus> for NativeMeterStatus {
    fn from(s: MeterStatus) -> Self {
        NativeMeterStatus {
            pending: s.pending as f64,
            sealed: s.sealed as f64,
            acked: s.acked as f64,
            dead_lettered: s.dead_lettered as f64,
            expired: s.expired as f64,
            oldest_unsent_hour: s.oldest_unsent_hour.map(|h| h as f64),
            replica_id: s.replica_id,
            last_flush_at: s.last_flush_at.map(|t| t as f64),
            last_flush_error: s.last_flush_error,
        }
    }
}

/// What one flush did, as the JS layer reads it.
#[napi(object)]
pub struct NativeFlushSummary {
    pub sealed: u32,
    pub sent: u32,
    pub calls: u32,
    pub acked: u32,
    pub dead_lettered: u32,
    pub expired: u32,
    pub resent_unprocessed: u32,
    pub deferred: u32,
    /// The error that stopped the flush early, as the `nativeError` JSON of a thrown error.
    pub interrupted: Option<String>,
}

pub(super) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<FlushSummary> for NativeFlushSummary {
    fn from(s: FlushSummary) -> Self {
        NativeFlushSummary {
            sealed: count(s.sealed),
            sent: count(s.sent),
            calls: count(s.calls),
            acked: count(s.acked),
            dead_lettered: count(s.dead_lettered),
            expired: count(s.expired),
            resent_unprocessed: count(s.resent_unprocessed),
            deferred: count(s.deferred),
            interrupted: s.interrupted.as_ref().map(crate::errors::detail_json),
        }
    }
}

/// A dead letter, as the JS layer reads it.
#[napi(object)]
pub struct NativeDeadLetter {
    pub customer_identifier: Option<String>,
    pub customer_aws_account_id: Option<String>,
    pub license_arn: Option<String>,
    pub dimension: String,
    /// Epoch seconds.
    pub hour: f64,
    pub quantity: f64,
    pub reason: String,
    pub message: String,
    /// Epoch seconds.
    pub at: f64,
}

impl From<DeadLetter> for NativeDeadLetter {
    fn from(d: DeadLetter) -> Self {
        let mut ev = NativeMeterEvent::default();
        customer_fields(d.customer.as_ref(), &mut ev);
        NativeDeadLetter {
            customer_identifier: ev.customer_identifier,
            customer_aws_account_id: ev.customer_aws_account_id,
            license_arn: ev.license_arn,
            dimension: d.dimension,
            hour: d.hour as f64,
            quantity: d.quantity as f64,
            reason: d.reason,
            message: d.message,
            at: d.at as f64,
        }
    }
}
