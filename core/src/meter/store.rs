// SPDX-License-Identifier: Apache-2.0
// The meter's SQLite store: versioned schema, bucket state machine, dead letters.

//! The SQLite side of the meter. Every state change is one transaction.
//!
//! Bucket states: `pending` (still accumulating) → `sealed` (quantity frozen in
//! `sealed_quantity`) → `sending` (a call carrying exactly `sealed_quantity` may have reached
//! the service) → `acked` | `dead_lettered` | `expired`. A trigger refuses any change to a
//! `sealed_quantity` once written.

mod outcomes;
mod schema;
pub(crate) use schema::V1_TOKEN;
mod seal;
mod write;

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::owner::{self, Owner};
use super::{Customer, MeterEvent};
use crate::error::FieldPath;
use crate::runtime::process_generation;
use crate::Error;
use write::MULTI_ROWS;

/// A store error. Those of a store that is busy past the busy timeout (another process
/// holds its write lock), full or failing I/O are retryable: the same call may succeed
/// later, and a caller that retries only retryable errors must not drop the usage.
pub(crate) fn store_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let why = match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            Some("another connection holds the store's write lock")
        }
        Some(C::DiskFull) => Some("the disk is full"),
        Some(C::SystemIoFailure) => Some("the store's file system cannot read or write it"),
        _ => None,
    };
    match why {
        Some(why) => Error::invalid_state(format!(
            "meter store: {e} ({why}); the call may succeed if made again"
        ))
        .with_retryable(true)
        .with_source(e),
        None => Error::invalid_state(format!("meter store: {e}")).with_source(e),
    }
}

/// Aggregated allocations: canonical tags JSON (`""` for none) → quantity.
pub(crate) type Allocs = BTreeMap<String, i64>;

/// One bucket ready to be sent.
#[derive(Clone, Debug)]
pub(crate) struct SendItem {
    pub id: i64,
    /// The product code the bucket was recorded under (empty: without one, by license).
    pub product: String,
    pub customer: Option<Customer>,
    pub dimension: String,
    pub hour: i64,
    pub quantity: i64,
    pub allocations: Option<Allocs>,
    /// The bucket's own part of its `MeterUsage` client token (see `send::client_token`):
    /// none in the fleet store, and in buckets made before the local store had it.
    pub token_nonce: Option<String>,
    /// Left `sending` by an earlier flush or claim (an answer lost, a sender gone): the service
    /// may have metered it then (see [`MeterEventKind::Expired`](super::MeterEventKind::Expired)).
    pub unanswered: bool,
}

/// The result of sending one bucket.
pub(crate) enum Outcome {
    Ack(i64, String),
    Dead(i64, String, String),
    Expire(i64),
    /// Back to `sealed`: certainly not processed (throttled, unprocessed).
    Revert(i64),
}

/// What [`Db::apply`] did with a quantity.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Added to the event's own hour.
    Added,
    /// The event's hour was sealed: added to this hour instead.
    Moved(i64),
    /// Nothing added: the bucket's sum would have been this, past the model's maximum.
    Overflow(i64),
}

/// How long a closed (acked or expired) bucket is kept: a store kept every hour ever, one
/// row per customer, dimension and hour, until its disk was full. The SQLite store counts
/// the week back from the newest closed hour of each customer and dimension, which stays:
/// a clock stepping back into it moves usage past it (`Db::apply`), a week covers any step
/// back a clock takes before NTP, and counted from the data, a clock days fast deletes
/// nothing recent. The fleet store, whose late usage lands by its sealed hours (which
/// stay), counts from its clock. Dead letters stay (the seller's to requeue or look at).
pub(crate) const KEEP_CLOSED_SECS: i64 = 7 * 86_400;

/// The most closed buckets one transaction prunes (2,000 take about 15 ms on a
/// 2-million-row store); a flush prunes batch after batch (see [`PRUNE_FOR`]).
pub(crate) const PRUNE_AT_ONCE: i64 = 2_000;

/// What a flush logs when its prune failed.
pub(crate) const PRUNE_FAILED: &str =
    "meter: closed hours could not be pruned; the next flush tries again";

/// How long a flush goes on pruning closed buckets, batch after batch, when more are left:
/// 10,000 a flush (600,000 buckets an hour at the default interval) fell behind a seller
/// whose hours close two million (100,000 customers, 20 dimensions), and the store grew for
/// good. A second a flush prunes several million an hour.
pub(crate) const PRUNE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// What `prepare` found.
#[derive(Default)]
pub(crate) struct Prepared {
    pub sealed: usize,
    pub items: Vec<SendItem>,
    pub events: Vec<MeterEvent>,
}

/// Meter-wide settings the store needs.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub product_code: String,
    pub grace: i64,
    pub window: i64,
    pub alarm_before: i64,
    pub zero_fill: bool,
}

/// id, license, customer kind, customer, dimension, hour, sealed quantity, allocations, alarmed,
/// product code, token nonce, sent before (`attempts`).
type SealedRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    bool,
    String,
    Option<String>,
    bool,
);

pub(crate) struct Db {
    /// Closed on drop only in the process that opened it (see `owner`).
    conn: ManuallyDrop<Connection>,
    /// The claim on a file store; `None` in memory.
    owner: Option<Owner>,
    generation: u64,
    /// When the write path last found the file in place (see [`Db::check_in_place_lately`]).
    in_place_at: Option<std::time::Instant>,
    /// The `-wal` and `-shm` files SQLite keeps beside an open store, and their ids.
    sidecars: Vec<(PathBuf, (u64, u64))>,
    /// `synchronous=FULL` (see [`Db::open`]), again when the connection is opened anew.
    power_loss_safe: bool,
    /// Why the store cannot be used any more: its connection could not be opened anew.
    broken: Option<String>,
    /// The hour (of the meter's clock) closed buckets were last pruned in (see `prune_step`).
    pruned_hour: Option<i64>,
    /// The newest hour the service took (`Some(None)`: none yet; `None`: not read since
    /// the last outcomes). See [`Db::sealed_through`].
    sealed_through: Option<Option<i64>>,
    /// When writing a removed store again last failed, and how (see
    /// [`Db::restore_removed`]).
    restore_failed: Option<(std::time::Instant, String, bool)>,
    /// Checks the files at every write, not once a second (after a restore, see
    /// [`Db::write_again`]).
    watch_sidecars: bool,
}

impl Drop for Db {
    fn drop(&mut self) {
        if self.generation == process_generation() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.conn) };
        }
        // Inherited across fork(): closing it here could delete the parent's WAL. Leaked.
    }
}

/// A bucket's customer as the stores keep it: `(customer_kind, customer, license_arn)`. No
/// customer (the `MeterUsage` mode) is kept as an empty identifier, `("C", "", "")`: an
/// encoding of the on-disk format only, turned back into `None` by [`customer_from`].
pub(crate) fn customer_parts(c: Option<&Customer>) -> (&'static str, &str, &str) {
    match c {
        None => ("C", "", ""),
        Some(Customer::Identifier(id)) => ("C", id.as_str(), ""),
        Some(Customer::AwsAccount {
            account_id,
            license_arn,
        }) => ("A", account_id.as_str(), license_arn.as_str()),
    }
}

/// The customer of a stored row (see [`customer_parts`]).
pub(crate) fn customer_from(kind: &str, id: String, license_arn: String) -> Option<Customer> {
    if kind == "A" {
        Some(Customer::AwsAccount {
            account_id: id,
            license_arn,
        })
    } else if id.is_empty() {
        None
    } else {
        Some(Customer::Identifier(id))
    }
}

fn parse_allocs(s: Option<String>) -> Option<Allocs> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

/// How long a statement waits for another connection's lock (another process's writer).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection to the store at `path` (`None`: a private in-memory database).
fn raw_open(path: Option<&Path>) -> Result<Connection, Error> {
    let conn = match path {
        Some(p) => Connection::open(p),
        None => Connection::open_in_memory(),
    }
    .map_err(store_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_err)?;
    Ok(conn)
}

/// The path a store is kept at: `path`, or the target of the symlink it is (made there when
/// missing, as SQLite would). SQLite keeps the `-wal` and `-shm` files beside the target,
/// where the meter must watch them. Refused, untouched, when it names something other than a
/// regular file: a device was made owner-only, and a directory left a `-lock` file beside it.
fn store_path(path: &Path) -> Result<PathBuf, Error> {
    let refuse = |why: String| Err(Error::invalid_input(FieldPath::argument("path"), why));
    let mut at = path.to_path_buf();
    // As the kernel follows a chain of links: at most 40.
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&at) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(at),
            Err(e) => return Err(unreadable(&at, "cannot read", e)),
            Ok(m) => m,
        };
        if !meta.file_type().is_symlink() {
            if !meta.is_file() {
                return refuse(format!(
                    "{} is not a regular file (a directory, a device, a FIFO or a socket \
                     cannot hold a store)",
                    at.display()
                ));
            }
            if mounted_alone(&at) {
                return refuse(format!(
                    "{} is a mount point of its own (a single file mounted, as `docker run -v \
                     ./m.db:/data/m.db` or a Kubernetes subPath does): SQLite keeps the \
                     store's -wal beside it, on another filesystem that does not outlive the \
                     container, and recent usage would be lost with it; mount the directory \
                     that holds the store instead",
                    at.display()
                ));
            }
            return Ok(at);
        }
        let target = match std::fs::read_link(&at) {
            Ok(t) => t,
            Err(e) => return Err(unreadable(&at, "cannot read the symlink", e)),
        };
        at = match at.parent() {
            Some(dir) => dir.join(target),
            None => target,
        };
    }
    refuse(format!("{}: too many levels of symlinks", path.display()))
}

/// What the filesystem holding a store at `path` loses, when it loses the store with the
/// process's machine or container: memory (tmpfs, ramfs), or a container's own writable
/// layer (overlay), gone when the container is replaced (Kubernetes replaces it at every
/// restart). `None` for anything else, or when it cannot be told.
#[cfg(target_os = "linux")]
fn ephemeral(path: &Path) -> Option<(&'static str, &'static str)> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statfs` writes the struct, which is plain data, for a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // The magic numbers are 32 bits; `f_type` is signed, and 32 bits wide on some targets.
    let reboot = "at the next reboot";
    match (st.f_type as u64) & 0xffff_ffff {
        0x0102_1994 => Some(("memory (tmpfs)", reboot)),
        0x8584_58f6 => Some(("memory (ramfs)", reboot)),
        0x794c_7630 => Some((
            "a container's own layer (overlay)",
            "when the container is replaced (Kubernetes replaces it at every restart)",
        )),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn ephemeral(_path: &Path) -> Option<(&'static str, &'static str)> {
    None
}

/// Whether this process runs in an AWS Lambda execution environment, whose disk and memory
/// go when Lambda retires it, with no signal to the process, and of which many run at once.
pub(super) fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some_and(|v| !v.is_empty())
}

/// Says, for a meter whose own store is the file at `path` or memory (`None`), that on
/// AWS Lambda the store goes with the execution environment, naming the fleet store. Not
/// from [`Db::open`]: a fleet meter opens a memory database it never records into.
pub(super) fn say_if_on_lambda(path: Option<&Path>) {
    if !on_lambda() {
        return;
    }
    let what = match path {
        None => "the meter's memory store".to_owned(),
        Some(p) if in_lambda_environment(p) => format!("the store {}", p.display()),
        // A file system the environments share (EFS): it outlives them, but one meter holds
        // a store at a time, and the others are refused.
        Some(p) => {
            super::note(&format!(
                "the store {} is shared by the AWS Lambda function's execution environments \
                 (EFS), of which one meter at a time may hold it, and the others are refused \
                 while it does: on Lambda use the fleet store (database_url)",
                p.display()
            ));
            return;
        }
    };
    super::note(&format!(
        "{what} is in an AWS Lambda execution environment, lost with every hour not yet sent \
         when Lambda retires the environment (with no signal first), and each concurrent \
         environment counts its own share of a customer-hour, of which the service bills the \
         first sent: on Lambda use the fleet store (database_url)"
    ));
}

/// Whether the store file at `path` is an AWS Lambda execution environment's own (its
/// `/tmp`, or memory), lost with it, not on a file system the environments share (EFS).
fn in_lambda_environment(path: &Path) -> bool {
    if !on_lambda() {
        return false;
    }
    // Where its directory really is: a relative path, a symlink or `..` on the way.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let real = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    real.starts_with("/tmp") || ephemeral(path).is_some()
}

/// Where a store file at `path` is lost, when it is lost with its machine,
/// container or Lambda environment: what holds it, and when it goes.
pub(super) fn lost_with(path: &Path) -> Option<(String, &'static str)> {
    if in_lambda_environment(path) {
        return Some((
            "in an AWS Lambda execution environment".to_owned(),
            "when Lambda retires the environment, with no signal first",
        ));
    }
    ephemeral(path).map(|(on, lost)| (format!("on {on}"), lost))
}

/// Whether the file at `path` is mounted on its own: another mount than its directory's
/// (the mount ids differ, or failing those the devices), so that what SQLite writes beside
/// it lands on its directory's filesystem, not on the file's. Unknown (a directory that
/// cannot be read) counts as no.
fn mounted_alone(path: &Path) -> bool {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(target_os = "linux")]
    if let (Some(f), Some(d)) = (mount_id(path), mount_id(dir)) {
        return f != d;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(path), std::fs::metadata(dir)) {
            (Ok(f), Ok(d)) => f.dev() != d.dev(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    false
}

/// The id of the mount `path` is on (statx, Linux 5.8 and later), following symlinks.
#[cfg(target_os = "linux")]
fn mount_id(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a NUL-terminated path and `stx` a statx buffer, both alive for the call.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MNT_ID, &mut stx) };
    (rc == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id)
}

/// A store path that could not be read (a directory without permission): the host's state,
/// not the caller's input.
fn unreadable(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::invalid_state(format!("meter store {}: {what}: {e}", path.display())).with_source(e)
}

/// Sets a connection up as every store's: WAL (a file store), `synchronous`, checkpoints.
fn configure(conn: &Connection, file: bool, power_loss_safe: bool) -> Result<(), Error> {
    if file {
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(store_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::invalid_state(format!(
                "meter store: cannot switch to WAL mode (got {mode})"
            )));
        }
    }
    // FULL: a commit survives power loss. NORMAL (WAL): it survives a crash of the
    // process (kill -9), not of the machine.
    let sync = if power_loss_safe { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
        .map_err(store_err)?;
    if file {
        // A checkpoint (two fsyncs, run by the commit that crosses the threshold) every
        // 8,000 WAL pages (32 MiB) instead of 1,000: it costs every commit a share, and
        // on a busy disk an fsync can take milliseconds.
        // A reader that stays in a transaction (a monitoring `sqlite3` shell) stops
        // checkpoints from finishing and the WAL grows; once readers let go, the next
        // checkpoint truncates it to at most 64 MiB.
        conn.execute_batch("PRAGMA wal_autocheckpoint=8000; PRAGMA journal_size_limit=67108864;")
            .map_err(store_err)?;
    }
    // One cached statement per multi-row size, plus the others.
    conn.set_prepared_statement_cache_capacity(MULTI_ROWS + 16);
    Ok(())
}

impl Db {
    /// Opens (or creates) the store; `None` is a private in-memory database. A file store is
    /// claimed for this meter first (see `owner`).
    pub(crate) fn open(path: Option<&Path>, power_loss_safe: bool) -> Result<Db, Error> {
        let given = path;
        let resolved = path.map(store_path).transpose()?;
        let path = resolved.as_deref();
        let generation = process_generation();
        // Another application's database is refused before anything touches it (see
        // `refuse_foreign`); an empty or new file is a new store.
        if let Some(p) = path {
            super::owner::refuse_held_store(p)?;
        }
        if let Some(p) = path.filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)) {
            schema::refuse_foreign(p)?;
        }
        // The name the caller gave, when it is a symlink to the store.
        let link = given.filter(|g| Some(*g) != path);
        let owner = path.map(|p| Owner::claim(p, link)).transpose()?;
        // On Lambda the meter says so itself (see `say_if_on_lambda`).
        if let Some((p, (on, lost))) = path
            .filter(|_| !on_lambda())
            .and_then(|p| Some((p, ephemeral(p)?)))
        {
            super::note(&format!(
                "the store {} is on {on}, lost {lost}, and with it every hour not yet sent: \
                 keep it on a disk or a volume that outlives the machine or container",
                p.display()
            ));
        }
        let conn = raw_open(path)?;
        if let Some(p) = path {
            // Again, now that the file is ours to read whole.
            schema::check_ours(&conn, p)??;
        }
        configure(&conn, path.is_some(), power_loss_safe)?;
        let mut db = Db {
            conn: ManuallyDrop::new(conn),
            owner,
            generation,
            in_place_at: None,
            pruned_hour: None,
            sealed_through: None,
            restore_failed: None,
            watch_sidecars: false,
            sidecars: Vec::new(),
            power_loss_safe,
            broken: None,
        };
        db.migrate()?;
        db.note_sidecars();
        Ok(db)
    }

    /// Notes the ids of the `-wal` and `-shm` files beside a file store, by the absolute path
    /// the claim holds (a later `chdir` must not move them).
    fn note_sidecars(&mut self) {
        self.sidecars.clear();
        let Some(o) = &self.owner else { return };
        for suffix in ["-wal", "-shm"] {
            let mut side = o.path().as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            if let Ok(id) = owner::path_id(&side) {
                self.sidecars.push((side, id));
            }
        }
    }

    /// Fails when the store's file was removed or replaced while open (see
    /// [`Owner::check_in_place`]); an in-memory store never does.
    ///
    /// A removed or replaced `-wal` or `-shm` file is mended instead. Committed transactions
    /// in an unlinked WAL reach the store file only at a checkpoint, so a process killed
    /// before one loses them and a reader never sees them; and a removed `-shm` lets another
    /// connection index the WAL on its own. A checkpoint moves what is committed into the
    /// store file at once (through the files SQLite still has open), then the connection is
    /// opened anew, with new files. Until the checkpoint completes (a reader holds the WAL)
    /// the store refuses, retryably.
    pub(crate) fn check_in_place(&mut self) -> Result<(), Error> {
        if let Some(why) = &self.broken {
            return Err(Error::invalid_state(why.clone()));
        }
        if let Some(o) = &self.owner {
            if let Err(e) = o.check_in_place() {
                if !o.removed() {
                    return Err(e);
                }
                return self.restore_removed().map_err(|why| {
                    Error::invalid_state(format!(
                        "{}; writing it again at its path failed: {}",
                        e.message(),
                        why.message()
                    ))
                    .with_retryable(why.is_retryable())
                });
            }
        }
        let Some((side, _)) = self
            .sidecars
            .iter()
            .find(|(p, id)| owner::path_id(p).ok() != Some(*id))
            .cloned()
        else {
            return Ok(());
        };
        let gone = format!(
            "meter store: {} was removed or replaced while this meter had the store open",
            side.display()
        );
        // Without waiting for readers: a reader holding the WAL makes it a quick, retryable
        // refusal, where the busy timeout would hold every write 10 s.
        let _ = self.conn.busy_timeout(std::time::Duration::ZERO);
        let moved = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        match moved {
            Ok(0) => {}
            Ok(_) => {
                return Err(Error::invalid_state(format!(
                    "{gone}; what it committed is being moved into the store file, which a \
                     reader holds: try again"
                ))
                .with_retryable(true))
            }
            Err(e) => {
                let e = store_err(e);
                return Err(Error::invalid_state(format!(
                    "{gone}; what it committed could not be moved into the store file: {}",
                    e.message()
                ))
                .with_retryable(e.is_retryable()));
            }
        }
        self.reopen().map_err(|e| {
            Error::invalid_state(format!(
                "{gone}; what it committed was saved, but {}",
                e.message()
            ))
        })?;
        super::note(&format!(
            "{gone}; what it committed was saved in the store file and the store opened anew"
        ));
        Ok(())
    }

    /// The store file was removed while open (a clean-up, a `/tmp` cleaner): the open
    /// connection still holds everything, the hours not sealed yet and every record
    /// acknowledged since, and the process's end would lose it. It is written again at its
    /// path and the store opened anew on it (see [`Db::write_again`]). A failure is
    /// answered again for a second without another try: each try copies the whole store.
    fn restore_removed(&mut self) -> Result<(), Error> {
        if let Some((at, message, retryable)) = &self.restore_failed {
            if at.elapsed() < std::time::Duration::from_secs(1) {
                return Err(Error::invalid_state(message.clone()).with_retryable(*retryable));
            }
        }
        let r = self.write_again();
        self.restore_failed = r.as_ref().err().map(|e| {
            (
                std::time::Instant::now(),
                e.message().to_owned(),
                e.is_retryable(),
            )
        });
        r
    }

    /// [`Db::restore_removed`]'s one try: `VACUUM INTO` a file beside the path, created
    /// owner-only, which is locked, and the lock file claimed, before it is linked to the
    /// path (which fails if a file appeared there meanwhile), so no other meter can claim it
    /// in between. The `-wal` and `-shm` files at the path are the removed store's (the copy
    /// was never opened by SQLite): they are removed before the copy is linked (see
    /// [`Owner::link_restored`]), or whatever opened it would take the removed store's WAL
    /// for its own. (A reader of the removed
    /// store that closes last deletes the new store's `-wal` and `-shm` by those names, which
    /// the write path mends as for any removed `-wal`, checking at every write.)
    fn write_again(&mut self) -> Result<(), Error> {
        let Some(o) = &self.owner else {
            return Ok(());
        };
        let path = o.path().to_path_buf();
        let tmp = o.restore_file()?;
        let written = {
            #[cfg(unix)]
            let name = std::os::unix::ffi::OsStrExt::as_bytes(tmp.as_os_str()).to_vec();
            #[cfg(not(unix))]
            let name = tmp.to_string_lossy().into_owned().into_bytes();
            self.conn
                .execute("VACUUM INTO CAST(?1 AS TEXT)", [name])
                .map_err(store_err)
        };
        let sync = self.power_loss_safe;
        let linked = written.and_then(|_| match self.owner.as_mut() {
            Some(o) => o.link_restored(&tmp, sync),
            None => Ok(()),
        });
        let _ = std::fs::remove_file(&tmp);
        linked?;
        self.reopen()?;
        // A reader of the removed store that closes last deletes the `-wal` and `-shm` at the
        // path by name, now this store's: checked at every write from now on, not once a
        // second, so that no record is acknowledged into a WAL that has no name.
        self.watch_sidecars = true;
        super::note(&format!(
            "meter store {}: the file was removed while this meter had it open; it was \
             written again at its path from the open store, nothing lost",
            path.display()
        ));
        Ok(())
    }

    /// Closes the connection and opens it anew. Closed first: closing removes the `-wal`
    /// and `-shm` files at their paths, which must not be the new connection's. A
    /// connection that cannot be opened leaves the store refusing everything (an in-memory
    /// read-only stand-in answers errors meanwhile, never an empty store).
    fn reopen(&mut self) -> Result<(), Error> {
        let Some(path) = self.owner.as_ref().map(|o| o.path().to_path_buf()) else {
            return Ok(());
        };
        let stand_in =
            Connection::open_in_memory_with_flags(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(store_err)?;
        // Checked again at the next write, whatever happens here.
        self.in_place_at = None;
        let old = std::mem::replace(&mut *self.conn, stand_in);
        // A connection that does not close cleanly is dropped (closed anyway).
        let _ = old.close();
        let fresh = raw_open(Some(&path))
            .and_then(|c| configure(&c, true, self.power_loss_safe).map(|()| c));
        match fresh {
            Ok(conn) => {
                *self.conn = conn;
                self.note_sidecars();
                Ok(())
            }
            Err(e) => {
                self.broken = Some(format!(
                    "meter store {}: cannot be opened again ({e}): close this meter and \
                     open a new one",
                    path.display()
                ));
                Err(e)
            }
        }
    }

    /// [`Db::check_in_place`] for the write path, at most once a second while the file is
    /// in place (a `stat`): a record committed to a removed file would be acknowledged and
    /// lost when the process ends. Once the file is gone, every write is refused.
    pub(crate) fn check_in_place_lately(&mut self) -> Result<(), Error> {
        if let Some(why) = &self.broken {
            return Err(Error::invalid_state(why.clone()));
        }
        let now = std::time::Instant::now();
        if !self.watch_sidecars
            && self
                .in_place_at
                .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1))
        {
            return Ok(());
        }
        self.check_in_place()?;
        self.in_place_at = Some(now);
        Ok(())
    }

    /// Lets another meter open the file (this one was closed).
    pub(crate) fn release_claim(&mut self) {
        if let Some(o) = &mut self.owner {
            o.release();
        }
    }

    /// The schema version of the open store.
    #[cfg(test)]
    pub(crate) fn user_version(&self) -> i64 {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap_or(-1)
    }

    /// The newest hour the service took (acked). It was sealed, and every bucket of an hour
    /// seals at once, so an hour up to it is closed for every customer and dimension, a
    /// bucket or not: usage for it (a clock stepped back past it) lands after it (see
    /// [`Db::apply`]). Only the service's acceptance moves it: an hour sealed by a clock
    /// that ran fast, which the service refuses as in the future (and which that clock may
    /// even expire), does not carry every later event days ahead.
    pub(crate) fn sealed_through(&mut self) -> Result<Option<i64>, Error> {
        if let Some(h) = self.sealed_through {
            return Ok(h);
        }
        // One look-up per state in the (state, hour) index.
        let h: Option<i64> = self
            .conn
            .prepare_cached("SELECT MAX(hour) FROM buckets WHERE state = 'acked'")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(store_err)?;
        self.sealed_through = Some(h);
        Ok(h)
    }

    pub(crate) fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        self.conn.transaction().map_err(store_err)
    }

    /// Counts per state and the oldest unsent hour, of every product the store holds: what
    /// it recorded under another product code (before a change of configuration) is sent
    /// by this meter too.
    /// The store file's path; `None` in memory.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.owner.as_ref().map(Owner::path)
    }

    pub(crate) fn status(&self) -> Result<super::MeterStatus, Error> {
        let mut s = super::MeterStatus::default();
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT state, COUNT(*), MIN(CASE WHEN hour BETWEEN ?1 AND ?2 THEN hour END)
                 FROM buckets GROUP BY state",
            )
            .map_err(store_err)?;
        // A row no calendar holds (a store written before timestamps were checked, with an
        // hour in milliseconds) is counted but is never the oldest unsent hour: a face could
        // not turn it into a date, and status() must not fail for any row.
        let (first, last) = (super::CALENDAR.start(), super::CALENDAR.end());
        let rows = st
            .query_map(params![first, last], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(store_err)?;
        for row in rows {
            let (state, n, min_hour) = row.map_err(store_err)?;
            s.count(&state, n, min_hour);
        }
        Ok(s)
    }

    /// The store's identity: 32 random hex digits made once, when the store is (a store
    /// made by an older version makes it when first asked for), and kept in `meta`
    /// (`store_id`). Part of every `MeterUsage` `ClientToken`, so two stores never
    /// share a token and a store reopened after a crash resends the same one. (Copies of
    /// one store share it: each bucket's own random part tells their buckets apart.)
    pub(crate) fn store_id(&mut self) -> Result<String, Error> {
        let read = |conn: &Connection| -> Result<Option<String>, Error> {
            conn.query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(store_err)
        };
        if let Some(id) = read(&self.conn)? {
            return Ok(id);
        }
        // Two meters creating it at once: the first insert wins, both read it.
        self.conn
            .execute(schema::MAKE_STORE_ID, [])
            .map_err(store_err)?;
        read(&self.conn)?
            .ok_or_else(|| Error::invalid_state("meter store: the store id was not written"))
    }

    /// Moves the dead letters `filter` selects, whose hour is later than `after`,
    /// back to `sealed` (their frozen quantity unchanged) and deletes their dead-letter rows,
    /// in one transaction. Returns how many were requeued. Every product's, as the store
    /// sends them (see [`Db::status`]).
    pub(crate) fn requeue(
        &mut self,
        filter: &super::RequeueFilter,
        after: i64,
    ) -> Result<usize, Error> {
        let (kind, id, license) = match &filter.customer {
            Some(c) => {
                let (k, i, l) = customer_parts(Some(c));
                (Some(k), Some(i.to_owned()), Some(l.to_owned()))
            }
            None => (None, None, None),
        };
        let tx = self.transaction()?;
        let ids: Vec<i64> = {
            let mut st = tx
                .prepare(
                    "SELECT b.id FROM buckets b
                     WHERE b.state = 'dead_lettered' AND b.hour > ?1
                       AND (?2 IS NULL OR b.customer_kind = ?2)
                       AND (?3 IS NULL OR b.customer = ?3)
                       AND (?4 IS NULL OR b.license_arn = ?4)
                       AND (?5 IS NULL OR b.hour = ?5)
                       AND (?6 IS NULL OR EXISTS (SELECT 1 FROM dead_letters d
                                                  WHERE d.bucket_id = b.id AND d.reason = ?6))
                     ORDER BY b.id",
                )
                .map_err(store_err)?;
            let rows = st
                .query_map(
                    params![
                        after,
                        kind,
                        id,
                        license,
                        filter.hour.map(|h| h.div_euclid(3600) * 3600),
                        filter.reason
                    ],
                    |r| r.get(0),
                )
                .map_err(store_err)?;
            rows.collect::<Result<_, _>>().map_err(store_err)?
        };
        for b in &ids {
            tx.execute(
                "UPDATE buckets SET state = 'sealed', alarmed = 0 WHERE id = ?1",
                [b],
            )
            .map_err(store_err)?;
            tx.execute("DELETE FROM dead_letters WHERE bucket_id = ?1", [b])
                .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)?;
        Ok(ids.len())
    }

    /// Every dead letter, oldest first: every product's, as the store sends them (see
    /// [`Db::status`]).
    pub(crate) fn dead_letters(&self) -> Result<Vec<super::DeadLetter>, Error> {
        let mut st = self
            .conn
            .prepare(
                "SELECT license_arn, customer_kind, customer, dimension, hour, quantity, reason, message, at
                 FROM dead_letters ORDER BY id",
            )
            .map_err(store_err)?;
        let rows = st
            .query_map([], |r| {
                Ok(super::DeadLetter {
                    customer: customer_from(&r.get::<_, String>(1)?, r.get(2)?, r.get(0)?),
                    dimension: r.get(3)?,
                    hour: r.get(4)?,
                    quantity: r.get(5)?,
                    reason: r.get(6)?,
                    message: r.get(7)?,
                    at: r.get(8)?,
                })
            })
            .map_err(store_err)?;
        rows.collect::<Result<_, _>>().map_err(store_err)
    }
}

#[cfg(test)]
mod tests;
