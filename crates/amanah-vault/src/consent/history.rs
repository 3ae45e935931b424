//! Reading consent: a subject's history and current state per purpose, stale consents after a policy change, and who may be contacted on which channel.

use super::*;

/// One decision of a subject's history. Evidence and guardian details are decrypted for the
/// admin only; other roles see their fingerprints.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentView {
    pub record: ConsentRecord,
    pub evidence: Option<String>,
    pub guardian_details: Option<Value>,
}

/// The state of one consent-based purpose for a subject, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeConsent {
    pub purpose: String,
    /// `valid`, `withdrawal_pending`, `withdrawn`, `stale`, `guardian_required` or `none`.
    pub state: &'static str,
    /// Why processing is refused, when it is.
    pub detail: Option<String>,
    /// The grant in force (valid or pending withdrawal).
    pub consent_id: Option<String>,
    /// When a pending withdrawal takes effect.
    pub effective_until_micros: Option<i64>,
    pub contact_channels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsentHistory {
    pub subject_id: String,
    pub minor: bool,
    pub events: Vec<ConsentView>,
    pub current: Vec<PurposeConsent>,
}

/// A page of subject ids and the cursor for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A subject whose consent predates the purpose's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleConsent {
    pub subject_id: String,
    pub consent_id: String,
    pub policy_version: String,
    pub at_micros: i64,
}

impl Vault {
    /// A subject's consent history (oldest first) and the current state of each consent-based
    /// purpose. Roles other than admin see only the purposes they hold, without evidence.
    pub async fn consent_history(
        &self,
        permit: &Permit<act::ConsentRead>,
    ) -> Result<ConsentHistory> {
        let policy = permit.policy();
        let who = permit.principal();
        let subject_id = permit.subject()?;
        let mut draft = permit.draft();
        let admitted = self
            .admit_subject(permit, Circumstances::default(), &draft)
            .await?;
        let own = permit.own_data();
        let holds = |purpose: &str| {
            own || who.is_admin()
                || policy
                    .role(who.role())
                    .is_some_and(|r| r.purposes.iter().any(|p| p == purpose))
        };
        let key = &admitted.key;
        let minor = admitted.minor;
        let records = self.store.consents(subject_id).await.map_err(store_error)?;
        let all_events = events(&records);
        let now = self.clock.now_micros();
        let mut current = Vec::new();
        for (name, p) in &policy.purposes {
            if p.basis != LegalBasis::Consent || !holds(name) {
                continue;
            }
            let version = policy.purpose_version(name).unwrap_or_default();
            let result = consent::evaluate(
                &all_events,
                name,
                &version,
                &policy.version,
                now,
                policy.settings.withdrawal_grace_days,
                minor,
            );
            let channels_of = |id: &str| {
                records
                    .iter()
                    .find(|r| r.id == id)
                    .map(|r| r.contact_channels.clone())
                    .unwrap_or_default()
            };
            current.push(match result {
                Ok(v) => PurposeConsent {
                    purpose: name.clone(),
                    state: if v.withdrawal_effective_micros.is_some() {
                        "withdrawal_pending"
                    } else {
                        "valid"
                    },
                    detail: None,
                    consent_id: Some(v.grant.id.clone()),
                    effective_until_micros: v.withdrawal_effective_micros,
                    // Contact stops at once on withdrawal.
                    contact_channels: if v.withdrawal_effective_micros.is_some() {
                        Vec::new()
                    } else {
                        channels_of(&v.grant.id)
                    },
                },
                Err(d) => PurposeConsent {
                    purpose: name.clone(),
                    state: match d {
                        ConsentDenial::NoConsent { .. } => "none",
                        ConsentDenial::Withdrawn { .. } => "withdrawn",
                        ConsentDenial::Stale { .. } => "stale",
                        ConsentDenial::GuardianRequired { .. } => "guardian_required",
                    },
                    detail: Some(d.to_string()),
                    consent_id: None,
                    effective_until_micros: None,
                    contact_channels: Vec::new(),
                },
            });
        }
        let mut views = Vec::new();
        for r in records.into_iter().filter(|r| holds(&r.purpose)) {
            let open = |field: &str, sealed: &Option<Vec<u8>>| -> Result<Option<String>> {
                match sealed {
                    Some(c) if who.is_admin() => {
                        let plain = key
                            .open_field(subject_id, &format!("{field}:{}", r.id), c)
                            .map_err(|e| Error::Internal(format!("consent {}: {e}", r.id)))?;
                        Ok(Some(String::from_utf8_lossy(&plain).into_owned()))
                    }
                    _ => Ok(None),
                }
            };
            let evidence = open("consent.evidence", &r.evidence)?;
            let guardian_details = open("consent.guardian", &r.guardian_details)?
                .and_then(|s| serde_json::from_str(&s).ok());
            views.push(ConsentView {
                record: r,
                evidence,
                guardian_details,
            });
        }
        draft.reason = Some(format!("{} consent decisions", views.len()));
        self.record(draft).await?;
        Ok(ConsentHistory {
            subject_id: subject_id.to_owned(),
            minor,
            events: views,
            current,
        })
    }

    /// Subjects whose consent to `purpose` was given for an earlier version of it: they must be
    /// asked again before processing resumes. One audit entry per page.
    pub async fn stale_consents(
        &self,
        permit: &Permit<act::ConsentStale>,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<StaleConsent>> {
        let policy = permit.policy();
        let purpose = permit.purpose()?;
        let mut draft = permit.draft();
        consent_purpose(policy, purpose)?;
        let limit = page_limit(limit)?;
        let current_version = policy.purpose_version(purpose).unwrap_or_default();
        let found = self
            .store
            .select_consents(
                purpose,
                ConsentSelection::StaleFor { current_version },
                after,
                limit,
            )
            .await
            .map_err(store_error)?;
        let next = (found.len() == limit)
            .then(|| found.last().map(|r| r.subject_id.clone()))
            .flatten();
        let items: Vec<StaleConsent> = found
            .into_iter()
            .map(|r| StaleConsent {
                subject_id: r.subject_id,
                consent_id: r.id,
                policy_version: r.policy_version,
                at_micros: r.at_micros,
            })
            .collect();
        draft.reason = Some(format!("listed {} subjects to ask again", items.len()));
        self.record(draft).await?;
        Ok(Page { items, next })
    }

    /// Ids of subjects who may be contacted under `purpose` on `channel` now (what a campaign
    /// tool calls). Audited as one access per page.
    pub async fn contactable(
        &self,
        permit: &Permit<act::ContactList>,
        channel: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page<String>> {
        let policy = permit.policy();
        let purpose = permit.purpose()?;
        let mut draft = permit.draft();
        let p = consent_purpose(policy, purpose)?;
        if !consent::allowed_channels(p).contains(&channel) {
            return Err(Error::invalid(
                "channel",
                format!(
                    "purpose {purpose:?} does not use channel {channel:?}; it lists: {}",
                    consent::allowed_channels(p).join(", ")
                ),
            ));
        }
        let limit = page_limit(limit)?;
        let current_version = policy.purpose_version(purpose).unwrap_or_default();
        let mut items = Vec::new();
        let mut cursor = after.map(str::to_owned);
        let mut exhausted = false;
        let mut next = None;
        // Each call examines a bounded number of consent records, a full page or not: the
        // cursor lets the caller go on, so no call scans the whole table.
        let mut budget = limit.saturating_mul(SCAN_FACTOR);
        'pages: while !exhausted {
            let batch = self
                .store
                .select_consents(
                    purpose,
                    ConsentSelection::ContactableOn {
                        current_version: current_version.clone(),
                        channel: channel.to_owned(),
                    },
                    cursor.as_deref(),
                    limit,
                )
                .await
                .map_err(store_error)?;
            exhausted = batch.len() < limit;
            for r in batch {
                cursor = Some(r.subject_id.clone());
                budget = budget.saturating_sub(1);
                // A minor needs a guardian's grant and a role cleared for a child's data.
                // The per-subject decision: enrolled, a minor only for a cleared role, not
                // restricted (a restricted subject is not processed, so not contacted).
                let Some(stored) = self
                    .store
                    .load_subject(&r.subject_id)
                    .await
                    .map_err(store_error)?
                else {
                    continue;
                };
                let Ok(admitted) = self.admission(permit, stored, Circumstances::default())? else {
                    continue;
                };
                let minor = admitted.minor;
                let ok = consent::may_contact(
                    &events(std::slice::from_ref(&r)),
                    &r.contact_channels,
                    purpose,
                    &current_version,
                    minor,
                    channel,
                );
                if ok {
                    items.push(r.subject_id);
                    if items.len() == limit {
                        // Full page: the next one starts after this subject.
                        next = cursor;
                        break 'pages;
                    }
                }
                if budget == 0 {
                    // Examined enough for one call: the next page starts after this record.
                    next = cursor;
                    break 'pages;
                }
            }
        }
        draft.reason = Some(format!(
            "{} subjects contactable on channel {channel}",
            items.len()
        ));
        self.record(draft).await?;
        Ok(Page { items, next })
    }
}
