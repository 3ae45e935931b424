//! The statements a write job runs inside the writer's transaction, and the subject loader.

use amanah_crypto::WrappedKey;
use rusqlite::{params, Connection, OptionalExtension};

use super::*;
use crate::{ConsentRecord, FieldWrite, NewSubject, StoreError, StoreResult, StoredSubject};

pub(super) fn write_fields(
    tx: &Connection,
    subject: &str,
    at: i64,
    fields: &[FieldWrite],
) -> StoreResult<()> {
    for f in fields {
        tx.prepare_cached(
            "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(subject_id, category) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .and_then(|mut st| st.execute(params![subject, f.category, f.ciphertext, at]))
        .map_err(backend)?;
        tx.prepare_cached("DELETE FROM blind_index WHERE subject_id = ?1 AND category = ?2")
            .and_then(|mut st| st.execute(params![subject, f.category]))
            .map_err(backend)?;
        tx.prepare_cached("DELETE FROM unique_index WHERE subject_id = ?1 AND category = ?2")
            .and_then(|mut st| st.execute(params![subject, f.category]))
            .map_err(backend)?;
        if !insert_term(tx, subject, f)? {
            return Err(StoreError::Unique {
                category: f.category.clone(),
            });
        }
    }
    Ok(())
}

/// Inserts a field's blind-index term, if it has one: a unique term in `unique_index` only
/// (searches read both tables), others in `blind_index`. Returns false when another subject
/// already holds the unique term (nothing inserted).
pub(super) fn insert_term(tx: &Connection, subject: &str, f: &FieldWrite) -> StoreResult<bool> {
    let Some(term) = f.index_term else {
        return Ok(true);
    };
    let sql = if f.unique {
        "INSERT INTO unique_index (category, term, subject_id) VALUES (?1, ?2, ?3)
         ON CONFLICT(category, term) DO NOTHING"
    } else {
        "INSERT INTO blind_index (category, term, subject_id) VALUES (?1, ?2, ?3)"
    };
    let inserted = tx
        .prepare_cached(sql)
        .and_then(|mut st| st.execute(params![f.category, &term[..], subject]))
        .map_err(backend)?;
    Ok(inserted > 0)
}

/// Inserts a new subject's rows (no audit entry) and stages its data key for the key store,
/// which commits first. Returns the unique categories whose term another subject already holds;
/// the caller decides whether that is an error.
pub(super) fn insert_new_subject(
    tx: &Connection,
    keys: &mut StagedKeys,
    s: &NewSubject,
) -> StoreResult<Vec<String>> {
    let at = s.created_at_micros;
    tx.prepare_cached("INSERT INTO subjects (id, created_at) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute(params![s.id, at]))
        .map_err(backend)?;
    keys.insert(&s.id, &s.wrapped_key);
    let mut taken = Vec::new();
    for f in &s.fields {
        tx.prepare_cached(
            "INSERT INTO subject_fields (subject_id, category, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut st| st.execute(params![s.id, f.category, f.ciphertext, at]))
        .map_err(backend)?;
        if !insert_term(tx, &s.id, f)? {
            taken.push(f.category.clone());
        }
    }
    record_purpose(tx, &s.id, &s.purpose, at)?;
    for c in &s.consents {
        write_consent(tx, c)?;
    }
    Ok(taken)
}

pub(super) fn record_purpose(
    tx: &Connection,
    subject: &str,
    purpose: &str,
    at: i64,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO subject_purposes (subject_id, purpose, collected_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(subject_id, purpose) DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![subject, purpose, at]))
    .map_err(backend)?;
    Ok(())
}

pub(super) fn subject_exists(tx: &Connection, id: &str) -> StoreResult<bool> {
    tx.prepare_cached("SELECT 1 FROM subjects WHERE id = ?1")
        .and_then(|mut st| st.exists([id]))
        .map_err(backend)
}

pub(super) fn write_consent(tx: &Connection, c: &ConsentRecord) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO consents (id, subject_id, purpose, purpose_version, policy_version, granted, given_by,
                               capture_channel, contact_channels, guardian_subject_id, guardian_details,
                               evidence, evidence_sha256, recorded_by, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .and_then(|mut st| {
        st.execute(params![
            c.id,
            c.subject_id,
            c.purpose,
            c.purpose_version,
            c.policy_version,
            c.granted,
            c.given_by,
            c.capture_channel,
            c.contact_channels.join(","),
            c.guardian_subject_id,
            c.guardian_details,
            c.evidence,
            c.evidence_sha256,
            c.recorded_by,
            c.at_micros,
        ])
    })
    .map_err(backend)?;
    let seq = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO consent_current (purpose, subject_id, consent_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT(purpose, subject_id) DO UPDATE SET consent_seq = excluded.consent_seq",
    )
    .and_then(|mut st| st.execute(params![c.purpose, c.subject_id, seq]))
    .map_err(backend)?;
    Ok(())
}

pub(super) fn load_subjects(conn: &Connection, ids: &[String]) -> StoreResult<Vec<StoredSubject>> {
    let mut out = Vec::with_capacity(ids.len());
    // A subject whose key is gone (erased, or a restored data backup that predates an
    // erasure) has no readable data: it is not loaded at all.
    let mut head = conn
        .prepare_cached(
            "SELECT k.kek_id, k.key_version, k.wrapped_key, s.created_at, s.restricted_at
             FROM subjects s JOIN keys.data_keys k ON k.subject_id = s.id WHERE s.id = ?1",
        )
        .map_err(backend)?;
    let mut fields = conn
        .prepare_cached("SELECT category, ciphertext FROM subject_fields WHERE subject_id = ?1")
        .map_err(backend)?;
    let mut purposes = conn
        .prepare_cached(
            "SELECT purpose FROM subject_purposes WHERE subject_id = ?1 ORDER BY collected_at, purpose",
        )
        .map_err(backend)?;
    for id in ids {
        let Some((kek_id, version, ciphertext, created, restricted)) = head
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()
            .map_err(backend)?
        else {
            continue;
        };
        let values = fields
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(backend)?;
        let enrolled = purposes
            .query_map([id], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(backend)?;
        out.push(StoredSubject {
            id: id.clone(),
            wrapped_key: WrappedKey {
                kek_id,
                version: version as u32,
                ciphertext,
            },
            created_at_micros: created,
            restricted_since_micros: restricted,
            purposes: enrolled,
            fields: values,
        });
    }
    Ok(out)
}
