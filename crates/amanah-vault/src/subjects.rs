//! Subjects: creation, rectification, enrolment in further purposes, reads and search.

use std::sync::Arc;

use amanah_core::access::{Denial, Grant, Visibility};
use amanah_core::audit::{AuditDraft, Outcome};
use amanah_core::authz::{self as core_authz, EnrollGround};
use amanah_core::consent::{self, AgeGroup};
use amanah_core::fields::{self, FieldType};
use amanah_core::policy::{LegalBasis, Policy};
use amanah_core::{Error, Result};
use amanah_crypto::blind::BlindIndexKey;
use amanah_crypto::DataKey;
use amanah_store::{FieldWrite, NewSubject, StoreError, StoredSubject, SubjectUpdate};
use serde_json::{Map, Value};

use crate::authz::{act, Act, Admitted, Circumstances, Permit};
use crate::consent::{consent_error, ConsentInput, ConsentReceipt, ConsentTarget};
use crate::vault::{denial_error, sealed_fields, store_error, Vault};

/// Most subjects one search returns.
pub const MAX_SEARCH_RESULTS: usize = 1_000;

/// A subject as a caller may see it under one purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectView {
    pub id: String,
    pub fields: Map<String, Value>,
}

/// A new subject id: a version 7 UUID (a millisecond timestamp, then 74 random bits). Ids
/// created together sort together, so the store's per-subject B-trees (subjects, fields,
/// purposes, the by-subject indexes) grow at their right edge instead of at random pages.
/// The timestamp tells no more than the subject's `created_at`, which the audit log records.
pub(crate) fn new_subject_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Validates one request field against the purpose and normalizes it. The message names the
/// rule, never the value.
pub(crate) fn check_field(
    policy: &Policy,
    grant: &Grant,
    name: &str,
    value: &Value,
) -> std::result::Result<(FieldType, String), String> {
    let Some(cat) = policy.category(name) else {
        // The name is the caller's text, not repeated back (it may be anything).
        return Err(format!(
            "unknown field: the policy has no category by that name; purpose {:?} takes: {}",
            grant.purpose,
            grant.writable.join(", ")
        ));
    };
    if !grant.writable.iter().any(|c| c == name) {
        return Err(format!(
            "field {name:?} is not a category of purpose {:?}",
            grant.purpose
        ));
    }
    fields::normalize(cat.field_type, value)
        .map(|n| (cat.field_type, n))
        .map_err(|e| format!("field {name:?}: {}", e.rule))
}

/// Encrypts normalized values under the subject's data key, with blind-index terms for
/// indexed categories.
pub(crate) fn seal_fields(
    policy: &Policy,
    subject: &str,
    key: &DataKey,
    values: &[(String, FieldType, String)],
    blind_key: impl Fn(&str) -> Option<Arc<BlindIndexKey>>,
) -> Result<Vec<FieldWrite>> {
    metrics::counter!("amanah_crypto_operations_total", "op" => "seal")
        .increment(values.len() as u64);
    values
        .iter()
        .map(|(name, _, value)| {
            let cat = policy.category(name);
            let indexed = cat.is_some_and(|c| c.index);
            let index_term = if indexed {
                let k = blind_key(name).ok_or_else(|| {
                    Error::Internal(format!("no blind-index key for category {name}"))
                })?;
                Some(k.index(value.as_bytes()))
            } else {
                None
            };
            Ok(FieldWrite {
                category: name.clone(),
                ciphertext: key
                    .seal_field(subject, name, value.as_bytes())
                    .map_err(|e| Error::Internal(e.to_string()))?,
                index_term,
                unique: cat.is_some_and(|c| c.unique),
            })
        })
        .collect()
}

impl Vault {
    /// Validates and normalizes request fields against the purpose. Messages name fields and
    /// rules, never values.
    fn prepare_fields(
        &self,
        policy: &Policy,
        grant: &Grant,
        input: &Map<String, Value>,
    ) -> Result<Vec<(String, FieldType, String)>> {
        if input.is_empty() {
            return Err(Error::Invalid {
                field: None,
                message: "`fields` must contain at least one field".into(),
            });
        }
        let mut out = Vec::with_capacity(input.len());
        for (name, value) in input {
            let (ty, normalized) =
                check_field(policy, grant, name, value).map_err(|message| Error::Invalid {
                    field: policy.category(name).map(|_| name.clone()),
                    message,
                })?;
            out.push((name.clone(), ty, normalized));
        }
        Ok(out)
    }

    fn encrypt_fields(
        &self,
        policy: &Policy,
        subject: &str,
        key: &DataKey,
        values: &[(String, FieldType, String)],
    ) -> Result<Vec<FieldWrite>> {
        // One snapshot of the ring for the whole write.
        let ring = self.keys();
        seal_fields(policy, subject, key, values, |c| {
            Some(self.blind_keys.get(&ring, c))
        })
    }

    /// Refuses (and records) a write of a category the role may not see at all (specific data
    /// without clearance), or of a unique category it sees only masked: a uniqueness conflict
    /// would tell it whose value that is.
    async fn check_writable(
        &self,
        policy: &Policy,
        grant: &Grant,
        values: &[(String, FieldType, String)],
        draft: &AuditDraft,
    ) -> Result<()> {
        let refused = |name: &String| match grant.readable.get(name) {
            Some(Visibility::Clear) => false,
            Some(Visibility::Masked) => policy.category(name).is_some_and(|c| c.unique),
            None => true,
        };
        if let Some((name, _, _)) = values.iter().find(|(name, _, _)| refused(name)) {
            let mut refused = draft.clone();
            refused.fields = values.iter().map(|(n, _, _)| n.clone()).collect();
            return Err(self
                .refuse(
                    refused,
                    &Denial::CategoryNotVisible {
                        category: name.clone(),
                        purpose: grant.purpose.clone(),
                    },
                )
                .await);
        }
        Ok(())
    }

    /// Records a refused write caused by a unique value already held, without the value.
    async fn refuse_conflict(&self, mut draft: AuditDraft, e: StoreError) -> Error {
        if let StoreError::Unique { category } = &e {
            draft.outcome = Outcome::Denied;
            draft.reason = Some(format!("unique value of {category} already held"));
            if let Err(e) = self.store.append_audit(vec![draft]).await {
                return store_error(e);
            }
        }
        store_error(e)
    }

    /// Creates a subject with fields collected under the permit's purpose; returns its id.
    pub async fn create_subject(
        &self,
        permit: &Permit<act::SubjectCreate>,
        input: &Map<String, Value>,
    ) -> Result<String> {
        self.create_subject_with_consent(permit, input, None)
            .await
            .map(|(id, _)| id)
    }

    /// Creates a subject, recording in the same transaction the consent it was collected with.
    /// A purpose whose basis is consent cannot collect data without one. Returns the id and
    /// the consent receipt, if any.
    pub async fn create_subject_with_consent(
        &self,
        permit: &Permit<act::SubjectCreate>,
        input: &Map<String, Value>,
        consent: Option<&ConsentInput>,
    ) -> Result<(String, Option<ConsentReceipt>)> {
        let policy = permit.policy();
        let purpose = permit.purpose()?;
        let grant = permit.grant()?;
        let mut draft = permit.draft();
        let values = self.prepare_fields(policy, grant, input)?;
        self.check_writable(policy, grant, &values, &draft).await?;
        let age = age_of_new_values(policy, &values, self.clock.now_micros())?;
        if age == Some(AgeGroup::Minor) && !permit.decision().specific() {
            let d = Denial::MinorData {
                role: grant.role.clone(),
            };
            return Err(self.refuse(draft, &d).await);
        }
        if let Some(c) = consent {
            if c.purpose != purpose {
                return Err(Error::invalid(
                    "consent.purpose",
                    format!("the consent names purpose {:?} but the data is collected under {purpose:?}", c.purpose),
                ));
            }
        }
        let needs_consent = grant.basis == LegalBasis::Consent;
        match consent {
            None if needs_consent => {
                let d = consent::ConsentDenial::NoConsent {
                    purpose: purpose.to_owned(),
                };
                return Err(self.deny(draft, consent_error(&d)).await);
            }
            Some(c) if needs_consent && !c.granted => {
                let d = consent::ConsentDenial::NoConsent {
                    purpose: purpose.to_owned(),
                };
                return Err(self.deny(draft, consent_error(&d)).await);
            }
            _ => {}
        }
        let id = new_subject_id();
        let key = self
            .keys()
            .new_data_key(1)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let now = draft.at_micros;
        let consents = match consent {
            Some(c) => {
                let target = ConsentTarget {
                    who: permit.principal(),
                    subject_id: &id,
                    key: &key,
                    at_micros: now,
                };
                let record = match self.guardian_visible(permit, c).await {
                    Ok(()) => self.consent_for_new_subject(policy, &target, age, c).await,
                    Err(e) => Err(e),
                };
                match record {
                    Ok(r) => vec![r],
                    Err(e @ Error::Internal(_)) => return Err(e),
                    Err(e) => return Err(self.deny(draft, e).await),
                }
            }
            None => Vec::new(),
        };
        // The ring stays held until the subject is stored: a key rotation waits for every
        // write that wrapped under the previous active key before it rewraps and retires it.
        let keys = self.keys();
        let wrapped_key = keys
            .wrap(&key, &id)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let writes = self.encrypt_fields(policy, &id, &key, &values)?;
        draft.subject = Some(id.clone());
        draft.fields = values.iter().map(|(n, _, _)| n.clone()).collect();
        if let Some(c) = consents.first() {
            draft.reason = Some(format!("collected with consent {}", c.id));
        }
        if let Err(e) = self.subject_quota.reserve(1) {
            draft.subject = None;
            return Err(self.deny(draft, e).await);
        }
        let audit = match self
            .store
            .insert_subject(
                NewSubject {
                    id: id.clone(),
                    wrapped_key,
                    created_at_micros: now,
                    purpose: purpose.to_owned(),
                    fields: writes,
                    consents: consents.clone(),
                },
                draft.clone(),
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                self.subject_quota.release(1);
                draft.subject = None;
                return Err(self.refuse_conflict(draft, e).await);
            }
        };
        drop(keys);
        let receipt = consents.first().map(|c| self.receipt(policy, c, &audit));
        Ok((id, receipt))
    }

    /// Replaces some fields of a subject (rectification); blind-index terms move with them.
    /// With `request` (a rectification permit), the change is recorded as the answer to that
    /// data-subject request, which must be an open rectification request of this subject.
    pub async fn rectify_subject<A: act::SubjectChange>(
        &self,
        permit: &Permit<A>,
        input: &Map<String, Value>,
        request: Option<&str>,
    ) -> Result<()> {
        let policy = permit.policy();
        let id = permit.subject()?;
        let grant = permit.grant()?;
        let mut draft = permit.draft();
        let stored = self.load_or_deny(id, &draft).await?;
        // The decision about the subject comes before any check of what was sent; the
        // submitted birth date is judged again below, once it is known to be valid.
        let circumstances = Circumstances {
            new_age: None,
            answers_request: request.is_some(),
        };
        let admitted = self.admit(permit, stored, circumstances, &draft).await?;
        if let Some(r) = request {
            if let Err(e) = self.check_rectification_request(r, id).await {
                return Err(self.deny(draft, e).await);
            }
            draft.reason = Some(format!("rectification for request {r}"));
        }
        let values = self.prepare_fields(policy, grant, input)?;
        self.check_writable(policy, grant, &values, &draft).await?;
        let new_age = age_of_new_values(policy, &values, draft.at_micros)?;
        if new_age == Some(AgeGroup::Minor) && !permit.decision().specific() {
            let d = Denial::MinorData {
                role: grant.role.clone(),
            };
            return Err(self.refuse(draft, &d).await);
        }
        match self
            .consent_basis(policy, grant, &admitted, draft.at_micros)
            .await
        {
            Ok(Some(consent)) if draft.reason.is_none() => draft.reason = Some(consent),
            Ok(_) => {}
            Err(e) => return Err(self.deny(draft, e).await),
        }
        let writes = self.encrypt_fields(policy, id, &admitted.key, &values)?;
        draft.fields = values.iter().map(|(n, _, _)| n.clone()).collect();
        let at = draft.at_micros;
        if let Err(e) = self
            .store
            .update_subject(
                SubjectUpdate {
                    id: id.to_owned(),
                    at_micros: at,
                    enroll: None,
                    fields: writes,
                },
                draft.clone(),
            )
            .await
        {
            return Err(self.refuse_conflict(draft, e).await);
        }
        Ok(())
    }

    /// Enrols an existing subject in a further purpose (UU PDP Art. 16(2)(b)): allowed where the
    /// policy declares the purpose compatible with one the subject is enrolled in, or, for a
    /// purpose resting on consent, with a valid consent (given here or earlier).
    pub async fn enroll_subject(
        &self,
        permit: &Permit<act::SubjectEnroll>,
        consent: Option<&ConsentInput>,
    ) -> Result<Enrollment> {
        let policy = permit.policy();
        let id = permit.subject()?;
        let purpose = permit.purpose()?;
        let grant = permit.grant()?;
        let mut draft = permit.draft();
        if let Some(c) = consent {
            if c.purpose != purpose || !c.granted {
                return Err(Error::invalid(
                    "consent",
                    format!("the consent must grant purpose {purpose:?}"),
                ));
            }
        }
        let stored = self.load_or_deny(id, &draft).await?;
        let ground = match core_authz::enrollment_ground(policy, purpose, &stored.purposes) {
            Ok(g) => g,
            Err(d) => return Err(self.refuse(draft, &d).await),
        };
        let admitted = self
            .admit(permit, stored, Circumstances::default(), &draft)
            .await?;
        let at = draft.at_micros;
        let ground = match (ground, consent) {
            (EnrollGround::Compatible(with), _) => format!("compatible with {with}"),
            // The consent given now is the ground; recording it enrols the subject.
            (EnrollGround::Consent, Some(c)) => {
                if let Err(e) = self.guardian_visible(permit, c).await {
                    return Err(self.deny(draft, e).await);
                }
                let (_, receipt) = self
                    .record_consent_admitted(permit.principal(), policy, &admitted, c, draft)
                    .await?;
                return Ok(Enrollment {
                    subject_id: id.to_owned(),
                    purpose: purpose.to_owned(),
                    ground: format!("consent {}", receipt.consent_id),
                    consent_receipt: Some(receipt),
                });
            }
            // A consent on record already is the ground.
            (EnrollGround::Consent, None) => {
                match self.consent_basis(policy, grant, &admitted, at).await {
                    Ok(r) => r.unwrap_or_default(),
                    Err(e) => return Err(self.deny(draft, e).await),
                }
            }
        };
        draft.reason = Some(format!("enrolled: {ground}"));
        self.store
            .update_subject(
                SubjectUpdate {
                    id: id.to_owned(),
                    at_micros: at,
                    enroll: Some(purpose.to_owned()),
                    fields: Vec::new(),
                },
                draft,
            )
            .await
            .map_err(store_error)?;
        Ok(Enrollment {
            subject_id: id.to_owned(),
            purpose: purpose.to_owned(),
            ground,
            consent_receipt: None,
        })
    }

    /// Decides and decrypts one stored subject for a read permit; returns the view and the
    /// reason to record, or the refusal (not yet recorded).
    async fn checked_view<A: Act>(
        &self,
        permit: &Permit<A>,
        stored: StoredSubject,
        now_micros: i64,
    ) -> Result<std::result::Result<(SubjectView, Option<String>), Error>> {
        let policy = permit.policy();
        let grant = permit.grant()?;
        let admitted = match self.admission(permit, stored, Circumstances::default())? {
            Ok(a) => a,
            Err(d) => return Ok(Err(denial_error(&d))),
        };
        let reason = match self
            .consent_basis(policy, grant, &admitted, now_micros)
            .await
        {
            Ok(r) => r,
            Err(e @ Error::ConsentRequired(_)) => return Ok(Err(e)),
            Err(e) => return Err(e),
        };
        Ok(Ok((self.view(policy, grant, &admitted)?, reason)))
    }

    /// Decrypts the categories `grant` lets the caller read, masking where the role masks.
    fn view(&self, policy: &Policy, grant: &Grant, admitted: &Admitted) -> Result<SubjectView> {
        let stored = &admitted.stored;
        let mut out = Map::new();
        for (category, ciphertext) in sealed_fields(stored)? {
            let (Some(vis), Some(cat)) = (grant.readable.get(category), policy.category(category))
            else {
                continue;
            };
            metrics::counter!("amanah_crypto_operations_total", "op" => "open").increment(1);
            let plain = admitted
                .key
                .open_field(&stored.id, category, ciphertext)
                .map_err(|e| {
                    tracing::error!(subject = %stored.id, field = %category, "field does not decrypt");
                    Error::Internal(format!("subject {}: field {category}: {e}", stored.id))
                })?;
            let plain = zeroize::Zeroizing::new(
                std::str::from_utf8(&plain)
                    .map_err(|_| Error::Internal("stored value is not UTF-8".into()))?
                    .to_owned(),
            );
            let value = match vis {
                Visibility::Clear => fields::to_json(cat.field_type, &plain),
                Visibility::Masked => Value::String(fields::mask(cat.field_type, &plain)),
            };
            out.insert(category.clone(), value);
        }
        Ok(SubjectView {
            id: stored.id.clone(),
            fields: out,
        })
    }

    /// Reads the permit's subject under its purpose.
    pub async fn read_subject(&self, permit: &Permit<act::SubjectRead>) -> Result<SubjectView> {
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let stored = self.load_or_deny(id, &draft).await?;
        // Every failure after the decision, a ciphertext that does not open included, leaves
        // a refusal on record for this subject (fail closed).
        let view = match self.checked_view(permit, stored, draft.at_micros).await {
            Ok(Ok((v, reason))) => {
                draft.reason = reason;
                v
            }
            Ok(Err(e)) | Err(e) => return Err(self.deny(draft, e).await),
        };
        draft.fields = view.fields.keys().cloned().collect();
        self.record(draft).await?;
        Ok(view)
    }

    /// Finds subjects whose indexed `category` equals `value` (normalized first). One audit entry
    /// per subject returned or refused, or one for the search when nothing matched.
    pub async fn search(
        &self,
        permit: &Permit<act::SubjectSearch>,
        category: &str,
        value: &str,
    ) -> Result<Vec<SubjectView>> {
        let policy = permit.policy();
        let grant = permit.grant()?;
        let mut draft = permit.draft();
        // Only a category the policy declares is recorded: anything else is caller text.
        if policy.category(category).is_some() {
            draft.fields = vec![category.to_owned()];
        }
        // Refused searches are reads too: each leaves one audit entry, like a denial.
        let normalized = match search_value(policy, grant, category, value) {
            Ok(n) => n,
            Err(e) => return Err(self.deny(draft, e).await),
        };
        let term = self
            .blind_keys
            .get(&self.keys(), category)
            .index(normalized.as_bytes());
        let found = self
            .store
            .find_subjects(category, term, MAX_SEARCH_RESULTS)
            .await
            .map_err(store_error)?;
        let mut views = Vec::with_capacity(found.len());
        let mut entries = Vec::with_capacity(found.len().max(1));
        for stored in found {
            let mut e = draft.clone();
            e.subject = Some(stored.id.clone());
            let checked = match self.checked_view(permit, stored, draft.at_micros).await {
                Ok(c) => c,
                Err(err) => return Err(self.deny(e, err).await),
            };
            match checked {
                Ok((view, reason)) => {
                    e.fields = view.fields.keys().cloned().collect();
                    e.reason = reason;
                    entries.push(e);
                    views.push(view);
                }
                // A subject this read may not touch (not enrolled in the purpose, no consent, a
                // minor, restricted) is left out of the results, and the refusal is recorded.
                Err(err) => {
                    e.outcome = Outcome::Denied;
                    e.reason = Some(err.to_string());
                    e.fields = Vec::new();
                    entries.push(e);
                }
            }
        }
        if entries.is_empty() {
            entries.push(draft);
        }
        self.store
            .append_audit(entries)
            .await
            .map_err(store_error)?;
        Ok(views)
    }
}

/// A subject enrolled in a further purpose, and on what ground.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub subject_id: String,
    pub purpose: String,
    pub ground: String,
    pub consent_receipt: Option<ConsentReceipt>,
}

/// The age group shown by a birth date among newly submitted values; refuses a person under
/// the policy's minimum age (nothing is stored). `None` when no birth date is submitted.
pub(crate) fn age_of_new_values(
    policy: &Policy,
    values: &[(String, FieldType, String)],
    now_micros: i64,
) -> Result<Option<AgeGroup>> {
    let Some(cat) = policy.birth_date_category() else {
        return Ok(None);
    };
    let Some((_, _, value)) = values.iter().find(|(n, _, _)| *n == cat.name) else {
        return Ok(None);
    };
    let Some(birth) = consent::parse_date(value) else {
        return Ok(None);
    };
    let today = consent::today_in(&policy.settings, now_micros);
    let group = consent::age_group(&policy.settings, birth, today);
    if group == AgeGroup::BelowMinimum {
        return Err(Error::invalid(
            &cat.name,
            format!(
                "field {:?}: the person is under {}, the policy's minimum_age: their data may not be collected",
                cat.name, policy.settings.minimum_age
            ),
        ));
    }
    Ok(Some(group))
}

/// Checks that `category` can be searched by this grant and normalizes the value to search for.
fn search_value(policy: &Policy, grant: &Grant, category: &str, value: &str) -> Result<String> {
    let cat = match policy.category(category) {
        Some(c) if c.index => c,
        Some(_) => {
            return Err(Error::invalid(
                category,
                format!("category {category:?} is not indexed: the policy must set `index = true` to search by it"),
            ))
        }
        None => {
            return Err(Error::Invalid {
                field: None,
                message: "unknown search parameter: the policy has no category by that name"
                    .to_owned(),
            })
        }
    };
    if !grant.may_search(category) {
        return Err(denial_error(&Denial::CategoryNotVisible {
            category: category.to_owned(),
            purpose: grant.purpose.clone(),
        }));
    }
    fields::normalize_str(cat.field_type, value).map_err(|e| {
        Error::invalid(
            category,
            format!("search value for {category:?}: {}", e.rule),
        )
    })
}
