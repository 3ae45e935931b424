//! Audit entries and the rules of the chain. An entry never holds personal data: only the
//! pseudonymous subject id, category names, and the decision.

use serde::{Deserialize, Serialize};

mod action;
pub use action::{AuditAction, UnknownAuditAction};

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "allowed" => Some(Outcome::Allowed),
            "denied" => Some(Outcome::Denied),
            _ => None,
        }
    }
}

/// An entry before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDraft {
    /// Unix time in microseconds.
    pub at_micros: i64,
    /// API key id (or `cli` for local commands); never the key itself.
    pub actor: String,
    pub role: String,
    /// What was done (`subject.read`, `backup.restore`, …): one of the names [`AuditAction`]
    /// lists, never free text.
    pub action: AuditAction,
    pub purpose: Option<String>,
    /// Legal basis the decision relied on.
    pub basis: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub subject: Option<String>,
    /// Category names touched (never values).
    pub fields: Vec<String>,
    pub policy_version: String,
}

/// Longest string an audit entry stores, in bytes: longer ones are cut at a character boundary
/// and end with `…[+N bytes]` (N = the bytes left out).
pub const MAX_AUDIT_STRING_BYTES: usize = 2048;
/// Most list elements (e.g. `fields`) an audit entry stores: beyond, the last kept element is
/// replaced by `…[+N more]`.
pub const MAX_AUDIT_LIST_LEN: usize = 256;
/// Room kept for the truncation marker.
const MARKER_ROOM: usize = 40;

impl AuditDraft {
    /// The entry as the store records it: every string bounded by [`MAX_AUDIT_STRING_BYTES`],
    /// every list by [`MAX_AUDIT_LIST_LEN`], and NUL characters (which PostgreSQL's text
    /// cannot hold) replaced by U+FFFD. Idempotent, and the identity on entries already within
    /// bounds, so a stored entry always equals what its MAC covers.
    pub fn bounded(mut self) -> AuditDraft {
        for s in [&mut self.actor, &mut self.role, &mut self.policy_version] {
            bound_string(s);
        }
        for s in [
            &mut self.purpose,
            &mut self.basis,
            &mut self.reason,
            &mut self.subject,
        ]
        .into_iter()
        .flatten()
        {
            bound_string(s);
        }
        if self.fields.len() > MAX_AUDIT_LIST_LEN {
            let more = self.fields.len() - (MAX_AUDIT_LIST_LEN - 1);
            self.fields.truncate(MAX_AUDIT_LIST_LEN - 1);
            self.fields.push(format!("…[+{more} more]"));
        }
        for f in &mut self.fields {
            bound_string(f);
        }
        self
    }
}

impl AuditDraft {
    /// Whether [`AuditDraft::bounded`] would leave the entry as it is.
    pub fn within_bounds(&self) -> bool {
        let ok = |s: &str| s.len() <= MAX_AUDIT_STRING_BYTES && !s.contains('\0');
        [&self.actor, &self.role, &self.policy_version]
            .into_iter()
            .all(|s| ok(s))
            && [&self.purpose, &self.basis, &self.reason, &self.subject]
                .into_iter()
                .flatten()
                .all(|s| ok(s))
            && self.fields.len() <= MAX_AUDIT_LIST_LEN
            && self.fields.iter().all(|s| ok(s))
    }
}

/// Replaces NUL and cuts `s` to [`MAX_AUDIT_STRING_BYTES`] (see [`AuditDraft::bounded`]).
pub fn bound_string(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
    if s.len() > MAX_AUDIT_STRING_BYTES {
        let mut cut = MAX_AUDIT_STRING_BYTES - MARKER_ROOM;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let left_out = s.len() - cut;
        s.truncate(cut);
        s.push_str(&format!("…[+{left_out} bytes]"));
    }
}

/// An entry as stored: its sequence number and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1-based, contiguous.
    pub seq: u64,
    pub entry: AuditDraft,
    pub hash: [u8; 32],
}

/// The canonical bytes the chain MAC covers: the sequence number and every field, in a fixed
/// order, length-prefixed so no two entries share an encoding.
pub fn canonical_bytes(seq: u64, e: &AuditDraft) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    EntryParts::of(e).encode_into(seq, &mut out);
    out
}

/// An entry's parts as its canonical bytes hold them (the UTF-8 bytes of its strings),
/// borrowed: from an [`AuditDraft`], or straight from a stored row while a chain is verified
/// (no record built per entry).
pub struct EntryParts<'a, L: FieldList + ?Sized> {
    pub at_micros: i64,
    pub actor: &'a [u8],
    pub role: &'a [u8],
    pub action: &'a [u8],
    pub purpose: Option<&'a [u8]>,
    pub basis: Option<&'a [u8]>,
    pub outcome: &'a [u8],
    pub reason: Option<&'a [u8]>,
    pub subject: Option<&'a [u8]>,
    pub fields: &'a L,
    pub policy_version: &'a [u8],
}

/// The category names of an entry as the encoder reads them: a slice of strings, or a stored
/// form read in place (the store's field list, without building a list per entry).
pub trait FieldList {
    /// How many names.
    fn count(&self) -> usize;
    /// Calls `f` on the bytes of each name, in order.
    fn each(&self, f: impl FnMut(&[u8]));
}

impl<F: AsRef<str>> FieldList for [F] {
    fn count(&self) -> usize {
        self.len()
    }
    fn each(&self, mut f: impl FnMut(&[u8])) {
        self.iter().for_each(|s| f(s.as_ref().as_bytes()));
    }
}

impl<F: AsRef<str>> FieldList for Vec<F> {
    fn count(&self) -> usize {
        self.len()
    }
    fn each(&self, f: impl FnMut(&[u8])) {
        self[..].each(f);
    }
}

impl<'a> EntryParts<'a, Vec<String>> {
    /// The parts of an entry as written: what [`canonical_bytes`] encodes.
    pub fn of(e: &'a AuditDraft) -> Self {
        EntryParts {
            at_micros: e.at_micros,
            actor: e.actor.as_bytes(),
            role: e.role.as_bytes(),
            action: e.action.as_str().as_bytes(),
            purpose: e.purpose.as_deref().map(str::as_bytes),
            basis: e.basis.as_deref().map(str::as_bytes),
            outcome: e.outcome.as_str().as_bytes(),
            reason: e.reason.as_deref().map(str::as_bytes),
            subject: e.subject.as_deref().map(str::as_bytes),
            fields: &e.fields,
            policy_version: e.policy_version.as_bytes(),
        }
    }
}

impl<L: FieldList + ?Sized> EntryParts<'_, L> {
    /// Appends the canonical bytes of entry `seq` to `out` (the one encoder of the format).
    pub fn encode_into(&self, seq: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"amanah/audit/v1");
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.at_micros.to_be_bytes());
        for s in [self.actor, self.role, self.action] {
            push_str(out, Some(s));
        }
        push_str(out, self.purpose);
        push_str(out, self.basis);
        push_str(out, Some(self.outcome));
        push_str(out, self.reason);
        push_str(out, self.subject);
        out.extend_from_slice(&(self.fields.count() as u32).to_be_bytes());
        self.fields.each(|f| push_str(out, Some(f)));
        push_str(out, Some(self.policy_version));
    }
}

/// One link of the chain as a verifier needs it: the entry's sequence number, its stored hash,
/// and what to check that hash against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: u64,
    pub hash: [u8; 32],
    pub check: LinkCheck,
}

/// How a link is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCheck {
    /// The reader that encoded the entry also computed its MAC, `mac` = HMAC(audit key, `from`
    /// || canonical bytes), where `from` is the stored hash of the entry it read just before
    /// (the genesis hash before entry 1). The link holds when `from` is the previous entry's
    /// hash as the verifier holds it and `mac` is the stored hash: then the verifier's own
    /// computation would give the same.
    Mac { from: [u8; 32], mac: [u8; 32] },
    /// The canonical bytes, for the verifier to MAC (a link read without the entry before it).
    Canonical(Vec<u8>),
}

impl ChainLink {
    /// Encodes entry `seq` and MACs it on the calling thread when the hash it chains from is
    /// known (`from`), else keeps its canonical bytes for the verifier. `buf` is scratch space.
    pub fn new(
        key: &amanah_crypto::audit::AuditKey,
        from: Option<&[u8; 32]>,
        seq: u64,
        parts: &EntryParts<'_, impl FieldList + ?Sized>,
        hash: [u8; 32],
        buf: &mut Vec<u8>,
    ) -> ChainLink {
        buf.clear();
        parts.encode_into(seq, buf);
        let check = match from {
            Some(from) => LinkCheck::Mac {
                from: *from,
                mac: key.chain(from, buf),
            },
            None => LinkCheck::Canonical(buf.clone()),
        };
        ChainLink { seq, hash, check }
    }
}

#[inline]
fn push_str(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.reserve(5 + s.len());
            out.push(1);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s);
        }
    }
}

/// The first problem found while verifying a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// A row is missing or rows were reordered: expected `expected`, found `found`.
    Sequence { expected: u64, found: u64 },
    /// The row's content or its hash was changed.
    Hash { seq: u64 },
    /// Rows after `last` were removed (the signed head names a later entry), or the head itself
    /// was altered.
    Head { last: u64, head: u64 },
    /// The signed head is missing: every store has one from its creation (the genesis head,
    /// `seq` 0), so it was deleted.
    HeadMissing { last: u64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Sequence { expected, found } => write!(
                f,
                "entry {expected} is missing or out of order (found entry {found} in its place)"
            ),
            ChainBreak::Hash { seq } => write!(f, "entry {seq} was altered: its hash does not match"),
            ChainBreak::Head { last, head } => write!(
                f,
                "the chain ends at entry {last} but its signed head names entry {head}: entries were removed or the head altered"
            ),
            ChainBreak::HeadMissing { last } => write!(
                f,
                "the signed head is missing (the chain ends at entry {last}): the head row was deleted"
            ),
        }
    }
}

/// Incremental verifier: feed records in stored order, then `finish` with the signed head.
pub struct ChainVerifier<'k> {
    key: &'k amanah_crypto::audit::AuditKey,
    prev: [u8; 32],
    next_seq: u64,
}

impl<'k> ChainVerifier<'k> {
    pub fn new(key: &'k amanah_crypto::audit::AuditKey) -> Self {
        ChainVerifier {
            key,
            prev: amanah_crypto::audit::GENESIS,
            next_seq: 1,
        }
    }

    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        if record.seq != self.next_seq {
            return Err(ChainBreak::Sequence {
                expected: self.next_seq,
                found: record.seq,
            });
        }
        let expected = self
            .key
            .chain(&self.prev, &canonical_bytes(record.seq, &record.entry));
        if expected != record.hash {
            return Err(ChainBreak::Hash { seq: record.seq });
        }
        self.prev = record.hash;
        self.next_seq += 1;
        Ok(())
    }

    /// Checks a page of records in stored order, like `push` on each, but on several threads:
    /// every link is checkable on its own (entry i's hash chains from entry i-1's stored hash),
    /// so chunks are verified in parallel and the earliest break is reported. On a break, the
    /// verifier stands just before the bad entry, as after `push`.
    pub fn push_page(&mut self, records: &[AuditRecord]) -> Result<(), ChainBreak> {
        self.push_parallel(records, |r| {
            (
                r.seq,
                std::borrow::Cow::Owned(canonical_bytes(r.seq, &r.entry)),
                &r.hash,
            )
        })
    }

    /// Checks links in stored order, like `push` on the records they were read from. Their MACs
    /// were computed where they were read (the store's readers, several pages at once), so
    /// what is left here is a comparison per link, except for a link that carries its
    /// canonical bytes. On a break, the verifier stands just before the bad entry.
    pub fn push_links(&mut self, links: &[ChainLink]) -> Result<(), ChainBreak> {
        for l in links {
            if l.seq != self.next_seq {
                return Err(ChainBreak::Sequence {
                    expected: self.next_seq,
                    found: l.seq,
                });
            }
            let holds = match &l.check {
                // `from` is not the hash this verifier accepted for the entry before: that
                // entry's stored hash changed between two reads, and the MAC of this one, taken
                // over the accepted hash, could only match by a collision.
                LinkCheck::Mac { from, mac } => *from == self.prev && *mac == l.hash,
                LinkCheck::Canonical(canonical) => self.key.chain(&self.prev, canonical) == l.hash,
            };
            if !holds {
                return Err(ChainBreak::Hash { seq: l.seq });
            }
            self.prev = l.hash;
            self.next_seq += 1;
        }
        Ok(())
    }

    /// The parallel check of `push_page`: `link` gives an item's sequence number, canonical
    /// bytes and stored hash.
    fn push_parallel<T: Sync>(
        &mut self,
        items: &[T],
        link: impl Fn(&T) -> (u64, std::borrow::Cow<'_, [u8]>, &[u8; 32]) + Sync,
    ) -> Result<(), ChainBreak> {
        const MIN_CHUNK: usize = 1024;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(items.len() / MIN_CHUNK)
            .max(1);
        let chunk = items.len().div_ceil(threads).max(1);
        let (key, first_prev, first_seq) = (self.key, self.prev, self.next_seq);
        let link = &link;
        let check = |start: usize, part: &[T]| -> Result<(), (usize, ChainBreak)> {
            let mut prev = if start == 0 {
                first_prev
            } else {
                *link(&items[start - 1]).2
            };
            for (i, item) in part.iter().enumerate() {
                let (seq, canonical, hash) = link(item);
                let expected_seq = first_seq + (start + i) as u64;
                if seq != expected_seq {
                    let b = ChainBreak::Sequence {
                        expected: expected_seq,
                        found: seq,
                    };
                    return Err((start + i, b));
                }
                if key.chain(&prev, &canonical) != *hash {
                    return Err((start + i, ChainBreak::Hash { seq }));
                }
                prev = *hash;
            }
            Ok(())
        };
        let outcome = if threads == 1 {
            check(0, items)
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = items
                    .chunks(chunk)
                    .enumerate()
                    .map(|(n, part)| scope.spawn(move || check(n * chunk, part)))
                    .collect();
                // Chunks are in order: the first error found this way is the earliest.
                let mut first = Ok(());
                for h in handles {
                    let r = h
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    if first.is_ok() {
                        first = r;
                    }
                }
                first
            })
        };
        let verified = match &outcome {
            Ok(()) => items.len(),
            Err((i, _)) => *i,
        };
        if verified > 0 {
            self.prev = *link(&items[verified - 1]).2;
            self.next_seq += verified as u64;
        }
        outcome.map_err(|(_, b)| b)
    }

    /// Entries seen so far.
    pub fn count(&self) -> u64 {
        self.next_seq - 1
    }

    /// Checks the signed head. A store has one from its creation (`seq` 0 and the genesis hash
    /// before the first entry), so `None` is always a break. Returns the head hash.
    pub fn finish(self, head: Option<(u64, [u8; 32], [u8; 32])>) -> Result<[u8; 32], ChainBreak> {
        let last = self.count();
        match head {
            None => Err(ChainBreak::HeadMissing { last }),
            Some((seq, hash, mac)) => {
                if seq != last || hash != self.prev || mac != head_mac(self.key, seq, &hash) {
                    return Err(ChainBreak::Head { last, head: seq });
                }
                Ok(self.prev)
            }
        }
    }
}

/// MAC of the chain head `(seq, hash)`, stored beside the log so that removing its last entries
/// is detected too.
pub fn head_mac(key: &amanah_crypto::audit::AuditKey, seq: u64, hash: &[u8; 32]) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(b"amanah/audit-head/v1");
    bytes.extend_from_slice(&seq.to_be_bytes());
    key.chain(hash, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amanah_crypto::KeyRing;

    fn draft(i: i64) -> AuditDraft {
        AuditDraft {
            at_micros: i,
            actor: "k1".into(),
            role: "officer".into(),
            action: AuditAction::SubjectRead,
            purpose: Some("admission".into()),
            basis: Some("contract".into()),
            outcome: Outcome::Allowed,
            reason: None,
            subject: Some("s".into()),
            fields: vec!["email".into()],
            policy_version: "v1".into(),
        }
    }

    fn chain(ring: &KeyRing, n: u64) -> Vec<AuditRecord> {
        let key = ring.audit_key();
        let mut prev = amanah_crypto::audit::GENESIS;
        (1..=n)
            .map(|seq| {
                let entry = draft(seq as i64);
                let hash = key.chain(&prev, &canonical_bytes(seq, &entry));
                prev = hash;
                AuditRecord { seq, entry, hash }
            })
            .collect()
    }

    /// `push_page` (parallel) must agree with `push` (sequential) on the verdict and on where
    /// the verifier stands afterwards, wherever a break is.
    #[test]
    fn pages_verified_in_parallel_agree_with_one_by_one() {
        let ring = KeyRing::generate().unwrap();
        let key = ring.audit_key();
        let good = chain(&ring, 5_000);
        let sequential = |records: &[AuditRecord]| {
            let mut v = ChainVerifier::new(&key);
            let r = records.iter().try_for_each(|rec| v.push(rec));
            (r, v.count(), v.prev)
        };
        let parallel = |records: &[AuditRecord]| {
            let mut v = ChainVerifier::new(&key);
            // Two pages, so the second starts from the first's end.
            let (a, b) = records.split_at(1_700);
            let r = v.push_page(a).and_then(|()| v.push_page(b));
            (r, v.count(), v.prev)
        };
        assert_eq!(parallel(&good), sequential(&good));
        assert_eq!(parallel(&good).1, 5_000);
        for at in [0usize, 1, 1_023, 1_699, 1_700, 2_500, 3_351, 4_999] {
            let mut altered = good.clone();
            altered[at].entry.actor = "someone else".into();
            let (p, s) = (parallel(&altered), sequential(&altered));
            assert_eq!(p, s, "altered entry at {at}");
            assert_eq!(p.0, Err(ChainBreak::Hash { seq: at as u64 + 1 }));
            assert_eq!(p.1, at as u64);

            let mut removed = good.clone();
            removed.remove(at);
            if at < removed.len() {
                assert_eq!(
                    parallel(&removed),
                    sequential(&removed),
                    "removed entry at {at}"
                );
                assert!(matches!(
                    parallel(&removed).0,
                    Err(ChainBreak::Sequence { .. })
                ));
            }
        }
    }

    /// Links MACed where they were read (`LinkCheck::Mac`) or carrying their bytes
    /// (`LinkCheck::Canonical`) give `push_links` the verdict `push` gives on the records,
    /// wherever a break is; a link MACed over another hash than the one the verifier accepted
    /// for the entry before it is a break at that link.
    #[test]
    fn links_checked_where_they_were_read_agree_with_one_by_one() {
        let ring = KeyRing::generate().unwrap();
        let key = ring.audit_key();
        let good = chain(&ring, 300);
        // As a store reads them: pages of 64, the first link of every third page without
        // the hash before it.
        let links = |records: &[AuditRecord]| -> Vec<ChainLink> {
            let mut buf = Vec::new();
            let mut from = Some(amanah_crypto::audit::GENESIS);
            records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    if i % 192 == 64 {
                        from = None;
                    }
                    let parts = EntryParts::of(&r.entry);
                    let l = ChainLink::new(&key, from.as_ref(), r.seq, &parts, r.hash, &mut buf);
                    from = Some(r.hash);
                    l
                })
                .collect()
        };
        let sequential = |records: &[AuditRecord]| {
            let mut v = ChainVerifier::new(&key);
            let r = records.iter().try_for_each(|rec| v.push(rec));
            (r, v.count(), v.prev)
        };
        let by_links = |links: &[ChainLink]| {
            let mut v = ChainVerifier::new(&key);
            let r = links.chunks(64).try_for_each(|page| v.push_links(page));
            (r, v.count(), v.prev)
        };
        assert_eq!(by_links(&links(&good)), sequential(&good));
        assert_eq!(by_links(&links(&good)).1, 300);
        for at in [0usize, 1, 63, 64, 65, 128, 200, 299] {
            let mut altered = good.clone();
            altered[at].entry.fields.push("more".into());
            let l = links(&altered);
            assert_eq!(by_links(&l), sequential(&altered), "altered entry at {at}");
            assert_eq!(by_links(&l).0, Err(ChainBreak::Hash { seq: at as u64 + 1 }));

            let mut removed = good.clone();
            removed.remove(at);
            if at < removed.len() {
                let l = links(&removed);
                assert_eq!(by_links(&l), sequential(&removed), "removed entry at {at}");
            }

            // A stored hash changed after the entry following it was read and MACed.
            let mut l = links(&good);
            if at > 0 {
                if let LinkCheck::Mac { from, .. } = &mut l[at].check {
                    from[0] ^= 1;
                    assert_eq!(by_links(&l).0, Err(ChainBreak::Hash { seq: at as u64 + 1 }));
                }
            }
        }
        // The encoder over a borrowed list gives the bytes of the record's.
        let e = &good[7].entry;
        let mut out = Vec::new();
        let parts = EntryParts::of(e);
        EntryParts {
            fields: &["email"][..],
            at_micros: parts.at_micros,
            actor: parts.actor,
            role: parts.role,
            action: parts.action,
            purpose: parts.purpose,
            basis: parts.basis,
            outcome: parts.outcome,
            reason: parts.reason,
            subject: parts.subject,
            policy_version: parts.policy_version,
        }
        .encode_into(8, &mut out);
        assert_eq!(out, canonical_bytes(8, e));
    }

    fn verify(
        ring: &KeyRing,
        records: &[AuditRecord],
        head: Option<(u64, [u8; 32])>,
    ) -> Result<[u8; 32], ChainBreak> {
        let key = ring.audit_key();
        let mut v = ChainVerifier::new(&key);
        for r in records {
            v.push(r)?;
        }
        v.finish(head.map(|(s, h)| (s, h, head_mac(&key, s, &h))))
    }

    #[test]
    fn intact_chain_verifies() {
        let ring = KeyRing::generate().unwrap();
        let c = chain(&ring, 5);
        assert_eq!(verify(&ring, &c, Some((5, c[4].hash))), Ok(c[4].hash));
    }

    #[test]
    fn edit_delete_reorder_and_truncation_are_detected() {
        let ring = KeyRing::generate().unwrap();
        let c = chain(&ring, 5);
        let head = Some((5, c[4].hash));

        let mut edited = c.clone();
        edited[2].entry.outcome = Outcome::Denied;
        assert_eq!(
            verify(&ring, &edited, head),
            Err(ChainBreak::Hash { seq: 3 })
        );

        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&ring, &deleted, head),
            Err(ChainBreak::Sequence {
                expected: 2,
                found: 3
            })
        );

        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert!(verify(&ring, &reordered, head).is_err());

        let truncated = &c[..3];
        assert_eq!(
            verify(&ring, truncated, head),
            Err(ChainBreak::Head { last: 3, head: 5 })
        );
        // A head rewritten without the key does not verify either.
        let key = ring.audit_key();
        let mut v = ChainVerifier::new(&key);
        for r in truncated {
            v.push(r).unwrap();
        }
        assert!(v.finish(Some((3, c[2].hash, [0; 32]))).is_err());
    }

    #[test]
    fn another_key_cannot_rebuild_the_chain() {
        let ring = KeyRing::generate().unwrap();
        let forged = chain(&KeyRing::generate().unwrap(), 2);
        assert_eq!(
            verify(&ring, &forged, None),
            Err(ChainBreak::Hash { seq: 1 })
        );
    }

    #[test]
    fn a_missing_head_is_a_break_and_the_genesis_head_verifies() {
        let ring = KeyRing::generate().unwrap();
        let key = ring.audit_key();
        assert_eq!(
            ChainVerifier::new(&key).finish(None),
            Err(ChainBreak::HeadMissing { last: 0 })
        );
        let genesis = amanah_crypto::audit::GENESIS;
        let signed = Some((0, genesis, head_mac(&key, 0, &genesis)));
        assert_eq!(ChainVerifier::new(&key).finish(signed), Ok(genesis));
        // An unsigned genesis head (what schema 1 of the PostgreSQL store wrote) is refused.
        assert!(ChainVerifier::new(&key)
            .finish(Some((0, genesis, [0; 32])))
            .is_err());
        let c = chain(&ring, 3);
        let mut v = ChainVerifier::new(&key);
        c.iter().for_each(|r| v.push(r).unwrap());
        assert_eq!(v.finish(None), Err(ChainBreak::HeadMissing { last: 3 }));
    }

    /// The chain covers an action as the text of its name, as when actions were strings: the
    /// hashes of stored entries do not change.
    #[test]
    fn canonical_bytes_hold_the_action_as_its_name() {
        for &action in AuditAction::ALL {
            let e = AuditDraft { action, ..draft(7) };
            let name = action.as_str().as_bytes();
            let mut expected = b"amanah/audit/v1".to_vec();
            expected.extend_from_slice(&3u64.to_be_bytes());
            expected.extend_from_slice(&7i64.to_be_bytes());
            for s in [&b"k1"[..], b"officer", name] {
                expected.push(1);
                expected.extend_from_slice(&(s.len() as u32).to_be_bytes());
                expected.extend_from_slice(s);
            }
            assert_eq!(
                canonical_bytes(3, &e)[..expected.len()],
                expected[..],
                "{action}"
            );
        }
    }

    #[test]
    fn bounded_entries_are_cut_with_a_marker_and_left_alone_within_bounds() {
        let small = draft(1);
        assert_eq!(small.clone().bounded(), small);
        let mut big = draft(1);
        big.actor = "é".repeat(5_000); // 10,000 bytes, two per character
        big.reason = Some("a\0b".into());
        big.fields = (0..1_000).map(|i| format!("f{i},x")).collect();
        let b = big.clone().bounded();
        assert!(b.actor.len() <= MAX_AUDIT_STRING_BYTES, "{}", b.actor.len());
        assert!(b.actor.starts_with("éé"));
        assert!(
            b.actor.ends_with(" bytes]"),
            "{}",
            &b.actor[b.actor.len() - 20..]
        );
        assert_eq!(b.reason.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(b.fields.len(), MAX_AUDIT_LIST_LEN);
        assert_eq!(b.fields[0], "f0,x");
        assert_eq!(
            b.fields.last().map(String::as_str),
            Some(format!("…[+{} more]", 1_000 - (MAX_AUDIT_LIST_LEN - 1)).as_str())
        );
        assert_eq!(b.clone().bounded(), b, "bounding twice changes nothing");
        assert!(small.within_bounds() && b.within_bounds());
        assert!(!big.within_bounds());
    }
}
