#![no_main]
//! The key-file parser never panics on arbitrary input.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = amanah_crypto::KeyRing::from_file_bytes(data);
});
