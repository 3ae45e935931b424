//! Erasure by crypto-shredding, and the retention sweep that erases or de-identifies when a purpose's retention ends.

use super::holds::hold_active;
use super::*;

/// What a retention sweep did (or, in a dry run, would do) with one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepItem {
    pub subject_id: String,
    pub action: RetentionAction,
    /// Set when a legal hold suspended the action.
    pub held_until: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub examined: u64,
    pub items: Vec<SweepItem>,
    pub dry_run: bool,
}

impl Vault {
    /// Erases a subject (UU PDP Art. 43-44) by destroying their data key and deleting every
    /// ciphertext and index term; refused with 409 while a legal hold runs. With `request`, the
    /// erasure answers that request.
    pub async fn erase_subject(
        &self,
        permit: &Permit<act::SubjectErase>,
        request: Option<&str>,
    ) -> Result<()> {
        let who = permit.principal();
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        if let Some(r) = request {
            let ok = self
                .store
                .load_request(r)
                .await
                .map_err(store_error)?
                .is_some_and(|q| {
                    q.subject_id == id
                        && q.kind == RequestType::Erasure.as_str()
                        && RequestStatus::parse(&q.status).is_some_and(RequestStatus::is_open)
                });
            if !ok {
                let err = Error::invalid(
                    "request",
                    format!("request {r} is not an open erasure request of subject {id}"),
                );
                return Err(self.deny(draft, err).await);
            }
        }
        let holds = self.holds_of(id, &key, draft.at_micros).await?;
        if let Some(h) = holds.iter().find(|h| h.active) {
            let err = Error::Conflict(
                Conflict::LegalHoldActive,
                format!(
                    "subject {id} is under a legal hold until {}: {}",
                    h.record.until, h.reason
                ),
            );
            // The refusal is recorded without the hold's free text.
            let mut refused = draft.clone();
            refused.outcome = amanah_core::audit::Outcome::Denied;
            refused.reason = Some(format!(
                "legal hold {} until {}",
                h.record.id, h.record.until
            ));
            self.store
                .append_audit(vec![refused])
                .await
                .map_err(store_error)?;
            return Err(err);
        }
        let cause = match request {
            Some(r) => format!("request {r}"),
            None => format!("erased by {}", who.key_id()),
        };
        draft.reason = Some(cause.clone());
        let at = draft.at_micros;
        self.store
            .erase_subject(id, at, &cause, draft)
            .await
            .map_err(store_error)?;
        self.subject_quota.release(1);
        self.delete_erased_objects().await;
        Ok(())
    }

    /// Records the end of the relationship: purposes with `retention_from =
    /// "relationship_end"` start counting.
    pub async fn end_relationship(&self, permit: &Permit<act::SubjectEnd>) -> Result<()> {
        let id = permit.subject()?;
        let draft = permit.draft();
        let stored = self.load_or_deny(id, &draft).await?;
        self.admit(permit, stored, Circumstances::default(), &draft)
            .await?;
        let at = draft.at_micros;
        self.store
            .end_relationship(id, at, draft)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Applies the policy's retention to every subject (admin, the DPO, or the CLI). A dry run
    /// only reports. `progress(examined)` is called after each page.
    pub async fn retention_sweep(
        &self,
        permit: &Permit<act::RetentionSweep>,
        dry_run: bool,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<SweepReport> {
        let policy = permit.policy();
        let who = permit.principal();
        let mut draft = permit.draft();
        let now = self.clock.now_micros();
        let mut report = SweepReport {
            dry_run,
            ..SweepReport::default()
        };
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .retention_page(after.as_deref(), SWEEP_PAGE)
                .await
                .map_err(store_error)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for subject in page {
                report.examined += 1;
                if let Some(item) = self.sweep_one(who, policy, &subject, now, dry_run).await? {
                    report.items.push(item);
                }
            }
            progress(report.examined);
        }
        let acted = report
            .items
            .iter()
            .filter(|i| i.held_until.is_none())
            .count();
        draft.reason = Some(format!(
            "{}{} subjects examined, {acted} acted on, {} suspended by holds",
            if dry_run { "dry run: " } else { "" },
            report.examined,
            report.items.len() - acted
        ));
        self.record(draft).await?;
        if !dry_run {
            self.delete_erased_objects().await;
        }
        Ok(report)
    }

    async fn sweep_one(
        &self,
        who: &Principal,
        policy: &Policy,
        s: &RetentionSubject,
        now: i64,
        dry_run: bool,
    ) -> Result<Option<SweepItem>> {
        let held: Vec<HeldPurpose> = s
            .purposes
            .iter()
            .map(|(p, at)| HeldPurpose {
                purpose: p.clone(),
                collected_at_micros: *at,
            })
            .collect();
        let action = retention::decide(
            policy,
            &held,
            &s.categories,
            s.relationship_ended_micros,
            now,
        );
        if action == RetentionAction::Keep {
            return Ok(None);
        }
        let held_until = s
            .holds_until
            .iter()
            .filter(|u| hold_active(u, None, now))
            .max()
            .cloned();
        let item = SweepItem {
            subject_id: s.id.clone(),
            action: action.clone(),
            held_until: held_until.clone(),
        };
        if dry_run || held_until.is_some() {
            return Ok(Some(item));
        }
        let mut draft = self.draft_for(who, AuditAction::RetentionApply, policy);
        draft.subject = Some(s.id.clone());
        let result = match &action {
            RetentionAction::Keep => Ok(()),
            RetentionAction::EraseCategories {
                expired,
                categories,
            } => {
                draft.fields = categories.clone();
                draft.reason = Some(format!("retention ended for {}", expired.join(", ")));
                self.store
                    .erase_categories(&s.id, categories.clone(), expired.clone(), draft)
                    .await
                    .map(|_| ())
            }
            RetentionAction::EraseSubject { expired } => {
                draft.reason = Some(format!(
                    "retention ended for {}: subject erased",
                    expired.join(", ")
                ));
                let erased = self
                    .store
                    .erase_subject(&s.id, now, "retention", draft)
                    .await
                    .map(|_| ());
                if erased.is_ok() {
                    self.subject_quota.release(1);
                }
                erased
            }
            RetentionAction::Deidentify { expired } => {
                let attributes = self.deidentified_attributes(policy, &s.id).await?;
                draft.reason = Some(format!(
                    "retention ended for {}: de-identified",
                    expired.join(", ")
                ));
                let record = DeidentifiedRecord {
                    id: uuid::Uuid::new_v4().to_string(),
                    purposes: expired.clone(),
                    attributes: Value::Object(attributes).to_string(),
                    created_on: today(now),
                };
                self.store
                    .deidentify_subject(&s.id, now, record, draft)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) | Err(StoreError::NotFound) => Ok(Some(item)),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The de-identified attributes kept for a subject (birth year, NIK province).
    async fn deidentified_attributes(
        &self,
        policy: &Policy,
        id: &str,
    ) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        let Some(stored) = self.store.load_subject(id).await.map_err(store_error)? else {
            return Ok(out);
        };
        let key = self.unwrap_key(&stored)?;
        for (category, ciphertext) in sealed_fields(&stored)? {
            let Some(cat) = policy.category(category) else {
                continue;
            };
            let plain = self.open_text(&key, id, category, ciphertext)?;
            if let Some(v) = retention::deidentify(cat.field_type, &plain) {
                out.insert(category.clone(), Value::String(v));
            }
        }
        Ok(out)
    }
}
