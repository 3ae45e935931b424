//! Anchored checkpoints of the audit chain. The signed head in the database proves that the
//! log was written by a holder of the audit key, but not that it is the *latest* log: a data
//! backup restored over the live file, or a log cut back together with an older signed head,
//! still verifies. A checkpoint, kept outside the data directory, says "at `time` the chain
//! had `seq` entries and its head hash was `head`", signed with the vault's Ed25519 checkpoint
//! key; a chain that later has fewer entries, or another entry at `seq`, was rolled back or
//! rewritten. Anyone with the public key can check the signature.

use amanah_crypto::audit::GENESIS;
use amanah_crypto::checkpoint::{CheckpointKey, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// The `format` of a checkpoint file.
pub const FORMAT: &str = "amanah-audit-checkpoint/1";
const DOMAIN: &[u8] = b"amanah/audit-checkpoint/v1";

/// What a checkpoint asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Number of entries in the chain (0: the empty chain).
    pub seq: u64,
    /// Hash of entry `seq` (the genesis hash, all zeros, for `seq` 0).
    pub head: [u8; 32],
    /// When it was taken, RFC 3339 (UTC).
    pub time: String,
    /// The store's id, when the store has one (SQLite).
    pub store_id: Option<String>,
}

impl Checkpoint {
    /// A checkpoint taken at `at_micros` (Unix time in microseconds).
    pub fn new(seq: u64, head: [u8; 32], at_micros: i64, store_id: Option<String>) -> Checkpoint {
        let time = crate::Timestamp::from_micros(at_micros).to_string();
        Checkpoint {
            seq,
            head,
            time,
            store_id,
        }
    }

    /// The bytes the signature covers: every field, length-prefixed, after a domain label.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&(self.time.len() as u32).to_be_bytes());
        out.extend_from_slice(self.time.as_bytes());
        match &self.store_id {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&(id.len() as u32).to_be_bytes());
                out.extend_from_slice(id.as_bytes());
            }
        }
        out
    }

    pub fn sign(self, key: &CheckpointKey) -> SignedCheckpoint {
        let signature = key.sign(&self.signed_bytes());
        SignedCheckpoint {
            checkpoint: self,
            public_key: key.public_key(),
            signature,
        }
    }
}

/// A checkpoint with its signature and the public key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The key the file says signed it: informative only, trust the key you were given.
    pub public_key: PublicKey,
    pub signature: Signature,
}

/// The JSON file: `{"format", "seq", "head", "time", "store_id"?, "public_key", "signature"}`,
/// hashes and keys in lowercase hex.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointFile {
    format: String,
    seq: u64,
    head: String,
    time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store_id: Option<String>,
    public_key: String,
    signature: String,
}

/// Why a checkpoint file or a chain does not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint file: {0}")]
    Malformed(String),
    #[error("the checkpoint was signed by another key (its public key {found} is not {expected})")]
    OtherKey { found: String, expected: String },
    #[error("the checkpoint's signature does not verify: it was altered or forged")]
    BadSignature,
    #[error("the chain has {chain_len} entries but the checkpoint of {time} saw {seq}: entries were removed or an older log was restored")]
    Truncated {
        seq: u64,
        chain_len: u64,
        time: String,
    },
    #[error("entry {seq} differs from the one the checkpoint of {time} saw: the log was rolled back or rewritten")]
    Diverged { seq: u64, time: String },
    #[error("the checkpoint belongs to another store ({found}, this store is {expected})")]
    OtherStore { found: String, expected: String },
}

impl SignedCheckpoint {
    /// Pretty JSON, ending in a newline.
    pub fn to_json(&self) -> String {
        let c = &self.checkpoint;
        let file = CheckpointFile {
            format: FORMAT.into(),
            seq: c.seq,
            head: hex::encode(c.head),
            time: c.time.clone(),
            store_id: c.store_id.clone(),
            public_key: hex::encode(self.public_key),
            signature: hex::encode(self.signature),
        };
        let mut s = serde_json::to_string_pretty(&file).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses a checkpoint file; checks its shape, not its signature.
    pub fn parse(bytes: &[u8]) -> Result<SignedCheckpoint, CheckpointError> {
        let file: CheckpointFile =
            serde_json::from_slice(bytes).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        if file.format != FORMAT {
            return Err(CheckpointError::Malformed(format!(
                "format {:?}, expected {FORMAT:?}",
                file.format
            )));
        }
        if file.time.parse::<crate::Timestamp>().is_err() {
            return Err(CheckpointError::Malformed(
                "`time` is not an RFC 3339 time".into(),
            ));
        }
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                seq: file.seq,
                head: hex_array(&file.head, "head")?,
                time: file.time,
                store_id: file.store_id,
            },
            public_key: hex_array(&file.public_key, "public_key")?,
            signature: hex_array(&file.signature, "signature")?,
        })
    }

    /// Checks the signature with `trusted`, the vault's public key as the auditor knows it.
    pub fn verify_signature(&self, trusted: &PublicKey) -> Result<(), CheckpointError> {
        if &self.public_key != trusted {
            return Err(CheckpointError::OtherKey {
                found: hex::encode(self.public_key),
                expected: hex::encode(trusted),
            });
        }
        if !amanah_crypto::checkpoint::verify(
            trusted,
            &self.checkpoint.signed_bytes(),
            &self.signature,
        ) {
            return Err(CheckpointError::BadSignature);
        }
        Ok(())
    }
}

/// Parses a public key as `amanah audit public-key` prints it: 64 hex digits (surrounding
/// whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    let bytes = hex::decode(text).map_err(|_| "not a hex-encoded public key".to_owned())?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("a public key is 32 bytes, this one is {}", bytes.len()))
}

fn hex_array<const N: usize>(s: &str, name: &str) -> Result<[u8; N], CheckpointError> {
    let bytes =
        hex::decode(s).map_err(|_| CheckpointError::Malformed(format!("`{name}` is not hex")))?;
    bytes.as_slice().try_into().map_err(|_| {
        CheckpointError::Malformed(format!("`{name}` is {} bytes, expected {N}", bytes.len()))
    })
}

/// Compares a verified chain with a checkpoint (whose signature was checked). `chain_len` is
/// the number of entries of the verified chain, `hash_at` the hash of its entry
/// `checkpoint.seq` when it has one (any value when `checkpoint.seq` is 0), `store_id` the
/// store's id when it has one.
pub fn compare(
    checkpoint: &Checkpoint,
    chain_len: u64,
    hash_at: Option<[u8; 32]>,
    store_id: Option<&str>,
) -> Result<(), CheckpointError> {
    if let (Some(found), Some(expected)) = (checkpoint.store_id.as_deref(), store_id) {
        if found != expected {
            return Err(CheckpointError::OtherStore {
                found: found.into(),
                expected: expected.into(),
            });
        }
    }
    if chain_len < checkpoint.seq {
        return Err(CheckpointError::Truncated {
            seq: checkpoint.seq,
            chain_len,
            time: checkpoint.time.clone(),
        });
    }
    let expected = if checkpoint.seq == 0 {
        Some(GENESIS)
    } else {
        hash_at
    };
    if expected != Some(checkpoint.head) {
        return Err(CheckpointError::Diverged {
            seq: checkpoint.seq,
            time: checkpoint.time.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amanah_crypto::KeyRing;

    fn signed(ring: &KeyRing) -> SignedCheckpoint {
        Checkpoint::new(7, [3; 32], 1_764_561_600_000_000, Some("store-1".into()))
            .sign(&ring.checkpoint_key().unwrap())
    }

    #[test]
    fn a_checkpoint_round_trips_and_verifies_with_the_public_key_only() {
        let ring = KeyRing::generate().unwrap();
        let cp = signed(&ring);
        assert_eq!(cp.checkpoint.time, "2025-12-01T04:00:00Z");
        let back = SignedCheckpoint::parse(cp.to_json().as_bytes()).unwrap();
        assert_eq!(back, cp);
        let public = parse_public_key(&format!(
            "{}\n",
            hex::encode(ring.checkpoint_key().unwrap().public_key())
        ))
        .unwrap();
        back.verify_signature(&public).unwrap();
    }

    #[test]
    fn altered_or_foreign_checkpoints_are_refused() {
        let ring = KeyRing::generate().unwrap();
        let public = ring.checkpoint_key().unwrap().public_key();
        let cp = signed(&ring);
        for alter in [
            |c: &mut SignedCheckpoint| c.checkpoint.seq += 1,
            |c: &mut SignedCheckpoint| c.checkpoint.head[0] ^= 1,
            |c: &mut SignedCheckpoint| c.checkpoint.time = "2025-12-01T04:00:01Z".into(),
            |c: &mut SignedCheckpoint| c.checkpoint.store_id = None,
        ] {
            let mut c = cp.clone();
            alter(&mut c);
            assert_eq!(
                c.verify_signature(&public),
                Err(CheckpointError::BadSignature)
            );
        }
        // Signed by another vault, with that vault's key written into the file.
        let other = signed(&KeyRing::generate().unwrap());
        assert!(matches!(
            other.verify_signature(&public),
            Err(CheckpointError::OtherKey { .. })
        ));
        // The file's key is replaced by the trusted one: the signature no longer matches.
        let mut swapped = other.clone();
        swapped.public_key = public;
        assert_eq!(
            swapped.verify_signature(&public),
            Err(CheckpointError::BadSignature)
        );
        for bad in [
            "",
            "{}",
            r#"{"format":"x","seq":1,"head":"00","time":"t","public_key":"00","signature":"00"}"#,
        ] {
            assert!(matches!(
                SignedCheckpoint::parse(bad.as_bytes()),
                Err(CheckpointError::Malformed(_))
            ));
        }
        assert!(parse_public_key("zz").is_err());
        assert!(parse_public_key("abcd").is_err());
    }

    #[test]
    fn truncation_rollback_and_other_stores_are_told_apart() {
        let cp = Checkpoint::new(7, [3; 32], 0, Some("s1".into()));
        assert_eq!(compare(&cp, 7, Some([3; 32]), Some("s1")), Ok(()));
        assert_eq!(compare(&cp, 9, Some([3; 32]), None), Ok(()));
        assert!(matches!(
            compare(&cp, 6, None, Some("s1")),
            Err(CheckpointError::Truncated {
                seq: 7,
                chain_len: 6,
                ..
            })
        ));
        assert!(matches!(
            compare(&cp, 9, Some([4; 32]), Some("s1")),
            Err(CheckpointError::Diverged { seq: 7, .. })
        ));
        assert!(matches!(
            compare(&cp, 7, Some([3; 32]), Some("s2")),
            Err(CheckpointError::OtherStore { .. })
        ));
        let empty = Checkpoint::new(0, GENESIS, 0, None);
        assert_eq!(compare(&empty, 0, None, None), Ok(()));
        assert_eq!(compare(&empty, 5, Some([9; 32]), None), Ok(()));
    }
}
