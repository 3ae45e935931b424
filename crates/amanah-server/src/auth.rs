//! Authentication comes before anything else: the extractor runs first in every protected
//! handler, so a request without a valid key gets 401 whatever else is wrong with it. It also
//! picks the vault: a key belongs to one organization (or to the platform operator), and the
//! handler works in that organization's vault only.

use std::sync::Arc;

use amanah_core::Error;
use amanah_vault::{Principal, Vault};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::problem::Problem;
use crate::AppState;

/// The caller and the vault of the organization its key belongs to.
pub struct Authenticated(pub Principal, pub Scoped);

/// The one vault a request may touch: its key's organization's (or the platform's).
pub struct Scoped {
    pub vault: Arc<Vault>,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| {
                v.get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                    .map(|_| &v[7..])
            })
            .map(str::trim)
            .ok_or(Error::Unauthenticated)?;
        let (vault, who) = state.deployment.authenticate(token).await?;
        Ok(Authenticated(who, Scoped { vault }))
    }
}
