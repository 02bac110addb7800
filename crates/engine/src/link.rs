//! One organizer calendar paired with one HITO-Link tenant: the two clients
//! and the policy, built from the config. The CLI and the daemon both run
//! their cycles through it.

use std::sync::atomic::AtomicBool;

use crate::Engine;
use hitosync_config::Config;
use hitosync_core::reconcile::Policy;
use hitosync_google::CalendarClient;
use hitosync_hitolink::HitolinkClient;
use hitosync_state::StateStore;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Google(#[from] hitosync_google::SetupError),
    #[error(transparent)]
    Hitolink(#[from] hitosync_hitolink::SetupError),
}

#[derive(Debug)]
pub struct Link {
    pub calendar: CalendarClient,
    pub hitolink: HitolinkClient,
    pub policy: Policy,
    pub max_deletions: u32,
}

impl Link {
    /// Loads the key and the token; no request is made yet.
    pub async fn connect(config: &Config) -> Result<Link, LinkError> {
        Ok(Link {
            calendar: CalendarClient::connect(config).await?,
            hitolink: HitolinkClient::from_config(config)?,
            policy: config.sync.policy(&config.google.organizer_email),
            max_deletions: config.sync.max_deletions,
        })
    }

    pub fn engine<'a>(
        &'a self,
        store: &'a dyn StateStore,
        stop: Option<&'a AtomicBool>,
    ) -> Engine<'a> {
        Engine {
            calendar: &self.calendar,
            hitolink: &self.hitolink,
            store,
            policy: self.policy.clone(),
            max_deletions: self.max_deletions,
            // The API's largest page: feed pages share HITO-Link's 100
            // requests a minute with the write-backs, and an import's
            // first reading of 10,000 records takes 20 of them, not 50.
            // A page of 500 records is well under a megabyte in memory.
            hitolink_page_size: 500,
            stop,
        }
    }
}
