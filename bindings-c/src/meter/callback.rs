// SPDX-License-Identifier: Apache-2.0
// The meter's event callback: mm_meter_event, the gate that mm_meter_free closes, delivery.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::{Condvar, Mutex};

use marketplace_metering::meter::{Customer, MeterEvent, MeterEventKind};

use crate::ffi::{cstring, opt_ptr};

/// What happened to a bucket (`mm_meter_event.kind`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mm_meter_event_kind {
    /// The service metered the bucket (`metering_record_id` is set).
    Acked = 0,
    /// The service refused the bucket; it is kept in the dead letters (`reason`,
    /// `message` are set).
    DeadLettered = 1,
    /// An event for an hour already sealed was counted in `counted_in_hour` instead (`hour` is
    /// the event's own hour, `quantity` the event's quantity).
    LateEvent = 2,
    /// The bucket is unsent and the service's window for it ends at `window_end`.
    WindowAlarm = 3,
    /// The service refused the bucket as past its window; it will not be sent again. With
    /// `reason` `"OutcomeUnknown"`, an earlier send of it got no answer and the service may
    /// have metered it then (check its records before billing it another way).
    Expired = 4,
    /// A kind this version of the header does not know (read `kind_str`).
    Unknown = 5,
}

/// One meter event, passed to the event callback.
///
/// Valid only during the callback: copy what you keep. Strings are NUL-terminated UTF-8;
/// a field that does not apply to the kind is NULL (strings) or 0 (numbers). The library may
/// add fields at the end in a later version; never allocate one yourself.
#[repr(C)]
#[derive(Debug)]
pub struct mm_meter_event {
    /// What happened.
    pub kind: mm_meter_event_kind,
    /// The kind as the other faces name it: `"acked"`, `"dead_lettered"`, `"late_event"`,
    /// `"window_alarm"`, `"expired"`.
    pub kind_str: *const c_char,
    /// The bucket's customer identifier (NULL for an account customer, and in the
    /// MeterUsage mode, where buckets have no customer).
    pub customer_identifier: *const c_char,
    /// The bucket's customer AWS account id (NULL for a customer identifier).
    pub customer_aws_account_id: *const c_char,
    /// The bucket's license ARN (NULL for a customer identifier).
    pub license_arn: *const c_char,
    /// The bucket's dimension.
    pub dimension: *const c_char,
    /// The bucket's hour, epoch seconds (a multiple of 3600).
    pub hour: i64,
    /// The bucket's quantity (for a late event, the event's quantity).
    pub quantity: i64,
    /// `ACKED`: the service's MeteringRecordId.
    pub metering_record_id: *const c_char,
    /// `DEAD_LETTERED`: the record's Status (`"CustomerNotSubscribed"`, `"DuplicateRecord"`, …)
    /// or the error code. `EXPIRED`: `"OutcomeUnknown"` after a send that got no answer, NULL
    /// when every earlier send of the bucket, if any, was answered (refused or throttled).
    pub reason: *const c_char,
    /// `DEAD_LETTERED`, and `EXPIRED` with a `reason`: details.
    pub message: *const c_char,
    /// `LATE_EVENT`: the hour the quantity was added to (epoch seconds).
    pub counted_in_hour: i64,
    /// `WINDOW_ALARM`: when the service stops accepting the bucket (epoch seconds).
    pub window_end: i64,
    /// On the fleet store, the replica id of the meter that emitted the event; NULL on a
    /// local store.
    pub replica_id: *const c_char,
}

/// The event callback: `ev` and its strings are valid only during the call; `user_data` is
/// the pointer given to `mm_meter_config_set_event_callback`.
///
/// Called from the meter's and the runtime's threads (see `mm_meter_config_set_event_callback`
/// for what it may do); it must be thread-safe, return quickly and never unwind (no C++
/// exception, no longjmp) out of the call.
pub type mm_meter_event_callback =
    Option<unsafe extern "C" fn(ev: *const mm_meter_event, user_data: *mut c_void)>;

/// A C callback and its user data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Callback {
    pub(crate) f: unsafe extern "C" fn(*const mm_meter_event, *mut c_void),
    pub(crate) user_data: *mut c_void,
}

// SAFETY: the caller promises (mm_meter_config_set_event_callback) that the callback and its
// user data may be used from any thread.
unsafe impl Send for Callback {}
// SAFETY: as above.
unsafe impl Sync for Callback {}

/// Lets callbacks run until the meter is freed, then waits for those in flight.
#[derive(Debug)]
pub(crate) struct Gate {
    /// (closed, callbacks running)
    state: Mutex<(bool, usize)>,
    idle: Condvar,
    /// The process that made it: a child after `fork()` inherits the count of callbacks that
    /// parent threads were running, and those threads do not exist there.
    pid: u32,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            state: Mutex::default(),
            idle: Condvar::new(),
            pid: std::process::id(),
        }
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` unless closed.
    pub(crate) fn run(&self, f: impl FnOnce()) {
        {
            let mut g = self.lock();
            if g.0 {
                return;
            }
            g.1 += 1;
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let mut g = self.lock();
        g.1 -= 1;
        if g.1 == 0 {
            self.idle.notify_all();
        }
    }

    /// Whether this is a child after `fork()` of the process that made the gate.
    pub(crate) fn forked(&self) -> bool {
        self.pid != std::process::id()
    }

    /// Closes the gate and waits until no callback runs. In a child after `fork()` it waits
    /// for nothing, and does not even lock (a parent thread may have held the lock): no
    /// thread of the child runs a callback of the parent's meter.
    pub(crate) fn close(&self) {
        if self.forked() {
            return;
        }
        let mut g = self.lock();
        g.0 = true;
        while g.1 > 0 {
            g = self.idle.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

pub(crate) fn opt_c(s: Option<&str>) -> Option<CString> {
    s.map(cstring)
}

/// An event's strings, kept alive for the duration of the callback.
struct EventStrings {
    kind_str: &'static CStr,
    customer_identifier: Option<CString>,
    customer_aws_account_id: Option<CString>,
    license_arn: Option<CString>,
    dimension: CString,
    metering_record_id: Option<CString>,
    reason: Option<CString>,
    message: Option<CString>,
    replica_id: Option<CString>,
}

pub(crate) fn deliver(cb: Callback, e: &MeterEvent) {
    let (ci, acct, lic) = Customer::parts_of(e.customer.as_ref());
    let mut s = EventStrings {
        kind_str: c"unknown",
        customer_identifier: opt_c(ci),
        customer_aws_account_id: opt_c(acct),
        license_arn: opt_c(lic),
        dimension: cstring(&e.dimension),
        metering_record_id: None,
        reason: e.kind.reason().map(cstring),
        message: e.kind.message().map(cstring),
        replica_id: opt_c(e.replica_id.as_deref()),
    };
    let (mut counted_in_hour, mut window_end) = (0, 0);
    let kind = match &e.kind {
        MeterEventKind::Acked { metering_record_id } => {
            s.kind_str = c"acked";
            s.metering_record_id = Some(cstring(metering_record_id));
            mm_meter_event_kind::Acked
        }
        MeterEventKind::DeadLettered { .. } => {
            s.kind_str = c"dead_lettered";
            mm_meter_event_kind::DeadLettered
        }
        MeterEventKind::LateEvent { counted_in_hour: h } => {
            s.kind_str = c"late_event";
            counted_in_hour = *h;
            mm_meter_event_kind::LateEvent
        }
        MeterEventKind::WindowAlarm { window_end: w } => {
            s.kind_str = c"window_alarm";
            window_end = *w;
            mm_meter_event_kind::WindowAlarm
        }
        MeterEventKind::Expired { .. } => {
            s.kind_str = c"expired";
            mm_meter_event_kind::Expired
        }
        // The core's kinds are non_exhaustive: a new one reaches C as UNKNOWN until mapped.
        _ => mm_meter_event_kind::Unknown,
    };
    let ev = mm_meter_event {
        kind,
        kind_str: s.kind_str.as_ptr(),
        customer_identifier: opt_ptr(&s.customer_identifier),
        customer_aws_account_id: opt_ptr(&s.customer_aws_account_id),
        license_arn: opt_ptr(&s.license_arn),
        dimension: s.dimension.as_ptr(),
        hour: e.hour,
        quantity: e.quantity,
        metering_record_id: opt_ptr(&s.metering_record_id),
        reason: opt_ptr(&s.reason),
        message: opt_ptr(&s.message),
        counted_in_hour,
        window_end,
        replica_id: opt_ptr(&s.replica_id),
    };
    // SAFETY: the caller registered a valid function for this user data; `ev` and its strings
    // (owned by `s`) outlive the call.
    unsafe { (cb.f)(&ev, cb.user_data) };
    drop(s);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_gate_waits_for_callbacks_in_flight_and_then_refuses() {
        let gate = Arc::new(Gate::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (g, r) = (gate.clone(), ran.clone());
        let t = std::thread::spawn(move || {
            g.run(|| {
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                r.fetch_add(1, Ordering::SeqCst);
            })
        });
        started_rx.recv().unwrap();
        gate.close(); // waits for the callback above
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        gate.run(|| {
            ran.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 1, "no callback after close");
        t.join().unwrap();
        // A panic inside a callback stays inside the gate.
        let g2 = Gate::default();
        g2.run(|| panic!("boom"));
        g2.close();
    }
}
