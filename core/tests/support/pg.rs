// SPDX-License-Identifier: Apache-2.0
// Test support: a private PostgreSQL cluster (scripts/private-postgres.sh) for fleet tests.
//
// A test that cannot start PostgreSQL fails; it never skips.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/private-postgres.sh")
}

fn run(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .env("PG_FSYNC", "off")
        .output()
        .expect("bash runs private-postgres.sh");
    assert!(
        out.status.success(),
        "private-postgres.sh {args:?} failed (PostgreSQL is required; the test does not skip):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A new directory under the temporary one, named `prefix`, the pid and the time.
pub fn unique_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running cluster in a temporary directory; stopped and removed on drop.
pub struct Cluster {
    pub dir: PathBuf,
    names: AtomicUsize,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = unique_dir("mm-pg");
        run(&["start", dir.to_str().unwrap()]);
        Cluster {
            dir,
            names: AtomicUsize::new(0),
        }
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        let n = self.names.fetch_add(1, Ordering::SeqCst);
        run(&["createdb", self.dir.to_str().unwrap(), &format!("t{n}")])
    }

    /// The URL of database `name` (as `database` returned it).
    pub fn db_name(url: &str) -> String {
        let path = url.split('?').next().unwrap();
        path.rsplit('/').next().unwrap().to_owned()
    }

    /// The URL of pgbouncer with `pool_mode` `mode` (`transaction`: the pooled port of many
    /// managed platforms) and `servers` server connections, in front of the database of
    /// `url` (one pooler a database); stopped with the cluster.
    pub fn pooler(&self, url: &str, mode: &str, servers: usize) -> String {
        run(&[
            "pooler",
            self.dir.to_str().unwrap(),
            &Self::db_name(url),
            mode,
            &servers.to_string(),
        ])
    }

    /// psql on the database of `url`, unaligned and tuples only.
    fn psql_command(&self, url: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(script()).args([
            "psql",
            self.dir.to_str().unwrap(),
            &Self::db_name(url),
            "-tA",
        ]);
        c
    }

    /// Runs SQL in the database of `url`; returns psql's unaligned output.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = self
            .psql_command(url)
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        } else {
            format!("ERROR: {text}")
        }
    }

    /// A psql session on the database of `url` (as `role`, else the owner) reading SQL from
    /// its stdin (piped), its output discarded; it ends when its stdin is closed.
    pub fn psql_session(&self, url: &str, role: Option<&str>) -> std::process::Child {
        let mut c = self.psql_command(url);
        if let Some(role) = role {
            c.args(["-U", role]);
        }
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql runs")
    }

    /// `pg_ctl restart -m immediate`: the server crashes and recovers.
    pub fn restart(&self) {
        run(&["restart", self.dir.to_str().unwrap()]);
    }

    /// Ends every connection to the database of `url` but this one (the meters' included).
    pub fn terminate_backends(&self, url: &str) -> String {
        self.psql(
            url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
    }
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(c) = SHARED.get() {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", c.dir.to_str().unwrap()])
            .output();
    }
}

/// One cluster for the whole test binary, stopped when the process exits.
pub fn shared() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let c = Cluster::start();
        // SAFETY: registers a plain extern "C" function; it runs once at exit.
        unsafe { libc::atexit(stop_shared) };
        c
    })
}

/// A fresh database on the shared cluster.
pub fn fresh_url() -> String {
    shared().database()
}
