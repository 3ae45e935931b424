#![no_main]
//! Normalizers never panic, are idempotent, and never echo the input in errors.
use amanah_core::fields::{normalize_str, FieldType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(input) = std::str::from_utf8(rest) else { return };
    let ty = FieldType::ALL[selector as usize % FieldType::ALL.len()];
    match normalize_str(ty, input) {
        Ok(canonical) => assert_eq!(normalize_str(ty, &canonical).as_deref(), Ok(canonical.as_str())),
        Err(e) => assert!(input.trim().len() < 4 || !e.rule.contains(input.trim())),
    }
});
