// SPDX-License-Identifier: Apache-2.0
// Generates include/marketplace_metering.h from the crate's extern "C" API with cbindgen.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// The core's error-code table, the one list of codes: `src/status.rs` is written from it.
#[path = "../core/src/error/codes.rs"]
#[allow(dead_code)]
mod codes;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../core/src/error/codes.rs");
    write_status(&dir.join("src").join("status.rs"))?;
    // A SONAME, so programs record `libmarketplace_metering.so` rather than the build path.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmarketplace_metering.so");
    let (major, minor, patch) = (
        std::env::var("CARGO_PKG_VERSION_MAJOR")?,
        std::env::var("CARGO_PKG_VERSION_MINOR")?,
        std::env::var("CARGO_PKG_VERSION_PATCH")?,
    );
    let version = std::env::var("CARGO_PKG_VERSION")?;
    let defines = format!(
        "\n/** The library version this header was generated for (see also mm_version()). */\n\
         #define MM_VERSION \"{version}\"\n\
         /** Major version. */\n#define MM_VERSION_MAJOR {major}\n\
         /** Minor version. */\n#define MM_VERSION_MINOR {minor}\n\
         /** Patch version. */\n#define MM_VERSION_PATCH {patch}\n"
    );
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .with_after_include(defines)
        .generate()?;
    bindings.write_to_file(dir.join("include").join("marketplace_metering.h"));
    Ok(())
}

/// Writes `mm_status` and `status_of` from the core's table (only when they changed, so the
/// file's time does not make cargo run this script again).
fn write_status(path: &Path) -> Result<(), Box<dyn Error>> {
    let mut enum_body = String::new();
    let mut arms = String::new();
    for &c in codes::ErrorCode::ALL {
        for line in c.doc().lines() {
            writeln!(enum_body, "    ///{line}")?;
        }
        writeln!(enum_body, "    {} = {},", c.as_str(), c.as_u32())?;
        writeln!(arms, "        C::{0} => S::{0},", c.as_str())?;
    }
    let text = format!(
        "// SPDX-License-Identifier: Apache-2.0
// generated; do not edit: written by bindings-c/build.rs from core/src/error/codes.rs

use marketplace_metering::ErrorCode;

/// The result of every fallible call: `MM_STATUS_OK` (0) or why it failed.
///
/// Numbers are stable and never reused. 0–2 are this library's own; every other value is one
/// of the core's error codes with the same number (`mm_status_str` gives its name, the same
/// string as the Python and Node faces' `code`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum mm_status {{
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A Rust panic was caught at the boundary (a bug; please report it).
    Panic = 2,
{enum_body}}}

/// The `mm_status` of a core error code.
pub const fn status_of(code: ErrorCode) -> mm_status {{
    use mm_status as S;
    use ErrorCode as C;
    match code {{
{arms}    }}
}}
"
    );
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(path, text)?;
    }
    Ok(())
}
