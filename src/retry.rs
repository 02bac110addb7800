//! Capped exponential backoff with full jitter.
//!
//! Both APIs ask clients to back off on 429 and 5xx. Full jitter (a random
//! wait between zero and the capped exponential) spreads retries of many
//! workers apart, which matters when a shared quota is what failed.

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
}

/// Runs `op` under `limiter`, retrying what is worth retrying with
/// `backoff`; counts retries in `retries`. Shared by both API clients.
pub async fn with_retries<T, E, F, Fut>(
    limiter: &crate::ratelimit::RateLimiter,
    backoff: &Backoff,
    retries: &std::sync::atomic::AtomicU64,
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
        limiter.acquire().await;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < backoff.max_attempts => {
                let wait = backoff.delay(attempt, e.retry_after());
                tracing::warn!(call = what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "API call failed, retrying");
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
}
