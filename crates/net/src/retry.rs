//! Capped exponential backoff with full jitter.
//!
//! Both APIs ask clients to back off on 429 and 5xx. Full jitter (a random
//! wait between zero and the capped exponential) spreads retries of many
//! workers apart, which matters when a shared quota is what failed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
pub use tokio_util::sync::CancellationToken;

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

/// What bounds one call, retries included. Each client holds one; the
/// daemon hands it a fresh token per cycle.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Fired on SIGTERM/SIGINT or at the cycle's deadline: every wait
    /// (the request budget, a backoff, a `Retry-After`) ends at once.
    pub cancel: CancellationToken,
    /// The longest `Retry-After` honoured. A server asking for more is not
    /// waited for: the call fails with an error that says what it asked.
    pub max_retry_after: Duration,
    /// The longest one call may take, every attempt and wait included.
    pub max_total: Duration,
}

/// The `Retry-After` cap when the config sets none.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl Bounds {
    /// Never cancelled; the total is the `Retry-After` cap plus room for
    /// two requests that run into their timeout.
    pub fn new(max_retry_after: Duration) -> Bounds {
        Bounds {
            cancel: CancellationToken::new(),
            max_retry_after,
            max_total: max_retry_after + 2 * crate::http::REQUEST_TIMEOUT + Duration::from_secs(60),
        }
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds::new(DEFAULT_MAX_RETRY_AFTER)
    }
}

/// What happens to an attempt already sent when the token fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    /// A read: dropped at once, nothing is lost.
    Abandon,
    /// A write: its answer says whether it happened, so it is awaited (its
    /// own timeout bounds it); no further attempt follows.
    Finish,
}

/// Why a call ended without the server's last word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// The cancellation token fired (shutdown, or the cycle's deadline).
    Stopped,
    /// The server asked to wait longer than [`Bounds::max_retry_after`].
    RetryAfterTooLong { asked: Duration, cap: Duration },
    /// The next wait would take the call past [`Bounds::max_total`].
    OutOfTime {
        spent: Duration,
        attempts: u32,
        last: String,
    },
}

/// An error that may be worth another try, and how long the server asked
/// to wait before it.
pub trait Retryable: std::fmt::Display {
    fn is_retryable(&self) -> bool;
    fn retry_after(&self) -> Option<Duration>;
    /// A rate-limit answer (429, or Google's 403 rate-limit reasons).
    fn is_rate_limit(&self) -> bool;
    /// The error a call ends with when it was cut short.
    fn interrupted(why: Interrupted) -> Self;
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
        if let Some(o) = self
            .observer
            .get()
            .filter(|_| !waited.is_zero() || pause != Pause::Budget)
        {
            o.paused(what, pause, waited);
        }
    }
}

/// Runs `op` under `limiter`, retrying what is worth retrying with
/// `backoff`, within `bounds`; counts retries in `stats`. Shared by both
/// API clients.
pub async fn with_retries<T, E, F, Fut>(
    limiter: &crate::ratelimit::RateLimiter,
    backoff: &Backoff,
    bounds: &Bounds,
    stats: &CallStats,
    what: &str,
    in_flight: InFlight,
    mut op: F,
) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let stopped = || E::interrupted(Interrupted::Stopped);
    let mut attempt = 1;
    loop {
        if bounds.cancel.is_cancelled() {
            return Err(stopped());
        }
        let waited = tokio::select! {
            biased;
            _ = bounds.cancel.cancelled() => return Err(stopped()),
            w = limiter.acquire() => w,
        };
        stats.paused(what, Pause::Budget, waited);
        let sent = Instant::now();
        let result = match in_flight {
            InFlight::Finish => op().await,
            InFlight::Abandon => tokio::select! {
                biased;
                _ = bounds.cancel.cancelled() => return Err(stopped()),
                r = op() => r,
            },
        };
        let outcome = Outcome::of(&result);
        stats.attempt(what, outcome, sent.elapsed());
        let e = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !e.is_retryable() {
            return Err(e);
        }
        if let Some(asked) = e
            .retry_after()
            .filter(|asked| *asked > bounds.max_retry_after)
        {
            tracing::warn!(
                call = what,
                asked_s = asked.as_secs(),
                cap_s = bounds.max_retry_after.as_secs(),
                "the server asked to wait longer than allowed; not waiting"
            );
            return Err(E::interrupted(Interrupted::RetryAfterTooLong {
                asked,
                cap: bounds.max_retry_after,
            }));
        }
        if attempt >= backoff.max_attempts {
            return Err(e);
        }
        if bounds.cancel.is_cancelled() {
            return Err(stopped());
        }
        let wait = backoff.delay(attempt, e.retry_after());
        let spent = started.elapsed();
        if spent + wait > bounds.max_total {
            return Err(E::interrupted(Interrupted::OutOfTime {
                spent,
                attempts: attempt,
                last: e.to_string(),
            }));
        }
        tracing::warn!(call = what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "API call failed, retrying");
        tokio::select! {
            biased;
            _ = bounds.cancel.cancelled() => return Err(stopped()),
            _ = tokio::time::sleep(wait) => {}
        }
        stats.paused(what, Pause::Retry(outcome), wait);
        attempt += 1;
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

    #[derive(Debug, PartialEq)]
    enum Flaky {
        Status(u16),
        /// 429 with a `Retry-After` in seconds.
        After(u64),
        Cut(Interrupted),
    }
    use Flaky::Status as St;
    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl Retryable for Flaky {
        fn is_retryable(&self) -> bool {
            matches!(self, St(429) | Flaky::After(_)) || matches!(self, St(s) if *s >= 500)
        }
        fn retry_after(&self) -> Option<Duration> {
            match self {
                Flaky::After(s) => Some(Duration::from_secs(*s)),
                _ => None,
            }
        }
        fn is_rate_limit(&self) -> bool {
            matches!(self, St(429) | Flaky::After(_))
        }
        fn interrupted(why: Interrupted) -> Self {
            Flaky::Cut(why)
        }
    }

    fn limiter() -> crate::ratelimit::RateLimiter {
        crate::ratelimit::RateLimiter::new(60_000, 100)
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_retry_after_is_an_error_not_a_wait() {
        let bounds = Bounds::new(Duration::from_secs(300));
        let stats = CallStats::default();
        let start = Instant::now();
        let r: Result<(), Flaky> = with_retries(
            &limiter(),
            &Backoff::default(),
            &bounds,
            &stats,
            "t",
            InFlight::Abandon,
            || async { Err(Flaky::After(86_400)) },
        )
        .await;
        assert_eq!(
            r.unwrap_err(),
            Flaky::Cut(Interrupted::RetryAfterTooLong {
                asked: Duration::from_secs(86_400),
                cap: Duration::from_secs(300)
            })
        );
        assert_eq!(start.elapsed(), Duration::ZERO, "it waited");
        // a Retry-After within the cap is honoured
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<(), Flaky> = with_retries(
            &limiter(),
            &Backoff::default(),
            &bounds,
            &stats,
            "t",
            InFlight::Abandon,
            || {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(Flaky::After(120))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await;
        assert!(r.is_ok());
        assert!(start.elapsed() >= Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_ends_a_wait_at_once() {
        let bounds = Bounds::new(Duration::from_secs(300));
        let token = bounds.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            token.cancel();
        });
        let start = Instant::now();
        let r: Result<(), Flaky> = with_retries(
            &limiter(),
            &Backoff::default(),
            &bounds,
            &CallStats::default(),
            "t",
            InFlight::Abandon,
            || async { Err(Flaky::After(200)) },
        )
        .await;
        assert_eq!(r.unwrap_err(), Flaky::Cut(Interrupted::Stopped));
        assert!(
            start.elapsed() < Duration::from_secs(200),
            "waited out the Retry-After"
        );
        // a read in flight is dropped too; a fired token stops the next call before it starts
        let r: Result<(), Flaky> = with_retries(
            &limiter(),
            &Backoff::default(),
            &bounds,
            &CallStats::default(),
            "t",
            InFlight::Finish,
            || async { panic!("a call started after the stop") },
        )
        .await;
        assert_eq!(r.unwrap_err(), Flaky::Cut(Interrupted::Stopped));
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_in_flight_is_abandoned_a_write_is_finished() {
        let bounds = Bounds::new(Duration::from_secs(300));
        let token = bounds.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            token.cancel();
        });
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, Flaky>(())
        };
        let (l1, l2, b, s1, s2) = (
            limiter(),
            limiter(),
            Backoff::default(),
            CallStats::default(),
            CallStats::default(),
        );
        let read = with_retries(&l1, &b, &bounds, &s1, "read", InFlight::Abandon, slow);
        let write = with_retries(&l2, &b, &bounds, &s2, "write", InFlight::Finish, slow);
        let (read, write) = tokio::join!(read, write);
        assert_eq!(read.unwrap_err(), Flaky::Cut(Interrupted::Stopped));
        assert!(write.is_ok(), "the write in flight was not finished");
    }

    #[tokio::test(start_paused = true)]
    async fn one_call_is_bounded_in_total() {
        let mut bounds = Bounds::new(Duration::from_secs(300));
        bounds.max_total = Duration::from_secs(100);
        let backoff = Backoff {
            max_attempts: 1000,
            ..Backoff::default()
        };
        let start = Instant::now();
        let r: Result<(), Flaky> = with_retries(
            &limiter(),
            &backoff,
            &bounds,
            &CallStats::default(),
            "t",
            InFlight::Abandon,
            || async { Err(Flaky::After(30)) },
        )
        .await;
        assert!(
            matches!(
                r,
                Err(Flaky::Cut(Interrupted::OutOfTime { attempts: 4, .. }))
            ),
            "{r:?}"
        );
        assert!(start.elapsed() <= Duration::from_secs(100));
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
        let limiter = limiter();
        let bounds = Bounds::default();
        let stats = CallStats::default();
        let seen = Arc::new(Seen::default());
        assert!(stats.observe(seen.clone()));
        assert!(!stats.observe(seen.clone()), "a second observer was taken");
        let answers = std::sync::Mutex::new(vec![Ok(()), Err(St(500)), Err(St(429))]);
        let r: Result<(), Flaky> = with_retries(
            &limiter,
            &Backoff::immediate(5),
            &bounds,
            &stats,
            "t",
            InFlight::Abandon,
            || {
                let next = answers.lock().unwrap().pop().unwrap_or(Err(St(404)));
                async move { next }
            },
        )
        .await;
        assert!(r.is_ok());
        // a client error is not retried
        let r: Result<(), Flaky> = with_retries(
            &limiter,
            &Backoff::immediate(5),
            &bounds,
            &stats,
            "u",
            InFlight::Abandon,
            || async { Err(St(404)) },
        )
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
            let _: Result<(), Flaky> = with_retries(
                &limiter,
                &Backoff::immediate(1),
                &Bounds::default(),
                &stats,
                "t",
                InFlight::Abandon,
                || async { Ok(()) },
            )
            .await;
        }
        assert_eq!(*seen.0.lock().unwrap(), ["t ok", "t Budget", "t ok"]);
    }
}
