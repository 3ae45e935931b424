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
    /// Conflicts with the current state (a unique value already held, a legal hold...).
    #[error("{0}")]
    Conflict(String),
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
            Error::Conflict(_) => "conflict",
            Error::Internal(_) => "internal",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
