//! The audit trail as the vault serves it: entries, and the verification of the chain.

use amanah_core::audit::{AuditRecord, ChainBreak, ChainVerifier};
use amanah_core::{Error, Result};

use amanah_store::StoreError;

use crate::authz::{act, Permit};
use crate::vault::{hex, store_error, Vault};

/// Audit entries per verification page.
const VERIFY_PAGE: usize = 10_000;

/// Result of verifying the audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    /// Hex hash of the last entry (the chain head) when intact.
    pub head: Option<String>,
    pub first_bad: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

impl Vault {
    /// Audit entries, oldest first (admin only).
    pub async fn audit_entries(
        &self,
        permit: &Permit<act::AuditRead>,
        subject: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let draft = permit.draft();
        let entries = self
            .store
            .audit_entries(subject, after, limit)
            .await
            .map_err(store_error)?;
        self.record(draft).await?;
        Ok(entries)
    }

    /// Verifies the whole chain (admin only over HTTP; the CLI passes a local admin principal).
    pub async fn verify_audit(&self, _permit: &Permit<act::AuditVerify>) -> Result<VerifyReport> {
        self.verify_chain().await
    }

    /// Moves everything committed into the store's database files (after a bulk import).
    pub async fn flush(&self) -> Result<()> {
        self.store.flush().await.map_err(store_error)
    }

    /// Verifies the chain without recording anything (used by `amanah audit verify`). Runs
    /// while the server writes: it pages to the end, then reads the signed head; entries
    /// committed meanwhile move the head on, and paging resumes until both meet.
    pub async fn verify_chain(&self) -> Result<VerifyReport> {
        let key = self.keys().audit_key();
        let mut verifier = ChainVerifier::new(&key);
        let broken = |verifier: &ChainVerifier<'_>, b| VerifyReport {
            entries: verifier.count(),
            head: None,
            first_bad: Some(b),
        };
        let mut checked_at: Option<u64> = None;
        loop {
            // Sequence numbers are dense, so the pages to come are known in advance: two are
            // read ahead (on the store's reader threads) while one is checked. A gap makes the
            // page that holds it fail verification before any later page matters.
            // Each page's MACs are computed by the reader that reads it.
            let fetch = |after: u64| {
                let (store, key) = (self.store.clone(), key.clone());
                tokio::spawn(async move { store.audit_links(&key, after, VERIFY_PAGE).await })
            };
            let page_len = VERIFY_PAGE as u64;
            let start = verifier.count();
            let mut ahead: std::collections::VecDeque<_> =
                (0..3).map(|k| fetch(start + k * page_len)).collect();
            let mut requested = start + 3 * page_len;
            while let Some(task) = ahead.pop_front() {
                let page = match task
                    .await
                    .map_err(|e| Error::Internal(format!("audit page reader failed: {e}")))?
                {
                    Ok(page) => page,
                    Err(StoreError::AlteredAuditEntry { seq }) => {
                        ahead.iter().for_each(|t| t.abort());
                        // A row the store refuses to read is a break at that entry, reported
                        // like any other once the entries before it are checked (the first
                        // break is the one an auditor gets).
                        let before = seq.saturating_sub(verifier.count() + 1) as usize;
                        let earlier = self
                            .store
                            .audit_links(&key, verifier.count(), before)
                            .await
                            .map_err(store_error)?;
                        if let Err(b) = verifier.push_links(&earlier) {
                            return Ok(broken(&verifier, b));
                        }
                        return Ok(broken(&verifier, ChainBreak::Hash { seq }));
                    }
                    Err(e) => return Err(store_error(e)),
                };
                if page.is_empty() {
                    break;
                }
                ahead.push_back(fetch(requested));
                requested += page_len;
                if let Err(b) = verifier.push_links(&page) {
                    ahead.iter().for_each(|t| t.abort());
                    return Ok(broken(&verifier, b));
                }
                if page.len() < VERIFY_PAGE {
                    break;
                }
            }
            ahead.iter().for_each(|t| t.abort());
            let head = self.store.audit_head().await.map_err(store_error)?;
            if let Some((seq, _, _)) = head.filter(|(seq, _, _)| *seq > verifier.count()) {
                // The head is ahead: either entries were committed meanwhile (page on), or
                // entries before it were removed (no progress since the last look).
                if checked_at == Some(verifier.count()) {
                    let last = verifier.count();
                    return Ok(broken(&verifier, ChainBreak::Head { last, head: seq }));
                }
                checked_at = Some(verifier.count());
                continue;
            }
            let entries = verifier.count();
            return Ok(match verifier.finish(head) {
                Ok(h) => VerifyReport {
                    entries,
                    head: Some(hex(&h)),
                    first_bad: None,
                },
                Err(b) => VerifyReport {
                    entries,
                    head: None,
                    first_bad: Some(b),
                },
            });
        }
    }
}
