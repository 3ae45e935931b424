//! Disclosures to recipients: requested, approved and authorized by three people, released as what the requester may see in clear.

use super::*;

/// What a caller asks to disclose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisclosureInput {
    pub recipient: String,
    pub purpose: String,
    pub subject_ids: Vec<String>,
    pub categories: Vec<String>,
    pub reason: String,
    pub reference: Option<String>,
    /// 1..=10; default 3.
    pub max_releases: Option<u32>,
    /// When a subject lacks the consent the disclosure needs: `exclude` (default) leaves them
    /// out, `refuse` refuses the whole request.
    pub if_consent_missing: Option<String>,
    /// Authority orders only: tell the subjects no earlier than this day (`YYYY-MM-DD`).
    pub defer_notification_until: Option<String>,
    pub deferral_reason: Option<String>,
}

/// A subject left out of a disclosure, and why (no personal data: a rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    pub subject_id: String,
    pub reason: String,
}

/// A disclosure with what the policy says of its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureView {
    pub record: DisclosureRecord,
    pub excluded: Vec<Excluded>,
    /// `not_required`, `all_valid` or `subjects_excluded`.
    pub consent_check: &'static str,
    pub country: Option<String>,
    pub kind: Option<String>,
    pub transfer_basis: Option<String>,
    /// What a release would carry, as the approver and the authorizer decide on it.
    pub preview: ReleasePreview,
}

/// Exactly what a release of a disclosure would hand over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasePreview {
    /// Categories the package carries (in clear, or pseudonymized where the recipient asks).
    pub categories: Vec<String>,
    /// Requested categories withheld because the recipient pseudonymizes and they identify.
    pub withheld_categories: Vec<String>,
    pub subjects: usize,
    /// Subjects appear as per-disclosure pseudonyms instead of ids.
    pub pseudonymized: bool,
}

/// One release of an authorized disclosure.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub disclosure: DisclosureView,
    /// 1 for the first release.
    pub release: u32,
    pub pseudonymized: bool,
    /// Categories carried.
    pub categories: Vec<String>,
    /// Requested categories a pseudonymized package leaves out (identifying ones).
    pub withheld_categories: Vec<String>,
    /// (subject id or pseudonym, category -> value)
    pub subjects: Vec<(String, Map<String, Value>)>,
    /// Subjects left out at release time (erased, restricted, consent gone since the request).
    pub left_out: u64,
    pub released_at: amanah_core::Timestamp,
}

fn consent_check(excluded: &[Excluded], needs_consent: bool) -> &'static str {
    if !excluded.is_empty() {
        "subjects_excluded"
    } else if needs_consent {
        "all_valid"
    } else {
        "not_required"
    }
}

impl Vault {
    fn disclosure_view(
        &self,
        policy: &Policy,
        record: DisclosureRecord,
        consent: Option<&'static str>,
    ) -> DisclosureView {
        let excluded: Vec<Excluded> = serde_json::from_str::<Vec<Value>>(&record.excluded)
            .unwrap_or_default()
            .iter()
            .map(|e| Excluded {
                subject_id: e["subject_id"].as_str().unwrap_or_default().to_owned(),
                reason: e["reason"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let recipient = policy.recipient(&record.recipient);
        let needs_consent =
            recipient.is_some_and(|r| disclosure::needs_consent(policy, r, &record.purpose));
        let preview = match recipient {
            Some(r) => {
                let (carried, withheld) =
                    disclosure::package_categories(policy, r, &record.categories);
                ReleasePreview {
                    categories: carried,
                    withheld_categories: withheld,
                    subjects: record.subject_ids.len(),
                    pseudonymized: r.pseudonymize,
                }
            }
            None => ReleasePreview {
                categories: Vec::new(),
                withheld_categories: record.categories.clone(),
                subjects: record.subject_ids.len(),
                pseudonymized: false,
            },
        };
        DisclosureView {
            preview,
            consent_check: consent.unwrap_or_else(|| consent_check(&excluded, needs_consent)),
            excluded,
            country: recipient.map(|r| r.country.clone()),
            kind: recipient.map(|r| r.kind.as_str().to_owned()),
            transfer_basis: recipient.and_then(|r| r.transfer_basis.map(|b| b.as_str().to_owned())),
            record,
        }
    }

    /// Why `stored` may not be part of a disclosure under `purpose` now, if it may not: a
    /// restriction, or (when `needs_consent`) no valid consent.
    async fn disclosure_obstacle(
        &self,
        policy: &Policy,
        stored: &StoredSubject,
        purpose: &str,
        needs_consent: bool,
        now: i64,
    ) -> Result<Option<String>> {
        if let Some(since) = stored.restricted_since_micros {
            return Ok(Some(format!(
                "processing is restricted since {} (UU PDP Art. 41)",
                date_of(since)
            )));
        }
        if !needs_consent {
            return Ok(None);
        }
        let key = self.unwrap_key(stored)?;
        let minor = self.age_group(policy, &key, stored)? == Some(AgeGroup::Minor);
        let records = self.store.consents(&stored.id).await.map_err(store_error)?;
        let events = events(&records);
        let version = policy.purpose_version(purpose).unwrap_or_default();
        Ok(consent::evaluate(
            &events,
            purpose,
            &version,
            &policy.version,
            now,
            policy.settings.withdrawal_grace_days,
            minor,
        )
        .err()
        .map(|d| consent_error(&d).to_string()))
    }

    /// Records a disclosure request (status `pending_approval`). The caller's role must hold the
    /// purpose and be able to read the categories; the recipient must be declared for the
    /// purpose and may receive them.
    pub async fn request_disclosure(
        &self,
        permit: &Permit<act::DisclosureRequest>,
        input: &DisclosureInput,
    ) -> Result<DisclosureView> {
        let policy = permit.policy();
        let who = permit.principal();
        let grant = permit.grant()?;
        if input.purpose != permit.purpose()? {
            return Err(Error::Internal(
                "the disclosure's purpose differs from what was authorized".into(),
            ));
        }
        let mut draft = permit.draft();
        // Only declared categories are recorded: anything else is caller text.
        draft.fields = input
            .categories
            .iter()
            .filter(|c| policy.category(c).is_some())
            .cloned()
            .collect();
        let refuse_all = match input.if_consent_missing.as_deref() {
            None | Some("exclude") => false,
            Some("refuse") => true,
            Some(_) => {
                return Err(Error::invalid(
                    "if_consent_missing",
                    "`if_consent_missing` must be exclude or refuse",
                ))
            }
        };
        let deferred = match (&input.defer_notification_until, &input.deferral_reason) {
            (None, None) => None,
            (Some(until), Some(reason)) => {
                let day = consent::parse_date(until.trim()).ok_or_else(|| {
                    Error::invalid("defer_notification_until", "must be a date, YYYY-MM-DD")
                })?;
                Some((day.to_string(), text("deferral_reason", reason)?))
            }
            _ => {
                return Err(Error::invalid(
                    "deferral_reason",
                    "deferring the subjects' notification needs both `defer_notification_until` and `deferral_reason`",
                ))
            }
        };
        let checked = match disclosure::check(
            policy,
            Ask {
                recipient: &input.recipient,
                purpose: &input.purpose,
                categories: &input.categories,
                reference: input.reference.as_deref(),
                deferred: deferred.is_some(),
            },
        ) {
            Ok(c) => c,
            Err(p) => {
                let err = Error::invalid(p.field(), p.to_string());
                return Err(self.deny(draft, err).await);
            }
        };
        // A role discloses only what it may read in clear itself: never what it sees masked.
        let unreadable: Vec<&str> = input
            .categories
            .iter()
            .filter(|c| !amanah_core::authz::clear(grant, c))
            .map(String::as_str)
            .collect();
        if !unreadable.is_empty() {
            let err = Error::Forbidden(format!(
                "role {:?} may not read these categories in clear under purpose {:?}, so it may not disclose them: {}",
                who.role(),
                input.purpose,
                unreadable.join(", ")
            ));
            return Err(self.deny(draft, err).await);
        }
        let reason = text("reason", &input.reason)?;
        let reference = input
            .reference
            .as_deref()
            .map(|r| text("reference", r))
            .transpose()?;
        let max_releases = input.max_releases.unwrap_or(DEFAULT_MAX_RELEASES);
        if !(1..=MAX_RELEASES).contains(&max_releases) {
            return Err(Error::invalid(
                "max_releases",
                format!("`max_releases` must be 1 to {MAX_RELEASES}"),
            ));
        }
        let subjects = subject_list("subject_ids", &input.subject_ids)?;
        let now = draft.at_micros;
        let mut included = Vec::with_capacity(subjects.len());
        let mut excluded = Vec::new();
        for id in &subjects {
            let stored = self.load_or_deny(id, &draft).await?;
            // The per-subject decision: enrolled in the purpose, a minor only with specific
            // clearance. Restriction is not a refusal here but an exclusion (below).
            let unrestricted = amanah_store::StoredSubject {
                restricted_since_micros: None,
                ..stored.clone()
            };
            if let Err(d) = self.admission(permit, unrestricted, Circumstances::default())? {
                let mut refused = draft.clone();
                refused.subject = Some(id.clone());
                return Err(self.refuse(refused, &d).await);
            }
            match self
                .disclosure_obstacle(policy, &stored, &input.purpose, checked.needs_consent, now)
                .await?
            {
                None => included.push(id.clone()),
                Some(reason) => excluded.push(Excluded {
                    subject_id: id.clone(),
                    reason,
                }),
            }
        }
        if !excluded.is_empty() && (refuse_all || included.is_empty()) {
            let ids: Vec<&str> = excluded.iter().map(|e| e.subject_id.as_str()).collect();
            let why = if included.is_empty() {
                "no subject may be disclosed"
            } else {
                "the request asks to refuse it whole (if_consent_missing = refuse)"
            };
            let err = Error::ConsentRequired(format!(
                "disclosure refused: {why}; subjects without a valid consent for purpose {:?} or under restriction: {}",
                input.purpose,
                ids.join(", ")
            ));
            return Err(self.deny(draft, err).await);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let excluded_json = Value::Array(
            excluded
                .iter()
                .map(|e| json!({"subject_id": e.subject_id, "reason": e.reason}))
                .collect(),
        )
        .to_string();
        let record = DisclosureRecord {
            id: id.clone(),
            recipient: checked.recipient.name.clone(),
            purpose: input.purpose.clone(),
            subject_ids: included,
            categories: input.categories.clone(),
            reason,
            reference,
            status: DisclosureStatus::PendingApproval.as_str().to_owned(),
            requested_by: who.key_id().to_owned(),
            requested_at_micros: now,
            approved_by: None,
            approved_at_micros: None,
            authorized_by: None,
            authorized_at_micros: None,
            rejected_by: None,
            rejected_at_micros: None,
            rejection_reason: None,
            releases: 0,
            max_releases,
            first_released_at_micros: None,
            last_released_at_micros: None,
            notification_deferred_until: deferred.as_ref().map(|d| d.0.clone()),
            deferral_reason: deferred.map(|d| d.1),
            excluded: excluded_json,
        };
        draft.reason = Some(format!(
            "disclosure {id} to {} requested for {} subjects ({} excluded)",
            record.recipient,
            record.subject_ids.len(),
            excluded.len()
        ));
        self.store
            .insert_disclosure(record.clone(), draft)
            .await
            .map_err(store_error)?;
        let check = consent_check(&excluded, checked.needs_consent);
        Ok(self.disclosure_view(policy, record, Some(check)))
    }

    async fn load_disclosure_for(&self, id: &str, draft: &AuditDraft) -> Result<DisclosureRecord> {
        match self.store.load_disclosure(id).await.map_err(store_error)? {
            Some(d) => Ok(d),
            None => Err(self
                .deny(
                    draft.clone(),
                    Error::NotFound(format!("no disclosure {}", crate::vault::id_shown(id))),
                )
                .await),
        }
    }

    /// Approves (the person in charge), authorizes (the account owner) or rejects a disclosure.
    pub async fn step_disclosure<A: act::DisclosureStep>(
        &self,
        permit: &Permit<A>,
        id: &str,
        reason: Option<&str>,
    ) -> Result<DisclosureView> {
        let policy = permit.policy();
        let who = permit.principal();
        let step = A::STEP;
        let mut draft = permit.draft();
        let record = self.load_disclosure_for(id, &draft).await?;
        draft.purpose = Some(record.purpose.clone());
        draft.fields = record.categories.clone();
        let reason = match (step, reason) {
            (Step::Reject, Some(r)) => Some(text("reason", r)?),
            (Step::Reject, None) => {
                return Err(Error::invalid("reason", "a rejection needs a `reason`"))
            }
            _ => None,
        };
        let role = policy.role(who.role());
        let status = DisclosureStatus::parse(&record.status)
            .ok_or_else(|| Error::Internal(format!("disclosure {id}: unknown status")))?;
        let to = match disclosure::decide_step(
            step,
            status,
            Actors {
                requested_by: &record.requested_by,
                approved_by: record.approved_by.as_deref(),
            },
            who.key_id(),
            who.role(),
            role.is_some_and(|r| r.approve_disclosures),
            role.is_some_and(|r| r.authorize_disclosures),
        ) {
            Ok(to) => to,
            Err(d) => {
                let err = match d {
                    StepDenial::WrongState { .. } => {
                        Error::Conflict(Conflict::InvalidTransition, d.to_string())
                    }
                    _ => Error::Forbidden(d.to_string()),
                };
                return Err(self.deny(draft, err).await);
            }
        };
        if step != Step::Reject {
            if let Err(err) = self.four_eyes(who, &record).await {
                return Err(self.deny(draft, err).await);
            }
        }
        let now = draft.at_micros;
        draft.reason = Some(format!("disclosure {id} to {}: {to}", record.recipient));
        self.store
            .step_disclosure(
                DisclosureStep {
                    id: id.to_owned(),
                    from: status.as_str().to_owned(),
                    to: to.as_str().to_owned(),
                    by: who.key_id().to_owned(),
                    at_micros: now,
                    reason,
                },
                draft,
            )
            .await
            .map_err(store_error)?;
        let updated = self.reload_disclosure(id).await?;
        Ok(self.disclosure_view(policy, updated, None))
    }

    /// A disclosure as stored after a step of ours.
    async fn reload_disclosure(&self, id: &str) -> Result<DisclosureRecord> {
        self.store
            .load_disclosure(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::NotFound(format!("no disclosure {}", crate::vault::id_shown(id))))
    }

    /// Four eyes by person: the requester, the approver and the authorizer are three different
    /// key holders, so one person with two keys cannot walk a disclosure through alone.
    async fn four_eyes(&self, who: &Principal, record: &DisclosureRecord) -> Result<()> {
        let Some(holder) = who.holder().and_then(crate::keys::holder_address) else {
            return Err(Error::Forbidden(
                "this key names no holder: four eyes count people, so approving or authorizing needs a key \
                 issued with a holder (`amanah apikey create --holder \"Name <email>\"`)"
                    .into(),
            ));
        };
        let keys = self.store.list_api_keys().await.map_err(store_error)?;
        // People are told apart by the address their holder names, not the display name.
        let address_of = |key_id: &str| {
            keys.iter()
                .find(|k| k.id == key_id)
                .and_then(|k| k.holder.as_deref())
                .and_then(crate::keys::holder_address)
        };
        let earlier = std::iter::once(&record.requested_by).chain(record.approved_by.as_ref());
        for key_id in earlier {
            if address_of(key_id).is_none_or(|a| a == holder) {
                return Err(Error::Forbidden(
                    "four eyes: the requester, the approver and the authorizer of a disclosure must be \
                     three different people (key holders)"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Who may see disclosures: the admin, the DPO, the person in charge, the account owner.
    fn oversees_disclosures(policy: &Policy, who: &Principal) -> bool {
        who.is_admin()
            || policy.role(who.role()).is_some_and(|r| {
                r.handle_requests || r.approve_disclosures || r.authorize_disclosures
            })
    }

    /// One disclosure (its requester, the admin, the DPO, the PIC or the owner).
    pub async fn get_disclosure(
        &self,
        permit: &Permit<act::DisclosureRead>,
        id: &str,
    ) -> Result<DisclosureView> {
        let policy = permit.policy();
        let who = permit.principal();
        let draft = permit.draft();
        let record = self.load_disclosure_for(id, &draft).await?;
        if record.requested_by != who.key_id() && !Self::oversees_disclosures(policy, who) {
            let err = Error::Forbidden(format!(
                "role {:?} may not read disclosures it did not request",
                who.role()
            ));
            return Err(self.deny(draft, err).await);
        }
        Ok(self.disclosure_view(policy, record, None))
    }

    /// Disclosures, newest first, optionally of one subject or one status.
    pub async fn list_disclosures(
        &self,
        permit: &Permit<act::DisclosureList>,
        subject: Option<&str>,
        status: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DisclosureView>> {
        let policy = permit.policy();
        let mut draft = permit.draft();
        draft.subject = subject.and_then(crate::authz::recordable_id);
        if let Some(s) = status {
            if DisclosureStatus::parse(s).is_none() {
                return Err(Error::BadRequest(
                    "`status` must be pending_approval, approved, authorized, released or rejected"
                        .into(),
                ));
            }
        }
        let found = self
            .store
            .list_disclosures(
                DisclosureFilter {
                    subject: subject.map(str::to_owned),
                    status: status.map(str::to_owned),
                },
                after,
                limit,
            )
            .await
            .map_err(store_error)?;
        if subject.is_some() {
            self.record(draft).await?;
        }
        Ok(found
            .into_iter()
            .map(|d| self.disclosure_view(policy, d, None))
            .collect())
    }

    /// Releases the package of an approved and authorized disclosure (the requester or the
    /// admin), at most `max_releases` times; each release leaves one audit entry per subject.
    pub async fn release_disclosure(
        &self,
        permit: &Permit<act::DisclosureRelease>,
        id: &str,
    ) -> Result<Package> {
        let policy = permit.policy();
        let who = permit.principal();
        let mut draft = permit.draft();
        let record = self.load_disclosure_for(id, &draft).await?;
        draft.purpose = Some(record.purpose.clone());
        if record.requested_by != who.key_id() && !who.is_admin() {
            let err = Error::Forbidden(
                "only the key that requested a disclosure, or the admin, may release it".into(),
            );
            return Err(self.deny(draft, err).await);
        }
        let status = match release_refusal(&record) {
            Ok(status) => status,
            Err(err) => return Err(self.deny(draft, err).await),
        };
        let Some(recipient) = policy.recipient(&record.recipient) else {
            let err = Error::Conflict(
                Conflict::PolicyChanged,
                format!(
                    "the current policy no longer declares recipient {:?}",
                    record.recipient
                ),
            );
            return Err(self.deny(draft, err).await);
        };
        let checked = match disclosure::check(
            policy,
            Ask {
                recipient: &record.recipient,
                purpose: &record.purpose,
                categories: &record.categories,
                reference: record.reference.as_deref().or(Some("-")),
                deferred: false,
            },
        ) {
            Ok(c) => c,
            Err(p) => {
                let err = Error::Conflict(
                    Conflict::PolicyChanged,
                    format!("the current policy no longer allows it: {p}"),
                );
                return Err(self.deny(draft, err).await);
            }
        };
        draft.basis = policy
            .purpose(&record.purpose)
            .map(|p| p.basis.as_str().to_owned());
        let (carried, withheld) =
            disclosure::package_categories(policy, recipient, &record.categories);
        let pseudonyms = self.keys().pseudonym_key();
        let now = draft.at_micros;
        let mut subjects = Vec::with_capacity(record.subject_ids.len());
        let mut entries = Vec::with_capacity(record.subject_ids.len() + 1);
        let mut left_out = 0u64;
        for sid in &record.subject_ids {
            let mut e = draft.clone();
            e.subject = Some(sid.clone());
            let Some(stored) = self.store.load_subject(sid).await.map_err(store_error)? else {
                left_out += 1;
                continue;
            };
            if let Some(why) = self
                .disclosure_obstacle(policy, &stored, &record.purpose, checked.needs_consent, now)
                .await?
            {
                left_out += 1;
                e.outcome = amanah_core::audit::Outcome::Denied;
                e.reason = Some(format!("left out of disclosure {id}: {why}"));
                entries.push(e);
                continue;
            }
            let key = self.unwrap_key(&stored)?;
            let mut values = Map::new();
            for (category, ciphertext) in sealed_fields(&stored)? {
                if !carried.contains(category) {
                    continue;
                }
                let plain = key.open_field(sid, category, ciphertext).map_err(|err| {
                    Error::Internal(format!("subject {sid}: field {category}: {err}"))
                })?;
                let plain = String::from_utf8_lossy(&plain).into_owned();
                let value = match policy.category(category) {
                    Some(cat) => fields::to_json(cat.field_type, &plain),
                    None => Value::String(plain),
                };
                values.insert(category.clone(), value);
            }
            e.fields = values.keys().cloned().collect();
            e.reason = Some(format!(
                "disclosure {id} to {} ({}){}",
                recipient.name,
                recipient.country,
                if recipient.pseudonymize {
                    ", pseudonymized"
                } else {
                    ""
                }
            ));
            entries.push(e);
            let shown = if recipient.pseudonymize {
                pseudonyms.pseudonym(id, sid)
            } else {
                sid.clone()
            };
            subjects.push((shown, values));
        }
        if entries.is_empty() {
            let mut e = draft.clone();
            e.reason = Some(format!("disclosure {id}: no subject left to release"));
            entries.push(e);
        }
        let counted = DisclosureRelease {
            id: id.to_owned(),
            from: status.as_str().to_owned(),
            releases: record.releases,
            at_micros: now,
        };
        let release = match self.store.record_release(counted, entries).await {
            Ok(n) => n,
            Err(StoreError::Changed) => {
                // Another release or step came first: the rule it now breaks, as it stands.
                let err = release_refusal(&self.reload_disclosure(id).await?).err();
                let err = err.unwrap_or_else(|| {
                    Error::Conflict(
                        Conflict::InvalidTransition,
                        format!("disclosure {id} changed while it was released: try again"),
                    )
                });
                return Err(self.deny(draft, err).await);
            }
            Err(e) => return Err(store_error(e)),
        };
        let updated = self.reload_disclosure(id).await?;
        Ok(Package {
            disclosure: self.disclosure_view(policy, updated, None),
            release,
            pseudonymized: recipient.pseudonymize,
            categories: carried,
            withheld_categories: withheld,
            subjects,
            left_out,
            released_at: amanah_core::Timestamp::from_micros(now),
        })
    }

    /// The released disclosures of a subject, as their export shows them (recipient, purpose,
    /// time, country); those whose notification is deferred to a later day stay out until then.
    pub(crate) async fn disclosures_of(
        &self,
        policy: &Policy,
        subject: &str,
        now: i64,
    ) -> Result<Vec<Value>> {
        let today = date_of(now).to_string();
        let found = self
            .store
            .list_disclosures(
                DisclosureFilter {
                    subject: Some(subject.to_owned()),
                    status: Some(DisclosureStatus::Released.as_str().to_owned()),
                },
                None,
                MAX_SUBJECTS,
            )
            .await
            .map_err(store_error)?;
        Ok(found
            .into_iter()
            .filter(|d| {
                d.notification_deferred_until
                    .as_deref()
                    .is_none_or(|until| until <= today.as_str())
            })
            .map(|d| {
                let r = policy.recipient(&d.recipient);
                json!({
                    "id": d.id,
                    "recipient": d.recipient,
                    "kind": r.map(|r| r.kind.as_str()),
                    "country": r.map(|r| r.country.clone()),
                    "transfer_basis": r.and_then(|r| r.transfer_basis.map(|b| b.as_str())),
                    "purpose": d.purpose,
                    "categories": d.categories,
                    "reference": d.reference,
                    "time": d.first_released_at_micros.map(Timestamp::from_micros),
                    "releases": d.releases,
                })
            })
            .collect())
    }
}

/// Whether a disclosure as stored may be released now: its status if so, else the conflict
/// (not approved and authorized, or released `max_releases` times already).
fn release_refusal(record: &DisclosureRecord) -> Result<DisclosureStatus> {
    let id = &record.id;
    let status = DisclosureStatus::parse(&record.status)
        .ok_or_else(|| Error::Internal(format!("disclosure {id}: unknown status")))?;
    if !status.releasable() {
        return Err(Error::Conflict(Conflict::InvalidTransition, format!(
            "disclosure {id} is {status}: only an approved and authorized disclosure can be released"
        )));
    }
    if record.releases >= record.max_releases {
        return Err(Error::Conflict(
            Conflict::ReleaseLimitReached,
            format!(
                "disclosure {id} was already released {} times, the most it allows",
                record.releases
            ),
        ));
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: &str, releases: u32, max_releases: u32) -> DisclosureRecord {
        DisclosureRecord {
            id: "d1".into(),
            recipient: "r".into(),
            purpose: "p".into(),
            subject_ids: Vec::new(),
            categories: Vec::new(),
            reason: "reason".into(),
            reference: None,
            status: status.into(),
            requested_by: "k".into(),
            requested_at_micros: 1,
            approved_by: None,
            approved_at_micros: None,
            authorized_by: None,
            authorized_at_micros: None,
            rejected_by: None,
            rejected_at_micros: None,
            rejection_reason: None,
            releases,
            max_releases,
            first_released_at_micros: None,
            last_released_at_micros: None,
            notification_deferred_until: None,
            deferral_reason: None,
            excluded: "[]".into(),
        }
    }

    fn conflict(r: Result<DisclosureStatus>) -> Option<Conflict> {
        match r {
            Err(Error::Conflict(kind, _)) => Some(kind),
            _ => None,
        }
    }

    /// What a release refused by the store (another release or step came first) reports: the
    /// rule the disclosure now breaks, as the vault judges it, never the store.
    #[test]
    fn a_release_is_judged_on_the_disclosure_as_stored() {
        assert_eq!(
            release_refusal(&record("authorized", 0, 1)).ok(),
            Some(DisclosureStatus::Authorized)
        );
        assert_eq!(
            release_refusal(&record("released", 1, 2)).ok(),
            Some(DisclosureStatus::Released)
        );
        assert_eq!(
            conflict(release_refusal(&record("released", 2, 2))),
            Some(Conflict::ReleaseLimitReached)
        );
        for status in ["pending_approval", "approved", "rejected"] {
            assert_eq!(
                conflict(release_refusal(&record(status, 0, 2))),
                Some(Conflict::InvalidTransition),
                "{status}"
            );
        }
        assert!(matches!(
            release_refusal(&record("lost", 0, 2)),
            Err(Error::Internal(_))
        ));
    }
}
