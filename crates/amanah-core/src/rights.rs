//! Data-subject requests (UU PDP Art. 5-13, 30-44; GDPR Art. 12-22): their kinds, the states a
//! request moves through, the reasons the law allows for a refusal, and deadlines.

use std::fmt;

/// What the subject asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    Access,
    Rectification,
    Erasure,
    Restriction,
    Portability,
    Objection,
}

/// Where a request stands. `received -> in_progress -> completed | refused`; a request may be
/// refused straight away (e.g. an identity that cannot be verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestStatus {
    Received,
    InProgress,
    Completed,
    Refused,
}

/// Grounds on which a request may be refused (UU PDP Art. 15 exemptions and Art. 37-44
/// conditions; GDPR Art. 12(5), 17(3), 23). The subject is told which one applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Keeping or processing the data is required by law (e.g. tax records).
    LegalObligation,
    /// Answering would disclose other people's personal data or harm their rights.
    OthersRights,
    /// The data is under a legal hold (litigation, investigation).
    LegalHold,
    /// The requester's identity could not be verified.
    UnverifiableIdentity,
    /// Needed to establish, exercise or defend legal claims.
    LegalClaims,
    /// National defence and security, law enforcement, public interest (UU PDP Art. 15).
    PublicInterest,
    /// Manifestly unfounded or excessive (e.g. repetitive) requests.
    ManifestlyUnfounded,
}

/// Why an officer reveals one masked value (the console shows values masked until then). The
/// reason is chosen from this list, never typed, so the audit entry that records it holds no
/// caller text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevealReason {
    /// Checking that the requester is who they say they are.
    VerifyIdentity,
    /// Answering the request (what is held, what was done).
    AnswerRequest,
    /// Comparing a stored value with a proposed correction.
    CheckRectification,
    /// Handling a complaint or an objection.
    HandleComplaint,
}

macro_rules! spelled {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($ty::$variant),)+ _ => None }
            }
            /// Every spelling, for error messages.
            pub fn spellings() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(RequestType {
    Access => "access",
    Rectification => "rectification",
    Erasure => "erasure",
    Restriction => "restriction",
    Portability => "portability",
    Objection => "objection",
});

spelled!(RequestStatus {
    Received => "received",
    InProgress => "in_progress",
    Completed => "completed",
    Refused => "refused",
});

spelled!(RefusalReason {
    LegalObligation => "legal_obligation",
    OthersRights => "others_rights",
    LegalHold => "legal_hold",
    UnverifiableIdentity => "unverifiable_identity",
    LegalClaims => "legal_claims",
    PublicInterest => "public_interest",
    ManifestlyUnfounded => "manifestly_unfounded",
});

spelled!(RevealReason {
    VerifyIdentity => "verify_identity",
    AnswerRequest => "answer_request",
    CheckRectification => "check_rectification",
    HandleComplaint => "handle_complaint",
});

impl RequestStatus {
    /// Still awaiting an answer.
    pub fn is_open(self) -> bool {
        matches!(self, RequestStatus::Received | RequestStatus::InProgress)
    }

    /// Whether a request may move from `self` to `to`.
    pub fn may_become(self, to: RequestStatus) -> bool {
        use RequestStatus::*;
        matches!(
            (self, to),
            (Received, InProgress)
                | (Received, Refused)
                | (InProgress, Completed)
                | (InProgress, Refused)
        )
    }
}

/// When a request received at `received_micros` is due: `deadline_hours` later (UU PDP: 3 x 24
/// hours for access, rectification, restriction).
pub fn due_at(received_micros: i64, deadline_hours: u32) -> i64 {
    received_micros.saturating_add(i64::from(deadline_hours) * 3_600_000_000)
}

/// Open and past its due date.
pub fn is_overdue(status: RequestStatus, due_micros: i64, now_micros: i64) -> bool {
    status.is_open() && now_micros > due_micros
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for t in RequestType::ALL {
            assert_eq!(RequestType::parse(t.as_str()), Some(*t));
        }
        for r in RefusalReason::ALL {
            assert_eq!(RefusalReason::parse(r.as_str()), Some(*r));
        }
        for r in RevealReason::ALL {
            assert_eq!(RevealReason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(RevealReason::parse("curiosity"), None);
        for s in RequestStatus::ALL {
            assert_eq!(RequestStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(RequestType::parse("Access"), None);
        assert!(RefusalReason::spellings().contains("legal_hold"));
    }

    #[test]
    fn transitions_follow_the_workflow() {
        use RequestStatus::*;
        assert!(Received.may_become(InProgress));
        assert!(Received.may_become(Refused));
        assert!(InProgress.may_become(Completed));
        assert!(InProgress.may_become(Refused));
        assert!(
            !Received.may_become(Completed),
            "work starts before it completes"
        );
        for done in [Completed, Refused] {
            for to in RequestStatus::ALL {
                assert!(!done.may_become(*to), "{done} is final");
            }
        }
        assert!(!InProgress.may_become(Received));
    }

    #[test]
    fn deadlines_and_overdue() {
        let h = 3_600_000_000;
        assert_eq!(due_at(0, 72), 72 * h);
        assert!(!is_overdue(RequestStatus::Received, 72 * h, 72 * h));
        assert!(is_overdue(RequestStatus::InProgress, 72 * h, 72 * h + 1));
        assert!(!is_overdue(RequestStatus::Completed, 72 * h, 100 * h));
    }
}
