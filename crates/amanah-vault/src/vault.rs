use std::sync::{Arc, RwLock};

use amanah_core::access::{self, Denial, Grant, Visibility};
use amanah_core::audit::{AuditDraft, AuditRecord, ChainBreak, ChainVerifier, Outcome};
use amanah_core::authz::{self as core_authz, Caller, EnrollGround};
use amanah_core::consent::{self, AgeGroup};
use amanah_core::fields::{self, FieldType};
use amanah_core::policy::{LegalBasis, Policy, ADMIN_ROLE};
use amanah_core::{Error, Result};
use amanah_crypto::blind::BlindIndexKey;
use amanah_crypto::{token, DataKey, KeyRing};
use amanah_store::{
    ApiKeyRecord, BulkInsert, FieldWrite, NewSubject, PolicyRecord, Store, StoreError,
    StoredSubject, SubjectUpdate,
};
use serde_json::{Map, Value};

use crate::authz::{act, Act, Admitted, Circumstances, Permit, Principal};
use crate::consent::{consent_error, events, ConsentInput, ConsentReceipt, ConsentTarget};
use crate::Clock;

/// Most subjects one search returns.
pub const MAX_SEARCH_RESULTS: usize = 1_000;
/// Audit entries per verification page.
const VERIFY_PAGE: usize = 10_000;

/// Actor name for operations run from the command line on the server's machine.
pub const CLI_ACTOR: &str = "cli";

/// The policy in force and the store sequence number it was applied as.
#[derive(Debug)]
pub struct ActivePolicy {
    pub policy: Policy,
    pub record: PolicyRecord,
}

/// A subject as a caller may see it under one purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectView {
    pub id: String,
    pub fields: Map<String, Value>,
}

/// Result of verifying the audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    /// Hex hash of the last entry (the chain head) when intact.
    pub head: Option<String>,
    pub first_bad: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// A newly issued API key. `token` is shown once and never stored.
#[derive(Debug)]
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub token: zeroize::Zeroizing<String>,
}

/// One row of a bulk import: where it came from and its fields (category -> value).
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub fields: Map<String, Value>,
}

/// Why an import row was refused. Names the category and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub category: Option<String>,
    pub message: String,
}

/// How [`Vault::import_subjects`] runs.
#[derive(Clone)]
pub struct ImportOptions {
    /// Threads that validate and encrypt rows in parallel.
    pub workers: usize,
    /// Return the ids of the new subjects (in row order).
    pub collect_ids: bool,
    /// Called with the number of rows prepared so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            collect_ids: false,
            progress: None,
        }
    }
}

/// Result of an import: either every row was imported, or none was and `rejected` says why.
#[derive(Debug, Default)]
pub struct ImportOutcome {
    pub imported: u64,
    /// Sorted by line. Non-empty means nothing was written.
    pub rejected: Vec<RowError>,
    pub ids: Vec<String>,
}

pub struct Vault {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) clock: Arc<dyn Clock>,
    policy: RwLock<Arc<ActivePolicy>>,
    /// Blind-index keys derived so far, by category (HKDF once, not per request).
    blind_keys: BlindKeys,
}

/// Blind-index keys by category, derived on first use.
#[derive(Default)]
struct BlindKeys(RwLock<std::collections::HashMap<String, Arc<BlindIndexKey>>>);

impl BlindKeys {
    fn get(&self, keys: &KeyRing, category: &str) -> Arc<BlindIndexKey> {
        let cached = match self.0.read() {
            Ok(m) => m.get(category).cloned(),
            Err(poisoned) => poisoned.into_inner().get(category).cloned(),
        };
        if let Some(k) = cached {
            return k;
        }
        let key = Arc::new(keys.blind_index_key(category));
        let mut map = match self.0.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(category.to_owned()).or_insert(key).clone()
    }
}

/// Everything a worker thread needs to validate and encrypt import rows.
struct ImportContext {
    active: Arc<ActivePolicy>,
    grant: Grant,
    keys: Arc<KeyRing>,
    blind: std::collections::HashMap<String, Arc<BlindIndexKey>>,
    clock: Arc<dyn Clock>,
    purpose: String,
    draft: AuditDraft,
}

type PreparedRow = Result<(NewSubject, AuditDraft), Vec<RowError>>;

impl ImportContext {
    fn prepare(&self, row: ImportRow) -> PreparedRow {
        let policy = &self.active.policy;
        let line = row.line;
        let mut errors = Vec::new();
        let mut values = Vec::with_capacity(row.fields.len());
        for (name, value) in &row.fields {
            match check_field(policy, &self.grant, name, value) {
                Ok((ty, normalized)) => values.push((name.clone(), ty, normalized)),
                Err(message) => errors.push(RowError {
                    line,
                    category: Some(name.clone()),
                    message,
                }),
            }
        }
        if row.fields.is_empty() {
            errors.push(RowError {
                line,
                category: None,
                message: "the row has no values".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let now = self.clock.now_micros();
        // An admin imports (cleared for a minor's data), so only the minimum age can refuse.
        if let Err(e) = age_of_new_values(policy, &values, now) {
            return Err(vec![row_error(line, e)]);
        }
        let internal = |e: amanah_crypto::CryptoError| {
            vec![RowError {
                line,
                category: None,
                message: format!("encryption failed: {e}"),
            }]
        };
        let id = new_subject_id();
        let key = DataKey::generate(1).map_err(internal)?;
        let wrapped_key = self.keys.wrap(&key, &id).map_err(internal)?;
        let fields = seal_fields(policy, &id, &key, &values, |c| self.blind.get(c).cloned())
            .map_err(|e| {
                vec![RowError {
                    line,
                    category: None,
                    message: e.to_string(),
                }]
            })?;
        let mut draft = self.draft.clone();
        draft.at_micros = now;
        draft.subject = Some(id.clone());
        draft.fields = values.iter().map(|(n, _, _)| n.clone()).collect();
        Ok((
            NewSubject {
                id,
                wrapped_key,
                created_at_micros: draft.at_micros,
                purpose: self.purpose.clone(),
                fields,
                consents: Vec::new(),
            },
            draft,
        ))
    }
}

fn row_error(line: u64, e: Error) -> RowError {
    match e {
        Error::Invalid { field, message } => RowError {
            line,
            category: field,
            message,
        },
        other => RowError {
            line,
            category: None,
            message: other.to_string(),
        },
    }
}

/// A new subject id: a version 7 UUID (a millisecond timestamp, then 74 random bits). Ids
/// created together sort together, so the store's per-subject B-trees (subjects, fields,
/// purposes, the by-subject indexes) grow at their right edge instead of at random pages.
/// The timestamp tells no more than the subject's `created_at`, which the audit log records.
fn new_subject_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Validates one request field against the purpose and normalizes it. The message names the
/// rule, never the value.
fn check_field(
    policy: &Policy,
    grant: &Grant,
    name: &str,
    value: &Value,
) -> std::result::Result<(FieldType, String), String> {
    let Some(cat) = policy.category(name) else {
        return Err(format!(
            "unknown field {name:?}: the policy has no such category"
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
fn seal_fields(
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

pub(crate) fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Unique { category } => Error::Conflict(format!(
            "another subject already holds this {category} (the policy declares it unique)"
        )),
        StoreError::NotFound => Error::NotFound("not found".into()),
        StoreError::Conflict(m) => Error::Conflict(m),
        other => {
            tracing::error!(error = %other, "store failure");
            Error::Internal("storage failure".into())
        }
    }
}

impl Vault {
    /// Opens a vault over an initialized store (one with an applied policy).
    pub async fn open(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let record = store
            .current_policy()
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                Error::Conflict("the store has no policy: run `amanah init` first".into())
            })?;
        let policy = parse_stored(&record)?;
        Ok(Vault {
            store,
            keys,
            clock,
            policy: RwLock::new(Arc::new(ActivePolicy { policy, record })),
            blind_keys: BlindKeys::default(),
        })
    }

    /// Applies the first policy of a fresh store and opens the vault over it.
    pub async fn initialize(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        policy_source: &str,
    ) -> Result<Self> {
        if store.current_policy().await.map_err(store_error)?.is_some() {
            return Err(Error::Conflict("the store is already initialized".into()));
        }
        let policy = parse_source(policy_source)?;
        insert_policy(
            &*store,
            &*clock,
            CLI_ACTOR,
            ADMIN_ROLE,
            &policy,
            policy_source,
        )
        .await?;
        Vault::open(store, keys, clock).await
    }

    pub fn policy(&self) -> Arc<ActivePolicy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    fn set_policy(&self, active: ActivePolicy) {
        let active = Arc::new(active);
        match self.policy.write() {
            Ok(mut p) => *p = active,
            Err(poisoned) => *poisoned.into_inner() = active,
        }
    }

    /// Picks up a policy applied by another process (e.g. `amanah policy apply`). Returns true
    /// when the policy in force changed.
    pub async fn reload_policy(&self) -> Result<bool> {
        let Some(record) = self.store.current_policy().await.map_err(store_error)? else {
            return Ok(false);
        };
        if record.seq == self.policy().record.seq {
            return Ok(false);
        }
        let policy = parse_stored(&record)?;
        tracing::info!(version = %policy.version, seq = record.seq, "policy reloaded");
        self.set_policy(ActivePolicy { policy, record });
        Ok(true)
    }

    pub(crate) fn draft_for(&self, who: &Principal, action: &str, policy: &Policy) -> AuditDraft {
        AuditDraft {
            at_micros: self.clock.now_micros(),
            actor: who.key_id().to_owned(),
            role: who.role().to_owned(),
            action: action.to_owned(),
            purpose: None,
            basis: None,
            outcome: Outcome::Allowed,
            reason: None,
            subject: None,
            fields: Vec::new(),
            policy_version: policy.version.clone(),
        }
    }

    /// Appends the audit entry of an allowed access.
    pub(crate) async fn record(&self, draft: AuditDraft) -> Result<()> {
        self.store
            .append_audit(vec![draft])
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    /// Records a refusal and returns the error to give the caller.
    pub(crate) async fn deny(&self, mut draft: AuditDraft, error: Error) -> Error {
        draft.outcome = Outcome::Denied;
        draft.reason = Some(audit_reason(&error));
        if let Err(e) = self.store.append_audit(vec![draft]).await {
            return store_error(e);
        }
        error
    }

    // ---------------------------------------------------------------- authentication

    /// Resolves a bearer token to its principal. Unknown, revoked or malformed tokens, and keys
    /// whose role the current policy no longer defines, are all "unauthenticated".
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal> {
        if !token::looks_valid(bearer) {
            return Err(Error::Unauthenticated);
        }
        let record = self
            .store
            .api_key_by_hash(&token::hash(bearer))
            .await
            .map_err(store_error)?
            .ok_or(Error::Unauthenticated)?;
        if record.revoked_at_micros.is_some() {
            return Err(Error::Unauthenticated);
        }
        let policy = self.policy();
        if record.role != ADMIN_ROLE && policy.policy.role(&record.role).is_none() {
            return Err(Error::Unauthenticated);
        }
        Ok(Principal::new(Caller {
            key_id: record.id,
            role: record.role,
            holder: record.holder,
        }))
    }

    // ---------------------------------------------------------------- subjects

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
                check_field(policy, grant, name, value).map_err(|m| Error::invalid(name, m))?;
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
        seal_fields(policy, subject, key, values, |c| {
            Some(self.blind_keys.get(&self.keys, c))
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
        let key = DataKey::generate(1).map_err(|e| Error::Internal(e.to_string()))?;
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
        let wrapped_key = self
            .keys
            .wrap(&key, &id)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let writes = self.encrypt_fields(policy, &id, &key, &values)?;
        draft.subject = Some(id.clone());
        draft.fields = values.iter().map(|(n, _, _)| n.clone()).collect();
        if let Some(c) = consents.first() {
            draft.reason = Some(format!("collected with consent {}", c.id));
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
                draft.subject = None;
                return Err(self.refuse_conflict(draft, e).await);
            }
        };
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
        let Some(stored) = self.store.load_subject(id).await.map_err(store_error)? else {
            let missing = self.missing_subject(id).await?;
            return Err(self.deny(draft, missing).await);
        };
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
        let Some(stored) = self.store.load_subject(id).await.map_err(store_error)? else {
            let missing = self.missing_subject(id).await?;
            return Err(self.deny(draft, missing).await);
        };
        let ground = match core_authz::enrollment_ground(policy, purpose, &stored.purposes) {
            Ok(g) => g,
            Err(d) => return Err(self.refuse(draft, &d).await),
        };
        let admitted = self
            .admit(permit, stored, Circumstances::default(), &draft)
            .await?;
        let at = draft.at_micros;
        match ground {
            EnrollGround::Compatible(with) => {
                draft.reason = Some(format!("enrolled: compatible with {with}"));
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
                    ground: format!("compatible with {with}"),
                    consent_receipt: None,
                })
            }
            EnrollGround::Consent => match consent {
                // The consent given now is the ground; recording it enrols the subject.
                Some(c) => {
                    if let Err(e) = self.guardian_visible(permit, c).await {
                        return Err(self.deny(draft, e).await);
                    }
                    let (_, receipt) = self
                        .record_consent_admitted(permit.principal(), policy, &admitted, c, draft)
                        .await?;
                    Ok(Enrollment {
                        subject_id: id.to_owned(),
                        purpose: purpose.to_owned(),
                        ground: format!("consent {}", receipt.consent_id),
                        consent_receipt: Some(receipt),
                    })
                }
                None => {
                    let reason = match self.consent_basis(policy, grant, &admitted, at).await {
                        Ok(r) => r.unwrap_or_default(),
                        Err(e) => return Err(self.deny(draft, e).await),
                    };
                    draft.reason = Some(format!("enrolled: {reason}"));
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
                        ground: reason,
                        consent_receipt: None,
                    })
                }
            },
        }
    }

    pub(crate) fn unwrap_key(&self, stored: &StoredSubject) -> Result<DataKey> {
        metrics::counter!("amanah_crypto_operations_total", "op" => "unwrap").increment(1);
        self.keys
            .unwrap(&stored.wrapped_key, &stored.id)
            .map_err(|e| {
                tracing::error!(subject = %stored.id, error = %e, "data key does not unwrap");
                Error::Internal(e.to_string())
            })
    }

    /// The subject's age group from their stored birth date (`None` when the policy has no
    /// birth-date category or the subject has no birth date).
    pub(crate) fn age_group(
        &self,
        policy: &Policy,
        key: &DataKey,
        stored: &StoredSubject,
    ) -> Result<Option<AgeGroup>> {
        let Some(cat) = policy.birth_date_category() else {
            return Ok(None);
        };
        let Some((_, ciphertext)) = stored.fields.iter().find(|(c, _)| *c == cat.name) else {
            return Ok(None);
        };
        let plain = key
            .open_field(&stored.id, &cat.name, ciphertext)
            .map_err(|e| {
                tracing::error!(subject = %stored.id, field = %cat.name, "field does not decrypt");
                Error::Internal(format!("subject {}: field {}: {e}", stored.id, cat.name))
            })?;
        let today = consent::date_of(self.clock.now_micros());
        Ok(std::str::from_utf8(&plain)
            .ok()
            .and_then(consent::parse_date)
            .map(|birth| consent::age_group(&policy.settings, birth, today)))
    }

    /// For a purpose resting on consent, checks the subject's consent now (after the
    /// per-subject decision). Returns the consent relied on, for the audit entry.
    pub(crate) async fn consent_basis(
        &self,
        policy: &Policy,
        grant: &Grant,
        admitted: &Admitted,
        now_micros: i64,
    ) -> Result<Option<String>> {
        if grant.basis != LegalBasis::Consent {
            return Ok(None);
        }
        let records = self
            .store
            .consents(&admitted.stored.id)
            .await
            .map_err(store_error)?;
        let events = events(&records);
        let version = policy.purpose_version(&grant.purpose).unwrap_or_default();
        let valid = consent::evaluate(
            &events,
            &grant.purpose,
            &version,
            &policy.version,
            now_micros,
            policy.settings.withdrawal_grace_days,
            admitted.minor,
        )
        .map_err(|d| consent_error(&d))?;
        Ok(Some(match valid.withdrawal_effective_micros {
            None => format!("consent {}", valid.grant.id),
            Some(until) => format!(
                "consent {} (withdrawn; processing stops on {})",
                valid.grant.id,
                consent::date_of(until)
            ),
        }))
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
        for (category, ciphertext) in &stored.fields {
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
                String::from_utf8(plain)
                    .map_err(|_| Error::Internal("stored value is not UTF-8".into()))?,
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
        let Some(stored) = self.store.load_subject(id).await.map_err(store_error)? else {
            let missing = self.missing_subject(id).await?;
            return Err(self.deny(draft, missing).await);
        };
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
            .get(&self.keys, category)
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

    /// Imports many subjects under `purpose` (admin only): every row is validated, encrypted
    /// (rows the source could not parse arrive as `Err` and count as rejected)
    /// on `options.workers` threads and written with its own `subject.create` audit entry, all
    /// in one store transaction. All or nothing: if any row is invalid or collides with a
    /// unique value (in the input or in the vault), nothing is written and every bad row is
    /// returned in [`ImportOutcome::rejected`].
    pub async fn import_subjects(
        &self,
        permit: &Permit<act::SubjectImport>,
        purpose: &str,
        mut rows: tokio::sync::mpsc::Receiver<Vec<std::result::Result<ImportRow, RowError>>>,
        options: ImportOptions,
    ) -> Result<ImportOutcome> {
        let active = permit.active().clone();
        let mut draft = permit.draft();
        draft.purpose = Some(purpose.to_owned());
        let grant = match access::grant(&active.policy, permit.principal().role(), purpose) {
            Ok(g) => g,
            Err(d) => {
                draft.purpose = None;
                return Err(self.refuse(draft, &d).await);
            }
        };
        draft.basis = Some(grant.basis.as_str().to_owned());
        if grant.basis == LegalBasis::Consent {
            // Each person's consent needs its own evidence and receipt: record them one by
            // one (`POST /v1/subjects` with `consent`), not as an anonymous batch.
            return Err(Error::invalid(
                "purpose",
                format!("purpose {purpose:?} rests on consent: subjects collected under it are created one by one with their consent, not imported"),
            ));
        }
        let blind = grant
            .writable
            .iter()
            .filter(|c| active.policy.category(c).is_some_and(|c| c.index))
            .map(|c| (c.clone(), self.blind_keys.get(&self.keys, c)))
            .collect();
        let ctx = Arc::new(ImportContext {
            active: active.clone(),
            grant,
            keys: self.keys.clone(),
            blind,
            clock: self.clock.clone(),
            purpose: purpose.to_owned(),
            draft,
        });
        let (to_store, from_vault) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        let writer = tokio::spawn(async move { store.insert_subjects(from_vault).await });
        let workers = options.workers.max(1);
        let mut outcome = ImportOutcome::default();
        // Line of each row sent to the store, by position: conflicts come back by position.
        let mut lines: Vec<u64> = Vec::new();
        let mut prepared = 0u64;
        let mut store_gone = false;
        while let Some(chunk) = rows.recv().await {
            let per = chunk.len().div_ceil(workers).max(1);
            let mut parts = Vec::with_capacity(workers);
            let mut chunk = chunk
                .into_iter()
                .filter_map(|r| r.map_err(|e| outcome.rejected.push(e)).ok())
                .collect::<Vec<_>>()
                .into_iter();
            loop {
                let part: Vec<ImportRow> = chunk.by_ref().take(per).collect();
                if part.is_empty() {
                    break;
                }
                let ctx = ctx.clone();
                parts.push(tokio::task::spawn_blocking(move || {
                    part.into_iter()
                        .map(|r| (r.line, ctx.prepare(r)))
                        .collect::<Vec<_>>()
                }));
            }
            let mut good = Vec::new();
            for part in parts {
                let part = part
                    .await
                    .map_err(|e| Error::Internal(format!("import worker failed: {e}")))?;
                for (line, row) in part {
                    prepared += 1;
                    match row {
                        Ok((subject, audit)) => {
                            lines.push(line);
                            if options.collect_ids {
                                outcome.ids.push(subject.id.clone());
                            }
                            good.push((subject, audit));
                        }
                        Err(errors) => outcome.rejected.extend(errors),
                    }
                }
            }
            if let Some(p) = &options.progress {
                p(prepared);
            }
            if !good.is_empty() && to_store.send(BulkInsert::Subjects(good)).await.is_err() {
                store_gone = true;
                break;
            }
        }
        if outcome.rejected.is_empty() && !store_gone {
            let _ = to_store.send(BulkInsert::Commit).await;
        }
        drop(to_store);
        let stored = writer
            .await
            .map_err(|e| Error::Internal(format!("import writer failed: {e}")))?;
        match stored {
            Ok(n) => outcome.imported = n,
            Err(StoreError::Conflicts(conflicts)) => {
                for c in conflicts {
                    let line = lines.get(c.index as usize).copied().unwrap_or(0);
                    outcome.rejected.push(RowError {
                        line,
                        message: format!(
                            "another subject already holds this {} (earlier in the input or in the vault); the policy declares it unique",
                            c.category
                        ),
                        category: Some(c.category),
                    });
                }
            }
            Err(e) => return Err(store_error(e)),
        }
        if !outcome.rejected.is_empty() {
            outcome.imported = 0;
            outcome.ids.clear();
            outcome.rejected.sort_by_key(|r| r.line);
        }
        Ok(outcome)
    }

    // ---------------------------------------------------------------- audit

    /// Audit entries, oldest first (admin only).
    pub async fn audit_entries(
        &self,
        permit: &Permit<act::AuditRead>,
        subject: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let draft = permit.draft();
        let entries = self
            .store
            .audit_entries(subject, after, limit)
            .await
            .map_err(store_error)?;
        self.record(draft).await?;
        Ok(entries)
    }

    /// Verifies the whole chain (admin only over HTTP; the CLI passes a local admin principal).
    pub async fn verify_audit(&self, _permit: &Permit<act::AuditVerify>) -> Result<VerifyReport> {
        self.verify_chain().await
    }

    /// Moves everything committed into the store's database files (after a bulk import).
    pub async fn flush(&self) -> Result<()> {
        self.store.flush().await.map_err(store_error)
    }

    /// Verifies the chain without recording anything (used by `amanah audit verify`). Runs
    /// while the server writes: it pages to the end, then reads the signed head; entries
    /// committed meanwhile move the head on, and paging resumes until both meet.
    pub async fn verify_chain(&self) -> Result<VerifyReport> {
        let key = self.keys.audit_key();
        let mut verifier = ChainVerifier::new(&key);
        let broken = |verifier: &ChainVerifier<'_>, b| VerifyReport {
            entries: verifier.count(),
            head: None,
            first_bad: Some(b),
        };
        let mut checked_at: Option<u64> = None;
        loop {
            // Sequence numbers are dense, so the pages to come are known in advance: two are
            // read ahead (on the store's reader threads) while one is checked. A gap makes the
            // page that holds it fail verification before any later page matters.
            let fetch = |after: u64| {
                let store = self.store.clone();
                tokio::spawn(async move { store.audit_entries(None, after, VERIFY_PAGE).await })
            };
            let page_len = VERIFY_PAGE as u64;
            let start = verifier.count();
            let mut ahead: std::collections::VecDeque<_> =
                (0..3).map(|k| fetch(start + k * page_len)).collect();
            let mut requested = start + 3 * page_len;
            while let Some(task) = ahead.pop_front() {
                let page = task
                    .await
                    .map_err(|e| Error::Internal(format!("audit page reader failed: {e}")))?
                    .map_err(store_error)?;
                if page.is_empty() {
                    break;
                }
                ahead.push_back(fetch(requested));
                requested += page_len;
                if let Err(b) = verifier.push_page(&page) {
                    ahead.iter().for_each(|t| t.abort());
                    return Ok(broken(&verifier, b));
                }
                if page.len() < VERIFY_PAGE {
                    break;
                }
            }
            ahead.iter().for_each(|t| t.abort());
            let head = self.store.audit_head().await.map_err(store_error)?;
            if let Some((seq, _, _)) = head.filter(|(seq, _, _)| *seq > verifier.count()) {
                // The head is ahead: either entries were committed meanwhile (page on), or
                // entries before it were removed (no progress since the last look).
                if checked_at == Some(verifier.count()) {
                    let last = verifier.count();
                    return Ok(broken(&verifier, ChainBreak::Head { last, head: seq }));
                }
                checked_at = Some(verifier.count());
                continue;
            }
            let entries = verifier.count();
            return Ok(match verifier.finish(head) {
                Ok(h) => VerifyReport {
                    entries,
                    head: Some(hex(&h)),
                    first_bad: None,
                },
                Err(b) => VerifyReport {
                    entries,
                    head: None,
                    first_bad: Some(b),
                },
            });
        }
    }

    // ---------------------------------------------------------------- API keys

    /// Issues an API key for `role` (admin only).
    pub async fn create_api_key(
        &self,
        permit: &Permit<act::KeyCreate>,
        role: &str,
        name: &str,
        holder: &str,
    ) -> Result<IssuedKey> {
        let active = permit.active();
        let mut draft = permit.draft();
        if role != ADMIN_ROLE && active.policy.role(role).is_none() {
            let known: Vec<&str> = std::iter::once(ADMIN_ROLE)
                .chain(active.policy.roles.keys().map(String::as_str))
                .collect();
            return Err(Error::invalid(
                "role",
                format!(
                    "unknown role {role:?}; the policy defines: {}",
                    known.join(", ")
                ),
            ));
        }
        let name = name.trim();
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "the key name must be at most 100 printable characters",
            ));
        }
        let holder = check_holder(holder)?;
        let token = token::generate().map_err(|e| Error::Internal(e.to_string()))?;
        let record = ApiKeyRecord {
            id: format!("key-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            name: name.to_owned(),
            role: role.to_owned(),
            holder: Some(holder),
            token_hash: token::hash(&token),
            created_at_micros: draft.at_micros,
            revoked_at_micros: None,
        };
        draft.reason = Some(format!("issued {} for role {role}", record.id));
        self.store
            .insert_api_key(record.clone(), draft)
            .await
            .map_err(store_error)?;
        Ok(IssuedKey { record, token })
    }

    pub async fn list_api_keys(&self, permit: &Permit<act::KeyList>) -> Result<Vec<ApiKeyRecord>> {
        let keys = self.store.list_api_keys().await.map_err(store_error)?;
        let mut draft = permit.draft();
        draft.reason = Some(format!("listed {} keys", keys.len()));
        self.record(draft).await?;
        Ok(keys)
    }

    pub async fn revoke_api_key(&self, permit: &Permit<act::KeyRevoke>, id: &str) -> Result<()> {
        let mut draft = permit.draft();
        if !is_key_id(id) {
            return Err(self
                .deny(
                    draft,
                    Error::NotFound("no active API key with that id".into()),
                )
                .await);
        }
        draft.reason = Some(format!("revoked {id}"));
        let at = draft.at_micros;
        match self.store.revoke_api_key(id, at, draft.clone()).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(self
                .deny(draft, Error::NotFound(format!("no active API key {id}")))
                .await),
            Err(other) => Err(store_error(other)),
        }
    }

    // ---------------------------------------------------------------- policy

    /// Applies a new policy version (admin only); later decisions use it and name its version.
    pub async fn apply_policy(
        &self,
        permit: &Permit<act::PolicyApply>,
        source: &str,
    ) -> Result<PolicyRecord> {
        let policy = parse_source(source)?;
        let who = permit.principal();
        let record = insert_policy(
            &*self.store,
            &*self.clock,
            who.key_id(),
            who.role(),
            &policy,
            source,
        )
        .await?;
        self.set_policy(ActivePolicy {
            policy,
            record: record.clone(),
        });
        Ok(record)
    }
}

/// The policy in force, as a read by an authorized caller (recorded).
impl Vault {
    pub async fn read_policy(&self, permit: &Permit<act::PolicyRead>) -> Result<PolicyRecord> {
        let mut draft = permit.draft();
        let record = permit.active().record.clone();
        draft.reason = Some(format!("policy {} (seq {})", record.version, record.seq));
        self.record(draft).await?;
        Ok(record)
    }
}

/// A key holder as recorded: `Name <email>` or a name, printable, at most 200 characters.
fn check_holder(holder: &str) -> Result<String> {
    let holder = holder.trim();
    let named = holder
        .rfind('<')
        .is_some_and(|i| !holder[..i].trim().is_empty());
    if !named
        || holder_address(holder).is_none()
        || holder.chars().count() > 200
        || holder.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "holder",
            "the key's holder names the person it is issued to as `Name <email>` (a valid address), at most 200 \
             printable characters",
        ));
    }
    Ok(holder.to_owned())
}

/// The address a holder names (`Name <address>`), normalized: four eyes tell people apart by
/// it, whatever the display name says.
pub(crate) fn holder_address(holder: &str) -> Option<String> {
    let holder = holder.trim();
    let inner = holder.strip_suffix('>')?;
    let start = inner.rfind('<')?;
    fields::normalize_str(FieldType::Email, inner[start + 1..].trim()).ok()
}

/// API key ids are `key-` and 12 hex digits; anything else is never recorded.
fn is_key_id(id: &str) -> bool {
    id.len() == 16 && id.starts_with("key-") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
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
fn age_of_new_values(
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
    let group = consent::age_group(&policy.settings, birth, consent::date_of(now_micros));
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
            return Err(Error::invalid(
                category,
                format!("unknown search parameter {category:?}: the policy has no such category"),
            ))
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

/// The reason a refusal is recorded with. Messages that can echo what the caller sent (invalid
/// input, unknown names, ids that do not exist) are recorded by their kind only: the audit log
/// is append-only, so nothing a caller types may enter it.
pub(crate) fn audit_reason(error: &Error) -> String {
    const MAX: usize = 500;
    let text = match error {
        Error::Invalid { .. } => "invalid input".to_owned(),
        Error::BadRequest(_) => "bad request".to_owned(),
        Error::NotFound(_) => "not found".to_owned(),
        Error::Unauthenticated => "unauthenticated".to_owned(),
        other => other.to_string(),
    };
    text.chars().take(MAX).collect()
}

pub(crate) fn denial_error(d: &Denial) -> Error {
    match d {
        Denial::UnknownPurpose(_) => Error::Invalid {
            field: Some("purpose".into()),
            message: d.to_string(),
        },
        _ => Error::Forbidden(d.to_string()),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_source(source: &str) -> Result<Policy> {
    Policy::parse(source).map_err(|errs| Error::Invalid {
        field: Some("policy".into()),
        message: errs.render("policy"),
    })
}

fn parse_stored(record: &PolicyRecord) -> Result<Policy> {
    Policy::parse(&record.source).map_err(|errs| {
        Error::Internal(format!(
            "stored policy {} no longer parses: {}",
            record.seq,
            errs.render("stored policy")
        ))
    })
}

async fn insert_policy(
    store: &dyn Store,
    clock: &dyn Clock,
    actor: &str,
    role: &str,
    policy: &Policy,
    source: &str,
) -> Result<PolicyRecord> {
    let at = clock.now_micros();
    let mut record = PolicyRecord {
        seq: 0,
        version: policy.version.clone(),
        source: source.to_owned(),
        sha256: amanah_crypto::digest::sha256_hex(source.as_bytes()),
        applied_at_micros: at,
    };
    let draft = AuditDraft {
        at_micros: at,
        actor: actor.to_owned(),
        role: role.to_owned(),
        action: "policy.apply".into(),
        purpose: None,
        basis: None,
        outcome: Outcome::Allowed,
        reason: Some(format!(
            "applied policy version {} (sha256 {})",
            policy.version, record.sha256
        )),
        subject: None,
        fields: Vec::new(),
        policy_version: policy.version.clone(),
    };
    store
        .insert_policy(record.clone(), draft)
        .await
        .map_err(store_error)?;
    if let Some(stored) = store.current_policy().await.map_err(store_error)? {
        record.seq = stored.seq;
    }
    Ok(record)
}
