//! A link's lease as this process holds it: the fencing token every state
//! write presents (checked by the database in the write's transaction), and
//! a local deadline that remote writes check before they go out.
//!
//! The database alone cannot fence the calendar or HITO-Link: a process
//! paused past its lease (SIGSTOP, a stalled VM) that wakes in the middle
//! of a cycle would otherwise send the write it was about to send. The
//! deadline is kept on the monotonic clock, which runs on while the
//! process is stopped, and is set from the moment a renewal was *sent*
//! minus a margin, so it always ends before the database's expiry does.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Lease {
    pub link: String,
    /// The replica holding it.
    pub owner: String,
    /// Incremented by every takeover; a write presenting an older one is
    /// refused.
    pub token: i64,
    /// Milliseconds after [`base`] until which remote writes may go out.
    valid_until_ms: AtomicU64,
}

/// The process's fixed point on the monotonic clock.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn ms_since_base(t: Instant) -> u64 {
    t.saturating_duration_since(base()).as_millis() as u64
}

impl Lease {
    /// A lease just granted: valid for `valid_for` from `sent_at` (when the
    /// request that won it was sent).
    pub fn new(
        link: &str,
        owner: &str,
        token: i64,
        sent_at: Instant,
        valid_for: Duration,
    ) -> Lease {
        let l = Lease {
            link: link.to_string(),
            owner: owner.to_string(),
            token,
            valid_until_ms: AtomicU64::new(0),
        };
        l.extend(sent_at, valid_for);
        l
    }

    /// A renewal sent at `sent_at` succeeded.
    pub fn extend(&self, sent_at: Instant, valid_for: Duration) {
        self.valid_until_ms
            .fetch_max(ms_since_base(sent_at + valid_for), Ordering::SeqCst);
    }

    /// The lease is gone (lost, released, or the process is stopping).
    pub fn revoke(&self) {
        self.valid_until_ms.store(0, Ordering::SeqCst);
    }

    /// Remote writes may go out.
    pub fn is_valid(&self) -> bool {
        ms_since_base(Instant::now()) < self.valid_until_ms.load(Ordering::SeqCst)
    }

    /// How long it stays valid without a renewal.
    pub fn remaining(&self) -> Duration {
        let until = self.valid_until_ms.load(Ordering::SeqCst);
        Duration::from_millis(until.saturating_sub(ms_since_base(Instant::now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ends_on_the_monotonic_clock_and_can_be_revoked() {
        let sent = Instant::now();
        let l = Lease::new("a", "me", 1, sent, Duration::from_secs(60));
        assert!(l.is_valid());
        assert!(l.remaining() <= Duration::from_secs(60));
        // a renewal never shortens it
        l.extend(sent, Duration::from_secs(1));
        assert!(l.remaining() > Duration::from_secs(1));
        l.revoke();
        assert!(!l.is_valid());
        // granted long ago: already over
        let old = Lease::new("a", "me", 1, Instant::now(), Duration::ZERO);
        assert!(!old.is_valid());
    }
}
