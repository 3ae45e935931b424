//! API tokens: 256 random bits, shown once; only their SHA-256 is stored. A fast hash is right
//! here (unlike passwords): the token has full entropy, so it cannot be guessed offline.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use zeroize::Zeroizing;

use crate::CryptoError;

const PREFIX: &str = "amk_";

/// A new token, e.g. `amk_3q2+7w...` (URL-safe base64).
pub fn generate() -> Result<Zeroizing<String>, CryptoError> {
    let bytes = Zeroizing::new(crate::random_bytes::<32>()?);
    Ok(Zeroizing::new(format!("{PREFIX}{}", B64.encode(*bytes))))
}

/// What is stored and looked up: lower-case hex SHA-256 of the token.
pub fn hash(token: &str) -> String {
    crate::digest::sha256_hex(token.as_bytes())
}

/// Cheap syntactic check, so garbage never reaches the store.
pub fn looks_valid(token: &str) -> bool {
    token.len() == PREFIX.len() + 43
        && token.starts_with(PREFIX)
        && token[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
}
