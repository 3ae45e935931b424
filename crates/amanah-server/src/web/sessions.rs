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

/// The live sessions of one set of pages.
pub struct Sessions<S> {
    map: Mutex<HashMap<String, Session<S>>>,
    /// A session unused this long is over.
    idle: Duration,
    /// A session is over this long after it opened, however busy.
    lifetime: Duration,
    /// Sessions kept at most (beyond it, expired ones go, then the least recently seen).
    cap: usize,
}

impl<S: Clone> Sessions<S> {
    pub fn new(idle: Duration, lifetime: Duration, cap: usize) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            lifetime,
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session<S>>> {
        // A panic while holding the lock leaves a plain map behind: still usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, s: &Session<S>, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.opened) < self.lifetime
    }

    /// The live session of this id (its idle time restarts), or `None`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session<S>> {
        let mut map = self.lock();
        let live = map.get(id).is_some_and(|s| self.live(s, now));
        if !live {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Stores a new session under a fresh random id, with a fresh token.
    pub fn open(
        &self,
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
        let mut map = self.lock();
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
        self.lock().remove(id);
    }

    /// Ends every session whose stage `matches` (e.g. all of one signed-in person's).
    pub fn close_where(&self, matches: impl Fn(&S) -> bool) {
        self.lock().retain(|_, s| !matches(&s.stage));
    }

    pub fn set_lang(&self, id: &str, lang: Lang) {
        if let Some(s) = self.lock().get_mut(id) {
            s.lang = Some(lang);
        }
    }

    pub fn set_stage(&self, id: &str, stage: S) {
        if let Some(s) = self.lock().get_mut(id) {
            s.stage = stage;
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
        let (id, s) = sessions.open("a", None, now).unwrap();
        assert_ne!(id, s.csrf);
        assert!(sessions.get(&id, now + Duration::from_secs(50)).is_some());
        assert!(sessions.get(&id, now + Duration::from_secs(100)).is_some());
        // Still busy, but past its lifetime.
        assert!(sessions.get(&id, now + Duration::from_secs(151)).is_none());
        let (id, _) = sessions.open("b", None, now).unwrap();
        assert!(sessions.get(&id, now + Duration::from_secs(61)).is_none());
    }

    #[test]
    fn beyond_the_cap_the_least_recently_seen_goes() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(600), 2);
        let now = Instant::now();
        let (a, _) = sessions.open(1, None, now).unwrap();
        let (b, _) = sessions
            .open(2, None, now + Duration::from_secs(1))
            .unwrap();
        assert!(sessions.get(&a, now + Duration::from_secs(2)).is_some());
        let (c, _) = sessions
            .open(3, None, now + Duration::from_secs(3))
            .unwrap();
        let later = now + Duration::from_secs(4);
        assert!(sessions.get(&b, later).is_none());
        assert!(sessions.get(&a, later).is_some() && sessions.get(&c, later).is_some());
        sessions.close_where(|s| *s == 1);
        assert!(sessions.get(&a, later).is_none());
    }
}
