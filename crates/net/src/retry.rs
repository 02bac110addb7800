//! Capped exponential backoff with full jitter.
//!
//! Both APIs ask clients to back off on 429 and 5xx. Full jitter (a random
//! wait between zero and the capped exponential) spreads retries of many
//! workers apart, which matters when a shared quota is what failed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt + 1` (attempt counts from 1). A
    /// server's `Retry-After` is a floor: waiting less would only earn
    /// another 429.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let jittered = Duration::from_secs_f64(exp.as_secs_f64() * rand::rng().random::<f64>());
        match retry_after {
            Some(floor) => floor.max(jittered).min(self.cap.max(floor)),
            None => jittered,
        }
    }

    /// For tests: retry at once, a few times.
    pub fn immediate(max_attempts: u32) -> Backoff {
        Backoff {
            base: Duration::ZERO,
            cap: Duration::ZERO,
            max_attempts,
        }
    }
}

/// An error that may be worth another try, and how long the server asked
/// to wait before it.
pub trait Retryable: std::fmt::Display {
    fn is_retryable(&self) -> bool;
    fn retry_after(&self) -> Option<Duration>;
    /// A rate-limit answer (429, or Google's 403 rate-limit reasons).
    fn is_rate_limit(&self) -> bool;
}

/// How one attempt ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    /// A rate-limit answer (429, or Google's 403 rate-limit reasons).
    RateLimited,
    /// Worth a retry: 5xx, a timeout, a broken connection.
    ServerError,
    /// Anything else the caller has to deal with (4xx, a bad answer).
    OtherError,
}

impl Outcome {
    fn of<T, E: Retryable>(result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) if e.is_rate_limit() => Outcome::RateLimited,
            Err(e) if e.is_retryable() => Outcome::ServerError,
            Err(_) => Outcome::OtherError,
        }
    }

    /// The label value metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RateLimited => "rate_limited",
            Outcome::ServerError => "server_error",
            Outcome::OtherError => "other_error",
        }
    }
}

/// Why a call paused before an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pause {
    /// Waiting for the client's own request budget (the rate limiter).
    Budget,
    /// Backing off before a retry of an attempt that ended this way.
    Retry(Outcome),
}

/// Sees every attempt and every pause of a client's calls. The daemon's
/// metrics implement it; the network crate stays free of any metrics
/// library, and a client without an observer pays nothing.
pub trait CallObserver: std::fmt::Debug + Send + Sync {
    /// One attempt at `what` (an endpoint name like `events.list`) took
    /// `elapsed`, the request alone, and ended in `outcome`.
    fn attempt(&self, what: &str, outcome: Outcome, elapsed: Duration);
    /// A pause of `waited` before an attempt at `what`.
    fn paused(&self, what: &str, pause: Pause, waited: Duration);
}

/// One client's hook for metrics, set once by whoever watches the client
/// (the daemon); shared across config reloads with the client's counters.
#[derive(Debug, Default)]
pub struct CallStats {
    observer: OnceLock<Arc<dyn CallObserver>>,
}

impl CallStats {
    /// Reports every attempt and pause to `observer` from now on. Returns
    /// false, changing nothing, when an observer is already set.
    pub fn observe(&self, observer: Arc<dyn CallObserver>) -> bool {
        self.observer.set(observer).is_ok()
    }

    fn attempt(&self, what: &str, outcome: Outcome, elapsed: Duration) {
        if let Some(o) = self.observer.get() {
            o.attempt(what, outcome, elapsed);
        }
    }

    fn paused(&self, what: &str, pause: Pause, waited: Duration) {
        // A budget with room to spare is no wait; a retry is worth
        // reporting even when its backoff is zero (tests).
        if let Some(o) = self.observer.get()
            && (!waited.is_zero() || pause != Pause::Budget)
        {
            o.paused(what, pause, waited);
        }
    }
}

/// Runs `op` under `limiter`, retrying what is worth retrying with
/// `backoff`; reports each attempt and pause to `stats`. Shared by both
/// API clients.
pub async fn with_retries<T, E, F, Fut>(
    limiter: &crate::ratelimit::RateLimiter,
    backoff: &Backoff,
    stats: &CallStats,
    what: &str,
    mut op: F,
) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        let waited = limiter.acquire().await;
        stats.paused(what, Pause::Budget, waited);
        let started = Instant::now();
        let result = op().await;
        let outcome = Outcome::of(&result);
        stats.attempt(what, outcome, started.elapsed());
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < backoff.max_attempts => {
                let wait = backoff.delay(attempt, e.retry_after());
                tracing::warn!(call = what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "API call failed, retrying");
                tokio::time::sleep(wait).await;
                stats.paused(what, Pause::Retry(outcome), wait);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_capped_and_jittered() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 10,
        };
        for attempt in 1..40 {
            let d = b.delay(attempt, None);
            assert!(d <= Duration::from_secs(1), "{attempt}: {d:?}");
        }
        let first: Vec<_> = (0..50).map(|_| b.delay(1, None)).collect();
        assert!(first.iter().all(|d| *d <= Duration::from_millis(100)));
        assert!(first.iter().any(|d| *d != first[0]), "no jitter");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let b = Backoff::default();
        assert!(b.delay(1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(
            Backoff::immediate(3).delay(2, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[derive(Debug)]
    struct Flaky(u16);
    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "status {}", self.0)
        }
    }
    impl Retryable for Flaky {
        fn is_retryable(&self) -> bool {
            self.0 == 429 || self.0 >= 500
        }
        fn retry_after(&self) -> Option<Duration> {
            None
        }
        fn is_rate_limit(&self) -> bool {
            self.0 == 429
        }
    }

    /// Remembers what it was told.
    #[derive(Debug, Default)]
    struct Seen(std::sync::Mutex<Vec<String>>);
    impl CallObserver for Seen {
        fn attempt(&self, what: &str, outcome: Outcome, _elapsed: Duration) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{what} {}", outcome.as_str()));
        }
        fn paused(&self, what: &str, pause: Pause, _waited: Duration) {
            self.0.lock().unwrap().push(format!("{what} {pause:?}"));
        }
    }

    #[tokio::test]
    async fn every_attempt_and_retry_is_reported() {
        let limiter = crate::ratelimit::RateLimiter::new(60_000, 100);
        let stats = CallStats::default();
        let seen = Arc::new(Seen::default());
        assert!(stats.observe(seen.clone()));
        assert!(!stats.observe(seen.clone()), "a second observer was taken");
        let answers = std::sync::Mutex::new(vec![Ok(()), Err(Flaky(500)), Err(Flaky(429))]);
        let r: Result<(), Flaky> =
            with_retries(&limiter, &Backoff::immediate(5), &stats, "t", || {
                let next = answers.lock().unwrap().pop().unwrap_or(Err(Flaky(404)));
                async move { next }
            })
            .await;
        assert!(r.is_ok());
        // a client error is not retried
        let r: Result<(), Flaky> =
            with_retries(&limiter, &Backoff::immediate(5), &stats, "u", || async {
                Err(Flaky(404))
            })
            .await;
        assert!(r.is_err());
        // the budget had room: no budget pause is reported
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                "t rate_limited",
                "t Retry(RateLimited)",
                "t server_error",
                "t Retry(ServerError)",
                "t ok",
                "u other_error",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_on_the_budget_is_reported() {
        let limiter = crate::ratelimit::RateLimiter::new(60, 1); // one a second
        let stats = CallStats::default();
        let seen = Arc::new(Seen::default());
        stats.observe(seen.clone());
        for _ in 0..2 {
            let _: Result<(), Flaky> =
                with_retries(&limiter, &Backoff::immediate(1), &stats, "t", || async {
                    Ok(())
                })
                .await;
        }
        assert_eq!(*seen.0.lock().unwrap(), ["t ok", "t Budget", "t ok"]);
    }
}
