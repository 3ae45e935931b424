//! The right of access: a subject's whole record, decrypted, in a machine-readable export.

use super::*;

/// Whether an export decrypts the subject's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Values {
    Decrypted,
    Masked,
}

impl Vault {
    /// Everything held about a subject (UU PDP Art. 32, portability Art. 13): every field
    /// decrypted, consents, relations, purposes with their legal bases and recipients, holds,
    /// restriction, requests, and the processing trail from the audit log.
    pub async fn export_subject(&self, permit: &Permit<act::SubjectExport>) -> Result<Value> {
        self.export_with(permit, Values::Decrypted).await
    }

    /// The export with every field value and consent evidence masked (`null`; nothing of the
    /// subject's sealed values is decrypted): what the officer's console lists, a value then
    /// revealed one at a time ([`Vault::reveal_value`]). Audited as an export with no fields.
    pub async fn export_subject_masked(
        &self,
        permit: &Permit<act::SubjectExport>,
    ) -> Result<Value> {
        self.export_with(permit, Values::Masked).await
    }

    async fn export_with(
        &self,
        permit: &Permit<act::SubjectExport>,
        values: Values,
    ) -> Result<Value> {
        let masked = values == Values::Masked;
        let policy = permit.policy();
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let (stored, key) = self.subject_for(id, &draft).await?;
        let mut field_values = Map::new();
        for (category, ciphertext) in sealed_fields(&stored)? {
            if masked {
                field_values.insert(category.clone(), Value::Null);
                continue;
            }
            let plain = self.open_text(&key, id, category, ciphertext)?;
            let value = match policy.category(category) {
                Some(cat) => fields::to_json(cat.field_type, &plain),
                None => Value::String(plain),
            };
            field_values.insert(category.clone(), value);
        }
        let documents = self.document_manifest(&key, id).await?;
        let purposes = self.store.subject_purposes(id).await.map_err(store_error)?;
        let mut recipients: BTreeMap<String, Value> = BTreeMap::new();
        let purposes_out: Vec<Value> = purposes
            .iter()
            .map(|(name, collected)| {
                let p = policy.purpose(name);
                let its_recipients: Vec<Value> = policy
                    .recipients
                    .values()
                    .filter(|r| r.purposes.iter().any(|x| x == name))
                    .map(|r| {
                        let out = json!({"name": r.name, "kind": r.kind.as_str(), "country": r.country,
                                         "transfer_basis": r.transfer_basis.map(|b| b.as_str())});
                        recipients.insert(r.name.clone(), out.clone());
                        out
                    })
                    .collect();
                json!({
                    "purpose": name,
                    "basis": p.map(|p| p.basis.as_str()),
                    "description": p.and_then(|p| p.description.clone()),
                    "collected_at": Timestamp::from_micros(*collected),
                    "retention": p.map(|p| p.retention.to_string()),
                    "retention_from": p.map(|p| p.retention_from.as_str()),
                    "categories_held": p.map(|p| p.categories.iter().filter(|c| field_values.contains_key(*c) || documents.iter().any(|d| &d.category == *c)).cloned().collect::<Vec<_>>()),
                    "recipients": its_recipients,
                    "in_current_policy": p.is_some(),
                })
            })
            .collect();
        let consents: Vec<Value> = self
            .store
            .consents(id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|c| {
                let evidence = c
                    .evidence
                    .as_ref()
                    .filter(|_| !masked)
                    .map(|e| self.open_text(&key, id, &format!("consent.evidence:{}", c.id), e))
                    .transpose()?;
                Ok(json!({
                    "id": c.id, "purpose": c.purpose, "purpose_version": c.purpose_version,
                    "policy_version": c.policy_version, "granted": c.granted, "given_by": c.given_by,
                    "guardian_subject_id": c.guardian_subject_id, "channel": c.capture_channel,
                    "contact_channels": c.contact_channels, "evidence": evidence,
                    "evidence_sha256": c.evidence_sha256, "time": Timestamp::from_micros(c.at_micros),
                }))
            })
            .collect::<Result<_>>()?;
        let relations: Vec<Value> = self
            .store
            .relations(id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|r| {
                json!({"id": r.id, "subject_id": r.subject_id, "kind": r.kind,
                       "related_subject_id": r.related_subject_id, "time": Timestamp::from_micros(r.at_micros)})
            })
            .collect();
        let restriction = match self.store.restriction(id).await.map_err(store_error)? {
            Some(r) => {
                let reason = r
                    .reason
                    .as_ref()
                    .filter(|_| !masked)
                    .map(|s| self.open_text(&key, id, "restriction.reason", s))
                    .transpose()?;
                json!({"since": Timestamp::from_micros(r.since_micros), "reason": reason})
            }
            None => Value::Null,
        };
        let holds: Vec<Value> = self
            .holds_of(id, &key, draft.at_micros)
            .await?
            .into_iter()
            .map(|h| json!({"id": h.record.id, "reason": h.reason, "until": h.record.until, "active": h.active}))
            .collect();
        let requests: Vec<Value> = self
            .store
            .list_requests(
                RequestFilter {
                    subject: Some(id.to_owned()),
                    ..RequestFilter::default()
                },
                None,
                10_000,
            )
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|r| {
                json!({"id": r.id, "type": r.kind, "status": r.status, "received_at": Timestamp::from_micros(r.received_at_micros),
                       "due_at": Timestamp::from_micros(r.due_at_micros), "refusal_reason": r.refusal_reason})
            })
            .collect();
        let disclosures = self.disclosures_of(policy, id, draft.at_micros).await?;
        // A person's own export names the roles that used their data, never the keys.
        let own = permit.own_data();
        let mut trail = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .audit_entries(Some(id), after, 10_000)
                .await
                .map_err(store_error)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            trail.extend(page.into_iter().map(|e| {
                let actor = if own && !e.entry.actor.starts_with("subject:") {
                    Value::Null
                } else {
                    Value::String(e.entry.actor)
                };
                json!({"time": Timestamp::from_micros(e.entry.at_micros), "actor": actor, "role": e.entry.role,
                       "action": e.entry.action.as_str(), "purpose": e.entry.purpose, "basis": e.entry.basis,
                       "outcome": e.entry.outcome.as_str(), "fields": e.entry.fields})
            }));
        }
        let export = json!({
            "format": "amanah-export/1",
            "subject_id": id,
            "exported_at": Timestamp::from_micros(draft.at_micros),
            "controller": {"name": policy.controller.name, "contact": policy.controller.contact},
            "policy_version": policy.version,
            "fields": field_values,
            "documents": documents.iter().map(|d| json!({
                "document_id": d.document_id, "category": d.category, "version": d.version,
                "current": d.current, "media_type": d.media_type.as_str(), "size": d.size,
                "sha256": d.sha256, "uploaded_at": d.uploaded_at,
                "file": format!("documents/{}.{}", d.document_id, d.media_type.extension()),
            })).collect::<Vec<_>>(),
            "purposes": purposes_out,
            "recipients": recipients.into_values().collect::<Vec<_>>(),
            "consents": consents,
            "relations": relations,
            "restriction": restriction,
            "holds": holds,
            "requests": requests,
            "disclosures": disclosures,
            "processing": trail,
        });
        if masked {
            draft.reason = Some("values masked".into());
        } else {
            draft.fields = sealed_fields(&stored)?
                .iter()
                .map(|(c, _)| c.clone())
                .collect();
            for d in &documents {
                if !draft.fields.contains(&d.category) {
                    draft.fields.push(d.category.clone());
                }
            }
        }
        self.record(draft).await?;
        Ok(export)
    }
}
