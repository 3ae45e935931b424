//! Streaming encryption of documents (certificates, passports, photos): a chunked AEAD that
//! encrypts and decrypts a document of any size without ever holding it whole.
//!
//! # Construction
//!
//! The STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online
//! Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015), instantiated exactly as
//! Tink's AES-GCM-HKDF streaming AEAD and age v1 do: a fresh key per document derived by HKDF
//! from a random salt, then AES-GCM over fixed-size chunks whose nonce is a per-document prefix,
//! a big-endian chunk counter and a last-chunk flag.
//!
//! ```text
//! object  = header || chunk_0 || chunk_1 || ... || chunk_{n-1}          (n >= 1)
//! header  = 0x01 (format version) || salt (32 random bytes) || nonce prefix (7 random bytes)
//! key     = HKDF-SHA256(ikm  = the subject's data key,
//!                       salt = salt,
//!                       info = "amanah/document/v1" || lp(tenant id, or empty)
//!                              || lp(subject id) || lp(category) || lp(document id))
//!                       -> 32 bytes, the document's AES-256-GCM key
//! chunk_i = AES-256-GCM(key, nonce_i, aad = header, plaintext_i) (ciphertext || 16-byte tag)
//! nonce_i = nonce prefix || u32be(i) || (0x01 if i = n-1 else 0x00)
//! ```
//!
//! `lp(x)` is `u32be(len(x)) || x`, so no two contexts share an encoding. Every plaintext chunk
//! is [`CHUNK_SIZE`] (64 KiB) bytes except the last, which holds 1 to 64 KiB; an empty document
//! is one empty final chunk (the only place an empty chunk may appear), so each plaintext length
//! has exactly one ciphertext length ([`ciphertext_len`], [`plaintext_len`]).
//!
//! What is detected, and why: a chunk moved to another position fails (its index is in the
//! nonce); dropping the final chunks fails (the chunk then read as final was sealed with flag 0);
//! appending after the final chunk fails (the final chunk is then read with flag 0); a chunk or
//! header from another document, another person, another tenant, another category or another
//! document id fails (another key: the salt and the whole context are HKDF inputs); a changed
//! header fails (it is the associated data of every chunk). Every failure is the same
//! uninformative [`CryptoError::Decrypt`].
//!
//! # Why not a crate
//!
//! Amanah needs AES-256-GCM through aws-lc-rs (the one cryptographic library of the project) and
//! the document's context bound into the key. `age` (beta) fixes ChaCha20-Poly1305 and its own
//! file format with recipients, and has no associated data; `aead-stream` (release candidate)
//! gives only the nonce arithmetic over RustCrypto's `aead` traits, which aws-lc-rs does not
//! implement (it would pull in a second AES-GCM); `tink-streaming-aead` (unofficial port) uses
//! RustCrypto's AES-GCM and Tink's keyset machinery. The construction itself is a few lines over
//! aws-lc-rs, so it is written here, with test vectors computed by an independent
//! implementation (Python `cryptography`, `testdata/stream_vectors.py`).
//!
//! Differences from Tink's format, all deliberate: the header starts with a format version
//! rather than the header length; every chunk holds 64 KiB of plaintext (Tink shortens the first
//! by the header's size) so that a byte offset maps to a chunk by one division; the header is
//! also each chunk's associated data (Tink binds it only through the key and nonce).

use std::ops::Range;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use crate::{CryptoError, Secret};

/// Plaintext bytes per chunk (every chunk but the last holds exactly this many).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// The AES-GCM tag that ends every ciphertext chunk.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full chunk.
pub const CIPHERTEXT_CHUNK_SIZE: usize = CHUNK_SIZE + TAG_LEN;
/// The header written before the first chunk: version, salt and nonce prefix.
pub const HEADER_LEN: usize = 1 + SALT_LEN + PREFIX_LEN;

const FORMAT_V1: u8 = 1;
const SALT_LEN: usize = 32;
const PREFIX_LEN: usize = 7;
const INFO_LABEL: &[u8] = b"amanah/document/v1";
/// Chunk indices are 32-bit: at most 2^32 chunks (256 TiB) per document.
const MAX_CHUNKS: u64 = 1 << 32;

/// Where a document belongs: every part is an input of its key, so its ciphertext opens only
/// under the same subject, category and document id (and the tenant of the data key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentContext<'a> {
    pub subject: &'a str,
    pub category: &'a str,
    pub document: &'a str,
}

impl DocumentContext<'_> {
    /// The HKDF info: the label, then each part length-prefixed.
    fn info(&self, scope: Option<&str>) -> Vec<u8> {
        let mut info = Vec::with_capacity(
            INFO_LABEL.len() + 16 + self.subject.len() + self.category.len() + self.document.len(),
        );
        info.extend_from_slice(INFO_LABEL);
        crate::envelope::push_prefixed(&mut info, scope.unwrap_or("").as_bytes());
        crate::envelope::push_prefixed(&mut info, self.subject.as_bytes());
        crate::envelope::push_prefixed(&mut info, self.category.as_bytes());
        crate::envelope::push_prefixed(&mut info, self.document.as_bytes());
        info
    }
}

/// One document's AES-256-GCM key and header. It opens single chunks by index (for byte ranges:
/// see [`Layout`]); [`Encryptor`] and [`Decryptor`] use it for whole streams.
pub struct DocumentKey {
    aead: LessSafeKey,
    header: [u8; HEADER_LEN],
}

impl std::fmt::Debug for DocumentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DocumentKey(<redacted>)")
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl DocumentKey {
    /// Derives the key of the document whose header is `header`; an unknown format version or a
    /// short header is refused.
    pub(crate) fn derive(
        secret: &Secret,
        scope: Option<&str>,
        context: &DocumentContext<'_>,
        header: &[u8],
    ) -> Result<Self, CryptoError> {
        let header: [u8; HEADER_LEN] = header
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(CryptoError::Decrypt)?;
        if header[0] != FORMAT_V1 {
            return Err(CryptoError::Decrypt);
        }
        let salt = &header[1..1 + SALT_LEN];
        let info = context.info(scope);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret.expose());
        let mut key = Zeroizing::new([0u8; 32]);
        prk.expand(&[&info], Len32)
            .and_then(|okm| okm.fill(&mut *key))
            .map_err(|_| CryptoError::Random)?;
        let aead = UnboundKey::new(&AES_256_GCM, &*key).map_err(|_| CryptoError::Random)?;
        Ok(DocumentKey {
            aead: LessSafeKey::new(aead),
            header,
        })
    }

    /// A fresh header (random salt and nonce prefix).
    pub(crate) fn fresh_header() -> Result<[u8; HEADER_LEN], CryptoError> {
        let mut header = crate::random_bytes::<HEADER_LEN>()?;
        header[0] = FORMAT_V1;
        Ok(header)
    }

    /// The header this key was derived from (the first [`HEADER_LEN`] bytes of the object).
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[..PREFIX_LEN].copy_from_slice(&self.header[1 + SALT_LEN..]);
        nonce[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        Nonce::assume_unique_for_key(nonce)
    }

    /// Seals `buf[start..]` (one chunk of plaintext) in place and appends its tag.
    fn seal_at(
        &self,
        index: u32,
        last: bool,
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                self.nonce(index, last),
                Aad::from(&self.header),
                &mut buf[start..],
            )
            .map_err(|_| CryptoError::Random)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens `buf[start..]` (one ciphertext chunk) in place and drops its tag; on failure
    /// `buf` is cut back to `start`, so no unverified byte is left in it.
    fn open_at(
        &self,
        index: u32,
        last: bool,
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), CryptoError> {
        let len = buf.len() - start;
        let canonical = if last {
            // An empty final chunk only for an empty document.
            (TAG_LEN..=CIPHERTEXT_CHUNK_SIZE).contains(&len) && (index == 0 || len > TAG_LEN)
        } else {
            len == CIPHERTEXT_CHUNK_SIZE
        };
        let opened = canonical
            && self
                .aead
                .open_in_place(
                    self.nonce(index, last),
                    Aad::from(&self.header),
                    &mut buf[start..],
                )
                .is_ok();
        if opened {
            buf.truncate(buf.len() - TAG_LEN);
            Ok(())
        } else {
            buf.truncate(start);
            Err(CryptoError::Decrypt)
        }
    }

    /// Decrypts the chunk `index` of this document (its bytes as given by
    /// [`Layout::chunk_ciphertext_range`]) and appends the plaintext to `out`. `last` says whether
    /// it is the document's final chunk ([`Layout::is_last`]): a wrong claim fails, so a
    /// truncated or extended object cannot pass for whole. On failure `out` is unchanged.
    pub fn open_chunk(
        &self,
        index: u32,
        last: bool,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        if chunk.len() > CIPHERTEXT_CHUNK_SIZE {
            return Err(CryptoError::Decrypt);
        }
        let start = out.len();
        out.extend_from_slice(chunk);
        self.open_at(index, last, out, start)
    }
}

/// The sizes of a document's ciphertext and where each chunk lies in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    plaintext_len: u64,
    chunks: u64,
}

/// Where a plaintext byte lies: in chunk `index`, at `offset` in its plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPosition {
    pub index: u32,
    pub offset: usize,
}

impl Layout {
    /// The layout of a document of `plaintext_len` bytes; `None` past 2^48 bytes.
    pub fn for_plaintext(plaintext_len: u64) -> Option<Layout> {
        let chunks = plaintext_len.div_ceil(CHUNK_SIZE as u64).max(1);
        (chunks <= MAX_CHUNKS).then_some(Layout {
            plaintext_len,
            chunks,
        })
    }

    /// The layout of a ciphertext of `ciphertext_len` bytes; `None` if no document encrypts to
    /// that length (a truncated object usually does not).
    pub fn for_ciphertext(ciphertext_len: u64) -> Option<Layout> {
        const FULL: u64 = CIPHERTEXT_CHUNK_SIZE as u64;
        const TAG: u64 = TAG_LEN as u64;
        let body = ciphertext_len.checked_sub(HEADER_LEN as u64)?;
        let (full, rest) = (body / FULL, body % FULL);
        let chunks = match rest {
            0 => full,
            r if r < TAG || (r == TAG && full > 0) => return None,
            _ => full + 1,
        };
        if chunks == 0 || chunks > MAX_CHUNKS {
            return None;
        }
        Some(Layout {
            plaintext_len: body - chunks * TAG,
            chunks,
        })
    }

    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    pub fn ciphertext_len(&self) -> u64 {
        HEADER_LEN as u64 + self.plaintext_len + self.chunks * TAG_LEN as u64
    }

    /// The number of chunks (at least one).
    pub fn chunk_count(&self) -> u64 {
        self.chunks
    }

    /// Whether chunk `index` is the final one.
    pub fn is_last(&self, index: u32) -> bool {
        u64::from(index) + 1 == self.chunks
    }

    /// The chunk holding plaintext byte `offset`; `None` past the end of the document.
    pub fn chunk_for_offset(&self, offset: u64) -> Option<ChunkPosition> {
        if offset >= self.plaintext_len {
            return None;
        }
        Some(ChunkPosition {
            index: u32::try_from(offset / CHUNK_SIZE as u64).ok()?,
            offset: (offset % CHUNK_SIZE as u64) as usize,
        })
    }

    /// The bytes of chunk `index` in the ciphertext (tag included); `None` past the last chunk.
    pub fn chunk_ciphertext_range(&self, index: u32) -> Option<Range<u64>> {
        let index = u64::from(index);
        if index >= self.chunks {
            return None;
        }
        let start = HEADER_LEN as u64 + index * CIPHERTEXT_CHUNK_SIZE as u64;
        let end = (start + CIPHERTEXT_CHUNK_SIZE as u64).min(self.ciphertext_len());
        Some(start..end)
    }

    /// The plaintext bytes chunk `index` decrypts to; `None` past the last chunk.
    pub fn chunk_plaintext_range(&self, index: u32) -> Option<Range<u64>> {
        let index = u64::from(index);
        if index >= self.chunks {
            return None;
        }
        let start = index * CHUNK_SIZE as u64;
        Some(start..(start + CHUNK_SIZE as u64).min(self.plaintext_len))
    }
}

/// The stored length of a document of `plaintext_len` bytes (for a `Content-Length`); `None`
/// past 2^48 bytes.
pub fn ciphertext_len(plaintext_len: u64) -> Option<u64> {
    Layout::for_plaintext(plaintext_len).map(|l| l.ciphertext_len())
}

/// The plaintext length of a stored object of `ciphertext_len` bytes; `None` if no document
/// encrypts to that length.
pub fn plaintext_len(ciphertext_len: u64) -> Option<u64> {
    Layout::for_ciphertext(ciphertext_len).map(|l| l.plaintext_len())
}

/// Encrypts one document fed in slices of any size: [`Encryptor::update`] appends the
/// ciphertext of every chunk known not to be the last (the header first), [`Encryptor::finish`]
/// the final chunk. It holds at most one chunk of plaintext (zeroized when dropped). After an
/// error the document is unusable: drop it and the output.
pub struct Encryptor {
    key: DocumentKey,
    pending: Zeroizing<Vec<u8>>,
    index: u32,
    header_written: bool,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("chunk", &self.index)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    pub(crate) fn new(key: DocumentKey) -> Self {
        Encryptor {
            key,
            pending: Zeroizing::new(Vec::with_capacity(CHUNK_SIZE)),
            index: 0,
            header_written: false,
        }
    }

    /// The header (also the first bytes [`Encryptor::update`] or [`Encryptor::finish`] emits).
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        self.key.header()
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(&self.key.header);
            self.header_written = true;
        }
    }

    /// Seals `out[start..]` as the next chunk.
    fn seal_next(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        last: bool,
    ) -> Result<(), CryptoError> {
        if !last && self.index == u32::MAX {
            out.truncate(start);
            return Err(CryptoError::TooLong);
        }
        self.key.seal_at(self.index, last, out, start)?;
        self.index = self.index.wrapping_add(1);
        Ok(())
    }

    /// Feeds plaintext; appends to `out` the ciphertext that is ready (the header on the first
    /// call, then whole chunks; the last 64 KiB or less stay inside until more comes or
    /// [`Encryptor::finish`]). Fails only past 2^48 bytes.
    pub fn update(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.write_header(out);
        while !plaintext.is_empty() {
            if self.pending.len() == CHUNK_SIZE {
                // More follows, so the held chunk is not the last.
                let start = out.len();
                out.extend_from_slice(&self.pending);
                self.pending.clear();
                self.seal_next(out, start, false)?;
            }
            if self.pending.is_empty() && plaintext.len() > CHUNK_SIZE {
                // A whole chunk with more after it: sealed straight from the input.
                let (chunk, rest) = plaintext.split_at(CHUNK_SIZE);
                let start = out.len();
                out.extend_from_slice(chunk);
                self.seal_next(out, start, false)?;
                plaintext = rest;
                continue;
            }
            let take = (CHUNK_SIZE - self.pending.len()).min(plaintext.len());
            let (part, rest) = plaintext.split_at(take);
            self.pending.extend_from_slice(part);
            plaintext = rest;
        }
        Ok(())
    }

    /// Ends the document: appends the final chunk (and the header, for an empty document fed
    /// nothing). The object is complete once this returns.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.write_header(out);
        let start = out.len();
        out.extend_from_slice(&self.pending);
        self.seal_next(out, start, true)
    }
}

enum DecryptorState {
    /// Waiting for the header; the key is derived once it is whole.
    Header {
        secret: Secret,
        scope: Option<std::sync::Arc<str>>,
        context: OwnedContext,
        header: Vec<u8>,
    },
    Body {
        key: DocumentKey,
        pending: Vec<u8>,
        index: u32,
    },
    Failed,
}

struct OwnedContext {
    subject: String,
    category: String,
    document: String,
}

/// Decrypts one document fed in slices of any size: [`Decryptor::update`] appends the
/// plaintext of each chunk once verified, [`Decryptor::finish`] that of the final chunk, and
/// fails if the final chunk never came. It holds at most one chunk of ciphertext.
///
/// Plaintext emitted before a failure was verified chunk by chunk, but the document is known
/// whole (not truncated) only when [`Decryptor::finish`] succeeds: a caller streaming it onward
/// must abort the transfer on any error. After an error every call fails.
pub struct Decryptor {
    state: DecryptorState,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            DecryptorState::Header { .. } => "header",
            DecryptorState::Body { .. } => "body",
            DecryptorState::Failed => "failed",
        };
        f.debug_struct("Decryptor")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    pub(crate) fn new(
        secret: Secret,
        scope: Option<std::sync::Arc<str>>,
        context: &DocumentContext<'_>,
    ) -> Self {
        Decryptor {
            state: DecryptorState::Header {
                secret,
                scope,
                context: OwnedContext {
                    subject: context.subject.to_owned(),
                    category: context.category.to_owned(),
                    document: context.document.to_owned(),
                },
                header: Vec::with_capacity(HEADER_LEN),
            },
        }
    }

    /// Feeds ciphertext; appends to `out` the plaintext of every chunk verified so far (a chunk
    /// is opened once a byte past it arrives, since only then is it known not to be the last).
    /// On failure `out` keeps only the plaintext of earlier, verified chunks.
    pub fn update(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let result = self.feed(ciphertext, out);
        if result.is_err() {
            self.state = DecryptorState::Failed;
        }
        result
    }

    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if let DecryptorState::Header {
            secret,
            scope,
            context,
            header,
        } = &mut self.state
        {
            let take = (HEADER_LEN - header.len()).min(input.len());
            header.extend_from_slice(&input[..take]);
            input = &input[take..];
            if header.len() < HEADER_LEN {
                return Ok(());
            }
            let context = DocumentContext {
                subject: &context.subject,
                category: &context.category,
                document: &context.document,
            };
            let key = DocumentKey::derive(secret, scope.as_deref(), &context, header)?;
            self.state = DecryptorState::Body {
                key,
                pending: Vec::with_capacity(CIPHERTEXT_CHUNK_SIZE),
                index: 0,
            };
        }
        let DecryptorState::Body {
            key,
            pending,
            index,
        } = &mut self.state
        else {
            return Err(CryptoError::Decrypt);
        };
        while !input.is_empty() {
            if pending.len() == CIPHERTEXT_CHUNK_SIZE {
                // More follows, so the held chunk must not be the last.
                let start = out.len();
                out.extend_from_slice(pending);
                pending.clear();
                open_next(key, index, out, start)?;
            }
            if pending.is_empty() && input.len() > CIPHERTEXT_CHUNK_SIZE {
                let (chunk, rest) = input.split_at(CIPHERTEXT_CHUNK_SIZE);
                let start = out.len();
                out.extend_from_slice(chunk);
                open_next(key, index, out, start)?;
                input = rest;
                continue;
            }
            let take = (CIPHERTEXT_CHUNK_SIZE - pending.len()).min(input.len());
            let (part, rest) = input.split_at(take);
            pending.extend_from_slice(part);
            input = rest;
        }
        Ok(())
    }

    /// Ends the document: opens what is held as the final chunk and appends its plaintext.
    /// Fails if the header or the final chunk never came, or the document was cut or extended.
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let DecryptorState::Body {
            key,
            pending,
            index,
        } = self.state
        else {
            return Err(CryptoError::Decrypt);
        };
        let start = out.len();
        out.extend_from_slice(&pending);
        key.open_at(index, true, out, start)
    }
}

/// Opens `out[start..]` as the non-final chunk `index` and moves to the next index.
fn open_next(
    key: &DocumentKey,
    index: &mut u32,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), CryptoError> {
    // A chunk followed by another cannot carry the largest index.
    if *index == u32::MAX {
        out.truncate(start);
        return Err(CryptoError::Decrypt);
    }
    key.open_at(*index, false, out, start)?;
    *index += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataKey;
    use proptest::prelude::*;

    const CTX: DocumentContext<'static> = DocumentContext {
        subject: "subject-1",
        category: "passport",
        document: "doc-1",
    };

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    /// Encrypts `plain` fed in slices of the sizes in `slices` (cycled; 0 means "all at once").
    fn encrypt(
        key: &DataKey,
        ctx: &DocumentContext<'_>,
        plain: &[u8],
        slices: &[usize],
    ) -> Vec<u8> {
        let mut enc = key.document_encryptor(ctx).unwrap();
        let mut out = Vec::new();
        feed(plain, slices, |s| enc.update(s, &mut out).unwrap());
        enc.finish(&mut out).unwrap();
        out
    }

    fn decrypt(
        key: &DataKey,
        ctx: &DocumentContext<'_>,
        ct: &[u8],
        slices: &[usize],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut dec = key.document_decryptor(ctx);
        let mut out = Vec::new();
        let mut failed = None;
        feed(ct, slices, |s| {
            if failed.is_none() {
                failed = dec.update(s, &mut out).err();
            }
        });
        match failed {
            Some(e) => Err(e),
            None => dec.finish(&mut out).map(|()| out),
        }
    }

    fn feed(mut data: &[u8], slices: &[usize], mut f: impl FnMut(&[u8])) {
        let mut sizes = slices.iter().copied().cycle();
        while !data.is_empty() {
            let n = match sizes.next() {
                Some(0) | None => data.len(),
                Some(n) => n.min(data.len()),
            };
            let (head, rest) = data.split_at(n);
            f(head);
            data = rest;
        }
    }

    fn chunk(ct: &[u8], index: u32) -> Vec<u8> {
        let layout = Layout::for_ciphertext(ct.len() as u64).unwrap();
        let r = layout.chunk_ciphertext_range(index).unwrap();
        ct[r.start as usize..r.end as usize].to_vec()
    }

    /// A document of three chunks (two full, one partial) and its ciphertext.
    fn three_chunks(key: &DataKey, ctx: &DocumentContext<'_>) -> (Vec<u8>, Vec<u8>) {
        let plain = pattern(2 * CHUNK_SIZE + 100);
        let ct = encrypt(key, ctx, &plain, &[0]);
        assert_eq!(
            Layout::for_ciphertext(ct.len() as u64)
                .unwrap()
                .chunk_count(),
            3
        );
        (plain, ct)
    }

    /// The header followed by the given chunks.
    fn assemble(ct: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = ct[..HEADER_LEN].to_vec();
        for c in chunks {
            out.extend_from_slice(c);
        }
        out
    }

    #[test]
    fn round_trips_at_the_chunk_boundaries() {
        let key = DataKey::generate(1).unwrap();
        for size in [0, 1, 65535, 65536, 65537, 3 * 65536] {
            let plain = pattern(size);
            for slices in [&[0][..], &[1], &[7, 65536, 3], &[65536], &[65537]] {
                if size > 70_000 && slices == [1] {
                    continue; // one byte at a time is covered by the smaller sizes
                }
                let ct = encrypt(&key, &CTX, &plain, slices);
                assert_eq!(ct.len() as u64, ciphertext_len(size as u64).unwrap());
                assert_eq!(plaintext_len(ct.len() as u64), Some(size as u64));
                for back in [&[0][..], &[1], &[13, 65552, 40], &[65553]] {
                    if size > 70_000 && back == [1] {
                        continue;
                    }
                    assert_eq!(decrypt(&key, &CTX, &ct, back).unwrap(), plain, "{size}");
                }
            }
        }
    }

    #[test]
    fn an_empty_document_is_one_empty_final_chunk() {
        let key = DataKey::generate(1).unwrap();
        let ct = encrypt(&key, &CTX, b"", &[0]);
        assert_eq!(ct.len(), HEADER_LEN + TAG_LEN);
        // finish() alone writes the header too.
        let mut out = Vec::new();
        key.document_encryptor(&CTX)
            .unwrap()
            .finish(&mut out)
            .unwrap();
        assert_eq!(out.len(), HEADER_LEN + TAG_LEN);
        assert_eq!(decrypt(&key, &CTX, &out, &[0]).unwrap(), b"");
    }

    #[test]
    fn each_document_gets_a_fresh_header() {
        let key = DataKey::generate(1).unwrap();
        let a = encrypt(&key, &CTX, b"same", &[0]);
        let b = encrypt(&key, &CTX, b"same", &[0]);
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN]);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        assert_eq!(a[0], FORMAT_V1);
    }

    #[test]
    fn the_encryptor_emits_every_chunk_known_not_to_be_last() {
        let key = DataKey::generate(1).unwrap();
        let mut enc = key.document_encryptor(&CTX).unwrap();
        let mut out = Vec::new();
        enc.update(&pattern(CHUNK_SIZE), &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN, "a full chunk may still be the last");
        enc.update(b"x", &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + CIPHERTEXT_CHUNK_SIZE);
        enc.finish(&mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + CIPHERTEXT_CHUNK_SIZE + 1 + TAG_LEN);
    }

    #[test]
    fn the_decryptor_emits_verified_chunks_as_they_come() {
        let key = DataKey::generate(1).unwrap();
        let (plain, ct) = three_chunks(&key, &CTX);
        let mut dec = key.document_decryptor(&CTX);
        let mut out = Vec::new();
        dec.update(&ct[..HEADER_LEN + CIPHERTEXT_CHUNK_SIZE + 1], &mut out)
            .unwrap();
        assert_eq!(out, plain[..CHUNK_SIZE]);
        dec.update(&ct[HEADER_LEN + CIPHERTEXT_CHUNK_SIZE + 1..], &mut out)
            .unwrap();
        assert_eq!(out, plain[..2 * CHUNK_SIZE]);
        dec.finish(&mut out).unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn reordering_chunks_is_detected() {
        let key = DataKey::generate(1).unwrap();
        let (_, ct) = three_chunks(&key, &CTX);
        let (c0, c1, c2) = (chunk(&ct, 0), chunk(&ct, 1), chunk(&ct, 2));
        let swapped = assemble(&ct, &[c1, c0, c2]);
        assert_eq!(swapped.len(), ct.len());
        assert_eq!(
            decrypt(&key, &CTX, &swapped, &[0]),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn truncation_is_detected() {
        let key = DataKey::generate(1).unwrap();
        let (_, ct) = three_chunks(&key, &CTX);
        let (c0, c1, c2) = (chunk(&ct, 0), chunk(&ct, 1), chunk(&ct, 2));
        // Dropping the last chunk leaves a well-formed length: only the flag tells.
        let no_last = assemble(&ct, &[c0.clone(), c1.clone()]);
        assert!(Layout::for_ciphertext(no_last.len() as u64).is_some());
        assert_eq!(
            decrypt(&key, &CTX, &no_last, &[0]),
            Err(CryptoError::Decrypt)
        );
        let no_middle = assemble(&ct, &[c0.clone(), c2]);
        assert_eq!(
            decrypt(&key, &CTX, &no_middle, &[0]),
            Err(CryptoError::Decrypt)
        );
        // Cut anywhere: inside a chunk, inside a tag, inside the header, nothing at all.
        for cut in [
            ct.len() - 1,
            ct.len() - TAG_LEN,
            HEADER_LEN + CIPHERTEXT_CHUNK_SIZE + 5,
            HEADER_LEN + 3,
            HEADER_LEN,
            20,
            0,
        ] {
            assert_eq!(
                decrypt(&key, &CTX, &ct[..cut], &[0]),
                Err(CryptoError::Decrypt),
                "{cut}"
            );
        }
        // A document whose final chunk lost its flag: every chunk sealed as non-final.
        let dk = DocumentKey::derive(&key.secret_for_tests(), None, &CTX, &ct).unwrap();
        let mut unflagged = ct[..HEADER_LEN].to_vec();
        for (i, part) in pattern(2 * CHUNK_SIZE).chunks(CHUNK_SIZE).enumerate() {
            let start = unflagged.len();
            unflagged.extend_from_slice(part);
            dk.seal_at(i as u32, false, &mut unflagged, start).unwrap();
        }
        assert_eq!(
            decrypt(&key, &CTX, &unflagged, &[0]),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn extension_is_detected() {
        let key = DataKey::generate(1).unwrap();
        let (_, ct) = three_chunks(&key, &CTX);
        let (c0, c1, c2) = (chunk(&ct, 0), chunk(&ct, 1), chunk(&ct, 2));
        let again = assemble(&ct, &[c0.clone(), c1.clone(), c2.clone(), c2.clone()]);
        assert_eq!(decrypt(&key, &CTX, &again, &[0]), Err(CryptoError::Decrypt));
        let mut garbage = ct.clone();
        garbage.push(0);
        assert_eq!(
            decrypt(&key, &CTX, &garbage, &[0]),
            Err(CryptoError::Decrypt)
        );
        // A genuine chunk sealed (with the document's key) after a final one is refused: the
        // final chunk is then opened as non-final.
        let dk = DocumentKey::derive(&key.secret_for_tests(), None, &CTX, &ct).unwrap();
        let mut extended = ct.clone();
        let start = extended.len();
        extended.extend_from_slice(b"appended");
        dk.seal_at(3, true, &mut extended, start).unwrap();
        assert_eq!(
            decrypt(&key, &CTX, &extended, &[0]),
            Err(CryptoError::Decrypt)
        );
        // An empty final chunk after a full one is never written, so never accepted.
        let full = encrypt(&key, &CTX, &pattern(CHUNK_SIZE), &[0]);
        let dk = DocumentKey::derive(&key.secret_for_tests(), None, &CTX, &full).unwrap();
        let mut padded = full[..HEADER_LEN].to_vec();
        let start = padded.len();
        padded.extend_from_slice(&pattern(CHUNK_SIZE));
        dk.seal_at(0, false, &mut padded, start).unwrap();
        let start = padded.len();
        dk.seal_at(1, true, &mut padded, start).unwrap();
        assert_eq!(Layout::for_ciphertext(padded.len() as u64), None);
        assert_eq!(
            decrypt(&key, &CTX, &padded, &[0]),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_is_detected() {
        let key = DataKey::generate(1).unwrap();
        let (_, ct) = three_chunks(&key, &CTX);
        let positions = [
            0,
            1,
            HEADER_LEN - 8,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + CHUNK_SIZE,
            HEADER_LEN + CIPHERTEXT_CHUNK_SIZE - 1,
            HEADER_LEN + CIPHERTEXT_CHUNK_SIZE + 1000,
            ct.len() - TAG_LEN - 1,
            ct.len() - 1,
        ];
        for pos in positions {
            for bit in [0, 7] {
                let mut bad = ct.clone();
                bad[pos] ^= 1 << bit;
                assert_eq!(
                    decrypt(&key, &CTX, &bad, &[0]),
                    Err(CryptoError::Decrypt),
                    "{pos}/{bit}"
                );
            }
        }
    }

    #[test]
    fn chunks_do_not_move_between_documents_people_or_tenants() {
        let key = DataKey::generate(1).unwrap();
        let (_, ct) = three_chunks(&key, &CTX);
        let swap_in =
            |other: &[u8]| assemble(&ct, &[chunk(&ct, 0), chunk(other, 1), chunk(&ct, 2)]);
        // Another document of the same subject (another id, or the same id encrypted again).
        let doc2 = DocumentContext {
            document: "doc-2",
            ..CTX
        };
        let (_, other) = three_chunks(&key, &doc2);
        assert!(decrypt(&key, &CTX, &swap_in(&other), &[0]).is_err());
        let (_, again) = three_chunks(&key, &CTX);
        assert!(decrypt(&key, &CTX, &swap_in(&again), &[0]).is_err());
        // Another person with their own key.
        let other_key = DataKey::generate(1).unwrap();
        let bob = DocumentContext {
            subject: "subject-2",
            ..CTX
        };
        let (_, bobs) = three_chunks(&other_key, &bob);
        assert!(decrypt(&key, &CTX, &swap_in(&bobs), &[0]).is_err());
        // Bob's whole object stored under Alice's name opens neither with her key nor with his.
        assert!(decrypt(&key, &CTX, &bobs, &[0]).is_err());
        assert!(decrypt(&other_key, &CTX, &bobs, &[0]).is_err());
        // Same key bytes, another subject id, category or document id: another key.
        for ctx in [
            bob,
            DocumentContext {
                category: "diploma",
                ..CTX
            },
            doc2,
        ] {
            assert_eq!(decrypt(&key, &ctx, &ct, &[0]), Err(CryptoError::Decrypt));
        }
        assert!(decrypt(&key, &CTX, &ct, &[0]).is_ok());
    }

    #[test]
    fn a_document_is_bound_to_its_tenant() {
        let secret = Secret::from_bytes([9; 32]);
        let seal = |scope: Option<&str>| {
            let header = DocumentKey::fresh_header().unwrap();
            let mut enc =
                Encryptor::new(DocumentKey::derive(&secret, scope, &CTX, &header).unwrap());
            let mut out = Vec::new();
            enc.update(&pattern(CHUNK_SIZE + 10), &mut out).unwrap();
            enc.finish(&mut out).unwrap();
            out
        };
        let open = |scope: Option<&str>, ct: &[u8]| {
            let mut dec = Decryptor::new(secret.clone(), scope.map(Into::into), &CTX);
            let mut out = Vec::new();
            dec.update(ct, &mut out)?;
            dec.finish(&mut out).map(|()| out)
        };
        let a = seal(Some("tenant-a"));
        assert_eq!(
            open(Some("tenant-a"), &a).unwrap(),
            pattern(CHUNK_SIZE + 10)
        );
        assert!(open(Some("tenant-b"), &a).is_err());
        assert!(open(None, &a).is_err());
        let own = seal(None);
        assert!(open(None, &own).is_ok());
        assert!(
            open(Some(""), &own).is_ok(),
            "the empty scope is the deployment's"
        );
        assert!(open(Some("tenant-a"), &own).is_err());
        // A chunk of tenant b's document in tenant a's.
        let b = seal(Some("tenant-b"));
        let mixed = assemble(&a, &[chunk(&b, 0), chunk(&a, 1)]);
        assert!(open(Some("tenant-a"), &mixed).is_err());
    }

    #[test]
    fn an_unknown_format_version_is_refused() {
        let key = DataKey::generate(1).unwrap();
        let mut ct = encrypt(&key, &CTX, b"x", &[0]);
        ct[0] = 2;
        assert!(decrypt(&key, &CTX, &ct, &[0]).is_err());
        assert!(key.document_key(&CTX, &ct).is_err());
        assert!(key.document_key(&CTX, &ct[..HEADER_LEN - 1]).is_err());
    }

    #[test]
    fn a_failed_decryptor_stays_failed() {
        let key = DataKey::generate(1).unwrap();
        let (plain, mut ct) = three_chunks(&key, &CTX);
        ct[HEADER_LEN + CIPHERTEXT_CHUNK_SIZE + 3] ^= 1;
        let mut dec = key.document_decryptor(&CTX);
        let mut out = Vec::new();
        let cut = HEADER_LEN + 2 * CIPHERTEXT_CHUNK_SIZE + 1;
        assert!(dec.update(&ct[..cut], &mut out).is_err());
        // Only the verified first chunk came out; nothing of the tampered one.
        assert_eq!(out, plain[..CHUNK_SIZE]);
        assert!(dec.update(&ct[cut..], &mut out).is_err());
        assert!(dec.finish(&mut out).is_err());
        assert_eq!(out, plain[..CHUNK_SIZE]);
    }

    #[test]
    fn single_chunks_open_by_index_for_byte_ranges() {
        let key = DataKey::generate(1).unwrap();
        let (plain, ct) = three_chunks(&key, &CTX);
        let layout = Layout::for_ciphertext(ct.len() as u64).unwrap();
        assert_eq!(layout.plaintext_len(), plain.len() as u64);
        let dk = key.document_key(&CTX, &ct[..HEADER_LEN]).unwrap();
        assert_eq!(dk.header()[..], ct[..HEADER_LEN]);
        // The range 70000..=131100 spans chunks 1 and 2.
        let first = layout.chunk_for_offset(70_000).unwrap();
        let last = layout.chunk_for_offset(131_100).unwrap();
        assert_eq!(
            first,
            ChunkPosition {
                index: 1,
                offset: 70_000 - CHUNK_SIZE
            }
        );
        assert_eq!(
            last,
            ChunkPosition {
                index: 2,
                offset: 131_100 - 2 * CHUNK_SIZE
            }
        );
        let mut out = Vec::new();
        for index in first.index..=last.index {
            let r = layout.chunk_ciphertext_range(index).unwrap();
            dk.open_chunk(
                index,
                layout.is_last(index),
                &ct[r.start as usize..r.end as usize],
                &mut out,
            )
            .unwrap();
        }
        let from = layout.chunk_plaintext_range(first.index).unwrap().start as usize;
        assert_eq!(
            out[first.offset..(131_100 - from + 1)],
            plain[70_000..=131_100]
        );
        // The wrong index, the wrong final flag or a short chunk fail, leaving `out` alone.
        let c1 = chunk(&ct, 1);
        let mut out = b"kept".to_vec();
        assert!(dk.open_chunk(0, false, &c1, &mut out).is_err());
        assert!(dk.open_chunk(1, true, &c1, &mut out).is_err());
        assert!(dk
            .open_chunk(1, false, &c1[..c1.len() - 1], &mut out)
            .is_err());
        assert!(dk.open_chunk(2, false, &chunk(&ct, 2), &mut out).is_err());
        assert_eq!(out, b"kept");
        // Another document's key does not open it.
        let other = key
            .document_key(
                &DocumentContext {
                    document: "doc-2",
                    ..CTX
                },
                &ct,
            )
            .unwrap();
        assert!(other.open_chunk(1, false, &c1, &mut out).is_err());
        // Offsets past the end and chunks past the last have no place.
        assert_eq!(layout.chunk_for_offset(plain.len() as u64), None);
        assert_eq!(layout.chunk_ciphertext_range(3), None);
        assert_eq!(layout.chunk_plaintext_range(3), None);
        assert_eq!(
            layout.chunk_ciphertext_range(2).unwrap().end,
            ct.len() as u64
        );
    }

    #[test]
    fn lengths_map_one_to_one() {
        let full = CIPHERTEXT_CHUNK_SIZE as u64;
        let h = HEADER_LEN as u64;
        let t = TAG_LEN as u64;
        assert_eq!(ciphertext_len(0), Some(h + t));
        assert_eq!(ciphertext_len(65_536), Some(h + full));
        assert_eq!(ciphertext_len(65_537), Some(h + full + 1 + t));
        for bad in [
            0,
            1,
            h,
            h + t - 1,
            h + full + t,
            h + full + 3,
            h + 2 * full + t,
        ] {
            assert_eq!(plaintext_len(bad), None, "{bad}");
        }
        let most = (1u64 << 32) * CHUNK_SIZE as u64;
        assert_eq!(plaintext_len(ciphertext_len(most).unwrap()), Some(most));
        assert_eq!(ciphertext_len(most + 1), None);
        assert_eq!(plaintext_len(ciphertext_len(most).unwrap() + 1 + t), None);
        let layout = Layout::for_plaintext(most).unwrap();
        assert!(layout.is_last(u32::MAX));
        assert_eq!(layout.chunk_for_offset(most - 1).unwrap().index, u32::MAX);
    }

    #[test]
    fn past_the_last_chunk_index_fails_instead_of_wrapping() {
        let key = DataKey::generate(1).unwrap();
        let mut enc = key.document_encryptor(&CTX).unwrap();
        enc.index = u32::MAX;
        let mut out = Vec::new();
        enc.update(&pattern(CHUNK_SIZE), &mut out).unwrap();
        assert_eq!(enc.update(b"x", &mut out), Err(CryptoError::TooLong));
        assert_eq!(
            out.len(),
            HEADER_LEN,
            "nothing of the refused chunk is emitted"
        );
    }

    /// Computed by `testdata/stream_vectors.py` (Python `cryptography`, independent of this
    /// code): data key 00..1f, salt 40..5f, nonce prefix a0..a6, subject `subject-1`, category
    /// `passport`, document `doc-1`. A change here is a change of the stored format.
    const VECTORS: &[(Option<&str>, &[u8], &str)] = &[
        (
            None,
            b"",
            "01404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5fa0a1a2a3a4a5a6\
             7bbf3b5a257f781bd5720ed2f0798daf",
        ),
        (
            None,
            b"Amanah: a passport scan",
            "01404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5fa0a1a2a3a4a5a6\
             ac9121bd6cf5c5623fb5e81c0da96411469650dd49960e79ee67221bc68190733280d786b3a5b8",
        ),
        (
            Some("tenant-a"),
            b"Amanah: a passport scan",
            "01404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5fa0a1a2a3a4a5a6\
             3a4272bc09b154afe918c792b4dd0358c60f24f3f029075101424a91c0062976d9f8c71e2c9f88",
        ),
    ];

    /// (plaintext length of `pattern`, ciphertext length, SHA-256 of the ciphertext).
    const LONG_VECTORS: &[(usize, usize, &str)] = &[
        (
            CHUNK_SIZE,
            65_592,
            "7d7291180c96592960f68b99fea93208735ea730a3a3f0ae8a6f39a3ae4162c6",
        ),
        (
            CHUNK_SIZE + 100,
            65_708,
            "7970c710e97e9a3c8a4d46f1f6909f1e1e1e6dadff5ed6fa00b3a5f038e7ee04",
        ),
    ];

    fn vector_encrypt(scope: Option<&str>, plain: &[u8], slices: &[usize]) -> Vec<u8> {
        let secret = Secret::from_bytes(std::array::from_fn(|i| i as u8));
        let mut header = [0u8; HEADER_LEN];
        header[0] = FORMAT_V1;
        for (i, b) in header[1..1 + SALT_LEN].iter_mut().enumerate() {
            *b = 0x40 + i as u8;
        }
        for (i, b) in header[1 + SALT_LEN..].iter_mut().enumerate() {
            *b = 0xa0 + i as u8;
        }
        let mut enc = Encryptor::new(DocumentKey::derive(&secret, scope, &CTX, &header).unwrap());
        let mut out = Vec::new();
        feed(plain, slices, |s| enc.update(s, &mut out).unwrap());
        enc.finish(&mut out).unwrap();
        let mut dec = Decryptor::new(secret, scope.map(Into::into), &CTX);
        let mut back = Vec::new();
        dec.update(&out, &mut back).unwrap();
        dec.finish(&mut back).unwrap();
        assert_eq!(back, plain);
        out
    }

    #[test]
    fn the_format_matches_its_test_vectors() {
        for (scope, plain, expected) in VECTORS {
            for slices in [&[0][..], &[1]] {
                assert_eq!(
                    hex::encode(vector_encrypt(*scope, plain, slices)),
                    *expected
                );
            }
        }
        for (len, ct_len, sha) in LONG_VECTORS {
            for slices in [&[0][..], &[1000]] {
                let ct = vector_encrypt(None, &pattern(*len), slices);
                assert_eq!(ct.len(), *ct_len);
                assert_eq!(crate::digest::sha256_hex(&ct), *sha);
            }
        }
    }

    #[test]
    fn debug_shows_no_key_or_plaintext() {
        let key = DataKey::generate(1).unwrap();
        let mut enc = key.document_encryptor(&CTX).unwrap();
        let mut out = Vec::new();
        enc.update(b"SECRET-PLAINTEXT", &mut out).unwrap();
        let dk = key.document_key(&CTX, &out).unwrap();
        let dec = key.document_decryptor(&CTX);
        for shown in [format!("{enc:?}"), format!("{dk:?}"), format!("{dec:?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(!shown.contains(&hex::encode(&out[1..9])), "{shown}");
        }
        assert!(format!("{dk:?}").contains("redacted"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn round_trip_any_size_in_any_slices(
            size in 0usize..300_000,
            enc_slices in proptest::collection::vec(1usize..100_000, 1..6),
            dec_slices in proptest::collection::vec(1usize..100_000, 1..6),
        ) {
            let key = DataKey::generate(1).unwrap();
            let plain = pattern(size);
            let ct = encrypt(&key, &CTX, &plain, &enc_slices);
            prop_assert_eq!(ct.len() as u64, ciphertext_len(size as u64).unwrap());
            prop_assert_eq!(decrypt(&key, &CTX, &ct, &dec_slices).unwrap(), plain);
        }

        #[test]
        fn lengths_round_trip(len in 0u64..(1 << 48)) {
            let ct = ciphertext_len(len).unwrap();
            prop_assert_eq!(plaintext_len(ct), Some(len));
            let layout = Layout::for_ciphertext(ct).unwrap();
            let last = u32::try_from(layout.chunk_count() - 1).unwrap();
            prop_assert!(layout.is_last(last));
            prop_assert_eq!(layout.chunk_ciphertext_range(last).unwrap().end, ct);
            prop_assert_eq!(layout.chunk_plaintext_range(last).unwrap().end, len);
            if len > 0 {
                let end = layout.chunk_for_offset(len - 1).unwrap();
                prop_assert_eq!(end.index, last);
            }
        }

        #[test]
        fn any_bit_flip_fails(pos in any::<usize>(), bit in 0u8..8, size in 0usize..131_100) {
            let key = DataKey::generate(1).unwrap();
            let mut ct = encrypt(&key, &CTX, &pattern(size), &[0]);
            let i = pos % ct.len();
            ct[i] ^= 1 << bit;
            prop_assert_eq!(decrypt(&key, &CTX, &ct, &[0]), Err(CryptoError::Decrypt));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Fuzz-style: arbitrary bytes in arbitrary slices never panic and never decrypt.
        #[test]
        fn garbage_never_panics_and_never_opens(
            garbage in proptest::collection::vec(any::<u8>(), 0..400),
            slices in proptest::collection::vec(1usize..64, 1..5),
        ) {
            let key = DataKey::generate(1).unwrap();
            prop_assert!(decrypt(&key, &CTX, &garbage, &slices).is_err());
            let _ = key.document_key(&CTX, &garbage);
            let _ = plaintext_len(garbage.len() as u64);
        }

        /// A real ciphertext cut, extended or overwritten at random fails unless unchanged.
        #[test]
        fn edited_ciphertext_fails_closed(
            size in 0usize..2_000,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in proptest::option::of(any::<usize>()),
            tail in proptest::collection::vec(any::<u8>(), 0..40),
            slices in proptest::collection::vec(1usize..700, 1..4),
        ) {
            let key = DataKey::generate(1).unwrap();
            let plain = pattern(size);
            let ct = encrypt(&key, &CTX, &plain, &[0]);
            let mut bad = ct.clone();
            for (pos, byte) in edits {
                let i = pos % bad.len();
                bad[i] = byte;
            }
            if let Some(cut) = cut {
                bad.truncate(cut % (bad.len() + 1));
            }
            bad.extend_from_slice(&tail);
            let result = decrypt(&key, &CTX, &bad, &slices);
            if bad == ct {
                prop_assert_eq!(result.unwrap(), plain);
            } else {
                prop_assert_eq!(result, Err(CryptoError::Decrypt));
            }
        }
    }
}
