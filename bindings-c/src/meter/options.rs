// SPDX-License-Identifier: Apache-2.0
// mm_meter_config: a meter's options (store, product code, mode, durability, timings, callback, clock).

use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;
use std::time::Duration;

use marketplace_metering::meter::{Durability, ManualClock, MeterMode};

use super::*;
use crate::error::{mm_status, ErrorData};
use crate::ffi::{self, Castable};

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
    /// At once, buffered in memory and written at every flush, at `mm_meter_free`, and at
    /// `exit()` (a return from `main`) for a meter not yet freed: a crash, a signal that kills
    /// the process, or `_exit()` loses the events recorded since the last of those.
    Memory = 2,
}

/// What an `mm_meter_config` holds.
#[derive(Clone, Debug, Default)]
pub struct MeterSettings {
    pub(crate) path: Option<PathBuf>,
    pub(crate) product_code: Option<String>,
    pub(crate) mode: Option<MeterMode>,
    pub(crate) durability: Option<Durability>,
    pub(crate) grace: Option<Duration>,
    pub(crate) zero_fill: bool,
    pub(crate) power_loss_safe: Option<bool>,
    pub(crate) flush_interval: Option<Duration>,
    pub(crate) callback: Option<Callback>,
    pub(crate) clock: Option<ManualClock>,
    pub(crate) database_url: Option<String>,
    pub(crate) replica_id: Option<String>,
    pub(crate) fleet_senders: Option<u32>,
    pub(crate) fleet_lease: Option<Duration>,
    pub(crate) start_hour: Option<i64>,
}

/// A meter configuration being built: `mm_meter_config_new`, the setters, then
/// `mm_meter_new` (which copies it); free it with `mm_meter_config_free`.
///
/// Defaults: in-memory store (tests only: nothing survives the process), no product code,
/// `MM_METER_MODE_BATCH`, `MM_METER_DURABILITY_DURABLE`, 300 s grace, no zero fill, a
/// background flush every 60 s on the library's runtime (0 seconds turns it off), no callback,
/// the system clock. Setters are not thread-safe on one
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
    ffi::set(config, "config", f)
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

/// Fleet store: how many replicas send at a time per product (default 1, so the fleet
/// calls the service at the rate one meter does). 0 is refused by `mm_meter_new` (field
/// `fleet_senders`): nobody would send. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not
/// thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_fleet_senders(
    config: *mut mm_meter_config,
    senders: u32,
) -> mm_status {
    set(config, |c| {
        c.fleet_senders = Some(senders);
        Ok(())
    })
}

/// Fleet store: how long a sender's claim on buckets lasts, in milliseconds (default
/// 120,000); a dead sender's buckets are sent again, identical, by another replica after
/// it. 0 and more than 1,800,000 (30 minutes) are refused by `mm_meter_new` (field
/// `fleet_lease`). `config` NULL →
/// `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_fleet_lease_millis(
    config: *mut mm_meter_config,
    millis: u64,
) -> mm_status {
    set(config, |c| {
        c.fleet_lease = Some(Duration::from_millis(millis));
        Ok(())
    })
}

/// Fleet store: the cut-over from a SQLite meter. The first hour this store counts (epoch
/// seconds, rounded down to the hour). Before it `mm_meter_record` refuses every event, and
/// after it an event of an earlier hour still within its grace (`MM_STATUS_INVALID_INPUT`,
/// field `timestamp`): they belong to the SQLite meter. A late event of an earlier hour is
/// counted in the current hour, as any late event.
/// `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_start_hour(
    config: *mut mm_meter_config,
    epoch_seconds: i64,
) -> mm_status {
    set(config, |c| {
        c.start_hour = Some(epoch_seconds);
        Ok(())
    })
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

/// Sets the time after an hour's end before it is sealed, in seconds (default 300). At most
/// 14400 (the service's window less two hours, so an hour is left to send in): more makes
/// `mm_meter_new` fail with `MM_STATUS_INVALID_INPUT` naming `grace`.
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

/// The SQLite store's commits: `true` (default) fsyncs each one, which survives the machine
/// losing power; `false` commits without an fsync (SQLite's `synchronous=NORMAL` in WAL
/// mode): a commit survives the process being killed, but the last commits before the
/// machine itself fails may be lost, and commits are several times faster. For a store on a
/// disk that does not outlive its machine (a container's ephemeral storage) `true` protects
/// nothing. `mm_meter_new` refuses `false` with the fleet store
/// (`MM_STATUS_INVALID_INPUT`, field `power_loss_safe`): its commits are as durable as the
/// database makes them. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on one
/// config.
#[no_mangle]
pub extern "C" fn mm_meter_config_set_power_loss_safe(
    config: *mut mm_meter_config,
    power_loss_safe: bool,
) -> mm_status {
    set(config, |c| {
        c.power_loss_safe = Some(power_loss_safe);
        Ok(())
    })
}

/// Flushes in the background on the library's runtime every `seconds` (default 60, as in
/// every face; 0: never). More than 1800 makes `mm_meter_new` fail with
/// `MM_STATUS_INVALID_INPUT` naming `flush_interval`: window alarms are raised by flushes. `config` NULL → `MM_STATUS_NULL_PARAMETER`. Not thread-safe on
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
/// `mm_meter_flush`/`mm_meter_close`/`mm_meter_get_status`, or the meter's event thread
/// (`mm-events`), which delivers the background flush's events in order as they come (they
/// may arrive after events reported on the other threads). So it and `user_data` must be
/// thread-safe, and it must return quickly
/// and never unwind (no C++ exception, no longjmp). While calling it the meter holds no lock
/// that `mm_meter_get_status`, `mm_meter_get_dead_letters`, `mm_meter_requeue` or
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
