// SPDX-License-Identifier: Apache-2.0
// Test support: a proxy in front of a private PostgreSQL cluster's Unix socket that loses a
// statement's request or its answer, then refuses every connection (a network partition
// that starts in the middle of a write).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does to the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Carries everything.
    Pass = 0,
    /// Drops the next bytes a client sends (the server never sees the statement), ends that
    /// connection, then refuses.
    LoseRequest = 1,
    /// Carries requests, drops the next bytes the server answers (the statement ran, and
    /// committed, but the client never learns it), ends that connection, then refuses.
    LoseAnswer = 2,
    /// Ends every connection at its next byte and every new one at once.
    Refuse = 3,
    /// Carries everything until a client sends a statement containing the proxy's trigger
    /// (see [`PgProxy::lose_commit_answer_after`]); the answer to that client's next `COMMIT`
    /// is then lost, as [`Fault::LoseAnswer`] (the transaction committed).
    Armed = 4,
    /// Every connection open now or made while it lasts stops carrying bytes, for good: a
    /// server that accepts and never answers (a hung backend, a black-holed route). New
    /// connections after it ends carry everything.
    Stall = 5,
}

pub struct PgProxy {
    dir: PathBuf,
    url: String,
    mode: Arc<AtomicU8>,
    trigger: Arc<Mutex<Trigger>>,
    /// Bumped by [`PgProxy::forget_open`]: a connection made in an earlier epoch is dead.
    epoch: Arc<AtomicU64>,
}

/// What [`Fault::Armed`] waits for.
#[derive(Default)]
struct Trigger {
    statement: Vec<u8>,
    seen: bool,
}

fn decode(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%20", " ")
        .replace("%25", "%")
}

fn encode(s: &str) -> String {
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace(' ', "%20")
}

impl PgProxy {
    /// A proxy for the database of `url` (a URL `pg::Cluster::database` returned).
    pub fn start(url: &str) -> PgProxy {
        let (head, host) = url.split_once("?host=").expect("a Unix-socket URL");
        let upstream_dir = PathBuf::from(decode(host));
        let socket = std::fs::read_dir(&upstream_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(".s.PGSQL.") && !n.ends_with(".lock"))
            .expect("the cluster's socket");
        let dir = super::pg::unique_dir("mm-pgproxy");
        let listener = UnixListener::bind(dir.join(&socket)).unwrap();
        let upstream = upstream_dir.join(&socket);
        let mode = Arc::new(AtomicU8::new(Fault::Pass as u8));
        let trigger: Arc<Mutex<Trigger>> = Arc::default();
        let epoch = Arc::new(AtomicU64::new(0));
        let (m, t, e) = (mode.clone(), trigger.clone(), epoch.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                if m.load(Ordering::SeqCst) == Fault::Refuse as u8 {
                    continue; // dropped: closed at once
                }
                if m.load(Ordering::SeqCst) == Fault::Stall as u8 {
                    // Kept open, never answered.
                    std::thread::spawn(move || swallow(client));
                    continue;
                }
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (m1, m2, t1, t2) = (m.clone(), m.clone(), t.clone(), t.clone());
                let born = Born(e.clone(), e.load(Ordering::SeqCst));
                let born2 = Born(e.clone(), born.1);
                std::thread::spawn(move || pump(client, server, m1, t1, born, Fault::LoseRequest));
                std::thread::spawn(move || pump(s2, c2, m2, t2, born2, Fault::LoseAnswer));
            }
        });
        PgProxy {
            url: format!("{head}?host={}", encode(dir.to_str().unwrap())),
            dir,
            mode,
            trigger,
            epoch,
        }
    }

    /// Every connection open now stops carrying bytes, for good, without either end being
    /// told: a NAT or a load balancer that forgot an idle flow. New connections carry
    /// everything.
    pub fn forget_open(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The URL that reaches the database through the proxy.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set(&self, f: Fault) {
        self.mode.store(f as u8, Ordering::SeqCst);
    }

    /// The fault in force (a lost answer or request turns into [`Fault::Refuse`]).
    pub fn mode(&self) -> Fault {
        match self.mode.load(Ordering::SeqCst) {
            0 => Fault::Pass,
            1 => Fault::LoseRequest,
            2 => Fault::LoseAnswer,
            3 => Fault::Refuse,
            4 => Fault::Armed,
            _ => Fault::Stall,
        }
    }

    /// Loses the answer to the `COMMIT` that follows the first statement containing
    /// `statement` (a transaction that committed, its client never told).
    pub fn lose_commit_answer_after(&self, statement: &str) {
        *self.trigger.lock().unwrap() = Trigger {
            statement: statement.as_bytes().to_vec(),
            seen: false,
        };
        self.set(Fault::Armed);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The proxy's epoch and the one a connection was made in.
struct Born(Arc<AtomicU64>, u64);

/// Copies `from` to `to`; `lose` is the fault that drops this direction's bytes.
fn pump(
    mut from: UnixStream,
    mut to: UnixStream,
    mode: Arc<AtomicU8>,
    trigger: Arc<Mutex<Trigger>>,
    born: Born,
    lose: Fault,
) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = mode.load(Ordering::SeqCst);
        if now == Fault::Stall as u8 || born.0.load(Ordering::SeqCst) != born.1 {
            swallow(from);
            return;
        }
        if now == Fault::Armed as u8 && lose == Fault::LoseRequest {
            let mut t = trigger.lock().unwrap();
            if t.seen && contains(&buf[..n], b"COMMIT") {
                // The COMMIT goes through; its answer is lost.
                mode.store(Fault::LoseAnswer as u8, Ordering::SeqCst);
            } else if contains(&buf[..n], &t.statement) {
                t.seen = true;
            }
            drop(t);
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            continue;
        }
        if now == lose as u8 || now == Fault::Refuse as u8 {
            mode.store(Fault::Refuse as u8, Ordering::SeqCst);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Reads and drops what `conn` sends until it closes; answers nothing.
fn swallow(mut conn: UnixStream) {
    let mut buf = [0u8; 16384];
    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
}
