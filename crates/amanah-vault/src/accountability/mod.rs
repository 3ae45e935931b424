//! Accountability use cases: disclosures to recipients (requested, approved by the person in
//! charge, authorized by the account owner, then released a bounded number of times, each
//! release audited per subject), the breach register with its notices, and the record of
//! processing. The rules live in `amanah_core::{disclosure, breach, ropa}`.

use std::collections::BTreeMap;

use amanah_core::audit::AuditDraft;
use amanah_core::breach::{self, Audience, BreachFacts};
use amanah_core::consent::{self, date_of, AgeGroup};
use amanah_core::disclosure::{
    self, Actors, Ask, DisclosureStatus, Step, StepDenial, DEFAULT_MAX_RELEASES, MAX_RELEASES,
};
use amanah_core::fields::{self, FieldType};
use amanah_core::policy::Policy;
use amanah_core::ropa::{self, Security};
use amanah_core::Timestamp;
use amanah_core::{Conflict, Error, Result};
use amanah_store::{
    BreachRecord, DisclosureFilter, DisclosureRecord, DisclosureRelease, DisclosureStep,
    StoreError, StoredSubject,
};
use serde_json::{json, Map, Value};

use crate::authz::{act, Circumstances, Permit, Principal};
use crate::consent::{consent_error, events};
use crate::rights::text;
use crate::vault::{sealed_fields, store_error, Vault};

mod breaches;
mod disclosures;

pub use breaches::*;
pub use disclosures::*;

/// Most subjects one disclosure or breach may name.
pub const MAX_SUBJECTS: usize = 10_000;

fn parse_instant(field: &str, s: &str) -> Result<i64> {
    s.parse::<Timestamp>()
        .map(Timestamp::micros)
        .map_err(|_| Error::invalid(field, format!("`{field}` must be an RFC 3339 time")))
}

fn subject_list(field: &str, ids: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = ids.iter().map(|s| s.trim().to_owned()).collect();
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > MAX_SUBJECTS || out.iter().any(String::is_empty) {
        return Err(Error::invalid(
            field,
            format!("`{field}` must list 1 to {MAX_SUBJECTS} subject ids"),
        ));
    }
    Ok(out)
}

impl Vault {
    // ---------------------------------------------------------------- record of processing

    /// The record of processing activities (UU PDP Art. 31) from the policy and live counts
    /// (the admin or the DPO).
    pub async fn ropa(&self, permit: &Permit<act::Ropa>, storage: &str) -> Result<Value> {
        let policy = permit.policy();
        let mut draft = permit.draft();
        let counts: BTreeMap<String, u64> = self
            .store
            .subjects_per_purpose()
            .await
            .map_err(store_error)?
            .into_iter()
            .collect();
        draft.reason = Some("record of processing activities".into());
        self.store
            .append_audit(vec![draft.clone()])
            .await
            .map_err(store_error)?;
        Ok(ropa::build(
            policy,
            &counts,
            &Security {
                storage: storage.to_owned(),
            },
            &Timestamp::from_micros(draft.at_micros).to_string(),
        ))
    }
}
