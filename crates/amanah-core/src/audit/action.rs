//! What an audit entry records as done: [`AuditAction`], one variant per name the log holds.

use crate::authz::Action;

macro_rules! audit_action_enum {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// What an audit entry records as done, by its name in the log (`subject.read`,
        /// `backup.restore`, …).
        ///
        /// One flat enum of names rather than "a caller's [`Action`] or a system action": the
        /// log holds names, and the two sets overlap. Several actions share a name
        /// ([`Action::SubjectImport`] is audited as `subject.create`, like
        /// [`Action::SubjectCreate`]), and the system writes some names callers also cause
        /// (`policy.apply` from `amanah policy apply` and from the API, `keys.rotate`,
        /// `retention.sweep`, `consent.stale`). With one variant per name, a stored name parses
        /// back to exactly one variant and writing it again gives the same text.
        ///
        /// Entries written for a caller carry `AuditAction::from(action)` (the vault's permit
        /// does that); the system's own entries name their variant: `retention.apply` (one
        /// per subject a sweep touches), `backup.create` and `backup.restore` (the command
        /// line), `recovery.purge`, `recovery.shred_key`, `recovery.orphan_keys` (crash
        /// recovery in the SQLite store), `tenant.purge` (a deleted organization's store
        /// removed, in the platform's chain), and `portal.sign_in` (a data subject proved a
        /// one-time code and opened a portal session; the actor is the subject itself) and
        /// `console.sign_in` (a key holder exchanged their API key for a console session).
        ///
        /// [`AuditAction::as_str`] (and `Display`, and serde) give the name stored in the log
        /// and covered by the chain's MAC; [`str::parse`] reads it back and refuses any other
        /// text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AuditAction {
            $(#[doc = concat!("`", $name, "`")] $variant),*
        }

        impl AuditAction {
            /// Every audit action, in the order of the list above.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),*];

            /// The action's name in the audit log.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name),*
                }
            }
        }

        impl std::str::FromStr for AuditAction {
            type Err = UnknownAuditAction;

            fn from_str(s: &str) -> Result<AuditAction, UnknownAuditAction> {
                match s {
                    $($name => Ok(AuditAction::$variant),)*
                    _ => Err(UnknownAuditAction),
                }
            }
        }
    };
}

// The one list of audit actions and their names: the enum, its names and its parser.
audit_action_enum! {
    SubjectCreate => "subject.create",
    SubjectRead => "subject.read",
    SubjectSearch => "subject.search",
    SubjectUpdate => "subject.update",
    SubjectRectify => "subject.rectify",
    SubjectEnroll => "subject.enroll",
    DocumentUpload => "document.upload",
    DocumentList => "document.list",
    DocumentRead => "document.read",
    SubjectExport => "subject.export",
    SubjectReveal => "subject.reveal",
    SubjectErase => "subject.erase",
    SubjectRestrict => "subject.restrict",
    SubjectUnrestrict => "subject.unrestrict",
    SubjectEnd => "subject.end",
    HoldCreate => "hold.create",
    HoldRead => "hold.read",
    HoldRelease => "hold.release",
    ConsentGrant => "consent.grant",
    ConsentWithdraw => "consent.withdraw",
    ConsentRead => "consent.read",
    ConsentStale => "consent.stale",
    ConsentContactable => "consent.contactable",
    RelationCreate => "relation.create",
    RelationRead => "relation.read",
    RequestCreate => "request.create",
    RequestRead => "request.read",
    RequestList => "request.list",
    RequestUpdate => "request.update",
    RetentionSweep => "retention.sweep",
    RetentionApply => "retention.apply",
    DisclosureRequest => "disclosure.request",
    DisclosureRead => "disclosure.read",
    DisclosureList => "disclosure.list",
    DisclosureApprove => "disclosure.approve",
    DisclosureAuthorize => "disclosure.authorize",
    DisclosureReject => "disclosure.reject",
    DisclosureRelease => "disclosure.release",
    BreachRecord => "breach.record",
    BreachRead => "breach.read",
    BreachList => "breach.list",
    BreachNotice => "breach.notice",
    BreachNotified => "breach.notified",
    RopaRead => "ropa.read",
    StatisticsRead => "statistics.read",
    OutboxRead => "outbox.read",
    AuditRead => "audit.read",
    AuditVerify => "audit.verify",
    ApikeyCreate => "apikey.create",
    ApikeyList => "apikey.list",
    ApikeyRevoke => "apikey.revoke",
    KeysRotate => "keys.rotate",
    PolicyRead => "policy.read",
    PolicyApply => "policy.apply",
    BackupCreate => "backup.create",
    BackupRestore => "backup.restore",
    RecoveryPurge => "recovery.purge",
    RecoveryShredKey => "recovery.shred_key",
    RecoveryOrphanKeys => "recovery.orphan_keys",
    TenantCreate => "tenant.create",
    TenantList => "tenant.list",
    TenantRead => "tenant.read",
    TenantSuspend => "tenant.suspend",
    TenantResume => "tenant.resume",
    TenantDelete => "tenant.delete",
    TenantExport => "tenant.export",
    TenantUpdate => "tenant.update",
    TenantPurge => "tenant.purge",
    PortalSignIn => "portal.sign_in",
    ConsoleSignIn => "console.sign_in",
}

/// A name that is not an [`AuditAction`]. Its message lists the valid names and never repeats
/// the text given (it may come from a caller or from a tampered row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAuditAction;

impl std::fmt::Display for UnknownAuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not an audit action; expected one of: ")?;
        for (i, a) in AuditAction::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownAuditAction {}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AuditAction, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl From<Action> for AuditAction {
    /// The name a caller's action is audited under.
    fn from(action: Action) -> AuditAction {
        match action {
            Action::SubjectCreate | Action::SubjectImport => AuditAction::SubjectCreate,
            Action::SubjectRead => AuditAction::SubjectRead,
            Action::SubjectSearch => AuditAction::SubjectSearch,
            Action::SubjectUpdate => AuditAction::SubjectUpdate,
            Action::SubjectRectify => AuditAction::SubjectRectify,
            Action::SubjectEnroll => AuditAction::SubjectEnroll,
            Action::DocumentUpload => AuditAction::DocumentUpload,
            Action::DocumentList => AuditAction::DocumentList,
            Action::DocumentRead => AuditAction::DocumentRead,
            Action::SubjectExport => AuditAction::SubjectExport,
            Action::SubjectReveal => AuditAction::SubjectReveal,
            Action::SubjectErase => AuditAction::SubjectErase,
            Action::SubjectRestrict => AuditAction::SubjectRestrict,
            Action::SubjectUnrestrict => AuditAction::SubjectUnrestrict,
            Action::SubjectEnd => AuditAction::SubjectEnd,
            Action::HoldCreate => AuditAction::HoldCreate,
            Action::HoldRead => AuditAction::HoldRead,
            Action::HoldRelease => AuditAction::HoldRelease,
            Action::ConsentGrant => AuditAction::ConsentGrant,
            Action::ConsentWithdraw => AuditAction::ConsentWithdraw,
            Action::ConsentRead => AuditAction::ConsentRead,
            Action::ConsentStale => AuditAction::ConsentStale,
            Action::ContactList => AuditAction::ConsentContactable,
            Action::RelationCreate => AuditAction::RelationCreate,
            Action::RelationRead => AuditAction::RelationRead,
            Action::RequestCreate => AuditAction::RequestCreate,
            Action::RequestRead => AuditAction::RequestRead,
            Action::RequestList => AuditAction::RequestList,
            Action::RequestUpdate => AuditAction::RequestUpdate,
            Action::RetentionSweep => AuditAction::RetentionSweep,
            Action::DisclosureRequest => AuditAction::DisclosureRequest,
            Action::DisclosureRead => AuditAction::DisclosureRead,
            Action::DisclosureList => AuditAction::DisclosureList,
            Action::DisclosureApprove => AuditAction::DisclosureApprove,
            Action::DisclosureAuthorize => AuditAction::DisclosureAuthorize,
            Action::DisclosureReject => AuditAction::DisclosureReject,
            Action::DisclosureRelease => AuditAction::DisclosureRelease,
            Action::BreachRecord => AuditAction::BreachRecord,
            Action::BreachRead => AuditAction::BreachRead,
            Action::BreachList => AuditAction::BreachList,
            Action::BreachNotices => AuditAction::BreachNotice,
            Action::BreachNotified => AuditAction::BreachNotified,
            Action::Ropa => AuditAction::RopaRead,
            Action::StatisticsRead => AuditAction::StatisticsRead,
            Action::OutboxRead => AuditAction::OutboxRead,
            Action::AuditRead => AuditAction::AuditRead,
            Action::AuditVerify => AuditAction::AuditVerify,
            Action::KeyCreate => AuditAction::ApikeyCreate,
            Action::KeyList => AuditAction::ApikeyList,
            Action::KeyRevoke => AuditAction::ApikeyRevoke,
            Action::KeksRotate => AuditAction::KeysRotate,
            Action::PolicyRead => AuditAction::PolicyRead,
            Action::PolicyApply => AuditAction::PolicyApply,
            Action::TenantCreate => AuditAction::TenantCreate,
            Action::TenantList => AuditAction::TenantList,
            Action::TenantRead => AuditAction::TenantRead,
            Action::TenantSuspend => AuditAction::TenantSuspend,
            Action::TenantResume => AuditAction::TenantResume,
            Action::TenantDelete => AuditAction::TenantDelete,
            Action::TenantExport => AuditAction::TenantExport,
            Action::TenantUpdate => AuditAction::TenantUpdate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    macro_rules! all_actions {
        ($($name:ident),* $(,)?) => {
            const ACTIONS: &[Action] = &[$(Action::$name),*];
        };
    }

    crate::with_actions!(all_actions);

    #[test]
    fn every_variant_round_trips_through_its_name_and_names_are_unique() {
        let mut names = BTreeSet::new();
        for &a in AuditAction::ALL {
            let name = a.as_str();
            assert!(names.insert(name), "{name} is used twice");
            assert_eq!(name.parse::<AuditAction>(), Ok(a), "{name}");
            assert_eq!(a.to_string(), name);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<AuditAction>(&json).unwrap(), a);
            // Names are `area.verb`: lowercase, one dot, nothing a log reader must escape.
            let (area, verb) = name.split_once('.').unwrap();
            assert!(!area.is_empty() && !verb.is_empty() && !verb.contains('.'));
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'));
        }
        assert_eq!(names.len(), AuditAction::ALL.len());
    }

    #[test]
    fn unknown_names_are_refused_without_being_repeated() {
        for bad in ["", "subject", "subject.", ".read", "subject.read\n"] {
            assert_eq!(
                bad.parse::<AuditAction>(),
                Err(UnknownAuditAction),
                "{bad:?}"
            );
        }
        for bad in [
            "Subject.read",
            "subject.read ",
            "subject.import",
            "apikey.delete",
            "subject.readx",
            "quokka.marker@example.id",
        ] {
            let msg = bad.parse::<AuditAction>().unwrap_err().to_string();
            assert!(!msg.contains(bad), "{msg} repeats {bad:?}");
            assert!(msg.contains("subject.read, ") && msg.ends_with("console.sign_in"));
        }
        assert!(serde_json::from_str::<AuditAction>("\"key.create\"").is_err());
    }

    /// Caller actions have names of their own but for an import (audited as a create); the
    /// names no caller action has are exactly the system's own entries.
    #[test]
    fn caller_actions_map_onto_their_names_and_the_rest_are_system_entries() {
        let mut shared: Vec<(AuditAction, Vec<Action>)> = Vec::new();
        for &a in ACTIONS {
            let audited = AuditAction::from(a);
            assert_eq!(a.name(), audited.as_str(), "{a:?}");
            match shared.iter_mut().find(|(n, _)| *n == audited) {
                Some((_, actions)) => actions.push(a),
                None => shared.push((audited, vec![a])),
            }
        }
        shared.retain(|(_, actions)| actions.len() > 1);
        assert_eq!(
            shared,
            [(
                AuditAction::SubjectCreate,
                vec![Action::SubjectCreate, Action::SubjectImport]
            )]
        );
        let caused: BTreeSet<AuditAction> = ACTIONS.iter().map(|&a| a.into()).collect();
        let system: Vec<&str> = AuditAction::ALL
            .iter()
            .filter(|a| !caused.contains(a))
            .map(|a| a.as_str())
            .collect();
        assert_eq!(
            system,
            [
                "retention.apply",
                "backup.create",
                "backup.restore",
                "recovery.purge",
                "recovery.shred_key",
                "recovery.orphan_keys",
                "tenant.purge",
                "portal.sign_in",
                "console.sign_in"
            ]
        );
    }
}
