// SPDX-License-Identifier: Apache-2.0
// Generates include/marketplace_metering.h from the crate's extern "C" API with cbindgen.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
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
