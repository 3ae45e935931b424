//! Where the portal keeps sessions, pending codes and send counters: in the server's memory.
//!
//! We chose memory over the store: a session and a pending code are worth nothing once the
//! process is gone (a restart signs everyone out and voids codes in flight, which is safe), they
//! change on every request (a store write per page view would put them in the audit-bearing
//! write path and its group commit), and nothing here is personal data but a subject id. The
//! cost: one portal per organization process. Several servers behind a load balancer need
//! sticky sessions, or a shared store added behind this module (its interface is the methods
//! below). Addresses are never kept: pending codes and rate limits are keyed by a keyed hash of
//! the normalized address under a secret drawn at start.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use amanah_crypto::otp::CodeHash;

pub use crate::web::Lang;
use crate::web::{Session as WebSession, Sessions, Tier};

/// A code lives this long.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Wrong tries that void a code.
pub const MAX_TRIES: u32 = 3;
/// A session unused this long is over.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Codes sent to one address per window.
pub const SENDS_PER_ADDRESS: usize = 3;
/// Codes asked from one client address per window.
pub const SENDS_PER_CLIENT: usize = 10;
/// The window of both limits.
pub const SEND_WINDOW: Duration = Duration::from_secs(15 * 60);
/// A session ends this long after sign-in, however busy.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most, of visitors and of signed-in people each (the oldest idle ones of the
/// same kind go first beyond it).
const MAX_SESSIONS: usize = 100_000;

/// Who the browser is.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Not signed in; `pending` is the code this session last asked for: the keyed hash of its
    /// address and its generation. Only that code can be tried from this session, so a session
    /// that once asked for someone's address cannot spend the tries of a code asked later.
    Visitor { pending: Option<([u8; 32], u64)> },
    /// Signed in as this subject; `acting_for`: the child they chose to act for as guardian.
    SignedIn {
        subject_id: String,
        acting_for: Option<String>,
    },
}

/// A portal session.
pub type Session = WebSession<Stage>;

/// A code waiting to be typed. A code asked for an address nobody holds is kept the same way
/// (without a subject), so both answer alike.
struct Pending {
    /// Set once the lookup found whose address it is (off the request path).
    subject_id: Option<String>,
    hash: CodeHash,
    expires: Instant,
    tries_left: u32,
}

/// What checking a code gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code was right: this subject signs in (the code is used up).
    Valid(String),
    /// Wrong; this many tries remain.
    Wrong(u32),
    /// No code in force (never asked, expired, used, or voided by wrong tries).
    NoCode,
}

#[derive(Default)]
struct Inner {
    /// Codes in force, by address and generation: a code asked later for the same address
    /// (perhaps by someone else) does not replace one already sent.
    pending: HashMap<([u8; 32], u64), Pending>,
    by_address: HashMap<[u8; 32], Vec<Instant>>,
    by_client: HashMap<IpAddr, Vec<Instant>>,
    generation: u64,
}

/// The portal's memory.
pub struct PortalState {
    inner: Mutex<Inner>,
    sessions: Sessions<Stage>,
    /// Keys the hashes of addresses (drawn at start, never stored).
    address_key: [u8; 32],
}

/// Which limit a send ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Address,
    Client,
}

fn recent(list: &mut Vec<Instant>, now: Instant) -> usize {
    list.retain(|t| now.duration_since(*t) < SEND_WINDOW);
    list.len()
}

impl PortalState {
    pub fn new() -> Result<Self, amanah_crypto::CryptoError> {
        let token = amanah_crypto::otp::random_token()?;
        let address_key = amanah_crypto::digest::sha256(token.as_bytes());
        Ok(PortalState {
            inner: Mutex::new(Inner::default()),
            sessions: Sessions::new(SESSION_IDLE, SESSION_LIFETIME, MAX_SESSIONS),
            address_key,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain maps behind: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keyed hash under which an address's code and counters are kept.
    pub fn address_key(&self, normalized: &str) -> [u8; 32] {
        let mut data = Vec::with_capacity(32 + normalized.len());
        data.extend_from_slice(&self.address_key);
        data.extend_from_slice(normalized.as_bytes());
        amanah_crypto::digest::sha256(&data)
    }

    /// The portal's sessions.
    pub fn sessions(&self) -> &Sessions<Stage> {
        &self.sessions
    }

    /// The live session of this id (its idle time restarts), or `None`.
    pub fn session(&self, id: &str, now: Instant) -> Option<Session> {
        self.sessions.get(id, now)
    }

    /// Stores a new session under a fresh random id.
    pub fn open(
        &self,
        stage: Stage,
        lang: Option<Lang>,
        now: Instant,
    ) -> Result<(String, Session), amanah_crypto::CryptoError> {
        let tier = match stage {
            Stage::Visitor { .. } => Tier::Visitor,
            Stage::SignedIn { .. } => Tier::SignedIn,
        };
        self.sessions.open(tier, stage, lang, now)
    }

    pub fn close(&self, id: &str) {
        self.sessions.close(id);
    }

    pub fn set_lang(&self, id: &str, lang: Lang) {
        self.sessions.set_lang(id, lang);
    }

    pub fn set_stage(&self, id: &str, stage: Stage) {
        self.sessions.set_stage(id, stage);
    }

    pub fn set_pending(&self, id: &str, address: [u8; 32], generation: u64) {
        self.sessions.set_stage(
            id,
            Stage::Visitor {
                pending: Some((address, generation)),
            },
        );
    }

    /// Counts a send to `address` from `client`, or says which limit refuses it. Both limits
    /// count whether anyone holds the address or not.
    pub fn count_send(
        &self,
        address: [u8; 32],
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Limited> {
        let mut inner = self.lock();
        if let Some(ip) = client {
            let list = inner.by_client.entry(ip).or_default();
            if recent(list, now) >= SENDS_PER_CLIENT {
                return Err(Limited::Client);
            }
        }
        let list = inner.by_address.entry(address).or_default();
        if recent(list, now) >= SENDS_PER_ADDRESS {
            return Err(Limited::Address);
        }
        list.push(now);
        if let Some(ip) = client {
            inner.by_client.entry(ip).or_default().push(now);
        }
        // Forget counters with nothing recent (bounded memory): a list is only trimmed when
        // its own address or client asks again, so stale ones are trimmed here.
        if inner.by_address.len() > MAX_SESSIONS || inner.by_client.len() > MAX_SESSIONS {
            inner.by_address.retain(|_, l| recent(l, now) > 0);
            inner.by_client.retain(|_, l| recent(l, now) > 0);
        }
        Ok(())
    }

    /// Puts a new code in force for `address` beside any earlier one (an attacker asking a
    /// code for someone's address does not void the one they were sent), bound to nobody yet;
    /// returns its generation for [`PortalState::bind`]. At most [`SENDS_PER_ADDRESS`] exist
    /// per address and window, as the send limit is checked first.
    pub fn put_code(&self, address: [u8; 32], hash: CodeHash, now: Instant) -> u64 {
        let mut inner = self.lock();
        inner
            .pending
            .retain(|_, p| p.expires > now && p.tries_left > 0);
        inner.generation += 1;
        let generation = inner.generation;
        inner.pending.insert(
            (address, generation),
            Pending {
                subject_id: None,
                hash,
                expires: now + CODE_TTL,
                tries_left: MAX_TRIES,
            },
        );
        generation
    }

    /// Binds the code of that generation to the subject the lookup found; `false` when it is
    /// no longer in force (replaced, used or voided): then nothing is to be sent.
    pub fn bind(&self, address: [u8; 32], generation: u64, subject_id: String) -> bool {
        match self.lock().pending.get_mut(&(address, generation)) {
            Some(p) if p.tries_left > 0 => {
                p.subject_id = Some(subject_id);
                true
            }
            _ => false,
        }
    }

    /// Checks a typed code against the code of that generation for `address`, if it is still
    /// in force (another one, asked from another session, is not touched). A right code is
    /// used up, with every other code of the address (its owner is signed in); a wrong one
    /// costs a try, and the last try voids it.
    pub fn check_code(
        &self,
        address: [u8; 32],
        generation: u64,
        code: &str,
        now: Instant,
    ) -> CodeCheck {
        let mut inner = self.lock();
        let key = (address, generation);
        let Some(p) = inner.pending.get_mut(&key) else {
            return CodeCheck::NoCode;
        };
        if p.expires <= now || p.tries_left == 0 {
            inner.pending.remove(&key);
            return CodeCheck::NoCode;
        }
        if p.hash.matches(code) {
            if let Some(subject) = p.subject_id.clone() {
                inner.pending.retain(|(a, _), _| *a != address);
                return CodeCheck::Valid(subject);
            }
        }
        p.tries_left -= 1;
        let left = p.tries_left;
        if left == 0 {
            inner.pending.remove(&key);
        }
        CodeCheck::Wrong(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_wrong_tries_void_a_code_and_a_right_one_is_used_up() {
        let state = PortalState::new().unwrap();
        let now = Instant::now();
        let a = state.address_key("a@example.id");
        let (code, hash) = amanah_crypto::otp::new_code().unwrap();
        let g = state.put_code(a, hash, now);
        // Unbound (nobody holds the address, or the lookup has not finished): never valid.
        assert_eq!(state.check_code(a, g, &code, now), CodeCheck::Wrong(2));
        assert!(state.bind(a, g, "s1".into()));
        assert!(!state.bind(a, g + 1, "s2".into()));
        assert_eq!(state.check_code(a, g, "x", now), CodeCheck::Wrong(1));
        assert_eq!(
            state.check_code(a, g, &code, now),
            CodeCheck::Valid("s1".into())
        );
        assert_eq!(state.check_code(a, g, &code, now), CodeCheck::NoCode);
        let (code, hash) = amanah_crypto::otp::new_code().unwrap();
        let g = state.put_code(a, hash, now);
        assert!(state.bind(a, g, "s1".into()));
        assert_eq!(state.check_code(a, g, "1", now), CodeCheck::Wrong(2));
        assert_eq!(state.check_code(a, g, "2", now), CodeCheck::Wrong(1));
        assert_eq!(state.check_code(a, g, "3", now), CodeCheck::Wrong(0));
        assert_eq!(state.check_code(a, g, &code, now), CodeCheck::NoCode);
        let (code, hash) = amanah_crypto::otp::new_code().unwrap();
        let g = state.put_code(a, hash, now);
        assert!(state.bind(a, g, "s1".into()));
        assert_eq!(
            state.check_code(a, g, &code, now + CODE_TTL),
            CodeCheck::NoCode
        );
        // An expired code is gone: a late lookup binds nothing (and sends nothing).
        assert!(!state.bind(a, g, "s1".into()));
    }

    #[test]
    fn a_session_tries_only_the_code_it_asked_for_and_a_later_one_voids_nothing() {
        let state = PortalState::new().unwrap();
        let now = Instant::now();
        let a = state.address_key("a@example.id");
        // The person asks a code (generation `g`); then someone else asks one for the same
        // address (generation `other`).
        let (code, hash) = amanah_crypto::otp::new_code().unwrap();
        let g = state.put_code(a, hash, now);
        assert!(state.bind(a, g, "s1".into()));
        let (_, hash) = amanah_crypto::otp::new_code().unwrap();
        let other = state.put_code(a, hash, now);
        assert!(state.bind(a, other, "s1".into()));
        // The other session's guesses spend only its own code's tries, and the person's code
        // (which the other session never saw) is no good there.
        for guess in ["000000", "111111", &code] {
            assert!(matches!(
                state.check_code(a, other, guess, now),
                CodeCheck::Wrong(_) | CodeCheck::NoCode
            ));
        }
        assert_eq!(state.check_code(a, other, &code, now), CodeCheck::NoCode);
        assert_eq!(
            state.check_code(a, g, &code, now),
            CodeCheck::Valid("s1".into())
        );
        // Signed in: every other code of the address is gone too.
        assert_eq!(state.check_code(a, g, &code, now), CodeCheck::NoCode);
    }

    #[test]
    fn sends_are_limited_per_address_and_per_client() {
        let state = PortalState::new().unwrap();
        let now = Instant::now();
        let ip = |n: u8| Some(IpAddr::from([10, 0, 0, n]));
        // Per address, whatever the client.
        let a = state.address_key("a@example.id");
        for n in 0..SENDS_PER_ADDRESS {
            state.count_send(a, ip(n as u8), now).unwrap();
        }
        assert_eq!(state.count_send(a, ip(99), now), Err(Limited::Address));
        assert!(state.count_send(a, ip(99), now + SEND_WINDOW).is_ok());
        // Per client, whatever the addresses.
        for n in 0..SENDS_PER_CLIENT {
            let b = state.address_key(&format!("{n}@example.id"));
            state.count_send(b, ip(200), now).unwrap();
        }
        let c = state.address_key("c@example.id");
        assert_eq!(state.count_send(c, ip(200), now), Err(Limited::Client));
        assert!(state.count_send(c, ip(201), now).is_ok());
        assert!(state.count_send(c, ip(200), now + SEND_WINDOW).is_ok());
    }

    #[test]
    fn send_counters_of_past_windows_are_forgotten_beyond_the_bound() {
        let state = PortalState::new().unwrap();
        let now = Instant::now();
        // As many addresses as the bound allows, each from a client of its own (IPv6 gives an
        // attacker plenty), then one more a window later: the stale counters go.
        for n in 0..=MAX_SESSIONS as u128 {
            let address = state.address_key(&format!("{n}@example.id"));
            state
                .count_send(address, Some(IpAddr::from(n.to_be_bytes())), now)
                .unwrap();
        }
        assert_eq!(state.lock().by_address.len(), MAX_SESSIONS + 1);
        let later = now + SEND_WINDOW;
        let last = state.address_key("late@example.id");
        state
            .count_send(last, Some(IpAddr::from([10, 0, 0, 1])), later)
            .unwrap();
        let inner = state.lock();
        assert_eq!(inner.by_address.len(), 1);
        assert_eq!(inner.by_client.len(), 1);
    }

    #[test]
    fn idle_sessions_end() {
        let state = PortalState::new().unwrap();
        let now = Instant::now();
        let (id, _) = state
            .open(Stage::Visitor { pending: None }, None, now)
            .unwrap();
        assert!(state.session(&id, now + SESSION_IDLE / 2).is_some());
        assert!(state.session(&id, now + SESSION_IDLE).is_some());
        assert!(state
            .session(&id, now + SESSION_IDLE * 2 + Duration::from_secs(1))
            .is_none());
    }
}
