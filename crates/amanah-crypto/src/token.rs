//! API tokens: 256 random bits, shown once; only their SHA-256 is stored. A fast hash is right
//! here (unlike passwords): the token has full entropy, so it cannot be guessed offline.
//!
//! A token says whose store holds its hash, so a server hosting several organizations finds the
//! one to ask without asking the others: `amk_` + secret (the deployment's own organization),
//! `amt_` + tenant id (32 hex) + `_` + secret (a hosted organization), `amp_` + secret (the
//! platform operator).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use zeroize::Zeroizing;

use crate::CryptoError;

const PREFIX: &str = "amk_";
const TENANT_PREFIX: &str = "amt_";
const PLATFORM_PREFIX: &str = "amp_";
/// The secret part: 32 random bytes in URL-safe base64.
const SECRET_LEN: usize = 43;
/// A tenant id in a token: its UUID's 32 hex digits.
const TENANT_LEN: usize = 32;

/// Whose store holds a token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// The deployment's own organization.
    Deployment,
    /// A hosted organization, by the 32 hex digits of its id.
    Tenant(String),
    /// The platform operator.
    Platform,
}

/// A new token of the deployment's own organization, e.g. `amk_3q2-7w...`.
pub fn generate() -> Result<Zeroizing<String>, CryptoError> {
    generate_for(&Issuer::Deployment)
}

/// A new token for `issuer` (a tenant's id must be 32 hex digits).
pub fn generate_for(issuer: &Issuer) -> Result<Zeroizing<String>, CryptoError> {
    let bytes = Zeroizing::new(crate::random_bytes::<32>()?);
    let secret = Zeroizing::new(B64.encode(*bytes));
    Ok(Zeroizing::new(match issuer {
        Issuer::Deployment => format!("{PREFIX}{}", *secret),
        Issuer::Platform => format!("{PLATFORM_PREFIX}{}", *secret),
        Issuer::Tenant(id) => {
            if !is_tenant_id(id) {
                return Err(CryptoError::KeyRing("a tenant id is 32 hex digits".into()));
            }
            format!("{TENANT_PREFIX}{id}_{}", *secret)
        }
    }))
}

/// Whose token this is, when it has the form of one (else `None`: nobody's).
pub fn issuer(token: &str) -> Option<Issuer> {
    let secret_ok = |s: &str| {
        s.len() == SECRET_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(rest) = token.strip_prefix(PREFIX) {
        return secret_ok(rest).then_some(Issuer::Deployment);
    }
    if let Some(rest) = token.strip_prefix(PLATFORM_PREFIX) {
        return secret_ok(rest).then_some(Issuer::Platform);
    }
    let rest = token.strip_prefix(TENANT_PREFIX)?;
    let (id, secret) = (rest.get(..TENANT_LEN)?, rest.get(TENANT_LEN..)?);
    let secret = secret.strip_prefix('_')?;
    (is_tenant_id(id) && secret_ok(secret)).then(|| Issuer::Tenant(id.to_owned()))
}

fn is_tenant_id(id: &str) -> bool {
    id.len() == TENANT_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What is stored and looked up: lower-case hex SHA-256 of the token.
pub fn hash(token: &str) -> String {
    crate::digest::sha256_hex(token.as_bytes())
}

/// Cheap syntactic check, so garbage never reaches the store.
pub fn looks_valid(token: &str) -> bool {
    issuer(token).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_valid_and_hashed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(*a, *b);
        assert!(looks_valid(&a));
        assert!(!looks_valid("amk_short"));
        assert!(!looks_valid(&a.replace("amk_", "xyz_")));
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[4..]));
    }

    #[test]
    fn a_token_names_its_issuer_and_nothing_else_passes() {
        let id = "0193a1b2c3d4e5f60718293a4b5c6d7e".to_owned();
        let tenant = generate_for(&Issuer::Tenant(id.clone())).unwrap();
        assert_eq!(issuer(&tenant), Some(Issuer::Tenant(id.clone())));
        let platform = generate_for(&Issuer::Platform).unwrap();
        assert_eq!(issuer(&platform), Some(Issuer::Platform));
        assert_eq!(issuer(&generate().unwrap()), Some(Issuer::Deployment));
        assert!(generate_for(&Issuer::Tenant("ABC".into())).is_err());
        // Altered forms: another id length, upper case, a missing separator, a short secret.
        assert_eq!(issuer(&tenant.replacen('_', "", 2)), None);
        assert_eq!(issuer(&tenant.to_uppercase()), None);
        assert_eq!(issuer(&format!("amt_{id}_short")), None);
        assert_eq!(
            issuer(&format!("amt_{}_{}", &id[1..], &platform[4..])),
            None
        );
        assert_eq!(issuer("amt_é"), None);
        assert_eq!(issuer(""), None);
    }

    proptest::proptest! {
        #[test]
        fn issuer_never_panics(s in ".{0,120}") {
            let _ = issuer(&s);
        }
    }
}
