// SPDX-License-Identifier: Apache-2.0
// Tests of the store's claim.

use super::*;

/// The POSIX locks `/proc/locks` lists for this process on the file with inode `ino`.
#[cfg(target_os = "linux")]
fn posix_locks_on(ino: u64) -> usize {
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 5 && f[1] == "POSIX" && f[4] == me && f[5].ends_with(&format!(":{ino}"))
        })
        .count()
}

/// A claim dropped while another of this process has the file keeps its descriptor, and
/// keeping it must take no new one: in a process at its `ulimit -n`, the descriptor was
/// closed instead, which drops every POSIX lock the process holds on the file, SQLite's for
/// the claim that took the store over included (found by a review). Run in a child of the
/// test binary: the limit is the process's.
#[cfg(target_os = "linux")]
#[test]
fn a_claim_dropped_without_a_spare_descriptor_keeps_the_others_locks() {
    use std::os::unix::fs::MetadataExt;
    const CHILD: &str = "MM_TEST_OWNER_EMFILE_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "meter::owner::tests::a_claim_dropped_without_a_spare_descriptor_keeps_the_others_locks",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("CHECKED"),
            "{:?}: {text}",
            out.status
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("mm-owner-emfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("m.db");
    let mut first = Owner::claim(&store, None).unwrap();
    first.release();
    let second = Owner::claim(&store, None).unwrap();
    // The lock SQLite's connection for the second claim holds.
    let sqlite = File::open(&store).unwrap();
    let ino = sqlite.metadata().unwrap().ino();
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_RDLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    assert_eq!(
        unsafe { libc::fcntl(sqlite.as_raw_fd(), libc::F_SETLK, &lock) },
        0
    );
    assert_eq!(posix_locks_on(ino), 1);
    // Every descriptor number below the limit taken.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let low = libc::rlimit {
        rlim_cur: highest + 1,
        rlim_max: limit.rlim_max,
    };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    let mut fillers = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        fillers.push(f);
    }
    drop(first);
    drop(fillers);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let kept = posix_locks_on(ino);
    drop(sqlite);
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        kept, 1,
        "the dropped claim's close took the other claim's lock"
    );
    println!("CHECKED");
}

/// A child forked while a thread of its parent's held the list of open stores (opening or
/// closing one) opens a store of its own: the lock stayed held in the child for good, and
/// its first meter waited on it forever (a review found it).
#[cfg(unix)]
#[test]
fn a_child_forked_while_the_open_list_was_held_opens_a_store() {
    let [claimed] = crate::runtime::forked_while_held(
        || (OPEN.lock(), PARKED.lock()),
        || {
            let dir = std::env::temp_dir().join(format!("mm-owner-fork-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let claimed = Owner::claim(&dir.join("m.db"), None).is_ok();
            let _ = std::fs::remove_dir_all(&dir);
            [claimed as u8]
        },
    );
    assert_eq!(claimed, 1);
}
