//! Row mapping, written once for both backends. [`Row`] reads a column by index from a
//! `rusqlite::Row` or a `tokio_postgres::Row`; every record's mapper below is written over it,
//! so a column added to a record is read in one place. Each mapper expects the columns in the
//! order of its `*_columns` list in [`crate::sql`].

use amanah_core::audit::{
    AuditAction, AuditDraft, AuditRecord, ChainLink, EntryParts, FieldList, LinkCheck, Outcome,
};
use amanah_crypto::audit::{AuditKey, GENESIS};

use crate::exec::{not_null, Row};
use crate::{
    ApiKeyRecord, BreachRecord, ConsentRecord, DisclosureRecord, HoldRecord, PolicyRecord,
    RelationRecord, RequestRecord, RestrictionRecord, StoreError, StoreResult,
};

/// A stored hash or MAC; anything but 32 bytes (tampering) reads as zeros and fails its check.
pub(crate) fn to_hash(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}

/// A stored count (`releases`, `max_releases`); out of range only after tampering.
fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(crate) fn string(r: &dyn Row) -> StoreResult<String> {
    r.col(0)
}

pub(crate) fn string_and_i64(r: &dyn Row) -> StoreResult<(String, i64)> {
    Ok((r.col(0)?, r.col(1)?))
}

pub(crate) fn int(r: &dyn Row) -> StoreResult<i64> {
    r.col(0)
}

pub(crate) fn blob(r: &dyn Row) -> StoreResult<Vec<u8>> {
    r.col(0)
}

pub(crate) fn document(r: &dyn Row) -> StoreResult<crate::DocumentRecord> {
    Ok(crate::DocumentRecord {
        id: r.col(0)?,
        subject_id: r.col(1)?,
        category: r.col(2)?,
        version: r.col(3)?,
        object: r.col(4)?,
        sealed: r.col(5)?,
        stored_size: r.col(6)?,
        uploaded_at_micros: r.col(7)?,
    })
}

/// A row that only says it exists.
pub(crate) fn unit(_: &dyn Row) -> StoreResult<()> {
    Ok(())
}

/// Two counts (open, overdue).
pub(crate) fn counts(r: &dyn Row) -> StoreResult<(u64, u64)> {
    Ok((r.col::<i64>(0)? as u64, r.col::<i64>(1)? as u64))
}

/// A name and a count.
pub(crate) fn string_and_count(r: &dyn Row) -> StoreResult<(String, u64)> {
    Ok((r.col(0)?, r.col::<i64>(1)? as u64))
}

/// A subject id and when its relationship ended.
/// A subject as retention reads it: id, relationship's end, and the categories of its sealed
/// fields unless the set is malformed.
pub(crate) type RetentionHead = (
    String,
    Option<i64>,
    Result<Vec<String>, crate::sealed_fields::Malformed>,
);

pub(crate) fn retention_head(r: &dyn Row) -> StoreResult<RetentionHead> {
    let fields = crate::sealed_fields::categories(r.blob_ref(2)?.unwrap_or_default());
    Ok((r.col(0)?, r.col(1)?, fields))
}

pub(crate) fn consent(r: &dyn Row) -> StoreResult<ConsentRecord> {
    let channels: String = r.col(8)?;
    Ok(ConsentRecord {
        id: r.col(0)?,
        subject_id: r.col(1)?,
        purpose: r.col(2)?,
        purpose_version: r.col(3)?,
        policy_version: r.col(4)?,
        granted: r.col(5)?,
        given_by: r.col(6)?,
        capture_channel: r.col(7)?,
        // Channel names are policy identifiers (validated before they are stored, no commas):
        // kept comma-joined, which the contactable query matches on.
        contact_channels: if channels.is_empty() {
            Vec::new()
        } else {
            channels.split(',').map(str::to_owned).collect()
        },
        guardian_subject_id: r.col(9)?,
        guardian_details: r.col(10)?,
        evidence: r.col(11)?,
        evidence_sha256: r.col(12)?,
        recorded_by: r.col(13)?,
        at_micros: r.col(14)?,
    })
}

pub(crate) fn relation(r: &dyn Row) -> StoreResult<RelationRecord> {
    Ok(RelationRecord {
        id: r.col(0)?,
        subject_id: r.col(1)?,
        kind: r.col(2)?,
        related_subject_id: r.col(3)?,
        evidence: r.col(4)?,
        evidence_sha256: r.col(5)?,
        recorded_by: r.col(6)?,
        at_micros: r.col(7)?,
    })
}

pub(crate) fn audit(r: &dyn Row) -> StoreResult<AuditRecord> {
    let seq = r.col::<i64>(0)?;
    let fields: String = r.col(10)?;
    let outcome: String = r.col(7)?;
    // Only a name Amanah writes can be in the log: any other text was written behind the
    // store's back, and the row is refused like a malformed one (its text is not repeated).
    let action = r
        .col::<String>(4)?
        .parse()
        .map_err(|_| StoreError::AlteredAuditEntry { seq: seq as u64 })?;
    Ok(AuditRecord {
        seq: seq as u64,
        entry: AuditDraft {
            at_micros: r.col(1)?,
            actor: r.col(2)?,
            role: r.col(3)?,
            action,
            purpose: r.col(5)?,
            basis: r.col(6)?,
            // An unknown outcome string can only come from tampering; the chain check reports it.
            outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Denied),
            reason: r.col(8)?,
            subject: r.col(9)?,
            fields: crate::lists::decode(&fields),
            policy_version: r.col(11)?,
        },
        hash: to_hash(&r.col::<Vec<u8>>(12)?),
    })
}

/// Reads audit rows into chain links on the thread that reads them (a store reader), MAC
/// included, so verifying a page is a comparison per link (`amanah audit verify` reads every
/// entry). It is fed the rows of [`crate::sql::AUDIT_AFTER`] from entry `after` itself (the row
/// before the page, whose stored hash the first link chains from; the genesis hash when
/// `after` is 0): each link's MAC is taken over the stored hash of the row read before it. A
/// page whose row `after` is gone keeps the canonical bytes of its first link for the
/// verifier. The bytes are those [`audit`]'s record would give: an unknown action is refused
/// the same way, an unknown outcome reads as `denied`, the field list decodes as
/// [`crate::lists::decode`] does.
pub(crate) struct LinkReader {
    key: AuditKey,
    after: u64,
    want: usize,
    /// The stored hash of the row read last (what the next link chains from).
    from: Option<[u8; 32]>,
    first: bool,
    buf: Vec<u8>,
    pub(crate) links: Vec<ChainLink>,
}

impl LinkReader {
    /// Links for the entries after `after`, at most `want`.
    pub(crate) fn new(key: AuditKey, after: u64, want: usize) -> Self {
        LinkReader {
            key,
            after,
            want,
            from: (after == 0).then_some(GENESIS),
            first: true,
            buf: Vec::with_capacity(512),
            links: Vec::with_capacity(want.min(16_384)),
        }
    }

    /// The `seq >` bound and the row limit of the read: from entry `after` itself.
    pub(crate) fn bounds(&self) -> (i64, usize) {
        let after = i64::try_from(self.after).unwrap_or(i64::MAX);
        if self.after == 0 {
            (0, self.want)
        } else {
            (after - 1, self.want.saturating_add(1))
        }
    }

    /// Reads one row; `false` once `want` links are read.
    pub(crate) fn step(&mut self, r: &dyn Row) -> StoreResult<bool> {
        let seq = r.col::<i64>(0)?;
        let hash = to_hash(not_null(r.blob_ref(12)?, 12)?);
        if std::mem::take(&mut self.first) && self.after > 0 && seq as u64 == self.after {
            // The row before the page: checked with the page before; only its hash is used.
            self.from = Some(hash);
            return Ok(true);
        }
        if self.links.len() >= self.want {
            return Ok(false);
        }
        let link = match self.from {
            Some(from) => self.as_written(r, seq, from, hash),
            None => None,
        };
        let link = match link {
            Some(link) => link,
            None => self.checked(r, seq, hash)?,
        };
        self.from = Some(link.hash);
        self.links.push(link);
        Ok(true)
    }

    /// The link of a row as Amanah writes it, read in place: its text columns as bytes (no
    /// UTF-8 check) and a field list without escapes ([`crate::lists::Plain`]). Only a link
    /// whose MAC matches the stored hash is kept: then its bytes are those the writer MACed,
    /// text it held as strings. Anything else (no match, a list in another form, a column of
    /// another type) is `None`, and the row is read again by [`Self::checked`], which refuses
    /// what [`audit`] refuses.
    fn as_written(
        &mut self,
        r: &dyn Row,
        seq: i64,
        from: [u8; 32],
        hash: [u8; 32],
    ) -> Option<ChainLink> {
        let text = |i| r.text_bytes(i).ok().flatten();
        let action = r.text_ref(4).ok()??.parse::<AuditAction>().ok()?;
        let outcome = Outcome::parse(r.text_ref(7).ok()??)?;
        let fields = crate::lists::Plain::read(text(10)?)?;
        let parts = EntryParts {
            at_micros: r.col(1).ok()?,
            actor: text(2)?,
            role: text(3)?,
            action: action.as_str().as_bytes(),
            purpose: r.text_bytes(5).ok()?,
            basis: r.text_bytes(6).ok()?,
            outcome: outcome.as_str().as_bytes(),
            reason: r.text_bytes(8).ok()?,
            subject: r.text_bytes(9).ok()?,
            fields: &fields,
            policy_version: text(11)?,
        };
        let link = ChainLink::new(
            &self.key,
            Some(&from),
            seq as u64,
            &parts,
            hash,
            &mut self.buf,
        );
        match link.check {
            LinkCheck::Mac { mac, .. } if mac == hash => Some(link),
            _ => None,
        }
    }

    /// The link of a row read as [`audit`] reads its record: every text checked, an unknown
    /// action refused, an unknown outcome read as `denied`, the field list decoded.
    fn checked(&mut self, r: &dyn Row, seq: i64, hash: [u8; 32]) -> StoreResult<ChainLink> {
        let text = |i| not_null(r.text_ref(i)?, i);
        let action = text(4)?
            .parse::<AuditAction>()
            .map_err(|_| StoreError::AlteredAuditEntry { seq: seq as u64 })?;
        let outcome = Outcome::parse(text(7)?).unwrap_or(Outcome::Denied);
        let stored = text(10)?;
        // Category names hold no escapes: borrowed in every entry Amanah writes.
        match serde_json::from_str::<Vec<&str>>(stored) {
            Ok(fields) => self.link(r, seq, action, outcome, &fields, hash),
            Err(_) => {
                let fields = crate::lists::decode(stored);
                self.link(r, seq, action, outcome, &fields, hash)
            }
        }
    }

    fn link(
        &mut self,
        r: &dyn Row,
        seq: i64,
        action: AuditAction,
        outcome: Outcome,
        fields: &(impl FieldList + ?Sized),
        hash: [u8; 32],
    ) -> StoreResult<ChainLink> {
        let text = |i| not_null(r.text_ref(i)?, i).map(str::as_bytes);
        let opt = |i| r.text_ref(i).map(|t| t.map(str::as_bytes));
        let parts = EntryParts {
            at_micros: r.col(1)?,
            actor: text(2)?,
            role: text(3)?,
            action: action.as_str().as_bytes(),
            purpose: opt(5)?,
            basis: opt(6)?,
            outcome: outcome.as_str().as_bytes(),
            reason: opt(8)?,
            subject: opt(9)?,
            fields,
            policy_version: text(11)?,
        };
        Ok(ChainLink::new(
            &self.key,
            self.from.as_ref(),
            seq as u64,
            &parts,
            hash,
            &mut self.buf,
        ))
    }
}

/// The signed head: (seq, hash, mac).
pub(crate) fn head(r: &dyn Row) -> StoreResult<(u64, [u8; 32], [u8; 32])> {
    Ok((
        r.col::<i64>(0)? as u64,
        to_hash(&r.col::<Vec<u8>>(1)?),
        to_hash(&r.col::<Vec<u8>>(2)?),
    ))
}

/// An API key row and its MAC (checked by `integrity`).
pub(crate) fn api_key(r: &dyn Row) -> StoreResult<(ApiKeyRecord, Option<Vec<u8>>)> {
    let record = ApiKeyRecord {
        id: r.col(0)?,
        name: r.col(1)?,
        role: r.col(2)?,
        token_hash: r.col(3)?,
        created_at_micros: r.col(4)?,
        revoked_at_micros: r.col(5)?,
        holder: r.col(6)?,
    };
    Ok((record, r.col(7)?))
}

/// A policy version row and its MAC (checked by `integrity`).
pub(crate) fn policy(r: &dyn Row) -> StoreResult<(PolicyRecord, Option<Vec<u8>>)> {
    let record = PolicyRecord {
        seq: r.col(0)?,
        version: r.col(1)?,
        source: r.col(2)?,
        sha256: r.col(3)?,
        applied_at_micros: r.col(4)?,
    };
    Ok((record, r.col(5)?))
}

pub(crate) fn request(r: &dyn Row) -> StoreResult<RequestRecord> {
    Ok(RequestRecord {
        id: r.col(0)?,
        subject_id: r.col(1)?,
        kind: r.col(2)?,
        status: r.col(3)?,
        details: r.col(4)?,
        received_at_micros: r.col(5)?,
        due_at_micros: r.col(6)?,
        updated_at_micros: r.col(7)?,
        refusal_reason: r.col(8)?,
        refusal_text: r.col(9)?,
        closed_at_micros: r.col(10)?,
        received_by: r.col(11)?,
    })
}

pub(crate) fn tenant(r: &dyn Row) -> StoreResult<crate::TenantRecord> {
    Ok(crate::TenantRecord {
        id: r.col(0)?,
        name: r.col(1)?,
        status: r.col(2)?,
        sealed_keys: r.col(3)?,
        sealed_placement: r.col(4)?,
        max_subjects: r.col(5)?,
        max_rps: r.col(6)?,
        created_at_micros: r.col(7)?,
        changed_at_micros: r.col(8)?,
        purged: r.col(9)?,
    })
}

pub(crate) fn hold(r: &dyn Row) -> StoreResult<HoldRecord> {
    Ok(HoldRecord {
        id: r.col(0)?,
        subject_id: r.col(1)?,
        reason: r.col(2)?,
        until: r.col(3)?,
        created_at_micros: r.col(4)?,
        created_by: r.col(5)?,
        released_at_micros: r.col(6)?,
    })
}

pub(crate) fn restriction(r: &dyn Row) -> StoreResult<RestrictionRecord> {
    Ok(RestrictionRecord {
        since_micros: r.col(0)?,
        reason: r.col(1)?,
        by: r.col::<Option<String>>(2)?.unwrap_or_default(),
    })
}

/// A disclosure without its subjects (they are read from `disclosure_subjects`).
pub(crate) fn disclosure(r: &dyn Row) -> StoreResult<DisclosureRecord> {
    Ok(DisclosureRecord {
        id: r.col(0)?,
        recipient: r.col(1)?,
        purpose: r.col(2)?,
        subject_ids: Vec::new(),
        categories: crate::lists::decode(&r.col::<String>(3)?),
        reason: r.col(4)?,
        reference: r.col(5)?,
        status: r.col(6)?,
        requested_by: r.col(7)?,
        requested_at_micros: r.col(8)?,
        approved_by: r.col(9)?,
        approved_at_micros: r.col(10)?,
        authorized_by: r.col(11)?,
        authorized_at_micros: r.col(12)?,
        rejected_by: r.col(13)?,
        rejected_at_micros: r.col(14)?,
        rejection_reason: r.col(15)?,
        releases: count(r.col(16)?),
        max_releases: count(r.col(17)?),
        first_released_at_micros: r.col(18)?,
        last_released_at_micros: r.col(19)?,
        notification_deferred_until: r.col(20)?,
        deferral_reason: r.col(21)?,
        excluded: r.col(22)?,
    })
}

/// A breach without its subjects (they are read from `breach_subjects`).
pub(crate) fn breach(r: &dyn Row) -> StoreResult<BreachRecord> {
    Ok(BreachRecord {
        id: r.col(0)?,
        detected_at_micros: r.col(1)?,
        recorded_at_micros: r.col(2)?,
        recorded_by: r.col(3)?,
        description: r.col(4)?,
        categories: crate::lists::decode(&r.col::<String>(5)?),
        all_subjects: r.col(6)?,
        subject_ids: Vec::new(),
        cause: r.col(7)?,
        measures: r.col(8)?,
        notify_by_micros: r.col(9)?,
        notified_at_micros: r.col(10)?,
        notified_by: r.col(11)?,
    })
}
