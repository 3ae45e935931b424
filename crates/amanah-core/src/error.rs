//! The one domain error. Every shell (HTTP, CLI) maps it in one place. Messages never contain
//! personal data: they name fields, rules and ids, never values.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No or unknown credentials.
    #[error("authentication required: send a valid API key as `Authorization: Bearer <key>`")]
    Unauthenticated,
    /// Authenticated, but the policy does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// The purpose's legal basis is consent and the subject holds no valid consent for it
    /// (none, withdrawn, stale, or not given by a guardian for a minor).
    #[error("{0}")]
    ConsentRequired(String),
    #[error("{0}")]
    NotFound(String),
    /// It existed and was erased.
    #[error("{0}")]
    Gone(String),
    /// Malformed request (bad JSON, missing parameter).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid content; `field` names the offending field when there is one.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// Conflicts with the current state; the kind tells a client which state, without parsing
    /// the message.
    #[error("{1}")]
    Conflict(Conflict, String),
    /// A document larger than its category allows (`max_size`), refused while it streamed.
    #[error("{0}")]
    TooLarge(String),
    /// A document whose content is not of the type declared, or of a type its category does
    /// not accept.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A byte range that starts past the end of a document of this many bytes.
    #[error("the range asked for starts past the end of the document ({0} bytes)")]
    RangeNotSatisfiable(u64),
    /// The organization sent more requests per second than its quota allows; retry after
    /// this many seconds.
    #[error("too many requests: this organization's rate limit is reached; retry after {0} s")]
    RateLimited(u64),
    /// A failure of ours (storage, crypto). The message is for logs and stays generic.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The stable machine-readable code of this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::ConsentRequired(_) => "consent-required",
            Error::NotFound(_) => "not-found",
            Error::Gone(_) => "gone",
            Error::BadRequest(_) => "bad-request",
            Error::Invalid { .. } => "invalid",
            Error::Conflict(kind, _) => kind.code(),
            Error::TooLarge(_) => "payload-too-large",
            Error::UnsupportedMediaType(_) => "unsupported-media-type",
            Error::RangeNotSatisfiable(_) => "range-not-satisfiable",
            Error::RateLimited(_) => "rate-limited",
            Error::Internal(_) => "internal",
        }
    }
}

/// The state a request conflicts with. Each kind has a stable code, served as the problem's
/// `type` (`urn:amanah:problem:<code>`) and listed in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A unique category's value is already held by another subject.
    UniqueValueTaken,
    /// An active legal hold suspends erasure.
    LegalHoldActive,
    /// The request, disclosure, breach or restriction is not in a state this step applies to
    /// (including a concurrent step that got there first).
    InvalidTransition,
    /// The disclosure was already released as many times as it allows.
    ReleaseLimitReached,
    /// The policy in force no longer allows what was approved under an earlier one.
    PolicyChanged,
    /// The store is not (or already) initialized, or its signed audit head is missing or does
    /// not verify.
    StoreState,
    /// The organization holds as many subjects as its quota allows.
    SubjectQuotaReached,
    /// Another hosted organization already has this name.
    TenantNameTaken,
}

impl Conflict {
    /// Every kind, for documentation.
    pub const ALL: [Conflict; 8] = [
        Conflict::UniqueValueTaken,
        Conflict::LegalHoldActive,
        Conflict::InvalidTransition,
        Conflict::ReleaseLimitReached,
        Conflict::PolicyChanged,
        Conflict::StoreState,
        Conflict::SubjectQuotaReached,
        Conflict::TenantNameTaken,
    ];

    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Conflict::UniqueValueTaken => "unique-value-taken",
            Conflict::LegalHoldActive => "legal-hold-active",
            Conflict::InvalidTransition => "invalid-transition",
            Conflict::ReleaseLimitReached => "release-limit-reached",
            Conflict::PolicyChanged => "policy-changed",
            Conflict::StoreState => "store-state",
            Conflict::SubjectQuotaReached => "subject-quota-reached",
            Conflict::TenantNameTaken => "tenant-name-taken",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
