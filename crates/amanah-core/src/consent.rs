//! Consent rules (UU PDP Art. 20(2)(a), 25 and 40; GDPR Art. 7 and 8): who may give consent,
//! when a recorded consent allows processing, and when a withdrawal takes effect. Pure
//! functions of the consent history, the policy and "now" (passed in), so every rule is tested
//! without a clock or a store.

use time::Date;

use crate::policy::{Purpose, Settings, CHANNELS};

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Who gave (or withdrew) a consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenBy {
    Subject,
    /// A parent or guardian acting for a minor (UU PDP Art. 25), or a guardian linked to an
    /// adult by a `guardian` relation (Art. 26).
    Guardian,
}

impl GivenBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GivenBy::Subject => "subject",
            GivenBy::Guardian => "guardian",
        }
    }

    pub fn parse(s: &str) -> Option<GivenBy> {
        match s {
            "subject" => Some(GivenBy::Subject),
            "guardian" => Some(GivenBy::Guardian),
            _ => None,
        }
    }
}

/// One recorded consent decision (a grant or a withdrawal) as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub id: String,
    pub purpose: String,
    /// The purpose's version when the decision was recorded ([`crate::policy::Policy::purpose_version`]).
    pub purpose_version: String,
    /// The policy version in force when the decision was recorded.
    pub policy_version: String,
    pub granted: bool,
    pub given_by: GivenBy,
    pub at_micros: i64,
}

/// Why processing under a consent-based purpose is refused. The text is shown to the caller
/// and written to the audit log: it names the purpose, versions and dates, never personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentDenial {
    /// Nothing recorded, or only a refusal.
    NoConsent { purpose: String },
    /// The last grant was withdrawn (and any grace period is over).
    Withdrawn { purpose: String, on_micros: i64 },
    /// The consent was given for an earlier version of the purpose.
    Stale {
        purpose: String,
        given_under: String,
        current_policy: String,
    },
    /// The subject is a minor and the consent came from the subject alone.
    GuardianRequired { purpose: String },
}

impl std::fmt::Display for ConsentDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsentDenial::NoConsent { purpose } => write!(
                f,
                "no consent: the subject has not consented to purpose {purpose:?}, whose legal basis is consent"
            ),
            ConsentDenial::Withdrawn { purpose, on_micros } => write!(
                f,
                "consent withdrawn on {}: the subject withdrew consent to purpose {purpose:?}",
                date_of(*on_micros)
            ),
            ConsentDenial::Stale {
                purpose,
                given_under,
                current_policy,
            } => write!(
                f,
                "consent predates policy version {current_policy:?}: consent to purpose {purpose:?} was given under \
                 policy version {given_under:?} and the purpose has changed since; ask the subject again"
            ),
            ConsentDenial::GuardianRequired { purpose } => write!(
                f,
                "guardian consent required: the subject is a minor, so consent to purpose {purpose:?} must be \
                 given by a parent or guardian (UU PDP Art. 25)"
            ),
        }
    }
}

/// A consent that currently allows processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidConsent<'a> {
    pub grant: &'a ConsentEvent,
    /// Set while a withdrawal is pending: processing may go on until then.
    pub withdrawal_effective_micros: Option<i64>,
}

/// Decides whether `events` (one subject's decisions, oldest first, any purposes) allow
/// processing under `purpose` now.
///
/// - the latest decision for the purpose counts; with none, or only refusals, there is no consent;
/// - after a withdrawal, processing may continue for `grace_days` (0 to 3, the policy's
///   `withdrawal_grace_days`) from the first withdrawal after the last grant, then stops;
/// - a grant counts only for the purpose's current version (`current_version`);
/// - while the subject is a minor, only a guardian's grant counts. A guardian's grant stays
///   valid when the minor comes of age.
pub fn evaluate<'a>(
    events: &'a [ConsentEvent],
    purpose: &str,
    current_version: &str,
    current_policy: &str,
    now_micros: i64,
    grace_days: u32,
    minor: bool,
) -> Result<ValidConsent<'a>, ConsentDenial> {
    let mine: Vec<&ConsentEvent> = events.iter().filter(|e| e.purpose == purpose).collect();
    let Some(last) = mine.last() else {
        return Err(ConsentDenial::NoConsent {
            purpose: purpose.to_owned(),
        });
    };
    let check = |grant: &'a ConsentEvent| -> Result<(), ConsentDenial> {
        if grant.purpose_version != current_version {
            return Err(ConsentDenial::Stale {
                purpose: purpose.to_owned(),
                given_under: grant.policy_version.clone(),
                current_policy: current_policy.to_owned(),
            });
        }
        if minor && grant.given_by == GivenBy::Subject {
            return Err(ConsentDenial::GuardianRequired {
                purpose: purpose.to_owned(),
            });
        }
        Ok(())
    };
    if last.granted {
        check(last)?;
        return Ok(ValidConsent {
            grant: last,
            withdrawal_effective_micros: None,
        });
    }
    let Some(grant_at) = mine.iter().rposition(|e| e.granted) else {
        return Err(ConsentDenial::NoConsent {
            purpose: purpose.to_owned(),
        });
    };
    let grant = mine[grant_at];
    // The first withdrawal after the grant starts the grace period; later ones do not extend it.
    let withdrawn = mine[grant_at + 1..]
        .iter()
        .find(|e| !e.granted)
        .map_or(last.at_micros, |e| e.at_micros);
    let effective = withdrawn.saturating_add(i64::from(grace_days.min(3)) * MICROS_PER_DAY);
    if now_micros >= effective {
        return Err(ConsentDenial::Withdrawn {
            purpose: purpose.to_owned(),
            on_micros: withdrawn,
        });
    }
    check(grant)?;
    Ok(ValidConsent {
        grant,
        withdrawal_effective_micros: Some(effective),
    })
}

/// Whether a subject may be contacted under `purpose` on `channel` now: the latest decision is
/// a grant for the current version, by someone entitled to give it, that lists the channel.
/// Unlike processing, contact stops at once on withdrawal (no grace period): a campaign must
/// never reach someone who has said no.
pub fn may_contact(
    events: &[ConsentEvent],
    contact_channels: &[String],
    purpose: &str,
    current_version: &str,
    minor: bool,
    channel: &str,
) -> bool {
    evaluate(events, purpose, current_version, "", 0, 0, minor).is_ok_and(|v| {
        v.withdrawal_effective_micros.is_none() && contact_channels.iter().any(|c| c == channel)
    })
}

/// Marketing channels a consent to `purpose` may list: the purpose's own `channels`, or the
/// standard set when it lists none.
pub fn allowed_channels(purpose: &Purpose) -> Vec<&str> {
    if purpose.channels.is_empty() {
        CHANNELS.to_vec()
    } else {
        purpose.channels.iter().map(String::as_str).collect()
    }
}

/// Where a person stands under the policy's age settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeGroup {
    /// Under `minimum_age`: the controller may not hold their data at all.
    BelowMinimum,
    /// From `minimum_age` to `adult_age`: a child (UU PDP Art. 25): a guardian consents and the
    /// data is specific data (Art. 4(2)(e)).
    Minor,
    Adult,
}

/// Full years from `birth` to `today` (a 29 February birthday falls on 1 March in other years).
pub fn age_in_years(birth: Date, today: Date) -> i32 {
    let mut years = today.year() - birth.year();
    if (u8::from(today.month()), today.day()) < (u8::from(birth.month()), birth.day()) {
        years -= 1;
    }
    years
}

pub fn age_group(settings: &Settings, birth: Date, today: Date) -> AgeGroup {
    let age = age_in_years(birth, today);
    if age < i32::try_from(settings.minimum_age).unwrap_or(i32::MAX) {
        AgeGroup::BelowMinimum
    } else if age < i32::try_from(settings.adult_age).unwrap_or(i32::MAX) {
        AgeGroup::Minor
    } else {
        AgeGroup::Adult
    }
}

/// Parses a canonical `YYYY-MM-DD` date (the `date` field type's stored form).
pub fn parse_date(canonical: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(canonical, &format).ok()
}

/// The UTC calendar date of a timestamp in microseconds.
/// The calendar date at `micros` in the organization's time zone (`settings.time_zone`): the
/// day on which ages turn over (in Jakarta a birthday begins at 00:00 WIB, not at 07:00 WIB,
/// the UTC midnight).
pub fn today_in(settings: &Settings, micros: i64) -> Date {
    let local =
        jiff::Timestamp::from_microsecond(micros).map(|t| t.to_zoned(settings.zone()).date());
    local
        .ok()
        .and_then(|d| {
            let month = time::Month::try_from(u8::try_from(d.month()).ok()?).ok()?;
            Date::from_calendar_date(i32::from(d.year()), month, u8::try_from(d.day()).ok()?).ok()
        })
        .unwrap_or_else(|| date_of(micros))
}

pub fn date_of(micros: i64) -> Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_or(Date::MIN, |t| t.date())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Month;

    const DAY: i64 = MICROS_PER_DAY;

    fn ev(granted: bool, by: GivenBy, version: &str, at: i64) -> ConsentEvent {
        ConsentEvent {
            id: format!("c{at}"),
            purpose: "marketing".into(),
            purpose_version: version.into(),
            policy_version: format!("policy-{version}"),
            granted,
            given_by: by,
            at_micros: at,
        }
    }

    fn eval(
        events: &[ConsentEvent],
        now: i64,
        grace: u32,
        minor: bool,
    ) -> Result<(), ConsentDenial> {
        evaluate(events, "marketing", "v1", "policy-v1", now, grace, minor).map(|_| ())
    }

    #[test]
    fn nothing_recorded_is_no_consent() {
        assert!(matches!(
            eval(&[], 0, 0, false),
            Err(ConsentDenial::NoConsent { .. })
        ));
        // A refusal without an earlier grant is not a withdrawal.
        let refused = [ev(false, GivenBy::Subject, "v1", 10)];
        assert!(matches!(
            eval(&refused, 20, 3, false),
            Err(ConsentDenial::NoConsent { .. })
        ));
    }

    #[test]
    fn another_purposes_consent_does_not_count() {
        let mut other = ev(true, GivenBy::Subject, "v1", 10);
        other.purpose = "research".into();
        assert!(matches!(
            eval(&[other], 20, 0, false),
            Err(ConsentDenial::NoConsent { .. })
        ));
    }

    #[test]
    fn a_grant_for_the_current_version_allows() {
        let events = [ev(true, GivenBy::Subject, "v1", 10)];
        let v = evaluate(&events, "marketing", "v1", "p", 20, 0, false).unwrap();
        assert_eq!(v.grant.id, "c10");
        assert_eq!(v.withdrawal_effective_micros, None);
    }

    #[test]
    fn withdrawal_without_grace_stops_at_once() {
        let events = [
            ev(true, GivenBy::Subject, "v1", 10),
            ev(false, GivenBy::Subject, "v1", 5 * DAY),
        ];
        let err = eval(&events, 5 * DAY, 0, false).unwrap_err();
        assert_eq!(
            err,
            ConsentDenial::Withdrawn {
                purpose: "marketing".into(),
                on_micros: 5 * DAY
            }
        );
        assert!(err.to_string().contains("withdrawn on 1970-01-06"), "{err}");
    }

    #[test]
    fn withdrawal_with_grace_stops_when_the_grace_ends() {
        let events = [
            ev(true, GivenBy::Subject, "v1", 10),
            ev(false, GivenBy::Subject, "v1", 5 * DAY),
        ];
        let v = evaluate(&events, "marketing", "v1", "p", 6 * DAY, 2, false).unwrap();
        assert_eq!(v.withdrawal_effective_micros, Some(7 * DAY));
        assert!(eval(&events, 7 * DAY - 1, 2, false).is_ok());
        assert!(matches!(
            eval(&events, 7 * DAY, 2, false),
            Err(ConsentDenial::Withdrawn { .. })
        ));
    }

    #[test]
    fn grace_is_capped_at_three_days_and_not_extended_by_repeat_withdrawals() {
        let events = [
            ev(true, GivenBy::Subject, "v1", 0),
            ev(false, GivenBy::Subject, "v1", DAY),
            ev(false, GivenBy::Subject, "v1", 3 * DAY),
        ];
        assert!(eval(&events, 4 * DAY - 1, 3, false).is_ok());
        assert_eq!(
            eval(&events, 4 * DAY, 3, false),
            Err(ConsentDenial::Withdrawn {
                purpose: "marketing".into(),
                on_micros: DAY
            })
        );
        assert!(
            eval(&events[..2], 4 * DAY, 30, false).is_err(),
            "grace above 3 days is capped"
        );
    }

    #[test]
    fn a_new_grant_after_withdrawal_restores() {
        let events = [
            ev(true, GivenBy::Subject, "v1", 0),
            ev(false, GivenBy::Subject, "v1", DAY),
            ev(true, GivenBy::Subject, "v1", 2 * DAY),
        ];
        assert!(eval(&events, 9 * DAY, 0, false).is_ok());
    }

    #[test]
    fn a_consent_for_an_earlier_purpose_version_is_stale() {
        let events = [ev(true, GivenBy::Subject, "v0", 0)];
        let err = eval(&events, DAY, 0, false).unwrap_err();
        assert!(
            matches!(&err, ConsentDenial::Stale { given_under, .. } if given_under == "policy-v0")
        );
        assert!(
            err.to_string()
                .contains("predates policy version \"policy-v1\""),
            "{err}"
        );
        // Stale during a withdrawal grace period is still stale.
        let events = [
            ev(true, GivenBy::Subject, "v0", 0),
            ev(false, GivenBy::Subject, "v0", DAY),
        ];
        assert!(matches!(
            eval(&events, DAY + 1, 3, false),
            Err(ConsentDenial::Stale { .. })
        ));
    }

    #[test]
    fn a_minor_needs_a_guardians_grant_which_survives_coming_of_age() {
        let own = [ev(true, GivenBy::Subject, "v1", 0)];
        assert!(matches!(
            eval(&own, DAY, 0, true),
            Err(ConsentDenial::GuardianRequired { .. })
        ));
        assert!(eval(&own, DAY, 0, false).is_ok(), "an adult consents alone");
        let guardian = [ev(true, GivenBy::Guardian, "v1", 0)];
        assert!(eval(&guardian, DAY, 0, true).is_ok());
        assert!(
            eval(&guardian, DAY, 0, false).is_ok(),
            "still valid after coming of age"
        );
        let err = eval(&own, DAY, 0, true).unwrap_err().to_string();
        assert!(err.starts_with("guardian consent required"), "{err}");
    }

    #[test]
    fn contact_needs_the_channel_and_stops_at_once_on_withdrawal() {
        let channels = vec!["email".to_owned()];
        let granted = [ev(true, GivenBy::Subject, "v1", 0)];
        assert!(may_contact(
            &granted,
            &channels,
            "marketing",
            "v1",
            false,
            "email"
        ));
        assert!(!may_contact(
            &granted,
            &channels,
            "marketing",
            "v1",
            false,
            "sms"
        ));
        assert!(!may_contact(
            &granted,
            &channels,
            "marketing",
            "v2",
            false,
            "email"
        ));
        assert!(!may_contact(
            &granted,
            &channels,
            "marketing",
            "v1",
            true,
            "email"
        ));
        let withdrawn = [granted[0].clone(), ev(false, GivenBy::Subject, "v1", DAY)];
        assert!(!may_contact(
            &withdrawn,
            &channels,
            "marketing",
            "v1",
            false,
            "email"
        ));
    }

    fn date(y: i32, m: Month, d: u8) -> Date {
        Date::from_calendar_date(y, m, d).unwrap()
    }

    #[test]
    fn ages_count_full_years() {
        let birth = date(2008, Month::November, 23);
        assert_eq!(age_in_years(birth, date(2026, Month::November, 22)), 17);
        assert_eq!(age_in_years(birth, date(2026, Month::November, 23)), 18);
        let leap = date(2008, Month::February, 29);
        assert_eq!(age_in_years(leap, date(2026, Month::February, 28)), 17);
        assert_eq!(age_in_years(leap, date(2026, Month::March, 1)), 18);
    }

    #[test]
    fn age_groups_follow_the_settings() {
        let settings = Settings {
            request_deadline_hours: 72,
            minimum_age: 13,
            adult_age: 18,
            withdrawal_grace_days: 0,
            birth_date_category: None,
            time_zone: crate::policy::DEFAULT_TIME_ZONE.to_owned(),
        };
        let today = date(2026, Month::November, 23);
        let born = |y| date(y, Month::November, 23);
        assert_eq!(
            age_group(&settings, born(2014), today),
            AgeGroup::BelowMinimum
        );
        assert_eq!(age_group(&settings, born(2013), today), AgeGroup::Minor);
        assert_eq!(age_group(&settings, born(2009), today), AgeGroup::Minor);
        assert_eq!(age_group(&settings, born(2008), today), AgeGroup::Adult);
        assert_eq!(parse_date("2008-11-23"), Some(born(2008)));
        assert_eq!(parse_date("2008-13-23"), None);
        assert_eq!(date_of(0), date(1970, Month::January, 1));
        // 2026-11-22T17:30Z is already the 23rd in Jakarta (UTC+7): the birthday has begun
        // there, not yet in UTC.
        let evening_utc = 1_795_368_600_000_000;
        assert_eq!(date_of(evening_utc), date(2026, Month::November, 22));
        assert_eq!(today_in(&settings, evening_utc), today);
        let jakarta = today_in(&settings, evening_utc);
        assert_eq!(age_group(&settings, born(2008), jakarta), AgeGroup::Adult);
        assert_eq!(
            age_group(&settings, born(2008), date_of(evening_utc)),
            AgeGroup::Minor
        );
        let utc = Settings {
            time_zone: "UTC".to_owned(),
            ..settings.clone()
        };
        assert_eq!(today_in(&utc, evening_utc), date(2026, Month::November, 22));
    }

    #[test]
    fn channels_default_to_the_standard_set() {
        let policy = crate::policy::Policy::parse(
            r#"
version = "t"
[controller]
name = "C"
contact = "c@c.id"
[categories.email]
type = "email"
class = "general"
[purposes.marketing]
basis = "consent"
categories = ["email"]
retention = "1y"
channels = ["email", "whatsapp"]
[purposes.news]
basis = "consent"
categories = ["email"]
retention = "1y"
"#,
        )
        .unwrap();
        assert_eq!(
            allowed_channels(policy.purpose("marketing").unwrap()),
            ["email", "whatsapp"]
        );
        assert_eq!(allowed_channels(policy.purpose("news").unwrap()), CHANNELS);
    }

    proptest::proptest! {
        #[test]
        fn prop_ages_grow_by_one_on_each_birthday(
            year in 1900i32..2100,
            ordinal in 1u16..=365,
            years in 0i32..120,
        ) {
            let birth = Date::from_ordinal_date(year, ordinal).unwrap();
            let anniversary = birth.replace_year(year + years).unwrap_or_else(|_| {
                // 29 February in a common year: the birthday counts from 1 March.
                Date::from_calendar_date(year + years, Month::March, 1).unwrap()
            });
            proptest::prop_assert_eq!(age_in_years(birth, anniversary), years);
            if let Some(eve) = anniversary.previous_day() {
                if years > 0 {
                    proptest::prop_assert_eq!(age_in_years(birth, eve), years - 1);
                }
            }
        }
    }
}
