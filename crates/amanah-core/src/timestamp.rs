//! An instant as the vault keeps it (microseconds since the Unix epoch, UTC) and as it shows and
//! reads it (RFC 3339). Stores keep the integer; every boundary that shows an instant or reads
//! one from a caller goes through [`Timestamp`], so the format is written once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Text that is not an RFC 3339 date-time (the text itself is not kept: it may be anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time (e.g. 2026-11-23T01:00:00Z)")]
pub struct NotATimestamp;

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    fn datetime(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000).ok()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        // i64 microseconds reach well past year 9999, the last year RFC 3339 can write.
        Timestamp((t.unix_timestamp_nanos() / 1_000) as i64)
    }
}

/// RFC 3339 in UTC, with the fraction of a second only when there is one
/// (`2026-11-23T01:00:00Z`, `2026-11-23T01:00:00.25Z`). An instant beyond what RFC 3339 can
/// write (before year 0 or after 9999, never made by a clock) shows as its microseconds.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.datetime().and_then(|t| t.format(&Rfc3339).ok()) {
            Some(text) => f.write_str(&text),
            None => write!(f, "{}us", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = NotATimestamp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Timestamp::from)
            .map_err(|_| NotATimestamp)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shows_rfc3339_in_utc_with_a_fraction_only_when_there_is_one() {
        assert_eq!(
            Timestamp::from_micros(1_763_859_600_000_000).to_string(),
            "2025-11-23T01:00:00Z"
        );
        assert_eq!(
            Timestamp::from_micros(1_763_859_600_250_000).to_string(),
            "2025-11-23T01:00:00.25Z"
        );
        assert_eq!(
            Timestamp::from_micros(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            serde_json::to_value(Timestamp::from_micros(0)).unwrap(),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn reads_offsets_as_the_same_instant_and_refuses_other_text_without_repeating_it() {
        let utc: Timestamp = "2026-11-23T01:00:00Z".parse().unwrap();
        let wib: Timestamp = "2026-11-23T08:00:00+07:00".parse().unwrap();
        assert_eq!(utc, wib);
        for bad in ["", "2026-11-24", "24/11/2026 01:00", "siti@example.id"] {
            let err = bad.parse::<Timestamp>().unwrap_err();
            assert_eq!(err, NotATimestamp);
            assert!(bad.is_empty() || !err.to_string().contains(bad));
        }
        let err = serde_json::from_str::<Timestamp>("\"siti@example.id\"").unwrap_err();
        assert!(!err.to_string().contains("siti"), "{err}");
    }

    proptest! {
        /// Every instant a clock can give (years 1 to 9999, to the microsecond) shows and reads
        /// back as itself, through text and through JSON.
        #[test]
        fn round_trips(micros in -62_135_596_800_000_000i64..253_402_300_799_999_999) {
            let t = Timestamp::from_micros(micros);
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }
    }
}
