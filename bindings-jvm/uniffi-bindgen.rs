// SPDX-License-Identifier: Apache-2.0
// uniffi's bindgen, at the exact uniffi version the library is built with.
fn main() {
    uniffi::uniffi_bindgen_main()
}
