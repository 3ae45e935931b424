//! What the store's test binaries share: an audit draft and a one-field subject.
#![allow(dead_code, clippy::unwrap_used)]

use amanah_core::audit::{AuditAction, AuditDraft, Outcome};
use amanah_crypto::{DataKey, KeyRing};
use amanah_store::{FieldWrite, NewSubject};

pub fn draft(action: AuditAction, subject: Option<&str>) -> AuditDraft {
    AuditDraft {
        at_micros: 1,
        actor: "k".into(),
        role: "admin".into(),
        action,
        purpose: Some("p".into()),
        basis: Some("contract".into()),
        outcome: Outcome::Allowed,
        reason: None,
        subject: subject.map(str::to_owned),
        fields: vec!["email".into()],
        policy_version: "v".into(),
    }
}

pub fn subject(ring: &KeyRing, id: &str, term: [u8; 32]) -> NewSubject {
    let key = DataKey::generate(1).unwrap();
    NewSubject {
        id: id.into(),
        wrapped_key: ring.wrap(&key, id).unwrap(),
        created_at_micros: 1,
        purpose: "p".into(),
        fields: vec![FieldWrite {
            category: "email".into(),
            ciphertext: key.seal_field(id, "email", b"x").unwrap(),
            index_term: Some(term),
            unique: true,
        }],
        consents: Vec::new(),
    }
}
