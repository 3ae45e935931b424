#![no_main]
//! A subject's stored set of sealed fields, as read back from the database: any bytes decode
//! or are refused without panicking, and what decodes is exactly what it encodes to (so no two
//! stored forms mean the same set).
use amanah_store::sealed_fields;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = sealed_fields::decode(data) {
        let refs = fields.iter().map(|(c, v)| (c.as_str(), v.as_slice()));
        assert_eq!(sealed_fields::encode(refs).ok().as_deref(), Some(data));
    }
});
