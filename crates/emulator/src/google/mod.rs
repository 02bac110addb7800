//! The Google side's test peer: Calendar API v3 and Google's OAuth token
//! endpoint, as documented, on one HTTP server.

mod admin;
pub mod auth;
pub mod error;
mod events;
pub mod gate;
pub mod html;
pub mod http;
mod http_admin;
pub mod invitations;
pub mod listing;
mod recurrence;
pub mod state;
mod store;
mod validate;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use crate::faults::Phase;
pub use auth::AuthSetup;
pub use error::ApiError;
pub use gate::Fault;
pub use invitations::InvitationLimit;
pub use listing::ListQuery;
pub use state::{GoogleEmulator, Principal, Switches, WriteRecord};
pub use validate::valid_event_id;

use hitosync_config::CALENDAR_SCOPE;
use hitosync_google::auth::{KeyError, p12_certificate};

/// The emulator as a site would be after following the setup guide to the
/// end: the service account's key known, delegation granted with the
/// calendar scope, the API enabled, the organizers existing.
pub fn setup_from_p12(
    service_account: &str,
    organizers: &[String],
    p12: &Path,
    password: &str,
) -> Result<AuthSetup, KeyError> {
    let bytes = std::fs::read(p12).map_err(|source| KeyError::Unreadable {
        path: p12.to_path_buf(),
        source,
    })?;
    let cert = p12_certificate(p12, &bytes, password)?;
    let public_key =
        auth::public_key_of_certificate(&cert).map_err(|_| KeyError::NoPrivateKey {
            path: p12.to_path_buf(),
        })?;
    Ok(AuthSetup {
        service_account: service_account.to_string(),
        public_key,
        users: organizers.iter().map(|o| o.to_ascii_lowercase()).collect(),
        delegated_scopes: Some([CALENDAR_SCOPE.to_string()].into()),
        api_enabled: true,
        clock_skew_secs: 0,
    })
}

/// Binds `addr` and serves the emulator in the background.
pub async fn spawn(
    emu: Arc<GoogleEmulator>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    super::serve(http::router(emu), addr, "Google").await
}
