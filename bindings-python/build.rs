// SPDX-License-Identifier: Apache-2.0
// Links the functions a cold start runs (import, `Client()`, the first call) next to each
// other, as `link-order.txt` lists them (written by `scripts/link-order.sh`). The kernel maps a shared library's code in 64 KiB runs around
// each page it faults in, so code scattered over the 6.9 MB of text made a cold process
// map 4.1 MB of it; ordered, 992 KiB (peak RSS of a cold call 15.6 → 12.0 MiB,
// `scripts/cold-rss.py`).
//
// Only for x86_64 Linux GNU, whose default linker since Rust 1.90 is LLD, which reads the
// file (names it does not find, as after a dependency update, are skipped). A build that
// picks its own linker through RUSTFLAGS is left alone; `MM_LINK_ORDER=0` turns it off for
// a linker chosen in cargo's config, which a build script cannot see.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=MM_LINK_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let rustflags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let own_linker = ["linker", "fuse-ld"].iter().any(|f| rustflags.contains(f));
    let off = std::env::var("MM_LINK_ORDER").is_ok_and(|v| v == "0");
    let file = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("link-order.txt");
    if target != "x86_64-unknown-linux-gnu" || own_linker || off || !file.is_file() {
        return;
    }
    // `-Xlinker` passes each argument whole (`-Wl,` would split a path at its commas).
    for arg in [
        format!("--symbol-ordering-file={}", file.display()),
        "--no-warn-symbol-ordering".to_owned(),
    ] {
        println!("cargo:rustc-cdylib-link-arg=-Xlinker");
        println!("cargo:rustc-cdylib-link-arg={arg}");
    }
}
