// SPDX-License-Identifier: Apache-2.0
// The usage meter (mm_meter_*), its configuration, events, dead letters and the manual clock.

//! `mm_meter`: the core's [`UsageMeter`] behind an opaque handle.
//!
//! Translation only: the meter's rules (buckets, sealing, sending, dead letters) are the
//! core's. What this module adds is what C needs:
//!
//! * an **event callback** (`mm_meter_event_callback`): each core `MeterEvent` is turned into
//!   an `mm_meter_event` whose strings live for the duration of the call. The core calls it on
//!   whichever thread caused the event (a `mm_meter_record` caller, the group-commit thread, a
//!   runtime worker running a background flush, or the thread in `mm_meter_flush`), so the
//!   callback must be thread-safe. The conversion runs inside `catch_unwind`, so nothing
//!   unwinds into the core's threads.
//! * a **callback gate**: `mm_meter_free` waits for callbacks in flight and no callback starts
//!   after it returns — even when a background flush still holds the core meter — so the
//!   caller may free its `user_data` (the C++ wrapper frees its `std::function`) right after.
//! * `mm_clock`, the core's [`ManualClock`], so C tests can seal hours without waiting.

use std::ffi::{c_char, c_void, CStr, CString};
use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use marketplace_metering::meter::{
    Customer, DeadLetter, Durability, FlushSummary, ManualClock, MeterConfig, MeterEvent,
    MeterEventKind, MeterMode, MeterStatus, RequeueFilter, Store,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::{Error, UsageMeter};

use crate::client::mm_client;
use crate::error::{mm_error, mm_status, ErrorData};
use crate::ffi::{self, cstring, opt_ptr, Castable};
use crate::input::{allocations, count_arg, mm_tag, tag_args, Allocation};

/// The `timestamp` of `mm_meter_record` that means "now, by the meter's clock".
pub const MM_METER_NOW: i64 = i64::MIN;

/// The `hour` of `mm_meter_requeue` that means "every hour".
pub const MM_METER_ANY_HOUR: i64 = i64::MIN;

/// Which operation a meter sends its buckets with (`mm_meter_config_set_mode`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mm_meter_mode {
    /// `BatchMeterUsage`, up to 25 buckets per call (SaaS products; the default).
    Batch = 0,
    /// `MeterUsage`, one call per (dimension, hour) with a `ClientToken` derived from the
    /// bucket (AMI and container products). Needs a product code; customers are ignored.
    MeterUsage = 1,
}

/// When `mm_meter_record` returns (`mm_meter_config_set_durability`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mm_meter_durability {
    /// After the event is committed to the store (the default).
    Durable = 0,
    /// After a group commit that batches concurrent callers into one transaction.
    Group = 1,
    /// At once, buffered in memory and written at every flush: a crash loses the events
    /// recorded since the last flush.
    Memory = 2,
}

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
    /// The bucket passed the service's window unsent; it will not be sent.
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
    /// or the error code.
    pub reason: *const c_char,
    /// `DEAD_LETTERED`: details.
    pub message: *const c_char,
    /// `LATE_EVENT`: the hour the quantity was added to (epoch seconds).
    pub counted_in_hour: i64,
    /// `WINDOW_ALARM`: when the service stops accepting the bucket (epoch seconds).
    pub window_end: i64,
}

/// The event callback: `ev` and its strings are valid only during the call; `user_data` is
/// the pointer given to `mm_meter_config_set_event_callback`.
///
/// Called from the meter's and the runtime's threads (see `mm_meter_config_set_event_callback`
/// for what it may do); it must be thread-safe, return quickly and never unwind (no C++
/// exception, no longjmp) out of the call.
pub type mm_meter_event_callback =
    Option<unsafe extern "C" fn(ev: *const mm_meter_event, user_data: *mut c_void)>;

/// What one flush did (filled by `mm_meter_flush` and `mm_meter_close`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mm_flush_summary {
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
    /// Records the service returned unprocessed that were sent again.
    pub resent_unprocessed: usize,
    /// Buckets left for a later flush.
    pub deferred: usize,
    /// `MM_STATUS_OK`, or the retryable error (throttling, transport) that stopped this flush
    /// early; its buckets stay sealed for the next flush.
    pub interrupted: mm_status,
}

/// Bucket counts per state (filled by `mm_meter_status`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mm_meter_counts {
    /// Hours still open (or within grace).
    pub pending: u64,
    /// Sealed, not yet acknowledged (includes buckets being sent).
    pub sealed: u64,
    /// Metered by the service.
    pub acked: u64,
    /// Refused by the service (see `mm_meter_dead_letters`).
    pub dead_lettered: u64,
    /// Passed the service's window unsent.
    pub expired: u64,
    /// Whether `oldest_unsent_hour` is set.
    pub has_oldest_unsent_hour: bool,
    /// The oldest hour not yet acknowledged, dead-lettered or expired (epoch seconds).
    pub oldest_unsent_hour: i64,
}

/// A usage allocation for `mm_meter_record`: a share of the quantity with its tags (the
/// existing `mm_tag`). Borrowed for the duration of the call (copied).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mm_allocation {
    /// The allocated quantity (0..=2147483647); the allocations of a record sum to its quantity.
    pub quantity: i64,
    /// `n_tags` tags (NULL when `n_tags` is 0).
    pub tags: *const mm_tag,
    /// The number of tags (0–5).
    pub n_tags: usize,
}

// ---------------------------------------------------------------------------------------------
// mm_clock

/// A clock set by hand (the core's `ManualClock`), for tests and examples: give it to
/// `mm_meter_config_set_clock` and hours seal when you move it, not when real time passes.
///
/// Thread-safe: it may be read, set and advanced from many threads at once. The meter keeps
/// its own reference, so the clock may be freed before the meter (it then stops moving).
pub struct mm_clock {
    _private: [u8; 0],
}

impl Castable for mm_clock {
    type Rust = ManualClock;
}

/// A new clock reading `epoch_seconds`. Free it with `mm_clock_free`. NULL only if allocation
/// fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_new(epoch_seconds: i64) -> *mut mm_clock {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_clock>(ManualClock::new(epoch_seconds)))
}

/// Sets the clock to `epoch_seconds`. `clock` NULL → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_set(clock: *const mm_clock, epoch_seconds: i64) -> mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live clock.
        unsafe { ffi::req_ref(clock, "clock") }?.set(epoch_seconds);
        Ok(())
    })
}

/// Moves the clock by `seconds` (negative moves it back). `clock` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_advance(clock: *const mm_clock, seconds: i64) -> mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live clock.
        unsafe { ffi::req_ref(clock, "clock") }?.advance(seconds);
        Ok(())
    })
}

/// The time the clock reads (epoch seconds); 0 if `clock` is NULL. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_clock_now(clock: *const mm_clock) -> i64 {
    // SAFETY: NULL or a live clock.
    ffi_boundary!(0 => unsafe { ffi::opt_ref(clock) }.map_or(0, ManualClock::now))
}

/// Frees the caller's reference to a clock (meters using it keep theirs). NULL does nothing.
/// No other thread may use this handle during or after the call.
#[no_mangle]
pub extern "C" fn mm_clock_free(clock: *mut mm_clock) {
    // SAFETY: NULL or a clock made by mm_clock_new, freed once.
    ffi_boundary!(() => unsafe { ffi::free(clock) })
}

// ---------------------------------------------------------------------------------------------
// mm_meter_config

/// A C callback and its user data.
#[derive(Clone, Copy, Debug)]
struct Callback {
    f: unsafe extern "C" fn(*const mm_meter_event, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the caller promises (mm_meter_config_set_event_callback) that the callback and its
// user data may be used from any thread.
unsafe impl Send for Callback {}
// SAFETY: as above.
unsafe impl Sync for Callback {}

/// What an `mm_meter_config` holds.
#[derive(Clone, Debug, Default)]
pub struct MeterSettings {
    path: Option<PathBuf>,
    product_code: Option<String>,
    mode: Option<MeterMode>,
    durability: Option<Durability>,
    grace: Option<Duration>,
    zero_fill: bool,
    flush_interval: Option<Duration>,
    callback: Option<Callback>,
    clock: Option<ManualClock>,
    database_url: Option<String>,
    replica_id: Option<String>,
}

/// A meter configuration being built: `mm_meter_config_new`, the setters, then
/// `mm_meter_new` (which copies it); free it with `mm_meter_config_free`.
///
/// Defaults: in-memory store (tests only: nothing survives the process), no product code,
/// `MM_METER_MODE_BATCH`, `MM_METER_DURABILITY_DURABLE`, 300 s grace, no zero fill, no
/// background flusher, no callback, the system clock. Setters are not thread-safe on one
/// config; `mm_meter_new` from several threads at once is.
pub struct mm_meter_config {
    _private: [u8; 0],
}

impl Castable for mm_meter_config {
    type Rust = MeterSettings;
}

/// A new meter configuration with the defaults. Free it with `mm_meter_config_free`. NULL
/// only if allocation fails. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_config_new() -> *mut mm_meter_config {
    ffi_boundary!(std::ptr::null_mut() => ffi::to_handle::<mm_meter_config>(MeterSettings::default()))
}

/// Frees a meter configuration. NULL does nothing. Meters made from it are unaffected.
#[no_mangle]
pub extern "C" fn mm_meter_config_free(config: *mut mm_meter_config) {
    // SAFETY: NULL or a config made by mm_meter_config_new, freed once.
    ffi_boundary!(() => unsafe { ffi::free(config) })
}

fn set(
    config: *mut mm_meter_config,
    f: impl FnOnce(&mut MeterSettings) -> Result<(), ErrorData>,
) -> mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live config not used by another thread.
        let c = unsafe { ffi::req_mut(config, "config") }?;
        f(c)
    })
}

/// Sets the SQLite store file (created when missing; WAL mode). NULL: the in-memory store
/// (the default; for tests — nothing survives the process). The path is copied as bytes (it
/// need not be UTF-8). `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_path(
    config: *mut mm_meter_config,
    path: *const c_char,
) -> mm_status {
    set(config, |c| {
        c.path = if path.is_null() {
            None
        } else {
            // SAFETY: a NUL-terminated string (checked non-NULL).
            let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
            if bytes.is_empty() {
                return Err(ErrorData::invalid("path", "must not be empty"));
            }
            Some(path_of(bytes))
        };
        Ok(())
    })
}

/// Puts the meter on the fleet store instead of a SQLite file: one PostgreSQL shared by every
/// replica of a service (`"postgresql://user@host:5432/db"`, or `?host=/socket/dir`), each
/// customer-hour billed once across the fleet. Copied. NULL: back to `path` (or memory). Not
/// UTF-8 → `MM_STATUS_INVALID_INPUT`; a URL that does not parse, or both a path and a URL,
/// are refused by `mm_meter_new` (field `database_url`). The URL (and any password in it) is
/// never logged or put in an error. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_database_url(
    config: *mut mm_meter_config,
    database_url: *const c_char,
) -> mm_status {
    set(config, |c| {
        c.database_url = if database_url.is_null() {
            None
        } else {
            // SAFETY: a NUL-terminated string (checked non-NULL).
            Some(unsafe { ffi::str_arg(database_url, "database_url") }?.to_owned())
        };
        Ok(())
    })
}

/// The fleet store's name for this writer (default: host name and process id). Copied.
/// NULL → `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT`; an empty one is
/// refused by `mm_meter_new` (field `replica_id`). Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_replica_id(
    config: *mut mm_meter_config,
    replica_id: *const c_char,
) -> mm_status {
    set(config, |c| {
        // SAFETY: NULL or a NUL-terminated string.
        c.replica_id = Some(unsafe { ffi::str_arg(replica_id, "replica_id") }?.to_owned());
        Ok(())
    })
}

#[cfg(unix)]
fn path_of(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Sets the product code of every bucket (required for customer identifiers and the MeterUsage
/// mode; without it every record needs an account id and a license ARN). Copied. NULL →
/// `MM_STATUS_NULL_PARAMETER`; not UTF-8 → `MM_STATUS_INVALID_INPUT` (an empty code is refused
/// by `mm_meter_new`). Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_product_code(
    config: *mut mm_meter_config,
    product_code: *const c_char,
) -> mm_status {
    set(config, |c| {
        // SAFETY: NULL or a NUL-terminated string.
        let s = unsafe { ffi::str_arg(product_code, "product_code") }?;
        c.product_code = Some(s.to_owned());
        Ok(())
    })
}

/// Sets the mode: `MM_METER_MODE_BATCH` (default) or `MM_METER_MODE_METER_USAGE`. Another
/// number → `MM_STATUS_INVALID_INPUT` (field `mode`); `config` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_mode(config: *mut mm_meter_config, mode: u32) -> mm_status {
    set(config, |c| {
        c.mode = Some(match mode {
            m if m == mm_meter_mode::Batch as u32 => MeterMode::Batch,
            m if m == mm_meter_mode::MeterUsage as u32 => MeterMode::MeterUsage,
            _ => {
                return Err(ErrorData::invalid(
                    "mode",
                    "must be MM_METER_MODE_BATCH or MM_METER_MODE_METER_USAGE",
                ))
            }
        });
        Ok(())
    })
}

/// Sets when `mm_meter_record` returns: `MM_METER_DURABILITY_DURABLE` (default),
/// `MM_METER_DURABILITY_GROUP` or `MM_METER_DURABILITY_MEMORY`. Another number →
/// `MM_STATUS_INVALID_INPUT` (field `durability`); `config` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_durability(
    config: *mut mm_meter_config,
    durability: u32,
) -> mm_status {
    set(config, |c| {
        c.durability = Some(match durability {
            d if d == mm_meter_durability::Durable as u32 => Durability::Durable,
            d if d == mm_meter_durability::Group as u32 => Durability::Group,
            d if d == mm_meter_durability::Memory as u32 => Durability::Memory,
            _ => {
                return Err(ErrorData::invalid(
                    "durability",
                    "must be MM_METER_DURABILITY_DURABLE, MM_METER_DURABILITY_GROUP or MM_METER_DURABILITY_MEMORY",
                ))
            }
        });
        Ok(())
    })
}

/// Sets the time after an hour's end before it is sealed, in seconds (default 300).
/// `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_grace_seconds(
    config: *mut mm_meter_config,
    seconds: u64,
) -> mm_status {
    set(config, |c| {
        c.grace = Some(Duration::from_secs(seconds));
        Ok(())
    })
}

/// Turns zero fill on or off (default off): the hours of customers registered with
/// `mm_meter_register_customer` are reported as 0 when they had no usage. `config` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_zero_fill(
    config: *mut mm_meter_config,
    zero_fill: bool,
) -> mm_status {
    set(config, |c| {
        c.zero_fill = zero_fill;
        Ok(())
    })
}

/// Flushes in the background on the library's runtime every `seconds` (default 60, as in
/// every face; 0: never). `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on
/// one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_flush_interval_seconds(
    config: *mut mm_meter_config,
    seconds: u64,
) -> mm_status {
    set(config, |c| {
        c.flush_interval = Some(Duration::from_secs(seconds));
        Ok(())
    })
}

/// Sets the event callback (NULL: none) and the `user_data` passed to it.
///
/// The callback is called on the thread that caused the event: a `mm_meter_record` caller
/// (late events), the group-commit thread (`MM_METER_DURABILITY_GROUP`), the thread inside
/// `mm_meter_flush`/`mm_meter_close`/`mm_meter_status`, or a runtime worker running the
/// background flush. So it and `user_data` must be thread-safe, and it must return quickly
/// and never unwind (no C++ exception, no longjmp). While calling it the meter holds no lock
/// that `mm_meter_status`, `mm_meter_dead_letters`, `mm_meter_requeue` or
/// `mm_meter_register_customer` take, so the callback may call them. Calls that could wait
/// for the callback itself are refused when made from the meter's own callback, and return
/// `MM_STATUS_INVALID_STATE` without doing anything: `mm_meter_record` with
/// `MM_METER_DURABILITY_GROUP` (a late event is reported on the group-commit thread, and a
/// record there would wait for that thread; with the other durabilities it works),
/// `mm_meter_flush`, `mm_meter_close` and `mm_meter_free` (the meter is not freed; free it
/// after the callback returns).
///
/// No callback runs after `mm_meter_free` returns. `config` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_event_callback(
    config: *mut mm_meter_config,
    callback: mm_meter_event_callback,
    user_data: *mut c_void,
) -> mm_status {
    set(config, |c| {
        c.callback = callback.map(|f| Callback { f, user_data });
        Ok(())
    })
}

/// Sets the meter's clock (NULL: the system clock, the default). The meter keeps its own
/// reference to `clock`. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_clock(
    config: *mut mm_meter_config,
    clock: *const mm_clock,
) -> mm_status {
    set(config, |c| {
        // SAFETY: NULL or a live clock.
        c.clock = unsafe { ffi::opt_ref(clock) }.cloned();
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Events

/// Lets callbacks run until the meter is freed, then waits for those in flight.
#[derive(Debug, Default)]
struct Gate {
    /// (closed, callbacks running)
    state: Mutex<(bool, usize)>,
    idle: Condvar,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` unless closed.
    fn run(&self, f: impl FnOnce()) {
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

    /// Closes the gate and waits until no callback runs.
    fn close(&self) {
        let mut g = self.lock();
        g.0 = true;
        while g.1 > 0 {
            g = self.idle.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn opt_c(s: Option<&str>) -> Option<CString> {
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
}

fn deliver(cb: Callback, e: &MeterEvent) {
    let (ci, acct, lic) = Customer::parts(&e.customer);
    let mut s = EventStrings {
        kind_str: c"unknown",
        customer_identifier: opt_c(ci),
        customer_aws_account_id: opt_c(acct),
        license_arn: opt_c(lic),
        dimension: cstring(&e.dimension),
        metering_record_id: None,
        reason: None,
        message: None,
    };
    let (mut counted_in_hour, mut window_end) = (0, 0);
    let kind = match &e.kind {
        MeterEventKind::Acked { metering_record_id } => {
            s.kind_str = c"acked";
            s.metering_record_id = Some(cstring(metering_record_id));
            mm_meter_event_kind::Acked
        }
        MeterEventKind::DeadLettered { reason, message } => {
            s.kind_str = c"dead_lettered";
            s.reason = Some(cstring(reason));
            s.message = Some(cstring(message));
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
        MeterEventKind::Expired => {
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
    };
    // SAFETY: the caller registered a valid function for this user data; `ev` and its strings
    // (owned by `s`) outlive the call.
    unsafe { (cb.f)(&ev, cb.user_data) };
    drop(s);
}

// ---------------------------------------------------------------------------------------------
// mm_meter

/// What an `mm_meter` holds.
pub struct MeterHandle {
    meter: ManuallyDrop<UsageMeter>,
    mode: MeterMode,
    gate: Arc<Gate>,
}

impl Drop for MeterHandle {
    fn drop(&mut self) {
        // First the core meter (joins the group committer, writes buffered events — whose late
        // events may still reach the callback), then the gate: a background flush that still
        // holds the core meter can no longer call back.
        // SAFETY: dropped once, here; never used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.meter) };
        self.gate.close();
    }
}

/// A usage meter: records billable events and bills every customer-hour exactly once (see the
/// "Usage meter" section of the README). Made by `mm_meter_new`, freed by `mm_meter_free`.
///
/// Thread-safe: every call takes a `const mm_meter *` and may run from many threads at once.
/// `mm_meter_record` blocks until the event is as durable as the configured durability says;
/// `mm_meter_flush` and `mm_meter_close` block on the library's runtime while they send.
pub struct mm_meter {
    _private: [u8; 0],
}

impl Castable for mm_meter {
    type Rust = MeterHandle;
}

/// Makes a meter sending through `client` with `config` (copied; both may be freed afterwards
/// — the meter keeps its own reference to the client). Opens (creating or migrating) the store
/// and starts the group-commit thread and the background flusher when configured.
///
/// On success stores a new meter in `*meter_out` (free it with `mm_meter_free`). Fails with
/// `MM_STATUS_INVALID_CONFIG` (MeterUsage mode without a product code), `MM_STATUS_INVALID_INPUT`
/// (an empty product code) or `MM_STATUS_INVALID_STATE` (the store cannot be opened, or
/// another meter owns it: the message names its pid and host), filling `*err_out` when it is
/// not NULL. `client`, `config` or `meter_out` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Thread-safe.
///
/// One meter owns a store file at a time, from `mm_meter_new` to `mm_meter_close` (or
/// `mm_meter_free`). A meter belongs to the process that created it: after `fork()` every
/// call on it in the child returns `MM_STATUS_INVALID_STATE` ("create the UsageMeter after
/// fork"), and `mm_meter_free` there releases only the child's memory.
#[no_mangle]
pub extern "C" fn mm_meter_new(
    client: *const mm_client,
    config: *const mm_meter_config,
    meter_out: *mut *mut mm_meter,
    err_out: *mut *mut mm_error,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or live handles.
        let (client, s) = unsafe {
            (
                ffi::req_ref(client, "client")?,
                ffi::req_ref(config, "config")?,
            )
        };
        ffi::check_out(meter_out, "meter_out")?;
        let mode = s.mode.unwrap_or_default();
        let gate = Arc::new(Gate::default());
        let mut b = MeterConfig::builder()
            .client(client.as_async().clone())
            .store(match (&s.path, &s.database_url) {
                (Some(_), Some(_)) => {
                    return Err(ErrorData::invalid(
                        "database_url",
                        "give either a path (SQLite) or a database URL (PostgreSQL), not both",
                    ))
                }
                (None, Some(url)) => Store::postgres(url.clone()),
                (Some(p), None) => Store::sqlite(p.clone()),
                (None, None) => Store::memory(),
            })
            .mode(mode)
            .durability(s.durability.unwrap_or_default())
            .zero_fill(s.zero_fill);
        if let Some(p) = &s.product_code {
            b = b.product_code(p.clone());
        }
        if let Some(id) = &s.replica_id {
            b = b.replica_id(id.clone());
        }
        if let Some(g) = s.grace {
            b = b.grace(g);
        }
        if let Some(f) = s.flush_interval {
            b = b.flush_interval(f);
        }
        if let Some(c) = &s.clock {
            b = b.clock(c.clock());
        }
        if let Some(cb) = s.callback {
            let gate = gate.clone();
            b = b.on_event(move |e| gate.run(|| deliver(cb, &e)));
        }
        let config = b.build().map_err(Error::from)?;
        let meter = UsageMeter::new(config)?;
        let handle = MeterHandle {
            meter: ManuallyDrop::new(meter),
            mode,
            gate,
        };
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_meter>(meter_out, handle) };
        Ok(())
    })
}

/// Frees a meter. NULL does nothing (`MM_STATUS_OK`). Does not flush: call `mm_meter_close`
/// first to send what may be sent (a file store keeps everything else for the next meter on
/// the same file; events buffered by `MM_METER_DURABILITY_MEMORY` are written to the store
/// here).
///
/// Waits for event callbacks in flight; none runs after it returns. No other call may be
/// running on `meter`. Called from the meter's own event callback it frees nothing and
/// returns `MM_STATUS_INVALID_STATE` (it would wait for that callback): free the meter after
/// the callback returns.
#[no_mangle]
pub extern "C" fn mm_meter_free(meter: *mut mm_meter) -> mm_status {
    ffi_boundary!(std::ptr::null_mut(), {
        // SAFETY: NULL or a live meter.
        if let Some(h) = unsafe { ffi::opt_ref(meter.cast_const()) } {
            h.meter.refuse_in_event_callback("mm_meter_free")?;
        }
        // SAFETY: NULL or a meter made by mm_meter_new, freed once.
        unsafe { ffi::free(meter) };
        Ok(())
    })
}

fn with_meter(
    meter: *const mm_meter,
    err_out: *mut *mut mm_error,
    f: impl FnOnce(&MeterHandle, &UsageMeter) -> Result<(), ErrorData>,
) -> mm_status {
    ffi_boundary!(err_out, {
        // SAFETY: NULL or a live meter.
        let h = unsafe { ffi::req_ref(meter, "meter") }?;
        f(h, &h.meter)
    })
}

/// The customer of a record: an identifier, or an account id with its license ARN (or
/// nothing in the MeterUsage mode, which ignores customers).
///
/// # Safety
/// Each pointer is NULL or a NUL-terminated string.
unsafe fn customer_arg(
    mode: MeterMode,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
) -> Result<Customer, ErrorData> {
    // SAFETY: per the contract above.
    let (ci, acct, lic) = unsafe {
        (
            ffi::opt_str_arg(customer_identifier, "customer_identifier")?,
            ffi::opt_str_arg(customer_aws_account_id, "customer_aws_account_id")?,
            ffi::opt_str_arg(license_arn, "license_arn")?,
        )
    };
    Customer::from_parts(
        ci.map(str::to_owned),
        acct.map(str::to_owned),
        lic.map(str::to_owned),
        mode != MeterMode::MeterUsage,
    )
    .map_err(ErrorData::from)
}

/// Records `quantity` of `dimension` used by a customer at `timestamp` (epoch seconds, or
/// `MM_METER_NOW` for the meter clock's now) and returns once the event is as durable as the
/// meter's durability says.
///
/// The customer is `customer_identifier` (with the meter's product code), or
/// `customer_aws_account_id` with `license_arn`; pass NULL for the other(s). In the MeterUsage
/// mode customers are ignored and may all be NULL. `allocations` (`n_allocations` of them;
/// NULL when 0) split the quantity by tags and must sum to it. An event whose hour is already
/// sealed is counted in the current hour and reported as `MM_METER_EVENT_KIND_LATE_EVENT`.
///
/// Bad input fails with `MM_STATUS_INVALID_INPUT` and an error whose field names the argument
/// (`quantity`, `dimension`, `customer_identifier`, `license_arn`,
/// `allocations[0].AllocatedUsageQuantity`, …); nothing is recorded. A closed meter gives
/// `MM_STATUS_INVALID_STATE`. `meter` or `dimension` NULL → `MM_STATUS_NULL_PARAMETER`.
/// Thread-safe.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mm_meter_record(
    meter: *const mm_meter,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
    dimension: *const c_char,
    quantity: i64,
    timestamp: i64,
    allocations_in: *const mm_allocation,
    n_allocations: usize,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |h, m| {
        // SAFETY: NULL or NUL-terminated strings; NULL or `n_allocations` allocations.
        let (customer, dimension, allocs) = unsafe {
            (
                customer_arg(
                    h.mode,
                    customer_identifier,
                    customer_aws_account_id,
                    license_arn,
                )?,
                ffi::str_arg(dimension, "dimension")?,
                allocation_args(allocations_in, n_allocations)?,
            )
        };
        let at = (timestamp != MM_METER_NOW).then(|| DateTime::from_secs(timestamp));
        m.record(customer, dimension, quantity, at, allocs)?;
        Ok(())
    })
}

/// Copies a `(allocations, n)` array into core allocations.
///
/// # Safety
/// `a` is NULL or points to `n` readable `mm_allocation`s whose tags are valid.
unsafe fn allocation_args(
    a: *const mm_allocation,
    n: usize,
) -> Result<Option<Vec<marketplace_metering::types::UsageAllocation>>, ErrorData> {
    if n == 0 {
        return Ok(None);
    }
    count_arg(
        n,
        marketplace_metering::validate::MAX_USAGE_ALLOCATIONS,
        "n_allocations",
    )?;
    if a.is_null() {
        return Err(ErrorData::null("allocations"));
    }
    // SAFETY: per the contract above.
    let list = unsafe { std::slice::from_raw_parts(a, n) };
    let mut out = Vec::with_capacity(n);
    for x in list {
        out.push(Allocation {
            quantity: x.quantity,
            // SAFETY: per the contract above.
            tags: unsafe { tag_args(x.tags, x.n_tags) }?,
        });
    }
    Ok(allocations("allocations", &out)?)
}

/// Registers a customer for zero fill: from the current hour on, each of `dimensions`
/// (`n_dimensions` strings) is reported every hour, as 0 when there was no usage (only when
/// zero fill is on). The customer is given as for `mm_meter_record`.
///
/// Bad input → `MM_STATUS_INVALID_INPUT` naming the field. `meter` NULL, or `dimensions` NULL
/// with `n_dimensions` > 0, or a NULL dimension → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_register_customer(
    meter: *const mm_meter,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
    dimensions: *const *const c_char,
    n_dimensions: usize,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |h, m| {
        // SAFETY: NULL or NUL-terminated strings.
        let customer = unsafe {
            customer_arg(
                h.mode,
                customer_identifier,
                customer_aws_account_id,
                license_arn,
            )
        }?;
        count_arg(
            n_dimensions,
            marketplace_metering::validate::MAX_DIMENSIONS,
            "n_dimensions",
        )?;
        let mut dims: Vec<&str> = Vec::with_capacity(n_dimensions);
        if n_dimensions > 0 {
            if dimensions.is_null() {
                return Err(ErrorData::null("dimensions"));
            }
            // SAFETY: `dimensions` points to `n_dimensions` readable pointers.
            for &d in unsafe { std::slice::from_raw_parts(dimensions, n_dimensions) } {
                // SAFETY: NULL or a NUL-terminated string.
                dims.push(unsafe { ffi::str_arg(d, "dimension") }?);
            }
        }
        m.register_customer(customer, &dims)?;
        Ok(())
    })
}

fn summary(s: &FlushSummary) -> mm_flush_summary {
    mm_flush_summary {
        sealed: s.sealed,
        sent: s.sent,
        calls: s.calls,
        acked: s.acked,
        dead_lettered: s.dead_lettered,
        expired: s.expired,
        resent_unprocessed: s.resent_unprocessed,
        deferred: s.deferred,
        interrupted: s
            .interrupted
            .as_ref()
            .map_or(mm_status::Ok, |e| crate::error::status_of(e.error_code())),
    }
}

/// Seals what may be sealed and sends every sealed bucket now; blocks until done.
///
/// On success fills `*summary_out` (when it is not NULL). A retryable failure that outlasted
/// the client's retries (throttling, transport) is not a failure of the call: it stops the
/// flush early and is reported in `summary_out->interrupted`; the buckets stay sealed for the
/// next flush. Other failures (credentials, access, a closed meter: `MM_STATUS_INVALID_STATE`)
/// return their status and fill `*err_out` when it is not NULL. `meter` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Thread-safe (flushes of one meter run one at a time); not from
/// an event callback.
#[no_mangle]
pub extern "C" fn mm_meter_flush(
    meter: *const mm_meter,
    summary_out: *mut mm_flush_summary,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        let s = m.flush_blocking()?;
        if !summary_out.is_null() {
            // SAFETY: a valid, writable mm_flush_summary (checked non-NULL).
            unsafe { *summary_out = summary(&s) };
        }
        Ok(())
    })
}

/// Stops the background flusher and flushes what may be flushed (as `mm_meter_flush`); later
/// `mm_meter_record` and `mm_meter_flush` calls fail with `MM_STATUS_INVALID_STATE`. Unsealed
/// hours stay in the store (a file store sends them after a restart). The meter must still be
/// freed with `mm_meter_free`. `summary_out` may be NULL. `meter` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Thread-safe; not from an event callback.
#[no_mangle]
pub extern "C" fn mm_meter_close(
    meter: *const mm_meter,
    summary_out: *mut mm_flush_summary,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        let s = m.close_blocking()?;
        if !summary_out.is_null() {
            // SAFETY: a valid, writable mm_flush_summary (checked non-NULL).
            unsafe { *summary_out = summary(&s) };
        }
        Ok(())
    })
}

/// Sends chosen dead letters again: those matching every filter given — `reason` (a status
/// or error code such as `"CustomerNotSubscribed"`; NULL: any), the customer (given as for
/// `mm_meter_record`; all three NULL: any) and `hour` (any second of it, epoch seconds;
/// `MM_METER_ANY_HOUR`: any) — whose hour is still inside the service's window go back to
/// sealed, with their frozen quantity, and leave the dead-letter list; the next flush sends
/// them. Writes how many to `*count_out` when it is not NULL.
///
/// Bad input → `MM_STATUS_INVALID_INPUT` naming the argument; a store failure →
/// `MM_STATUS_INVALID_STATE`. `meter` NULL → `MM_STATUS_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn mm_meter_requeue(
    meter: *const mm_meter,
    reason: *const c_char,
    customer_identifier: *const c_char,
    customer_aws_account_id: *const c_char,
    license_arn: *const c_char,
    hour: i64,
    count_out: *mut usize,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        // SAFETY: NULL or NUL-terminated strings.
        let (reason, ci, acct, lic) = unsafe {
            (
                ffi::opt_str_arg(reason, "reason")?,
                ffi::opt_str_arg(customer_identifier, "customer_identifier")?,
                ffi::opt_str_arg(customer_aws_account_id, "customer_aws_account_id")?,
                ffi::opt_str_arg(license_arn, "license_arn")?,
            )
        };
        let filter = RequeueFilter::from_parts(
            reason.map(str::to_owned),
            ci.map(str::to_owned),
            acct.map(str::to_owned),
            lic.map(str::to_owned),
            (hour != MM_METER_ANY_HOUR).then_some(hour),
        )?;
        let n = m.requeue(&filter)?;
        if !count_out.is_null() {
            // SAFETY: a valid, writable size_t (checked non-NULL).
            unsafe { *count_out = n };
        }
        Ok(())
    })
}

fn counts(s: &MeterStatus) -> mm_meter_counts {
    mm_meter_counts {
        pending: s.pending,
        sealed: s.sealed,
        acked: s.acked,
        dead_lettered: s.dead_lettered,
        expired: s.expired,
        has_oldest_unsent_hour: s.oldest_unsent_hour.is_some(),
        oldest_unsent_hour: s.oldest_unsent_hour.unwrap_or(0),
    }
}

/// Fills `*counts_out` with the bucket counts per state and the oldest unsent hour (writing
/// events buffered in memory to the store first). `meter` or `counts_out` NULL →
/// `MM_STATUS_NULL_PARAMETER`; a store failure fills `*err_out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_status(
    meter: *const mm_meter,
    counts_out: *mut mm_meter_counts,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        if counts_out.is_null() {
            return Err(ErrorData::null("counts_out"));
        }
        let s = m.status()?;
        // SAFETY: a valid, writable mm_meter_counts (checked non-NULL).
        unsafe { *counts_out = counts(&s) };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// mm_dead_letters

/// One dead letter, as C strings.
#[derive(Debug)]
pub struct DeadLetterView {
    customer_identifier: Option<CString>,
    customer_aws_account_id: Option<CString>,
    license_arn: Option<CString>,
    dimension: CString,
    hour: i64,
    quantity: i64,
    reason: CString,
    message: CString,
    at: i64,
}

impl DeadLetterView {
    fn of(d: &DeadLetter) -> DeadLetterView {
        let (ci, acct, lic) = Customer::parts(&d.customer);
        DeadLetterView {
            customer_identifier: opt_c(ci),
            customer_aws_account_id: opt_c(acct),
            license_arn: opt_c(lic),
            dimension: cstring(&d.dimension),
            hour: d.hour,
            quantity: d.quantity,
            reason: cstring(&d.reason),
            message: cstring(&d.message),
            at: d.at,
        }
    }
}

/// The buckets the service did not meter, oldest first (a snapshot made by
/// `mm_meter_dead_letters`). Read with the `mm_dead_letters_*` accessors (an index out of
/// range gives NULL / 0); free with `mm_dead_letters_free`. Immutable; thread-safe to read.
pub struct mm_dead_letters {
    _private: [u8; 0],
}

impl Castable for mm_dead_letters {
    type Rust = Vec<DeadLetterView>;
}

/// Stores a snapshot of every dead letter in `*list_out` (free it with
/// `mm_dead_letters_free`). `meter` or `list_out` NULL → `MM_STATUS_NULL_PARAMETER`; a store
/// failure fills `*err_out`. Thread-safe.
#[no_mangle]
pub extern "C" fn mm_meter_dead_letters(
    meter: *const mm_meter,
    list_out: *mut *mut mm_dead_letters,
    err_out: *mut *mut mm_error,
) -> mm_status {
    with_meter(meter, err_out, |_, m| {
        ffi::check_out(list_out, "list_out")?;
        let list: Vec<DeadLetterView> = m.dead_letters()?.iter().map(DeadLetterView::of).collect();
        // SAFETY: checked non-NULL above.
        unsafe { ffi::write_out::<mm_dead_letters>(list_out, list) };
        Ok(())
    })
}

/// Frees a dead-letter list and every string read from it. NULL does nothing.
#[no_mangle]
pub extern "C" fn mm_dead_letters_free(list: *mut mm_dead_letters) {
    // SAFETY: NULL or a list made by mm_meter_dead_letters, freed once.
    ffi_boundary!(() => unsafe { ffi::free(list) })
}

fn letter<'a>(list: *const mm_dead_letters, i: usize) -> Option<&'a DeadLetterView> {
    // SAFETY: NULL or a live list.
    unsafe { ffi::opt_ref(list) }.and_then(|l| l.get(i))
}

/// The number of dead letters (0 if `list` is NULL). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_dead_letters_count(list: *const mm_dead_letters) -> usize {
    // SAFETY: NULL or a live list.
    ffi_boundary!(0 => unsafe { ffi::opt_ref(list) }.map_or(0, Vec::len))
}

/// Dead letter `i`'s customer identifier (NULL for an account customer). Owned by `list`.
#[no_mangle]
pub extern "C" fn mm_dead_letters_customer_identifier(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| opt_ptr(&d.customer_identifier)))
}

/// Dead letter `i`'s customer AWS account id (NULL for a customer identifier). Owned by `list`.
#[no_mangle]
pub extern "C" fn mm_dead_letters_customer_aws_account_id(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| opt_ptr(&d.customer_aws_account_id)))
}

/// Dead letter `i`'s license ARN (NULL for a customer identifier). Owned by `list`.
#[no_mangle]
pub extern "C" fn mm_dead_letters_license_arn(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| opt_ptr(&d.license_arn)))
}

/// Dead letter `i`'s dimension. Owned by `list`; NULL if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_dimension(
    list: *const mm_dead_letters,
    i: usize,
) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| d.dimension.as_ptr()))
}

/// Dead letter `i`'s hour (epoch seconds); 0 if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_hour(list: *const mm_dead_letters, i: usize) -> i64 {
    ffi_boundary!(0 => letter(list, i).map_or(0, |d| d.hour))
}

/// Dead letter `i`'s frozen quantity; 0 if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_quantity(list: *const mm_dead_letters, i: usize) -> i64 {
    ffi_boundary!(0 => letter(list, i).map_or(0, |d| d.quantity))
}

/// Dead letter `i`'s reason: the record's Status (`"CustomerNotSubscribed"`, …) or the error
/// code. Owned by `list`; NULL if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_reason(list: *const mm_dead_letters, i: usize) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| d.reason.as_ptr()))
}

/// Dead letter `i`'s details. Owned by `list`; NULL if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_message(list: *const mm_dead_letters, i: usize) -> *const c_char {
    ffi_boundary!(std::ptr::null() => letter(list, i).map_or(std::ptr::null(), |d| d.message.as_ptr()))
}

/// When dead letter `i` was dead-lettered (epoch seconds, meter clock); 0 if out of range.
#[no_mangle]
pub extern "C" fn mm_dead_letters_at(list: *const mm_dead_letters, i: usize) -> i64 {
    ffi_boundary!(0 => letter(list, i).map_or(0, |d| d.at))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
