//! The storage contract of the platform: the organizations (tenants) a deployment hosts. Only
//! the platform's own store holds tenants; each tenant's data lives in a store of its own. A
//! tenant's key ring and placement arrive sealed (the store never sees them in clear).

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;

use crate::ops::Op;
use crate::{rows, sql, Backend, StoreResult};

/// A tenant's lifecycle: `active` → `suspended` → `active` …; `deleted` is final.
pub const TENANT_ACTIVE: &str = "active";
pub const TENANT_SUSPENDED: &str = "suspended";
pub const TENANT_DELETED: &str = "deleted";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    pub status: String,
    /// The tenant's key ring sealed under the deployment's root; `None` once deleted.
    pub sealed_keys: Option<Vec<u8>>,
    /// Where its store lives (a PostgreSQL URL, sealed: it may hold a password); `None`: the
    /// deployment's default place for tenants.
    pub sealed_placement: Option<Vec<u8>>,
    pub max_subjects: Option<i64>,
    pub max_rps: Option<i64>,
    pub created_at_micros: i64,
    pub changed_at_micros: i64,
    /// A deleted tenant's store has been removed.
    pub purged: bool,
}

/// A change of a tenant's state, conditioned on the state it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantChange {
    pub id: String,
    pub from: String,
    pub to: String,
    pub at_micros: i64,
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn insert_tenant(&self, t: TenantRecord, audit: AuditDraft) -> StoreResult<AuditRecord>;
    async fn tenant(&self, id: &str) -> StoreResult<Option<TenantRecord>>;
    async fn tenants(&self) -> StoreResult<Vec<TenantRecord>>;
    /// Moves a tenant from one state to another (`Changed` if it left `from` meanwhile).
    /// Deleting clears its sealed key ring in the same write: from then on nothing of the
    /// tenant can be decrypted, whatever remains of its store.
    async fn change_tenant(&self, c: TenantChange, audit: AuditDraft) -> StoreResult<AuditRecord>;
    /// Records that a deleted tenant's store is gone (and forgets where it was).
    async fn mark_tenant_purged(&self, id: &str, audit: AuditDraft) -> StoreResult<AuditRecord>;
    /// Changes a tenant's quotas (`None`: no limit).
    async fn set_tenant_quotas(
        &self,
        id: &str,
        max_subjects: Option<i64>,
        max_rps: Option<i64>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// How many subjects this store holds (a tenant's usage).
    async fn count_subjects(&self) -> StoreResult<u64>;
}

#[async_trait]
impl<B: Backend> TenantStore for B {
    async fn insert_tenant(&self, t: TenantRecord, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertTenant(t, audit)).await
    }

    async fn tenant(&self, id: &str) -> StoreResult<Option<TenantRecord>> {
        self.first(sql::TENANT, args![id], rows::tenant).await
    }

    async fn tenants(&self) -> StoreResult<Vec<TenantRecord>> {
        self.all(sql::TENANTS, &[], rows::tenant).await
    }

    async fn change_tenant(&self, c: TenantChange, audit: AuditDraft) -> StoreResult<AuditRecord> {
        self.write_one(Op::ChangeTenant(c, audit)).await
    }

    async fn mark_tenant_purged(&self, id: &str, audit: AuditDraft) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write_one(Op::PurgeTenant { id, audit }).await
    }

    async fn set_tenant_quotas(
        &self,
        id: &str,
        max_subjects: Option<i64>,
        max_rps: Option<i64>,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        let id = id.to_owned();
        self.write_one(Op::SetTenantQuotas {
            id,
            max_subjects,
            max_rps,
            audit,
        })
        .await
    }

    async fn count_subjects(&self) -> StoreResult<u64> {
        let n = self.first(sql::COUNT_SUBJECTS, &[], rows::int).await?;
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }
}
