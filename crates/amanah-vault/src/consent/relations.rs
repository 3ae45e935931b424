//! Links between subjects (guardian, parent, guarantor, emergency contact), each side within the caller's purposes.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub struct RelationView {
    pub record: RelationRecord,
    pub evidence: Option<String>,
}

impl Vault {
    /// Links the permit's subject to another subject (who provided whose data, and on what
    /// grounds). The role must hold a purpose each of the two is enrolled in: a key that does
    /// not know a person cannot make them anyone's guardian.
    pub async fn add_relation(
        &self,
        permit: &Permit<act::RelationCreate>,
        kind: &str,
        related_subject_id: &str,
        evidence: Option<&str>,
    ) -> Result<RelationRecord> {
        let who = permit.principal();
        let subject_id = permit.subject()?;
        let mut draft = permit.draft();
        let admitted = self
            .admit_subject(permit, Circumstances::default(), &draft)
            .await?;
        let related = self
            .store
            .load_subject(related_subject_id)
            .await
            .map_err(store_error)?;
        match related {
            None => {
                return Err(self
                    .deny(
                        draft,
                        Error::NotFound("no subject to relate to with that id".into()),
                    )
                    .await)
            }
            Some(other) => {
                // The related subject passes the same decision, recorded against it.
                let mut other_draft = draft.clone();
                other_draft.subject = Some(other.id.clone());
                self.admit(permit, other, Circumstances::default(), &other_draft)
                    .await?;
            }
        }
        if !RELATION_KINDS.contains(&kind) {
            return Err(Error::invalid(
                "kind",
                format!("`kind` must be one of: {}", RELATION_KINDS.join(", ")),
            ));
        }
        if subject_id == related_subject_id {
            return Err(Error::invalid(
                "subject_id",
                "a subject cannot be related to themselves",
            ));
        }
        let evidence = evidence
            .map(|e| short_text("evidence", e, MAX_EVIDENCE_CHARS))
            .transpose()?;
        let key = &admitted.key;
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = evidence
            .as_deref()
            .map(|e| {
                key.seal_field(subject_id, &format!("relation.evidence:{id}"), e.as_bytes())
                    .map_err(|e| Error::Internal(e.to_string()))
            })
            .transpose()?;
        let record = RelationRecord {
            evidence_sha256: evidence
                .as_deref()
                .map(|e| evidence_fingerprint("relation.evidence", &id, e)),
            id,
            subject_id: subject_id.to_owned(),
            kind: kind.to_owned(),
            related_subject_id: related_subject_id.to_owned(),
            evidence: sealed,
            recorded_by: who.key_id().to_owned(),
            at_micros: draft.at_micros,
        };
        draft.reason = Some(format!(
            "relation {} {kind} -> {related_subject_id}",
            record.id
        ));
        self.store
            .insert_relation(record.clone(), draft)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => Error::NotFound(format!(
                    "no subject {} to relate to",
                    crate::vault::id_shown(related_subject_id)
                )),
                other => store_error(other),
            })?;
        Ok(record)
    }

    /// Relations recorded on a subject or pointing to it. Evidence is decrypted for the admin.
    pub async fn relations(&self, permit: &Permit<act::RelationRead>) -> Result<Vec<RelationView>> {
        let who = permit.principal();
        let subject_id = permit.subject()?;
        let mut draft = permit.draft();
        self.admit_subject(permit, Circumstances::default(), &draft)
            .await?;
        let records = self
            .store
            .relations(subject_id)
            .await
            .map_err(store_error)?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let evidence = match (&r.evidence, who.is_admin()) {
                (Some(sealed), true) => {
                    // Sealed under the key of the subject the relation was recorded on.
                    let owner = self
                        .store
                        .load_subject(&r.subject_id)
                        .await
                        .map_err(store_error)?;
                    match owner {
                        Some(owner) => {
                            let key = self.unwrap_key(&owner)?;
                            let plain = key
                                .open_field(
                                    &r.subject_id,
                                    &format!("relation.evidence:{}", r.id),
                                    sealed,
                                )
                                .map_err(|e| Error::Internal(format!("relation {}: {e}", r.id)))?;
                            Some(String::from_utf8_lossy(&plain).into_owned())
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            out.push(RelationView {
                record: r,
                evidence,
            });
        }
        draft.reason = Some(format!("{} relations", out.len()));
        self.record(draft).await?;
        Ok(out)
    }
}
