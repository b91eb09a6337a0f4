// SPDX-License-Identifier: Apache-2.0
// The blocking operations in ONE native call each, with primitive arguments only.
//
// Through uniffi's generated Kotlin a blocking `batchMeterUsage` makes five native calls (clone
// the object's handle, allocate a RustBuffer for each argument, the call, free the result), each
// with JNA `Structure`s (RustBuffer by value, RustCallStatus): about 300 µs of the calling thread
// per call on the bench, most of the JVM side's cost. Here the JVM side writes the arguments
// into a direct buffer it owns, in uniffi's own serialization (the generated `FfiConverter`s'
// `write`), and makes one direct-mapped JNA call `(long, int, long, int, int) -> int`; the
// result (or the error) comes back in the same buffer, read with the generated `read`s. The
// operations are the same `NativeClient` methods the uniffi exports call: validation, field
// paths and errors do not change. The meter's `record()` goes the same way (`RECORD` on a
// meter's handle): through the generated calls it made nine native calls, about 170 µs a record
// against the core's 0.3 µs.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use uniffi::{Lift, Lower};

use crate::client::{Interrupt, NativeClient};
use crate::error::NativeError;
use crate::meter::NativeMeter;
use crate::model::{MeterUsageParams, UsageAllocation, UsageRecord};
use crate::UniFfiTag;

/// The result's first byte.
const OK: u8 = 0;
/// A `NativeError`, serialized as uniffi does.
const ERROR: u8 = 1;
/// A panic or an undecodable input (a bug of this face): a message as a uniffi string.
const INTERNAL: u8 = 2;
/// The handle is not (or no longer) registered: released (a closed client, a collected meter).
const CLOSED: u8 = 3;
/// The calling thread was interrupted ([`mm_jvm_direct_interrupt`]): the call was dropped,
/// its request aborted, or never sent. Nothing follows.
const INTERRUPTED: u8 = 4;

/// The operations (`op`), as the Kotlin side numbers them.
const BATCH_METER_USAGE: i32 = 0;
const METER_USAGE: i32 = 1;
const RESOLVE_CUSTOMER: i32 = 2;
const REGISTER_USAGE: i32 = 3;
/// `NativeMeter::record`, on a meter's handle.
const RECORD: i32 = 4;

/// What a handle reaches.
#[derive(Clone)]
enum Target {
    Client(Arc<NativeClient>),
    Meter(Arc<NativeMeter>),
}

/// Clients and meters reachable from a direct call, by handle. A lookup under the read lock and
/// an `Arc` clone: a handle released (client closed) while a call runs leaves that call its
/// target, and a stale or forged handle is a `CLOSED` answer, never a dangling pointer.
static HANDLES: RwLock<Option<HashMap<u64, Target>>> = RwLock::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Results too large for the caller's buffer, until it takes them with a larger one.
static PARKED: Mutex<Option<HashMap<u64, Vec<u8>>>> = Mutex::new(None);

/// Calls their Java thread's `interrupt()` may end, by the number the JVM side gave each. An
/// interrupt that comes before its call is registered leaves the raised entry for the call to
/// find; one that comes after the call left it leaves an entry that the JVM side then forgets
/// ([`mm_jvm_direct_forget`]).
static CALLS: Mutex<Option<HashMap<u64, Arc<Interrupt>>>> = Mutex::new(None);

pub(crate) fn interrupt_of(call: u64) -> Arc<Interrupt> {
    CALLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .entry(call)
        .or_default()
        .clone()
}

/// The first number of a class loader's interruptible calls ([`CALLS`]' keys): each class
/// loader that loads the face numbers its calls from its own base, 2^40 apart. The table is
/// the process's, and two webapps numbering from 1 each had one's `Thread.interrupt()` end
/// the other's call of the same number.
#[no_mangle]
pub extern "C" fn mm_jvm_direct_call_base() -> u64 {
    static LOADERS: AtomicU64 = AtomicU64::new(0);
    LOADERS.fetch_add(1, Ordering::Relaxed) << 40
}

/// Ends call `call` (a number given to [`mm_jvm_direct_call`]): its Java thread was
/// interrupted. The JVM side calls it from `Thread.interrupt()`, through an NIO
/// `AbstractInterruptibleChannel`, as an interrupt ends a channel's blocking I/O.
#[no_mangle]
pub extern "C" fn mm_jvm_direct_interrupt(call: u64) {
    interrupt_of(call).raise();
}

/// Forgets call `call`'s interrupt (one raised after the call returned).
#[no_mangle]
pub extern "C" fn mm_jvm_direct_forget(call: u64) {
    if let Some(m) = CALLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        m.remove(&call);
    }
}

/// How many calls' interrupts are held (for the face's tests: none once every call returned
/// and its interrupts were forgotten).
#[uniffi::export]
pub fn direct_interrupts_held() -> u64 {
    CALLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or(0, |m| m.len() as u64)
}

#[uniffi::export]
impl NativeClient {
    /// A handle for [`mm_jvm_direct_call`], valid until [`direct_release`].
    pub fn direct_handle(self: Arc<Self>) -> u64 {
        register(Target::Client(self))
    }
}

#[uniffi::export]
impl NativeMeter {
    /// A handle for [`mm_jvm_direct_call`] (`RECORD`), valid until [`direct_release`]. A closed
    /// meter keeps its handle: `record` then fails as the meter's own method does.
    pub fn direct_handle(self: Arc<Self>) -> u64 {
        register(Target::Meter(self))
    }
}

fn register(target: Target) -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    HANDLES
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(id, target);
    id
}

/// Forgets a handle of [`NativeClient::direct_handle`] (calls with it answer "closed").
#[uniffi::export]
pub fn direct_release(handle: u64) {
    let released = HANDLES
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .and_then(|m| m.remove(&handle));
    // Dropped once the table's lock is let go: the handle may be a collected meter's last
    // owner, whose drop writes its memory buffer. Under the lock, a fleet store slow to answer
    // stalled every direct call meanwhile, and a listener called by that write which made a
    // direct call waited for the lock for good.
    drop(released);
}

/// How many handles are live (for the face's tests: an unclosed client that became unreachable
/// must release its handle).
#[uniffi::export]
pub fn direct_handles() -> u64 {
    HANDLES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or(0, |m| m.len() as u64)
}

fn target(handle: u64) -> Option<Target> {
    HANDLES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()?
        .get(&handle)
        .cloned()
}

fn read<T: Lift<UniFfiTag>>(input: &mut &[u8]) -> Result<T, String> {
    T::try_read(input).map_err(|e| format!("undecodable input: {e}"))
}

/// `Ok(Ok(Some(result)))` to serialize, `Ok(Ok(None))` when `stop` ended the call, or the
/// error.
fn dispatch(
    target: &Target,
    op: i32,
    mut input: &[u8],
    stop: Option<&Interrupt>,
) -> Result<Result<Option<Vec<u8>>, NativeError>, String> {
    let input = &mut input;
    let mut out = vec![OK];
    let c = match target {
        Target::Client(c) => c,
        Target::Meter(m) if op == RECORD => {
            let customer_identifier: Option<String> = read(input)?;
            let customer_aws_account_id: Option<String> = read(input)?;
            let license_arn: Option<String> = read(input)?;
            let dimension: Option<String> = read(input)?;
            let quantity: Option<i64> = read(input)?;
            let timestamp: Option<std::time::SystemTime> = read(input)?;
            let allocations: Option<Vec<Option<UsageAllocation>>> = read(input)?;
            end(input)?;
            let res = m.record(
                customer_identifier,
                customer_aws_account_id,
                license_arn,
                dimension,
                quantity,
                timestamp,
                allocations,
            );
            return Ok(res.map(|()| Some(out)));
        }
        Target::Meter(_) => return Err(format!("operation {op} is not a meter's")),
    };
    let res = match op {
        BATCH_METER_USAGE => {
            let product_code: Option<String> = read(input)?;
            let records: Option<Vec<Option<UsageRecord>>> = read(input)?;
            end(input)?;
            c.batch_meter_usage_until(product_code, records, stop)
                .map(|r| r.map(|r| Lower::<UniFfiTag>::write(r, &mut out)))
        }
        METER_USAGE => {
            let params: MeterUsageParams = read(input)?;
            end(input)?;
            c.meter_usage_until(params, stop)
                .map(|r| r.map(|r| Lower::<UniFfiTag>::write(r, &mut out)))
        }
        RESOLVE_CUSTOMER => {
            let token: Option<String> = read(input)?;
            end(input)?;
            c.resolve_customer_until(token, stop)
                .map(|r| r.map(|r| Lower::<UniFfiTag>::write(r, &mut out)))
        }
        REGISTER_USAGE => {
            let product_code: Option<String> = read(input)?;
            let version: Option<i32> = read(input)?;
            let nonce: Option<String> = read(input)?;
            end(input)?;
            c.register_usage_until(product_code, version, nonce, stop)
                .map(|r| r.map(|r| Lower::<UniFfiTag>::write(r, &mut out)))
        }
        RECORD => return Err("a client has no operation 4 (a meter's record)".to_owned()),
        _ => return Err(format!("unknown operation {op}")),
    };
    Ok(res.map(|done| done.map(|()| out)))
}

fn end(input: &[u8]) -> Result<(), String> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(format!("{} bytes left over in the input", input.len()))
    }
}

fn with_status(status: u8, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![status];
    write(&mut out);
    out
}

fn internal(msg: String) -> Vec<u8> {
    with_status(INTERNAL, |out| Lower::<UniFfiTag>::write(msg, out))
}

fn run_call(handle: u64, op: i32, input: &[u8], call: u64) -> Vec<u8> {
    let Some(c) = target(handle) else {
        return vec![CLOSED];
    };
    let stop = (call != 0).then(|| interrupt_of(call));
    let res = catch_unwind(AssertUnwindSafe(|| {
        dispatch(&c, op, input, stop.as_deref())
    }));
    if call != 0 {
        mm_jvm_direct_forget(call);
    }
    match res {
        Ok(Ok(Ok(Some(out)))) => out,
        Ok(Ok(Ok(None))) => vec![INTERRUPTED],
        Ok(Ok(Err(e))) => with_status(ERROR, |out| Lower::<UniFfiTag>::write(e, out)),
        Ok(Err(msg)) => internal(msg),
        Err(panic) => internal(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Rust panic".to_owned()),
        ),
    }
}

/// Runs operation `op` of the client `handle` on the `in_len` bytes of arguments at `buf`,
/// blocking, and writes the result back to `buf` (`cap` bytes): a status byte, then the
/// result, the error or a message, in uniffi's serialization. Returns the result's length; when
/// it is larger than `cap` nothing is written but an 8-byte ticket (big-endian) for
/// [`mm_jvm_direct_take`]. -1: bad arguments (null buffer, negative lengths, `cap` < 9).
/// `call`, when not 0, is the call's number for [`mm_jvm_direct_interrupt`], unique in the
/// process: a client operation so numbered ends early, answered `INTERRUPTED`, once that
/// number is interrupted.
///
/// # Safety
/// `buf` must point to `cap` writable bytes, the first `in_len` of them initialized, not used
/// by anything else during the call.
#[no_mangle]
pub unsafe extern "C" fn mm_jvm_direct_call(
    handle: u64,
    op: i32,
    buf: *mut u8,
    in_len: i32,
    cap: i32,
    call: u64,
) -> i32 {
    let (Ok(in_len), Ok(cap)) = (usize::try_from(in_len), usize::try_from(cap)) else {
        return -1;
    };
    if buf.is_null() || in_len > cap || cap < 9 {
        return -1;
    }
    // SAFETY: the caller's contract; the input is read before the buffer is written.
    let mut out = run_call(
        handle,
        op,
        unsafe { std::slice::from_raw_parts(buf, in_len) },
        call,
    );
    if i32::try_from(out.len()).is_err() {
        // More than 2 GiB: no buffer of the JVM side could hold it.
        out = internal(format!("result too large ({} bytes)", out.len()));
    }
    let n = out.len() as i32;
    if out.len() <= cap {
        // SAFETY: `out.len()` <= `cap` writable bytes at `buf`.
        unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), buf, out.len()) };
    } else {
        let ticket = NEXT.fetch_add(1, Ordering::Relaxed);
        PARKED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(ticket, out);
        // SAFETY: 8 <= `cap` writable bytes at `buf`.
        unsafe { std::ptr::copy_nonoverlapping(ticket.to_be_bytes().as_ptr(), buf, 8) };
    }
    n
}

/// Copies the result parked under `ticket` by [`mm_jvm_direct_call`] to `buf` (`cap` bytes) and
/// forgets it. Returns its length, or -1 for an unknown ticket or a buffer too small (the
/// result stays parked then).
///
/// # Safety
/// `buf` must point to `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mm_jvm_direct_take(ticket: u64, buf: *mut u8, cap: i32) -> i32 {
    let Ok(cap) = usize::try_from(cap) else {
        return -1;
    };
    let mut parked = PARKED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(m) = parked.as_mut() else {
        return -1;
    };
    match m.get(&ticket) {
        Some(out) if !buf.is_null() && out.len() <= cap => {
            let out = m.remove(&ticket).unwrap_or_default();
            // SAFETY: `out.len()` <= `cap` writable bytes at `buf`.
            unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), buf, out.len()) };
            out.len() as i32
        }
        _ => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;

    fn handle() -> u64 {
        let c = NativeClient::new(
            ClientConfig {
                region: Some("us-east-1".into()),
                // Nothing listens: these tests never get as far as sending.
                endpoint_url: Some("http://127.0.0.1:9".into()),
                ..Default::default()
            },
            Some("AKIDTEST".into()),
            Some("secret".into()),
            None,
        )
        .unwrap();
        c.direct_handle()
    }

    /// BatchMeterUsage's arguments, serialized as the JVM side does.
    fn batch_args(records: Option<Vec<Option<UsageRecord>>>) -> Vec<u8> {
        let mut v = Vec::new();
        Lower::<UniFfiTag>::write(Some("prod".to_owned()), &mut v);
        Lower::<UniFfiTag>::write(records, &mut v);
        v
    }

    /// Calls `op` with `input` in a buffer of `cap` bytes; the answer's bytes.
    fn run(handle: u64, op: i32, input: &[u8], cap: usize) -> Vec<u8> {
        let mut buf = input.to_vec();
        buf.resize(cap.max(input.len()), 0);
        let n = unsafe {
            mm_jvm_direct_call(
                handle,
                op,
                buf.as_mut_ptr(),
                input.len() as i32,
                buf.len() as i32,
                0,
            )
        };
        assert!(n > 0, "{n}");
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return buf;
        }
        let ticket = u64::from_be_bytes(buf[..8].try_into().unwrap());
        let mut big = vec![0u8; n];
        assert_eq!(
            unsafe { mm_jvm_direct_take(ticket, big.as_mut_ptr(), n as i32 - 1) },
            -1,
            "too small: stays parked"
        );
        assert_eq!(
            unsafe { mm_jvm_direct_take(ticket, big.as_mut_ptr(), n as i32) },
            n as i32
        );
        assert_eq!(
            unsafe { mm_jvm_direct_take(ticket, big.as_mut_ptr(), n as i32) },
            -1,
            "taken once"
        );
        big
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn bad_arguments_are_refused_without_touching_memory() {
        let h = handle();
        let mut buf = [0u8; 64];
        let p = buf.as_mut_ptr();
        unsafe {
            assert_eq!(mm_jvm_direct_call(h, 0, std::ptr::null_mut(), 0, 64, 0), -1);
            assert_eq!(mm_jvm_direct_call(h, 0, p, -1, 64, 0), -1);
            assert_eq!(mm_jvm_direct_call(h, 0, p, 65, 64, 0), -1);
            assert_eq!(mm_jvm_direct_call(h, 0, p, 0, 8, 0), -1);
            assert_eq!(mm_jvm_direct_call(h, 0, p, 0, -5, 0), -1);
            assert_eq!(mm_jvm_direct_take(12345, p, 64), -1);
            assert_eq!(mm_jvm_direct_take(12345, std::ptr::null_mut(), -1), -1);
        }
        direct_release(h);
    }

    #[test]
    fn junk_input_and_unknown_operations_are_internal_errors_not_panics() {
        let h = handle();
        // Nothing, a truncated string, a bogus option tag, trailing bytes, random bytes.
        let ok_args = batch_args(None);
        let mut trailing = ok_args.clone();
        trailing.push(7);
        let mut random = vec![0u8; 300];
        let mut x = 0x9e37_79b9_u32;
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        for input in [
            vec![],
            vec![1, 0, 0, 0, 200, b'a'],
            vec![9],
            trailing,
            random,
        ] {
            for op in 0..4 {
                let out = run(h, op, &input, 4096);
                assert_eq!(out[0], INTERNAL, "op {op} input {input:?}: {}", text(&out));
            }
        }
        let out = run(h, 99, &ok_args, 4096);
        assert_eq!(out[0], INTERNAL);
        assert!(
            text(&out).contains("unknown operation 99"),
            "{}",
            text(&out)
        );
        direct_release(h);
    }

    #[test]
    fn validation_errors_name_the_field_and_large_answers_are_parked() {
        let h = handle();
        // A null record (what Java can put in a list), then the 26th record.
        let null_item = batch_args(Some(vec![None]));
        let whole = run(h, BATCH_METER_USAGE, &null_item, 4096);
        assert_eq!(whole[0], ERROR);
        assert!(text(&whole).contains("UsageRecords[0]"), "{}", text(&whole));
        // The same answer through a buffer too small for it: parked, then taken.
        assert_eq!(run(h, BATCH_METER_USAGE, &null_item, 16), whole);
        let record = UsageRecord {
            timestamp: Some(std::time::SystemTime::now()),
            customer_identifier: Some("cust-1".into()),
            dimension: Some("users".into()),
            quantity: Some(1),
            ..Default::default()
        };
        let too_many = batch_args(Some(vec![Some(record); 26]));
        let out = run(h, BATCH_METER_USAGE, &too_many, 4096);
        assert_eq!(out[0], ERROR);
        assert!(
            text(&out).contains("UsageRecords") && text(&out).contains("26"),
            "{}",
            text(&out)
        );
        direct_release(h);
    }

    /// A meter on the in-memory store, with a product code, and its handle.
    fn meter_handle() -> (Arc<NativeMeter>, u64) {
        let c = handle();
        let Some(Target::Client(client)) = target(c) else {
            panic!("a client handle")
        };
        direct_release(c);
        let m = NativeMeter::new(
            client,
            crate::meter::MeterOptions {
                product_code: Some("prod".into()),
                flush_interval_millis: Some(0),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let h = m.clone().direct_handle();
        (m, h)
    }

    /// `record`'s arguments, serialized as the JVM side does.
    fn record_args(
        customer: Option<&str>,
        dimension: Option<&str>,
        quantity: Option<i64>,
    ) -> Vec<u8> {
        let mut v = Vec::new();
        Lower::<UniFfiTag>::write(customer.map(str::to_owned), &mut v);
        Lower::<UniFfiTag>::write(None::<String>, &mut v);
        Lower::<UniFfiTag>::write(None::<String>, &mut v);
        Lower::<UniFfiTag>::write(dimension.map(str::to_owned), &mut v);
        Lower::<UniFfiTag>::write(quantity, &mut v);
        Lower::<UniFfiTag>::write(None::<std::time::SystemTime>, &mut v);
        Lower::<UniFfiTag>::write(None::<Vec<Option<UsageAllocation>>>, &mut v);
        v
    }

    #[test]
    fn a_meter_records_through_its_handle_and_bad_input_names_the_field() {
        let (m, h) = meter_handle();
        let ok = record_args(Some("cust-1"), Some("users"), Some(3));
        assert_eq!(run(h, RECORD, &ok, 64), vec![OK]);
        assert_eq!(run(h, RECORD, &ok, 64), vec![OK]);
        assert_eq!(m.status().unwrap().pending, 1, "one bucket, two records");
        let out = run(h, RECORD, &record_args(Some("cust-1"), None, Some(1)), 4096);
        assert_eq!(out[0], ERROR);
        assert!(text(&out).contains("dimension"), "{}", text(&out));
        let out = run(
            h,
            RECORD,
            &record_args(Some("cust-1"), Some("users"), Some(-1)),
            4096,
        );
        assert_eq!(out[0], ERROR);
        assert!(text(&out).contains("quantity"), "{}", text(&out));
        // A client's operation on a meter, a meter's on a client, junk: internal, not a panic.
        for op in [BATCH_METER_USAGE, 99] {
            assert_eq!(run(h, op, &ok, 4096)[0], INTERNAL, "op {op}");
        }
        assert_eq!(run(h, RECORD, &ok[..ok.len() - 1], 4096)[0], INTERNAL);
        let c = handle();
        assert_eq!(run(c, RECORD, &ok, 4096)[0], INTERNAL);
        direct_release(c);
        // A closed meter keeps its handle and fails as its own method does.
        m.close_and_flush().unwrap();
        let out = run(h, RECORD, &ok, 4096);
        assert_eq!(out[0], ERROR);
        direct_release(h);
        assert_eq!(run(h, RECORD, &ok, 64), vec![CLOSED]);
    }

    #[test]
    fn a_released_handle_answers_closed_and_a_running_call_keeps_its_client() {
        let h = handle();
        direct_release(h);
        direct_release(h);
        assert_eq!(run(h, RESOLVE_CUSTOMER, &[0], 64), vec![CLOSED]);
        assert_eq!(run(0, RESOLVE_CUSTOMER, &[0], 64), vec![CLOSED]);
        assert_eq!(run(u64::MAX, RESOLVE_CUSTOMER, &[0], 64), vec![CLOSED]);
    }

    /// A Java thread's interrupt ends its blocking call: one raised before the call sends
    /// nothing, one raised while the call waits for an answer that never comes ends it at
    /// once, and no interrupt is held afterwards.
    #[test]
    fn each_class_loader_numbers_its_calls_apart() {
        // Two class loaders' first calls (base + 1) never share a number, nor their next 2^40.
        let (a, b) = (mm_jvm_direct_call_base(), mm_jvm_direct_call_base());
        assert!(a.abs_diff(b) >= 1 << 40, "{a} {b}");
    }

    #[test]
    fn an_interrupt_ends_a_blocking_call() {
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = NativeClient::new(
            ClientConfig {
                region: Some("us-east-1".into()),
                endpoint_url: Some(format!("http://{}", hung.local_addr().unwrap())),
                ..Default::default()
            },
            Some("AKIDTEST".into()),
            Some("secret".into()),
            None,
        )
        .unwrap();
        let h = c.direct_handle();
        let args = batch_args(Some(vec![]));
        let call = |n: u64| {
            let mut buf = args.clone();
            buf.resize(4096, 0);
            let len =
                unsafe { mm_jvm_direct_call(h, 0, buf.as_mut_ptr(), args.len() as i32, 4096, n) };
            buf[..len as usize].to_vec()
        };
        let started = std::time::Instant::now();
        mm_jvm_direct_interrupt(9_001);
        assert_eq!(call(9_001), vec![INTERRUPTED]);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        hung.set_nonblocking(true).unwrap();
        let nothing = hung.accept().map(|_| ()).unwrap_err();
        assert_eq!(
            nothing.kind(),
            std::io::ErrorKind::WouldBlock,
            "the call was sent"
        );
        hung.set_nonblocking(false).unwrap();
        let (conn_tx, conn_rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || conn_tx.send(hung.accept().unwrap()).unwrap());
        let interrupter = std::thread::spawn(move || {
            let conn = conn_rx.recv().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            mm_jvm_direct_interrupt(9_002);
            conn
        });
        let started = std::time::Instant::now();
        assert_eq!(call(9_002), vec![INTERRUPTED]);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        server.join().unwrap();
        drop(interrupter.join().unwrap());
        assert_eq!(direct_interrupts_held(), 0);
        direct_release(h);
    }
}
