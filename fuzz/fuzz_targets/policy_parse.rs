#![no_main]
//! The policy parser must never panic, and every error must carry a 1-based position.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        if let Err(errs) = amanah_core::policy::Policy::parse(src) {
            assert!(!errs.0.is_empty());
            for e in &errs.0 {
                assert!(e.line >= 1 && e.column >= 1);
            }
        }
    }
});
