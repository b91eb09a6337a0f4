// SPDX-License-Identifier: Apache-2.0
// uniffi's bindgen, at the exact uniffi version the library is built with; `exceptions`
// prints the Kotlin exception classes made from the core's error-code table.
fn main() {
    if std::env::args().nth(1).as_deref() == Some("exceptions") {
        print!(
            "{}",
            marketplace_metering_jvm::error::kotlin_error_classes()
        );
        return;
    }
    uniffi::uniffi_bindgen_main()
}
