//! Metrics on `daemon.metrics_listen`, through prometheus-client.
//!
//! One registry holds each metric family once, and every family carries a
//! `link` label: [`Metrics::link`] hands out the handle through which one
//! link's loop and clients record, so a second link is one more call to it
//! (one family per name keeps the exposition valid, where a sub-registry
//! per link would repeat each family's header).
//!
//! `/metrics` answers in OpenMetrics when the scraper asks for it, as
//! Prometheus does, and in the Prometheus text format (0.0.4) otherwise:
//! curl, and `promtool check metrics`, which reads only that format.
//!
//! The families themselves (names, help, units, labels) are in `families`;
//! this module records into them.

mod families;
mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use hitosync_engine::link::Link;
use hitosync_engine::{CycleReport, EngineError, INVITATION_HOLD};
use hitosync_google::GoogleError;
use hitosync_net::retry::{CallObserver, Outcome, Pause};
use hitosync_state::{StateStore, StateStoreExt};

use families::{
    EndpointLabels, Families, LinkLabels, RequestLabels, ResultLabels, SideLabels, WaitLabels,
};
pub use http::serve;

/// The daemon's metrics: the registry `/metrics` encodes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let families = Families::register(&mut registry);
        Metrics { registry, families }
    }

    /// The handle one link records through. Its series exist from now on,
    /// at zero, so that rates and alerts see them before the first cycle.
    pub fn link(&self, name: &str) -> Arc<LinkMetrics> {
        let m = LinkMetrics {
            link: name.to_string(),
            f: self.families.clone(),
            token_source: Mutex::new(None),
            token_refreshes_seen: AtomicU64::new(0),
            watching: AtomicBool::new(false),
        };
        m.start_series();
        Arc::new(m)
    }

    /// The exposition: OpenMetrics, or the Prometheus text format.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }
}

/// Makes a series exist (at zero) without recording anything.
fn touch<S, M, C>(family: &Family<S, M, C>, labels: &S)
where
    S: Clone + std::hash::Hash + Eq,
    C: prometheus_client::metrics::family::MetricConstructor<M>,
{
    drop(family.get_or_create(labels));
}

/// One link's side of the metrics.
#[derive(Debug)]
pub struct LinkMetrics {
    link: String,
    f: Families,
    /// The calendar client's count of token exchanges (a restarted link
    /// has new clients, so a new count).
    token_source: Mutex<Option<Arc<AtomicU64>>>,
    /// How much of it has been added to `hitosync_token_refreshes_total`.
    token_refreshes_seen: AtomicU64,
    /// The clients' call counters are observed (once: a restarted link's
    /// clients count on the same ones).
    watching: AtomicBool,
}

impl LinkMetrics {
    /// Makes the link's series exist, at zero, so that rates and alerts
    /// see them before the first cycle; `started` is now. Again when the
    /// link comes back to this daemon after [`LinkMetrics::forget`].
    pub fn start_series(&self) {
        let m = self;
        let f = &m.f;
        let l = m.labels();
        for result in ["ok", "failed"] {
            touch(&f.cycles, &m.result(result));
            touch(&f.token_refreshes, &m.result(result));
        }
        touch(&f.cycle_duration, &l);
        touch(&f.last_success, &l);
        f.started
            .get_or_create(&l)
            .set(chrono::Utc::now().timestamp());
        touch(&f.applied, &l);
        touch(&f.conflicts, &l);
        touch(&f.parked, &l);
        touch(&f.parked_oldest, &l);
        touch(&f.breaker_held, &l);
        touch(&f.mapped, &l);
        touch(&f.work_waiting, &l);
        touch(&f.links_waiting, &l);
        touch(&f.invitation_hold, &l);
        touch(&f.reloads, &l);
        for side in ["google", "hitolink"] {
            touch(&f.writes, &m.side(side));
            for cause in ["budget", "server"] {
                touch(
                    &f.rate_limit_wait,
                    &WaitLabels {
                        link: m.link.clone(),
                        side,
                        cause,
                    },
                );
            }
        }
    }

    fn labels(&self) -> LinkLabels {
        LinkLabels {
            link: self.link.clone(),
        }
    }

    fn result(&self, result: &'static str) -> ResultLabels {
        ResultLabels {
            link: self.link.clone(),
            result,
        }
    }

    fn side(&self, side: &'static str) -> SideLabels {
        SideLabels {
            link: self.link.clone(),
            side,
        }
    }

    /// Hooks the link's clients: every API attempt and pause is recorded
    /// as it happens. A restarted link's clients count on the old clients'
    /// counters (the daemon hands them over), which are observed already;
    /// its token source is new, and is read from now on.
    pub fn watch(self: &Arc<Self>, link: &Link) {
        if !self.watching.swap(true, Ordering::SeqCst) {
            for (side, stats) in [
                ("google", &link.calendar.counters.calls),
                ("hitolink", &link.hitolink.counters.calls),
            ] {
                let observer = Arc::new(SideObserver {
                    link: self.link.clone(),
                    side,
                    f: self.f.clone(),
                });
                if !stats.observe(observer) {
                    tracing::warn!(
                        link = %self.link,
                        side,
                        "API metrics already go elsewhere; not recorded twice"
                    );
                }
            }
        }
        self.sync_token_refreshes();
        let source = link.calendar.tokens().refreshes();
        let mut current = self.token_source.lock();
        if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &source)) {
            self.token_refreshes_seen
                .store(source.load(Ordering::Relaxed), Ordering::Relaxed);
            *current = Some(source);
        }
    }

    /// After each cycle the daemon ran: its report, or the engine's error
    /// when there is one (a cycle stopped at its deadline before it applied
    /// anything fails without one). Plans (`dry_run`) only move the token
    /// figures: they sync nothing.
    pub fn cycle_finished(
        &self,
        result: Result<&CycleReport, Option<&EngineError>>,
        elapsed: Duration,
        dry_run: bool,
    ) {
        self.sync_token_refreshes();
        if let Err(Some(EngineError::Google(GoogleError::Auth(_)))) = result {
            self.f
                .token_refreshes
                .get_or_create(&self.result("failed"))
                .inc();
        }
        if dry_run {
            return;
        }
        let f = &self.f;
        let l = self.labels();
        f.cycle_duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
        match result {
            Ok(r) => {
                f.cycles.get_or_create(&self.result("ok")).inc();
                f.last_success
                    .get_or_create(&l)
                    .set(chrono::Utc::now().timestamp());
                f.applied.get_or_create(&l).inc_by(r.applied as u64);
                f.conflicts.get_or_create(&l).inc_by(r.conflicts as u64);
                f.writes
                    .get_or_create(&self.side("google"))
                    .inc_by(r.calendar_writes as u64);
                f.writes
                    .get_or_create(&self.side("hitolink"))
                    .inc_by(r.hitolink_writes as u64);
            }
            Err(_) => {
                f.cycles.get_or_create(&self.result("failed")).inc();
            }
        }
    }

    /// Token exchanges happen inside cycles only (the daemon calls the API
    /// nowhere else), so catching up at each cycle's end is exact for
    /// every scrape between cycles.
    fn sync_token_refreshes(&self) {
        let source = self.token_source.lock().clone();
        if let Some(source) = source {
            let now = source.load(Ordering::Relaxed);
            let before = self.token_refreshes_seen.swap(now, Ordering::Relaxed);
            self.f
                .token_refreshes
                .get_or_create(&self.result("ok"))
                .inc_by(now.saturating_sub(before));
        }
    }

    /// Reads the store's whole parked set, the breaker and the mapping
    /// count (at start, and after every cycle).
    pub async fn store_changed(&self, store: &dyn StateStore) {
        let f = &self.f;
        let l = self.labels();
        let count = |r: Result<usize, hitosync_state::StateError>, what: &str| match r {
            Ok(n) => Some(n as i64),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the {what}");
                None
            }
        };
        if let Some(n) = count(store.record_count().await, "mapping count") {
            f.mapped.get_or_create(&l).set(n);
        }
        if let Some(n) = count(store.work_count().await, "work set") {
            f.work_waiting.get_or_create(&l).set(n);
        }
        if let Some(n) = count(store.pending_link_count().await, "write-back queue") {
            f.links_waiting.get_or_create(&l).set(n);
        }
        match store.meta(INVITATION_HOLD).await {
            Ok(hold) => {
                let until = hold
                    .flatten()
                    .map(|h| h.until.timestamp())
                    .filter(|t| *t > chrono::Utc::now().timestamp())
                    .unwrap_or(0);
                f.invitation_hold.get_or_create(&l).set(until);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the invitation hold"),
        }
        match store.parked().await {
            Ok(parked) => {
                f.parked.get_or_create(&l).set(parked.len() as i64);
                let oldest = parked
                    .iter()
                    .filter(|p| !p.held && !p.waits_for_limit)
                    .map(|p| p.first_at.timestamp())
                    .min()
                    .unwrap_or(0);
                f.parked_oldest.get_or_create(&l).set(oldest);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the parked records"),
        }
        match store.meta(hitosync_state::BREAKER).await {
            Ok(held) => {
                f.breaker_held
                    .get_or_create(&l)
                    .set(i64::from(held.flatten().is_some()));
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the breaker state"),
        }
    }

    /// The link left this daemon (removed from the file, or handed to
    /// another replica): its gauges go, so that a link that runs elsewhere
    /// is not counted twice, nor alerted on from here. Counters stay:
    /// they only ever grow.
    pub fn forget(&self) {
        let f = &self.f;
        let l = self.labels();
        for g in [
            &f.parked,
            &f.parked_oldest,
            &f.breaker_held,
            &f.mapped,
            &f.work_waiting,
            &f.links_waiting,
            &f.invitation_hold,
            &f.last_success,
            &f.started,
        ] {
            g.remove(&l);
        }
    }

    pub fn reloaded(&self) {
        self.f.reloads.get_or_create(&self.labels()).inc();
    }
}

/// Records one client's attempts and pauses.
#[derive(Debug)]
struct SideObserver {
    link: String,
    side: &'static str,
    f: Families,
}

impl CallObserver for SideObserver {
    fn attempt(&self, what: &str, outcome: Outcome, elapsed: Duration) {
        self.f
            .requests
            .get_or_create(&RequestLabels {
                link: self.link.clone(),
                side: self.side,
                endpoint: what.to_string(),
                result: outcome.as_str(),
            })
            .inc();
        self.f
            .request_duration
            .get_or_create(&self.endpoint(what))
            .observe(elapsed.as_secs_f64());
    }

    fn paused(&self, what: &str, pause: Pause, waited: Duration) {
        let cause = match pause {
            Pause::Budget => "budget",
            Pause::Retry(outcome) => {
                self.f.retries.get_or_create(&self.endpoint(what)).inc();
                if outcome != Outcome::RateLimited {
                    return;
                }
                "server"
            }
        };
        self.f
            .rate_limit_wait
            .get_or_create(&WaitLabels {
                link: self.link.clone(),
                side: self.side,
                cause,
            })
            .inc_by(waited.as_secs_f64());
    }
}

impl SideObserver {
    fn endpoint(&self, what: &str) -> EndpointLabels {
        EndpointLabels {
            link: self.link.clone(),
            side: self.side,
            endpoint: what.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
