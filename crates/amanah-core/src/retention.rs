//! Retention rules (UU PDP Art. 43-44; university policy §I-J): when a purpose's retention
//! period ends, and what a sweep does with a subject then. Pure: the caller passes the subject's
//! purposes with their start dates, the categories it holds, and "now".

use time::{Date, Duration, OffsetDateTime};

use crate::policy::{OnExpiry, Policy, Retention, RetentionFrom, RetentionUnit};

/// One purpose a subject's data was collected under, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPurpose {
    pub purpose: String,
    pub collected_at_micros: i64,
}

/// What the sweep does with one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionAction {
    /// Every purpose still runs and every held category is still needed.
    Keep,
    /// Some purposes ended: erase the categories no remaining purpose needs.
    EraseCategories {
        expired: Vec<String>,
        categories: Vec<String>,
    },
    /// No purpose remains: erase the whole subject (crypto-shredding).
    EraseSubject { expired: Vec<String> },
    /// No purpose remains and one of them says `on_expiry = "deidentify"`: keep only
    /// de-identified attributes and destroy the identity.
    Deidentify { expired: Vec<String> },
}

/// When `retention` running from `start` ends (calendar months and years; the last day of the
/// month when the day does not exist, e.g. 31 Jan + 1 month = 28/29 Feb).
pub fn retention_end(start_micros: i64, retention: Retention) -> i64 {
    let Ok(start) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(start_micros) * 1_000)
    else {
        return i64::MAX;
    };
    let end = match retention.unit {
        RetentionUnit::Days => start.checked_add(Duration::days(i64::from(retention.amount))),
        RetentionUnit::Months => add_months(start, retention.amount),
        RetentionUnit::Years => add_months(start, retention.amount.saturating_mul(12)),
    };
    end.map_or(i64::MAX, |t| {
        i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
    })
}

fn add_months(t: OffsetDateTime, months: u32) -> Option<OffsetDateTime> {
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 + i64::from(months);
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let last = month.length(year);
    let date = Date::from_calendar_date(year, month, t.day().min(last)).ok()?;
    Some(t.replace_date(date))
}

/// When a held purpose ends, or `None` while it cannot end yet (a relationship that has not
/// ended). A purpose the policy no longer declares has no basis left: it ends at once.
pub fn purpose_end(
    policy: &Policy,
    held: &HeldPurpose,
    relationship_ended_micros: Option<i64>,
) -> Option<i64> {
    let Some(p) = policy.purpose(&held.purpose) else {
        return Some(i64::MIN);
    };
    let start = match p.retention_from {
        RetentionFrom::Collection => held.collected_at_micros,
        RetentionFrom::RelationshipEnd => relationship_ended_micros?,
    };
    Some(retention_end(start, p.retention))
}

/// Decides what a sweep does with a subject that holds `categories` for `held` purposes.
pub fn decide(
    policy: &Policy,
    held: &[HeldPurpose],
    categories: &[String],
    relationship_ended_micros: Option<i64>,
    now_micros: i64,
) -> RetentionAction {
    let (expired, remaining): (Vec<&HeldPurpose>, Vec<&HeldPurpose>) = held.iter().partition(|h| {
        purpose_end(policy, h, relationship_ended_micros).is_some_and(|end| end <= now_micros)
    });
    if expired.is_empty() {
        return RetentionAction::Keep;
    }
    let expired_names: Vec<String> = expired.iter().map(|h| h.purpose.clone()).collect();
    if remaining.is_empty() {
        let deidentify = expired.iter().any(|h| {
            policy
                .purpose(&h.purpose)
                .is_some_and(|p| p.on_expiry == OnExpiry::Deidentify)
        });
        return if deidentify {
            RetentionAction::Deidentify {
                expired: expired_names,
            }
        } else {
            RetentionAction::EraseSubject {
                expired: expired_names,
            }
        };
    }
    let needed = |category: &str| {
        remaining.iter().any(|h| {
            policy
                .purpose(&h.purpose)
                .is_some_and(|p| p.categories.iter().any(|c| c == category))
        })
    };
    let unneeded: Vec<String> = categories.iter().filter(|c| !needed(c)).cloned().collect();
    if unneeded.is_empty() {
        // The purposes ended, but what they held is still needed by another purpose.
        return RetentionAction::EraseCategories {
            expired: expired_names,
            categories: Vec::new(),
        };
    }
    RetentionAction::EraseCategories {
        expired: expired_names,
        categories: unneeded,
    }
}

/// De-identified form of a value, for `on_expiry = "deidentify"`: a birth date keeps only its
/// year, a NIK only its province code (first two digits); other categories are dropped, and
/// documents are always erased, never de-identified.
pub fn deidentify(field_type: crate::fields::FieldType, canonical: &str) -> Option<String> {
    use crate::fields::FieldType;
    match field_type {
        FieldType::Date => canonical.get(..4).map(str::to_owned),
        FieldType::Nik => canonical.get(..2).map(|p| format!("province {p}")),
        FieldType::Document => None,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::MICROS_PER_DAY;
    use time::macros::datetime;

    fn micros(t: OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos() / 1_000) as i64
    }

    /// The test policy: marketing runs 2 years, account 30 days from the end of the
    /// relationship, admission 5 years and then de-identifies.
    fn policy() -> Policy {
        Policy::parse(crate::test_policies::TEST).unwrap()
    }

    fn held(p: &str, at: i64) -> HeldPurpose {
        HeldPurpose {
            purpose: p.into(),
            collected_at_micros: at,
        }
    }

    #[test]
    fn periods_use_calendar_months_and_years() {
        let r = |s| Retention::parse(s).unwrap();
        let jan31 = micros(datetime!(2026-01-31 10:00 UTC));
        assert_eq!(
            retention_end(jan31, r("1m")),
            micros(datetime!(2026-02-28 10:00 UTC))
        );
        assert_eq!(
            retention_end(jan31, r("30d")),
            micros(datetime!(2026-03-02 10:00 UTC))
        );
        assert_eq!(
            retention_end(jan31, r("1y")),
            micros(datetime!(2027-01-31 10:00 UTC))
        );
        let leap = micros(datetime!(2028-02-29 00:00 UTC));
        assert_eq!(
            retention_end(leap, r("1y")),
            micros(datetime!(2029-02-28 00:00 UTC))
        );
        assert_eq!(
            retention_end(leap, r("4y")),
            micros(datetime!(2032-02-29 00:00 UTC))
        );
    }

    #[test]
    fn nothing_happens_before_the_end() {
        let p = policy();
        let t0 = micros(datetime!(2026-01-01 00:00 UTC));
        let cats = vec!["full_name".to_owned(), "email".to_owned()];
        let hs = [held("marketing", t0)];
        let end = micros(datetime!(2028-01-01 00:00 UTC));
        assert_eq!(decide(&p, &hs, &cats, None, end - 1), RetentionAction::Keep);
        assert_eq!(
            decide(&p, &hs, &cats, None, end),
            RetentionAction::EraseSubject {
                expired: vec!["marketing".into()]
            }
        );
    }

    #[test]
    fn only_categories_no_remaining_purpose_needs_go() {
        let p = policy();
        let t0 = micros(datetime!(2026-01-01 00:00 UTC));
        let cats: Vec<String> = ["full_name", "email"].map(String::from).to_vec();
        // marketing ended; account (relationship still running) keeps the email only.
        let hs = [held("marketing", t0), held("account", t0)];
        assert_eq!(
            decide(
                &p,
                &hs,
                &cats,
                None,
                micros(datetime!(2028-02-01 00:00 UTC))
            ),
            RetentionAction::EraseCategories {
                expired: vec!["marketing".into()],
                categories: vec!["full_name".into()]
            }
        );
    }

    #[test]
    fn relationship_end_starts_the_clock() {
        let p = policy();
        let t0 = micros(datetime!(2026-01-01 00:00 UTC));
        let cats = vec!["email".to_owned()];
        let hs = [held("account", t0)];
        let far = micros(datetime!(2036-01-01 00:00 UTC));
        assert_eq!(decide(&p, &hs, &cats, None, far), RetentionAction::Keep);
        let ended = micros(datetime!(2026-03-01 00:00 UTC));
        assert_eq!(
            decide(
                &p,
                &hs,
                &cats,
                Some(ended),
                micros(datetime!(2026-03-30 23:59 UTC))
            ),
            RetentionAction::Keep
        );
        assert!(matches!(
            decide(
                &p,
                &hs,
                &cats,
                Some(ended),
                micros(datetime!(2026-03-31 00:00 UTC))
            ),
            RetentionAction::EraseSubject { .. }
        ));
    }

    #[test]
    fn deidentify_when_the_last_purpose_says_so_and_unknown_purposes_end_at_once() {
        let p = policy();
        let t0 = micros(datetime!(2026-01-01 00:00 UTC));
        let cats = vec!["email".to_owned()];
        assert!(matches!(
            decide(
                &p,
                &[held("admission", t0)],
                &cats,
                None,
                micros(datetime!(2031-01-01 00:00 UTC))
            ),
            RetentionAction::Deidentify { .. }
        ));
        assert!(matches!(
            decide(&p, &[held("removed_purpose", t0)], &cats, None, t0),
            RetentionAction::EraseSubject { .. }
        ));
        use crate::fields::FieldType;
        assert_eq!(
            deidentify(FieldType::Date, "2008-11-23").as_deref(),
            Some("2008")
        );
        assert_eq!(
            deidentify(FieldType::Nik, "3174096512990007").as_deref(),
            Some("province 31")
        );
        assert_eq!(deidentify(FieldType::Email, "a@b.id"), None);
        assert_eq!(deidentify(FieldType::Document, "2008-11-23"), None);
    }

    proptest::proptest! {
        #[test]
        fn prop_a_retention_ends_within_its_calendar_bounds(
            start_day in 0i64..47_000,
            amount in 1u32..=120,
            unit in 0u8..3,
        ) {
            let day = MICROS_PER_DAY;
            let start = start_day * day + 12 * 3_600_000_000;
            let unit = [RetentionUnit::Days, RetentionUnit::Months, RetentionUnit::Years][usize::from(unit)];
            let end = retention_end(start, Retention { amount, unit });
            let days = (end - start) / day;
            let (min, max) = match unit {
                RetentionUnit::Days => (i64::from(amount), i64::from(amount)),
                RetentionUnit::Months => (28 * i64::from(amount) - 3, 31 * i64::from(amount)),
                RetentionUnit::Years => (365 * i64::from(amount) - 1, 366 * i64::from(amount)),
            };
            proptest::prop_assert!((min..=max).contains(&days), "{days} days for {amount} {unit:?}");
            // Time of day is kept: periods end on a calendar day at the same hour.
            proptest::prop_assert_eq!((end - start) % day, 0);
        }
    }
}
