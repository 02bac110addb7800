//! A token bucket that paces requests to a per-minute budget.
//!
//! Implemented as GCRA (one timestamp instead of a token count), which gives
//! the same admissions as a token bucket of `burst` tokens refilled at
//! `per_minute / 60` a second, and needs no background refill task.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// When the bucket is next empty-to-full "theoretically": GCRA's TAT.
    tat: Mutex<Instant>,
}

impl RateLimiter {
    /// `burst` requests may go at once after a quiet spell; after that they
    /// are spaced `60s / per_minute` apart.
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        let per_minute = per_minute.max(1);
        let interval = Duration::from_secs(60) / per_minute;
        RateLimiter {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// Waits until one more request fits the budget, and books it. Returns
    /// how long it waited (for metrics: time spent waiting on the quota).
    pub async fn acquire(&self) -> Duration {
        let wait = {
            let mut tat = self.tat.lock().await;
            let now = Instant::now();
            let start = (*tat).max(now);
            *tat = start + self.interval;
            let allowed_at = start.checked_sub(self.tolerance).unwrap_or(now);
            allowed_at.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_after_the_burst() {
        let limiter = RateLimiter::new(600, 5); // one per 100 ms
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        // 15 requests with a burst of 5: the 15th is admitted at 1.0 s.
        assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn long_run_rate_is_the_budget() {
        let limiter = RateLimiter::new(120, 10); // two a second
        let start = Instant::now();
        for _ in 0..130 {
            limiter.acquire().await;
        }
        // 130 requests, 10 of them free: 120 more intervals of 0.5 s = 60 s.
        let secs = start.elapsed().as_secs_f64();
        assert!((59.0..61.0).contains(&secs), "{secs}");
    }
}
