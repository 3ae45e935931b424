//! What the officer's console needs of the vault beyond the API's operations: whether a role
//! may attempt an action at all (to draw only the pages it can use; every page still asks the
//! decision point for its own permit), recording a console sign-in, revealing one masked
//! value for a reason chosen from a closed list, the dashboard's statistics (counts only), and
//! recording a look at the demo's outbox.

use amanah_core::audit::AuditAction;
use amanah_core::authz::{self, Action};
use amanah_core::rights::RevealReason;
use amanah_core::{fields, Error, Result};
use serde_json::Value;

use crate::authz::{act, recordable_id, Permit, Principal};
use crate::vault::{sealed_fields, store_error, Vault};

impl Vault {
    /// Whether `who`'s role may attempt `action` at all (no subject, no purpose): a hint for
    /// what to show, decided by the same table, never a permit and never audited.
    pub fn may(&self, who: &Principal, action: Action) -> bool {
        authz::decide(&self.policy().policy, who.caller(), action, None).is_ok()
    }

    /// [`Vault::may`] under `purpose` (e.g. which of a subject's purposes an officer can
    /// rectify under).
    pub fn may_under(&self, who: &Principal, action: Action, purpose: &str) -> bool {
        authz::decide(&self.policy().policy, who.caller(), action, Some(purpose)).is_ok()
    }

    /// Records that a key holder exchanged their API key for a console session.
    pub async fn record_console_sign_in(&self, who: &Principal) -> Result<()> {
        if who.own_subject().is_some() {
            return Err(Error::Internal(
                "a console sign-in is recorded for a key holder only".into(),
            ));
        }
        let policy = self.policy();
        let mut draft = self.draft_for(who, AuditAction::ConsoleSignIn, &policy.policy);
        draft.reason = Some("signed in to the console with an API key".into());
        self.store
            .append_audit(vec![draft])
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// One value of a subject, decrypted for an officer who chose why (`reason`), while
    /// answering `request` (recorded when it is a well-formed id). Audited as `subject.reveal`
    /// with the category; a category the subject does not hold is a 404, audited as refused.
    pub async fn reveal_value(
        &self,
        permit: &Permit<act::SubjectReveal>,
        category: &str,
        reason: RevealReason,
        request: Option<&str>,
    ) -> Result<Value> {
        let policy = permit.policy();
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let (stored, key) = self.subject_for(id, &draft).await?;
        let Some(cat) = policy.category(category) else {
            return Err(self
                .deny(
                    draft,
                    Error::invalid("category", "`category` is not a category of the policy"),
                )
                .await);
        };
        draft.fields = vec![category.to_owned()];
        let Some((_, sealed)) = sealed_fields(&stored)?.iter().find(|(c, _)| c == category) else {
            return Err(self
                .deny(
                    draft,
                    Error::NotFound(format!("the subject holds no {category}")),
                )
                .await);
        };
        let plain = key
            .open_field(id, category, sealed)
            .map_err(|e| Error::Internal(format!("subject {id}: {category}: {e}")))?;
        let value = fields::to_json(cat.field_type, &String::from_utf8_lossy(&plain));
        draft.reason = Some(match request.and_then(recordable_id) {
            Some(r) => format!("revealed to {reason}, answering request {r}"),
            None => format!("revealed to {reason}"),
        });
        self.record(draft).await?;
        Ok(value)
    }
}

/// The dashboard's statistics: counts per purpose, nothing that identifies anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Per purpose, the subjects' current consent decisions: (purpose, given, withdrawn).
    pub consents: Vec<(String, u64, u64)>,
    /// Per purpose, the live subjects whose data was collected under it.
    pub subjects: Vec<(String, u64)>,
}

impl Vault {
    /// Consents and subjects counted per purpose (the console's dashboard). Audited as
    /// `statistics.read`.
    pub async fn statistics(&self, permit: &Permit<act::StatisticsRead>) -> Result<Statistics> {
        let mut draft = permit.draft();
        let consents = self
            .store
            .consents_per_purpose()
            .await
            .map_err(store_error)?;
        let subjects = self
            .store
            .subjects_per_purpose()
            .await
            .map_err(store_error)?;
        draft.reason = Some("consents and subjects counted per purpose".into());
        self.record(draft).await?;
        Ok(Statistics { consents, subjects })
    }

    /// Records that a key holder read the demo's outbox of portal messages (which carries
    /// people's addresses and sign-in codes): the console reads the files, the permit and this
    /// entry make it an audited act like any other read.
    pub async fn record_outbox_read(
        &self,
        permit: &Permit<act::OutboxRead>,
        messages: usize,
    ) -> Result<()> {
        let mut draft = permit.draft();
        draft.reason = Some(format!("read the demo outbox ({messages} messages shown)"));
        self.record(draft).await
    }
}
