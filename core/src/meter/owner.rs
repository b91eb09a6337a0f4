// SPDX-License-Identifier: Apache-2.0
// Who may write a store file: one meter at a time, in the process that opened it, owner-only.

//! Ownership of a store file.
//!
//! * **One owner.** A meter holds an exclusive `flock` on `<store>-lock` for its life, and
//!   writes its pid and host name there. A second meter on the same file, in this process or
//!   another, fails at once with an error naming the holder: two meters on one file would
//!   both send the same sealed buckets and both report them acknowledged. The store file
//!   itself is `flock`ed too, so a second name for it (a symlink, a hard link, which have
//!   `-lock` files of their own) is refused as well. (SQLite locks with `fcntl`, which
//!   `flock` does not touch on Linux; the descriptor stays open while the meter's
//!   connection may be, since closing any descriptor of a file drops the process's `fcntl`
//!   locks on it.)
//! * **Fork.** SQLite keeps per-process lock bookkeeping (which locks this process holds on
//!   which file). A child made by `fork()` inherits that bookkeeping but none of the locks,
//!   so a connection that crossed the fork, or a new one the child opens on a file the parent
//!   had open, believes it holds locks it does not: when the parent then closes its last
//!   connection, SQLite deletes the `-wal` the child is still writing into. So a meter never
//!   works in a process other than the one that created it ("create the UsageMeter after
//!   fork"), a connection inherited across a fork is never closed in the child (it is leaked,
//!   like the runtime), and a child may not open a file its parent had open at the fork.
//! * **A child does not keep the claim.** A `flock` belongs to the open file, which a child
//!   made by `fork()` shares through the descriptors it inherits: a worker that never touches
//!   the meter kept the store "in use" after the parent closed the meter, or crashed and was
//!   restarted, until every such child exited. In the child, a `pthread_atfork` handler points
//!   the claim's descriptors at `/dev/null` (the child's own table only; the parent's locks
//!   stay), and `release()` unlocks the lock file instead of only closing it.
//! * **Owner-only files.** The store, its `-wal`/`-shm` and the lock file hold customer ids,
//!   account ids and license ARNs: they are created readable by their owner only (0600), and
//!   an existing store with looser permissions is tightened when opened.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
#[cfg(unix)]
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::runtime::{process_generation, PerProcess};
use crate::Error;

/// The error of every meter call made in a process other than the one that created it.
pub(crate) fn forked_error() -> Error {
    Error::invalid_state(
        "this UsageMeter was created in another process (before fork()); \
         create the UsageMeter after fork, in the process that uses it",
    )
}

/// Files this process has open as stores, one entry a claim (a closed meter still alive and
/// the one that took the store over have one each).
static OPEN: PerProcess<Vec<OpenStore>> = PerProcess::new();

/// [`OPEN`], locked. A child starts from its parent's list (what the parent has open, which
/// the child must not open), unless a parent's thread held it at the fork (opening or
/// closing a store): then from none, and the stores' lock files still refuse it.
fn open_list() -> std::sync::MutexGuard<'static, Vec<OpenStore>> {
    OPEN.lock_or_inherit(|parent| parent.cloned().unwrap_or_default())
}

#[derive(Clone)]
struct OpenStore {
    /// The file's (device, inode).
    file: (u64, u64),
    /// The process generation that opened it.
    generation: u64,
    /// Whether its meter holds the claim: false once it is released, while its connection
    /// stays open.
    held: bool,
    /// The claim's own number.
    claim: u64,
}

/// The next claim's number.
static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The descriptors of the claims held in this process (`-1`: a free slot), which the `fork()`
/// handler points at `/dev/null` in the child. Two a meter (the lock file and the store):
/// past 32 meters at once a claim is not listed, and a child keeps it, as before (logged).
static CLAIM_FDS: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];
/// `/dev/null`, opened once (close-on-exec), what a child's copies of the claims become.
#[cfg(unix)]
static NULL_FD: AtomicI32 = AtomicI32::new(-1);

#[cfg(unix)]
extern "C" fn after_fork_in_child() {
    // Only atomics, dup2(2) and fcntl(2), all async-signal-safe, as a handler in a forked
    // child must be (dup3 would do both, but macOS has none).
    let null = NULL_FD.load(Ordering::SeqCst);
    for slot in &CLAIM_FDS {
        let fd = slot.swap(-1, Ordering::SeqCst);
        if fd >= 0 && null >= 0 {
            // SAFETY: `fd` is open in this child (a copy of the parent's claim: a slot is
            // cleared before its descriptor is closed); it now names /dev/null, and the
            // `File` holding it closes that instead.
            unsafe {
                if libc::dup2(null, fd) == fd {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
        }
    }
}

/// A file of a claim, listed for the `fork()` handler from the moment it is opened.
struct Claimed {
    file: File,
    slot: Option<usize>,
    generation: u64,
}

impl Claimed {
    fn new(file: File) -> Claimed {
        #[cfg(unix)]
        let slot = list_claim_fd(file.as_raw_fd());
        #[cfg(not(unix))]
        let slot = None;
        Claimed {
            file,
            slot,
            generation: process_generation(),
        }
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if self.generation != process_generation() {
            // A copy in a forked child: the handler cleared the slots, which may be this
            // child's own claims' now, and the `flock` is the parent's.
            return;
        }
        // Unlocked first: a child forked before the slot is cleared keeps a copy of the open
        // file, and closing alone would leave it the lock. Then unlisted, then closed (the
        // field's drop), so the handler never touches a closed, reused descriptor number.
        let _ = self.file.unlock();
        if let Some(i) = self.slot.take() {
            CLAIM_FDS[i].store(-1, Ordering::SeqCst);
        }
    }
}

/// Lists `fd` for the `fork()` handler; the slot to clear before it is closed, if any.
#[cfg(unix)]
fn list_claim_fd(fd: i32) -> Option<usize> {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        if let Ok(null) = File::open("/dev/null") {
            NULL_FD.store(null.into_raw_fd(), Ordering::SeqCst);
        }
        // SAFETY: the handler only touches atomics and calls dup2 and fcntl.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    let slot = CLAIM_FDS.iter().position(|slot| {
        slot.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if slot.is_none() {
        tracing::warn!(
            "more than 32 meter stores open in this process: a child forked from now on \
             keeps the newest claims until it exits"
        );
    }
    slot
}

/// The exclusive claim on one store file, held for the meter's life.
pub(crate) struct Owner {
    /// Holds the `flock`; dropping it releases the claim.
    lock: Option<Claimed>,
    /// The lock file beside the symlink the store was named by, held too: a meter of an
    /// earlier release, which locked only the one beside the name it was given, keeps this
    /// one out through that name (it never locked the store file itself).
    link_lock: Option<Claimed>,
    /// The store file, `flock`ed while the claim is held (unlocked, not closed, on release).
    /// `None` once kept aside for another claim of the file (see `Drop for Owner`).
    store: Option<Claimed>,
    file_id: (u64, u64),
    generation: u64,
    /// This claim's number in [`OPEN`].
    claim: u64,
    /// The path it was opened by, to tell when the file there is no longer this one.
    path: std::path::PathBuf,
}

impl Owner {
    /// Creates `store` when missing (owner-only), tightens loose permissions, and takes the
    /// claim; fails when another meter holds it or when this process was forked from one
    /// that had the file open.
    pub(crate) fn claim(store: &Path, link: Option<&Path>) -> Result<Owner, Error> {
        let io = |what: &str, e: std::io::Error| {
            Error::invalid_state(format!("meter store {}: {what}: {e}", store.display()))
                .with_source(e)
        };
        let generation = process_generation();
        // Nothing the store writes beside it may be a symlink: the lock file's target was
        // truncated and rewritten, and the others' made owner-only (SQLite itself opens them
        // without following one, and would fail later, less clearly).
        for suffix in ["-lock", "-wal", "-shm", "-journal"] {
            let side = companion(store, suffix);
            if std::fs::symlink_metadata(&side).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::invalid_state(format!(
                    "meter store {}: {} is a symlink, which the store would write through; \
                     refused (remove it if it is not another program's)",
                    store.display(),
                    side.display()
                )));
            }
        }
        let lock_path = companion(store, "-lock");
        let lock = take_lock_file(store, &lock_path, || {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            let holder = holder.trim();
            Error::invalid_state(format!(
                "meter store {} is in use by another UsageMeter ({}); one meter owns a \
                 store at a time: close it first, or give each process its own store",
                store.display(),
                if holder.is_empty() {
                    "holder unknown"
                } else {
                    holder
                },
            ))
            // The holder may close it: a rolling update starts the new process on the same
            // volume while the old one still flushes.
            .with_retryable(true)
        })?;
        let link_lock = match link {
            Some(link) => Some(take_lock_file(store, &companion(link, "-lock"), || {
                Error::invalid_state(format!(
                    "meter store {} is in use by another UsageMeter, which opened it by the \
                     symlink {}; one meter owns a store at a time",
                    store.display(),
                    link.display()
                ))
                .with_retryable(true)
            })?),
            None => None,
        };
        // A descriptor of this file kept for another claim's locks (see `Drop for Owner`) is
        // taken again rather than one more opened: rotating meters on a store kept one more
        // a rotation.
        let db = match path_id(store).ok().and_then(take_parked) {
            Some(kept) => {
                tighten_open(&kept.file);
                kept
            }
            None => Claimed::new(private_file(store).map_err(|e| io("cannot open", e))?),
        };
        match db.file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::invalid_state(format!(
                    "meter store {} is in use by another UsageMeter that opened it under \
                     another name (a symlink or a hard link); one meter owns a store at a time",
                    store.display(),
                ))
                .with_retryable(true));
            }
            Err(TryLockError::Error(e)) => return Err(io("cannot lock", e)),
        }
        for suffix in ["-wal", "-shm", "-journal"] {
            tighten(&companion(store, suffix));
        }
        let file_id = file_id(&db.file).map_err(|e| io("cannot stat", e))?;
        let mut open = open_list();
        if open
            .iter()
            .any(|e| e.file == file_id && e.generation != generation)
        {
            return Err(forked_store_error(store));
        }
        let claim = CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.push(OpenStore {
            file: file_id,
            generation,
            held: true,
            claim,
        });
        Ok(Owner {
            lock: Some(lock),
            link_lock,
            store: Some(db),
            file_id,
            generation,
            claim,
            // Absolute: a later chdir must not make the check look elsewhere.
            path: std::path::absolute(store).unwrap_or_else(|_| store.to_path_buf()),
        })
    }

    /// The store's absolute path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Lets another meter claim the file (this one was closed); the file stays listed as open
    /// in this process while its connection is.
    pub(crate) fn release(&mut self) {
        if self.in_owner_process() {
            let mut open = open_list();
            if let Some(e) = open.iter_mut().find(|e| self.is(e)) {
                e.held = false;
            }
        }
        if let Some(store) = &self.store {
            let _ = store.file.unlock();
        }
        // Unlocked as it is dropped, not only closed: a copy of it elsewhere (a child made by
        // a raw clone(), which skips the fork handler) would keep the lock.
        self.lock = None;
        self.link_lock = None;
    }

    /// Whether the store file was removed: no file at its path, and no name left for the
    /// open file (moved elsewhere, it is still the store there; replaced, the path is
    /// another's).
    pub(crate) fn removed(&self) -> bool {
        let gone = matches!(
            std::fs::symlink_metadata(&self.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        );
        #[cfg(unix)]
        let unnamed = {
            use std::os::unix::fs::MetadataExt;
            self.store
                .as_ref()
                .is_some_and(|s| s.file.metadata().is_ok_and(|m| m.nlink() == 0))
        };
        #[cfg(not(unix))]
        let unnamed = false;
        gone && unnamed
    }

    /// Where a removed store is written again before it is linked to its path: created
    /// here, empty and readable by its owner only (`VACUUM INTO` takes an empty file).
    pub(crate) fn restore_file(&self) -> Result<PathBuf, Error> {
        let tmp = companion(&self.path, &format!("-restored-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        private_file(&tmp).map_err(|e| {
            Error::invalid_state(format!(
                "meter store {}: cannot create {}: {e}",
                self.path.display(),
                tmp.display()
            ))
            .with_retryable(true)
        })?;
        Ok(tmp)
    }

    /// Links `restored` (the store written again, see [`Self::restore_file`]) to the store's
    /// removed path and claims it, the lock file too (made again when it was removed too).
    /// Both are locked before the store's name appears, so no other meter can claim it in
    /// between; the link fails if a file appeared at the path meanwhile. Fails, changing
    /// nothing, when another meter holds the lock file.
    pub(crate) fn link_restored(&mut self, restored: &Path, sync: bool) -> Result<(), Error> {
        let io = |what: &str, e: std::io::Error| {
            Error::invalid_state(format!("meter store {}: {what}: {e}", self.path.display()))
                .with_source(e)
        };
        let lock_path = companion(&self.path, "-lock");
        let ours = self.lock.as_ref().and_then(|l| file_id(&l.file).ok());
        let lock = if ours.is_none() || path_id(&lock_path).ok() != ours {
            Some(take_lock_file(&self.path, &lock_path, || {
                Error::invalid_state(format!(
                    "meter store {}: another UsageMeter took its lock file meanwhile",
                    self.path.display()
                ))
            })?)
        } else {
            None
        };
        let db = Claimed::new(private_file(restored).map_err(|e| io("cannot open", e))?);
        db.file.try_lock().map_err(|e| {
            Error::invalid_state(format!(
                "meter store {}: cannot lock the copy: {e}",
                self.path.display()
            ))
        })?;
        if sync {
            db.file
                .sync_all()
                .map_err(|e| io("cannot sync the copy", e))?;
        }
        let id = file_id(&db.file).map_err(|e| io("cannot stat", e))?;
        // The removed store's `-wal` and `-shm`: before the copy has the name, or any
        // connection that opened it would take them for its own. Only now, with the lock file
        // claimed (a meter that made a store at the path meanwhile holds it, and this failed
        // above) and only while the path is still free: they may be another program's.
        if std::fs::symlink_metadata(&self.path).is_ok() {
            return Err(Error::invalid_state(format!(
                "meter store {}: a file appeared at the path while the store was being written again",
                self.path.display()
            ))
            .with_retryable(true));
        }
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(companion(&self.path, suffix));
        }
        std::fs::hard_link(restored, &self.path)
            .map_err(|e| io(&format!("cannot link {} there", restored.display()), e))?;
        if sync {
            // The new name is durable before the old file (freed at its connection's close)
            // is gone.
            if let Some(dir) = self.path.parent() {
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
        }
        let mut open = open_list();
        if let Some(i) = open.iter().position(|e| self.is(e)) {
            open.swap_remove(i);
        }
        // Claimed again, both files locked above.
        open.push(OpenStore {
            file: id,
            generation: self.generation,
            held: true,
            claim: self.claim,
        });
        // The removed file's kept descriptors, once no claim has it: they held its blocks.
        let old = self.file_id;
        if !open.iter().any(|e| e.file == old) {
            PARKED.lock().retain(|(f, _)| *f != old);
        }
        drop(open);
        if lock.is_some() {
            self.lock = lock;
        }
        self.store = Some(db);
        self.file_id = id;
        Ok(())
    }

    /// Whether this is the process that took the claim.
    pub(crate) fn in_owner_process(&self) -> bool {
        self.generation == process_generation()
    }

    /// Whether `entry` of [`OPEN`] is this claim's.
    fn is(&self, entry: &OpenStore) -> bool {
        (entry.claim, entry.generation) == (self.claim, self.generation)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.in_owner_process() {
            return; // the parent's entry: its connection is leaked in this child, keep it
        }
        let mut open = open_list();
        if let Some(i) = open.iter().position(|e| self.is(e)) {
            open.swap_remove(i);
        }
        // Closing a descriptor of the file drops every POSIX lock this process holds on it,
        // SQLite's included: while another claim of this process has the file (a meter
        // that took it over from this closed one), the descriptor stays open, unlocked,
        // until the last claim on the file goes, as SQLite keeps its own.
        let file = self.file_id;
        let others = open
            .iter()
            .any(|e| e.file == file && e.generation == self.generation);
        let mut parked = PARKED.lock();
        if !others {
            parked.retain(|(f, _)| *f != file);
            return;
        }
        // Kept with its slot in the list the `fork()` handler redirects: a child forked
        // while it is kept must not share the description a later claim locks. Taken, not
        // swapped for another descriptor: a process at its `ulimit -n` has none to open,
        // and closing this one instead would drop the other claim's SQLite locks.
        if let Some(kept) = self.store.take() {
            let _ = kept.file.unlock();
            parked.push((file, kept));
        }
    }
}

/// Store files whose claim was dropped while another claim of this process had the file
/// (see `Drop for Owner`), closed with the last one, or taken by the next claim.
static PARKED: PerProcess<Vec<((u64, u64), Claimed)>> = PerProcess::new();

/// A kept descriptor of the file `id`, if any (see [`PARKED`]): one this process kept, not
/// its parent's (a forked child's copy points at `/dev/null`), and only where files have
/// inodes to tell them apart.
fn take_parked(id: (u64, u64)) -> Option<Claimed> {
    if id == (0, 0) {
        return None;
    }
    let generation = process_generation();
    let mut parked = PARKED.lock();
    let i = parked
        .iter()
        .position(|(f, c)| *f == id && c.generation == generation)?;
    Some(parked.swap_remove(i).1)
}

/// Opens and locks `store`'s lock file at `lock_path` and writes this process in it (pid and
/// host, for the message another meter gives); `busy()` when another meter holds it.
fn take_lock_file(
    store: &Path,
    lock_path: &Path,
    busy: impl FnOnce() -> Error,
) -> Result<Claimed, Error> {
    let io = |what: &str, e: std::io::Error| {
        Error::invalid_state(format!("meter store {}: {what}: {e}", store.display())).with_source(e)
    };
    let mut lock =
        Claimed::new(private_file(lock_path).map_err(|e| io("cannot open the lock file", e))?);
    match lock.file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(busy()),
        Err(TryLockError::Error(e)) => return Err(io("cannot lock", e)),
    }
    let _ = lock.file.set_len(0);
    let _ = write!(
        lock.file,
        "pid {} on host {}",
        std::process::id(),
        host_name()
    );
    let _ = lock.file.flush();
    Ok(lock)
}

/// `store` with `suffix` appended to its file name (`-wal`, `-shm`, `-lock`).
fn companion(store: &Path, suffix: &str) -> PathBuf {
    let mut s = store.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `path` for reading and writing, creating it readable by its owner only.
///
/// A symlink at `path` is not followed: one planted there (a shared `/tmp`, a meter running
/// as root) had its target truncated (the lock file) and made owner-only.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let f = above_stdio(o.open(path)?)?;
    tighten_open(&f);
    Ok(f)
}

/// Opens `/dev/null` on each standard descriptor (0 to 2) that is closed, as SQLite does
/// before it opens a file and Rust's start-up does for a Rust program: a daemon may run with
/// them closed (CPython leaves them so), and the meter's sockets (its runtime's, a fleet
/// store's connections, an HTTPS call's) then took them, where the meter's own report of a
/// failed flush wrote into a connection's stream. A descriptor another thread takes first
/// is left to it.
#[cfg(unix)]
pub(crate) fn fill_standard_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1
            || std::io::Error::last_os_error().raw_os_error() != Some(libc::EBADF)
        {
            continue;
        }
        // SAFETY: opens a descriptor this function owns until it is left in place or closed.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if null >= 0 && null != fd {
            // Another thread took `fd` meanwhile: not ours to fill.
            // SAFETY: closes the descriptor opened above.
            unsafe { libc::close(null) };
        }
    }
}

#[cfg(not(unix))]
pub(crate) fn fill_standard_fds() {}

/// `f`, moved to a descriptor above 2 if it got a standard one: a daemon may run with its
/// standard descriptors closed, and the store's descriptor then became standard error, where
/// every line written (the meter's report of a failed flush, the host's own logging)
/// overwrote the store from its first byte. SQLite keeps its own descriptors above 2 so.
#[cfg(unix)]
fn above_stdio(f: File) -> std::io::Result<File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    if f.as_raw_fd() > 2 {
        return Ok(f);
    }
    // SAFETY: duplicates a descriptor `f` owns; the new one is owned by the returned `File`,
    // and `f` is closed when it goes out of scope.
    let fd = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(not(unix))]
fn above_stdio(f: File) -> std::io::Result<File> {
    Ok(f)
}

/// Removes group and other permissions from an open file. As `tighten`: a file another user
/// owns and lets this one write stays as it is.
fn tighten_open(f: &File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = f.metadata() {
            let mode = m.permissions().mode();
            if mode & 0o077 != 0 {
                let _ = f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700));
            }
        }
    }
}

/// Removes group and other permissions from an existing file (SQLite creates `-wal` and
/// `-shm` with the store's own permissions).
pub(crate) fn tighten(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Not through a symlink: its target is not the store's.
        if let Some(m) = std::fs::symlink_metadata(path).ok().filter(|m| m.is_file()) {
            let mode = m.permissions().mode();
            if mode & 0o077 != 0 {
                let _ =
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl Owner {
    /// Fails when the file at the store's path is no longer the one open (removed, or
    /// replaced by another): what the meter commits now lives only in the open file, lost
    /// when the process ends, and a new meter may open a fresh store at the path.
    pub(crate) fn check_in_place(&self) -> Result<(), Error> {
        let now = path_id(&self.path);
        match now {
            Ok(id) if id == self.file_id => Ok(()),
            _ => Err(Error::invalid_state(format!(
                "meter store {}: the file was removed or replaced while this meter had it \
                 open; what the meter records now is kept only in the open file and is lost \
                 when this process ends: close this meter (its flushes still send what is \
                 sealed) and open a new one",
                self.path.display()
            ))),
        }
    }
}

/// The (device, inode) of the file at `path` now ((0, 0) where there are no inodes).
pub(crate) fn path_id(path: &Path) -> std::io::Result<(u64, u64)> {
    Ok(metadata_id(&std::fs::metadata(path)?))
}

/// Refuses, before anything opens it, a file this process already has open as a store:
///
/// * one its parent had open at a `fork()`: SQLite's locks and allocator may have been held
///   by another of the parent's threads at the fork, and a child that called into it could
///   wait for ever (a test child hung so, on the malloc mutex, while another test wrote its
///   store);
/// * one a meter of this process holds, under any name (a hard link): closing a descriptor
///   of the file, as a refused claim did, drops every POSIX lock this process holds on it,
///   that meter's SQLite's included, and a reader in another process closing next took
///   itself for the last connection and deleted the `-wal` under that meter.
pub(crate) fn refuse_held_store(store: &Path) -> Result<(), Error> {
    let Ok(id) = path_id(store) else {
        return Ok(());
    };
    let generation = process_generation();
    let open = open_list();
    let parents = open
        .iter()
        .any(|e| e.file == id && e.generation != generation);
    if parents {
        return Err(forked_store_error(store));
    }
    // (0, 0): a platform without inodes, where files cannot be told apart this way.
    let held = id != (0, 0)
        && open
            .iter()
            .any(|e| e.file == id && e.generation == generation && e.held);
    if held {
        return Err(Error::invalid_state(format!(
            "meter store {} is in use by another UsageMeter of this process (pid {} on host \
             {}), which may have opened it under another name (a symlink or a hard link); \
             one meter owns a store at a time: close it first",
            store.display(),
            std::process::id(),
            host_name()
        ))
        .with_retryable(true));
    }
    Ok(())
}

fn forked_store_error(store: &Path) -> Error {
    Error::invalid_state(format!(
        "meter store {}: this process was forked from one that had the store open, \
         and SQLite's state does not survive fork(); open the UsageMeter only after \
         fork, or close it in the parent before forking",
        store.display()
    ))
}

fn file_id(f: &File) -> std::io::Result<(u64, u64)> {
    Ok(metadata_id(&f.metadata()?))
}

fn metadata_id(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

pub(crate) fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
        // (and the last byte stays 0 on truncation).
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    "unknown".to_owned()
}

#[cfg(test)]
mod tests;
