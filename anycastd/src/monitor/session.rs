//! Sessions, without I/O: random ids, an idle timeout and a longest life, a CSRF token
//! per session. The caller passes `now`, so tests run on a virtual clock.
//!
//! ```text
//!  login ok ──create──> Valid ──touch (within idle and max)──> Valid
//!                         │ idle or max passed            │ logout
//!                         v                               v
//!                      Expired (removed at the lookup)   gone
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::config::monitor::Role;

/// Sessions held at once; the oldest goes first beyond this (a login flood cannot
/// grow memory without bound).
pub const MAX_SESSIONS: usize = 1024;

/// 256 random bits from the OS-seeded generator, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// Sent back in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    created: Instant,
    last_used: Instant,
}

impl Session {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// What a cookie's session id turned out to be.
#[derive(Debug, Clone)]
pub enum Lookup {
    Valid(Session),
    /// It was a session, now past its idle time or its longest life (and removed).
    Expired,
    Unknown,
}

pub struct Sessions {
    by_id: HashMap<String, Session>,
    idle: Duration,
    max: Duration,
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Self {
        Sessions {
            by_id: HashMap::new(),
            idle,
            max,
        }
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_used) > self.idle
            || now.saturating_duration_since(s.created) > self.max
    }

    /// A new session for `user`: its id (the cookie) and the session.
    pub fn create(&mut self, user: &str, role: Role, now: Instant) -> (String, Session) {
        self.by_id.retain(|_, s| {
            now.saturating_duration_since(s.last_used) <= self.idle
                && now.saturating_duration_since(s.created) <= self.max
        });
        while self.by_id.len() >= MAX_SESSIONS {
            let oldest = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.by_id.remove(&id),
                None => break,
            };
        }
        let session = Session {
            user: user.to_string(),
            role,
            csrf: random_token(),
            created: now,
            last_used: now,
        };
        let id = random_token();
        self.by_id.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session for `id`, marked used at `now`.
    pub fn touch(&mut self, id: &str, now: Instant) -> Lookup {
        let Some(s) = self.by_id.get(id) else {
            return Lookup::Unknown;
        };
        if self.expired(s, now) {
            self.by_id.remove(id);
            return Lookup::Expired;
        }
        let s = self.by_id.get_mut(id).expect("present: looked up above");
        s.last_used = now;
        Lookup::Valid(s.clone())
    }

    /// Whether `id` is still a live session, without marking it used (the live feed
    /// checks this between events: a feed left open must not keep a session alive).
    pub fn alive(&self, id: &str, now: Instant) -> bool {
        self.by_id.get(id).is_some_and(|s| !self.expired(s, now))
    }

    pub fn remove(&mut self, id: &str) -> Option<Session> {
        self.by_id.remove(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(600);

    #[test]
    fn a_session_lives_while_used_and_ends_after_idle_time() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let (id, sess) = s.create("ann", Role::Viewer, t0);
        assert_eq!(id.len(), 64);
        assert_ne!(id, sess.csrf);
        assert!(
            matches!(s.touch(&id, t0 + Duration::from_secs(59)), Lookup::Valid(v) if v.user == "ann")
        );
        // Used at 59 s: alive until 119 s.
        assert!(s.alive(&id, t0 + Duration::from_secs(118)));
        assert!(matches!(
            s.touch(&id, t0 + Duration::from_secs(120)),
            Lookup::Expired
        ));
        assert!(matches!(
            s.touch(&id, t0 + Duration::from_secs(121)),
            Lookup::Unknown
        ));
        assert!(matches!(s.touch("forged", t0), Lookup::Unknown));
    }

    #[test]
    fn a_session_ends_at_its_longest_life_even_in_use() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let (id, _) = s.create("op", Role::Operator, t0);
        let mut t = t0;
        while t < t0 + MAX {
            assert!(matches!(s.touch(&id, t), Lookup::Valid(_)));
            t += Duration::from_secs(30);
        }
        assert!(matches!(
            s.touch(&id, t0 + MAX + Duration::from_secs(1)),
            Lookup::Expired
        ));
    }

    #[test]
    fn csrf_tokens_match_only_exactly() {
        let mut s = Sessions::new(IDLE, MAX);
        let (_, sess) = s.create("op", Role::Operator, Instant::now());
        assert!(sess.csrf_matches(Some(&sess.csrf.clone())));
        assert!(!sess.csrf_matches(None));
        assert!(!sess.csrf_matches(Some("")));
        assert!(!sess.csrf_matches(Some(&sess.csrf[..63])));
        let (_, other) = s.create("op", Role::Operator, Instant::now());
        assert!(
            !sess.csrf_matches(Some(&other.csrf)),
            "another session's token"
        );
    }

    #[test]
    fn a_login_flood_keeps_the_store_bounded() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let (first, _) = s.create("a", Role::Viewer, t0);
        for i in 0..MAX_SESSIONS + 10 {
            s.create("b", Role::Viewer, t0 + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(matches!(
            s.touch(&first, t0 + Duration::from_secs(1)),
            Lookup::Unknown
        ));
        assert!(!s.is_empty());
    }

    #[test]
    fn logout_removes_the_session() {
        let t0 = Instant::now();
        let mut s = Sessions::new(IDLE, MAX);
        let (id, _) = s.create("a", Role::Viewer, t0);
        assert!(s.remove(&id).is_some());
        assert!(matches!(s.touch(&id, t0), Lookup::Unknown));
    }
}
