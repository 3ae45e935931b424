//! API keys: issued to a named holder, listed and revoked, each step on record.

use amanah_core::fields::{self, FieldType};
use amanah_core::policy::{ADMIN_ROLE, PLATFORM_ROLE};
use amanah_core::{Error, Result};
use amanah_crypto::token;
use amanah_store::{ApiKeyRecord, StoreError};

use crate::authz::{act, Permit};
use crate::vault::{store_error, Scope, Vault};

/// A newly issued API key. `token` is shown once and never stored.
#[derive(Debug)]
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub token: zeroize::Zeroizing<String>,
}

impl Vault {
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
        if !self.may_hold_role(role) {
            let known: Vec<&str> = match self.scope() {
                Scope::Platform => vec![PLATFORM_ROLE],
                _ => std::iter::once(ADMIN_ROLE)
                    .chain(active.policy.roles.keys().map(String::as_str))
                    .collect(),
            };
            return Err(Error::invalid(
                "role",
                format!("unknown role; the policy defines: {}", known.join(", ")),
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
        let token = self.new_token()?;
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
            Ok(_) => {
                // This process forgets at once, whatever the epoch file says.
                self.forget_verified_keys();
                Ok(())
            }
            Err(StoreError::NotFound) => Err(self
                .deny(draft, Error::NotFound(format!("no active API key {id}")))
                .await),
            Err(other) => Err(store_error(other)),
        }
    }
}

/// A key holder as recorded: `Name <email>` with a valid address, printable, at most 200
/// characters.
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
