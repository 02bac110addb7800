//! The test peers: faithful emulators of the Calendar API v3 (with Google's
//! OAuth token endpoint) and of the HITO-Link interview API. Product code:
//! `hitosync emulate ...`, the demo, the benchmarks and the tests use them;
//! the sync path never does.

pub mod google;
pub mod hitolink;

use std::net::SocketAddr;

/// Binds `addr` and serves `router` in the background. Returns the bound
/// address (for `127.0.0.1:0`) and the task.
pub async fn serve(
    router: axum::Router,
    addr: SocketAddr,
    name: &'static str,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, emulator = name, "emulator stopped");
        }
    });
    Ok((local, task))
}
