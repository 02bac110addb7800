//! Prometheus metrics on `daemon.metrics_listen`.
//!
//! The figures are the sum over the links this daemon runs (a `link`
//! label per metric is another change); the gauges keep one value per link
//! and show their sum.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::get;

use crate::engine::CycleReport;

/// Counters the loop updates after each cycle; read by `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub cycles_ok: AtomicU64,
    pub cycles_failed: AtomicU64,
    pub cycle_seconds_sum_ms: AtomicU64,
    pub last_cycle_ms: AtomicU64,
    pub last_success_unix: AtomicU64,
    pub applied: AtomicU64,
    pub calendar_writes: AtomicU64,
    pub hitolink_writes: AtomicU64,
    pub conflicts: AtomicU64,
    pub reloads: AtomicU64,
    /// Per link: interviews mapped, records parked in its last cycle.
    pub gauges: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
    /// Per link: the clients' own counters, read live (set when the link's
    /// worker starts; kept across restarts so counters stay monotonic).
    pub sources: std::sync::Mutex<std::collections::BTreeMap<String, Sources>>,
}

/// Where request figures come from.
#[derive(Debug)]
pub struct Sources {
    pub google: Arc<crate::google::client::Counters>,
    pub hitolink: Arc<crate::hitolink::client::Counters>,
    /// One per token source the link has had (a restart makes a new one).
    pub token_refreshes: Vec<Arc<AtomicU64>>,
}

impl Metrics {
    pub fn record(&self, link: &str, r: &CycleReport, mapped: usize) {
        self.cycles_ok.fetch_add(1, Ordering::Relaxed);
        self.cycle_seconds_sum_ms
            .fetch_add(r.duration_ms, Ordering::Relaxed);
        self.last_cycle_ms.store(r.duration_ms, Ordering::Relaxed);
        self.last_success_unix.store(
            chrono::Utc::now().timestamp().max(0) as u64,
            Ordering::Relaxed,
        );
        self.applied.fetch_add(r.applied as u64, Ordering::Relaxed);
        self.calendar_writes
            .fetch_add(r.calendar_writes as u64, Ordering::Relaxed);
        self.hitolink_writes
            .fetch_add(r.hitolink_writes as u64, Ordering::Relaxed);
        self.conflicts
            .fetch_add(r.conflicts as u64, Ordering::Relaxed);
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(link.to_string(), (mapped as u64, r.parked as u64));
    }

    /// A link's worker starts: its clients count into the counters the
    /// link had before (a restarted link keeps its figures).
    pub fn attach(&self, link: &str, l: &mut crate::link::Link) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        match sources.get_mut(link) {
            Some(src) => {
                l.calendar.counters = src.google.clone();
                l.hitolink.counters = src.hitolink.clone();
                src.token_refreshes.push(l.calendar.tokens().refreshes());
            }
            None => {
                sources.insert(
                    link.to_string(),
                    Sources {
                        google: l.calendar.counters.clone(),
                        hitolink: l.hitolink.counters.clone(),
                        token_refreshes: vec![l.calendar.tokens().refreshes()],
                    },
                );
            }
        }
    }

    /// A link removed from the config: its gauges go.
    pub fn forget(&self, link: &str) {
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(link);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        metric(
            "hitosync_cycles_total",
            "counter",
            "Reconcile cycles run, by result.",
            &[
                ("{result=\"ok\"}", g(&self.cycles_ok)),
                ("{result=\"failed\"}", g(&self.cycles_failed)),
            ],
        );
        metric(
            "hitosync_cycle_duration_milliseconds_sum",
            "counter",
            "Total time spent in successful cycles.",
            &[("", g(&self.cycle_seconds_sum_ms))],
        );
        metric(
            "hitosync_last_cycle_duration_milliseconds",
            "gauge",
            "Duration of the last successful cycle.",
            &[("", g(&self.last_cycle_ms))],
        );
        metric(
            "hitosync_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful cycle.",
            &[("", g(&self.last_success_unix))],
        );
        metric(
            "hitosync_records_applied_total",
            "counter",
            "Records whose changes were applied.",
            &[("", g(&self.applied))],
        );
        metric(
            "hitosync_writes_total",
            "counter",
            "Remote writes, by side.",
            &[
                ("{side=\"google\"}", g(&self.calendar_writes)),
                ("{side=\"hitolink\"}", g(&self.hitolink_writes)),
            ],
        );
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if !sources.is_empty() {
            let sum = |f: &dyn Fn(&Sources) -> u64| sources.values().map(f).sum::<u64>();
            let mut results = vec![];
            for side in ["google", "hitolink"] {
                for result in ["ok", "rate_limited", "server_error", "other_error"] {
                    let v = sum(&|src: &Sources| {
                        let c = if side == "google" {
                            &src.google.calls
                        } else {
                            &src.hitolink.calls
                        };
                        g(match result {
                            "ok" => &c.ok,
                            "rate_limited" => &c.rate_limited,
                            "server_error" => &c.server_error,
                            _ => &c.other_error,
                        })
                    });
                    results.push((format!("{{side=\"{side}\",result=\"{result}\"}}"), v));
                }
            }
            let results: Vec<(&str, u64)> = results.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            metric(
                "hitosync_api_requests_total",
                "counter",
                "API requests (each attempt), by side and result.",
                &results,
            );
            metric(
                "hitosync_api_retries_total",
                "counter",
                "Requests retried after rate limits or server errors, by side.",
                &[
                    ("{side=\"google\"}", sum(&|s| g(&s.google.calls.retries))),
                    (
                        "{side=\"hitolink\"}",
                        sum(&|s| g(&s.hitolink.calls.retries)),
                    ),
                ],
            );
            metric(
                "hitosync_rate_limit_wait_milliseconds_total",
                "counter",
                "Time spent waiting for the client's own request budget, by side.",
                &[
                    (
                        "{side=\"google\"}",
                        sum(&|s| g(&s.google.calls.limiter_wait_ms)),
                    ),
                    (
                        "{side=\"hitolink\"}",
                        sum(&|s| g(&s.hitolink.calls.limiter_wait_ms)),
                    ),
                ],
            );
            metric(
                "hitosync_token_refreshes_total",
                "counter",
                "Access tokens obtained from Google's token endpoint.",
                &[("", sum(&|s| s.token_refreshes.iter().map(|a| g(a)).sum()))],
            );
        }
        drop(sources);
        let (mapped, parked) = {
            let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
            (
                gauges.values().map(|v| v.0).sum::<u64>(),
                gauges.values().map(|v| v.1).sum::<u64>(),
            )
        };
        metric(
            "hitosync_conflicts_total",
            "counter",
            "Conflicts settled by policy.",
            &[("", g(&self.conflicts))],
        );
        metric(
            "hitosync_parked_records",
            "gauge",
            "Records parked in the last cycle.",
            &[("", parked)],
        );
        metric(
            "hitosync_mapped_interviews",
            "gauge",
            "Interviews with a mapping.",
            &[("", mapped)],
        );
        metric(
            "hitosync_config_reloads_total",
            "counter",
            "Successful config reloads.",
            &[("", g(&self.reloads))],
        );
        out
    }
}

/// Serves `/metrics` on `addr` in the background.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    m.render(),
                )
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    }))
}
