// SPDX-License-Identifier: Apache-2.0
// Test support: a proxy in front of a private PostgreSQL cluster's Unix socket that loses a
// statement's request or its answer, then refuses every connection (a network partition
// that starts in the middle of a write).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

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
}

pub struct PgProxy {
    dir: PathBuf,
    url: String,
    mode: Arc<AtomicU8>,
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
        let m = mode.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                if m.load(Ordering::SeqCst) == Fault::Refuse as u8 {
                    continue; // dropped: closed at once
                }
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (m1, m2) = (m.clone(), m.clone());
                std::thread::spawn(move || pump(client, server, m1, Fault::LoseRequest));
                std::thread::spawn(move || pump(s2, c2, m2, Fault::LoseAnswer));
            }
        });
        PgProxy {
            url: format!("{head}?host={}", encode(dir.to_str().unwrap())),
            dir,
            mode,
        }
    }

    /// The URL that reaches the database through the proxy.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set(&self, f: Fault) {
        self.mode.store(f as u8, Ordering::SeqCst);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies `from` to `to`; `lose` is the fault that drops this direction's bytes.
fn pump(mut from: UnixStream, mut to: UnixStream, mode: Arc<AtomicU8>, lose: Fault) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = mode.load(Ordering::SeqCst);
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
