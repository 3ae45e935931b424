//! The one decision point: who may do what.
//!
//! Every operation of the vault is an [`Action`]. [`decide`] answers, from the policy, the
//! caller and the purpose named, whether the caller's role may attempt the action at all (the
//! [`RULES`] table); [`Decision::check_subject`] then answers, from the state of the subject
//! touched (the purposes it is enrolled in, minority, restriction), whether it may be done to
//! this subject. Both are pure; the vault records every refusal once and carries an allowed
//! [`Decision`] inside the permit its operations require.

use crate::access::{self, Denial, Grant, Visibility};
use crate::audit::AuditAction;
use crate::policy::{LegalBasis, Policy, ADMIN_ROLE, PLATFORM_ROLE, SUBJECT_ROLE};

/// Who is asking, as authentication established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The API key's id, recorded in the audit log (never the key itself).
    pub key_id: String,
    pub role: String,
    /// The person the key was issued to (`Name <email>`); four eyes count people, not keys.
    pub holder: Option<String>,
    /// The data subject acting for themselves (the privacy portal, after a one-time code):
    /// their id, the only subject this caller may ever reach. `None` for every key holder.
    pub subject: Option<String>,
}

impl Caller {
    /// A data subject acting for themselves: recorded in the audit as the subject itself
    /// (actor `subject:<id>`, role [`SUBJECT_ROLE`]), never as a key holder.
    pub fn data_subject(subject_id: &str) -> Caller {
        Caller {
            key_id: format!("subject:{subject_id}"),
            role: SUBJECT_ROLE.to_owned(),
            holder: None,
            subject: Some(subject_id.to_owned()),
        }
    }

    /// A parent or guardian, signed in to the portal as a subject themselves, acting for a
    /// child in their care (UU PDP Art. 25): recorded as the guardian (actor
    /// `subject:<guardian>`), reaching the child's id only. The vault makes it only after
    /// checking the recorded relation and the child's age.
    pub fn guardian_of(guardian_id: &str, child_id: &str) -> Caller {
        Caller {
            key_id: format!("subject:{guardian_id}"),
            role: SUBJECT_ROLE.to_owned(),
            holder: None,
            subject: Some(child_id.to_owned()),
        }
    }

    /// The guardian's own subject id, when this caller is a guardian acting for a child.
    pub fn acting_guardian(&self) -> Option<&str> {
        let subject = self.subject.as_deref()?;
        self.key_id
            .strip_prefix("subject:")
            .filter(|g| *g != subject)
    }

    /// The data subject acting for themselves, not a key holder.
    pub fn is_subject(&self) -> bool {
        self.subject.is_some()
    }

    pub fn is_admin(&self) -> bool {
        self.role == ADMIN_ROLE
    }

    /// The platform operator: runs tenants, never touches their subjects.
    pub fn is_platform(&self) -> bool {
        self.role == PLATFORM_ROLE
    }
}

/// Calls `$callback!` with every action's name, once: the [`Action`] enum and the vault's
/// permit types (`amanah_vault::act`) are both generated from this one list.
#[macro_export]
macro_rules! with_actions {
    ($callback:ident) => {
        $callback!(
            SubjectCreate,
            SubjectRead,
            SubjectSearch,
            SubjectUpdate,
            SubjectRectify,
            SubjectEnroll,
            DocumentUpload,
            DocumentList,
            DocumentRead,
            SubjectImport,
            SubjectExport,
            SubjectReveal,
            SubjectErase,
            SubjectRestrict,
            SubjectUnrestrict,
            SubjectEnd,
            HoldCreate,
            HoldRead,
            HoldRelease,
            ConsentGrant,
            ConsentWithdraw,
            ConsentRead,
            ConsentStale,
            ContactList,
            RelationCreate,
            RelationRead,
            RequestCreate,
            RequestRead,
            RequestList,
            RequestUpdate,
            RetentionSweep,
            DisclosureRequest,
            DisclosureRead,
            DisclosureList,
            DisclosureApprove,
            DisclosureAuthorize,
            DisclosureReject,
            DisclosureRelease,
            BreachRecord,
            BreachRead,
            BreachList,
            BreachNotices,
            BreachNotified,
            Ropa,
            StatisticsRead,
            OutboxRead,
            AuditRead,
            AuditVerify,
            KeyCreate,
            KeyList,
            KeyRevoke,
            KeksRotate,
            PolicyRead,
            PolicyApply,
            TenantCreate,
            TenantList,
            TenantRead,
            TenantSuspend,
            TenantResume,
            TenantDelete,
            TenantExport,
            TenantUpdate,
        );
    };
}

macro_rules! action_enum {
    ($($name:ident),* $(,)?) => {
        /// Every operation a caller can ask for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($name),*
        }
    };
}

with_actions!(action_enum);

/// What a role needs to attempt an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The role holds the purpose the call names (the admin holds every purpose).
    Purpose,
    /// The role holds a purpose the subject is enrolled in, or handles requests (the DPO).
    SubjectPurposeOrRequests,
    /// The role holds a purpose the subject is enrolled in (and, for relations, one of the
    /// related subject's too).
    SubjectPurpose,
    /// The admin, or a role with `handle_requests` (the DPO).
    HandleRequests,
    /// The admin, the DPO, or a role with `end_relationships`.
    EndRelationships,
    /// A role with `approve_disclosures` (never the admin: four eyes are people).
    ApproveDisclosures,
    /// A role with `authorize_disclosures` (never the admin).
    AuthorizeDisclosures,
    /// A role that approves or authorizes disclosures.
    StepDisclosures,
    /// The admin, the DPO, or a role that approves or authorizes disclosures.
    OverseeDisclosures,
    /// Any authenticated key; the record decides (a disclosure's requester).
    AnyRole,
    /// The built-in admin role only.
    Admin,
    /// The platform operator only (a key of the platform, never a tenant's): tenants'
    /// lifecycle. The operator is refused every other action.
    Platform,
}

/// What a data subject may do for themselves (the privacy portal), on their own id only: see
/// what is held and who used it (the access export), see and change their consents, and file a
/// request. Every other action is refused to them, and each of these to anyone else's id.
/// Key holders never pass this way: for them, [`RULES`] decides.
pub const SELF_SERVICE: &[Action] = &[
    Action::SubjectExport,
    Action::ConsentRead,
    Action::ConsentGrant,
    Action::ConsentWithdraw,
    Action::RequestCreate,
];

/// The decision table: every action and the rule it follows. `ARCHITECTURE.md` prints it.
pub const RULES: &[(Action, Rule)] = &[
    (Action::SubjectCreate, Rule::Purpose),
    (Action::SubjectRead, Rule::Purpose),
    (Action::SubjectSearch, Rule::Purpose),
    (Action::SubjectUpdate, Rule::Purpose),
    (Action::SubjectRectify, Rule::Purpose),
    (Action::SubjectEnroll, Rule::Purpose),
    (Action::DocumentUpload, Rule::Purpose),
    (Action::DocumentList, Rule::Purpose),
    (Action::DocumentRead, Rule::Purpose),
    (Action::SubjectImport, Rule::Admin),
    (Action::SubjectExport, Rule::HandleRequests),
    (Action::SubjectReveal, Rule::HandleRequests),
    (Action::SubjectErase, Rule::HandleRequests),
    (Action::SubjectRestrict, Rule::HandleRequests),
    (Action::SubjectUnrestrict, Rule::HandleRequests),
    (Action::SubjectEnd, Rule::EndRelationships),
    (Action::HoldCreate, Rule::HandleRequests),
    (Action::HoldRead, Rule::HandleRequests),
    (Action::HoldRelease, Rule::HandleRequests),
    (Action::ConsentGrant, Rule::Purpose),
    (Action::ConsentWithdraw, Rule::Purpose),
    (Action::ConsentRead, Rule::SubjectPurposeOrRequests),
    (Action::ConsentStale, Rule::Purpose),
    (Action::ContactList, Rule::Purpose),
    (Action::RelationCreate, Rule::SubjectPurpose),
    (Action::RelationRead, Rule::SubjectPurposeOrRequests),
    (Action::RequestCreate, Rule::HandleRequests),
    (Action::RequestRead, Rule::HandleRequests),
    (Action::RequestList, Rule::HandleRequests),
    (Action::RequestUpdate, Rule::HandleRequests),
    (Action::RetentionSweep, Rule::HandleRequests),
    (Action::DisclosureRequest, Rule::Purpose),
    (Action::DisclosureRead, Rule::AnyRole),
    (Action::DisclosureList, Rule::OverseeDisclosures),
    (Action::DisclosureApprove, Rule::ApproveDisclosures),
    (Action::DisclosureAuthorize, Rule::AuthorizeDisclosures),
    (Action::DisclosureReject, Rule::StepDisclosures),
    (Action::DisclosureRelease, Rule::AnyRole),
    (Action::BreachRecord, Rule::HandleRequests),
    (Action::BreachRead, Rule::HandleRequests),
    (Action::BreachList, Rule::HandleRequests),
    (Action::BreachNotices, Rule::HandleRequests),
    (Action::BreachNotified, Rule::HandleRequests),
    (Action::Ropa, Rule::HandleRequests),
    (Action::StatisticsRead, Rule::HandleRequests),
    (Action::OutboxRead, Rule::HandleRequests),
    (Action::AuditRead, Rule::HandleRequests),
    (Action::AuditVerify, Rule::HandleRequests),
    (Action::KeyCreate, Rule::Admin),
    (Action::KeyList, Rule::Admin),
    (Action::KeyRevoke, Rule::Admin),
    (Action::KeksRotate, Rule::Admin),
    (Action::PolicyRead, Rule::Admin),
    (Action::PolicyApply, Rule::Admin),
    (Action::TenantCreate, Rule::Platform),
    (Action::TenantList, Rule::Platform),
    (Action::TenantRead, Rule::Platform),
    (Action::TenantSuspend, Rule::Platform),
    (Action::TenantResume, Rule::Platform),
    (Action::TenantDelete, Rule::Platform),
    (Action::TenantExport, Rule::Platform),
    (Action::TenantUpdate, Rule::Platform),
];

impl Action {
    /// The rule this action follows.
    pub fn rule(self) -> Rule {
        RULES
            .iter()
            .find(|(a, _)| *a == self)
            .map_or(Rule::Admin, |(_, r)| *r)
    }

    /// The action's name in the audit log (see [`AuditAction`]).
    pub fn name(self) -> &'static str {
        AuditAction::from(self).as_str()
    }

    /// Writes change the subject; a restricted subject refuses them unless they answer a request.
    pub fn writes_subject(self) -> bool {
        matches!(
            self,
            Action::SubjectUpdate
                | Action::SubjectRectify
                | Action::SubjectEnroll
                | Action::DocumentUpload
                | Action::ConsentGrant
                | Action::RelationCreate
                | Action::SubjectEnd
        )
    }
}

/// What a role may do, as far as one action and purpose go. Only [`decide`] builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    action: Action,
    caller: Caller,
    /// The purpose grant, for actions under a purpose.
    grant: Option<Grant>,
    /// Purposes the role holds (every purpose for the admin).
    held: Vec<String>,
    specific: bool,
    handles_requests: bool,
    /// Decided for a data subject acting for themselves ([`SELF_SERVICE`]).
    own: bool,
}

/// The state of a subject an allowed action is about to touch.
#[derive(Debug, Clone, Copy)]
pub struct SubjectFacts<'a> {
    /// The purposes the subject is enrolled in.
    pub enrolled: &'a [String],
    /// The subject is a minor by the stricter of the stored and any submitted birth date.
    pub minor: bool,
    /// Processing is restricted (UU PDP Art. 41) since this time.
    pub restricted_since: Option<i64>,
    /// The write answers an open data-subject request of this subject.
    pub answers_request: bool,
}

fn role_flags(policy: &Policy, caller: &Caller) -> Result<RoleFlags, Denial> {
    if caller.is_admin() {
        return Ok(RoleFlags {
            held: policy.purposes.keys().cloned().collect(),
            specific: true,
            handle_requests: true,
            end_relationships: true,
            approve: false,
            authorize: false,
        });
    }
    let role = policy
        .role(&caller.role)
        .ok_or_else(|| Denial::UnknownRole(caller.role.clone()))?;
    Ok(RoleFlags {
        held: role.purposes.clone(),
        specific: role.specific,
        handle_requests: role.handle_requests,
        end_relationships: role.end_relationships,
        approve: role.approve_disclosures,
        authorize: role.authorize_disclosures,
    })
}

struct RoleFlags {
    held: Vec<String>,
    specific: bool,
    handle_requests: bool,
    end_relationships: bool,
    approve: bool,
    authorize: bool,
}

/// Decides whether `caller` may attempt `action` (under `purpose`, where the action names one).
/// A data subject acting for themselves is refused here: they need [`decide_on`] with their id.
pub fn decide(
    policy: &Policy,
    caller: &Caller,
    action: Action,
    purpose: Option<&str>,
) -> Result<Decision, Denial> {
    decide_on(policy, caller, action, purpose, None)
}

/// [`decide`], knowing the subject the call touches (where it names one): a data subject acting
/// for themselves may do what [`SELF_SERVICE`] lists, on their own id and no other.
pub fn decide_on(
    policy: &Policy,
    caller: &Caller,
    action: Action,
    purpose: Option<&str>,
    subject: Option<&str>,
) -> Result<Decision, Denial> {
    if let Some(own) = &caller.subject {
        if !SELF_SERVICE.contains(&action) {
            return Err(Denial::OwnDataOnly);
        }
        if subject != Some(own.as_str()) {
            return Err(Denial::OwnDataOnly);
        }
        if action.rule() == Rule::Purpose {
            let purpose = purpose.ok_or(Denial::PurposeRequired)?;
            if policy.purpose(purpose).is_none() {
                return Err(Denial::unknown_purpose(policy));
            }
        }
        return Ok(Decision::without_grant(action, caller, true));
    }
    // The operator and the tenants' roles do disjoint things: the operator only what is
    // `Rule::Platform`, nobody else that.
    match (caller.is_platform(), action.rule() == Rule::Platform) {
        (true, true) => return Ok(Decision::without_grant(action, caller, false)),
        (true, false) => return Err(Denial::TenantDataOnly),
        (false, true) => return Err(Denial::PlatformOnly),
        (false, false) => {}
    }
    let flags = role_flags(policy, caller)?;
    let needs = |ok: bool, needs: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(Denial::RoleMayNot {
                role: caller.role.clone(),
                action: action.name(),
                needs,
            })
        }
    };
    let mut grant = None;
    match action.rule() {
        Rule::Purpose => {
            let purpose = purpose.ok_or(Denial::PurposeRequired)?;
            grant = Some(access::grant(policy, &caller.role, purpose)?);
        }
        Rule::SubjectPurposeOrRequests | Rule::SubjectPurpose => {
            let ok = !flags.held.is_empty()
                || (action.rule() == Rule::SubjectPurposeOrRequests && flags.handle_requests);
            needs(ok, "a purpose the subject is enrolled in")?;
        }
        Rule::HandleRequests => needs(
            flags.handle_requests,
            "the admin or a role with handle_requests = true (the DPO)",
        )?,
        Rule::EndRelationships => needs(
            flags.handle_requests || flags.end_relationships,
            "the admin, the DPO, or a role with end_relationships = true",
        )?,
        Rule::ApproveDisclosures => needs(
            flags.approve,
            "a role with approve_disclosures = true (the person in charge; never the admin)",
        )?,
        Rule::AuthorizeDisclosures => needs(
            flags.authorize,
            "a role with authorize_disclosures = true (the account owner; never the admin)",
        )?,
        Rule::StepDisclosures => needs(
            flags.approve || flags.authorize,
            "a role that approves or authorizes disclosures",
        )?,
        Rule::OverseeDisclosures => needs(
            flags.handle_requests || flags.approve || flags.authorize,
            "the admin, the DPO, or a role that approves or authorizes disclosures",
        )?,
        Rule::AnyRole => {}
        Rule::Admin => {
            if !caller.is_admin() {
                return Err(Denial::AdminOnly);
            }
        }
        // Decided above.
        Rule::Platform => return Err(Denial::PlatformOnly),
    }
    Ok(Decision {
        action,
        caller: caller.clone(),
        grant,
        held: flags.held,
        specific: flags.specific,
        handles_requests: flags.handle_requests,
        own: false,
    })
}

impl Decision {
    /// An allowance that grants no purpose's categories: the platform operator's actions, and
    /// what a data subject does for themselves (`own`).
    fn without_grant(action: Action, caller: &Caller, own: bool) -> Decision {
        Decision {
            action,
            caller: caller.clone(),
            grant: None,
            held: Vec::new(),
            specific: false,
            handles_requests: false,
            own,
        }
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The purpose grant (actions under a purpose only).
    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }

    /// Decided for the data subject acting for themselves (the privacy portal).
    pub fn own_data(&self) -> bool {
        self.own
    }

    /// The role handles data-subject requests (the DPO or the admin).
    pub fn handles_requests(&self) -> bool {
        self.handles_requests
    }

    /// The role may handle specific data, and so a minor's data.
    pub fn specific(&self) -> bool {
        self.specific
    }

    /// Whether the role holds a purpose among `enrolled`.
    pub fn shares_purpose(&self, enrolled: &[String]) -> bool {
        enrolled.iter().any(|p| self.held.contains(p))
    }

    /// Purpose limitation (UU PDP Art. 16(2)(b)): data is used only under the purposes it was
    /// collected or consented for; enrolling is the one way to add a purpose.
    fn purpose_limitation(&self, s: &SubjectFacts<'_>) -> Result<(), Denial> {
        let shared = self.shares_purpose(s.enrolled);
        let no_shared = || Denial::NoSharedPurpose {
            role: self.caller.role.clone(),
        };
        let require = |ok: bool| if ok { Ok(()) } else { Err(no_shared()) };
        match (self.action.rule(), &self.grant) {
            (Rule::Purpose, Some(g)) => match self.action {
                Action::SubjectEnroll if !shared => Err(no_shared()),
                Action::SubjectEnroll if s.enrolled.contains(&g.purpose) => {
                    Err(Denial::AlreadyEnrolled {
                        purpose: g.purpose.clone(),
                    })
                }
                Action::SubjectEnroll => Ok(()),
                // A consent may enrol the subject in its purpose, but only for a role that
                // already knows the subject under one of its own purposes.
                Action::ConsentGrant | Action::ConsentWithdraw => {
                    require(shared || s.enrolled.contains(&g.purpose))
                }
                // Under a purpose resting on consent, the consent itself is the enrolment (a
                // grant enrols): the consent check that follows answers more precisely.
                _ if g.basis != LegalBasis::Consent && !s.enrolled.contains(&g.purpose) => {
                    Err(Denial::NotEnrolled {
                        purpose: g.purpose.clone(),
                    })
                }
                _ => Ok(()),
            },
            (Rule::SubjectPurpose, _) => require(shared),
            (Rule::SubjectPurposeOrRequests | Rule::EndRelationships, _) => {
                require(shared || self.handles_requests)
            }
            _ => Ok(()),
        }
    }

    /// Whether the action may touch a subject in this state.
    pub fn check_subject(&self, policy: &Policy, s: &SubjectFacts<'_>) -> Result<(), Denial> {
        let action = self.action;
        if self.own {
            // The person themselves: their id was checked by `decide_on`. What consent
            // rules say (a minor's grant needs a guardian) the consent operations decide; a
            // restriction limits what others do with their data, never what they see of it or
            // their own withdrawals and requests, but it still stops new grants.
            return match s.restricted_since {
                Some(at) if action == Action::ConsentGrant => Err(Denial::RestrictedWrite {
                    since: crate::consent::date_of(at).to_string(),
                }),
                _ => Ok(()),
            };
        }
        self.purpose_limitation(s)?;
        // A withdrawal only ever reduces processing: it is accepted from any role that holds
        // the purpose, whatever the subject's state.
        if action == Action::ConsentWithdraw {
            return Ok(());
        }
        if s.minor && !self.specific {
            return Err(Denial::MinorData {
                role: self.caller.role.clone(),
            });
        }
        if let Some(at) = s.restricted_since {
            // A restricted subject is not processed (UU PDP Art. 41). What remains: the DPO's
            // rights work, writes that answer a request (by the DPO), and reads by the admin
            // under a purpose marked restricted_use (e.g. legal claims).
            let since = crate::consent::date_of(at).to_string();
            if action.writes_subject() {
                if !(self.handles_requests && s.answers_request) {
                    return Err(Denial::RestrictedWrite { since });
                }
            } else if self.grant.is_some() {
                let restricted_use = self
                    .grant
                    .as_ref()
                    .and_then(|g| policy.purpose(&g.purpose))
                    .is_some_and(|p| p.restricted_use);
                if !(self.caller.is_admin() && restricted_use) {
                    return Err(Denial::Restricted { since });
                }
            } else if !self.handles_requests {
                return Err(Denial::Restricted { since });
            }
        }
        Ok(())
    }
}

/// On what ground a subject may be enrolled in a further purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollGround {
    /// The purpose rests on consent: a valid consent to it is needed.
    Consent,
    /// The policy declares the purpose compatible with one the subject is enrolled in.
    Compatible(String),
}

/// Whether `purpose` may be added to a subject enrolled in `enrolled`.
pub fn enrollment_ground(
    policy: &Policy,
    purpose: &str,
    enrolled: &[String],
) -> Result<EnrollGround, Denial> {
    let p = policy
        .purpose(purpose)
        .ok_or_else(|| Denial::unknown_purpose(policy))?;
    if p.basis == LegalBasis::Consent {
        return Ok(EnrollGround::Consent);
    }
    p.compatible_with
        .iter()
        .find(|c| enrolled.contains(c))
        .map(|c| EnrollGround::Compatible(c.clone()))
        .ok_or_else(|| Denial::NoEnrollmentGround {
            purpose: purpose.to_owned(),
        })
}

/// Whether a role may see a category in clear under a grant (what a disclosure may release).
pub fn clear(grant: &Grant, category: &str) -> bool {
    grant.readable.get(category) == Some(&Visibility::Clear)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test policy, where the registrar may also end relationships.
    fn policy() -> Policy {
        let source = crate::test_policies::TEST.replace(
            "[roles.registrar]\n",
            "[roles.registrar]\nend_relationships = true\n",
        );
        Policy::parse(&source).unwrap()
    }

    fn who(role: &str) -> Caller {
        Caller {
            key_id: format!("key-{role}"),
            role: role.into(),
            holder: None,
            subject: None,
        }
    }

    fn facts(enrolled: &[String]) -> SubjectFacts<'_> {
        SubjectFacts {
            enrolled,
            minor: false,
            restricted_since: None,
            answers_request: false,
        }
    }

    #[test]
    fn every_action_has_exactly_one_rule() {
        let mut seen = std::collections::BTreeSet::new();
        for (a, _) in RULES {
            assert!(seen.insert(*a), "{a:?} is listed twice");
        }
        assert_eq!(seen.len(), 62, "a new action needs a row in RULES");
    }

    #[test]
    fn reads_need_the_subject_enrolled_in_the_purpose() {
        let p = policy();
        let d = decide(
            &p,
            &who("registrar"),
            Action::SubjectRead,
            Some("government_orders"),
        )
        .unwrap();
        let admission = vec!["admission".to_owned()];
        assert_eq!(
            d.check_subject(&p, &facts(&admission)),
            Err(Denial::NotEnrolled {
                purpose: "government_orders".into()
            })
        );
        let both = vec!["admission".to_owned(), "government_orders".to_owned()];
        assert_eq!(d.check_subject(&p, &facts(&both)), Ok(()));
    }

    #[test]
    fn relations_and_consent_reads_need_a_shared_purpose() {
        let p = policy();
        let admission = vec!["admission".to_owned()];
        let d = decide(&p, &who("marketer"), Action::ConsentRead, None).unwrap();
        assert!(matches!(
            d.check_subject(&p, &facts(&admission)),
            Err(Denial::NoSharedPurpose { .. })
        ));
        let d = decide(&p, &who("dpo"), Action::ConsentRead, None).unwrap();
        assert_eq!(d.check_subject(&p, &facts(&[])), Ok(()));
        let d = decide(&p, &who("marketer"), Action::RelationCreate, None).unwrap();
        assert!(d.check_subject(&p, &facts(&admission)).is_err());
    }

    #[test]
    fn ending_a_relationship_is_for_named_roles() {
        let p = policy();
        assert!(matches!(
            decide(&p, &who("marketer"), Action::SubjectEnd, None),
            Err(Denial::RoleMayNot { .. })
        ));
        assert!(decide(&p, &who("registrar"), Action::SubjectEnd, None).is_ok());
        assert!(decide(&p, &who("dpo"), Action::SubjectEnd, None).is_ok());
        assert!(decide(&p, &who(ADMIN_ROLE), Action::SubjectEnd, None).is_ok());
    }

    #[test]
    fn the_admin_never_takes_a_disclosure_step() {
        let p = policy();
        assert!(decide(&p, &who(ADMIN_ROLE), Action::DisclosureApprove, None).is_err());
        assert!(decide(&p, &who(ADMIN_ROLE), Action::DisclosureAuthorize, None).is_err());
        assert!(decide(&p, &who("pic"), Action::DisclosureApprove, None).is_ok());
        assert!(decide(&p, &who("pic"), Action::DisclosureAuthorize, None).is_err());
    }

    #[test]
    fn restriction_refuses_writes_not_tied_to_a_request() {
        let p = policy();
        let admission = vec!["admission".to_owned()];
        let restricted = SubjectFacts {
            restricted_since: Some(0),
            ..facts(&admission)
        };
        let d = decide(
            &p,
            &who("officer"),
            Action::SubjectUpdate,
            Some("admission"),
        )
        .unwrap();
        assert_eq!(
            d.check_subject(&p, &restricted),
            Err(Denial::RestrictedWrite {
                since: "1970-01-01".into()
            })
        );
        let d = decide(&p, &who("dpo"), Action::SubjectRectify, Some("admission")).unwrap();
        assert_eq!(
            d.check_subject(
                &p,
                &SubjectFacts {
                    answers_request: true,
                    ..restricted
                }
            ),
            Ok(())
        );
        let d = decide(&p, &who("officer"), Action::SubjectRead, Some("admission")).unwrap();
        assert_eq!(
            d.check_subject(&p, &restricted),
            Err(Denial::Restricted {
                since: "1970-01-01".into()
            })
        );
        // The admin reads a restricted subject only under a purpose marked restricted_use.
        let d = decide(&p, &who(ADMIN_ROLE), Action::SubjectRead, Some("admission")).unwrap();
        assert!(matches!(
            d.check_subject(&p, &restricted),
            Err(Denial::Restricted { .. })
        ));
        let claims = vec!["admission".to_owned(), "legal_claims".to_owned()];
        let d = decide(
            &p,
            &who(ADMIN_ROLE),
            Action::SubjectRead,
            Some("legal_claims"),
        )
        .unwrap();
        assert_eq!(
            d.check_subject(
                &p,
                &SubjectFacts {
                    restricted_since: Some(0),
                    ..facts(&claims)
                }
            ),
            Ok(())
        );
    }

    #[test]
    fn minors_need_specific_clearance_except_to_withdraw() {
        let p = policy();
        let marketing = vec!["marketing".to_owned()];
        let minor = SubjectFacts {
            minor: true,
            ..facts(&marketing)
        };
        let d = decide(
            &p,
            &who("marketer"),
            Action::ConsentGrant,
            Some("marketing"),
        )
        .unwrap();
        assert!(matches!(
            d.check_subject(&p, &minor),
            Err(Denial::MinorData { .. })
        ));
        let d = decide(
            &p,
            &who("marketer"),
            Action::ConsentWithdraw,
            Some("marketing"),
        )
        .unwrap();
        assert_eq!(d.check_subject(&p, &minor), Ok(()));
    }

    #[test]
    fn enrollment_needs_consent_or_a_compatible_purpose() {
        let p = policy();
        let admission = vec!["admission".to_owned()];
        assert_eq!(
            enrollment_ground(&p, "account", &admission),
            Ok(EnrollGround::Compatible("admission".into()))
        );
        assert_eq!(
            enrollment_ground(&p, "marketing", &admission),
            Ok(EnrollGround::Consent)
        );
        assert!(enrollment_ground(&p, "admission", &["account".to_owned()]).is_err());
        let d = decide(
            &p,
            &who("marketer"),
            Action::SubjectEnroll,
            Some("marketing"),
        )
        .unwrap();
        assert!(matches!(
            d.check_subject(&p, &facts(&admission)),
            Err(Denial::NoSharedPurpose { .. })
        ));
    }

    #[test]
    fn a_guardian_acts_for_the_child_only_and_is_recorded_as_themselves() {
        let p = policy();
        let g = Caller::guardian_of("parent-1", "child-1");
        assert_eq!(g.key_id, "subject:parent-1");
        assert_eq!(g.acting_guardian(), Some("parent-1"));
        assert_eq!(Caller::data_subject("parent-1").acting_guardian(), None);
        for action in SELF_SERVICE {
            let purpose = (action.rule() == Rule::Purpose).then_some("marketing");
            assert!(decide_on(&p, &g, *action, purpose, Some("child-1")).is_ok());
            // Not even the guardian's own record under this principal.
            for other in ["parent-1", "child-2"] {
                assert_eq!(
                    decide_on(&p, &g, *action, purpose, Some(other)),
                    Err(Denial::OwnDataOnly)
                );
            }
        }
        assert_eq!(
            decide_on(&p, &g, Action::SubjectErase, None, Some("child-1")),
            Err(Denial::OwnDataOnly)
        );
    }

    #[test]
    fn a_data_subject_reaches_only_their_own_data_through_self_service() {
        let p = policy();
        let me = Caller::data_subject("s-1");
        assert_eq!(me.role, SUBJECT_ROLE);
        assert_eq!(me.key_id, "subject:s-1");
        for action in SELF_SERVICE {
            let purpose = (action.rule() == Rule::Purpose).then_some("marketing");
            let d = decide_on(&p, &me, *action, purpose, Some("s-1")).unwrap();
            assert!(d.own_data());
            assert_eq!(d.check_subject(&p, &facts(&[])), Ok(()));
            // Never another subject, and never without one.
            assert_eq!(
                decide_on(&p, &me, *action, purpose, Some("s-2")),
                Err(Denial::OwnDataOnly)
            );
            assert_eq!(decide(&p, &me, *action, purpose), Err(Denial::OwnDataOnly));
        }
        for (action, _) in RULES {
            if !SELF_SERVICE.contains(action) {
                assert_eq!(
                    decide_on(&p, &me, *action, Some("admission"), Some("s-1")),
                    Err(Denial::OwnDataOnly),
                    "{action:?}"
                );
            }
        }
        // A purpose the policy does not declare is refused as for anyone.
        assert!(matches!(
            decide_on(&p, &me, Action::ConsentGrant, Some("nope"), Some("s-1")),
            Err(Denial::UnknownPurpose { .. })
        ));
        // A restricted person still sees their data and withdraws, but grants nothing new.
        let restricted = SubjectFacts {
            restricted_since: Some(0),
            ..facts(&[])
        };
        let grant = decide_on(
            &p,
            &me,
            Action::ConsentGrant,
            Some("marketing"),
            Some("s-1"),
        )
        .unwrap();
        assert!(matches!(
            grant.check_subject(&p, &restricted),
            Err(Denial::RestrictedWrite { .. })
        ));
        let export = decide_on(&p, &me, Action::SubjectExport, None, Some("s-1")).unwrap();
        assert_eq!(export.check_subject(&p, &restricted), Ok(()));
        // A key holder whose role is spelled like the built-in one is no data subject.
        let impostor = who(SUBJECT_ROLE);
        assert!(decide_on(&p, &impostor, Action::SubjectExport, None, Some("s-1")).is_err());
    }
}
