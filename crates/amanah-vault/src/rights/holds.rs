//! Restriction of processing and legal holds that suspend erasure.

use super::*;

/// A legal hold, its reason opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldView {
    pub record: HoldRecord,
    pub reason: String,
    pub active: bool,
}

/// A hold runs through its `until` day (inclusive) unless released.
pub(super) fn hold_active(until: &str, released: Option<i64>, now_micros: i64) -> bool {
    released.is_none() && until >= today(now_micros).as_str()
}

impl Vault {
    /// Restricts processing (UU PDP Art. 41): reads are refused except by the admin under a
    /// purpose marked `restricted_use`.
    pub async fn restrict(
        &self,
        permit: &Permit<act::SubjectRestrict>,
        reason: Option<&str>,
    ) -> Result<()> {
        let who = permit.principal();
        let id = permit.subject()?;
        let draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        let reason = reason.map(|r| text("reason", r)).transpose()?;
        let sealed = reason
            .as_deref()
            .map(|r| self.seal_text(&key, id, "restriction.reason", r))
            .transpose()?;
        let record = RestrictionRecord {
            since_micros: draft.at_micros,
            reason: sealed,
            by: who.key_id().to_owned(),
        };
        self.store
            .set_restriction(id, Some(record), draft)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub async fn lift_restriction(&self, permit: &Permit<act::SubjectUnrestrict>) -> Result<()> {
        let id = permit.subject()?;
        let draft = permit.draft();
        self.subject_for(id, &draft).await?;
        if self
            .store
            .restriction(id)
            .await
            .map_err(store_error)?
            .is_none()
        {
            return Err(Error::Conflict(
                Conflict::InvalidTransition,
                format!("subject {id} is not restricted"),
            ));
        }
        self.store
            .set_restriction(id, None, draft)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub(super) async fn holds_of(
        &self,
        id: &str,
        key: &DataKey,
        now: i64,
    ) -> Result<Vec<HoldView>> {
        self.store
            .holds(id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|h| {
                let reason =
                    self.open_text(key, id, &format!("hold.reason:{}", h.id), &h.reason)?;
                let active = hold_active(&h.until, h.released_at_micros, now);
                Ok(HoldView {
                    record: h,
                    reason,
                    active,
                })
            })
            .collect()
    }

    /// Places a legal hold: erasure (by request or retention) is refused until `until`
    /// (inclusive) or until released.
    pub async fn add_hold(
        &self,
        permit: &Permit<act::HoldCreate>,
        reason: &str,
        until: &str,
    ) -> Result<HoldView> {
        let who = permit.principal();
        let id = permit.subject()?;
        let mut draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        let reason = text("reason", reason)?;
        let until_date = consent::parse_date(until)
            .ok_or_else(|| Error::invalid("until", "`until` must be a date, YYYY-MM-DD"))?;
        if until_date < date_of(draft.at_micros) {
            return Err(Error::invalid("until", "`until` is in the past"));
        }
        let hold_id = uuid::Uuid::new_v4().to_string();
        let record = HoldRecord {
            id: hold_id.clone(),
            subject_id: id.to_owned(),
            reason: self.seal_text(&key, id, &format!("hold.reason:{hold_id}"), &reason)?,
            until: until_date.to_string(),
            created_at_micros: draft.at_micros,
            created_by: who.key_id().to_owned(),
            released_at_micros: None,
        };
        draft.reason = Some(format!("hold {hold_id} until {until_date}"));
        self.store
            .insert_hold(record.clone(), draft)
            .await
            .map_err(store_error)?;
        Ok(HoldView {
            record,
            reason,
            active: true,
        })
    }

    pub async fn holds(&self, permit: &Permit<act::HoldRead>) -> Result<Vec<HoldView>> {
        let id = permit.subject()?;
        let draft = permit.draft();
        let (_, key) = self.subject_for(id, &draft).await?;
        let holds = self.holds_of(id, &key, draft.at_micros).await?;
        self.record(draft).await?;
        Ok(holds)
    }

    pub async fn release_hold(
        &self,
        permit: &Permit<act::HoldRelease>,
        hold_id: &str,
    ) -> Result<()> {
        let id = permit.subject()?;
        let mut draft = permit.draft();
        if uuid::Uuid::parse_str(hold_id).is_err() {
            return Err(self
                .deny(
                    draft,
                    Error::NotFound("no unreleased hold with that id".into()),
                )
                .await);
        }
        draft.reason = Some(format!("hold {hold_id} released"));
        let at = draft.at_micros;
        match self
            .store
            .release_hold(id, hold_id, at, draft.clone())
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => {
                let err = Error::NotFound(format!(
                    "subject {} has no unreleased hold {}",
                    crate::vault::id_shown(id),
                    crate::vault::id_shown(hold_id)
                ));
                draft.reason = None;
                Err(self.deny(draft, err).await)
            }
            Err(other) => Err(store_error(other)),
        }
    }
}
