// SPDX-License-Identifier: Apache-2.0
// Blocking calls from a thread pool that recycles its threads, over a slow network: how many
// connections (handshakes) they open, and their latency.

//! ```sh
//! cargo run --release -p marketplace-metering --example pool_bench -- \
//!     [--threads 16] [--calls 640] [--calls-per-thread 4] [--delay-ms 15] [--handshake-rtts 2]
//! cargo run --release -p marketplace-metering --example pool_bench -- \
//!     --endpoint http://127.0.0.1:PORT --delay-ms 0 --threads 8 --calls-per-thread 1000000
//! ```
//!
//! `--threads` workers each make `--calls-per-thread` blocking `BatchMeterUsage` calls (25
//! records) and exit, and are replaced by a new thread, until `--calls` calls are done: a
//! gunicorn `gthread` worker or a C++ thread pool recycling its threads. The network is
//! modelled on 127.0.0.1: the in-process emulator holds every response `--delay-ms` (one round
//! trip), and a proxy in front of it holds each new connection `--handshake-rtts` round trips
//! before its first byte goes through (TCP + TLS 1.3 handshakes: 2). The emulator counts the
//! connections. With `--endpoint` the calls go straight to that server instead (no proxy, no
//! delay, no connection count), to measure the client's CPU per call: the client's user+sys
//! over the timed calls, divided by the calls.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::operation::batch_meter_usage::BatchMeterUsageInput;
use marketplace_metering::primitives::DateTime;
use marketplace_metering::types::UsageRecord;
use marketplace_metering::{blocking, Config};
use metering_emulator::{Emulator, EmulatorConfig, Fault};

struct Args {
    threads: usize,
    calls: usize,
    calls_per_thread: usize,
    delay: Duration,
    handshake_rtts: u32,
    endpoint: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        threads: 16,
        calls: 640,
        calls_per_thread: 4,
        delay: Duration::from_millis(15),
        handshake_rtts: 2,
        endpoint: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let num = || -> u64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--threads" => a.threads = num().max(1) as usize,
            "--calls" => a.calls = num() as usize,
            "--calls-per-thread" => a.calls_per_thread = num().max(1) as usize,
            "--delay-ms" => a.delay = Duration::from_millis(num()),
            "--handshake-rtts" => a.handshake_rtts = num() as u32,
            "--endpoint" => a.endpoint = Some(value),
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// Forwards 127.0.0.1 connections to `target`, holding each new one `hold` first.
fn proxy(target: u16, hold: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
    let port = listener.local_addr().expect("proxy address").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                std::thread::sleep(hold);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                };
                let (c2, s2) = (client.try_clone(), server.try_clone());
                if let (Ok(c2), Ok(s2)) = (c2, s2) {
                    std::thread::spawn(move || pipe(s2, c2));
                    pipe(client, server);
                }
            });
        }
    });
    port
}

fn input() -> BatchMeterUsageInput {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let records = (1..=25).map(|i| {
        UsageRecord::builder()
            .timestamp(DateTime::from_secs(now - now % 3600))
            .customer_identifier(format!("cust-{i}"))
            .dimension("users")
            .quantity(1)
            .build()
            .expect("record")
    });
    BatchMeterUsageInput::builder()
        .product_code(metering_emulator::PRODUCT_CODE)
        .set_usage_records(Some(records.collect()))
        .build()
        .expect("input")
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `calls` calls from `threads` workers that each exit after `per_thread` calls and are
/// replaced; the latency of each call.
fn run(client: &blocking::Client, calls: usize, threads: usize, per_thread: usize) -> Vec<f64> {
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(calls));
    let claim = || next.fetch_add(1, Ordering::Relaxed) < calls;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let fresh = std::thread::scope(|s| {
                    s.spawn(|| {
                        let mut made = 0;
                        while made < per_thread && claim() {
                            let input = input();
                            let t0 = Instant::now();
                            client.batch_meter_usage(input).expect("call succeeds");
                            let ms = t0.elapsed().as_secs_f64() * 1e3;
                            latencies.lock().expect("latencies").push(ms);
                            made += 1;
                        }
                        made
                    })
                    .join()
                    .expect("worker")
                });
                if fresh < per_thread {
                    break;
                }
            });
        }
    });
    latencies.into_inner().expect("latencies")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() {
    let a = args();
    let emu = match a.endpoint {
        Some(_) => None,
        None => Some(Emulator::start(EmulatorConfig::default()).expect("emulator starts")),
    };
    let endpoint = match (&a.endpoint, &emu) {
        (Some(e), _) => e.clone(),
        (None, Some(emu)) => {
            let hold = a.delay * a.handshake_rtts;
            format!("http://127.0.0.1:{}", proxy(emu.port(), hold))
        }
        (None, None) => unreachable!(),
    };
    let client = blocking::Client::new(
        Config::builder()
            .region(metering_emulator::DEFAULT_REGION)
            .endpoint_url(endpoint)
            .static_credentials(
                metering_emulator::DEFAULT_ACCESS_KEY_ID,
                metering_emulator::DEFAULT_SECRET_ACCESS_KEY,
                None,
            )
            .max_attempts(1u32)
            .build()
            .expect("config"),
    );
    // Warm-up: one call, so credentials and TLS set-up are not timed.
    client.batch_meter_usage(input()).expect("warm-up call");
    if let Some(emu) = &emu {
        emu.reset();
        if !a.delay.is_zero() {
            for _ in 0..a.calls {
                emu.push_fault(Fault::Delay {
                    seconds: a.delay.as_secs_f64(),
                });
            }
        }
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut lat = run(&client, a.calls, a.threads, a.calls_per_thread);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    lat.sort_by(f64::total_cmp);
    let connections = emu.as_ref().map(|emu| {
        let mut ids: Vec<u64> = emu.requests().iter().map(|r| r.connection).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    });
    println!(
        "calls {} threads {} calls/thread {} delay {} ms handshake {} rtt: \
         connections {} p50 {:.2} ms p99 {:.2} ms max {:.2} ms {:.0} calls/s cpu {:.0} us/call",
        lat.len(),
        a.threads,
        a.calls_per_thread,
        a.delay.as_millis(),
        a.handshake_rtts,
        connections.map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len() as f64 / secs,
        cpu / lat.len().max(1) as f64 * 1e6,
    );
}
