//! The supervisor's table of links: each link's view of the config, its
//! worker (when it runs here), and starting, restarting and retiring one
//! link without touching the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{error, info};

use super::metrics::{LinkMetrics, Metrics};
use super::state_db::StateDbSlot;
use super::systemd::Notifier;
use super::worker::{Command, Settings, Shared, Worker};
use hitosync_config::{Config, parse_schedule};
use hitosync_engine::link::{Link, LinkError};
use hitosync_net::retry::CancellationToken;
use hitosync_state::Lease;

/// A running worker.
pub struct Runner {
    pub tx: mpsc::Sender<Command>,
    pub task: tokio::task::JoinHandle<()>,
    /// Stops it after its cycle in flight.
    pub retire: CancellationToken,
    /// Stops it now (the lease is lost).
    pub cancel: CancellationToken,
}

pub struct LinkSlot {
    pub config: Config,
    pub shared: Arc<Shared>,
    pub runner: Option<Runner>,
    /// The lease it runs under (PostgreSQL).
    pub lease: Option<Arc<Lease>>,
    /// Clients built at start or reload, waiting for the lease.
    pub prepared: Option<Link>,
}

impl LinkSlot {
    pub fn new(config: Config) -> LinkSlot {
        LinkSlot {
            config,
            shared: Arc::new(Shared::default()),
            runner: None,
            lease: None,
            prepared: None,
        }
    }

    pub fn set_setup_error(&self, e: Option<String>) {
        let mut live = self.shared.live.lock();
        live.setup_error = e;
    }

    pub fn set_running_here(&self, yes: bool) {
        let mut live = self.shared.live.lock();
        live.running_here = yes;
    }
}

/// What starting a worker needs from the supervisor.
pub struct Env {
    pub backend: Arc<StateDbSlot>,
    pub metrics: Arc<Metrics>,
    /// Per link: its metrics handle and the clients' counters it observes,
    /// kept across restarts so that its counters only ever grow.
    pub meters: parking_lot::Mutex<BTreeMap<String, Meter>>,
    pub notifier: Arc<Notifier>,
    /// The daemon's shutdown; each worker's cancel token is its child.
    pub stop: CancellationToken,
}

/// One link's metrics and the counters its clients count on.
pub struct Meter {
    pub metrics: Arc<LinkMetrics>,
    google: Arc<hitosync_google::client::Counters>,
    hitolink: Arc<hitosync_hitolink::client::Counters>,
}

/// The link's clients from its view of the config; the error names the
/// link when the file has several.
pub async fn connect(config: &Config, many: bool) -> Result<Link, String> {
    Link::connect(config).await.map_err(|e: LinkError| {
        if many {
            format!("link {:?}: {e}", config.link)
        } else {
            e.to_string()
        }
    })
}

impl Env {
    /// The link's metrics handle: made at its first start, its series
    /// made again when it comes back (a lease taken again). A restarted
    /// link's new clients count on the counters the first ones did.
    fn meter(&self, name: &str, link: &mut Link) -> Arc<LinkMetrics> {
        let mut meters = self.meters.lock();
        let m = match meters.get(name) {
            Some(m) => {
                link.calendar.counters = m.google.clone();
                link.hitolink.counters = m.hitolink.clone();
                m.metrics.start_series();
                m.metrics.clone()
            }
            None => {
                let metrics = self.metrics.link(name);
                meters.insert(
                    name.to_string(),
                    Meter {
                        metrics: metrics.clone(),
                        google: link.calendar.counters.clone(),
                        hitolink: link.hitolink.counters.clone(),
                    },
                );
                metrics
            }
        };
        m.watch(link);
        m
    }

    /// The link stopped running here (removed, or run by another
    /// replica): its gauges go once `worker` (its last worker) ended.
    pub fn forget_metrics(&self, name: &str, worker: Option<tokio::task::JoinHandle<()>>) {
        let m = self.meters.lock().get(name).map(|m| m.metrics.clone());
        if let Some(m) = m {
            tokio::spawn(async move {
                if let Some(t) = worker {
                    let _ = t.await;
                }
                m.forget();
            });
        }
    }

    /// Every link's handle, for the reload counter.
    pub fn reloaded(&self) {
        for m in self.meters.lock().values() {
            m.metrics.reloaded();
        }
    }

    /// Starts `slot`'s worker with `link`. `after`: a worker of the same
    /// link still finishing its cycle, which the new one waits for (two
    /// cycles of one link never run at once).
    pub fn start(
        &self,
        slot: &mut LinkSlot,
        mut link: Link,
        after: Option<tokio::task::JoinHandle<()>>,
    ) {
        let c = &slot.config;
        // the view validated both when the file loaded
        let (Ok(schedule), Ok(full_schedule)) = (
            parse_schedule(&c.daemon.schedule),
            parse_schedule(&c.daemon.full_resync_schedule),
        ) else {
            error!(link = %c.link, "the link's schedule does not parse; not started");
            return;
        };
        let metrics = self.meter(&c.link, &mut link);
        let (tx, rx) = mpsc::channel::<Command>(16);
        let retire = CancellationToken::new();
        let cancel = self.stop.child_token();
        let worker = Worker::new(
            c.link.clone(),
            Settings {
                link,
                schedule,
                full_schedule,
                deadline: c.daemon.cycle_deadline(),
            },
            self.backend.clone(),
            slot.lease.clone(),
            slot.shared.clone(),
            metrics,
            self.notifier.clone(),
            cancel.clone(),
            retire.clone(),
        );
        let task = tokio::spawn(async move {
            if let Some(old) = after {
                let _ = old.await;
            }
            worker.run(rx).await
        });
        info!(link = %c.link, "link worker started");
        slot.set_setup_error(None);
        slot.set_running_here(true);
        slot.runner = Some(Runner {
            tx,
            task,
            retire,
            cancel,
        });
    }
}

/// Stops a worker after its cycle in flight; returns its task to wait on.
pub fn retire(slot: &mut LinkSlot) -> Option<tokio::task::JoinHandle<()>> {
    slot.set_running_here(false);
    slot.runner.take().map(|r| {
        r.retire.cancel();
        r.task
    })
}

/// Stops a worker now: its lease is gone. Returns its task to wait on.
pub fn cancel(slot: &mut LinkSlot) -> Option<tokio::task::JoinHandle<()>> {
    slot.set_running_here(false);
    slot.lease = None;
    slot.runner.take().map(|r| {
        r.cancel.cancel();
        r.retire.cancel();
        r.task
    })
}

/// Links whose view changed, appeared or went, between two configs.
pub struct Diff {
    pub added: Vec<Config>,
    pub changed: Vec<Config>,
    pub removed: Vec<String>,
}

pub fn diff(old: &BTreeMap<String, LinkSlot>, new: &[Config]) -> Diff {
    let mut d = Diff {
        added: vec![],
        changed: vec![],
        removed: vec![],
    };
    for c in new {
        match old.get(&c.link) {
            None => d.added.push(c.clone()),
            Some(slot) if slot.config != *c => d.changed.push(c.clone()),
            Some(_) => {}
        }
    }
    for name in old.keys() {
        if !new.iter().any(|c| &c.link == name) {
            d.removed.push(name.clone());
        }
    }
    if !d.added.is_empty() || !d.changed.is_empty() || !d.removed.is_empty() {
        info!(
            added = ?d.added.iter().map(|c| &c.link).collect::<Vec<_>>(),
            changed = ?d.changed.iter().map(|c| &c.link).collect::<Vec<_>>(),
            removed = ?d.removed,
            "links after the reload"
        );
    } else {
        info!("the reload changed no link");
    }
    d
}
