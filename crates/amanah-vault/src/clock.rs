//! Time is a parameter: every rule that depends on "now" (audit timestamps, deadlines, consent
//! grace, retention) reads it from a [`Clock`], so tests control it without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;

    fn now_micros(&self) -> i64 {
        amanah_core::Timestamp::from(self.now()).micros()
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to (tests, simulations).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock(AtomicI64::new(amanah_core::Timestamp::from(start).micros()))
    }

    pub fn advance(&self, by: time::Duration) {
        self.0
            .fetch_add(by.whole_microseconds() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, to: OffsetDateTime) {
        self.0
            .store(amanah_core::Timestamp::from(to).micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let micros = self.0.load(Ordering::SeqCst) as i128;
        OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}
