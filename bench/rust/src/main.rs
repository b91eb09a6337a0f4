// SPDX-License-Identifier: Apache-2.0
// Benchmark: one 25-record BatchMeterUsage, ours vs the AWS SDK for Rust, same emulator, same run.

//! `cargo run --release --manifest-path bench/rust/Cargo.toml [-- SECONDS [ours|sdk]]`
//!
//! Each client runs on a current-thread runtime on the main thread, so the main thread's CPU
//! time is the client's own cost (serialize + sign + send + parse); the emulator answers from
//! its own threads. Both clients send the same 25 records (deduplicated by the emulator, so
//! the server does the same work for both).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::UsageRecord;
use metering_emulator::{Emulator, EmulatorConfig};

/// Counts the main thread's allocations (the emulator's threads are not counted).
struct Counting;

thread_local! {
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only a thread-local counter is added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

/// The CPU time of a POSIX CPU-time clock.
fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The main thread's user and kernel CPU time. The kernel part is mostly loopback TCP (a
/// send runs the receiver's network stack and wakes it) and the epoll waits: costs of the
/// socket, not of the client's code.
fn thread_user_sys() -> (Duration, Duration) {
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer for getrusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let d = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (d(ru.ru_utime), d(ru.ru_stime))
}

/// The whole process's CPU time: the client's thread plus the emulator's.
fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

struct Figures {
    calls_per_sec: f64,
    server_us_per_call: f64,
    cpu_us_per_call: f64,
    user_us_per_call: f64,
    sys_us_per_call: f64,
    allocs_per_call: f64,
}

async fn run<F, Fut>(seconds: f64, mut call: F) -> Figures
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..200 {
        call().await; // warm-up: connections, credentials, caches
    }
    let (t0, c0, a0, (u0, s0)) = (Instant::now(), thread_cpu(), allocs(), thread_user_sys());
    let p0 = process_cpu();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < seconds {
        for _ in 0..50 {
            call().await;
        }
        n += 50;
    }
    let (wall, cpu, a) = (t0.elapsed(), thread_cpu() - c0, allocs() - a0);
    let server = (process_cpu() - p0).saturating_sub(cpu);
    let (u1, s1) = thread_user_sys();
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Figures {
        calls_per_sec: n as f64 / wall.as_secs_f64(),
        server_us_per_call: per_call(server),
        cpu_us_per_call: per_call(cpu),
        user_us_per_call: per_call(u1 - u0),
        sys_us_per_call: per_call(s1 - s0),
        allocs_per_call: a as f64 / n as f64,
    }
}

/// Allocations and CPU of the pieces of one call, measured alone (`breakdown` mode).
fn breakdown(records: &[UsageRecord]) {
    fn measure<T>(name: &str, n: u32, mut f: impl FnMut() -> T) {
        let (c0, a0) = (thread_cpu(), allocs());
        for _ in 0..n {
            std::hint::black_box(f());
        }
        let (c, a) = (thread_cpu() - c0, allocs() - a0);
        println!(
            "{name:<28} {:>6.1} µs {:>6.1} allocations",
            c.as_secs_f64() * 1e6 / f64::from(n),
            a as f64 / f64::from(n)
        );
    }
    let input = marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput::builder()
        .product_code("prod-1234")
        .set_usage_records(Some(records.to_vec()))
        .build()
        .unwrap();
    let body = serde_json::to_vec(&input).unwrap();
    measure("clone 25 records", 2000, || records.to_vec());
    measure("validate", 2000, || {
        marketplace_metering::validate::batch_meter_usage(&input)
    });
    measure("serialize", 2000, || serde_json::to_vec(&input).unwrap());
    let response = canned_response(records);
    measure("parse response (from_slice)", 2000, || {
        serde_json::from_slice::<
            marketplace_metering::operation::batch_meter_usage::BatchMeterUsageOutput,
        >(response.as_bytes())
        .unwrap()
    });
    // As the client reads a body: UTF-8 checked once over it, then parsed as a str.
    measure("parse response (client)", 2000, || {
        let text = std::str::from_utf8(std::hint::black_box(response.as_bytes())).unwrap();
        serde_json::from_str::<
            marketplace_metering::operation::batch_meter_usage::BatchMeterUsageOutput,
        >(text)
        .unwrap()
    });
    let signer = Signer::new();
    measure("sigv4 sign", 2000, || signer.sign(&body));
    measure("uuid v4", 2000, uuid_like);
}

/// A `BatchMeterUsage` response body answering `records`, as the service writes it.
fn canned_response(records: &[UsageRecord]) -> String {
    let mut out = String::from("{\"Results\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let rec = serde_json::to_string(r).unwrap();
        out.push_str(&format!(
            "{{\"UsageRecord\":{rec},\"MeteringRecordId\":\"0f6b8a0e-8f3b-4a6e-9d2c-{i:012}\",\"Status\":\"Success\"}}"
        ));
    }
    out.push_str("],\"UnprocessedRecords\":[]}");
    out
}

/// SigV4 over a request with the headers the client signs (user-agent and amz-sdk-request
/// are added after signing, as the AWS SDKs add them).
struct Signer(aws_credential_types::Credentials);

impl Signer {
    fn new() -> Self {
        Signer(aws_credential_types::Credentials::new(
            "AK", "SK", None, None, "b",
        ))
    }

    fn sign(&self, body: &[u8]) -> impl Sized {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let identity: aws_smithy_runtime_api::client::identity::Identity = self.0.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("aws-marketplace")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AWSMPMeteringService.BatchMeterUsage"),
            (
                "amz-sdk-invocation-id",
                "0f6b8a0e-8f3b-4a6e-9d2c-000000000000",
            ),
        ];
        let signable = SignableRequest::new(
            "POST",
            "http://127.0.0.1:4000/",
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        sign(signable, &params).unwrap().into_parts()
    }
}

/// What this machine charges a thread for going idle (`idle` mode). One call's own CPU work
/// with no I/O at all (serialize 25 records, sign, parse the 25-result response) is timed
/// back to back, then with the thread asleep for a while after each, as a sequential client
/// sleeps while the server answers. The work is the same instructions either way, so any
/// difference in CPU per iteration is what idling costs the thread that wakes: on a VM whose
/// vCPUs halt when idle, waking is charged to the woken thread and the caches and branch
/// predictors it left warm are cold again.
fn idle(records: &[UsageRecord], seconds: f64) {
    let input = marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput::builder()
        .product_code("prod-1234")
        .set_usage_records(Some(records.to_vec()))
        .build()
        .unwrap();
    let response = canned_response(records);
    let signer = Signer::new();
    let work = || {
        let body = serde_json::to_vec(&input).unwrap();
        std::hint::black_box(signer.sign(&body));
        let text = std::str::from_utf8(std::hint::black_box(response.as_bytes())).unwrap();
        std::hint::black_box(
            serde_json::from_str::<
                marketplace_metering::operation::batch_meter_usage::BatchMeterUsageOutput,
            >(text)
            .unwrap(),
        );
    };
    let mut busy = 0.0;
    for sleep_us in [0u64, 10, 50, 200] {
        for _ in 0..500 {
            work();
        }
        let (t0, c0) = (Instant::now(), thread_cpu());
        let mut n = 0u64;
        while t0.elapsed().as_secs_f64() < seconds {
            work();
            if sleep_us > 0 {
                std::thread::sleep(Duration::from_micros(sleep_us));
            }
            n += 1;
        }
        let us = (thread_cpu() - c0).as_secs_f64() * 1e6 / n as f64;
        if sleep_us == 0 {
            busy = us;
            println!("one call's CPU work, back to back:          {us:>6.1} µs a call");
        } else {
            println!(
                "the same, asleep {sleep_us:>3} µs after each call: {us:>6.1} µs a call (+{:.1} for waking)",
                us - busy
            );
        }
    }
}

/// The machine's floor for one sequential call: a request of the real call's size written
/// over loopback keep-alive TCP to a thread that answers with a response of the real call's
/// size, blocking sockets and no HTTP, JSON or signing at all (`floor` mode). No client and
/// no server can be faster than this round trip on the same machine in the same state (it
/// is several times faster when the vCPUs are kept from halting; see the README).
fn floor(seconds: f64, request_bytes: usize, response_bytes: usize) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let (mut req, resp) = (vec![0u8; request_bytes], vec![b'r'; response_bytes]);
        while s.read_exact(&mut req).is_ok() {
            if s.write_all(&resp).is_err() {
                break;
            }
        }
    });
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let (req, mut resp) = (vec![b'q'; request_bytes], vec![0u8; response_bytes]);
    let mut round_trip = || {
        c.write_all(&req).expect("write");
        c.read_exact(&mut resp).expect("read");
    };
    for _ in 0..1000 {
        round_trip();
    }
    let (t0, c0, p0) = (Instant::now(), thread_cpu(), process_cpu());
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < seconds {
        for _ in 0..100 {
            round_trip();
        }
        n += 100;
    }
    let (wall, cpu) = (t0.elapsed(), thread_cpu() - c0);
    let other = (process_cpu() - p0).saturating_sub(cpu);
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "loopback floor ({request_bytes} B out, {response_bytes} B back, no HTTP): {:.0} round trips/s, {:.1} µs client CPU, {:.1} µs server CPU each",
        n as f64 / wall.as_secs_f64(),
        us(cpu),
        us(other)
    );
    drop(c);
    let _ = server.join();
}

fn uuid_like() -> u64 {
    let mut b = [0u8; 16];
    // SAFETY: a valid buffer for getrandom.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 16, 0) };
    b[0] as u64
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    // Optional second argument `ours` or `sdk` runs one side only (for profiling); `breakdown`
    // measures the pieces of one call alone; `floor` the machine's loopback round trip; `idle`
    // what the machine charges a thread for sleeping between calls.
    let only = std::env::args().nth(2).unwrap_or_default();
    // Before the emulator starts, so the other thread counted is the echo server alone.
    if only == "floor" {
        // The sizes of our call on the wire, headers included (seen with strace).
        floor(seconds, 2922, 4770);
        return;
    }
    let emu = Emulator::start(EmulatorConfig::default()).expect("emulator");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hour = now - now % 3600;

    // Ours.
    let ours = marketplace_metering::Client::new(
        marketplace_metering::Config::builder()
            .region(metering_emulator::DEFAULT_REGION)
            .endpoint_url(emu.endpoint())
            .static_credentials(
                metering_emulator::DEFAULT_ACCESS_KEY_ID,
                metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
                None,
            )
            .build()
            .unwrap(),
    );
    let records: Vec<UsageRecord> = (1..=25)
        .map(|i| {
            UsageRecord::builder()
                .timestamp(DateTime::from_secs(hour))
                .customer_identifier(format!("cust-{i}"))
                .dimension("users")
                .quantity(i)
                .build()
                .unwrap()
        })
        .collect();
    if only == "breakdown" {
        breakdown(&records);
        return;
    }
    if only == "idle" {
        idle(&records, seconds);
        return;
    }
    let ours_seconds = if only == "sdk" { 0.01 } else { seconds };
    let sdk_seconds = if only == "ours" { 0.01 } else { seconds };
    let ours_fig = run(ours_seconds, || {
        let f = ours
            .batch_meter_usage()
            .product_code(metering_emulator::PRODUCT_CODE)
            .set_usage_records(Some(records.clone()))
            .send();
        async move {
            let out = f.await.expect("ours: call failed");
            assert_eq!(out.results().len(), 25);
        }
    })
    .await;

    // The AWS SDK for Rust.
    use aws_sdk_marketplacemetering as sdk;
    let conf = sdk::Config::builder()
        .behavior_version(sdk::config::BehaviorVersion::latest())
        .region(sdk::config::Region::new(metering_emulator::DEFAULT_REGION))
        .endpoint_url(emu.endpoint())
        .credentials_provider(sdk::config::Credentials::new(
            metering_emulator::DEFAULT_ACCESS_KEY_ID,
            metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "bench",
        ))
        .build();
    let sdk_client = sdk::Client::from_conf(conf);
    let sdk_records: Vec<sdk::types::UsageRecord> = (1..=25)
        .map(|i| {
            sdk::types::UsageRecord::builder()
                .timestamp(aws_sdk_marketplacemetering::primitives::DateTime::from_secs(hour))
                .customer_identifier(format!("cust-{i}"))
                .dimension("users")
                .quantity(i)
                .build()
                .unwrap()
        })
        .collect();
    let sdk_fig = run(sdk_seconds, || {
        let f = sdk_client
            .batch_meter_usage()
            .product_code(metering_emulator::PRODUCT_CODE)
            .set_usage_records(Some(sdk_records.clone()))
            .send();
        async move {
            let out = f.await.expect("sdk: call failed");
            assert_eq!(out.results().len(), 25);
        }
    })
    .await;

    println!("BatchMeterUsage, 25 records, sequential, loopback keep-alive, {seconds} s each");
    for (name, f) in [
        ("marketplace-metering", &ours_fig),
        ("aws-sdk-rust", &sdk_fig),
    ] {
        println!(
            "{name:<21}: {:>9.0} calls/s  {:>6.1} µs client CPU/call (user {:>5.1}, kernel {:>5.1})  {:>5.0} allocations/call  (emulator {:>5.1} µs CPU/call)",
            f.calls_per_sec, f.cpu_us_per_call, f.user_us_per_call, f.sys_us_per_call, f.allocs_per_call, f.server_us_per_call
        );
    }
    println!("(both include the harness's clone of the 25 input records, 51 allocations)");
    println!(
        "ratio                : {:>9.2}x calls/s  {:>6.2}x less CPU",
        ours_fig.calls_per_sec / sdk_fig.calls_per_sec,
        sdk_fig.cpu_us_per_call / ours_fig.cpu_us_per_call
    );
    println!(
        "user CPU ratio       : {:>9.2}x less user-space CPU",
        sdk_fig.user_us_per_call / ours_fig.user_us_per_call
    );
}
