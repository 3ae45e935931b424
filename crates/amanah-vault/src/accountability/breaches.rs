//! Breaches: recorded, their notices to the agency and to the people affected, a page at a time.

use super::*;

/// What a breach report says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreachInput {
    /// RFC 3339.
    pub detected_at: String,
    pub description: String,
    pub categories: Vec<String>,
    pub subject_ids: Option<Vec<String>>,
    pub all_subjects: bool,
    pub cause: String,
    pub measures: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachView {
    pub record: BreachRecord,
    pub overdue: bool,
}

/// One notice of a breach, in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeView {
    /// `subject` or `agency`.
    pub audience: &'static str,
    pub subject_id: Option<String>,
    /// Where to send it (the subject's e-mail addresses and phone numbers, decrypted for the
    /// notice only).
    pub send_to: Vec<String>,
    pub notice: breach::Notice,
}

impl Vault {
    // ---------------------------------------------------------------- breaches

    /// Records a breach (the admin or the DPO); notices are due 72 hours after detection.
    pub async fn record_breach(
        &self,
        permit: &Permit<act::BreachRecord>,
        input: &BreachInput,
    ) -> Result<BreachView> {
        let policy = permit.policy();
        let who = permit.principal();
        let mut draft = permit.draft();
        let detected = parse_instant("detected_at", &input.detected_at)?;
        let now = draft.at_micros;
        if detected > now {
            return Err(Error::invalid(
                "detected_at",
                "`detected_at` may not be in the future",
            ));
        }
        let mut unknown: Vec<&str> = input
            .categories
            .iter()
            .filter(|c| policy.category(c).is_none())
            .map(String::as_str)
            .collect();
        unknown.dedup();
        if input.categories.is_empty() || !unknown.is_empty() {
            return Err(Error::invalid(
                "categories",
                format!(
                    "`categories` must name the policy's categories exposed; unknown: {}",
                    unknown.join(", ")
                ),
            ));
        }
        let subject_ids = match (&input.subject_ids, input.all_subjects) {
            (Some(ids), false) => subject_list("subject_ids", ids)?,
            (None, true) => Vec::new(),
            _ => {
                return Err(Error::invalid(
                    "subject_ids",
                    "give either `subject_ids` or `all_subjects: true`",
                ))
            }
        };
        for sid in &subject_ids {
            self.load_or_deny(sid, &draft).await?;
        }
        let mut categories = input.categories.clone();
        categories.sort();
        categories.dedup();
        let id = uuid::Uuid::new_v4().to_string();
        let record = BreachRecord {
            id: id.clone(),
            detected_at_micros: detected,
            recorded_at_micros: now,
            recorded_by: who.key_id().to_owned(),
            description: text("description", &input.description)?,
            categories,
            all_subjects: input.all_subjects,
            subject_ids,
            cause: text("cause", &input.cause)?,
            measures: text("measures", &input.measures)?,
            notify_by_micros: breach::notify_by(detected),
            notified_at_micros: None,
            notified_by: None,
        };
        draft.fields = record.categories.clone();
        draft.reason = Some(format!(
            "breach {id} recorded; notices due {}",
            Timestamp::from_micros(record.notify_by_micros)
        ));
        self.store
            .insert_breach(record.clone(), draft)
            .await
            .map_err(store_error)?;
        self.refresh_breach_gauges().await;
        Ok(BreachView {
            overdue: breach::is_overdue(None, record.notify_by_micros, now),
            record,
        })
    }

    async fn breach_for(&self, id: &str, draft: &AuditDraft) -> Result<BreachRecord> {
        match self.store.load_breach(id).await.map_err(store_error)? {
            Some(b) => Ok(b),
            None => Err(self
                .deny(
                    draft.clone(),
                    Error::NotFound(format!("no breach {}", crate::vault::id_shown(id))),
                )
                .await),
        }
    }

    fn breach_view(&self, record: BreachRecord) -> BreachView {
        BreachView {
            overdue: breach::is_overdue(
                record.notified_at_micros,
                record.notify_by_micros,
                self.clock.now_micros(),
            ),
            record,
        }
    }

    pub async fn get_breach(
        &self,
        permit: &Permit<act::BreachRead>,
        id: &str,
    ) -> Result<BreachView> {
        let draft = permit.draft();
        Ok(self.breach_view(self.breach_for(id, &draft).await?))
    }

    /// Breaches, newest first; `overdue` keeps those not notified past their deadline.
    pub async fn list_breaches(
        &self,
        _permit: &Permit<act::BreachList>,
        overdue: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<BreachView>> {
        let now = self.clock.now_micros();
        Ok(self
            .store
            .list_breaches(overdue.then_some(now), after, limit)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|b| self.breach_view(b))
            .collect())
    }

    /// The notices of a breach: one per affected subject (their contact details decrypted into
    /// the notice only, one audit entry per subject) and one for the agency.
    pub async fn breach_notices(
        &self,
        permit: &Permit<act::BreachNotices>,
        id: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<crate::Page<NoticeView>> {
        let limit = crate::consent::page_limit(limit)?;
        let policy = permit.policy();
        let mut draft = permit.draft();
        let b = self.breach_for(id, &draft).await?;
        draft.reason = Some(format!("notice of breach {id}"));
        let facts = BreachFacts {
            id: &b.id,
            detected_micros: b.detected_at_micros,
            description: &b.description,
            cause: &b.cause,
            measures: &b.measures,
            categories: &b.categories,
            controller: &policy.controller.name,
            controller_contact: &policy.controller.contact,
        };
        // One page of subjects per call: each notice decrypts a person's contact details and
        // leaves an audit entry, so no call may touch every subject at once.
        let ids: Vec<String> = if b.all_subjects {
            self.store
                .subject_ids(after, limit)
                .await
                .map_err(store_error)?
        } else {
            let mut named = b.subject_ids.clone();
            named.sort();
            named
                .into_iter()
                .filter(|s| after.is_none_or(|a| s.as_str() > a))
                .take(limit)
                .collect()
        };
        let next = (ids.len() == limit).then(|| ids.last().cloned()).flatten();
        let name_cat = policy
            .categories
            .values()
            .find(|c| c.field_type == FieldType::Name)
            .map(|c| c.name.clone());
        let contact_cats: Vec<String> = policy
            .categories
            .values()
            .filter(|c| matches!(c.field_type, FieldType::Email | FieldType::Phone))
            .map(|c| c.name.clone())
            .collect();
        let mut notices = Vec::with_capacity(ids.len() + 1);
        let mut entries = Vec::with_capacity(ids.len() + 1);
        let mut affected = 0u64;
        for sid in &ids {
            // Erased since: nobody left to tell, nothing left to expose.
            let Some(stored) = self.store.load_subject(sid).await.map_err(store_error)? else {
                continue;
            };
            affected += 1;
            let key = self.unwrap_key(&stored)?;
            let mut name = None;
            let mut send_to = Vec::new();
            let mut read = Vec::new();
            for (category, ciphertext) in sealed_fields(&stored)? {
                let is_name = name_cat.as_deref() == Some(category.as_str());
                if !is_name && !contact_cats.contains(category) {
                    continue;
                }
                let plain = key.open_field(sid, category, ciphertext).map_err(|err| {
                    Error::Internal(format!("subject {sid}: field {category}: {err}"))
                })?;
                let plain = String::from_utf8_lossy(&plain).into_owned();
                read.push(category.clone());
                if is_name {
                    name = Some(plain);
                } else {
                    send_to.push(plain);
                }
            }
            let notice = breach::notice(
                &facts,
                &Audience::Subject {
                    name: name.as_deref(),
                    contact: &send_to,
                },
            );
            let mut e = draft.clone();
            e.subject = Some(sid.clone());
            e.fields = read;
            entries.push(e);
            notices.push(NoticeView {
                audience: "subject",
                subject_id: Some(sid.clone()),
                send_to,
                notice,
            });
        }
        // The agency's notice comes with the first page, counting every affected subject (ids
        // only: nothing is decrypted for it).
        if after.is_none() {
            let affected = if b.all_subjects {
                self.count_subjects().await?
            } else if next.is_none() {
                affected
            } else {
                b.subject_ids.len() as u64
            };
            notices.push(NoticeView {
                audience: "agency",
                subject_id: None,
                send_to: Vec::new(),
                notice: breach::notice(&facts, &Audience::Agency { affected }),
            });
        }
        entries.push(draft);
        self.store
            .append_audit(entries)
            .await
            .map_err(store_error)?;
        Ok(crate::Page {
            items: notices,
            next,
        })
    }

    /// How many subjects the vault holds (ids paged, nothing decrypted).
    async fn count_subjects(&self) -> Result<u64> {
        let mut count = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .subject_ids(after.as_deref(), 10_000)
                .await
                .map_err(store_error)?;
            let Some(last) = page.last().cloned() else {
                return Ok(count);
            };
            count += page.len() as u64;
            after = Some(last);
        }
    }

    /// Marks a breach's notices sent.
    pub async fn mark_breach_notified(
        &self,
        permit: &Permit<act::BreachNotified>,
        id: &str,
    ) -> Result<BreachView> {
        let who = permit.principal();
        let mut draft = permit.draft();
        let b = self.breach_for(id, &draft).await?;
        if b.notified_at_micros.is_some() {
            return Err(already_notified(id));
        }
        draft.reason = Some(format!("notices of breach {id} sent"));
        let now = draft.at_micros;
        match self
            .store
            .mark_breach_notified(&b.id, who.key_id(), now, draft)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Changed) => return Err(already_notified(id)),
            Err(e) => return Err(store_error(e)),
        }
        self.refresh_breach_gauges().await;
        let updated = self
            .store
            .load_breach(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::NotFound(format!("no breach {}", crate::vault::id_shown(id))))?;
        Ok(self.breach_view(updated))
    }

    /// Updates the open / overdue breach gauges (called after changes and periodically).
    pub async fn refresh_breach_gauges(&self) {
        match self.store.count_breaches(self.clock.now_micros()).await {
            Ok((open, overdue)) => {
                metrics::gauge!("amanah_breaches_unnotified").set(open as f64);
                metrics::gauge!("amanah_breaches_overdue").set(overdue as f64);
            }
            Err(e) => tracing::warn!(error = %e, "could not count breaches"),
        }
    }
}

/// A breach's notices are marked sent once.
fn already_notified(id: &str) -> Error {
    Error::Conflict(
        Conflict::InvalidTransition,
        format!("the notices of breach {id} were already marked sent"),
    )
}
