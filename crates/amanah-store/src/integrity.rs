//! Integrity of the rows that grant access. An API key row decides who is let in and with which
//! role; a policy version row decides what every role may do. Both carry a MAC under the audit
//! key (derived from the root secret, which the database never holds), computed by the writer
//! and checked on every read: a row written by someone with access to the database but not to
//! the key file — a forged admin key, a raised role, a policy inserted or edited — fails it, is
//! refused as if absent and is logged. A policy row's MAC covers its sequence number, so an old
//! genuine policy copied in as the newest one fails too. What a MAC cannot tell is an older
//! genuine state of the same row from the current one (a revocation undone by restoring the
//! row's previous bytes): every change is also in the audit chain, where that shows.

use amanah_crypto::audit::AuditKey;

use crate::{ApiKeyRecord, PolicyRecord, StoreError, StoreResult};

/// The bytes a row's MAC covers: a domain tag, the table, then each column (absent, or its
/// length and bytes), so that no two different rows encode alike.
fn encode(table: &str, columns: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b =
        Vec::with_capacity(64 + columns.iter().flatten().map(|c| c.len() + 9).sum::<usize>());
    b.extend_from_slice(b"amanah/record/v1\0");
    b.extend_from_slice(table.as_bytes());
    b.push(0);
    for c in columns {
        match c {
            None => b.push(0),
            Some(v) => {
                b.push(1);
                b.extend_from_slice(&(v.len() as u64).to_be_bytes());
                b.extend_from_slice(v);
            }
        }
    }
    b
}

const NO_PREVIOUS: [u8; 32] = [0xa5; 32];

fn api_key_bytes(k: &ApiKeyRecord) -> Vec<u8> {
    let created = k.created_at_micros.to_be_bytes();
    let revoked = k.revoked_at_micros.map(i64::to_be_bytes);
    encode(
        "api_keys",
        &[
            Some(k.id.as_bytes()),
            Some(k.name.as_bytes()),
            Some(k.role.as_bytes()),
            k.holder.as_deref().map(str::as_bytes),
            Some(k.token_hash.as_bytes()),
            Some(&created),
            revoked.as_ref().map(|r| &r[..]),
        ],
    )
}

fn policy_bytes(p: &PolicyRecord) -> Vec<u8> {
    let seq = p.seq.to_be_bytes();
    let applied = p.applied_at_micros.to_be_bytes();
    encode(
        "policy_versions",
        &[
            Some(&seq),
            Some(p.version.as_bytes()),
            Some(p.source.as_bytes()),
            Some(p.sha256.as_bytes()),
            Some(&applied),
        ],
    )
}

pub(crate) fn api_key_mac(key: &AuditKey, k: &ApiKeyRecord) -> [u8; 32] {
    key.chain(&NO_PREVIOUS, &api_key_bytes(k))
}

pub(crate) fn policy_mac(key: &AuditKey, p: &PolicyRecord) -> [u8; 32] {
    key.chain(&NO_PREVIOUS, &policy_bytes(p))
}

/// An id as it may appear in a log: ids the vault issues are short and plain; anything else
/// was written by someone else and is not copied into the log.
fn loggable(id: &str) -> &str {
    if id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        id
    } else {
        "(not an id the vault issues)"
    }
}

/// The key row if its MAC holds; otherwise `None`, logged.
pub(crate) fn checked_api_key(
    key: &AuditKey,
    (k, mac): (ApiKeyRecord, Option<Vec<u8>>),
) -> Option<ApiKeyRecord> {
    let ok = mac.is_some_and(|m| key.verify(&NO_PREVIOUS, &api_key_bytes(&k), &m));
    if !ok {
        tracing::error!(
            key_id = loggable(&k.id),
            "an API key row failed its integrity check and is refused"
        );
    }
    ok.then_some(k)
}

/// Whether a policy row's MAC holds (not logged: see [`checked_policy`]).
pub(crate) fn policy_holds(key: &AuditKey, (p, mac): &(PolicyRecord, Option<Vec<u8>>)) -> bool {
    mac.as_ref()
        .is_some_and(|m| key.verify(&NO_PREVIOUS, &policy_bytes(p), m))
}

/// The policy row if its MAC holds; otherwise `None`, logged.
pub(crate) fn checked_policy(
    key: &AuditKey,
    row: (PolicyRecord, Option<Vec<u8>>),
) -> Option<PolicyRecord> {
    let ok = policy_holds(key, &row);
    let p = row.0;
    if !ok {
        tracing::error!(
            policy_seq = p.seq,
            "a policy version row failed its integrity check and is refused"
        );
    }
    ok.then_some(p)
}

/// The policy in force among `rows` (newest first), read when the newest version failed its MAC:
/// the newest version whose MAC holds. Forged rows are skipped, each logged; when versions exist
/// but none is genuine, nothing is in force.
pub(crate) fn current_policy(
    key: &AuditKey,
    rows: Vec<(PolicyRecord, Option<Vec<u8>>)>,
) -> StoreResult<Option<PolicyRecord>> {
    if rows.is_empty() {
        return Ok(None);
    }
    rows.into_iter()
        .find_map(|row| checked_policy(key, row))
        .map(Some)
        .ok_or_else(|| {
            StoreError::Backend(
                "no stored policy version passes its integrity check (rows written without the key file)"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amanah_crypto::KeyRing;

    fn key_row() -> ApiKeyRecord {
        ApiKeyRecord {
            id: "k1".into(),
            name: "clerk".into(),
            role: "clerk".into(),
            holder: Some("Ana <ana@c.id>".into()),
            token_hash: "ab".repeat(32),
            created_at_micros: 1,
            revoked_at_micros: None,
        }
    }

    #[test]
    fn every_column_is_covered() {
        let k = KeyRing::generate().unwrap().audit_key();
        let row = key_row();
        let mac = api_key_mac(&k, &row).to_vec();
        assert!(checked_api_key(&k, (row.clone(), Some(mac.clone()))).is_some());
        let changes: [fn(&mut ApiKeyRecord); 6] = [
            |r| r.role = "admin".into(),
            |r| r.holder = None,
            |r| r.token_hash = "cd".repeat(32),
            |r| r.revoked_at_micros = Some(2),
            |r| r.created_at_micros = 2,
            |r| r.name = "clerk ".into(),
        ];
        for change in changes {
            let mut forged = row.clone();
            change(&mut forged);
            assert!(checked_api_key(&k, (forged, Some(mac.clone()))).is_none());
        }
        assert!(checked_api_key(&k, (row.clone(), None)).is_none());
        let other = KeyRing::generate().unwrap().audit_key();
        assert!(checked_api_key(&other, (row, Some(mac))).is_none());
    }

    #[test]
    fn a_policy_moved_to_another_sequence_number_fails() {
        let k = KeyRing::generate().unwrap().audit_key();
        let p = PolicyRecord {
            seq: 1,
            version: "v1".into(),
            source: "version = \"v1\"".into(),
            sha256: "00".into(),
            applied_at_micros: 5,
        };
        let mac = policy_mac(&k, &p).to_vec();
        assert!(checked_policy(&k, (p.clone(), Some(mac.clone()))).is_some());
        let moved = PolicyRecord { seq: 2, ..p };
        assert!(checked_policy(&k, (moved, Some(mac))).is_none());
    }

    #[test]
    fn column_boundaries_cannot_be_shifted() {
        assert_ne!(
            encode("t", &[Some(b"ab"), Some(b"c")]),
            encode("t", &[Some(b"a"), Some(b"bc")])
        );
        assert_ne!(
            encode("t", &[None, Some(b"")]),
            encode("t", &[Some(b""), None])
        );
    }
}
