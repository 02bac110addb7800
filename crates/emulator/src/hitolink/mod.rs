//! The HITO-Link side's test peer: the interview API of HITOLINK-API.md.

mod admin;
mod feed;
pub mod gate;
pub mod http;
pub mod state;
mod writes;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use crate::faults::Phase;
pub use gate::Fault;
pub use state::{Answer, ApiError, Application, HitolinkEmulator, Seed, User};

/// Reads a `--seed` file: `{"applications": [...], "interviews": [...]}`,
/// optionally with `users` and `selection_steps`.
pub fn read_seed(path: &Path) -> anyhow::Result<Seed> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the seed file {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("the seed file {} is not valid: {e}", path.display()))
}

/// Binds `addr` and serves the emulator in the background.
pub async fn spawn(
    emu: Arc<HitolinkEmulator>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    super::serve(http::router(emu), addr, "HITO-Link").await
}
