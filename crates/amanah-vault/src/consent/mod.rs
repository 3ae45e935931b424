//! Consent and relations use cases: recording consent decisions with evidence, the consent
//! history and state of a subject, re-consent listings, contact lists for campaigns, and links
//! between subjects. The rules themselves live in `amanah_core::consent`.

use amanah_core::access::Denial;
use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_core::consent::{self, AgeGroup, ConsentDenial, ConsentEvent, GivenBy};
use amanah_core::policy::{LegalBasis, Policy, Purpose};
use amanah_core::{Error, Result};
use amanah_crypto::DataKey;
use amanah_store::{ConsentRecord, ConsentSelection, RelationRecord, StoreError};
use serde_json::{json, Value};

use crate::authz::{act, Act, Admitted, Circumstances, Permit, Principal};
use crate::vault::{hex, store_error, Vault};

mod history;
mod relations;

pub use history::*;
pub use relations::*;

/// Longest evidence text accepted (a form reference, a signed statement, a log excerpt).
pub const MAX_EVIDENCE_CHARS: usize = 4_096;
/// Default and largest page of the consent listings.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1_000;
/// Consent records one contact-list call examines, per subject it may return.
const SCAN_FACTOR: usize = 10;

/// The answer for a guardian id the caller may not name (absent, or not visible to it).
const NO_GUARDIAN: &str = "no subject this caller may name as guardian has that id";

/// Kinds of link between two subjects.
pub const RELATION_KINDS: [&str; 4] = ["guardian", "parent", "guarantor", "emergency_contact"];

/// Who acts for a subject when `given_by` is `guardian`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardianInput {
    /// A guardian who is a subject of the vault.
    Subject(String),
    /// A guardian recorded by their details (sealed under the minor's data key).
    Details {
        name: String,
        relationship: String,
        contact: Option<String>,
    },
}

/// A consent decision as a caller submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentInput {
    pub purpose: String,
    pub granted: bool,
    /// Where the decision was captured (`web_form`, `paper`, `call_center`...).
    pub channel: String,
    pub evidence: Option<String>,
    pub given_by: String,
    pub guardian: Option<GuardianInput>,
    /// Marketing channels the person accepts.
    pub contact_channels: Vec<String>,
}

/// What the person (or their guardian) receives as proof of a recorded decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentReceipt {
    pub consent_id: String,
    pub subject_id: String,
    pub purpose: String,
    pub purpose_version: String,
    pub policy_version: String,
    pub controller_name: String,
    pub controller_contact: String,
    pub granted: bool,
    pub given_by: String,
    pub channel: String,
    pub contact_channels: Vec<String>,
    pub evidence_sha256: Option<String>,
    pub at_micros: i64,
    /// The audit entry that records the decision: the receipt can be checked against the chain.
    pub audit_seq: u64,
    pub audit_hash: String,
}

/// Consent events as the core rules read them; records with an unknown `given_by` (which
/// the vault never writes) count as the subject's own.
pub(crate) fn events(records: &[ConsentRecord]) -> Vec<ConsentEvent> {
    records
        .iter()
        .map(|r| ConsentEvent {
            id: r.id.clone(),
            purpose: r.purpose.clone(),
            purpose_version: r.purpose_version.clone(),
            policy_version: r.policy_version.clone(),
            granted: r.granted,
            given_by: GivenBy::parse(&r.given_by).unwrap_or(GivenBy::Subject),
            at_micros: r.at_micros,
        })
        .collect()
}

pub(crate) fn consent_error(d: &ConsentDenial) -> Error {
    Error::ConsentRequired(d.to_string())
}

/// Salted fingerprint of evidence: the consent id salts it so equal evidence texts of two
/// decisions do not share a hash.
fn evidence_fingerprint(kind: &str, id: &str, evidence: &str) -> String {
    let mut data = Vec::with_capacity(kind.len() + id.len() + evidence.len() + 2);
    data.extend_from_slice(kind.as_bytes());
    data.push(0);
    data.extend_from_slice(id.as_bytes());
    data.push(0);
    data.extend_from_slice(evidence.as_bytes());
    amanah_crypto::digest::sha256_hex(&data)
}

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn short_text(field: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("`{field}` must be 1 to {max} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

fn consent_purpose<'p>(policy: &'p Policy, purpose: &str) -> Result<&'p Purpose> {
    let p = policy
        .purpose(purpose)
        .ok_or_else(|| Error::invalid("purpose", Denial::unknown_purpose(policy).to_string()))?;
    if p.basis != LegalBasis::Consent {
        return Err(Error::invalid(
            "purpose",
            format!(
                "purpose {purpose:?} rests on the legal basis {:?}, not on consent: no consent is recorded for it",
                p.basis.as_str()
            ),
        ));
    }
    Ok(p)
}

pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid(
            "limit",
            format!("`limit` must be between 1 and {MAX_PAGE}"),
        )),
    }
}

/// Whose decision is sealed, by whom, under which key, when.
pub(crate) struct ConsentTarget<'a> {
    pub who: &'a Principal,
    pub subject_id: &'a str,
    pub key: &'a DataKey,
    pub at_micros: i64,
}

/// Checked and normalized parts of a consent decision, before it is sealed.
pub(crate) struct CheckedConsent {
    purpose_version: String,
    given_by: GivenBy,
    contact_channels: Vec<String>,
}

impl Vault {
    /// Validates a decision's shape against the policy (no store access).
    pub(crate) fn check_consent_input(
        &self,
        policy: &Policy,
        input: &ConsentInput,
    ) -> Result<CheckedConsent> {
        let purpose = consent_purpose(policy, &input.purpose)?;
        let given_by = GivenBy::parse(&input.given_by).ok_or_else(|| {
            Error::invalid("given_by", "`given_by` must be \"subject\" or \"guardian\"")
        })?;
        if !is_token(&input.channel, 64) {
            return Err(Error::invalid(
                "channel",
                "`channel` names where the decision was captured, e.g. \"web_form\" (lower-case letters, digits, _ and -)",
            ));
        }
        match &input.evidence {
            Some(e) if e.trim().is_empty() || e.chars().count() > MAX_EVIDENCE_CHARS => {
                return Err(Error::invalid(
                    "evidence",
                    format!("`evidence` must be 1 to {MAX_EVIDENCE_CHARS} characters"),
                ))
            }
            None if input.granted => {
                return Err(Error::invalid(
                    "evidence",
                    "a grant needs `evidence` of how consent was given (form reference, signed statement...)",
                ))
            }
            _ => {}
        }
        match (given_by, &input.guardian) {
            (GivenBy::Subject, Some(_)) => {
                return Err(Error::invalid(
                    "guardian",
                    "`guardian` is only for decisions given by a guardian (`given_by`: \"guardian\")",
                ))
            }
            (GivenBy::Guardian, None) => {
                return Err(Error::invalid(
                    "guardian",
                    "a guardian's decision names the guardian: {\"subject_id\": ...} or {\"name\", \"relationship\"}",
                ))
            }
            _ => {}
        }
        let allowed = consent::allowed_channels(purpose);
        let mut channels: Vec<String> = Vec::with_capacity(input.contact_channels.len());
        for c in &input.contact_channels {
            if !allowed.contains(&c.as_str()) {
                return Err(Error::invalid(
                    "contact_channels",
                    format!(
                        "channel {c:?} is not one purpose {:?} may use; it lists: {}",
                        input.purpose,
                        allowed.join(", ")
                    ),
                ));
            }
            if !channels.contains(c) {
                channels.push(c.clone());
            }
        }
        if !input.granted && !channels.is_empty() {
            return Err(Error::invalid(
                "contact_channels",
                "a withdrawal withdraws every channel; to keep some, record a new grant listing only those",
            ));
        }
        Ok(CheckedConsent {
            purpose_version: policy.purpose_version(&input.purpose).unwrap_or_default(),
            given_by,
            contact_channels: channels,
        })
    }

    /// Checks who may give the decision, given the subject's age group and (for an adult's
    /// guardian) the guardian relations recorded for them.
    async fn check_entitlement(
        &self,
        policy: &Policy,
        subject_id: Option<&str>,
        age: Option<AgeGroup>,
        checked: &CheckedConsent,
        input: &ConsentInput,
    ) -> Result<()> {
        let minor = age == Some(AgeGroup::Minor);
        match checked.given_by {
            GivenBy::Subject if minor && input.granted => Err(Error::invalid(
                "given_by",
                format!(
                    "guardian consent required: the subject is under {} (the policy's adult_age), so consent must be \
                     given by a parent or guardian (UU PDP Art. 25)",
                    policy.settings.adult_age
                ),
            )),
            GivenBy::Subject => Ok(()),
            GivenBy::Guardian => {
                if let Some(GuardianInput::Subject(g)) = &input.guardian {
                    if Some(g.as_str()) == subject_id {
                        return Err(Error::invalid(
                            "guardian",
                            "a subject cannot be their own guardian",
                        ));
                    }
                    let Some(stored) = self.store.load_subject(g).await.map_err(store_error)? else {
                        return Err(Error::invalid("guardian", NO_GUARDIAN));
                    };
                    let key = self.unwrap_key(&stored)?;
                    if matches!(
                        self.age_group(policy, &key, &stored)?,
                        Some(AgeGroup::Minor | AgeGroup::BelowMinimum)
                    ) {
                        return Err(Error::invalid(
                            "guardian",
                            "the guardian must be an adult under the policy's adult_age",
                        ));
                    }
                }
                if minor {
                    return Ok(());
                }
                // An adult consents alone, unless a guardian is linked to them (UU PDP Art. 26).
                let linked = match (&input.guardian, subject_id) {
                    (Some(GuardianInput::Subject(g)), Some(s)) => self
                        .store
                        .relations(s)
                        .await
                        .map_err(store_error)?
                        .iter()
                        .any(|r| r.kind == "guardian" && r.subject_id == s && &r.related_subject_id == g),
                    _ => false,
                };
                if linked {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "given_by",
                        "the subject is not a minor: they decide for themselves, unless a guardian is linked to them \
                         by a `guardian` relation",
                    ))
                }
            }
        }
    }

    /// Seals a checked decision into a record for `subject_id` under its data key.
    fn seal_consent(
        &self,
        policy: &Policy,
        target: &ConsentTarget<'_>,
        checked: CheckedConsent,
        input: &ConsentInput,
    ) -> Result<ConsentRecord> {
        let ConsentTarget {
            who,
            subject_id,
            key,
            at_micros,
        } = *target;
        let id = uuid::Uuid::new_v4().to_string();
        let seal = |field: &str, plain: &[u8]| {
            key.seal_field(subject_id, &format!("{field}:{id}"), plain)
                .map_err(|e| Error::Internal(e.to_string()))
        };
        let evidence = input.evidence.as_deref().map(str::trim);
        let (guardian_subject_id, guardian_details) = match &input.guardian {
            None => (None, None),
            Some(GuardianInput::Subject(g)) => (Some(g.clone()), None),
            Some(GuardianInput::Details {
                name,
                relationship,
                contact,
            }) => {
                let details = json!({
                    "name": short_text("guardian.name", name, 200)?,
                    "relationship": short_text("guardian.relationship", relationship, 64)?,
                    "contact": contact.as_deref().map(|c| short_text("guardian.contact", c, 200)).transpose()?,
                });
                (
                    None,
                    Some(seal("consent.guardian", details.to_string().as_bytes())?),
                )
            }
        };
        Ok(ConsentRecord {
            evidence: evidence
                .map(|e| seal("consent.evidence", e.as_bytes()))
                .transpose()?,
            evidence_sha256: evidence.map(|e| evidence_fingerprint("consent.evidence", &id, e)),
            id,
            subject_id: subject_id.to_owned(),
            purpose: input.purpose.clone(),
            purpose_version: checked.purpose_version,
            policy_version: policy.version.clone(),
            granted: input.granted,
            given_by: checked.given_by.as_str().to_owned(),
            capture_channel: input.channel.clone(),
            contact_channels: checked.contact_channels,
            guardian_subject_id,
            guardian_details,
            recorded_by: who.key_id().to_owned(),
            at_micros,
        })
    }

    /// Checks and seals a decision recorded together with a new subject (whose age comes from
    /// the submitted birth date).
    pub(crate) async fn consent_for_new_subject(
        &self,
        policy: &Policy,
        target: &ConsentTarget<'_>,
        age: Option<AgeGroup>,
        input: &ConsentInput,
    ) -> Result<ConsentRecord> {
        let checked = self.check_consent_input(policy, input)?;
        self.check_entitlement(policy, None, age, &checked, input)
            .await?;
        self.seal_consent(policy, target, checked, input)
    }

    pub(crate) fn receipt(
        &self,
        policy: &Policy,
        record: &ConsentRecord,
        audit: &AuditRecord,
    ) -> ConsentReceipt {
        ConsentReceipt {
            consent_id: record.id.clone(),
            subject_id: record.subject_id.clone(),
            purpose: record.purpose.clone(),
            purpose_version: record.purpose_version.clone(),
            policy_version: record.policy_version.clone(),
            controller_name: policy.controller.name.clone(),
            controller_contact: policy.controller.contact.clone(),
            granted: record.granted,
            given_by: record.given_by.clone(),
            channel: record.capture_channel.clone(),
            contact_channels: record.contact_channels.clone(),
            evidence_sha256: record.evidence_sha256.clone(),
            at_micros: record.at_micros,
            audit_seq: audit.seq,
            audit_hash: hex(&audit.hash),
        }
    }

    /// Records a grant or withdrawal for the permit's subject. A grant enrols the subject in the
    /// purpose (consent is its own ground); a withdrawal is accepted whatever the subject's
    /// state, since it only ever reduces processing.
    pub async fn record_consent<A: act::ConsentChange>(
        &self,
        permit: &Permit<A>,
        input: &ConsentInput,
    ) -> Result<(ConsentRecord, ConsentReceipt)> {
        let policy = permit.policy();
        if input.purpose != permit.purpose()? || input.granted != A::GRANTED {
            return Err(Error::Internal(
                "the consent decision differs from what was authorized".into(),
            ));
        }
        let draft = permit.draft();
        let admitted = self
            .admit_subject(permit, Circumstances::default(), &draft)
            .await?;
        if let Err(e) = self.guardian_visible(permit, input).await {
            return Err(self.deny(draft, e).await);
        }
        self.record_consent_admitted(permit.principal(), policy, &admitted, input, draft)
            .await
    }

    /// A guardian named by subject id must be someone the caller may see: a subject sharing a
    /// purpose with the caller's role that passes the same decision. Otherwise the answer is
    /// the one for an id that does not exist, so the field cannot probe who exists or is a minor.
    pub(crate) async fn guardian_visible<A: Act>(
        &self,
        permit: &Permit<A>,
        input: &ConsentInput,
    ) -> Result<()> {
        // A guardian acting in the portal decides as the guardian, in their own name, never as
        // the child (the relation was checked when their principal was made).
        if let Some(acting) = permit.principal().acting_guardian() {
            return match &input.guardian {
                Some(GuardianInput::Subject(g)) if g == acting && input.given_by == "guardian" => {
                    Ok(())
                }
                _ => Err(Error::invalid(
                    "given_by",
                    "a guardian acting for a child decides as the guardian, in their own name",
                )),
            };
        }
        let Some(GuardianInput::Subject(g)) = &input.guardian else {
            return Ok(());
        };
        let hidden = || Error::invalid("guardian", NO_GUARDIAN);
        let Some(stored) = self.store.load_subject(g).await.map_err(store_error)? else {
            return Err(hidden());
        };
        if !permit.decision().shares_purpose(&stored.purposes) {
            return Err(hidden());
        }
        match self.admission(permit, stored, Circumstances::default())? {
            Ok(_) => Ok(()),
            Err(_) => Err(hidden()),
        }
    }

    /// Records a consent decision for a subject the decision point admitted.
    pub(crate) async fn record_consent_admitted(
        &self,
        who: &Principal,
        policy: &Policy,
        admitted: &Admitted,
        input: &ConsentInput,
        mut draft: AuditDraft,
    ) -> Result<(ConsentRecord, ConsentReceipt)> {
        let subject_id = admitted.stored.id.as_str();
        let checked = self.check_consent_input(policy, input)?;
        let age = if admitted.minor {
            Some(AgeGroup::Minor)
        } else {
            self.age_group(policy, &admitted.key, &admitted.stored)?
        };
        if let Err(e) = self
            .check_entitlement(policy, Some(subject_id), age, &checked, input)
            .await
        {
            return Err(self.deny(draft, e).await);
        }
        let target = ConsentTarget {
            who,
            subject_id,
            key: &admitted.key,
            at_micros: draft.at_micros,
        };
        let record = self.seal_consent(policy, &target, checked, input)?;
        draft.reason = Some(format!(
            "consent {} {} by {} (purpose version {}, evidence sha256 {})",
            record.id,
            if record.granted {
                "granted"
            } else {
                "withdrawn"
            },
            record.given_by,
            &record.purpose_version[..record.purpose_version.len().min(12)],
            record.evidence_sha256.as_deref().unwrap_or("none"),
        ));
        let audit = self
            .store
            .insert_consent(record.clone(), draft)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    Error::NotFound(format!("no subject {}", crate::vault::id_shown(subject_id)))
                }
                other => store_error(other),
            })?;
        let receipt = self.receipt(policy, &record, &audit);
        Ok((record, receipt))
    }
}
