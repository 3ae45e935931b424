use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 bytes of key material: zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Secret(bytes)
    }

    pub fn generate() -> Result<Self, crate::CryptoError> {
        Ok(Secret(crate::random_bytes()?))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A subkey for one use, named by `info` (e.g. `amanah/bidx/email/v1`), by HKDF-SHA256.
    pub fn derive(&self, info: &str) -> Secret {
        use aws_lc_rs::hkdf;
        struct Len32;
        impl hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"amanah").extract(&self.0);
        let mut out = [0u8; 32];
        let info = [info.as_bytes()];
        // Expanding 32 bytes from SHA-256 can only fail for lengths over 255*32.
        if let Ok(okm) = prk.expand(&info, Len32) {
            let _ = okm.fill(&mut out);
        }
        Secret(out)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let s = Secret::from_bytes([0xAB; 32]);
        let shown = format!("{s:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn derive_separates_uses_and_is_deterministic() {
        let s = Secret::from_bytes([7; 32]);
        assert_eq!(s.derive("a"), s.derive("a"));
        assert_ne!(s.derive("a"), s.derive("b"));
        assert_ne!(s.derive("a").expose(), s.expose());
    }
}
