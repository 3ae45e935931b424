//! Disclosures to recipients (UU PDP Art. 32, 56): the four-eyes workflow (a requester, the
//! person in charge who approves, the account owner who authorizes), what a recipient may
//! receive, the transfer-abroad rule, and which categories a pseudonymized package leaves out.

use std::fmt;

use crate::fields::FieldType;
use crate::policy::{LegalBasis, Policy, Recipient, RecipientKind, TransferBasis};

/// How many times an authorized disclosure may be released unless the request says otherwise.
pub const DEFAULT_MAX_RELEASES: u32 = 3;
/// The most releases one disclosure may allow.
pub const MAX_RELEASES: u32 = 10;

/// Where a disclosure stands: `pending_approval -> approved -> authorized -> released`, or
/// `rejected` at either of the first two steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisclosureStatus {
    PendingApproval,
    Approved,
    Authorized,
    /// Released at least once (further releases allowed up to the bound).
    Released,
    Rejected,
}

impl DisclosureStatus {
    pub const ALL: &'static [DisclosureStatus] = &[
        DisclosureStatus::PendingApproval,
        DisclosureStatus::Approved,
        DisclosureStatus::Authorized,
        DisclosureStatus::Released,
        DisclosureStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DisclosureStatus::PendingApproval => "pending_approval",
            DisclosureStatus::Approved => "approved",
            DisclosureStatus::Authorized => "authorized",
            DisclosureStatus::Released => "released",
            DisclosureStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// A package may be generated (subject to the release bound).
    pub fn releasable(self) -> bool {
        matches!(
            self,
            DisclosureStatus::Authorized | DisclosureStatus::Released
        )
    }
}

impl fmt::Display for DisclosureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Approve,
    Authorize,
    Reject,
}

/// Who took the earlier steps of a disclosure (API key ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actors<'a> {
    pub requested_by: &'a str,
    pub approved_by: Option<&'a str>,
}

/// Why a step is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepDenial {
    /// The role lacks `approve_disclosures` / `authorize_disclosures` (403).
    RoleMayNot { role: String, flag: &'static str },
    /// The same key may not take two steps of one disclosure (403, four eyes).
    SameKey { step: &'static str },
    /// The disclosure is not in a state that allows the step (409).
    WrongState {
        status: DisclosureStatus,
        step: &'static str,
    },
}

impl fmt::Display for StepDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepDenial::RoleMayNot { role, flag } => write!(
                f,
                "role {role:?} may not do this: it needs a role with {flag} = true"
            ),
            StepDenial::SameKey { step } => write!(
                f,
                "four eyes: the key that requested or approved this disclosure may not {step} it"
            ),
            StepDenial::WrongState { status, step } => {
                let hint = match (status, *step) {
                    (DisclosureStatus::PendingApproval, "authorize") => {
                        "; the person in charge must approve it first"
                    }
                    _ => "",
                };
                write!(f, "a disclosure that is {status} cannot be {step}d{hint}")
            }
        }
    }
}

/// Decides whether a key of `role` (flags from the policy) may take `step` now. Returns the
/// status the disclosure moves to.
pub fn decide_step(
    step: Step,
    status: DisclosureStatus,
    actors: Actors<'_>,
    key_id: &str,
    role: &str,
    may_approve: bool,
    may_authorize: bool,
) -> Result<DisclosureStatus, StepDenial> {
    let role_may_not = |flag| StepDenial::RoleMayNot {
        role: role.to_owned(),
        flag,
    };
    let (name, to) = match step {
        Step::Approve => {
            if !may_approve {
                return Err(role_may_not("approve_disclosures"));
            }
            ("approve", DisclosureStatus::Approved)
        }
        Step::Authorize => {
            if !may_authorize {
                return Err(role_may_not("authorize_disclosures"));
            }
            ("authorize", DisclosureStatus::Authorized)
        }
        Step::Reject => {
            // The approver rejects a pending disclosure, the owner an approved one.
            let allowed = match status {
                DisclosureStatus::PendingApproval => may_approve,
                DisclosureStatus::Approved => may_authorize,
                _ => may_approve || may_authorize,
            };
            if !allowed {
                let flag = if status == DisclosureStatus::Approved {
                    "authorize_disclosures"
                } else {
                    "approve_disclosures"
                };
                return Err(role_may_not(flag));
            }
            ("reject", DisclosureStatus::Rejected)
        }
    };
    let from_ok = match step {
        Step::Approve => status == DisclosureStatus::PendingApproval,
        Step::Authorize => status == DisclosureStatus::Approved,
        Step::Reject => matches!(
            status,
            DisclosureStatus::PendingApproval | DisclosureStatus::Approved
        ),
    };
    if !from_ok {
        return Err(StepDenial::WrongState { status, step: name });
    }
    if step != Step::Reject && (key_id == actors.requested_by || actors.approved_by == Some(key_id))
    {
        return Err(StepDenial::SameKey { step: name });
    }
    Ok(to)
}

/// The categories a recipient may receive under `purpose`: the purpose's categories, narrowed
/// to the recipient's own list when it has one. Never a document category: a disclosure
/// releases field values only.
pub fn receivable<'p>(policy: &'p Policy, recipient: &Recipient, purpose: &str) -> Vec<&'p str> {
    let Some(p) = policy.purpose(purpose) else {
        return Vec::new();
    };
    p.categories
        .iter()
        .filter(|c| recipient.categories.is_empty() || recipient.categories.contains(c))
        .filter(|c| !policy.category(c).is_some_and(|cat| cat.is_document()))
        .map(String::as_str)
        .collect()
}

/// Why a disclosure may not even be requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestProblem {
    /// The policy declares no such recipient; the recipients it declares.
    UnknownRecipient {
        declared: Vec<String>,
    },
    /// The recipient is not declared for this purpose.
    PurposeNotDeclared {
        recipient: String,
        purpose: String,
    },
    /// Categories beyond what the recipient or the purpose allows (422 naming the declared ones
    /// and counting names the policy does not declare, which are not repeated back).
    Excluded {
        categories: Vec<String>,
        undeclared: usize,
        allowed: Vec<String>,
    },
    NoCategories,
    /// A foreign recipient without a transfer basis (UU PDP Art. 56).
    NoTransferBasis {
        recipient: String,
        country: String,
    },
    /// Authority orders rest on a legal obligation and carry the order's reference.
    AuthorityNeedsLegalObligation {
        recipient: String,
    },
    AuthorityNeedsReference {
        recipient: String,
    },
    /// Only authority orders may defer telling the subject.
    DeferralNotAllowed {
        recipient: String,
    },
}

impl RequestProblem {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            RequestProblem::UnknownRecipient { .. } | RequestProblem::NoTransferBasis { .. } => {
                "recipient"
            }
            RequestProblem::PurposeNotDeclared { .. }
            | RequestProblem::AuthorityNeedsLegalObligation { .. } => "purpose",
            RequestProblem::Excluded { .. } | RequestProblem::NoCategories => "categories",
            RequestProblem::AuthorityNeedsReference { .. } => "reference",
            RequestProblem::DeferralNotAllowed { .. } => "defer_notification",
        }
    }
}

impl fmt::Display for RequestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestProblem::UnknownRecipient { declared } => write!(
                f,
                "the policy declares no such recipient; it declares: {}",
                declared.join(", ")
            ),
            RequestProblem::PurposeNotDeclared { recipient, purpose } => write!(
                f,
                "recipient {recipient:?} is not declared for purpose {purpose:?}"
            ),
            RequestProblem::Excluded {
                categories,
                undeclared,
                allowed,
            } => {
                f.write_str("categories not allowed for this recipient and purpose: ")?;
                f.write_str(&categories.join(", "))?;
                if *undeclared > 0 {
                    if !categories.is_empty() {
                        f.write_str(", ")?;
                    }
                    write!(f, "{undeclared} name(s) the policy does not declare")?;
                }
                write!(f, "; allowed: {}", allowed.join(", "))
            }
            RequestProblem::NoCategories => f.write_str("`categories` must name at least one category"),
            RequestProblem::NoTransferBasis { recipient, country } => write!(
                f,
                "recipient {recipient:?} is outside Indonesia (country {country:?}) and has no transfer_basis (UU PDP Art. 56)"
            ),
            RequestProblem::AuthorityNeedsLegalObligation { recipient } => write!(
                f,
                "recipient {recipient:?} is an authority: disclose to it only under a purpose whose basis is legal_obligation"
            ),
            RequestProblem::AuthorityNeedsReference { recipient } => write!(
                f,
                "recipient {recipient:?} is an authority: `reference` must give the order's number"
            ),
            RequestProblem::DeferralNotAllowed { recipient } => write!(
                f,
                "telling the subject may be deferred only for an authority's order; {recipient:?} is not an authority"
            ),
        }
    }
}

/// What the caller asks to disclose, before any subject is looked at.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub recipient: &'a str,
    pub purpose: &'a str,
    pub categories: &'a [String],
    pub reference: Option<&'a str>,
    pub deferred: bool,
}

/// What checking an [`Ask`] establishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<'p> {
    pub recipient: &'p Recipient,
    /// The subjects' consent is needed: the purpose rests on consent, or the transfer abroad does.
    pub needs_consent: bool,
}

/// Checks a disclosure request against the policy (the purpose itself exists: the caller's
/// grant was checked first).
pub fn check<'p>(policy: &'p Policy, ask: Ask<'_>) -> Result<Checked<'p>, RequestProblem> {
    let recipient =
        policy
            .recipient(ask.recipient)
            .ok_or_else(|| RequestProblem::UnknownRecipient {
                declared: policy.recipients.keys().cloned().collect(),
            })?;
    if !recipient.purposes.iter().any(|p| p == ask.purpose) {
        return Err(RequestProblem::PurposeNotDeclared {
            recipient: recipient.name.clone(),
            purpose: ask.purpose.to_owned(),
        });
    }
    if recipient.is_foreign() && recipient.transfer_basis.is_none() {
        return Err(RequestProblem::NoTransferBasis {
            recipient: recipient.name.clone(),
            country: recipient.country.clone(),
        });
    }
    if ask.categories.is_empty() {
        return Err(RequestProblem::NoCategories);
    }
    let allowed = receivable(policy, recipient, ask.purpose);
    let mut excluded: Vec<String> = ask
        .categories
        .iter()
        .filter(|c| !allowed.contains(&c.as_str()))
        .cloned()
        .collect();
    excluded.sort();
    excluded.dedup();
    if !excluded.is_empty() {
        let before = excluded.len();
        excluded.retain(|c| policy.categories.contains_key(c));
        return Err(RequestProblem::Excluded {
            undeclared: before - excluded.len(),
            categories: excluded,
            allowed: allowed.iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    let basis = policy.purpose(ask.purpose).map(|p| p.basis);
    if recipient.kind == RecipientKind::Authority {
        if basis != Some(LegalBasis::LegalObligation) {
            return Err(RequestProblem::AuthorityNeedsLegalObligation {
                recipient: recipient.name.clone(),
            });
        }
        if ask.reference.is_none_or(|r| r.trim().is_empty()) {
            return Err(RequestProblem::AuthorityNeedsReference {
                recipient: recipient.name.clone(),
            });
        }
    } else if ask.deferred {
        return Err(RequestProblem::DeferralNotAllowed {
            recipient: recipient.name.clone(),
        });
    }
    Ok(Checked {
        recipient,
        needs_consent: needs_consent(policy, recipient, ask.purpose),
    })
}

/// A disclosure needs each subject's valid consent when its purpose rests on consent, or when
/// the transfer abroad does (UU PDP Art. 56(4)).
pub fn needs_consent(policy: &Policy, recipient: &Recipient, purpose: &str) -> bool {
    policy
        .purpose(purpose)
        .is_some_and(|p| p.basis == LegalBasis::Consent)
        || (recipient.is_foreign() && recipient.transfer_basis == Some(TransferBasis::Consent))
}

/// Field types that identify a person directly: a pseudonymized package leaves them out.
pub fn identifying(t: FieldType) -> bool {
    matches!(
        t,
        FieldType::Name | FieldType::Email | FieldType::Phone | FieldType::Nik | FieldType::Npwp
    )
}

/// The requested categories a package for `recipient` carries, and those it leaves out.
pub fn package_categories(
    policy: &Policy,
    recipient: &Recipient,
    categories: &[String],
) -> (Vec<String>, Vec<String>) {
    if !recipient.pseudonymize {
        return (categories.to_vec(), Vec::new());
    }
    categories.iter().cloned().partition(|c| {
        !policy
            .category(c)
            .is_some_and(|cat| identifying(cat.field_type))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test policy, where the mailer (Singapore, on consent) also serves admission and the
    /// ministry (an authority) may also be asked under admission.
    fn policy() -> Policy {
        let mut p = Policy::parse(crate::test_policies::TEST).unwrap();
        for name in ["mailer", "ministry"] {
            if let Some(r) = p.recipients.get_mut(name) {
                r.purposes.push("admission".to_owned());
            }
        }
        p
    }

    fn cats(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| (*s).to_owned()).collect()
    }

    fn ask<'a>(recipient: &'a str, purpose: &'a str, categories: &'a [String]) -> Ask<'a> {
        Ask {
            recipient,
            purpose,
            categories,
            reference: None,
            deferred: false,
        }
    }

    #[test]
    fn four_eyes_then_the_owner() {
        use DisclosureStatus::*;
        let a = Actors {
            requested_by: "k1",
            approved_by: None,
        };
        assert_eq!(
            decide_step(Step::Approve, PendingApproval, a, "k1", "pic", true, false),
            Err(StepDenial::SameKey { step: "approve" })
        );
        assert_eq!(
            decide_step(
                Step::Approve,
                PendingApproval,
                a,
                "k2",
                "clerk",
                false,
                false
            ),
            Err(StepDenial::RoleMayNot {
                role: "clerk".into(),
                flag: "approve_disclosures"
            })
        );
        assert_eq!(
            decide_step(Step::Approve, PendingApproval, a, "k2", "pic", true, false),
            Ok(Approved)
        );
        let err = decide_step(
            Step::Authorize,
            PendingApproval,
            a,
            "k3",
            "owner",
            false,
            true,
        )
        .unwrap_err();
        assert!(matches!(err, StepDenial::WrongState { .. }));
        assert!(err.to_string().contains("approve it first"), "{err}");
        let b = Actors {
            requested_by: "k1",
            approved_by: Some("k2"),
        };
        assert_eq!(
            decide_step(Step::Authorize, Approved, b, "k2", "both", true, true),
            Err(StepDenial::SameKey { step: "authorize" })
        );
        assert_eq!(
            decide_step(Step::Authorize, Approved, b, "k3", "owner", false, true),
            Ok(Authorized)
        );
        assert_eq!(
            decide_step(Step::Reject, Approved, b, "k3", "owner", false, true),
            Ok(Rejected)
        );
        assert!(decide_step(Step::Reject, Approved, b, "k4", "pic", true, false).is_err());
        assert!(decide_step(Step::Reject, Authorized, b, "k3", "owner", false, true).is_err());
        assert!(decide_step(Step::Approve, Rejected, a, "k2", "pic", true, false).is_err());
        assert!(Authorized.releasable() && Released.releasable() && !Approved.releasable());
        for s in DisclosureStatus::ALL {
            assert_eq!(DisclosureStatus::parse(s.as_str()), Some(*s));
        }
    }

    #[test]
    fn categories_beyond_the_recipient_are_named() {
        let p = policy();
        let c = cats(&["full_name", "email", "nik"]);
        let err = check(&p, ask("partner_university", "admission", &c)).unwrap_err();
        assert_eq!(
            err,
            RequestProblem::Excluded {
                categories: cats(&["email", "nik"]),
                undeclared: 0,
                allowed: cats(&["full_name", "birth_date"])
            }
        );
        assert_eq!(err.field(), "categories");
        // Names the policy does not declare are counted, never repeated back.
        let err = check(
            &p,
            ask(
                "partner_university",
                "admission",
                &cats(&["email", "siti@example.id"]),
            ),
        )
        .unwrap_err();
        assert_eq!(
            err,
            RequestProblem::Excluded {
                categories: cats(&["email"]),
                undeclared: 1,
                allowed: cats(&["full_name", "birth_date"])
            }
        );
        assert!(!err.to_string().contains("siti"), "{err}");
        let ok = check(
            &p,
            ask("partner_university", "admission", &cats(&["birth_date"])),
        )
        .unwrap();
        assert!(!ok.needs_consent);
        assert!(matches!(
            check(
                &p,
                ask("partner_university", "marketing", &cats(&["email"]))
            ),
            Err(RequestProblem::PurposeNotDeclared { .. })
        ));
        assert!(matches!(
            check(&p, ask("nobody", "admission", &c)),
            Err(RequestProblem::UnknownRecipient { .. })
        ));
        assert_eq!(
            check(&p, ask("partner_university", "admission", &[])).unwrap_err(),
            RequestProblem::NoCategories
        );
    }

    #[test]
    fn consent_is_needed_for_consent_purposes_and_consent_transfers() {
        let p = policy();
        let email = cats(&["email"]);
        assert!(
            check(&p, ask("mailer", "marketing", &email))
                .unwrap()
                .needs_consent
        );
        // Contract purpose, but the transfer abroad rests on consent.
        assert!(
            check(&p, ask("mailer", "admission", &email))
                .unwrap()
                .needs_consent
        );
    }

    #[test]
    fn foreign_recipient_without_a_basis_is_refused() {
        let mut p = policy();
        if let Some(r) = p.recipients.get_mut("partner_university") {
            r.transfer_basis = None;
        }
        let err = check(
            &p,
            ask("partner_university", "admission", &cats(&["birth_date"])),
        )
        .unwrap_err();
        assert!(matches!(err, RequestProblem::NoTransferBasis { .. }));
        assert!(err.to_string().contains("Art. 56"));
    }

    #[test]
    fn authority_orders() {
        let p = policy();
        let c = cats(&["nik"]);
        let mut a = ask("ministry", "admission", &c);
        assert!(matches!(
            check(&p, a),
            Err(RequestProblem::AuthorityNeedsLegalObligation { .. })
        ));
        a.purpose = "government_orders";
        assert!(matches!(
            check(&p, a),
            Err(RequestProblem::AuthorityNeedsReference { .. })
        ));
        a.reference = Some("B/123/XI/2026");
        a.deferred = true;
        assert!(check(&p, a).is_ok());
        let mut other = ask("partner_university", "admission", &c);
        other.categories = &[];
        let bd = cats(&["birth_date"]);
        other.categories = &bd;
        other.deferred = true;
        assert!(matches!(
            check(&p, other),
            Err(RequestProblem::DeferralNotAllowed { .. })
        ));
    }

    #[test]
    fn documents_are_never_receivable() {
        let source = crate::test_policies::TEST
            .replacen(
                "[purposes.admission]",
                "[categories.study_permit]\ntype = \"document\"\nclass = \"general\"\n\
                 media_types = [\"application/pdf\"]\nmax_size = \"10MB\"\n\
                 [purposes.admission]",
                1,
            )
            .replacen(
                "categories = [\"full_name\", \"nik\"]",
                "categories = [\"full_name\", \"nik\", \"study_permit\"]",
                1,
            );
        let p = Policy::parse(&source).unwrap();
        let ministry = &p.recipients["ministry"];
        assert!(
            ministry.categories.is_empty(),
            "whatever its purposes cover"
        );
        assert_eq!(
            receivable(&p, ministry, "government_orders"),
            ["full_name", "nik"]
        );
        let c = cats(&["nik", "study_permit"]);
        let mut a = ask("ministry", "government_orders", &c);
        a.reference = Some("B/123/XI/2026");
        assert_eq!(
            check(&p, a).unwrap_err(),
            RequestProblem::Excluded {
                categories: cats(&["study_permit"]),
                undeclared: 0,
                allowed: cats(&["full_name", "nik"])
            }
        );
    }

    #[test]
    fn pseudonymized_packages_leave_identifiers_out() {
        let p = policy();
        let (keep, out) = package_categories(
            &p,
            &p.recipients["partner_university"],
            &cats(&["full_name", "birth_date"]),
        );
        assert_eq!(keep, cats(&["birth_date"]));
        assert_eq!(out, cats(&["full_name"]));
        let (keep, out) = package_categories(&p, &p.recipients["mailer"], &cats(&["email"]));
        assert_eq!((keep, out), (cats(&["email"]), vec![]));
    }
}
