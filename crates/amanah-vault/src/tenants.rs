//! Hosting several organizations (tenants) in one deployment.
//!
//! Each tenant is a controller with a vault of its own: its own policy, its own key ring
//! (random root and KEK, sealed under the deployment's root and bound to its id), so its own
//! blind-index terms, audit chain and checkpoints, API keys, requests, disclosures and breaches,
//! all in a store of its own (a directory, or a PostgreSQL database, possibly on another
//! cluster). Isolation is by construction: a tenant's vault can only reach its own store, and a
//! token names the one vault that may look it up (`amt_<tenant>_…`), so a key of one tenant is
//! never even checked against another's keys.
//!
//! The platform operator has a vault of its own too (the platform's store: the tenant registry,
//! the operator's keys, and the platform's audit chain). Its keys may only do what the decision
//! point's `Rule::Platform` allows (tenants' lifecycle); every other action is refused and
//! recorded in the platform's chain, like tenant keys on the tenants' routes are refused and
//! recorded in their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amanah_core::policy::{ADMIN_ROLE, PLATFORM_ROLE};
use amanah_core::{Conflict, Error, Result};
use amanah_crypto::{token, KeyRing};
use amanah_store::{
    Store, StoreError, TenantChange, TenantRecord, TENANT_ACTIVE, TENANT_DELETED, TENANT_SUSPENDED,
};
use async_trait::async_trait;
use serde_json::Value;

use crate::authz::{act, Act, Permit, Principal, Target};
use crate::vault::{store_error, Vault};
use crate::{Clock, IssuedKey};

/// The platform's own policy: the operator processes the names of the people it issues keys to.
pub(crate) const PLATFORM_POLICY: &str = r#"version = "platform-1"

[controller]
name = "Platform operator"
contact = "operator@localhost"

[categories.key_holder]
type = "name"
class = "general"

[purposes.platform_operations]
basis = "contract"
categories = ["key_holder"]
retention = "5y"
"#;

/// How often a server re-reads a tenant's state (suspension, quotas, policy) from the platform's
/// store: a change made by another process takes effect within this time.
const REFRESH: Duration = Duration::from_secs(1);

/// A tenant id as tokens carry it (the UUID's 32 hex digits).
pub(crate) fn token_id(id: &str) -> String {
    id.replace('-', "")
}

/// Where stores live: the composition root (the binary) knows the directories and URLs.
#[async_trait]
pub trait Placement: Send + Sync {
    /// The platform's store, made when `create` (else `None` while there is none).
    async fn platform_store(&self, keys: &KeyRing, create: bool) -> Result<Option<Arc<dyn Store>>>;
    /// Tenant `id`'s store at `place` (`None`: the deployment's default place for tenants),
    /// made when `create` (then it must not hold a store yet).
    async fn tenant_store(
        &self,
        id: &str,
        place: Option<&str>,
        keys: &KeyRing,
        create: bool,
    ) -> Result<Arc<dyn Store>>;
    /// Removes what is left of a deleted tenant's store (its files, or its database's tables).
    async fn remove_tenant_store(&self, id: &str, place: Option<&str>) -> Result<()>;
}

/// The placement of a deployment that hosts no other organization (an embedded server, or
/// one started for its own organization only): there is no platform, and none can be made.
pub struct SingleOrganization;

#[async_trait]
impl Placement for SingleOrganization {
    async fn platform_store(
        &self,
        _keys: &KeyRing,
        create: bool,
    ) -> Result<Option<Arc<dyn Store>>> {
        if create {
            return Err(Error::Forbidden(
                "this server hosts one organization only".into(),
            ));
        }
        Ok(None)
    }

    async fn tenant_store(
        &self,
        _id: &str,
        _place: Option<&str>,
        _keys: &KeyRing,
        _create: bool,
    ) -> Result<Arc<dyn Store>> {
        Err(Error::Forbidden(
            "this server hosts one organization only".into(),
        ))
    }

    async fn remove_tenant_store(&self, _id: &str, _place: Option<&str>) -> Result<()> {
        Ok(())
    }
}

/// What the platform operator asks for when creating a tenant.
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub name: String,
    /// The tenant's policy file (TOML); the shipped presets are templates.
    pub policy: String,
    /// A PostgreSQL URL for a database of its own (`None`: the default place).
    pub place: Option<String>,
    /// The person the first admin key is issued to (`Name <email>`).
    pub admin_holder: String,
    pub quotas: Quotas,
}

/// A tenant's limits (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    pub max_subjects: Option<u64>,
    pub max_requests_per_second: Option<u64>,
}

/// A tenant as the operator sees it: its state and usage, never its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub quotas: Quotas,
    pub created_at_micros: i64,
    pub changed_at_micros: i64,
    /// Placed in a database of its own (where is not shown: the URL may hold a password).
    pub dedicated_store: bool,
    pub usage: Option<Usage>,
    /// A deleted tenant's store has been removed.
    pub purged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub subjects: u64,
    pub audit_entries: u64,
    pub api_keys: u64,
}

/// A tenant just created, with its first admin key (shown once).
#[derive(Debug)]
pub struct CreatedTenant {
    pub tenant: TenantView,
    pub admin_key: IssuedKey,
}

/// The subject quota a vault enforces (none for the deployment's own organization).
#[derive(Debug)]
pub(crate) struct SubjectQuota {
    /// The limit (`-1`: none), and the subjects held as counted when the vault was opened
    /// plus those created since, minus those erased.
    max: AtomicI64,
    held: AtomicI64,
}

impl Default for SubjectQuota {
    fn default() -> Self {
        SubjectQuota {
            max: AtomicI64::new(-1),
            held: AtomicI64::new(0),
        }
    }
}

impl SubjectQuota {
    /// Takes a place for one more subject, or says the quota is reached.
    pub(crate) fn reserve(&self, n: u64) -> Result<()> {
        let max = self.max.load(Ordering::Acquire);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let held = self.held.fetch_add(n, Ordering::AcqRel);
        if max >= 0 && held.saturating_add(n) > max {
            self.held.fetch_sub(n, Ordering::AcqRel);
            return Err(Error::Conflict(
                Conflict::SubjectQuotaReached,
                format!("this organization may hold at most {max} subjects (its quota)"),
            ));
        }
        Ok(())
    }

    /// Gives places back (a create that failed, an erasure).
    pub(crate) fn release(&self, n: u64) {
        self.held
            .fetch_sub(i64::try_from(n).unwrap_or(0), Ordering::AcqRel);
    }

    fn set(&self, max: Option<u64>, held: u64) {
        self.held
            .store(i64::try_from(held).unwrap_or(i64::MAX), Ordering::Release);
        self.set_max(max);
    }

    fn set_max(&self, max: Option<u64>) {
        let max = max.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
        self.max.store(max, Ordering::Release);
    }
}

/// A token bucket: `rate` requests a second, bursts of up to `rate`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes one token, or says in how many whole seconds one will be there.
    fn take(&mut self, rate: u64, now: Instant) -> std::result::Result<(), u64> {
        let rate = rate.max(1) as f64;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// A tenant whose vault is open in this process.
struct Hosted {
    vault: Arc<Vault>,
    state: Mutex<HostedState>,
}

struct HostedState {
    status: String,
    max_rps: Option<u64>,
    read_at: Instant,
    /// The last request that used it (an idle tenant is closed: [`Deployment::upkeep`]).
    used_at: Instant,
    bucket: Bucket,
}

impl Hosted {
    /// Whether this request is the one to read the tenant's state again (at most one per
    /// [`REFRESH`], whatever the number of requests).
    fn claim_refresh(&self) -> bool {
        let mut state = lock(&self.state);
        let now = Instant::now();
        state.used_at = now;
        if now.saturating_duration_since(state.read_at) < REFRESH {
            return false;
        }
        state.read_at = now;
        true
    }
}

/// Every organization of a deployment: its own (the default), the hosted ones, and the platform.
pub struct Deployment {
    own: Arc<Vault>,
    clock: Arc<dyn Clock>,
    placement: Arc<dyn Placement>,
    platform: tokio::sync::Mutex<Option<Arc<Vault>>>,
    /// When the placement last said there is no platform's store.
    platform_absent: Mutex<Option<Instant>>,
    hosted: Mutex<HashMap<String, Arc<Hosted>>>,
    /// One open at a time per tenant (a store open runs migrations and recovery); a tenant
    /// whose store is slow to answer never holds up another's.
    opening: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One purge at a time in this process.
    purging: tokio::sync::Mutex<()>,
    /// Where documents' objects go; each organization's under a prefix of its own.
    documents: std::sync::OnceLock<amanah_objects::Objects>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn quota(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

fn stored_quota(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// The answer for a tenant id that is not one (absent, deleted, or not an id at all).
fn no_tenant(id: &str) -> Error {
    Error::NotFound(format!("no organization {}", crate::vault::id_shown(id)))
}

impl Deployment {
    /// A deployment whose own organization is `own` (opened over the key file's ring `root`).
    pub fn new(own: Arc<Vault>, placement: Arc<dyn Placement>) -> Self {
        let clock = own.clock.clone();
        Deployment {
            own,
            clock,
            placement,
            platform: tokio::sync::Mutex::new(None),
            platform_absent: Mutex::new(None),
            hosted: Mutex::new(HashMap::new()),
            opening: Mutex::new(HashMap::new()),
            purging: tokio::sync::Mutex::new(()),
            documents: std::sync::OnceLock::new(),
        }
    }

    /// Gives every organization its place for documents: the deployment's own organization
    /// `objects` itself, each hosted one a prefix of it named by its id (set once, before
    /// serving).
    pub fn attach_documents(&self, objects: amanah_objects::Objects) {
        self.own.attach_documents(objects.clone());
        let _ = self.documents.set(objects);
    }

    /// A hosted organization's documents: a prefix of the deployment's object store.
    fn tenant_documents(&self, id: &str) -> Result<Option<amanah_objects::Objects>> {
        let Some(objects) = self.documents.get() else {
            return Ok(None);
        };
        objects
            .scoped(&format!("t_{}", token_id(id)))
            .map(Some)
            .map_err(|e| Error::Internal(format!("organization {id}: {e}")))
    }

    /// The key file's ring, whose root seals the tenants' rings: taken afresh for each use and
    /// never kept, since a key rotation waits until no snapshot of the previous ring is held.
    fn root(&self) -> Arc<KeyRing> {
        self.own.keys()
    }

    /// The deployment's own organization.
    pub fn own(&self) -> &Arc<Vault> {
        &self.own
    }

    /// The platform's vault, made when `create` (else `None` while no tenant was ever made).
    pub async fn platform(&self, create: bool) -> Result<Option<Arc<Vault>>> {
        let mut slot = self.platform.lock().await;
        if let Some(v) = &*slot {
            return Ok(Some(v.clone()));
        }
        // Where there is no platform, a token that names one is asked about at most once per
        // [`REFRESH`], not once per request (on PostgreSQL each asks the cluster).
        let absent_since = *lock(&self.platform_absent);
        if !create && absent_since.is_some_and(|at| at.elapsed() < REFRESH) {
            return Ok(None);
        }
        let platform_keys = self
            .root()
            .platform()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let Some(store) = self
            .placement
            .platform_store(&platform_keys, create)
            .await?
        else {
            *lock(&self.platform_absent) = Some(Instant::now());
            return Ok(None);
        };
        let vault = Arc::new(Vault::open_platform(store, platform_keys, self.clock.clone()).await?);
        *slot = Some(vault.clone());
        Ok(Some(vault))
    }

    /// The platform's vault, which must exist (made by the first tenant or operator key).
    async fn existing_platform(&self) -> Result<Arc<Vault>> {
        self.platform(false)
            .await?
            .ok_or_else(|| no_tenant("(no organization was ever created)"))
    }

    /// The vault a bearer token belongs to and its principal there: the token's form names the
    /// one vault that may look it up. A suspended tenant's keys are refused (after they
    /// authenticate, so nobody learns a tenant's state without one of its keys), a deleted or
    /// unknown tenant's are unauthenticated like any unknown key, and a tenant over its rate
    /// quota gets `RateLimited`.
    pub async fn authenticate(&self, bearer: &str) -> Result<(Arc<Vault>, Principal)> {
        match token::issuer(bearer) {
            None => Err(Error::Unauthenticated),
            Some(token::Issuer::Deployment) => {
                Ok((self.own.clone(), self.own.authenticate(bearer).await?))
            }
            Some(token::Issuer::Platform) => {
                let vault = self.platform(false).await?.ok_or(Error::Unauthenticated)?;
                let who = vault.authenticate(bearer).await?;
                Ok((vault, who))
            }
            Some(token::Issuer::Tenant(hex)) => {
                let id = uuid::Uuid::try_parse(&hex)
                    .map_err(|_| Error::Unauthenticated)?
                    .to_string();
                let hosted = match self.hosted(&id).await {
                    Ok(Some(h)) => h,
                    // Deleted while it was being opened: like any unknown key.
                    Ok(None) | Err(Error::NotFound(_)) => return Err(Error::Unauthenticated),
                    Err(e) => return Err(e),
                };
                // A deleted tenant's store may be gone: its state is read first, by one request
                // per interval (the others use the state as last read).
                if hosted.claim_refresh() {
                    self.refresh(&id, &hosted).await?;
                }
                let who = hosted.vault.authenticate(bearer).await?;
                admit(&hosted)?;
                Ok((hosted.vault.clone(), who))
            }
        }
    }

    /// Re-reads a tenant's state, quotas and policy.
    async fn refresh(&self, id: &str, hosted: &Hosted) -> Result<()> {
        let platform = self.existing_platform().await?;
        let record = platform.store.tenant(id).await.map_err(store_error)?;
        let Some(record) = record.filter(|r| r.status != TENANT_DELETED) else {
            lock(&self.hosted).remove(id);
            return Err(Error::Unauthenticated);
        };
        // With a subject quota, the count is read again too: other servers create subjects.
        match quota(record.max_subjects) {
            Some(max) => {
                let held = hosted
                    .vault
                    .store
                    .count_subjects()
                    .await
                    .map_err(store_error)?;
                hosted.vault.subject_quota.set(Some(max), held);
            }
            None => hosted.vault.subject_quota.set_max(None),
        }
        if let Err(e) = hosted.vault.reload_policy().await {
            tracing::error!(error = %e, "a tenant's policy reload failed");
        }
        let mut state = lock(&hosted.state);
        state.status = record.status;
        state.max_rps = quota(record.max_rps);
        Ok(())
    }

    /// Tenant `id`'s vault, opened on first use (`None`: no such tenant, or deleted).
    async fn hosted(&self, id: &str) -> Result<Option<Arc<Hosted>>> {
        if let Some(h) = lock(&self.hosted).get(id) {
            return Ok(Some(h.clone()));
        }
        let Some(platform) = self.platform(false).await? else {
            return Ok(None);
        };
        // Only a registered tenant gets a gate: ids from anyone's tokens never fill the map.
        let registered =
            |r: &Option<TenantRecord>| r.as_ref().is_some_and(|r| r.status != TENANT_DELETED);
        if !registered(&platform.store.tenant(id).await.map_err(store_error)?) {
            return Ok(None);
        }
        let gate = lock(&self.opening)
            .entry(id.to_owned())
            .or_default()
            .clone();
        let _one_at_a_time = gate.lock().await;
        if let Some(h) = lock(&self.hosted).get(id) {
            return Ok(Some(h.clone()));
        }
        // Read again under the gate: it may have changed while this waited.
        let record = platform.store.tenant(id).await.map_err(store_error)?;
        let Some(record) = record.filter(|r| r.status != TENANT_DELETED) else {
            return Ok(None);
        };
        let vault = self.open_tenant(&record, false).await?;
        let hosted = Arc::new(Hosted {
            vault: Arc::new(vault),
            state: Mutex::new(HostedState {
                status: record.status.clone(),
                max_rps: quota(record.max_rps),
                read_at: Instant::now(),
                used_at: Instant::now(),
                bucket: Bucket {
                    tokens: quota(record.max_rps).unwrap_or(1) as f64,
                    at: Instant::now(),
                },
            }),
        });
        lock(&self.hosted).insert(id.to_owned(), hosted.clone());
        Ok(Some(hosted))
    }

    /// Opens (or, when `create`, makes) a tenant's store and vault from its registry row.
    async fn open_tenant(&self, record: &TenantRecord, create: bool) -> Result<Vault> {
        let internal = |e: amanah_crypto::CryptoError| {
            tracing::error!(error = %e, "a tenant's sealed keys do not open");
            Error::Internal("a tenant's keys do not open".into())
        };
        let sealed = record
            .sealed_keys
            .as_deref()
            .ok_or_else(|| no_tenant(&record.id))?;
        let keys = Arc::new(
            self.root()
                .open_tenant(&record.id, sealed)
                .map_err(internal)?,
        );
        let place = match &record.sealed_placement {
            Some(s) => Some(
                self.root()
                    .open_for_tenant(&record.id, "placement", s)
                    .map_err(internal)?,
            ),
            None => None,
        };
        let place = match &place {
            Some(bytes) => Some(
                std::str::from_utf8(bytes)
                    .map_err(|_| Error::Internal("a tenant's placement is not text".into()))?,
            ),
            None => None,
        };
        let store = self
            .placement
            .tenant_store(&record.id, place, &keys, create)
            .await?;
        let vault = Vault::open(store, keys, self.clock.clone()).await?;
        if let Some(objects) = self.tenant_documents(&record.id)? {
            vault.attach_documents(objects);
        }
        let held = vault.store.count_subjects().await.map_err(store_error)?;
        vault.subject_quota.set(quota(record.max_subjects), held);
        Ok(vault)
    }

    /// Closes what a server no longer needs open: tenants deleted meanwhile (by another server
    /// or the command line: their key ring leaves this process's memory) and tenants idle for
    /// `idle` (their connections close; the next request opens them again).
    pub async fn upkeep(&self, idle: Duration) -> Result<usize> {
        let open: Vec<(String, Instant)> = lock(&self.hosted)
            .iter()
            .map(|(id, h)| (id.clone(), lock(&h.state).used_at))
            .collect();
        if open.is_empty() {
            return Ok(0);
        }
        let platform = self.existing_platform().await?;
        let mut closed = 0;
        for (id, used_at) in open {
            let record = platform.store.tenant(&id).await.map_err(store_error)?;
            let deleted = record.is_none_or(|r| r.status == TENANT_DELETED);
            if deleted || used_at.elapsed() >= idle {
                lock(&self.hosted).remove(&id);
                lock(&self.opening).remove(&id);
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// A tenant's vault, for the command line's audit tools (verify, checkpoints). A deleted
    /// or unknown tenant has none.
    pub async fn tenant_vault(&self, id: &str) -> Result<Arc<Vault>> {
        let platform = self.existing_platform().await?;
        let record = self.record_of(&platform, id).await?;
        let hosted = self
            .hosted(&record.id)
            .await?
            .ok_or_else(|| no_tenant(id))?;
        Ok(hosted.vault.clone())
    }

    /// The vaults of every tenant not deleted (opened if need be), which a server keeps up
    /// (retention sweeps, checkpoints) besides its own organization's.
    pub async fn hosted_vaults(&self) -> Result<Vec<Arc<Vault>>> {
        let mut out = Vec::new();
        let Some(platform) = self.platform(false).await? else {
            return Ok(out);
        };
        for t in platform.store.tenants().await.map_err(store_error)? {
            // A suspended organization's retention still runs (the law's periods do not stop).
            if t.status == TENANT_DELETED {
                continue;
            }
            match self.hosted(&t.id).await {
                Ok(Some(h)) => out.push(h.vault.clone()),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "a tenant's vault does not open"),
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- the operator's actions

    /// Issues a key of the platform operator (from the command line of the server's machine).
    pub async fn create_platform_key(&self, name: &str, holder: &str) -> Result<IssuedKey> {
        let platform = self
            .platform(true)
            .await?
            .ok_or_else(|| Error::Internal("the platform's store was not made".into()))?;
        let permit = platform
            .authorize::<act::KeyCreate>(&platform.operator(), Target::none())
            .await?;
        platform
            .create_api_key(&permit, PLATFORM_ROLE, name, holder)
            .await
    }

    /// The platform operator's keys (revoked ones included).
    pub async fn platform_keys(&self) -> Result<Vec<amanah_store::ApiKeyRecord>> {
        let platform = self.existing_platform().await?;
        let permit = platform
            .authorize::<act::KeyList>(&platform.operator(), Target::none())
            .await?;
        platform.list_api_keys(&permit).await
    }

    /// Revokes a key of the platform operator (at once, on every server: keys are looked up on
    /// every request).
    pub async fn revoke_platform_key(&self, id: &str) -> Result<()> {
        let platform = self.existing_platform().await?;
        let permit = platform
            .authorize::<act::KeyRevoke>(&platform.operator(), Target::none())
            .await?;
        platform.revoke_api_key(&permit, id).await
    }

    /// The command line's permit in the platform's vault (made on first use).
    pub async fn operator_permit<A: Act>(&self) -> Result<Permit<A>> {
        let platform = self
            .platform(true)
            .await?
            .ok_or_else(|| Error::Internal("the platform's store was not made".into()))?;
        let operator = Principal::platform_operator();
        platform.authorize::<A>(&operator, Target::none()).await
    }

    /// Creates a tenant: its key ring, its store (initialized with its policy), its first
    /// admin key, then its registry row (the platform's audit records it).
    pub async fn create_tenant(
        &self,
        permit: &Permit<act::TenantCreate>,
        spec: NewTenant,
    ) -> Result<CreatedTenant> {
        let platform = self.existing_platform().await?;
        let name = check_name(&spec.name)?;
        crate::vault::parse_source(&spec.policy)?;
        check_quotas(&spec.quotas)?;
        let taken = platform
            .store
            .tenants()
            .await
            .map_err(store_error)?
            .into_iter()
            .any(|t| t.status != TENANT_DELETED && same_name(&t.name, &name));
        if taken {
            return Err(name_taken());
        }
        let id = uuid::Uuid::now_v7().to_string();
        let internal = |e: amanah_crypto::CryptoError| Error::Internal(e.to_string());
        let keys = Arc::new(KeyRing::generate_tenant(&id).map_err(internal)?);
        let sealed_keys = self.root().seal_tenant(&keys).map_err(internal)?;
        let sealed_placement = match &spec.place {
            Some(url) => Some(
                self.root()
                    .seal_for_tenant(&id, "placement", url.as_bytes())
                    .map_err(internal)?,
            ),
            None => None,
        };
        let now = self.clock.now_micros();
        let record = TenantRecord {
            id: id.clone(),
            name: name.clone(),
            status: TENANT_ACTIVE.to_owned(),
            sealed_keys: Some(sealed_keys),
            sealed_placement,
            max_subjects: stored_quota(spec.quotas.max_subjects),
            max_rps: stored_quota(spec.quotas.max_requests_per_second),
            created_at_micros: now,
            changed_at_micros: now,
            purged: false,
        };
        let store = self
            .placement
            .tenant_store(&id, spec.place.as_deref(), &keys, true)
            .await?;
        let made = async {
            let vault =
                Vault::initialize(store, keys.clone(), self.clock.clone(), &spec.policy).await?;
            let permit_in_tenant = vault
                .authorize::<act::KeyCreate>(&vault.operator(), Target::none())
                .await?;
            vault
                .create_api_key(
                    &permit_in_tenant,
                    ADMIN_ROLE,
                    "first admin",
                    &spec.admin_holder,
                )
                .await
        };
        let admin_key = match made.await {
            Ok(k) => k,
            Err(e) => {
                self.discard(&id, spec.place.as_deref()).await;
                return Err(e);
            }
        };
        let mut draft = permit.draft();
        draft.reason = Some(format!("organization {id} created"));
        if let Err(e) = platform.store.insert_tenant(record.clone(), draft).await {
            self.discard(&id, spec.place.as_deref()).await;
            return Err(match e {
                StoreError::Unique { .. } => name_taken(),
                e => store_error(e),
            });
        }
        let tenant = view(&record, None);
        Ok(CreatedTenant { tenant, admin_key })
    }

    /// Removes a store made for a tenant that was not registered after all.
    async fn discard(&self, id: &str, place: Option<&str>) {
        if let Err(e) = self.placement.remove_tenant_store(id, place).await {
            tracing::error!(error = %e, "a store made for a tenant not created stays");
        }
    }

    /// Every tenant with its state and usage (subjects, audit entries, keys).
    pub async fn list_tenants(&self, permit: &Permit<act::TenantList>) -> Result<Vec<TenantView>> {
        let platform = self.existing_platform().await?;
        let records = platform.store.tenants().await.map_err(store_error)?;
        platform.record(permit.draft()).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in &records {
            out.push(view(r, self.usage(r).await));
        }
        Ok(out)
    }

    /// One tenant with its state and usage.
    pub async fn tenant(&self, permit: &Permit<act::TenantRead>, id: &str) -> Result<TenantView> {
        let platform = self.existing_platform().await?;
        let record = self.record_of(&platform, id).await?;
        platform.record(permit.draft()).await?;
        Ok(view(&record, self.usage(&record).await))
    }

    async fn record_of(&self, platform: &Vault, id: &str) -> Result<TenantRecord> {
        // Any form of the id (upper case, without hyphens) names the same tenant.
        let Ok(uuid) = uuid::Uuid::try_parse(id) else {
            return Err(no_tenant(id));
        };
        platform
            .store
            .tenant(&uuid.to_string())
            .await
            .map_err(store_error)?
            .ok_or_else(|| no_tenant(id))
    }

    async fn usage(&self, record: &TenantRecord) -> Option<Usage> {
        if record.status == TENANT_DELETED {
            return None;
        }
        let hosted = match self.hosted(&record.id).await {
            Ok(Some(h)) => h,
            _ => return None,
        };
        let store = &hosted.vault.store;
        let subjects = store.count_subjects().await.ok()?;
        let audit_entries = store.audit_head().await.ok()?.map_or(0, |(seq, _, _)| seq);
        let api_keys = store.list_api_keys().await.ok()?.len() as u64;
        Some(Usage {
            subjects,
            audit_entries,
            api_keys,
        })
    }

    /// Suspends a tenant: its keys are refused (within a second on every server), its data
    /// kept.
    pub async fn suspend_tenant(
        &self,
        permit: &Permit<act::TenantSuspend>,
        id: &str,
    ) -> Result<TenantView> {
        self.change(permit.draft(), id, TENANT_ACTIVE, TENANT_SUSPENDED)
            .await
    }

    /// Lifts a suspension.
    pub async fn resume_tenant(
        &self,
        permit: &Permit<act::TenantResume>,
        id: &str,
    ) -> Result<TenantView> {
        self.change(permit.draft(), id, TENANT_SUSPENDED, TENANT_ACTIVE)
            .await
    }

    /// Deletes a tenant: one write destroys its sealed key ring, so from then on nothing of it
    /// can be decrypted (nor its keys authenticate) whatever remains of its store, even with
    /// the deployment's root key. Its store is removed afterwards ([`Deployment::purge`]).
    pub async fn delete_tenant(
        &self,
        permit: &Permit<act::TenantDelete>,
        id: &str,
    ) -> Result<TenantView> {
        let platform = self.existing_platform().await?;
        let record = self.record_of(&platform, id).await?;
        let id = record.id.as_str();
        if record.status == TENANT_DELETED {
            return Err(Error::Conflict(
                Conflict::InvalidTransition,
                format!("organization {id} is already deleted"),
            ));
        }
        self.change(permit.draft(), id, &record.status, TENANT_DELETED)
            .await
    }

    /// Changes a tenant's quotas.
    pub async fn set_quotas(
        &self,
        permit: &Permit<act::TenantUpdate>,
        id: &str,
        quotas: Quotas,
    ) -> Result<TenantView> {
        check_quotas(&quotas)?;
        let platform = self.existing_platform().await?;
        let record = self.record_of(&platform, id).await?;
        let id = record.id.as_str();
        let mut draft = permit.draft();
        draft.reason = Some(format!("organization {id}: quotas changed"));
        platform
            .store
            .set_tenant_quotas(
                id,
                stored_quota(quotas.max_subjects),
                stored_quota(quotas.max_requests_per_second),
                draft,
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => no_tenant(id),
                e => store_error(e),
            })?;
        self.forget(id);
        let record = self.record_of(&platform, id).await?;
        Ok(view(&record, self.usage(&record).await))
    }

    async fn change(
        &self,
        mut draft: amanah_core::audit::AuditDraft,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<TenantView> {
        let platform = self.existing_platform().await?;
        let record = self.record_of(&platform, id).await?;
        let id = record.id.as_str();
        if record.status != from {
            return Err(Error::Conflict(
                Conflict::InvalidTransition,
                format!("organization {id} is {}, not {from}", record.status),
            ));
        }
        draft.reason = Some(format!("organization {id}: {from} -> {to}"));
        let change = TenantChange {
            id: id.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            at_micros: self.clock.now_micros(),
        };
        platform
            .store
            .change_tenant(change, draft)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => no_tenant(id),
                StoreError::Changed => Error::Conflict(
                    Conflict::InvalidTransition,
                    format!("organization {id} changed meanwhile: reload it and try again"),
                ),
                e => store_error(e),
            })?;
        self.forget(id);
        let record = self.record_of(&platform, id).await?;
        Ok(view(&record, self.usage(&record).await))
    }

    /// Drops an open tenant so the next request reads its state again.
    fn forget(&self, id: &str) {
        lock(&self.hosted).remove(id);
    }

    /// Removes the stores of deleted tenants not yet purged; returns how many. Each purge is
    /// recorded in the platform's chain.
    pub async fn purge(&self) -> Result<usize> {
        let _one_at_a_time = self.purging.lock().await;
        let Some(platform) = self.platform(false).await? else {
            return Ok(0);
        };
        let mut purged = 0;
        for t in platform.store.tenants().await.map_err(store_error)? {
            if t.status != TENANT_DELETED || t.purged {
                continue;
            }
            let place = match &t.sealed_placement {
                Some(s) => match self.root().open_for_tenant(&t.id, "placement", s) {
                    Ok(p) => Some(String::from_utf8_lossy(&p).into_owned()),
                    Err(e) => {
                        tracing::error!(error = %e, "a deleted tenant's placement does not open");
                        continue;
                    }
                },
                None => None,
            };
            self.placement
                .remove_tenant_store(&t.id, place.as_deref())
                .await?;
            // Unreadable since the deletion cleared its ring; removed now all the same.
            if let Some(objects) = self.tenant_documents(&t.id)? {
                objects.delete_all().await.map_err(|e| {
                    tracing::error!(error = %e, "a deleted organization's documents were not removed");
                    Error::Internal("object store failure".into())
                })?;
            }
            let mut draft = platform.draft_for(
                &Principal::platform_operator(),
                amanah_core::audit::AuditAction::TenantPurge,
                &platform.policy().policy,
            );
            draft.reason = Some(format!("organization {}: store removed", t.id));
            match platform.store.mark_tenant_purged(&t.id, draft).await {
                Ok(_) => purged += 1,
                // Another server recorded it first.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(purged)
    }

    /// Every subject's export of a tenant (for an organization leaving the service), one at a
    /// time to `sink`; `progress(done, total)` after each. Each export is recorded in the
    /// tenant's chain (actor `platform`), the whole in the platform's.
    pub async fn export_tenant(
        &self,
        permit: &Permit<act::TenantExport>,
        id: &str,
        mut sink: impl FnMut(Value) -> Result<()>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64> {
        let platform = self.existing_platform().await?;
        let record = self.record_of(&platform, id).await?;
        let id = record.id.as_str();
        let hosted = self.hosted(id).await?.ok_or_else(|| no_tenant(id))?;
        let vault = &hosted.vault;
        let total = vault.store.count_subjects().await.map_err(store_error)?;
        let mut draft = permit.draft();
        draft.reason = Some(format!("organization {} exported", record.id));
        platform.record(draft).await?;
        let exporter = Principal::platform_in_tenant();
        let mut after: Option<String> = None;
        let mut done = 0;
        loop {
            let ids = vault
                .store
                .subject_ids(after.as_deref(), 500)
                .await
                .map_err(store_error)?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            for subject in &ids {
                let permit = vault
                    .authorize::<act::SubjectExport>(&exporter, Target::subject(subject))
                    .await?;
                match vault.export_subject(&permit).await {
                    Ok(export) => sink(export)?,
                    // Erased meanwhile: nothing to export.
                    Err(Error::Gone(_)) | Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                done += 1;
                progress(done, total.max(done));
            }
            after = Some(last);
        }
        Ok(done)
    }
}

/// Whether a request of an authenticated tenant key may proceed now: the tenant is active (as
/// last read from the platform's store) and within its rate.
fn admit(hosted: &Hosted) -> Result<()> {
    let mut state = lock(&hosted.state);
    match state.status.as_str() {
        TENANT_ACTIVE => {}
        TENANT_SUSPENDED => {
            return Err(Error::Forbidden(
                "this organization is suspended by the platform operator: its keys are refused until it is resumed (its data is kept)".into(),
            ))
        }
        _ => return Err(Error::Unauthenticated),
    }
    if let Some(rate) = state.max_rps {
        state
            .bucket
            .take(rate, Instant::now())
            .map_err(Error::RateLimited)?;
    }
    Ok(())
}

fn name_taken() -> Error {
    Error::Conflict(
        Conflict::TenantNameTaken,
        "another organization already has this name".into(),
    )
}

/// An organization's name: letters and digits of any script, spaces and common punctuation,
/// at most 100 characters, spaces collapsed. Nothing invisible or direction-changing (format
/// characters such as U+200B or U+202E are neither letters nor punctuation), so two names an
/// operator reads alike are alike.
fn check_name(name: &str) -> Result<String> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || ".,&'()-_/+@:".contains(c);
    if name.is_empty() || name.chars().count() > 100 || !name.chars().all(allowed) {
        return Err(Error::invalid(
            "name",
            "an organization's name is 1 to 100 letters, digits, spaces and . , & ' ( ) - _ / + @ :",
        ));
    }
    Ok(name)
}

/// Names compare case-insensitively (an operator reads "Alpha" and "alpha" alike).
fn same_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

fn check_quotas(q: &Quotas) -> Result<()> {
    if q.max_requests_per_second == Some(0) {
        return Err(Error::invalid(
            "max_requests_per_second",
            "a rate quota is at least 1 request per second (omit it for no limit)",
        ));
    }
    let too_big = |v: Option<u64>| v.is_some_and(|n| i64::try_from(n).is_err());
    if too_big(q.max_subjects) || too_big(q.max_requests_per_second) {
        return Err(Error::invalid("quotas", "a quota is at most 2^63 - 1"));
    }
    Ok(())
}

fn view(r: &TenantRecord, usage: Option<Usage>) -> TenantView {
    TenantView {
        id: r.id.clone(),
        name: r.name.clone(),
        status: r.status.clone(),
        quotas: Quotas {
            max_subjects: quota(r.max_subjects),
            max_requests_per_second: quota(r.max_rps),
        },
        created_at_micros: r.created_at_micros,
        changed_at_micros: r.changed_at_micros,
        dedicated_store: r.sealed_placement.is_some(),
        usage,
        purged: r.purged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_and_says_when_to_retry() {
        let start = Instant::now();
        let mut b = Bucket {
            tokens: 2.0,
            at: start,
        };
        assert_eq!(b.take(2, start), Ok(()));
        assert_eq!(b.take(2, start), Ok(()));
        assert_eq!(b.take(2, start), Err(1));
        assert_eq!(b.take(2, start + Duration::from_millis(600)), Ok(()));
        // Idle time refills up to one second's worth, no more.
        let later = start + Duration::from_secs(60);
        assert_eq!(b.take(2, later), Ok(()));
        assert_eq!(b.take(2, later), Ok(()));
        assert!(b.take(2, later).is_err());
    }

    #[test]
    fn a_subject_quota_counts_places() {
        let q = SubjectQuota::default();
        q.set(Some(2), 1);
        assert!(q.reserve(1).is_ok());
        let err = q.reserve(1).unwrap_err();
        assert!(matches!(
            err,
            Error::Conflict(Conflict::SubjectQuotaReached, _)
        ));
        q.release(1);
        assert!(q.reserve(1).is_ok());
        assert!(q.reserve(5).is_err());
        q.set_max(None);
        assert!(q.reserve(1_000).is_ok());
    }

    #[test]
    fn names_and_quotas_are_checked() {
        assert!(check_name("  PT  Maju  ").is_ok_and(|n| n == "PT Maju"));
        assert!(check_name("Universitas Gadjah Mada (UGM)").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a\u{7}b").is_err());
        for lookalike in ["Alpha\u{200b}", "\u{202e}ahplA", "Al\u{ad}pha"] {
            assert!(check_name(lookalike).is_err(), "{lookalike:?}");
        }
        assert!(same_name("Alpha", "aLPHA"));
        assert!(check_name(&"x".repeat(101)).is_err());
        assert!(check_quotas(&Quotas {
            max_subjects: None,
            max_requests_per_second: Some(0)
        })
        .is_err());
        assert!(check_quotas(&Quotas {
            max_subjects: Some(u64::MAX),
            max_requests_per_second: None
        })
        .is_err());
    }
}
