//! The one HTTP client both connectors share.
//!
//! google-calendar3 wants a `hyper_util` legacy client; the HITO-Link
//! connector and the conditional Calendar writes (which google-calendar3
//! cannot send with `If-Match`) use the very same client, so there is one
//! connection pool, one TLS configuration and one place that sets timeouts.
//!
//! The client's type is spelled here from hyper and hyper-util, the very
//! types `google_calendar3::common::Client` names, rather than imported from
//! google-calendar3: this crate (and so the HITO-Link connector and the
//! PostgreSQL store) then need not wait for Google's 15,000-line API crate
//! to compile. `hitosync-google` hands the client to google-calendar3,
//! which is where a mismatch would fail to build.

use std::time::Duration;

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type Connector = HttpsConnector<HttpConnector>;
/// A request's body: google-calendar3's `common::Body`.
pub type Body = BoxBody<Bytes, hyper::Error>;
/// google-calendar3's `common::Client<Connector>`.
pub type Client = hyper_util::client::legacy::Client<Connector, Body>;

/// How long one request may take, connect to last body byte. A stuck peer
/// must not stall a cycle forever; the retry layer decides what comes next.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the client: HTTPS with the Mozilla roots compiled in (no
/// dependency on the host's CA store), plain HTTP allowed because loopback
/// test peers speak it; `config::check_url` refuses plain HTTP elsewhere.
pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector())
}

/// The connector alone, for yup-oauth2, which wants a client with another
/// body type.
pub fn connector() -> Connector {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build()
}

/// The largest answer read. Both APIs answer with JSON documents of a few
/// hundred kilobytes at most (a page of 2,500 events is well under 10 MiB);
/// anything bigger is a broken or hostile peer, and reading it whole would
/// hold it all in memory (and, as a cursor, in the store).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A response read whole (up to [`MAX_BODY_BYTES`]).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request got no HTTP answer at all.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("reading the answer failed: {0}")]
    Body(String),
    /// The answer is bigger than [`MAX_BODY_BYTES`]; reading stopped there.
    #[error("{}", too_large_text(*.limit, *.declared))]
    TooLarge { limit: usize, declared: Option<u64> },
}

impl SendError {
    /// Worth another attempt: a timeout or a broken connection may not
    /// happen again, an oversized answer will.
    pub fn is_transient(&self) -> bool {
        !matches!(self, SendError::TooLarge { .. })
    }
}

fn too_large_text(limit: usize, declared: Option<u64>) -> String {
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    match declared {
        Some(n) => format!(
            "the answer is {:.1} MiB (Content-Length), more than the {:.0} MiB hitosync reads",
            mib(n),
            mib(limit as u64)
        ),
        None => format!(
            "the answer is larger than the {:.0} MiB hitosync reads; reading stopped there",
            mib(limit as u64)
        ),
    }
}

/// One request, no retries; the caller's retry policy decides on failures.
pub async fn send(
    client: &Client,
    method: Method,
    url: &str,
    headers: &[(http::HeaderName, String)],
    body: Option<String>,
) -> Result<Response, SendError> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = builder
        .body(to_body(body))
        .map_err(|e| SendError::Connect(format!("invalid request: {e}")))?;
    let fut = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| SendError::Connect(error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = declared.filter(|n| *n > MAX_BODY_BYTES as u64) {
            return Err(SendError::TooLarge {
                limit: MAX_BODY_BYTES,
                declared: Some(n),
            });
        }
        // Frame by frame, stopping at the cap: a peer that streams without
        // end (or lies in Content-Length) costs at most the cap.
        let body = http_body_util::Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    SendError::TooLarge {
                        limit: MAX_BODY_BYTES,
                        declared: None,
                    }
                } else {
                    SendError::Body(error_chain(&*e))
                }
            })?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| SendError::Timeout(REQUEST_TIMEOUT))?
}

/// A whole body in memory, as a request's [`Body`].
fn to_body(body: Option<String>) -> Body {
    let full = http_body_util::Full::new(Bytes::from(body.unwrap_or_default()));
    BoxBody::new(full.map_err(|never: std::convert::Infallible| match never {}))
}

/// hyper's errors say "client error (Connect)" and hide the useful part in
/// their sources; an admin needs "connection refused".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// `Retry-After` in seconds (the only form either API sends).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
