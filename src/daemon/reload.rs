//! Reloading the config (SIGHUP or an edited file): links added start,
//! removed ones stop after their cycle in flight, changed ones restart
//! alone; the others run on untouched.

use tracing::{error, info, warn};

use super::Supervisor;
use super::leases::LeaseCommand;
use super::links::{self, LinkSlot};
use hitosync_config::{ConfigFile, Form};

impl Supervisor {
    /// SIGHUP or an edited file: a bad file is refused and the old one
    /// stays in force. Links added start, removed ones stop after their
    /// cycle in flight, changed ones restart alone; the others run on.
    pub(super) async fn reload(&mut self) {
        let mut new = match ConfigFile::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "config reload refused; the running config stays in force");
                return;
            }
        };
        for w in new.warnings() {
            warn!("{w}");
        }
        let old = &self.file;
        if new.daemon.state_dir != old.daemon.state_dir
            || new.daemon.control_socket != old.daemon.control_socket
            || new.daemon.metrics_listen != old.daemon.metrics_listen
            || new.state != old.state
        {
            warn!(
                "daemon.state_dir, control_socket, metrics_listen and [state] take effect at the next restart"
            );
            // the state dir, socket, metrics address and backend stay
            new.daemon.state_dir = old.daemon.state_dir.clone();
            new.daemon.control_socket = old.daemon.control_socket.clone();
            new.daemon.metrics_listen = old.daemon.metrics_listen.clone();
            new.state = old.state.clone();
            for l in &mut new.links {
                l.daemon.state_dir = old.daemon.state_dir.clone();
                l.daemon.control_socket = old.daemon.control_socket.clone();
                l.daemon.metrics_listen = old.daemon.metrics_listen.clone();
            }
        }
        let many = new.form == Form::Many;
        let diff = links::diff(&self.table, &new.links);
        let leased = self.lease_cmd.is_some();
        // Changed links: the new clients first; a link whose new settings
        // do not load keeps running on the old ones.
        let mut refused = vec![];
        for c in diff.changed {
            match links::connect(&c, many).await {
                Ok(link) => {
                    let Some(slot) = self.table.get_mut(&c.link) else {
                        continue;
                    };
                    slot.config = c;
                    if leased && slot.lease.is_none() {
                        slot.prepared = Some(link);
                        slot.set_setup_error(None);
                    } else {
                        let before = links::retire(slot);
                        self.env.start(slot, link, before);
                    }
                }
                Err(e) => {
                    error!(link = %c.link, error = %e, "the link's new settings are refused; it runs on the old ones");
                    refused.push(c.link.clone());
                }
            }
        }
        for name in diff.removed {
            if let Some(mut slot) = self.table.remove(&name) {
                let task = links::retire(&mut slot);
                info!(link = %name, "link removed: it stops after its cycle in flight");
                let (ended_tx, ended) = tokio::sync::oneshot::channel::<()>();
                self.env.forget_metrics(
                    &name,
                    Some(tokio::spawn(async move {
                        let _ = ended.await;
                    })),
                );
                let release = (leased && slot.lease.is_some()).then(|| self.released.clone());
                tokio::spawn(async move {
                    if let Some(t) = task {
                        let _ = t.await;
                    }
                    let _ = ended_tx.send(());
                    if let Some(released) = release {
                        let _ = released.send(name).await;
                    }
                });
            }
        }
        for c in diff.added {
            let mut slot = LinkSlot::new(c.clone());
            match links::connect(&c, many).await {
                Ok(link) if !leased => self.env.start(&mut slot, link, None),
                Ok(link) => slot.prepared = Some(link),
                Err(e) => {
                    error!(link = %c.link, error = %e, "the added link cannot start (fix the file and reload)");
                    slot.set_setup_error(Some(e));
                }
            }
            self.table.insert(c.link.clone(), slot);
        }
        // a link whose setup failed before is tried again
        let retry: Vec<String> = self
            .table
            .iter()
            .filter(|(_, s)| s.runner.is_none() && s.prepared.is_none())
            .filter(|(_, s)| s.shared.snapshot().1.setup_error.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in retry {
            let Some(c) = new.links.iter().find(|c| c.link == name).cloned() else {
                continue;
            };
            if let Some(slot) = self.table.get_mut(&name) {
                slot.config = c.clone();
                match links::connect(&c, many).await {
                    Ok(link) if !leased || slot.lease.is_some() => self.env.start(slot, link, None),
                    Ok(link) => {
                        slot.prepared = Some(link);
                        slot.set_setup_error(None);
                    }
                    Err(e) => slot.set_setup_error(Some(e)),
                }
            }
        }
        // the file in force: the refused links keep their old views
        for name in &refused {
            if let (Some(slot), Some(l)) = (
                self.table.get(name),
                new.links.iter_mut().find(|l| &l.link == name),
            ) {
                *l = slot.config.clone();
            }
        }
        if let Some(tx) = &self.lease_cmd {
            let _ = tx
                .send(LeaseCommand::Links(
                    new.names().iter().map(|s| s.to_string()).collect(),
                ))
                .await;
        }
        self.file = new;
        self.env.reloaded();
        info!(config = %self.config_path.display(), "config reloaded");
    }
}
