//! Leases (PostgreSQL only): which links this replica runs.
//!
//! Every running daemon beats in `hitosync_replicas` and claims links in
//! `hitosync_leases`. Each replica's fair share of the configured links is
//! computed from the live replicas, sorted by id: `n / k` each, one more
//! for the first `n % k`. A replica under its share takes free or expired
//! leases; one over it sheds the excess, each after its cycle in flight.
//! Held leases are renewed every `state.lease_renew_secs`; one that cannot
//! be renewed is lost at once (its worker is stopped, and every state
//! write it still tries fails on the fencing token). When a foreign lease
//! is due to expire before the next renewal, the manager wakes at its
//! expiry, so a dead replica's links are taken within one lease period.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use hitosync_net::retry::CancellationToken;
use hitosync_state::Lease;
use hitosync_state_postgres::{LeaseRow, PgState};

/// What the supervisor hears from the manager.
#[derive(Debug)]
pub enum LeaseEvent {
    /// Start the link's worker under this lease.
    Acquired { link: String, lease: Arc<Lease> },
    /// The lease is gone: stop the worker now.
    Lost { link: String },
    /// Over the fair share: stop the worker after its cycle in flight,
    /// then say `Released`.
    Shed { link: String },
}

/// What the supervisor tells the manager.
#[derive(Debug)]
pub enum LeaseCommand {
    /// The configured links changed (a reload).
    Links(Vec<String>),
    /// The link's worker ended after a `Shed` (or the link was removed):
    /// the lease may go.
    Released { link: String },
}

struct Held {
    lease: Arc<Lease>,
    /// Shed: renewed until the worker's cycle in flight ends.
    shedding: bool,
}

pub struct LeaseManager {
    pub pg: PgState,
    /// This replica: `host:pid:random`.
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub links: Vec<String>,
    pub lease: Duration,
    pub renew: Duration,
    pub events: mpsc::Sender<LeaseEvent>,
    held: BTreeMap<String, Held>,
}

/// This replica's id: readable in `status` and unique across restarts.
pub fn replica_id() -> (String, String, i32) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let pid = std::process::id() as i32;
    let tag: u32 = rand_tag();
    (format!("{host}:{pid}:{tag:04x}"), host, pid)
}

fn rand_tag() -> u32 {
    // the low bits of the monotonic and wall clocks: enough to tell two
    // processes that reused a pid apart
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (t ^ (t >> 16)) & 0xffff
}

/// `n` links over `k` live replicas: the share of the replica at `index`
/// in id order.
pub fn fair_share(n: usize, k: usize, index: usize) -> usize {
    if k == 0 {
        return n;
    }
    n / k + usize::from(index < n % k)
}

impl LeaseManager {
    pub fn new(
        pg: PgState,
        links: Vec<String>,
        lease: Duration,
        renew: Duration,
        events: mpsc::Sender<LeaseEvent>,
    ) -> LeaseManager {
        let (id, host, pid) = replica_id();
        LeaseManager {
            pg,
            id,
            host,
            pid,
            links,
            lease,
            renew,
            events,
            held: BTreeMap::new(),
        }
    }

    /// How long a lease stays valid locally after a renewal was sent: a
    /// margin short of the database's expiry, for clocks that run at
    /// slightly different rates.
    fn local_validity(&self) -> Duration {
        let margin = (self.lease / 10).max(Duration::from_millis(500));
        self.lease.saturating_sub(margin)
    }

    /// Runs until `stop` fires; then releases every lease and leaves, so
    /// that the other replicas take the links at once.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<LeaseCommand>,
        stop: CancellationToken,
    ) {
        info!(replica = %self.id, "joining the replicas");
        loop {
            let next = self.tick().await;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                c = commands.recv() => match c {
                    Some(LeaseCommand::Links(links)) => {
                        self.links = links;
                        self.shed_unconfigured().await;
                    }
                    Some(LeaseCommand::Released { link }) => self.release(&link).await,
                    None => break,
                },
                _ = tokio::time::sleep(next) => {}
            }
        }
        for (link, h) in std::mem::take(&mut self.held) {
            h.lease.revoke();
            if let Err(e) = self.pg.release(&link, &self.id, h.lease.token).await {
                warn!(%link, error = %e, "cannot release the lease; it expires on its own");
            }
        }
        if let Err(e) = self.pg.leave(&self.id).await {
            warn!(error = %e, "cannot remove this replica's heartbeat; it ages out");
        }
        info!(replica = %self.id, "left the replicas");
    }

    async fn release(&mut self, link: &str) {
        if let Some(h) = self.held.remove(link) {
            h.lease.revoke();
            match self.pg.release(link, &self.id, h.lease.token).await {
                Ok(()) => info!(%link, "lease released"),
                Err(e) => {
                    warn!(%link, error = %e, "cannot release the lease; it expires on its own")
                }
            }
        }
    }

    /// Links no longer configured are shed like an excess.
    async fn shed_unconfigured(&mut self) {
        let configured: BTreeSet<&String> = self.links.iter().collect();
        let gone: Vec<String> = self
            .held
            .iter()
            .filter(|(l, h)| !h.shedding && !configured.contains(l))
            .map(|(l, _)| l.clone())
            .collect();
        for link in gone {
            self.shed(link).await;
        }
    }

    async fn shed(&mut self, link: String) {
        if let Some(h) = self.held.get_mut(&link) {
            h.shedding = true;
            info!(%link, "handing the link over after its cycle in flight");
            let _ = self.events.send(LeaseEvent::Shed { link }).await;
        }
    }

    /// One round: beat, renew, rebalance. Returns how long to sleep: until
    /// the next renewal, or until a foreign lease expires if that comes
    /// sooner (a dead replica's links are then taken at once, within one
    /// lease period of its last renewal).
    async fn tick(&mut self) -> Duration {
        if let Err(e) = self.pg.heartbeat(&self.id, &self.host, self.pid).await {
            warn!(error = %e, "cannot beat; leases run out unless the database comes back");
        }
        self.renew_all().await;
        let (replicas, rows) = match (self.pg.replicas(self.lease).await, self.pg.leases().await) {
            (Ok(r), Ok(l)) => (r, l),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot read the replicas and leases; trying again");
                return self.renew;
            }
        };
        let live: Vec<&str> = replicas
            .iter()
            .filter(|r| r.live)
            .map(|r| r.id.as_str())
            .collect();
        let index = live
            .iter()
            .position(|id| *id == self.id)
            .unwrap_or(live.len());
        let k = if index == live.len() {
            live.len() + 1
        } else {
            live.len()
        };
        let share = fair_share(self.links.len(), k, index);
        let mine: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| !h.shedding)
            .map(|(l, _)| l.clone())
            .collect();
        if mine.len() > share {
            // the last ones by name go: a stable choice
            for link in mine.into_iter().skip(share) {
                self.shed(link).await;
            }
            return self.renew;
        }
        if mine.len() < share {
            self.acquire(share - mine.len(), index, k, &rows).await;
        }
        self.renew
            .min(self.next_foreign_expiry(&rows))
            .max(Duration::from_millis(50))
    }

    /// How long until the soonest lease of a configured link held by
    /// another replica expires (by the database's clock), plus a little:
    /// by then its owner's heartbeat is older than a lease period too
    /// (it beats before it renews), so the shares count it out.
    fn next_foreign_expiry(&self, rows: &[LeaseRow]) -> Duration {
        rows.iter()
            .filter(|r| !r.expired && r.owner != self.id && self.links.contains(&r.link))
            .map(|r| Duration::from_millis(r.expires_in_ms.max(0) as u64 + 20))
            .min()
            .unwrap_or(self.renew)
    }

    async fn renew_all(&mut self) {
        let mut lost = vec![];
        for (link, h) in &self.held {
            let sent = Instant::now();
            match self
                .pg
                .renew(link, &self.id, h.lease.token, self.lease)
                .await
            {
                Ok(true) => h.lease.extend(sent, self.local_validity()),
                Ok(false) => lost.push(link.clone()),
                Err(e) => {
                    warn!(%link, error = %e, "cannot renew the lease");
                    if !h.lease.is_valid() {
                        lost.push(link.clone());
                    }
                }
            }
        }
        for link in lost {
            if let Some(h) = self.held.remove(&link) {
                h.lease.revoke();
                warn!(%link, "lease lost: stopping the link's worker");
                let _ = self.events.send(LeaseEvent::Lost { link }).await;
            }
        }
    }

    /// Takes up to `want` free links, starting at a place that differs per
    /// replica so that replicas starting together do not all race for the
    /// same rows. `rows`: the leases as just read.
    async fn acquire(&mut self, mut want: usize, index: usize, k: usize, rows: &[LeaseRow]) {
        let rows: BTreeMap<&str, &LeaseRow> = rows.iter().map(|r| (r.link.as_str(), r)).collect();
        let n = self.links.len().max(1);
        let start = index * n / k.max(1);
        let candidates: Vec<String> = (0..self.links.len())
            .map(|i| self.links[(start + i) % n].clone())
            .filter(|l| !self.held.contains_key(l))
            .collect();
        for link in candidates {
            if want == 0 {
                break;
            }
            if rows.get(link.as_str()).is_some_and(|row| !row.expired) {
                continue;
            }
            let sent = Instant::now();
            match self.pg.try_acquire(&link, &self.id, self.lease).await {
                Ok(Some(token)) => {
                    let lease = Arc::new(Lease::new(
                        &link,
                        &self.id,
                        token,
                        sent,
                        self.local_validity(),
                    ));
                    info!(%link, token, "lease acquired");
                    self.held.insert(
                        link.clone(),
                        Held {
                            lease: lease.clone(),
                            shedding: false,
                        },
                    );
                    want -= 1;
                    let _ = self.events.send(LeaseEvent::Acquired { link, lease }).await;
                }
                Ok(None) => {}
                Err(e) => warn!(%link, error = %e, "cannot take the lease"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for n in 0..20 {
            for k in 1..7 {
                let shares: Vec<usize> = (0..k).map(|i| fair_share(n, k, i)).collect();
                assert_eq!(shares.iter().sum::<usize>(), n, "{n} over {k}");
                let (min, max) = (shares.iter().min(), shares.iter().max());
                assert!(max.unwrap() - min.unwrap() <= 1, "{n} over {k}: {shares:?}");
            }
        }
        assert_eq!(fair_share(6, 2, 0), 3);
        assert_eq!(fair_share(6, 1, 0), 6);
    }
}
