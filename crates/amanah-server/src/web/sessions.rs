//! Sessions in the server's memory, keyed by a 256-bit random id, each with its own
//! synchronizer token. Why memory and not the store: a session is worth nothing once the
//! process is gone (a restart signs everyone out, which is safe), it changes on every request
//! (a store write per page view would put it in the audit-bearing write path), and it holds no
//! personal data. The cost: several servers behind a load balancer need sticky sessions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Lang;

/// One browser's session: what it is (`stage`, the pages' own notion), its form token and
/// the language it chose.
#[derive(Debug, Clone)]
pub struct Session<S> {
    /// The synchronizer token every form of this session carries.
    pub csrf: String,
    pub stage: S,
    pub lang: Option<Lang>,
    opened: Instant,
    last_seen: Instant,
}

/// Whether a session belongs to someone who proved who they are, or to a visitor who has not
/// (yet): kept apart, so that a flood of visitors (one session per cookieless request) can
/// only push out other visitors, never a signed-in person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Visitor,
    SignedIn,
}

/// The live sessions of one set of pages.
pub struct Sessions<S> {
    visitors: Mutex<HashMap<String, Session<S>>>,
    signed_in: Mutex<HashMap<String, Session<S>>>,
    /// A session unused this long is over.
    idle: Duration,
    /// A session is over this long after it opened, however busy.
    lifetime: Duration,
    /// Sessions kept at most in each tier (beyond it, that tier's expired ones go, then its
    /// least recently seen).
    cap: usize,
}

impl<S: Clone> Sessions<S> {
    pub fn new(idle: Duration, lifetime: Duration, cap: usize) -> Self {
        Sessions {
            visitors: Mutex::new(HashMap::new()),
            signed_in: Mutex::new(HashMap::new()),
            idle,
            lifetime,
            cap,
        }
    }

    fn lock(&self, tier: Tier) -> std::sync::MutexGuard<'_, HashMap<String, Session<S>>> {
        let map = match tier {
            Tier::Visitor => &self.visitors,
            Tier::SignedIn => &self.signed_in,
        };
        // A panic while holding the lock leaves a plain map behind: still usable.
        map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, s: &Session<S>, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.opened) < self.lifetime
    }

    /// The live session of this id (its idle time restarts), or `None`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session<S>> {
        for tier in [Tier::SignedIn, Tier::Visitor] {
            let mut map = self.lock(tier);
            let Some(s) = map.get_mut(id) else { continue };
            if !self.live(s, now) {
                map.remove(id);
                return None;
            }
            s.last_seen = now;
            return Some(s.clone());
        }
        None
    }

    /// Stores a new session of `tier` under a fresh random id, with a fresh token.
    pub fn open(
        &self,
        tier: Tier,
        stage: S,
        lang: Option<Lang>,
        now: Instant,
    ) -> Result<(String, Session<S>), amanah_crypto::CryptoError> {
        let id = amanah_crypto::otp::random_token()?;
        let session = Session {
            csrf: amanah_crypto::otp::random_token()?,
            stage,
            lang,
            opened: now,
            last_seen: now,
        };
        let mut map = self.lock(tier);
        if map.len() >= self.cap {
            map.retain(|_, s| self.live(s, now));
            if map.len() >= self.cap {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    pub fn close(&self, id: &str) {
        for tier in [Tier::SignedIn, Tier::Visitor] {
            self.lock(tier).remove(id);
        }
    }

    /// Ends every session whose stage `matches` (e.g. all of one signed-in person's).
    pub fn close_where(&self, matches: impl Fn(&S) -> bool) {
        for tier in [Tier::SignedIn, Tier::Visitor] {
            self.lock(tier).retain(|_, s| !matches(&s.stage));
        }
    }

    pub fn set_lang(&self, id: &str, lang: Lang) {
        self.update(id, |s| s.lang = Some(lang));
    }

    /// Changes what a session is, within its tier (a sign-in opens a new session instead).
    pub fn set_stage(&self, id: &str, stage: S) {
        self.update(id, |s| s.stage = stage);
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Session<S>)) {
        for tier in [Tier::SignedIn, Tier::Visitor] {
            if let Some(s) = self.lock(tier).get_mut(id) {
                change(s);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_and_at_their_lifetime() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(150), 10);
        let now = Instant::now();
        let (id, s) = sessions.open(Tier::SignedIn, "a", None, now).unwrap();
        assert_ne!(id, s.csrf);
        assert!(sessions.get(&id, now + Duration::from_secs(50)).is_some());
        assert!(sessions.get(&id, now + Duration::from_secs(100)).is_some());
        // Still busy, but past its lifetime.
        assert!(sessions.get(&id, now + Duration::from_secs(151)).is_none());
        let (id, _) = sessions.open(Tier::Visitor, "b", None, now).unwrap();
        assert!(sessions.get(&id, now + Duration::from_secs(61)).is_none());
    }

    #[test]
    fn beyond_the_cap_the_least_recently_seen_of_the_same_tier_goes() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(600), 2);
        let now = Instant::now();
        let at = |s: u64| now + Duration::from_secs(s);
        let (member, _) = sessions.open(Tier::SignedIn, 0, None, now).unwrap();
        let (a, _) = sessions.open(Tier::Visitor, 1, None, now).unwrap();
        let (b, _) = sessions.open(Tier::Visitor, 2, None, at(1)).unwrap();
        assert!(sessions.get(&a, at(2)).is_some());
        let (c, _) = sessions.open(Tier::Visitor, 3, None, at(3)).unwrap();
        assert!(sessions.get(&b, at(4)).is_none());
        assert!(sessions.get(&a, at(4)).is_some() && sessions.get(&c, at(4)).is_some());
        // A flood of visitors never pushes out a signed-in session.
        for i in 0..50 {
            sessions.open(Tier::Visitor, 9, None, at(5 + i)).unwrap();
        }
        assert!(sessions.get(&member, at(56)).is_some());
        sessions.set_stage(&member, 7);
        assert_eq!(sessions.get(&member, at(57)).unwrap().stage, 7);
        sessions.close_where(|s| *s == 7);
        assert!(sessions.get(&member, at(58)).is_none());
    }
}
