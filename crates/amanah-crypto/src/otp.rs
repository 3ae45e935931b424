//! One-time sign-in codes and session tokens for the privacy portal. A code is six random
//! digits, kept only as an HMAC-SHA256 under a random salt of its own (so equal codes of two
//! people share nothing and the stored form reveals nothing without trying all million codes
//! against that one salt); it is checked in constant time. Session ids and form tokens are 256
//! random bits.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use crate::{random_bytes, CryptoError};

/// Digits in a one-time code.
pub const CODE_DIGITS: usize = 6;

/// A code as stored: its salt and the HMAC of the code under it. No `Debug` of the code exists.
#[derive(Clone)]
pub struct CodeHash {
    salt: [u8; 16],
    tag: [u8; 32],
}

impl std::fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHash(..)")
    }
}

fn tag(salt: &[u8; 16], code: &str) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&key, code.as_bytes()).as_ref());
    out
}

impl CodeHash {
    /// The stored form of `code` under a fresh random salt.
    pub fn of(code: &str) -> Result<CodeHash, CryptoError> {
        let salt = random_bytes::<16>()?;
        Ok(CodeHash {
            tag: tag(&salt, code),
            salt,
        })
    }

    /// Whether `code` is the one stored (constant time in the code's content).
    pub fn matches(&self, code: &str) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.salt);
        hmac::verify(&key, code.as_bytes(), &self.tag).is_ok()
    }
}

/// A new code of [`CODE_DIGITS`] uniformly random digits, and its stored form.
pub fn new_code() -> Result<(Zeroizing<String>, CodeHash), CryptoError> {
    // Rejection sampling: 4_294_000_000 is the largest multiple of 10^6 below 2^32.
    loop {
        let n = u32::from_be_bytes(random_bytes::<4>()?);
        if n < 4_294_000_000 {
            let code = Zeroizing::new(format!("{:06}", n % 1_000_000));
            let hash = CodeHash::of(&code)?;
            return Ok((code, hash));
        }
    }
}

/// 256 random bits as 64 hex digits: a session id or a form (CSRF) token.
pub fn random_token() -> Result<String, CryptoError> {
    Ok(hex::encode(random_bytes::<32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_only_itself_and_salts_differ() {
        let (code, hash) = new_code().unwrap();
        assert_eq!(code.len(), CODE_DIGITS);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert!(hash.matches(&code));
        let other = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert!(!hash.matches(&other));
        assert!(!hash.matches(""));
        let again = CodeHash::of(&code).unwrap();
        assert_ne!(again.salt, hash.salt);
        assert_ne!(again.tag, hash.tag);
        assert!(again.matches(&code));
        assert_eq!(format!("{hash:?}"), "CodeHash(..)");
    }

    #[test]
    fn tokens_are_random_and_256_bits() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
