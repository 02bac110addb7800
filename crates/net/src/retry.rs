//! Capped exponential backoff with full jitter.
//!
//! Both APIs ask clients to back off on 429 and 5xx. Full jitter (a random
//! wait between zero and the capped exponential) spreads retries of many
//! workers apart, which matters when a shared quota is what failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;

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

/// What one client's calls came to, for metrics: every attempt is counted
/// once by its result.
#[derive(Debug, Default)]
pub struct CallStats {
    pub ok: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_error: AtomicU64,
    pub other_error: AtomicU64,
    pub retries: AtomicU64,
    /// Time spent waiting for the client's own request budget.
    pub limiter_wait_ms: AtomicU64,
}

impl CallStats {
    fn count<E: Retryable>(&self, e: &E) {
        let bucket = if e.is_rate_limit() {
            &self.rate_limited
        } else if e.is_retryable() {
            &self.server_error
        } else {
            &self.other_error
        };
        bucket.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `op` under `limiter`, retrying what is worth retrying with
/// `backoff`; counts retries in `retries`. Shared by both API clients.
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
        stats
            .limiter_wait_ms
            .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
        let result = op().await;
        match &result {
            Ok(_) => stats.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                stats.count(e);
                0
            }
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < backoff.max_attempts => {
                let wait = backoff.delay(attempt, e.retry_after());
                tracing::warn!(call = what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "API call failed, retrying");
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
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

    #[tokio::test]
    async fn every_attempt_is_counted_by_result() {
        let limiter = crate::ratelimit::RateLimiter::new(60_000, 100);
        let stats = CallStats::default();
        let answers = std::sync::Mutex::new(vec![Ok(()), Err(Flaky(500)), Err(Flaky(429))]);
        let r: Result<(), Flaky> =
            with_retries(&limiter, &Backoff::immediate(5), &stats, "t", || {
                let next = answers.lock().unwrap().pop().unwrap_or(Err(Flaky(404)));
                async move { next }
            })
            .await;
        assert!(r.is_ok());
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(
            (
                get(&stats.ok),
                get(&stats.rate_limited),
                get(&stats.server_error),
                get(&stats.retries)
            ),
            (1, 1, 1, 2)
        );
        // a client error is not retried
        let r: Result<(), Flaky> =
            with_retries(&limiter, &Backoff::immediate(5), &stats, "t", || async {
                Err(Flaky(404))
            })
            .await;
        assert!(r.is_err());
        assert_eq!((get(&stats.other_error), get(&stats.retries)), (1, 2));
    }
}
