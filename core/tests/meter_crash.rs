// SPDX-License-Identifier: Apache-2.0
// Crash test of the usage meter: kill -9 a child process at seeded random points, many times.

//! Issue #7: "kill -9 at any moment — inside record(), while sealing, before or after the
//! HTTP call, while writing the result — then restart: every hour is billed exactly once,
//! and no hour is ever re-sent with a different quantity."
//!
//! The test binary runs itself again as a *child* (`crash_child_role`, selected by
//! `MM_CRASH_ROLE=meter`). The child opens a file-backed meter (`Store::sqlite`) in a fixed
//! directory and plays a seeded pseudo-random stream of events, hour by hour: at the start
//! of each hour it sets the meter's clock past the previous hour's grace and flushes
//! (sealing and sending that hour), then records the hour's events. Around every
//! `record()` it appends `b <i>` (before the call) and `d <i>` (after it returned) to
//! `events.log`, and `f <hour>` / `F <hour>` around each flush. Each line is one `write(2)`
//! on an `O_APPEND` file: it is in the kernel before the next step starts, so it survives
//! SIGKILL of the process (this test is about process crashes, not power loss, so it does not
//! fsync the log). A `d <i>` line therefore proves that `record()` returned — the event must
//! be billed; a `b <i>` without `d <i>` is an event in flight at the kill — it may or may not
//! be billed. A restarted child reads the log and continues after the last event begun by
//! each of its threads (it never records an event twice).
//!
//! The parent kills each child with SIGKILL after a seeded random delay, or arms a crash
//! point in the core (`MM_METER_CRASH_AT`, compiled in only for this crate's tests by the
//! `crash-points` feature: see `src/meter/crash.rs`) so that kills land exactly after
//! sealing, mid-seal, before the call, during the call (a `delay` fault holds the call open
//! while a timer aborts the process), after the call before the results are written, in the
//! middle of the results' transaction, and inside `record()`'s transaction. It also queues
//! `delay`, `truncated` (billed, answer lost) and `reset` faults. After the last kill a
//! child runs to the end and flushes everything.
//!
//! The emulator keeps its ledger in a state directory (journal fsync'd before each answer):
//! * `kill9_durable_meter_emulator_in_parent`: the emulator runs in the parent, survives the
//!   children and is restarted from its state directory every few kills; `Durable` meter,
//!   one recording thread.
//! * `kill9_group_commit_meter_and_emulator_process`: the emulator is a separate process
//!   with `--state-dir` (the `metering-emulator` binary when `METERING_EMULATOR_BIN` is set,
//!   otherwise this test binary hosting `Emulator::start` with `state_dir`, which is what
//!   `--state-dir` sets), itself killed with SIGKILL now and then; `Group` meter without an
//!   fsync per commit (`power_loss_safe(false)`), four recording threads.
//! * `kill9_meter_usage_mode_emulator_in_parent`: like the first, in `MeterUsage` mode (one
//!   call per dimension-hour with a `ClientToken` derived from the bucket; the customer is
//!   ignored, so the buckets are (dimension, hour)).
//!
//! Then the ledger, read back from the state directory, must hold for every (customer,
//! dimension, hour) exactly one billed record whose quantity is the sum of the events logged
//! `d` plus a subset of those in flight; no record may have been refused as a duplicate with
//! another quantity (`Emulator::rejected_duplicates`); the meter must have no dead letters,
//! nothing expired, nothing sealed-unsent and nothing pending; and it must count as many
//! acked buckets as the ledger holds records.
//!
//! Hours: the stream covers `2 × kills + 8` consecutive past hours ending an hour before the
//! current real hour (30 to 60 events each). To have that many hours seal and send within
//! the run, the emulator's window (`max_past_secs`) and the meter's `window` are set to 120
//! days instead of 6 hours.
//! Late events: about 4% of events carry a timestamp two hours back; the meter counts them
//! in the current hour (the hour being played), which is where the test expects them.
//!
//! `MM_CRASH_KILLS=<n>` sets the kills per variant (default 40, 25 and 15),
//! `MM_CRASH_SEED=<n>` the seed (default 1, 2 and 3); both are printed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use marketplace_metering::meter::{
    Customer, Durability, MeterConfig, MeterMode, MeterStatus, Store, UsageMeter,
};
use marketplace_metering::primitives::DateTime;
use marketplace_metering::Client;
use metering_emulator::{Emulator, EmulatorConfig, Fault, LedgerEntry};

mod support;

const H: i64 = 3600;
const GRACE: i64 = 60;
const CUSTOMERS: u32 = 12;
const DIMS: [&str; 3] = ["users", "gb", "requests"];
/// The emulator's and the meter's window (instead of 6 hours): long enough for the longest
/// stream (two hours per kill).
const WINDOW: i64 = 120 * 24 * H;
const CHILD_TEST: &str = "crash_child_role";

/// Crash points of the core (see `src/meter/crash.rs`) and how many times each is passed at
/// most before it fires.
const POINTS: [(&str, u64); 8] = [
    ("record_mid_txn", 40),
    ("record_after_commit", 40),
    ("seal_mid_txn", 1),
    ("after_seal", 1),
    ("before_send", 2),
    ("after_send_before_ack", 2),
    ("mid_ack_txn", 30),
    ("after_ack", 2),
];

// ---------------------------------------------------------------------------------------
// The stream of events, a pure function of (seed, index).

#[derive(Clone, Copy, Debug)]
struct Params {
    seed: u64,
    hours: i64,
    per_hour: u64,
    threads: u64,
    t0: i64,
    group: bool,
    /// `MeterMode::MeterUsage`: buckets are (dimension, hour), the customer is ignored.
    meter_usage: bool,
}

impl Params {
    fn total(&self) -> u64 {
        self.hours as u64 * self.per_hour
    }
    fn to_env(self, cmd: &mut Command) {
        cmd.env("MM_CRASH_SEED", self.seed.to_string())
            .env("MM_CRASH_HOURS", self.hours.to_string())
            .env("MM_CRASH_PER_HOUR", self.per_hour.to_string())
            .env("MM_CRASH_THREADS", self.threads.to_string())
            .env("MM_CRASH_T0", self.t0.to_string())
            .env("MM_CRASH_GROUP", if self.group { "1" } else { "0" })
            .env(
                "MM_CRASH_METER_USAGE",
                if self.meter_usage { "1" } else { "0" },
            );
    }
    fn from_env() -> Params {
        let get = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set"));
        Params {
            seed: get("MM_CRASH_SEED").parse().unwrap(),
            hours: get("MM_CRASH_HOURS").parse().unwrap(),
            per_hour: get("MM_CRASH_PER_HOUR").parse().unwrap(),
            threads: get("MM_CRASH_THREADS").parse().unwrap(),
            t0: get("MM_CRASH_T0").parse().unwrap(),
            group: get("MM_CRASH_GROUP") == "1",
            meter_usage: get("MM_CRASH_METER_USAGE") == "1",
        }
    }
}

#[derive(Clone, Debug)]
struct Event {
    customer: String,
    dimension: &'static str,
    quantity: i64,
    /// The event's own timestamp.
    at: i64,
    /// The hour it is billed in (the hour being played, also for late events).
    bucket_hour: i64,
}

fn event(p: &Params, i: u64) -> Event {
    let mut rng = fastrand::Rng::with_seed(p.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i);
    let phase = (i / p.per_hour) as i64;
    let hour = p.t0 + phase * H;
    let late = phase >= 2 && rng.u32(..100) < 4;
    let offset = rng.i64(0..H);
    Event {
        customer: format!("cust-{}", rng.u32(1..=CUSTOMERS)),
        dimension: DIMS[rng.usize(..DIMS.len())],
        quantity: rng.i64(1..=20),
        at: hour + offset - if late { 2 * H } else { 0 },
        bucket_hour: hour,
    }
}

/// The clock while hour `phase` is played: its previous hour is past its grace.
fn phase_clock(p: &Params, phase: i64) -> i64 {
    p.t0 + phase * H + GRACE + 1
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn real_hour() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now / H * H
}

fn env_u64(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn client(endpoint: &str) -> Client {
    Client::new(
        support::config(endpoint)
            .max_attempts(2u32)
            .initial_backoff(Duration::from_millis(5))
            .max_backoff(Duration::from_millis(20))
            .build()
            .unwrap(),
    )
}

fn open_meter(dir: &Path, endpoint: &str, p: &Params, clock: Arc<AtomicI64>) -> UsageMeter {
    let b = MeterConfig::builder()
        .mode(if p.meter_usage {
            MeterMode::MeterUsage
        } else {
            MeterMode::Batch
        })
        .client(client(endpoint))
        .store(Store::sqlite(dir.join("meter.db")))
        .product_code(metering_emulator::PRODUCT_CODE)
        .grace(Duration::from_secs(GRACE as u64))
        .window(Duration::from_secs(WINDOW as u64))
        .clock(Arc::new(move || clock.load(Ordering::SeqCst)))
        // Only the flushes the child logs: a kill is classified by the log.
        .flush_interval(Duration::ZERO)
        .durability(if p.group {
            Durability::Group
        } else {
            Durability::Durable
        })
        // The group variant runs without an fsync per commit (`synchronous=NORMAL`, the
        // benchmarked group-commit mode): a commit must still survive kill -9.
        .power_loss_safe(!p.group);
    UsageMeter::new(b.build().unwrap()).expect("the meter opens")
}

fn emulator_config(state_dir: &Path) -> EmulatorConfig {
    EmulatorConfig {
        state_dir: Some(state_dir.to_path_buf()),
        max_past_secs: WINDOW,
        ..EmulatorConfig::default()
    }
}

/// One line of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Begin(u64),
    Done(u64),
    FlushBegin(i64),
    FlushDone(i64),
    /// A child opened the meter.
    Start,
}

fn read_log(path: &Path) -> Vec<Line> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for l in text.lines() {
        let (tag, n) = l
            .split_once(' ')
            .unwrap_or_else(|| panic!("log line {l:?}"));
        out.push(match tag {
            "b" => Line::Begin(n.parse().unwrap()),
            "d" => Line::Done(n.parse().unwrap()),
            "f" => Line::FlushBegin(n.parse().unwrap()),
            "F" => Line::FlushDone(n.parse().unwrap()),
            "s" => Line::Start,
            _ => panic!("log line {l:?}"),
        });
    }
    out
}

fn log_line(f: &File, line: &str) {
    // One write(2) on an O_APPEND file.
    let mut w = f;
    w.write_all(line.as_bytes()).expect("log write");
}

// ---------------------------------------------------------------------------------------
// The child roles.

/// Not a test of its own: the entry point of the child processes (`MM_CRASH_ROLE`).
#[test]
#[ignore = "run by the crash tests as their child process"]
fn crash_child_role() {
    match std::env::var("MM_CRASH_ROLE").as_deref() {
        Ok("meter") => meter_child(),
        Ok("emulator") => emulator_child(),
        _ => {}
    }
}

fn emulator_child() {
    let dir = PathBuf::from(std::env::var("MM_CRASH_EMU_DIR").unwrap());
    let emu = Emulator::start(emulator_config(&dir)).expect("emulator starts");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "METERING_EMULATOR_PORT={}", emu.port()).unwrap();
        out.flush().unwrap();
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn meter_child() {
    let p = Params::from_env();
    let dir = PathBuf::from(std::env::var("MM_CRASH_DIR").unwrap());
    let endpoint = std::env::var("MM_CRASH_ENDPOINT").unwrap();
    let log_path = dir.join("events.log");
    // Where each thread resumes: after the last event it began (in flight or not).
    let mut next: Vec<u64> = (0..p.threads).collect();
    for l in read_log(&log_path) {
        if let Line::Begin(i) = l {
            let t = (i % p.threads) as usize;
            next[t] = next[t].max(i + p.threads);
        }
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let clock = Arc::new(AtomicI64::new(0));
    let start_phase = (next.iter().copied().min().unwrap().min(p.total()) / p.per_hour) as i64;
    clock.store(phase_clock(&p, start_phase), Ordering::SeqCst);
    let meter = open_meter(&dir, &endpoint, &p, clock.clone());
    log_line(&log, "s 0\n");
    for phase in start_phase..p.hours {
        clock.store(phase_clock(&p, phase), Ordering::SeqCst);
        log_line(&log, &format!("f {phase}\n"));
        match meter.flush_blocking() {
            Ok(s) if s.interrupted.is_none() => log_line(&log, &format!("F {phase}\n")),
            Ok(s) => eprintln!("flush of phase {phase} interrupted: {:?}", s.interrupted),
            Err(e) => eprintln!("flush of phase {phase} failed: {e}"),
        }
        let (lo, hi) = (phase as u64 * p.per_hour, (phase as u64 + 1) * p.per_hour);
        // The hour's events are recorded as it passes: the clock reads its last second
        // (a timestamp more than 5 minutes ahead of the clock is refused).
        clock.store(p.t0 + (phase + 1) * H - 1, Ordering::SeqCst);
        std::thread::scope(|s| {
            for t in 0..p.threads {
                let (meter, log, next) = (&meter, &log, next[t as usize]);
                s.spawn(move || {
                    let mut i = lo + (t + p.threads - lo % p.threads) % p.threads;
                    while i < hi {
                        if i >= next {
                            let e = event(&p, i);
                            log_line(log, &format!("b {i}\n"));
                            meter
                                .record(
                                    Customer::identifier(e.customer),
                                    e.dimension,
                                    e.quantity,
                                    Some(DateTime::from_secs(e.at)),
                                    None,
                                )
                                .unwrap_or_else(|err| panic!("record {i}: {err}"));
                            log_line(log, &format!("d {i}\n"));
                        }
                        i += p.threads;
                    }
                });
            }
        });
    }
    // The end: every hour sealed; flush until nothing is left to send.
    clock.store(phase_clock(&p, p.hours), Ordering::SeqCst);
    for attempt in 0.. {
        log_line(&log, &format!("f {}\n", p.hours));
        let s = meter.flush_blocking();
        let st = meter.status().unwrap();
        if st.sealed == 0 && st.pending == 0 {
            log_line(&log, &format!("F {}\n", p.hours));
            break;
        }
        assert!(
            attempt < 50,
            "the final flush does not finish: {s:?} {st:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// The parent.

/// The emulator, in the parent or as a process of its own.
enum Emu {
    InParent {
        emu: Option<Emulator>,
        dir: PathBuf,
    },
    Process {
        child: Option<Child>,
        port: u16,
        dir: PathBuf,
        bin: Option<PathBuf>,
    },
}

impl Emu {
    fn endpoint(&self) -> String {
        match self {
            Emu::InParent { emu, .. } => emu.as_ref().unwrap().endpoint(),
            Emu::Process { port, .. } => format!("http://127.0.0.1:{port}"),
        }
    }

    fn push_fault(&self, f: &Fault) {
        match self {
            Emu::InParent { emu, .. } => emu.as_ref().unwrap().push_fault(f.clone()),
            Emu::Process { port, .. } => {
                let body = serde_json::to_string(f).unwrap();
                let answer = http(*port, "POST", "/_emulator/faults", &body);
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            }
        }
    }

    // The child is handed to `Emu`, which kills and waits for it (also on drop).
    #[allow(clippy::zombie_processes)]
    fn spawn_process(dir: &Path, bin: Option<&Path>) -> (Child, u16) {
        let mut cmd = match bin {
            Some(b) => {
                let mut c = Command::new(b);
                c.arg("--state-dir")
                    .arg(dir)
                    .arg("--max-past-secs")
                    .arg(WINDOW.to_string());
                c
            }
            None => {
                let mut c = Command::new(std::env::current_exe().unwrap());
                c.args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
                    .env("MM_CRASH_ROLE", "emulator")
                    .env("MM_CRASH_EMU_DIR", dir);
                c
            }
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator process starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let status = child.wait();
                panic!("the emulator process ended before listening: {status:?}");
            }
            if let Some(p) = line.trim().strip_prefix("METERING_EMULATOR_PORT=") {
                // Keep reading: a closed pipe would kill the emulator at its next write
                // (libtest's "running for over 60 seconds" notice).
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return (child, p.parse().unwrap());
            }
        }
    }

    /// SIGKILL for a process, a clean stop for the in-parent one; then start again from
    /// the state directory.
    fn restart(&mut self) {
        match self {
            Emu::InParent { emu, dir } => {
                emu.take().unwrap().shutdown();
                *emu = Some(Emulator::start(emulator_config(dir)).unwrap());
            }
            Emu::Process {
                child,
                port,
                dir,
                bin,
            } => {
                let mut c = child.take().unwrap();
                c.kill().unwrap();
                c.wait().unwrap();
                let (c, p) = Emu::spawn_process(dir, bin.as_deref());
                *child = Some(c);
                *port = p;
            }
        }
    }

    /// Stops it and reads the ledger and the refused duplicates back from the state
    /// directory.
    fn persisted(mut self) -> (Vec<LedgerEntry>, Vec<LedgerEntry>) {
        let dir = match &mut self {
            Emu::InParent { emu, dir } => {
                emu.take().unwrap().shutdown();
                dir.clone()
            }
            Emu::Process { child, dir, .. } => {
                let mut c = child.take().unwrap();
                c.kill().unwrap();
                c.wait().unwrap();
                dir.clone()
            }
        };
        let emu = Emulator::start(emulator_config(&dir)).unwrap();
        let out = (emu.ledger(), emu.rejected_duplicates());
        emu.shutdown();
        out
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Emu::Process { child: Some(c), .. } = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A bare HTTP/1.1 request to the emulator's control API.
fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[derive(Default, Debug)]
struct Stats {
    kills: u64,
    random_in_record: u64,
    random_in_flush: u64,
    random_elsewhere: u64,
    random_before_open: u64,
    crash_points: BTreeMap<String, u64>,
    crash_points_missed: u64,
    emulator_restarts: u64,
    faults: BTreeMap<&'static str, u64>,
}

fn spawn_meter(p: &Params, dir: &Path, endpoint: &str, crash_at: Option<&str>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .env("MM_CRASH_ROLE", "meter")
        .env("MM_CRASH_DIR", dir)
        .env("MM_CRASH_ENDPOINT", endpoint)
        .env_remove("MM_METER_CRASH_AT")
        .stdin(Stdio::null());
    p.to_env(&mut cmd);
    if let Some(c) = crash_at {
        cmd.env("MM_METER_CRASH_AT", c);
    }
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("children.err"))
        .unwrap();
    cmd.stdout(Stdio::null()).stderr(err);
    cmd.spawn().expect("the meter child starts")
}

/// Waits up to `limit` for the child; `None` if it is still running.
fn wait_up_to(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn children_stderr(dir: &Path) -> String {
    let bytes = std::fs::read(dir.join("children.err")).unwrap_or_default();
    let start = bytes.len().saturating_sub(4000);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn signal_of(s: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

fn run(name: &str, mut emu: Emu, dir: &Path, p: Params, kills: u64, restart_every: u64) {
    println!(
        "{name}: seed {} kills {kills} stream {} events ({} hours x {}), {} thread(s), {}",
        p.seed,
        p.total(),
        p.hours,
        p.per_hour,
        p.threads,
        if p.group { "Group" } else { "Durable" }
    );
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(p.seed);
    let mut stats = Stats::default();
    let mut finished = false;
    for round in 0..kills {
        if round > 0 && rng.u64(..restart_every) == 0 {
            emu.restart();
            stats.emulator_restarts += 1;
        }
        // Faults for the next calls.
        let roll = rng.u32(..100);
        let fault = if roll < 30 {
            Some(Fault::Delay {
                seconds: 0.05 + rng.f64() * 0.3,
            })
        } else if roll < 38 {
            Some(Fault::Truncated)
        } else if roll < 43 {
            Some(Fault::Reset)
        } else {
            None
        };
        if let Some(f) = &fault {
            emu.push_fault(f);
            let k = match f {
                Fault::Delay { .. } => "delay",
                Fault::Truncated => "truncated",
                _ => "reset",
            };
            *stats.faults.entry(k).or_default() += 1;
        }
        // Half the children get a crash point armed.
        let crash = (rng.u32(..2) == 0).then(|| {
            let (point, most) = POINTS[rng.usize(..POINTS.len())];
            let n = rng.u64(1..=most);
            if point == "before_send" && rng.u32(..2) == 0 {
                // Die in the middle of the call, held open by the emulator.
                emu.push_fault(&Fault::Delay { seconds: 0.4 });
                (
                    "during_send".to_owned(),
                    format!("{point}:{n}:{}", rng.u64(5..150)),
                )
            } else {
                (point.to_owned(), format!("{point}:{n}"))
            }
        });
        let lines_before = read_log(&dir.join("events.log")).len();
        let mut child = spawn_meter(&p, dir, &emu.endpoint(), crash.as_ref().map(|c| &*c.1));
        let limit = if crash.is_some() {
            Duration::from_secs(4)
        } else {
            Duration::from_millis(rng.u64(15..400))
        };
        let status = match wait_up_to(&mut child, limit) {
            Some(s) => s,
            None => {
                child.kill().unwrap();
                child.wait().unwrap()
            }
        };
        if status.success() {
            finished = true;
            println!("{name}: the stream ended after {round} kills");
            break;
        }
        match signal_of(&status) {
            Some(libc::SIGABRT) => {
                let c = crash
                    .as_ref()
                    .expect("an abort comes from an armed crash point");
                *stats.crash_points.entry(c.0.clone()).or_default() += 1;
            }
            Some(libc::SIGKILL) => {
                if crash.is_some() {
                    stats.crash_points_missed += 1;
                }
                let log = read_log(&dir.join("events.log"));
                match log.last() {
                    _ if log.len() == lines_before => stats.random_before_open += 1,
                    Some(Line::Begin(_)) => stats.random_in_record += 1,
                    Some(Line::FlushBegin(_)) => stats.random_in_flush += 1,
                    _ => stats.random_elsewhere += 1,
                }
            }
            _ => panic!(
                "{name}: a child failed on its own ({status}):\n{}",
                children_stderr(dir)
            ),
        }
        stats.kills += 1;
    }
    // The last child runs to the end.
    if !finished {
        let mut child = spawn_meter(&p, dir, &emu.endpoint(), None);
        let status = wait_up_to(&mut child, Duration::from_secs(600)).expect("the last child ends");
        assert!(
            status.success(),
            "{name}: the last child failed ({status}):\n{}",
            children_stderr(dir)
        );
    }
    println!(
        "{name}: {stats:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The meter's own view, read from its store.
    let endpoint = emu.endpoint();
    let clock = Arc::new(AtomicI64::new(phase_clock(&p, p.hours)));
    let meter = open_meter(dir, &endpoint, &p, clock);
    let status: MeterStatus = meter.status().unwrap();
    let dead = meter.dead_letters().unwrap();
    drop(meter);
    let (ledger, rejected) = emu.persisted();
    verify(name, dir, &p, &ledger, &rejected, &status, &dead);
}

fn verify(
    name: &str,
    dir: &Path,
    p: &Params,
    ledger: &[LedgerEntry],
    rejected: &[LedgerEntry],
    status: &MeterStatus,
    dead: &[marketplace_metering::meter::DeadLetter],
) {
    type Key = (String, String, i64);
    let log = read_log(&dir.join("events.log"));
    let mut begun = HashSet::new();
    let mut done = HashSet::new();
    for l in &log {
        match *l {
            Line::Begin(i) => assert!(begun.insert(i), "event {i} recorded twice"),
            Line::Done(i) => {
                assert!(begun.contains(&i), "event {i} done before begun");
                assert!(done.insert(i), "event {i} done twice");
            }
            _ => {}
        }
    }
    assert_eq!(
        begun.len() as u64,
        p.total(),
        "{name}: every event of the stream was played"
    );
    let mut expected: HashMap<Key, (i64, Vec<i64>)> = HashMap::new();
    for i in 0..p.total() {
        let e = event(p, i);
        let who = if p.meter_usage {
            String::new()
        } else {
            e.customer
        };
        let k = (who, e.dimension.to_owned(), e.bucket_hour);
        if done.contains(&i) {
            expected.entry(k).or_default().0 += e.quantity;
        } else if begun.contains(&i) {
            expected.entry(k).or_default().1.push(e.quantity);
        }
    }
    let in_flight: usize = expected.values().map(|v| v.1.len()).sum();

    assert!(
        rejected.is_empty(),
        "{name}: records re-sent with another quantity: {rejected:?}"
    );
    let mut billed: HashMap<Key, Vec<&LedgerEntry>> = HashMap::new();
    for e in ledger {
        assert_eq!(
            e.product_code.as_deref(),
            Some(metering_emulator::PRODUCT_CODE)
        );
        let who = if p.meter_usage {
            assert_eq!(e.operation, "MeterUsage");
            assert!(e.customer_identifier.is_none());
            String::new()
        } else {
            e.customer_identifier.clone().expect("a CustomerIdentifier")
        };
        billed
            .entry((who, e.dimension.clone(), e.hour))
            .or_default()
            .push(e);
    }
    let mut in_flight_billed = 0usize;
    for (k, entries) in &billed {
        assert_eq!(
            entries.len(),
            1,
            "{name}: {k:?} billed {} times",
            entries.len()
        );
        let (sure, maybe) = expected
            .get(k)
            .unwrap_or_else(|| panic!("{name}: {k:?} billed without any event"));
        let extra = entries[0].quantity - sure;
        // The quantity is the events that returned plus some of those in flight.
        let mut sums = vec![0i64];
        for q in maybe {
            let more: Vec<i64> = sums.iter().map(|s| s + q).collect();
            sums.extend(more);
        }
        assert!(
            sums.contains(&extra),
            "{name}: {k:?} billed {} but its events that returned sum to {sure} and those in flight were {maybe:?}",
            entries[0].quantity
        );
        if extra > 0 {
            in_flight_billed += 1;
        }
    }
    for (k, (sure, _)) in &expected {
        if *sure > 0 {
            assert!(
                billed.contains_key(k),
                "{name}: {k:?} never billed ({sure})"
            );
        }
    }
    assert!(dead.is_empty(), "{name}: dead letters {dead:?}");
    assert_eq!(status.dead_lettered, 0, "{name}: {status:?}");
    assert_eq!(status.expired, 0, "{name}: {status:?}");
    assert_eq!(status.sealed, 0, "{name}: sealed but unsent: {status:?}");
    assert_eq!(status.pending, 0, "{name}: {status:?}");
    assert_eq!(status.acked as usize, ledger.len(), "{name}: {status:?}");
    println!(
        "{name}: ok: {} buckets billed once each, {} events, {in_flight} in flight at a kill ({in_flight_billed} buckets took some), no refused duplicate, no dead letter",
        ledger.len(),
        p.total()
    );
}

fn work_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("mm-crash-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Hours so that the stream outlasts `kills` children: a child armed with a crash point
/// at a seal or a send plays up to the end of the next hour before it dies.
fn hours_for(kills: u64) -> i64 {
    (kills as i64 * 2 + 8).max(24)
}

#[test]
fn kill9_durable_meter_emulator_in_parent() {
    let kills = env_u64("MM_CRASH_KILLS", 40);
    let p = Params {
        seed: env_u64("MM_CRASH_SEED", 1),
        hours: hours_for(kills),
        per_hour: 40,
        threads: 1,
        t0: real_hour() - (hours_for(kills) + 1) * H,
        group: false,
        meter_usage: false,
    };
    let dir = work_dir("durable");
    let emu_dir = dir.join("emulator");
    let emu = Emu::InParent {
        emu: Some(Emulator::start(emulator_config(&emu_dir)).unwrap()),
        dir: emu_dir,
    };
    run("durable", emu, &dir, p, kills, 8);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill9_group_commit_meter_and_emulator_process() {
    let kills = env_u64("MM_CRASH_KILLS", 25);
    let p = Params {
        seed: env_u64("MM_CRASH_SEED", 2),
        hours: hours_for(kills),
        per_hour: 60,
        threads: 4,
        t0: real_hour() - (hours_for(kills) + 1) * H,
        group: true,
        meter_usage: false,
    };
    let dir = work_dir("group");
    let emu_dir = dir.join("emulator");
    let bin = std::env::var_os("METERING_EMULATOR_BIN").map(PathBuf::from);
    let (child, port) = Emu::spawn_process(&emu_dir, bin.as_deref());
    let emu = Emu::Process {
        child: Some(child),
        port,
        dir: emu_dir,
        bin,
    };
    run("group", emu, &dir, p, kills, 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill9_meter_usage_mode_emulator_in_parent() {
    let kills = env_u64("MM_CRASH_KILLS", 15);
    let p = Params {
        seed: env_u64("MM_CRASH_SEED", 3),
        hours: hours_for(kills),
        per_hour: 30,
        threads: 1,
        t0: real_hour() - (hours_for(kills) + 1) * H,
        group: false,
        meter_usage: true,
    };
    let dir = work_dir("meter-usage");
    let emu_dir = dir.join("emulator");
    let emu = Emu::InParent {
        emu: Some(Emulator::start(emulator_config(&emu_dir)).unwrap()),
        dir: emu_dir,
    };
    run("meter-usage", emu, &dir, p, kills, 6);
    let _ = std::fs::remove_dir_all(&dir);
}
