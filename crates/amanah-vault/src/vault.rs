use std::sync::{Arc, RwLock};

use amanah_core::access::{Denial, Grant};
use amanah_core::audit::{AuditAction, AuditDraft, Outcome};
use amanah_core::authz::Caller;
use amanah_core::consent::{self, AgeGroup};
use amanah_core::policy::{LegalBasis, Policy, ADMIN_ROLE, PLATFORM_ROLE, SUBJECT_ROLE};
use amanah_core::{Conflict, Error, Result};
use amanah_crypto::blind::BlindIndexKey;
use amanah_crypto::{token, DataKey, KeyRing};
use amanah_store::{ApiKeyRecord, PolicyRecord, Store, StoreError, StoredSubject};

use crate::authz::{act, Admitted, Permit, Principal};
use crate::consent::{consent_error, events};
use crate::Clock;

/// Actor name for operations run from the command line on the server's machine.
pub const CLI_ACTOR: &str = "cli";

/// The policy in force and the store sequence number it was applied as.
#[derive(Debug)]
pub struct ActivePolicy {
    pub policy: Policy,
    pub record: PolicyRecord,
}

/// Whose vault this is: the deployment's own organization, an organization it hosts, or the
/// platform operator's (which holds tenants and the operator's keys, never a subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Own,
    Tenant(String),
    Platform,
}

impl Scope {
    /// Whose tokens this vault's store holds.
    fn issuer(&self) -> token::Issuer {
        match self {
            Scope::Own => token::Issuer::Deployment,
            Scope::Platform => token::Issuer::Platform,
            Scope::Tenant(id) => token::Issuer::Tenant(crate::tenants::token_id(id)),
        }
    }
}

pub struct Vault {
    pub(crate) store: Arc<dyn Store>,
    scope: Scope,
    /// The most subjects the organization may hold (a hosted organization's quota).
    pub(crate) subject_quota: crate::tenants::SubjectQuota,
    /// The key ring in force; replaced whole when the key file changes (`replace_keys`). An
    /// operation takes one snapshot (`keys()`) and uses it throughout.
    keys: RwLock<Arc<KeyRing>>,
    pub(crate) clock: Arc<dyn Clock>,
    policy: RwLock<Arc<ActivePolicy>>,
    /// Blind-index keys derived so far, by category (HKDF once, not per request).
    pub(crate) blind_keys: BlindKeys,
    /// The object store of the documents (a server attaches it).
    pub(crate) documents: crate::documents::DocumentObjects,
    /// API keys verified from the store, trusted while the store's revocation epoch holds.
    verified: VerifiedKeys,
}

/// API keys read from the store (by the hash of their token), each with the revocation epoch
/// it was read under ([`Store::access_epoch`]): a request whose key is here, under the epoch
/// the store shows now, needs no read of the store. Revoked and unknown keys are never kept.
#[derive(Default)]
struct VerifiedKeys(std::sync::Mutex<std::collections::HashMap<String, (u64, Arc<ApiKeyRecord>)>>);

/// Keys kept at most; past that the memory starts again empty (a key in use is read again
/// once), so a flood of distinct valid keys cannot grow it.
const VERIFIED_KEYS: usize = 4096;

impl VerifiedKeys {
    fn get(&self, hash: &str, epoch: u64) -> Option<Arc<ApiKeyRecord>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(at, _)| *at == epoch)
            .map(|(_, record)| record.clone())
    }

    fn forget_all(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn keep(&self, epoch: u64, record: Arc<ApiKeyRecord>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= VERIFIED_KEYS {
            map.clear();
        }
        map.insert(record.token_hash.clone(), (epoch, record));
    }
}

/// Blind-index keys by category, derived on first use.
#[derive(Default)]
pub(crate) struct BlindKeys(RwLock<std::collections::HashMap<String, Arc<BlindIndexKey>>>);

impl BlindKeys {
    pub(crate) fn get(&self, keys: &KeyRing, category: &str) -> Arc<BlindIndexKey> {
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

/// How an error names an id the caller sent: the id when it has the form of one the vault
/// issues (a UUID), else nothing of it (the text may be anything, an e-mail address included).
pub(crate) fn id_shown(id: &str) -> String {
    // The vault's own spelling of the id (lower-case, hyphenated), never the caller's text.
    crate::authz::recordable_id(id).unwrap_or_else(|| "has that id".to_owned())
}

/// A subject's sealed fields; when the stored set is malformed (altered behind the store's
/// back), an error like a value that does not decrypt, logged with the subject's id only.
pub(crate) fn sealed_fields(stored: &StoredSubject) -> Result<&[(String, Vec<u8>)]> {
    stored.fields.as_deref().map_err(|e| {
        tracing::error!(subject = %stored.id, "stored fields are malformed");
        Error::Internal(format!("subject {}: {e}", stored.id))
    })
}

pub(crate) fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::Unique { category } => Error::Conflict(
            Conflict::UniqueValueTaken,
            format!(
                "another subject already holds this {category} (the policy declares it unique)"
            ),
        ),
        StoreError::NotFound => Error::NotFound("not found".into()),
        StoreError::Changed => Error::Conflict(
            Conflict::InvalidTransition,
            "it changed since it was read (another change came first): reload it and try again"
                .into(),
        ),
        other => {
            tracing::error!(error = %other, "store failure");
            Error::Internal("storage failure".into())
        }
    }
}

impl Vault {
    /// Opens a vault over an initialized store (one with an applied policy): the deployment's
    /// own organization's, or a tenant's when `keys` is a tenant's ring.
    pub async fn open(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let scope = match keys.tenant() {
            Some(id) => Scope::Tenant(id.to_owned()),
            None => Scope::Own,
        };
        Vault::open_as(store, keys, clock, scope).await
    }

    async fn open_as(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        scope: Scope,
    ) -> Result<Self> {
        let record = store
            .current_policy()
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                Error::Conflict(
                    Conflict::StoreState,
                    "the store has no policy: run `amanah init` first".into(),
                )
            })?;
        let policy = parse_stored(&record)?;
        Ok(Vault {
            store,
            scope,
            subject_quota: Default::default(),
            keys: RwLock::new(keys),
            clock,
            policy: RwLock::new(Arc::new(ActivePolicy { policy, record })),
            blind_keys: BlindKeys::default(),
            verified: VerifiedKeys::default(),
            documents: Default::default(),
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
            return Err(Error::Conflict(
                Conflict::StoreState,
                "the store is already initialized".into(),
            ));
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

    /// Whose vault this is.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The hosted organization's id, when this vault is one's.
    pub fn tenant_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Tenant(id) => Some(id),
            Scope::Own | Scope::Platform => None,
        }
    }

    /// The platform operator's vault: its store holds the tenants and the operator's keys,
    /// under an audit chain of its own (keys derived from the deployment's root).
    pub(crate) async fn open_platform(
        store: Arc<dyn Store>,
        keys: KeyRing,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if store.current_policy().await.map_err(store_error)?.is_none() {
            let source = crate::tenants::PLATFORM_POLICY;
            let policy = parse_source(source)?;
            insert_policy(&*store, &*clock, CLI_ACTOR, ADMIN_ROLE, &policy, source).await?;
        }
        Vault::open_as(store, Arc::new(keys), clock, Scope::Platform).await
    }

    pub fn policy(&self) -> Arc<ActivePolicy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key ring in force now. An operation that wraps a key keeps this snapshot until its
    /// write is committed, so whoever holds the previous ring can tell when it is no longer used
    /// (`Arc::strong_count`).
    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts a reloaded key ring in force (after a key rotation changed the key file); returns
    /// the ring it replaces. Refused when the new ring has another root secret: indexes and the
    /// audit chain are keyed by the root, so that would be another vault's key file.
    pub fn replace_keys(&self, keys: Arc<KeyRing>) -> Result<Arc<KeyRing>> {
        let mut current = match self.keys.write() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !current.same_root(&keys) {
            return Err(Error::Conflict(
                Conflict::StoreState,
                "the key file now holds another root secret: it is not this vault's key file"
                    .into(),
            ));
        }
        Ok(std::mem::replace(&mut *current, keys))
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

    pub(crate) fn draft_for(
        &self,
        who: &Principal,
        action: AuditAction,
        policy: &Policy,
    ) -> AuditDraft {
        AuditDraft {
            at_micros: self.clock.now_micros(),
            actor: who.key_id().to_owned(),
            role: who.role().to_owned(),
            action,
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

    /// Records that an operation a permit allowed was refused afterwards, for a reason the
    /// caller's shell found (a malformed upload body): the refusal is audited like every other.
    pub async fn refused<A: crate::authz::Act>(&self, permit: &Permit<A>, error: Error) -> Error {
        self.deny(permit.draft(), error).await
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
        // Another organization's token (or the operator's) is not looked up here at all.
        if token::issuer(bearer) != Some(self.scope.issuer()) {
            return Err(Error::Unauthenticated);
        }
        let hash = token::hash(bearer);
        // Read before the store: a revocation that commits after it moves it.
        let epoch = self.store.access_epoch();
        let kept = epoch.and_then(|e| self.verified.get(&hash, e));
        let record = match kept {
            Some(record) => record,
            None => {
                let record = self
                    .store
                    .api_key_by_hash(&hash)
                    .await
                    .map_err(store_error)?
                    .ok_or(Error::Unauthenticated)?;
                if record.revoked_at_micros.is_some() {
                    return Err(Error::Unauthenticated);
                }
                let record = Arc::new(record);
                if let Some(e) = epoch {
                    self.verified.keep(e, record.clone());
                }
                record
            }
        };
        // The policy in force decides again on every request.
        if !self.may_hold_role(&record.role) {
            return Err(Error::Unauthenticated);
        }
        Ok(Principal::new(Caller {
            key_id: record.id.clone(),
            role: record.role.clone(),
            holder: record.holder.clone(),
            subject: None,
        }))
    }

    /// Drops every API key kept in memory (after a revocation through this vault).
    pub(crate) fn forget_verified_keys(&self) {
        self.verified.forget_all();
    }

    /// A new API token of this vault's organization (its form says whose it is).
    pub(crate) fn new_token(&self) -> Result<zeroize::Zeroizing<String>> {
        token::generate_for(&self.scope.issuer()).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Whether keys of this vault may have `role`: the operator's role in the platform's vault
    /// only; elsewhere the admin or a role of the policy in force.
    pub(crate) fn may_hold_role(&self, role: &str) -> bool {
        match self.scope {
            Scope::Platform => role == PLATFORM_ROLE,
            // The operator's role never authenticates outside the platform, even where an
            // older stored policy declares a role of that name.
            Scope::Own | Scope::Tenant(_) => {
                role != PLATFORM_ROLE
                    && role != SUBJECT_ROLE
                    && (role == ADMIN_ROLE || self.policy().policy.role(role).is_some())
            }
        }
    }

    pub(crate) fn unwrap_key(&self, stored: &StoredSubject) -> Result<DataKey> {
        metrics::counter!("amanah_crypto_operations_total", "op" => "unwrap").increment(1);
        self.keys()
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
        let Some((_, ciphertext)) = sealed_fields(stored)?.iter().find(|(c, _)| *c == cat.name)
        else {
            return Ok(None);
        };
        let plain = key
            .open_field(&stored.id, &cat.name, ciphertext)
            .map_err(|e| {
                tracing::error!(subject = %stored.id, field = %cat.name, "field does not decrypt");
                Error::Internal(format!("subject {}: field {}: {e}", stored.id, cat.name))
            })?;
        let today = consent::today_in(&policy.settings, self.clock.now_micros());
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
        Denial::UnknownPurpose { .. } => Error::Invalid {
            field: Some("purpose".into()),
            message: d.to_string(),
        },
        _ => Error::Forbidden(d.to_string()),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A policy about to be applied (a new store's, a new version, a new tenant's).
pub(crate) fn parse_source(source: &str) -> Result<Policy> {
    let policy = Policy::parse(source).map_err(|errs| Error::Invalid {
        field: Some("policy".into()),
        message: errs.render("policy"),
    })?;
    match policy.reserved_role_error() {
        Some(message) => Err(Error::invalid("policy", format!("policy: {message}"))),
        None => Ok(policy),
    }
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
        action: AuditAction::PolicyApply,
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
