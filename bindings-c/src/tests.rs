// SPDX-License-Identifier: Apache-2.0
// Unit tests of the boundary: panics, NULL pointers, invalid UTF-8, outputs only on success.
// Over 600 lines: tests only, one per exported function family, each self-contained.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use crate::*;

fn s(p: *const c_char) -> String {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

const BAD_UTF8: &[u8] = b"\xff\xfe\0";

fn bad() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

/// A client pointed at a closed port: calls that fail validation never reach it.
fn offline_client() -> *mut mm_client {
    let cfg = mm_config_new();
    assert_eq!(
        mm_config_set_region(cfg, c"us-east-1".as_ptr()),
        mm_status::Ok
    );
    assert_eq!(
        mm_config_set_endpoint_url(cfg, c"http://127.0.0.1:9".as_ptr()),
        mm_status::Ok
    );
    assert_eq!(
        mm_config_set_credentials(cfg, c"AKID".as_ptr(), c"secret".as_ptr(), null()),
        mm_status::Ok
    );
    assert_eq!(mm_config_set_max_attempts(cfg, 1), mm_status::Ok);
    let mut client = null_mut();
    assert_eq!(mm_client_new(cfg, &mut client, null_mut()), mm_status::Ok);
    mm_config_free(cfg);
    assert!(!client.is_null());
    client
}

#[test]
fn a_panic_becomes_a_status_and_an_error() {
    let mut err: *mut mm_error = null_mut();
    let st = panic::boundary(&mut err, || panic!("boom"));
    assert_eq!(st, mm_status::Panic);
    assert_eq!(mm_error_code(err), mm_status::Panic);
    assert_eq!(s(mm_error_code_str(err)), "Panic");
    assert!(s(mm_error_message(err)).contains("panic"));
    mm_error_free(err);
    // Without err_out the status alone comes back.
    assert_eq!(
        panic::boundary(null_mut(), || panic!("boom")),
        mm_status::Panic
    );
    // Accessor style: the default comes back.
    assert_eq!(panic::value(7u32, || panic!("boom")), 7);
    assert!(ffi_boundary!(std::ptr::null::<c_char>() => panic!("boom")).is_null());
}

#[test]
fn null_handles_and_strings_are_null_parameter() {
    let cfg = mm_config_new();
    assert_eq!(
        mm_config_set_region(null_mut(), c"x".as_ptr()),
        mm_status::NullParameter
    );
    assert_eq!(mm_config_set_region(cfg, null()), mm_status::NullParameter);
    assert_eq!(
        mm_config_set_endpoint_url(cfg, null()),
        mm_status::NullParameter
    );
    assert_eq!(mm_config_set_profile(cfg, null()), mm_status::NullParameter);
    assert_eq!(
        mm_config_set_credentials(cfg, null(), c"s".as_ptr(), null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_config_set_max_attempts(null_mut(), 3),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_config_set_use_fips(null_mut(), true),
        mm_status::NullParameter
    );

    let mut client: *mut mm_client = null_mut();
    let mut err: *mut mm_error = null_mut();
    assert_eq!(
        mm_client_new(null(), &mut client, &mut err),
        mm_status::NullParameter
    );
    assert!(client.is_null(), "outputs are written only on success");
    assert_eq!(mm_error_code(err), mm_status::NullParameter);
    assert_eq!(s(mm_error_code_str(err)), "NullParameter");
    assert!(s(mm_error_message(err)).contains("config"));
    mm_error_free(err);
    assert_eq!(
        mm_client_new(cfg, null_mut(), null_mut()),
        mm_status::NullParameter
    );

    let rec = mm_usage_record_new();
    assert_eq!(
        mm_usage_record_set_dimension(rec, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_usage_record_add_allocation(rec, 1, null(), 2),
        mm_status::NullParameter
    );
    let tags = [mm_tag {
        key: c"k".as_ptr(),
        value: null(),
    }];
    assert_eq!(
        mm_usage_record_add_allocation(rec, 1, tags.as_ptr(), 1),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_usage_record_add_allocation(rec, 1, null(), 0),
        mm_status::Ok
    );
    let input = mm_batch_meter_usage_input_new();
    assert_eq!(
        mm_batch_meter_usage_input_add_record(input, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_batch_meter_usage_input_add_record(null_mut(), rec),
        mm_status::NullParameter
    );

    let client = offline_client();
    let mut out: *mut mm_batch_meter_usage_output = null_mut();
    assert_eq!(
        mm_client_batch_meter_usage(null(), input, &mut out, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_client_batch_meter_usage(client, null(), &mut out, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_client_batch_meter_usage(client, input, null_mut(), null_mut()),
        mm_status::NullParameter
    );
    assert!(out.is_null());
    let mut mout = null_mut();
    assert_eq!(
        mm_client_meter_usage(client, null(), &mut mout, null_mut()),
        mm_status::NullParameter
    );
    let mut rout = null_mut();
    assert_eq!(
        mm_client_resolve_customer(client, null(), &mut rout, null_mut()),
        mm_status::NullParameter
    );
    let mut gout = null_mut();
    assert_eq!(
        mm_client_register_usage(null(), null(), &mut gout, null_mut()),
        mm_status::NullParameter
    );

    // Accessors and frees accept NULL.
    assert_eq!(mm_batch_meter_usage_output_result_count(null()), 0);
    assert_eq!(
        mm_batch_meter_usage_output_result_status(null(), 0),
        mm_usage_record_status::Unknown
    );
    assert!(mm_batch_meter_usage_output_result_metering_record_id(null(), 0).is_null());
    assert!(mm_batch_meter_usage_output_unprocessed_input(null()).is_null());
    assert!(mm_meter_usage_output_metering_record_id(null()).is_null());
    assert!(mm_resolve_customer_output_customer_identifier(null()).is_null());
    assert!(mm_register_usage_output_signature(null()).is_null());
    let mut t = 0i64;
    assert!(!mm_register_usage_output_public_key_rotation_timestamp(
        null(),
        &mut t
    ));
    mm_batch_meter_usage_output_free(null_mut());
    mm_meter_usage_output_free(null_mut());
    mm_resolve_customer_output_free(null_mut());
    mm_register_usage_output_free(null_mut());
    mm_batch_meter_usage_input_free(null_mut());
    mm_meter_usage_input_free(null_mut());
    mm_resolve_customer_input_free(null_mut());
    mm_register_usage_input_free(null_mut());
    mm_usage_record_free(null_mut());
    mm_config_free(null_mut());
    mm_client_free(null_mut());

    mm_batch_meter_usage_input_free(input);
    mm_usage_record_free(rec);
    mm_client_free(client);
    mm_config_free(cfg);
}

#[test]
fn invalid_utf8_is_invalid_input() {
    let cfg = mm_config_new();
    assert_eq!(mm_config_set_region(cfg, bad()), mm_status::InvalidInput);
    assert_eq!(
        mm_config_set_credentials(cfg, c"a".as_ptr(), c"b".as_ptr(), bad()),
        mm_status::InvalidInput
    );
    let input = mm_batch_meter_usage_input_new();
    assert_eq!(
        mm_batch_meter_usage_input_add_usage(input, 1, bad(), c"users".as_ptr(), 1),
        mm_status::InvalidInput
    );
    assert_eq!(
        mm_batch_meter_usage_input_record_count(input),
        0,
        "nothing appended on failure"
    );
    let rc = mm_resolve_customer_input_new();
    assert_eq!(
        mm_resolve_customer_input_set_registration_token(rc, bad()),
        mm_status::InvalidInput
    );
    assert_eq!(mm_config_set_retry_mode(cfg, 7), mm_status::InvalidConfig);
    assert_eq!(
        mm_config_set_retry_mode(cfg, mm_retry_mode::Adaptive as u32),
        mm_status::Ok
    );
    mm_resolve_customer_input_free(rc);
    mm_batch_meter_usage_input_free(input);
    mm_config_free(cfg);
}

#[test]
fn config_errors_fill_mm_error() {
    let cfg = mm_config_new();
    mm_config_set_region(cfg, c"us-east-1".as_ptr());
    mm_config_set_endpoint_url(cfg, c"http://127.0.0.1:9".as_ptr());
    mm_config_set_credentials(cfg, c"a".as_ptr(), c"b".as_ptr(), null());
    mm_config_set_use_fips(cfg, true);
    let mut client = null_mut();
    let mut err = null_mut();
    assert_eq!(
        mm_client_new(cfg, &mut client, &mut err),
        mm_status::InvalidConfig
    );
    assert!(client.is_null());
    assert_eq!(s(mm_error_code_str(err)), "InvalidConfig");
    assert_eq!(mm_error_http_status(err), 0);
    assert!(mm_error_request_id(err).is_null());
    mm_error_free(err);
    mm_config_free(cfg);
}

#[test]
fn invalid_input_names_the_field_and_sends_nothing() {
    let client = offline_client();
    let input = mm_batch_meter_usage_input_new();
    mm_batch_meter_usage_input_set_product_code(input, c"prod-1234".as_ptr());
    mm_batch_meter_usage_input_add_usage(
        input,
        1_700_000_000,
        c"cust-1".as_ptr(),
        c"users".as_ptr(),
        1,
    );
    mm_batch_meter_usage_input_add_usage(
        input,
        1_700_000_000,
        c"cust-2".as_ptr(),
        c"users".as_ptr(),
        -1,
    );
    let mut out = null_mut();
    let mut err = null_mut();
    assert_eq!(
        mm_client_batch_meter_usage(client, input, &mut out, &mut err),
        mm_status::InvalidInput
    );
    assert!(out.is_null());
    assert_eq!(s(mm_error_field(err)), "UsageRecords[1].Quantity");
    assert_eq!(mm_error_attempts(err), 0);
    mm_error_free(err);

    let rec = mm_usage_record_new();
    mm_usage_record_set_customer_identifier(rec, c"cust-1".as_ptr());
    mm_usage_record_set_dimension(rec, c"users".as_ptr());
    let empty = mm_batch_meter_usage_input_new();
    mm_batch_meter_usage_input_add_record(empty, rec);
    let mut err = null_mut();
    assert_eq!(
        mm_client_batch_meter_usage(client, empty, &mut out, &mut err),
        mm_status::InvalidInput
    );
    assert_eq!(s(mm_error_field(err)), "UsageRecords[0].Timestamp");
    mm_error_free(err);

    let reg = mm_register_usage_input_new();
    mm_register_usage_input_set_product_code(reg, c"prod-1234".as_ptr());
    mm_register_usage_input_set_public_key_version(reg, 0);
    let mut gout = null_mut();
    let mut err = null_mut();
    assert_eq!(
        mm_client_register_usage(client, reg, &mut gout, &mut err),
        mm_status::InvalidInput
    );
    assert_eq!(s(mm_error_field(err)), "PublicKeyVersion");
    mm_error_free(err);

    // Nothing listens on port 9: a valid input reaches the transport and fails there.
    let valid = mm_batch_meter_usage_input_new();
    mm_batch_meter_usage_input_set_product_code(valid, c"prod-1234".as_ptr());
    mm_batch_meter_usage_input_add_usage(
        valid,
        1_700_000_000,
        c"cust-1".as_ptr(),
        c"users".as_ptr(),
        1,
    );
    let mut err = null_mut();
    let st = mm_client_batch_meter_usage(client, valid, &mut out, &mut err);
    assert_eq!(st, mm_status::Dispatch, "{}", s(mm_error_message(err)));
    assert!(out.is_null());
    assert_eq!(mm_error_attempts(err), 1);
    mm_error_free(err);
    mm_batch_meter_usage_input_free(valid);

    mm_register_usage_input_free(reg);
    mm_batch_meter_usage_input_free(empty);
    mm_usage_record_free(rec);
    mm_batch_meter_usage_input_free(input);
    mm_client_free(client);
}

#[test]
fn version_is_the_crate_version() {
    assert_eq!(s(mm_version()), env!("CARGO_PKG_VERSION"));
    mm_shutdown();
}

// ---------------------------------------------------------------------------------------------
// The usage meter: configuration, NULL and bad input, events, the callback gate.

use std::ffi::c_void;
use std::sync::Mutex;

/// Events seen by `collect`, as (kind, kind_str, customer, dimension, hour, quantity, counted_in_hour).
type Seen = Mutex<Vec<(mm_meter_event_kind, String, String, String, i64, i64, i64)>>;

unsafe extern "C" fn collect(ev: *const mm_meter_event, user_data: *mut c_void) {
    let ev = unsafe { &*ev };
    let seen = unsafe { &*(user_data as *const Seen) };
    let opt = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            s(p)
        }
    };
    seen.lock().unwrap().push((
        ev.kind,
        s(ev.kind_str),
        opt(ev.customer_identifier),
        s(ev.dimension),
        ev.hour,
        ev.quantity,
        ev.counted_in_hour,
    ));
}

fn err_field(err: *mut mm_error) -> String {
    let f = mm_error_field(err);
    let out = if f.is_null() { String::new() } else { s(f) };
    if !out.is_empty() {
        // The message names the field once, at its start.
        let m = s(mm_error_message(err));
        assert!(m.starts_with(&format!("{out}: ")), "{m}");
        assert!(!m[out.len()..].contains(&out), "{m}");
    }
    mm_error_free(err);
    out
}

/// A memory meter on an offline client with a manual clock at `t`.
fn memory_meter(clock: *const mm_clock, seen: Option<&Seen>) -> (*mut mm_client, *mut mm_meter) {
    let client = offline_client();
    let cfg = mm_meter_config_new();
    assert_eq!(
        mm_meter_config_set_product_code(cfg, c"prod-1234".as_ptr()),
        mm_status::Ok
    );
    assert_eq!(mm_meter_config_set_clock(cfg, clock), mm_status::Ok);
    assert_eq!(mm_meter_config_set_grace_seconds(cfg, 60), mm_status::Ok);
    if let Some(seen) = seen {
        let ud = seen as *const Seen as *mut c_void;
        assert_eq!(
            mm_meter_config_set_event_callback(cfg, Some(collect), ud),
            mm_status::Ok
        );
    }
    let mut meter = null_mut();
    assert_eq!(
        mm_meter_new(client, cfg, &mut meter, null_mut()),
        mm_status::Ok
    );
    mm_meter_config_free(cfg);
    (client, meter)
}

#[test]
fn meter_config_setters_check_null_and_enums() {
    let cfg = mm_meter_config_new();
    assert_eq!(
        mm_meter_config_set_mode(null_mut(), 0),
        mm_status::NullParameter
    );
    assert_eq!(mm_meter_config_set_mode(cfg, 7), mm_status::InvalidInput);
    assert_eq!(
        mm_meter_config_set_durability(cfg, 3),
        mm_status::InvalidInput
    );
    assert_eq!(
        mm_meter_config_set_durability(cfg, mm_meter_durability::Group as u32),
        mm_status::Ok
    );
    assert_eq!(
        mm_meter_config_set_product_code(cfg, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_product_code(cfg, bad()),
        mm_status::InvalidInput
    );
    assert_eq!(
        mm_meter_config_set_path(cfg, c"".as_ptr()),
        mm_status::InvalidInput
    );
    assert_eq!(mm_meter_config_set_path(cfg, null()), mm_status::Ok);
    assert_eq!(
        mm_meter_config_set_database_url(null_mut(), c"postgresql://u@h/db".as_ptr()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_database_url(cfg, bad()),
        mm_status::InvalidInput
    );
    assert_eq!(mm_meter_config_set_database_url(cfg, null()), mm_status::Ok);
    assert_eq!(
        mm_meter_config_set_replica_id(cfg, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_replica_id(cfg, bad()),
        mm_status::InvalidInput
    );
    assert_eq!(
        mm_meter_config_set_grace_seconds(null_mut(), 1),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_zero_fill(null_mut(), true),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_power_loss_safe(null_mut(), false),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_flush_interval_seconds(null_mut(), 1),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_event_callback(null_mut(), None, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_config_set_clock(null_mut(), null()),
        mm_status::NullParameter
    );

    // The MeterUsage mode needs a product code: the core says so, through the C status.
    assert_eq!(
        mm_meter_config_set_mode(cfg, mm_meter_mode::MeterUsage as u32),
        mm_status::Ok
    );
    let client = offline_client();
    let mut meter: *mut mm_meter = null_mut();
    let (st, err) = new_meter_refused(client, cfg);
    assert_eq!(st, mm_status::InvalidConfig);
    mm_error_free(err);
    assert_eq!(
        mm_meter_new(null(), cfg, &mut meter, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_new(client, null(), &mut meter, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_new(client, cfg, null_mut(), null_mut()),
        mm_status::NullParameter
    );
    mm_meter_config_free(cfg);
    mm_meter_config_free(null_mut());
    mm_client_free(client);
}

/// `mm_meter_new` expected to fail: its status and error; no meter was written.
fn new_meter_refused(
    client: *const mm_client,
    cfg: *const mm_meter_config,
) -> (mm_status, *mut mm_error) {
    let mut meter: *mut mm_meter = null_mut();
    let mut err = null_mut();
    let st = mm_meter_new(client, cfg, &mut meter, &mut err);
    assert!(meter.is_null(), "outputs are written only on success");
    (st, err)
}

/// Giving up the fsync per commit is a SQLite setting: with the fleet store it is refused,
/// naming it, before any connection to the database is tried.
#[test]
fn power_loss_safe_off_is_refused_with_the_fleet_store() {
    let cfg = mm_meter_config_new();
    assert_eq!(
        mm_meter_config_set_database_url(cfg, c"postgresql://nobody@127.0.0.1:1/none".as_ptr()),
        mm_status::Ok
    );
    assert_eq!(
        mm_meter_config_set_power_loss_safe(cfg, false),
        mm_status::Ok
    );
    let client = offline_client();
    let (st, err) = new_meter_refused(client, cfg);
    assert_eq!(st, mm_status::InvalidInput);
    assert_eq!(err_field_and_message(err).0, "power_loss_safe");
    mm_meter_config_free(cfg);
    mm_client_free(client);
}

#[test]
fn clock_reads_sets_and_advances() {
    let c = mm_clock_new(7_200);
    assert_eq!(mm_clock_now(c), 7_200);
    assert_eq!(mm_clock_advance(c, 3_600), mm_status::Ok);
    assert_eq!(mm_clock_now(c), 10_800);
    assert_eq!(mm_clock_set(c, 5), mm_status::Ok);
    assert_eq!(mm_clock_now(c), 5);
    assert_eq!(mm_clock_set(null(), 5), mm_status::NullParameter);
    assert_eq!(mm_clock_advance(null(), 5), mm_status::NullParameter);
    assert_eq!(mm_clock_now(null()), 0);
    mm_clock_free(c);
    mm_clock_free(null_mut());
}

/// The error's field and message (freeing it).
fn err_field_and_message(err: *mut mm_error) -> (String, String) {
    let (f, m) = (mm_error_field(err), mm_error_message(err));
    let out = (
        if f.is_null() { String::new() } else { s(f) },
        if m.is_null() { String::new() } else { s(m) },
    );
    mm_error_free(err);
    out
}

/// A usage event for `cust-1` (or the account customer given), `dim`, `q`, now.
fn event(dim: *const c_char, q: i64) -> *mut mm_usage_event {
    let e = mm_usage_event_new();
    assert_eq!(
        mm_usage_event_set_customer_identifier(e, c"cust-1".as_ptr()),
        mm_status::Ok
    );
    if !dim.is_null() {
        assert_eq!(mm_usage_event_set_dimension(e, dim), mm_status::Ok);
    }
    assert_eq!(mm_usage_event_set_quantity(e, q), mm_status::Ok);
    e
}

/// Records `e` (freeing it); the status and, on failure, the error's field.
fn record(meter: *const mm_meter, e: *mut mm_usage_event) -> (mm_status, String) {
    let mut err = null_mut();
    let st = mm_meter_record(meter, e, &mut err);
    mm_usage_event_free(e);
    let field = if st == mm_status::Ok {
        String::new()
    } else {
        err_field(err)
    };
    (st, field)
}

/// A pending and an oldest-unsent-hour read through `mm_meter_get_status`.
fn pending(meter: *const mm_meter) -> (u64, Option<i64>) {
    let mut st = null_mut();
    assert_eq!(
        mm_meter_get_status(meter, &mut st, null_mut()),
        mm_status::Ok
    );
    let mut hour = 0;
    let has = mm_meter_status_oldest_unsent_hour(st, &mut hour);
    let out = (mm_meter_status_pending_count(st), has.then_some(hour));
    mm_meter_status_free(st);
    out
}

#[test]
fn usage_event_setters_refuse_null_and_bad_utf8_naming_the_argument() {
    let e = mm_usage_event_new();
    let null_named = |st: mm_status, name: &str| {
        assert_eq!(st, mm_status::NullParameter, "{name}");
    };
    null_named(
        mm_usage_event_set_customer_identifier(null_mut(), c"c".as_ptr()),
        "event",
    );
    null_named(mm_usage_event_set_customer_identifier(e, null()), "id");
    null_named(
        mm_usage_event_set_customer_aws_account_id(e, null()),
        "acct",
    );
    null_named(
        mm_usage_event_set_customer_aws_account_id(null_mut(), c"1".as_ptr()),
        "acct",
    );
    null_named(mm_usage_event_set_license_arn(e, null()), "lic");
    null_named(
        mm_usage_event_set_license_arn(null_mut(), c"a".as_ptr()),
        "lic",
    );
    null_named(mm_usage_event_set_dimension(e, null()), "dim");
    null_named(
        mm_usage_event_set_dimension(null_mut(), c"d".as_ptr()),
        "dim",
    );
    null_named(mm_usage_event_set_quantity(null_mut(), 1), "q");
    null_named(mm_usage_event_set_timestamp(null_mut(), 1), "ts");
    null_named(mm_usage_event_clear_timestamp(null_mut()), "clear ts");
    null_named(
        mm_usage_event_add_allocation(null_mut(), 1, null(), 0),
        "alloc",
    );
    null_named(mm_usage_event_add_allocation(e, 1, null(), 2), "tags");
    null_named(mm_usage_event_clear_allocations(null_mut()), "clear allocs");
    assert_eq!(
        mm_usage_event_set_dimension(e, bad()),
        mm_status::InvalidInput
    );
    assert_eq!(
        mm_usage_event_set_license_arn(e, bad()),
        mm_status::InvalidInput
    );
    // A tag count no allocation can hold is refused before anything is read.
    assert_eq!(
        mm_usage_event_add_allocation(e, 1, c"x".as_ptr().cast(), usize::MAX),
        mm_status::InvalidInput
    );
    // More allocations than the service takes: refused at the one too many, naming them.
    let cap = marketplace_metering::validate::MAX_USAGE_ALLOCATIONS;
    for _ in 0..cap {
        assert_eq!(
            mm_usage_event_add_allocation(e, 1, null(), 0),
            mm_status::Ok
        );
    }
    assert_eq!(
        mm_usage_event_add_allocation(e, 1, null(), 0),
        mm_status::InvalidInput
    );
    assert_eq!(mm_usage_event_clear_allocations(e), mm_status::Ok);
    assert_eq!(
        mm_usage_event_add_allocation(e, 1, null(), 0),
        mm_status::Ok
    );
    mm_usage_event_free(e);
    mm_usage_event_free(null_mut());
}

#[test]
fn record_names_the_bad_field_and_records_nothing() {
    let clock = mm_clock_new(100 * 3600 + 10);
    let (client, meter) = memory_meter(clock, None);
    let u = c"users".as_ptr();
    let acct = c"111122223333".as_ptr();
    let lic = c"arn:aws:license-manager::111122223333:license:l-1".as_ptr();
    assert_eq!(
        record(meter, event(u, -1)),
        (mm_status::InvalidInput, "quantity".into())
    );
    // No dimension, no quantity, no customer: each refused naming what is missing.
    assert_eq!(
        record(meter, event(null(), 1)),
        (mm_status::InvalidInput, "dimension".into())
    );
    let e = mm_usage_event_new();
    assert_eq!(mm_usage_event_set_dimension(e, u), mm_status::Ok);
    assert_eq!(mm_usage_event_set_quantity(e, 1), mm_status::Ok);
    assert_eq!(
        record(meter, e),
        (mm_status::InvalidInput, "customer_identifier".into())
    );
    let e = mm_usage_event_new();
    assert_eq!(
        mm_usage_event_set_customer_identifier(e, acct),
        mm_status::Ok
    );
    assert_eq!(mm_usage_event_set_dimension(e, u), mm_status::Ok);
    assert_eq!(
        record(meter, e),
        (mm_status::InvalidInput, "quantity".into())
    );
    assert_eq!(
        record(meter, event(c"".as_ptr(), 1)),
        (mm_status::InvalidInput, "dimension".into())
    );
    // NULL meter or event: NULL_PARAMETER, the message naming the argument.
    let e = event(u, 1);
    let mut err = null_mut();
    assert_eq!(
        mm_meter_record(null(), e, &mut err),
        mm_status::NullParameter
    );
    assert!(err_field_and_message(err).1.contains("meter"));
    let mut err = null_mut();
    assert_eq!(
        mm_meter_record(meter, null(), &mut err),
        mm_status::NullParameter
    );
    assert!(err_field_and_message(err).1.contains("event"));
    mm_usage_event_free(e);
    let tags = [mm_tag {
        key: c"team".as_ptr(),
        value: c"red".as_ptr(),
    }];
    let with_allocs = |qs: &[i64]| {
        let e = event(u, 3);
        for &q in qs {
            assert_eq!(
                mm_usage_event_add_allocation(e, q, tags.as_ptr(), 1),
                mm_status::Ok
            );
        }
        e
    };
    assert_eq!(
        record(meter, with_allocs(&[-2])),
        (
            mm_status::InvalidInput,
            "allocations[0].AllocatedUsageQuantity".into()
        )
    );
    assert_eq!(
        record(meter, with_allocs(&[2])),
        (mm_status::InvalidInput, "allocations".into())
    );
    // A bad dimension is `dimension` whichever customer kind (each takes its own path in the
    // core's validation), never the model's `Dimension`.
    for (account, allocs) in [(false, 0), (false, 1), (true, 0), (true, 1)] {
        let e = mm_usage_event_new();
        if account {
            assert_eq!(
                mm_usage_event_set_customer_aws_account_id(e, acct),
                mm_status::Ok
            );
            assert_eq!(mm_usage_event_set_license_arn(e, lic), mm_status::Ok);
        } else {
            assert_eq!(
                mm_usage_event_set_customer_identifier(e, c"cust-1".as_ptr()),
                mm_status::Ok
            );
        }
        assert_eq!(mm_usage_event_set_dimension(e, c"".as_ptr()), mm_status::Ok);
        assert_eq!(mm_usage_event_set_quantity(e, 1), mm_status::Ok);
        for _ in 0..allocs {
            assert_eq!(
                mm_usage_event_add_allocation(e, 1, tags.as_ptr(), 1),
                mm_status::Ok
            );
        }
        assert_eq!(
            record(meter, e),
            (mm_status::InvalidInput, "dimension".into()),
            "account customer: {account}, allocations: {allocs}"
        );
    }
    // Nothing was recorded by the failures.
    assert_eq!(pending(meter), (0, None));

    // Both customer kinds: refused rather than one of them dropped.
    let e = event(u, 2);
    assert_eq!(
        mm_usage_event_set_customer_aws_account_id(e, acct),
        mm_status::Ok
    );
    assert_eq!(mm_usage_event_set_license_arn(e, lic), mm_status::Ok);
    assert_eq!(
        record(meter, e),
        (mm_status::InvalidInput, "customer_identifier".into())
    );

    // Good ones: an identifier with allocations, an account, one event recorded twice and,
    // with its timestamp cleared, at now.
    assert_eq!(record(meter, with_allocs(&[1, 2])).0, mm_status::Ok);
    let e = mm_usage_event_new();
    assert_eq!(mm_usage_event_set_dimension(e, u), mm_status::Ok);
    assert_eq!(mm_usage_event_set_quantity(e, 2), mm_status::Ok);
    assert_eq!(
        mm_usage_event_set_customer_aws_account_id(e, acct),
        mm_status::Ok
    );
    assert_eq!(mm_usage_event_set_license_arn(e, lic), mm_status::Ok);
    assert_eq!(mm_meter_record(meter, e, null_mut()), mm_status::Ok);
    assert_eq!(mm_meter_record(meter, e, null_mut()), mm_status::Ok);
    assert_eq!(mm_usage_event_set_timestamp(e, 99 * 3600), mm_status::Ok);
    assert_eq!(mm_usage_event_clear_timestamp(e), mm_status::Ok);
    assert_eq!(record(meter, e).0, mm_status::Ok);
    assert_eq!(pending(meter), (2, Some(100 * 3600)));
    let mut st = null_mut();
    assert_eq!(
        mm_meter_get_status(meter, null_mut(), null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_get_status(null(), &mut st, null_mut()),
        mm_status::NullParameter
    );
    assert!(st.is_null());
    assert_eq!(mm_meter_status_pending_count(null()), 0);
    assert_eq!(mm_meter_status_sealed_count(null()), 0);
    assert!(!mm_meter_status_oldest_unsent_hour(null(), null_mut()));
    mm_meter_status_free(null_mut());
    let mut list = null_mut();
    assert_eq!(
        mm_meter_get_dead_letters(meter, &mut list, null_mut()),
        mm_status::Ok
    );
    assert_eq!(mm_dead_letters_count(list), 0);
    assert!(mm_dead_letters_dimension(list, 0).is_null());
    mm_dead_letters_free(list);
    assert_eq!(
        mm_meter_get_dead_letters(meter, null_mut(), null_mut()),
        mm_status::NullParameter
    );

    // register_customer: NULL dimension list with a count, a NULL dimension.
    let c = c"cust-1".as_ptr();
    let dims = [c"users".as_ptr(), null()];
    assert_eq!(
        mm_meter_register_customer(meter, c, null(), null(), null(), 1, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_register_customer(meter, c, null(), null(), dims.as_ptr(), 2, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_register_customer(meter, c, null(), null(), dims.as_ptr(), 1, null_mut()),
        mm_status::Ok
    );

    // The summary is required: without it nothing is flushed or closed.
    assert_eq!(
        mm_meter_close(meter, null_mut(), null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(record(meter, event(u, 1)).0, mm_status::Ok, "still open");
    // Closed: record fails with InvalidState (close on an offline client sends nothing: no
    // hour is sealed yet).
    let mut sum = null_mut();
    assert_eq!(mm_meter_close(meter, &mut sum, null_mut()), mm_status::Ok);
    assert_eq!(
        (
            mm_flush_summary_sent_count(sum),
            mm_flush_summary_call_count(sum),
            mm_flush_summary_interrupted(sum)
        ),
        (0, 0, mm_status::Ok)
    );
    assert!(mm_flush_summary_interrupted_message(sum).is_null());
    mm_flush_summary_free(sum);
    assert_eq!(record(meter, event(u, 1)).0, mm_status::InvalidState);
    let mut sum = null_mut();
    assert_eq!(
        mm_meter_flush(meter, &mut sum, null_mut()),
        mm_status::InvalidState
    );
    assert!(sum.is_null(), "no output on failure");
    assert_eq!(
        mm_meter_flush(null(), &mut sum, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_close(null(), &mut sum, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(mm_flush_summary_sealed_count(null()), 0);
    assert_eq!(
        mm_flush_summary_interrupted(null()),
        mm_status::NullParameter
    );
    assert!(mm_flush_summary_interrupted_message(null()).is_null());
    mm_flush_summary_free(null_mut());
    mm_meter_free(meter);
    mm_meter_free(null_mut());
    mm_client_free(client);
    mm_clock_free(clock);
}

#[test]
fn a_late_event_reaches_the_callback_with_its_fields() {
    let seen: Seen = Mutex::new(Vec::new());
    let h = 100 * 3600;
    let clock = mm_clock_new(h + 10);
    let (client, meter) = memory_meter(clock, Some(&seen));
    let e = event(c"users".as_ptr(), 4);
    assert_eq!(mm_usage_event_set_timestamp(e, h + 5), mm_status::Ok);
    assert_eq!(mm_meter_record(meter, e, null_mut()), mm_status::Ok);
    assert!(seen.lock().unwrap().is_empty());
    // Two hours later the first hour is sealed: an event for it is late.
    assert_eq!(mm_clock_advance(clock, 2 * 3600), mm_status::Ok);
    assert_eq!(mm_usage_event_set_quantity(e, 2), mm_status::Ok);
    assert_eq!(record(meter, e).0, mm_status::Ok);
    {
        let got = seen.lock().unwrap();
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert_eq!(e.0, mm_meter_event_kind::LateEvent);
        assert_eq!(
            (e.1.as_str(), e.2.as_str(), e.3.as_str()),
            ("late_event", "cust-1", "users")
        );
        assert_eq!((e.4, e.5, e.6), (h, 2, h + 2 * 3600));
    }
    mm_meter_free(meter);
    mm_client_free(client);
    mm_clock_free(clock);
}

#[test]
fn requeue_filter_refuses_null_and_bad_combinations_naming_the_field() {
    let clock = mm_clock_new(100 * 3600 + 10);
    let (client, meter) = memory_meter(clock, None);
    let f = mm_requeue_filter_new();
    let mut n = 7u64;
    assert_eq!(
        mm_meter_requeue(meter, null(), &mut n, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_meter_requeue(null(), f, &mut n, null_mut()),
        mm_status::NullParameter
    );
    assert_eq!(n, 7, "no output on failure");
    assert_eq!(
        mm_requeue_filter_set_reason(null_mut(), c"x".as_ptr()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_requeue_filter_set_reason(f, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_requeue_filter_set_reason(f, bad()),
        mm_status::InvalidInput
    );
    assert_eq!(
        mm_requeue_filter_set_customer_identifier(f, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_requeue_filter_set_customer_aws_account_id(f, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_requeue_filter_set_license_arn(f, null()),
        mm_status::NullParameter
    );
    assert_eq!(
        mm_requeue_filter_set_hour(null_mut(), 1),
        mm_status::NullParameter
    );
    // An empty filter matches everything (nothing is dead-lettered here).
    assert_eq!(
        mm_meter_requeue(meter, f, &mut n, null_mut()),
        mm_status::Ok
    );
    assert_eq!(n, 0);
    // An account without its license: refused naming license_arn.
    assert_eq!(
        mm_requeue_filter_set_customer_aws_account_id(f, c"111122223333".as_ptr()),
        mm_status::Ok
    );
    let mut err = null_mut();
    assert_eq!(
        mm_meter_requeue(meter, f, null_mut(), &mut err),
        mm_status::InvalidInput
    );
    assert_eq!(err_field(err), "license_arn");
    mm_requeue_filter_free(f);
    mm_requeue_filter_free(null_mut());
    mm_meter_free(meter);
    mm_client_free(client);
    mm_clock_free(clock);
}

/// A child forked while a thread of its parent's held the list of meters to write at exit
/// (making or freeing one) lists its own there: it gave up on that lock after a second, and
/// what its memory meter buffered was lost at its `exit()` (a review found it).
#[cfg(unix)]
#[test]
fn a_child_forked_while_the_exit_list_was_held_writes_its_meter_at_exit() {
    let dir = std::env::temp_dir().join(format!("mm-c-exit-list-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = std::ffi::CString::new(dir.join("m.db").to_str().unwrap()).unwrap();
    let meter_on_store = |durability: mm_meter_durability| {
        let cfg = mm_meter_config_new();
        assert_eq!(
            mm_meter_config_set_product_code(cfg, c"prod-1234".as_ptr()),
            mm_status::Ok
        );
        assert_eq!(mm_meter_config_set_path(cfg, path.as_ptr()), mm_status::Ok);
        assert_eq!(
            mm_meter_config_set_durability(cfg, durability as u32),
            mm_status::Ok
        );
        let mut meter = null_mut();
        let st = mm_meter_new(offline_client(), cfg, &mut meter, null_mut());
        mm_meter_config_free(cfg);
        (st, meter)
    };
    let (held_tx, held) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let list = crate::meter::LIVE.lock();
        held_tx.send(()).unwrap();
        let _ = released.recv();
        drop(list);
    });
    held.recv().unwrap();
    // SAFETY: the child makes a meter, records and leaves by `exit()`, under an alarm.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        unsafe { libc::alarm(30) };
        let (st, meter) = meter_on_store(mm_meter_durability::Memory);
        let ok =
            st == mm_status::Ok && record(meter, event(c"users".as_ptr(), 3)).0 == mm_status::Ok;
        // Never freed: the exit hook writes what it buffered.
        unsafe { libc::exit(if ok { 0 } else { 2 }) };
    }
    drop(release);
    holder.join().unwrap();
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed or hung: {status}"
    );
    let (st, meter) = meter_on_store(mm_meter_durability::Durable);
    assert_eq!(st, mm_status::Ok);
    assert_eq!(
        pending(meter).0,
        1,
        "the child's event was not written at its exit"
    );
    mm_meter_free(meter);
    let _ = std::fs::remove_dir_all(&dir);
}
