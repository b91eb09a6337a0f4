// SPDX-License-Identifier: Apache-2.0
// Unit tests of the boundary: panics, NULL pointers, invalid UTF-8, outputs only on success.

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
    assert_eq!(mm_config_set_retry_mode(cfg, 7), mm_status::InvalidInput);
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
