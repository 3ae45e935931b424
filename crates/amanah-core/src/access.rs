//! Access decisions: role x purpose x category class -> allow / mask / deny, with a reason.
//! Pure functions of the policy; the vault calls them before touching any data, and records the
//! decision (allowed or denied) in the audit log.

use std::collections::BTreeMap;

use crate::policy::{DataClass, LegalBasis, Policy, ADMIN_ROLE};

/// How a granted category is shown to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Clear,
    Masked,
}

/// Why access was refused; the text is shown to the caller and written to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The policy has no such purpose; the purposes it declares (the caller's text is never
    /// repeated back: it may be anything).
    UnknownPurpose { declared: Vec<String> },
    /// The role is not granted the purpose.
    PurposeNotGranted { role: String, purpose: String },
    /// The role no longer exists in the current policy.
    UnknownRole(String),
    /// Administrative endpoints are for the built-in admin role only.
    AdminOnly,
    /// Tenants are run by the platform operator only.
    PlatformOnly,
    /// The platform operator runs tenants and never touches their data.
    TenantDataOnly,
    /// A data subject acting for themselves reaches their own data, through the self-service
    /// actions only.
    OwnDataOnly,
    /// The category exists but this role may not use it under this purpose.
    CategoryNotVisible { category: String, purpose: String },
    /// The subject is a minor: all their data is specific data (UU PDP Art. 4(2)(e)), which
    /// this role may not handle.
    MinorData { role: String },
    /// The action is done under a purpose and the call names none.
    PurposeRequired,
    /// The role lacks what the action needs (see `authz::RULES`).
    RoleMayNot {
        role: String,
        action: &'static str,
        needs: &'static str,
    },
    /// The subject's data was not collected or consented for this purpose.
    NotEnrolled { purpose: String },
    /// The role holds no purpose the subject is enrolled in.
    NoSharedPurpose { role: String },
    /// Enrolling in a purpose the subject already has.
    AlreadyEnrolled { purpose: String },
    /// Neither consent nor a compatible purpose allows adding this purpose.
    NoEnrollmentGround { purpose: String },
    /// Processing of the subject is restricted (since the date given); only the admin reads,
    /// under a restricted-use purpose.
    Restricted { since: String },
    /// Processing of the subject is restricted; only writes answering a request, by the DPO.
    RestrictedWrite { since: String },
}

impl Denial {
    pub fn unknown_purpose(policy: &Policy) -> Denial {
        Denial::UnknownPurpose {
            declared: policy.purposes.keys().cloned().collect(),
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::UnknownPurpose { declared } => write!(
                f,
                "the policy has no such purpose; it declares: {}",
                declared.join(", ")
            ),
            Denial::PurposeNotGranted { role, purpose } => {
                write!(f, "role {role:?} is not granted purpose {purpose:?}")
            }
            Denial::UnknownRole(r) => write!(f, "role {r:?} is not defined by the current policy"),
            Denial::AdminOnly => f.write_str("only the admin role may use administrative endpoints"),
            Denial::PlatformOnly => {
                f.write_str("only the platform operator's keys may manage organizations")
            }
            Denial::TenantDataOnly => f.write_str(
                "the platform operator manages organizations and never touches their data: use a key of the organization",
            ),
            Denial::OwnDataOnly => f.write_str(
                "a person signed in to the privacy portal reaches only their own data, through the portal's actions",
            ),
            Denial::CategoryNotVisible { category, purpose } => write!(
                f,
                "category {category:?} is not visible in clear to this role under purpose {purpose:?}"
            ),
            Denial::MinorData { role } => write!(
                f,
                "the subject is a minor: a child's data is specific data (UU PDP Art. 4(2)(e)) and role {role:?} \
                 may not handle specific data"
            ),
            Denial::PurposeRequired => f.write_str("this call needs a `purpose`"),
            Denial::RoleMayNot { role, action, needs } => {
                write!(f, "role {role:?} may not {action}: that needs {needs}")
            }
            Denial::NotEnrolled { purpose } => write!(
                f,
                "the subject's data was not collected or consented for purpose {purpose:?} (UU PDP Art. 16(2)(b)); \
                 enrol the subject in it first (POST /v1/subjects/{{id}}/purposes)"
            ),
            Denial::NoSharedPurpose { role } => write!(
                f,
                "role {role:?} holds no purpose this subject is enrolled in"
            ),
            Denial::AlreadyEnrolled { purpose } => {
                write!(f, "the subject is already enrolled in purpose {purpose:?}")
            }
            Denial::NoEnrollmentGround { purpose } => write!(
                f,
                "purpose {purpose:?} neither rests on consent nor is declared compatible (compatible_with) \
                 with a purpose the subject is enrolled in"
            ),
            Denial::Restricted { since } => write!(
                f,
                "processing of this subject is restricted since {since} (UU PDP Art. 41): only the admin may \
                 read it, under a purpose marked restricted_use"
            ),
            Denial::RestrictedWrite { since } => write!(
                f,
                "processing of this subject is restricted since {since} (UU PDP Art. 41): it accepts only \
                 changes that answer a data-subject request, made by a role that handles requests"
            ),
        }
    }
}

/// What a role may do under one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub purpose: String,
    pub basis: LegalBasis,
    /// Categories of the purpose the role may read, and how.
    pub readable: BTreeMap<String, Visibility>,
    /// Categories of the purpose the role may write (all of the purpose's categories).
    pub writable: Vec<String>,
    /// The role may handle specific data (and so a minor's data).
    pub specific: bool,
    /// The role, for refusals.
    pub role: String,
}

impl Grant {
    /// Whether the role may search by `category`: only where it sees the value in clear, so a
    /// search cannot confirm a value the role is not allowed to know.
    pub fn may_search(&self, category: &str) -> bool {
        self.readable.get(category) == Some(&Visibility::Clear)
    }

    /// The grant for a subject who is a minor: a child's data counts as specific data for every
    /// access decision, so only roles cleared for specific data keep it.
    pub fn for_minor(&self) -> Result<&Grant, Denial> {
        if self.specific {
            Ok(self)
        } else {
            Err(Denial::MinorData {
                role: self.role.clone(),
            })
        }
    }
}

/// Decides what `role` may do under `purpose` (see `authz::decide`, the only caller outside tests).
pub fn grant(policy: &Policy, role: &str, purpose: &str) -> Result<Grant, Denial> {
    let p = policy
        .purposes
        .get(purpose)
        .ok_or_else(|| Denial::unknown_purpose(policy))?;
    let (specific, mask): (bool, &[String]) = if role == ADMIN_ROLE {
        (true, &[])
    } else {
        let r = policy
            .roles
            .get(role)
            .ok_or_else(|| Denial::UnknownRole(role.to_owned()))?;
        if !r.purposes.iter().any(|r| r == purpose) {
            return Err(Denial::PurposeNotGranted {
                role: role.to_owned(),
                purpose: purpose.to_owned(),
            });
        }
        (r.specific, &r.mask)
    };
    let mut readable = BTreeMap::new();
    for name in &p.categories {
        let Some(cat) = policy.categories.get(name) else {
            continue;
        };
        if cat.class == DataClass::Specific && !specific {
            continue;
        }
        let vis = if mask.iter().any(|m| m == name) {
            Visibility::Masked
        } else {
            Visibility::Clear
        };
        readable.insert(name.clone(), vis);
    }
    Ok(Grant {
        purpose: purpose.to_owned(),
        basis: p.basis,
        readable,
        writable: p.categories.clone(),
        specific,
        role: role.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(crate::test_policies::CLINIC).unwrap()
    }

    fn who(role: &str) -> &str {
        role
    }

    #[test]
    fn officer_sees_general_data_with_nik_masked() {
        let g = grant(&policy(), who("officer"), "admission").unwrap();
        assert_eq!(g.basis, LegalBasis::Contract);
        assert_eq!(g.readable.get("full_name"), Some(&Visibility::Clear));
        assert_eq!(g.readable.get("nik"), Some(&Visibility::Masked));
        assert_eq!(g.readable.get("health"), None);
        assert!(!g.may_search("nik"));
        assert!(g.may_search("full_name"));
        assert_eq!(g.writable.len(), 6, "every category of the purpose");
    }

    #[test]
    fn specific_role_and_admin_see_specific_data() {
        let g = grant(&policy(), who("nurse"), "admission").unwrap();
        assert_eq!(g.readable.get("health"), Some(&Visibility::Clear));
        let g = grant(&policy(), who(ADMIN_ROLE), "admission").unwrap();
        assert_eq!(g.readable.get("health"), Some(&Visibility::Clear));
        assert_eq!(g.readable.get("nik"), Some(&Visibility::Clear));
    }

    #[test]
    fn only_roles_cleared_for_specific_data_handle_a_minor() {
        let officer = grant(&policy(), who("officer"), "admission").unwrap();
        assert_eq!(
            officer.for_minor(),
            Err(Denial::MinorData {
                role: "officer".into()
            })
        );
        let nurse = grant(&policy(), who("nurse"), "admission").unwrap();
        assert_eq!(nurse.for_minor(), Ok(&nurse));
        let admin = grant(&policy(), who(ADMIN_ROLE), "admission").unwrap();
        assert!(admin.for_minor().is_ok());
    }

    #[test]
    fn purposes_not_granted_or_unknown_are_denied() {
        assert_eq!(
            grant(&policy(), who("officer"), "marketing"),
            Err(Denial::PurposeNotGranted {
                role: "officer".into(),
                purpose: "marketing".into()
            })
        );
        assert_eq!(
            grant(&policy(), who("officer"), "nope"),
            Err(Denial::UnknownPurpose {
                declared: policy().purposes.keys().cloned().collect()
            })
        );
        assert_eq!(
            grant(&policy(), who("ghost"), "admission"),
            Err(Denial::UnknownRole("ghost".into()))
        );
        assert!(grant(&policy(), who(ADMIN_ROLE), "marketing").is_ok());
    }
}
