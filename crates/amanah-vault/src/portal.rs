//! What the privacy portal needs of the vault beyond the self-service actions: finding whose
//! address a person typed (to send them a one-time code) and recording that they signed in.
//! Everything they then see or change goes through the ordinary operations, under a permit the
//! decision point gives their own principal ([`Vault::data_subject`]).

use amanah_core::audit::AuditAction;
use amanah_core::consent::AgeGroup;
use amanah_core::fields::{self, FieldType};
use amanah_core::Result;

use crate::authz::Principal;
use crate::vault::{store_error, Vault};

/// How a person names themselves at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Email,
    Phone,
}

impl AddressKind {
    /// An e-mail address if the text has an `@`, else a phone number.
    pub fn of(text: &str) -> AddressKind {
        if text.contains('@') {
            AddressKind::Email
        } else {
            AddressKind::Phone
        }
    }

    fn field_type(self) -> FieldType {
        match self {
            AddressKind::Email => FieldType::Email,
            AddressKind::Phone => FieldType::Phone,
        }
    }
}

/// A sign-in address held by exactly one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInTarget {
    pub subject_id: String,
    pub kind: AddressKind,
    /// The address in its normalized form (where the code goes).
    pub address: String,
}

impl Vault {
    /// The subject holding `address` (an e-mail address or a phone number) in a category of
    /// that type the policy marks `sign_in` (the person's own address), by the blind index: no value is decrypted and nothing is recorded
    /// (the sign-in, once the code is proved, is). `None` when nobody holds it, when it does not
    /// normalize, or when several subjects hold it (a code could not say whose data to show).
    pub async fn sign_in_target(&self, address: &str) -> Result<Option<SignInTarget>> {
        let kind = AddressKind::of(address);
        let Ok(normalized) = fields::normalize_str(kind.field_type(), address) else {
            return Ok(None);
        };
        let active = self.policy();
        let mut found: Option<String> = None;
        for (name, category) in &active.policy.categories {
            // Only the person's own addresses: a parent's number or a shared office line in the
            // record would let whoever reads it sign in as the person.
            if category.field_type != kind.field_type() || !category.sign_in {
                continue;
            }
            let term = self
                .blind_keys
                .get(&self.keys(), name)
                .index(normalized.as_bytes());
            let hits = self
                .store
                .find_subjects(name, term, 2)
                .await
                .map_err(store_error)?;
            for hit in hits {
                match &found {
                    None => found = Some(hit.id),
                    Some(id) if *id == hit.id => {}
                    Some(_) => return Ok(None),
                }
            }
        }
        Ok(found.map(|subject_id| SignInTarget {
            subject_id,
            kind,
            address: normalized,
        }))
    }

    /// Records that a data subject proved a one-time code and opened a portal session.
    pub async fn record_sign_in(&self, who: &Principal) -> Result<()> {
        let Some(subject) = who.own_subject() else {
            return Err(amanah_core::Error::Internal(
                "a portal sign-in is recorded for a data subject only".into(),
            ));
        };
        let policy = self.policy();
        let mut draft = self.draft_for(who, AuditAction::PortalSignIn, &policy.policy);
        draft.subject = crate::authz::recordable_id(subject);
        draft.reason = Some("signed in to the privacy portal with a one-time code".into());
        self.store
            .append_audit(vec![draft])
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The children `guardian` may act for in the portal: subjects who recorded them as
    /// `guardian` or `parent` and are minors today under the policy (UU PDP Art. 25). A child
    /// who comes of age leaves the list and decides alone.
    pub async fn wards(&self, guardian: &str) -> Result<Vec<String>> {
        let relations = self.store.relations(guardian).await.map_err(store_error)?;
        let mut out: Vec<String> = Vec::new();
        for r in relations {
            if r.related_subject_id != guardian
                || !matches!(r.kind.as_str(), "guardian" | "parent")
                || out.contains(&r.subject_id)
            {
                continue;
            }
            if self.is_child(&r.subject_id).await? {
                out.push(r.subject_id);
            }
        }
        Ok(out)
    }

    /// The principal of `guardian` acting for `child` in the portal, if the child recorded them
    /// as guardian or parent and is a minor today; anything else is `Forbidden` (the same for a
    /// child who does not exist).
    pub async fn guardian_of(&self, guardian: &str, child: &str) -> Result<Principal> {
        if self.wards(guardian).await?.iter().any(|w| w == child) {
            Ok(Principal::new(amanah_core::authz::Caller::guardian_of(
                guardian, child,
            )))
        } else {
            Err(amanah_core::Error::Forbidden(
                "you may act only for a child who named you as their parent or guardian".into(),
            ))
        }
    }

    async fn is_child(&self, id: &str) -> Result<bool> {
        let Some(stored) = self.store.load_subject(id).await.map_err(store_error)? else {
            return Ok(false);
        };
        let key = self.unwrap_key(&stored)?;
        let policy = self.policy();
        Ok(matches!(
            self.age_group(&policy.policy, &key, &stored)?,
            Some(AgeGroup::Minor | AgeGroup::BelowMinimum)
        ))
    }
}
