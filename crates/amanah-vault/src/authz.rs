//! The vault's side of the decision point. A [`Principal`] exists only after authentication (or
//! as the explicit operator principal of the command line). [`Vault::authorize`] asks
//! `amanah_core::authz::decide`, records a refusal once, and returns a [`Permit`]: every vault
//! operation that touches personal data takes one as its first argument, typed by the action it
//! allows, so an operation cannot run unauthorized and a permit for one action cannot be spent
//! on another. Per-subject decisions go through [`Vault::admit`], whose [`Admitted`] value is
//! what decryption takes.

use std::marker::PhantomData;
use std::sync::Arc;

use amanah_core::access::Denial;
use amanah_core::audit::AuditDraft;
use amanah_core::authz::{self, Action, Caller, Decision, SubjectFacts};
use amanah_core::consent::AgeGroup;
use amanah_core::policy::{Policy, ADMIN_ROLE};
use amanah_core::{Error, Result};
use amanah_crypto::DataKey;
use amanah_store::StoredSubject;

use crate::vault::{denial_error, store_error, ActivePolicy};
use crate::Vault;

/// An authenticated caller. There is no public constructor: [`Vault::authenticate`] makes one
/// from an API key, [`Vault::operator`] one for the command line on the server's machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    caller: Caller,
}

impl Principal {
    pub(crate) fn new(caller: Caller) -> Self {
        Principal { caller }
    }

    /// The platform operator on the command line of the server's machine.
    pub(crate) fn platform_operator() -> Self {
        Principal::new(Caller {
            key_id: crate::vault::CLI_ACTOR.to_owned(),
            role: amanah_core::policy::PLATFORM_ROLE.to_owned(),
            holder: Some("platform operator (command line)".to_owned()),
            subject: None,
        })
    }

    /// The platform acting in a tenant's vault on the organization's instruction (an export
    /// for an organization leaving the service): recorded in the tenant's chain as `platform`.
    pub(crate) fn platform_in_tenant() -> Self {
        Principal::new(Caller {
            key_id: "platform".to_owned(),
            role: amanah_core::policy::ADMIN_ROLE.to_owned(),
            holder: Some("platform operator (organization export)".to_owned()),
            subject: None,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.caller.key_id
    }

    pub fn role(&self) -> &str {
        &self.caller.role
    }

    /// The person the key was issued to.
    pub fn holder(&self) -> Option<&str> {
        self.caller.holder.as_deref()
    }

    pub fn is_admin(&self) -> bool {
        self.caller.role == ADMIN_ROLE && !self.caller.is_subject()
    }

    /// The data subject this principal is, when a person acts for themselves (the portal).
    pub fn own_subject(&self) -> Option<&str> {
        self.caller.subject.as_deref()
    }

    /// The guardian's own subject id, when a guardian acts for a child in the portal.
    pub fn acting_guardian(&self) -> Option<&str> {
        self.caller.acting_guardian()
    }

    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }
}

mod sealed {
    pub trait Sealed {}
}

/// An action, as a type: what a [`Permit`] allows.
pub trait Act: sealed::Sealed {
    const ACTION: Action;
}

/// One marker type per action (`act::SubjectRead` allows `Action::SubjectRead`).
pub mod act {
    use super::{sealed, Act, Action};

    macro_rules! actions {
        ($($name:ident),* $(,)?) => {$(
            #[derive(Debug)]
            pub struct $name;
            impl sealed::Sealed for $name {}
            impl Act for $name {
                const ACTION: Action = Action::$name;
            }
        )*};
    }

    amanah_core::with_actions!(actions);

    /// Actions that change a subject's fields.
    pub trait SubjectChange: Act {}
    impl SubjectChange for SubjectUpdate {}
    impl SubjectChange for SubjectRectify {}

    /// Actions that record a consent decision.
    pub trait ConsentChange: Act {
        const GRANTED: bool;
    }
    impl ConsentChange for ConsentGrant {
        const GRANTED: bool = true;
    }
    impl ConsentChange for ConsentWithdraw {
        const GRANTED: bool = false;
    }

    /// The steps of a disclosure's four-eyes workflow.
    pub trait DisclosureStep: Act {
        const STEP: amanah_core::disclosure::Step;
    }
    impl DisclosureStep for DisclosureApprove {
        const STEP: amanah_core::disclosure::Step = amanah_core::disclosure::Step::Approve;
    }
    impl DisclosureStep for DisclosureAuthorize {
        const STEP: amanah_core::disclosure::Step = amanah_core::disclosure::Step::Authorize;
    }
    impl DisclosureStep for DisclosureReject {
        const STEP: amanah_core::disclosure::Step = amanah_core::disclosure::Step::Reject;
    }
}

/// What an authorization is about: the purpose the call names and the subject it touches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub purpose: Option<&'a str>,
    pub subject: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn none() -> Self {
        Target::default()
    }

    pub fn purpose(purpose: &'a str) -> Self {
        Target {
            purpose: Some(purpose),
            subject: None,
        }
    }

    pub fn subject(subject: &'a str) -> Self {
        Target {
            purpose: None,
            subject: Some(subject),
        }
    }

    pub fn subject_under(subject: &'a str, purpose: &'a str) -> Self {
        Target {
            purpose: Some(purpose),
            subject: Some(subject),
        }
    }
}

/// Proof that the decision point allowed action `A` for a principal on a target. Only
/// [`Vault::authorize`] makes one.
pub struct Permit<A: Act> {
    principal: Principal,
    decision: Decision,
    active: Arc<ActivePolicy>,
    draft: AuditDraft,
    purpose: Option<String>,
    subject: Option<String>,
    _action: PhantomData<A>,
}

impl<A: Act> std::fmt::Debug for Permit<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("action", &A::ACTION)
            .field("role", &self.principal.role())
            .finish_non_exhaustive()
    }
}

impl<A: Act> Permit<A> {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Decided for the data subject acting for themselves (the privacy portal).
    pub fn own_data(&self) -> bool {
        self.decision.own_data()
    }

    pub(crate) fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The policy the decision was made under; the operation uses the same one.
    pub(crate) fn active(&self) -> &Arc<ActivePolicy> {
        &self.active
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.active.policy
    }

    /// A fresh audit entry for this action (time, actor, purpose, basis, subject filled in).
    pub(crate) fn draft(&self) -> AuditDraft {
        self.draft.clone()
    }

    /// The purpose the call named (actions under a purpose).
    pub(crate) fn purpose(&self) -> Result<&str> {
        self.purpose.as_deref().ok_or_else(|| {
            Error::Internal(format!("{:?} was authorized without a purpose", A::ACTION))
        })
    }

    /// The subject the permit is for (actions on one subject).
    pub fn subject(&self) -> Result<&str> {
        self.subject.as_deref().ok_or_else(|| {
            Error::Internal(format!("{:?} was authorized without a subject", A::ACTION))
        })
    }

    pub(crate) fn grant(&self) -> Result<&amanah_core::access::Grant> {
        self.decision
            .grant()
            .ok_or_else(|| Error::Internal(format!("{:?} carries no purpose grant", A::ACTION)))
    }
}

/// A subject that passed the per-subject decision, with its data key: what decryption takes.
pub(crate) struct Admitted {
    pub stored: StoredSubject,
    pub key: DataKey,
    pub minor: bool,
}

/// The state of the subject beyond what is stored.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Circumstances {
    /// The age group shown by a birth date the call submits (a rectification).
    pub new_age: Option<AgeGroup>,
    /// The write answers an open request of this subject.
    pub answers_request: bool,
}

/// A subject id as the audit may hold it: only well-formed ids (UUIDs) are recorded, so a
/// caller cannot write arbitrary text into the append-only log through a path.
pub fn recordable_id(id: &str) -> Option<String> {
    uuid::Uuid::parse_str(id)
        .ok()
        .filter(|_| id.len() == 36)
        .map(|u| u.hyphenated().to_string())
}

impl Vault {
    /// The command line's principal: the operator on the server's machine, acting as admin.
    pub fn operator(&self) -> Principal {
        Principal::new(Caller {
            key_id: crate::vault::CLI_ACTOR.to_owned(),
            role: ADMIN_ROLE.to_owned(),
            holder: Some("operator (command line)".to_owned()),
            subject: None,
        })
    }

    /// A data subject acting for themselves (the privacy portal). The decision point lets it
    /// do only what `authz::SELF_SERVICE` lists, and only on `subject_id`; its audit entries
    /// name the subject (`subject:<id>`, role `subject`), never a key holder. Call it only for
    /// a person who proved they hold an address of this subject (the portal's one-time code).
    pub fn data_subject(&self, subject_id: &str) -> Principal {
        Principal::new(Caller::data_subject(subject_id))
    }

    /// Asks the decision point whether `who` may do `A` on `target`. A refusal is recorded in
    /// the audit log (once, here) and returned; an allowance is a [`Permit`].
    pub async fn authorize<A: Act>(
        &self,
        who: &Principal,
        target: Target<'_>,
    ) -> Result<Permit<A>> {
        let active = self.policy();
        let policy = &active.policy;
        let mut draft = self.draft_for(who, A::ACTION.into(), policy);
        draft.subject = target.subject.and_then(recordable_id);
        // Only purposes the policy declares are recorded; anything else is caller text.
        draft.purpose = target
            .purpose
            .filter(|p| policy.purpose(p).is_some())
            .map(str::to_owned);
        match authz::decide_on(
            policy,
            who.caller(),
            A::ACTION,
            target.purpose,
            target.subject,
        ) {
            Ok(decision) => {
                if let Some(g) = decision.grant() {
                    draft.basis = Some(g.basis.as_str().to_owned());
                }
                Ok(Permit {
                    principal: who.clone(),
                    decision,
                    active: active.clone(),
                    draft,
                    purpose: target.purpose.map(str::to_owned),
                    subject: target.subject.map(str::to_owned),
                    _action: PhantomData,
                })
            }
            Err(denial) => Err(self.refuse(draft, &denial).await),
        }
    }

    /// Records a refusal by the decision point and returns the caller's error.
    pub(crate) async fn refuse(&self, draft: AuditDraft, denial: &Denial) -> Error {
        self.deny(draft, denial_error(denial)).await
    }

    /// The per-subject decision for a loaded subject: purpose enrolment, a minor's data,
    /// restriction. A refusal is recorded (with `draft`) and returned.
    pub(crate) async fn admit<A: Act>(
        &self,
        permit: &Permit<A>,
        stored: StoredSubject,
        circumstances: Circumstances,
        draft: &AuditDraft,
    ) -> Result<Admitted> {
        match self.admission(permit, stored, circumstances) {
            Ok(Ok(admitted)) => Ok(admitted),
            Ok(Err(denial)) => Err(self.refuse(draft.clone(), &denial).await),
            Err(e) => Err(e),
        }
    }

    /// Loads the permit's subject and decides on it: a missing (404) or erased (410) subject
    /// and a refusal are both on record.
    pub(crate) async fn admit_subject<A: Act>(
        &self,
        permit: &Permit<A>,
        circumstances: Circumstances,
        draft: &AuditDraft,
    ) -> Result<Admitted> {
        let stored = self.load_or_deny(permit.subject()?, draft).await?;
        self.admit(permit, stored, circumstances, draft).await
    }

    /// A stored subject, or the recorded refusal that says it is missing (404) or erased (410).
    pub(crate) async fn load_or_deny(&self, id: &str, draft: &AuditDraft) -> Result<StoredSubject> {
        match self.store.load_subject(id).await.map_err(store_error)? {
            Some(stored) => Ok(stored),
            None => {
                let missing = self.missing_subject(id).await?;
                Err(self.deny(draft.clone(), missing).await)
            }
        }
    }

    /// [`Vault::admit`] without recording: for searches and listings, which record one entry
    /// per subject themselves.
    pub(crate) fn admission<A: Act>(
        &self,
        permit: &Permit<A>,
        stored: StoredSubject,
        circumstances: Circumstances,
    ) -> Result<std::result::Result<Admitted, Denial>> {
        let policy = permit.policy();
        let key = self.unwrap_key(&stored)?;
        let stored_age = self.age_group(policy, &key, &stored)?;
        // The stricter of the stored and the submitted birth date decides until the change is
        // committed: a rectification cannot lower a minor's protection on its own say-so.
        let minor =
            stored_age == Some(AgeGroup::Minor) || circumstances.new_age == Some(AgeGroup::Minor);
        let facts = SubjectFacts {
            enrolled: &stored.purposes,
            minor,
            restricted_since: stored.restricted_since_micros,
            answers_request: circumstances.answers_request,
        };
        Ok(match permit.decision().check_subject(policy, &facts) {
            Ok(()) => Ok(Admitted { stored, key, minor }),
            Err(d) => Err(d),
        })
    }
}
