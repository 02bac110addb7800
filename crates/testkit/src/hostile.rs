//! A hostile HTTP proxy for the robustness tests: it sits between hitosync
//! and an emulator, forwards everything, and misbehaves on request the way
//! real servers and middleboxes do: a cursor that never moves on, a
//! `Retry-After` of a day, a body of many megabytes, items that do not
//! decode, an endpoint that never answers, an error that echoes the
//! `Authorization` header.
//!
//! The emulators stay faithful to the documented APIs; what is hostile
//! lives here, in front of them.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;

/// What the proxy does with a matching request.
#[derive(Clone)]
pub enum Action {
    /// Answers this instead of forwarding.
    Answer {
        status: u16,
        body: Vec<u8>,
        retry_after: Option<u64>,
    },
    /// Never answers: the connection stays open and silent.
    Hang,
    /// A 200 whose JSON body is `mib` MiB, streamed without a
    /// Content-Length (the cursor is what is big, as in the issue).
    Huge { mib: usize },
    /// Forwards, then changes the JSON answer (of a success).
    Rewrite(Arc<dyn Fn(&mut Value) + Send + Sync>),
    /// A listing whose next-page token repeats forever: the request is
    /// forwarded without its `query_param` (so the server answers its first
    /// page again), and the answer's `field` is set to one fixed token, its
    /// `nextSyncToken` removed.
    LoopPages {
        query_param: &'static str,
        field: &'static str,
    },
    /// Forwards, then appends these raw JSON items (bytes that need not be
    /// UTF-8) to the answer's `items`.
    AppendItems(Vec<Vec<u8>>),
    /// An error answer whose message quotes the request's `Authorization`.
    EchoAuth { status: u16 },
}

#[derive(Clone)]
struct Rule {
    method: Option<Method>,
    path_prefix: String,
    action: Action,
    /// How many more requests it applies to; `None`: all.
    left: Option<usize>,
}

struct Inner {
    upstream: SocketAddr,
    /// Send the upstream's own address as `Host` (by default the client's
    /// `Host` goes through, as a transparent proxy's would).
    upstream_host: std::sync::atomic::AtomicBool,
    rules: Mutex<Vec<Rule>>,
    client: hitosync_net::http::Client,
    /// Requests that matched a rule, by path prefix (for assertions).
    hits: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct Hostile {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Hostile {
    /// A proxy on a free loopback port in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> Hostile {
        let inner = Arc::new(Inner {
            upstream,
            upstream_host: Default::default(),
            rules: Mutex::new(vec![]),
            client: hitosync_net::http::client(),
            hits: Mutex::new(vec![]),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Hostile { addr, inner }
    }

    /// Requests whose path starts with `path_prefix` (and, if given, use
    /// `method`) get `action`, `times` times or forever.
    pub fn on(
        &self,
        method: Option<Method>,
        path_prefix: &str,
        action: Action,
        times: Option<usize>,
    ) {
        self.inner.rules.lock().push(Rule {
            method,
            path_prefix: path_prefix.to_string(),
            action,
            left: times,
        });
    }

    /// Forward with the upstream's address as `Host`, as a reverse proxy
    /// that rewrites it would.
    pub fn rewrite_host(&self) {
        self.inner
            .upstream_host
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Back to forwarding everything.
    pub fn clear(&self) {
        self.inner.rules.lock().clear();
    }

    /// How many requests a rule for `path_prefix` has caught.
    pub fn hits(&self, path_prefix: &str) -> usize {
        self.inner
            .hits
            .lock()
            .iter()
            .filter(|p| p.as_str() == path_prefix)
            .count()
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

fn take_rule(inner: &Inner, method: &Method, path: &str) -> Option<Action> {
    let mut rules = inner.rules.lock();
    let i = rules.iter().position(|r| {
        path.starts_with(&r.path_prefix) && r.method.as_ref().is_none_or(|m| m == method)
    })?;
    let action = rules[i].action.clone();
    inner.hits.lock().push(rules[i].path_prefix.clone());
    if let Some(left) = rules[i].left.as_mut() {
        *left -= 1;
        if *left == 0 {
            rules.remove(i);
        }
    }
    Some(action)
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let action = take_rule(&inner, &method, uri.path());
    match action {
        None => forward(&inner, method, &uri, &headers, body).await,
        Some(Action::Answer {
            status,
            body,
            retry_after,
        }) => {
            let mut r = Response::builder().status(status);
            if let Some(s) = retry_after {
                r = r.header("retry-after", s.to_string());
            }
            r.header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap()
        }
        Some(Action::Hang) => std::future::pending().await,
        Some(Action::Huge { mib }) => {
            let head =
                Bytes::from_static(b"{\"items\": [], \"has_more\": false, \"next_cursor\": \"");
            let chunk = Bytes::from(vec![b'x'; 1024 * 1024]);
            let tail = Bytes::from_static(b"\"}");
            let parts = std::iter::once(head)
                .chain(std::iter::repeat_n(chunk, mib))
                .chain(std::iter::once(tail))
                .map(Ok::<_, std::convert::Infallible>);
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(futures_util::stream::iter(parts)))
                .unwrap()
        }
        Some(Action::EchoAuth { status }) => {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let message = format!("request rejected; you sent Authorization: {auth}");
            let body = serde_json::json!({
                "error": {"code": status, "message": message, "errors": [{"reason": "badRequest", "message": message}]},
                "message": message,
            });
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        }
        Some(Action::Rewrite(f)) => {
            let resp = forward(&inner, method, &uri, &headers, body).await;
            map_json(resp, |v| f(v)).await
        }
        Some(Action::LoopPages { query_param, field }) => {
            let path = uri.path();
            let query: Vec<(String, String)> =
                url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .filter(|(k, _)| k != query_param)
                    .collect();
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish();
            let uri: Uri = format!("{path}?{query}").parse().unwrap();
            let resp = forward(&inner, method, &uri, &headers, body).await;
            map_json(resp, |v| {
                v[field] = Value::from("hostile-loop-token");
                if let Some(o) = v.as_object_mut() {
                    o.remove("nextSyncToken");
                }
            })
            .await
        }
        Some(Action::AppendItems(items)) => {
            let resp = forward(&inner, method, &uri, &headers, body).await;
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            // Put the items in by bytes, so that they may be anything.
            let marker = "\u{1}HOSTILE-ITEMS\u{1}";
            let mut v = v;
            let list = v["items"].as_array_mut().expect("a page with items");
            list.push(Value::String(marker.into()));
            let text = v.to_string();
            let quoted = serde_json::to_string(marker).unwrap();
            let at = text.find(&quoted).unwrap();
            let mut out = text.as_bytes()[..at].to_vec();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(item);
            }
            if items.is_empty() {
                // drop the comma before the marker, if any
                while out.last() == Some(&b',') || out.last() == Some(&b' ') {
                    out.pop();
                }
            }
            out.extend_from_slice(&text.as_bytes()[at + quoted.len()..]);
            let mut r = Response::from_parts(parts, Body::from(out));
            r.headers_mut().remove("content-length");
            r
        }
    }
}

async fn map_json(resp: Response, f: impl FnOnce(&mut Value)) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if parts.status.is_success() {
        f(&mut v);
    }
    let mut r = Response::from_parts(parts, Body::from(v.to_string()));
    r.headers_mut().remove("content-length");
    r
}

async fn forward(
    inner: &Inner,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!(
        "http://{}{}",
        inner.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let rewrite = inner
        .upstream_host
        .load(std::sync::atomic::Ordering::SeqCst);
    let mut pass: Vec<(HeaderName, String)> = headers
        .iter()
        .filter(|(n, _)| {
            let hop = matches!(
                n.as_str(),
                "content-length" | "content-type" | "connection" | "transfer-encoding"
            );
            let replaced = rewrite && n.as_str() == "host";
            !(hop || replaced)
        })
        .filter_map(|(n, v)| Some((n.clone(), v.to_str().ok()?.to_string())))
        .collect();
    if rewrite {
        pass.push((axum::http::header::HOST, inner.upstream.to_string()));
    }
    let body = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
    match hitosync_net::http::send(&inner.client, method, &url, &pass, body).await {
        Ok(r) => {
            let mut out = Response::builder().status(r.status);
            for (n, v) in r.headers.iter() {
                if !matches!(
                    n.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    out = out.header(n, v);
                }
            }
            out.body(Body::from(r.body)).unwrap()
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .header("content-type", HeaderValue::from_static("text/plain"))
            .body(Body::from(format!("proxy: {e}")))
            .unwrap(),
    }
}
