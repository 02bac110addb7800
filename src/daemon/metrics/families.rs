//! The metric families: each one's name, help text, unit and labels, in
//! the order `/metrics` lists them. Apart from the recording so that the
//! exposition's contract (what dashboards, alerts and `promtool` read)
//! sits in one place, each family's name beside its help.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

/// Cycles: an idle one takes tens of milliseconds, an import under quota
/// many minutes.
const CYCLE_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];
/// One HTTP attempt, from a loopback answer to a slow Google page.
const REQUEST_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LinkLabels {
    pub(super) link: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pub(super) link: String,
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SideLabels {
    pub(super) link: String,
    pub(super) side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EndpointLabels {
    pub(super) link: String,
    pub(super) side: &'static str,
    pub(super) endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) link: String,
    pub(super) side: &'static str,
    pub(super) endpoint: String,
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct WaitLabels {
    pub(super) link: String,
    pub(super) side: &'static str,
    pub(super) cause: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type Seconds = Counter<f64, AtomicU64>;

/// Every family, registered once. Cloning shares them (each is an `Arc`).
#[derive(Debug, Clone)]
pub(super) struct Families {
    pub(super) cycles: Family<ResultLabels, Counter>,
    pub(super) cycle_duration: Histograms<LinkLabels>,
    pub(super) last_success: Family<LinkLabels, Gauge>,
    pub(super) started: Family<LinkLabels, Gauge>,
    pub(super) applied: Family<LinkLabels, Counter>,
    pub(super) writes: Family<SideLabels, Counter>,
    pub(super) conflicts: Family<LinkLabels, Counter>,
    pub(super) parked: Family<LinkLabels, Gauge>,
    pub(super) parked_oldest: Family<LinkLabels, Gauge>,
    pub(super) breaker_held: Family<LinkLabels, Gauge>,
    pub(super) mapped: Family<LinkLabels, Gauge>,
    pub(super) work_waiting: Family<LinkLabels, Gauge>,
    pub(super) links_waiting: Family<LinkLabels, Gauge>,
    pub(super) invitation_hold: Family<LinkLabels, Gauge>,
    pub(super) reloads: Family<LinkLabels, Counter>,
    pub(super) requests: Family<RequestLabels, Counter>,
    pub(super) request_duration: Histograms<EndpointLabels>,
    pub(super) retries: Family<EndpointLabels, Counter>,
    pub(super) rate_limit_wait: Family<WaitLabels, Seconds>,
    pub(super) token_refreshes: Family<ResultLabels, Counter>,
}

impl Families {
    /// Registers every family, in the order `/metrics` lists them.
    pub(super) fn register(registry: &mut Registry) -> Families {
        let mut r = Registrar(registry);
        Families {
            cycles: r.plain(
                "hitosync_cycles",
                "Sync cycles run (plans not counted), by result: ok or failed",
            ),
            cycle_duration: r.histograms(
                "hitosync_cycle_duration",
                "Time each sync cycle took, failed ones included",
                || Histogram::new(CYCLE_BUCKETS),
            ),
            last_success: r.seconds(
                "hitosync_last_success_timestamp",
                "Unix time of the last successful cycle; 0 until the first one",
            ),
            started: r.seconds(
                "hitosync_started_timestamp",
                "Unix time the daemon started syncing this link",
            ),
            applied: r.plain(
                "hitosync_records_applied",
                "Records whose changes were applied",
            ),
            writes: r.plain(
                "hitosync_writes",
                "Remote writes, by side: google or hitolink",
            ),
            conflicts: r.plain(
                "hitosync_conflicts",
                "Fields changed differently on both sides, settled by sync.conflict",
            ),
            parked: r.plain(
                "hitosync_parked_records",
                "Records in the store's parked set (failing, or held by the breaker)",
            ),
            parked_oldest: r.seconds(
                "hitosync_parked_oldest_timestamp",
                "Unix time the oldest failing parked record (not held by the breaker, not waiting for a limit) was first parked; 0 when none",
            ),
            breaker_held: r.plain(
                "hitosync_breaker_held",
                "1 while the mass-deletion breaker holds cancellations back, else 0",
            ),
            mapped: r.plain(
                "hitosync_mapped_interviews",
                "Interviews with a known event",
            ),
            work_waiting: r.plain(
                "hitosync_work_waiting",
                "Records read from the feeds and not applied yet (an import in progress, or a cycle stopped at its deadline)",
            ),
            links_waiting: r.plain(
                "hitosync_links_waiting",
                "Interviews whose event exists but whose external_event_id is not written back yet",
            ),
            invitation_hold: r.seconds(
                "hitosync_invitation_hold_until_timestamp",
                "Unix time until which new invitations wait after Google's calendar usage limit (403 quotaExceeded); 0 when none",
            ),
            reloads: r.plain(
                "hitosync_config_reloads",
                "Config reloads that took effect",
            ),
            requests: r.plain(
                "hitosync_api_requests",
                "API requests, every attempt, by side, endpoint and result (ok, rate_limited, server_error, other_error)",
            ),
            request_duration: r.histograms(
                "hitosync_api_request_duration",
                "Time one API attempt took, waits excluded, by side and endpoint",
                || Histogram::new(REQUEST_BUCKETS),
            ),
            retries: r.plain(
                "hitosync_api_retries",
                "Attempts retried after a rate limit or a server error, by side and endpoint",
            ),
            rate_limit_wait: r.seconds(
                "hitosync_rate_limit_wait",
                "Time spent waiting on rate limits, by side and cause: budget (the client's own max_requests_per_minute) or server (backing off after a rate-limit answer)",
            ),
            token_refreshes: r.plain(
                "hitosync_token_refreshes",
                "Google access-token exchanges, by result: ok or failed",
            ),
        }
    }
}

/// Registers each family as it is made, so that its name, help and unit
/// are written once, beside it.
struct Registrar<'r>(&'r mut Registry);

impl Registrar<'_> {
    /// A family without a unit: a count, or a gauge of things.
    fn plain<M: Metric + Clone + Default>(&mut self, name: &str, help: &str) -> M {
        self.add(name, help, None, M::default())
    }

    /// A family in seconds (a time, or a duration summed).
    fn seconds<M: Metric + Clone + Default>(&mut self, name: &str, help: &str) -> M {
        self.add(name, help, Some(Unit::Seconds), M::default())
    }

    /// Durations in seconds, in the buckets `new` makes.
    fn histograms<L>(&mut self, name: &str, help: &str, new: fn() -> Histogram) -> Histograms<L>
    where
        L: Clone + std::hash::Hash + Eq,
        Histograms<L>: Metric,
    {
        self.add(
            name,
            help,
            Some(Unit::Seconds),
            Family::new_with_constructor(new),
        )
    }

    fn add<M: Metric + Clone>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        metric: M,
    ) -> M {
        match unit {
            Some(unit) => self.0.register_with_unit(name, help, unit, metric.clone()),
            None => self.0.register(name, help, metric.clone()),
        }
        metric
    }
}
