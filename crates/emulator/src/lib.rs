//! The test peers: faithful emulators of the Calendar API v3 (with Google's
//! OAuth token endpoint) and of the HITO-Link interview API. Product code:
//! `hitosync emulate ...`, the demo, the benchmarks and the tests use them;
//! the sync path never does.

pub mod faults;
pub mod google;
pub mod hitolink;

use std::net::SocketAddr;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower::ServiceExt as _;

pub use faults::{FaultPlan, Phase};

/// Put in a response's extensions by a handler whose answer must never
/// reach the client: `serve` closes the connection instead of writing it.
/// This is how a fault acts out a lost response (the write was applied, the
/// client sees the connection close with no status line).
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Why a connection was closed on purpose; hyper closes the connection
/// without writing anything when the service answers an error.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

/// Binds `addr` and serves `router` in the background. Returns the bound
/// address (for `127.0.0.1:0`) and the task.
///
/// Connections are served here rather than by `axum::serve` so that an
/// answer marked [`DropConnection`] becomes a real dropped connection at the
/// HTTP level: hyper's HTTP/1 server closes the socket without a response
/// when the service fails.
pub async fn serve(
    router: axum::Router,
    addr: SocketAddr,
    name: &'static str,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, emulator = name, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let router = router.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let router = router.clone();
                    async move {
                        let response = match router.oneshot(req.map(Body::new)).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        };
                        if response.extensions().get::<DropConnection>().is_some() {
                            return Err(Dropped);
                        }
                        Ok::<_, Dropped>(response)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, emulator = name, "connection ended");
                }
            });
        }
    });
    Ok((local, task))
}

/// The axum answer that `serve` turns into a closed connection.
pub fn dropped_connection() -> axum::response::Response {
    let mut resp = axum::response::Response::new(Body::empty());
    resp.extensions_mut().insert(DropConnection);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_marked_answer_closes_the_connection_without_a_status_line() {
        let router = axum::Router::new()
            .route(
                "/drop",
                axum::routing::get(|| async { dropped_connection() }),
            )
            .route("/ok", axum::routing::get(|| async { "fine" }));
        let (addr, task) = serve(router, "127.0.0.1:0".parse().unwrap(), "test")
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // the same keep-alive connection: now the dropped answer
        s.write_all(b"GET /drop HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        task.abort();
    }
}
