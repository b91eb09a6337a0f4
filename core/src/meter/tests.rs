// SPDX-License-Identifier: Apache-2.0
// Unit tests of the meter's private parts.

use super::config::epoch_secs;
use super::record::canonical_allocations;
use super::*;
use crate::types::UsageAllocation;

#[test]
fn client_tokens_are_deterministic_and_short() {
    let token = |store, hour, quantity, nonce| {
        send::client_token(store, "p", "users", hour, quantity, nonce)
    };
    let a = token("s1", 3600, 5, None);
    assert_eq!(a, token("s1", 3600, 5, None));
    assert_ne!(a, token("s1", 7200, 5, None));
    assert_ne!(a, token("s1", 3600, 6, None));
    assert_ne!(a, token("s2", 3600, 5, None));
    assert!(a.len() <= 64 && a.chars().all(|c| c.is_ascii_hexdigit()));
    // A bucket without a nonce (made before the store kept one, maybe `sending` at the
    // upgrade) is resent with the token the version before sent.
    assert_eq!(a, "a2862831bdb4c2e274595ace35d2fff9");
    // Copies of one store: the same bucket with another nonce has another token.
    let n = token("s1", 3600, 5, Some("0011223344556677"));
    assert_eq!(n, token("s1", 3600, 5, Some("0011223344556677")));
    assert_ne!(n, a);
    assert_ne!(n, token("s1", 3600, 5, Some("0011223344556678")));
    assert_ne!(token("s1", 3600, 5, Some("")), a);
}

/// A client whose every call finds no server (nothing listens on port 9).
fn client_of_no_server() -> Client {
    Client::new(
        crate::Config::builder()
            .region("us-east-1")
            .endpoint_url("http://127.0.0.1:9")
            .static_credentials("AKID", "secret", None)
            .build()
            .unwrap(),
    )
}

/// Item 13: a face's exit hook writes what `Durability::Memory` buffered, for a process
/// that ends without dropping the meter.
#[test]
fn write_buffered_puts_memory_events_in_the_store() {
    let path = std::env::temp_dir().join(format!(
        "mm-write-buffered-{}-{}.db",
        std::process::id(),
        epoch_secs(std::time::SystemTime::now())
    ));
    let client = client_of_no_server();
    let meter = UsageMeter::new(
        MeterConfig::builder()
            .client(client)
            .store(Store::sqlite(&path))
            .product_code("p")
            .durability(Durability::Memory)
            .build()
            .unwrap(),
    )
    .unwrap();
    meter
        .record(Customer::identifier("c"), "users", 7, None, None)
        .unwrap();
    let stored = || -> i64 {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row("SELECT COALESCE(SUM(quantity), 0) FROM buckets", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(stored(), 0);
    meter.write_buffered().unwrap();
    assert_eq!(stored(), 7);
    // The process ends without dropping it (Node's `process.exit()`).
    std::mem::forget(meter);
    let _ = std::fs::remove_file(&path);
}

/// A child made without `fork()`'s handlers (glibc's `_Fork()`, a raw `clone`, as some
/// sandboxes and process managers make them) cannot be told by the handler's count. Its exit
/// hook (C's `atexit`) wrote the parent's buffered usage into the parent's store, and the
/// parent wrote it again at its own exit: counted twice (found by a review of C hosts).
#[cfg(all(unix, target_os = "linux"))]
#[test]
fn a_child_forked_without_handlers_does_not_write_the_parents_buffer() {
    static METER: std::sync::OnceLock<UsageMeter> = std::sync::OnceLock::new();
    let path = std::env::temp_dir().join(format!(
        "mm-raw-fork-{}-{}.db",
        std::process::id(),
        epoch_secs(std::time::SystemTime::now())
    ));
    let meter = METER.get_or_init(|| {
        let client = client_of_no_server();
        UsageMeter::new(
            MeterConfig::builder()
                .client(client)
                .store(Store::sqlite(&path))
                .product_code("p")
                .durability(Durability::Memory)
                .flush_interval(std::time::Duration::ZERO)
                .build()
                .unwrap(),
        )
        .unwrap()
    });
    meter
        .record(Customer::identifier("c"), "users", 5, None, None)
        .unwrap();
    // SAFETY: a fork that runs no `pthread_atfork` handler, as `_Fork()` makes; the child
    // runs the calls that write the buffer (ended by an alarm if it hangs) and `_exit`s.
    let child = unsafe { libc::syscall(libc::SYS_fork) } as libc::pid_t;
    if child == 0 {
        unsafe { libc::alarm(30) };
        let m = METER.get().unwrap();
        // What writes the buffer is refused there too (the read of this change).
        let refused = m.status().is_err() && m.flush_blocking().is_err();
        m.write_buffered_at_exit();
        unsafe { libc::_exit(if refused { 0 } else { 7 }) };
    }
    let mut status = 0;
    // SAFETY: reaps the child.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(
        libc::WIFEXITED(status),
        "the child ended by a signal: {status}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "status() or flush() wrote in the child"
    );
    meter.write_buffered_at_exit();
    let c = rusqlite::Connection::open(&path).unwrap();
    let stored: i64 = c
        .query_row("SELECT COALESCE(SUM(quantity), 0) FROM buckets", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, 5, "the parent's 5, counted once");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn customers_from_parts_name_the_argument() {
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        Customer::from_parts(s("c"), None, None, true).unwrap(),
        Some(Customer::identifier("c"))
    );
    assert_eq!(
        Customer::from_parts(None, s("1"), s("arn"), true).unwrap(),
        Some(Customer::aws_account("1", "arn"))
    );
    // No customer (the MeterUsage mode) is `None`, absent in every face, not an empty string.
    let none = Customer::from_parts(None, None, None, false).unwrap();
    assert_eq!(none, None);
    assert_eq!(Customer::parts_of(none.as_ref()), (None, None, None));
    let c = Customer::identifier("c");
    assert_eq!(Customer::parts_of(Some(&c)), (Some("c"), None, None));
    assert_eq!(
        Customer::aws_account("1", "arn").parts(),
        (None, Some("1"), Some("arn"))
    );
    for (parts, field) in [
        ((None, None, None), "customer_identifier"),
        ((s("c"), s("1"), s("arn")), "customer_identifier"),
        ((s("c"), None, s("arn")), "license_arn"),
        ((None, s("1"), None), "license_arn"),
        ((None, None, s("arn")), "customer_aws_account_id"),
    ] {
        let e = Customer::from_parts(parts.0, parts.1, parts.2, true).unwrap_err();
        assert_eq!(e.error_code(), crate::ErrorCode::InvalidInput);
        assert_eq!(e.field(), Some(field));
    }
}

#[test]
fn every_face_shares_one_default_and_one_spelling() {
    let client = Client::new(
        crate::Config::builder()
            .region("us-east-1")
            .static_credentials("AKIDEXAMPLE", "secret", None)
            .build()
            .unwrap(),
    );
    let b = || {
        MeterConfig::builder()
            .client(client.clone())
            .store(Store::memory())
    };
    assert_eq!(
        b().build().unwrap().flush_interval,
        Some(DEFAULT_FLUSH_INTERVAL)
    );
    assert_eq!(
        b().flush_interval(Duration::ZERO)
            .build()
            .unwrap()
            .flush_interval,
        None
    );
    for m in [MeterMode::Batch, MeterMode::MeterUsage] {
        assert_eq!(m.as_str().parse::<MeterMode>().unwrap(), m);
    }
    for d in [Durability::Durable, Durability::Group, Durability::Memory] {
        assert_eq!(d.as_str().parse::<Durability>().unwrap(), d);
    }
    let e = "fast".parse::<Durability>().unwrap_err();
    assert_eq!(e.field(), Some("durability"));
    assert_eq!(
        "Batch".parse::<MeterMode>().unwrap_err().field(),
        Some("mode")
    );
}

#[test]
fn allocations_are_canonical() {
    use crate::types::Tag;
    let tag = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    let a = UsageAllocation {
        allocated_usage_quantity: 2,
        tags: Some(vec![tag("b", "1"), tag("a", "2")]),
    };
    let b = UsageAllocation {
        allocated_usage_quantity: 3,
        tags: Some(vec![tag("a", "2"), tag("b", "1")]),
    };
    let m = canonical_allocations(&[a, b]).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m.values().next(), Some(&5));
}

/// A fleet write's entry that goes back into the `memory` buffer is kept apart, as a write
/// of its own, when together with what `record()` took for its bucket while the write ran
/// it would pass the model's maximum: the sum would be refused in every hour and never land
/// (found by a review). Within the maximum it is merged, as before.
#[test]
fn an_entry_put_back_past_the_maximum_is_kept_apart() {
    use shared::{Acc, BucketKey, MemBuffer, MAX_BUCKET};
    let key = |hour| BucketKey {
        customer: Some(Customer::Identifier("c".into())),
        dimension: "users".into(),
        hour,
    };
    let acc = |quantity| Acc {
        quantity,
        allocations: None,
        base: 0,
        late: Vec::new(),
    };
    let mut b = MemBuffer::default();
    b.rejoin(key(0), acc(5));
    b.rejoin(key(0), acc(7));
    assert_eq!(b.map[&key(0)].quantity, 12);
    b.rejoin(key(3600), acc(1_500_000_000));
    b.rejoin(key(3600), acc(1_000_000_000));
    assert_eq!(b.map[&key(3600)].quantity, 1_500_000_000);
    assert_eq!(b.unsettled.len(), 1);
    let (seq, entries, moved) = &b.unsettled[0];
    assert!(seq.is_none() && moved.is_empty());
    assert_eq!(entries[&key(3600)].quantity, 1_000_000_000);
    // Up to the maximum itself, merged.
    b.rejoin(key(3600), acc(MAX_BUCKET - 1_500_000_000));
    assert_eq!(b.map[&key(3600)].quantity, MAX_BUCKET);
    assert_eq!(b.unsettled.len(), 1);
}
