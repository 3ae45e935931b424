#![no_main]
//! Decrypting arbitrary bytes fails cleanly; it never panics and never succeeds by accident.
use amanah_crypto::DataKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = DataKey::generate(1) {
        assert!(key.open_field("subject", "field", data).is_err());
    }
});
