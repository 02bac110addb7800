//! The control socket: `status`, `sync`, `plan` and `inspect` reach the
//! running daemon through it, because sled admits one process per store.
//!
//! One JSON request per connection, one JSON answer: the text to print and
//! the exit code, exactly as the command would have printed it alone.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status { json: bool },
    Sync { full: bool, allow_mass_delete: bool },
    Plan { full: bool, json: bool },
    Inspect { id: String, json: bool },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Answer {
    pub exit_code: u8,
    pub output: String,
}

/// A request handed to the daemon's loop, with where to send the answer.
pub type Envelope = (Request, oneshot::Sender<Answer>);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "cannot create the control socket {path}: {source} (check daemon.control_socket and that its folder exists and is writable)"
    )]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("another hitosync daemon answers on {path}")]
    InUse { path: String },
    #[error("cannot talk to the daemon on {path}: {detail}")]
    Talk { path: String, detail: String },
}

/// Binds the socket (mode 0600: only hitosync's user may steer it) and
/// serves requests by forwarding them to the loop.
pub async fn serve(
    path: &Path,
    to_loop: mpsc::Sender<Envelope>,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    let shown = path.display().to_string();
    if path.exists() {
        // A live daemon answers; a stale file from a crash does not.
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse { path: shown });
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|source| ControlError::Bind {
        path: shown.clone(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| ControlError::Bind {
                path: shown.clone(),
                source,
            },
        )?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let to_loop = to_loop.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, to_loop).await {
                    tracing::warn!(error = %e, "control connection failed");
                }
            });
        }
    }))
}

async fn handle(stream: UnixStream, to_loop: mpsc::Sender<Envelope>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let answer = match serde_json::from_str::<Request>(&line) {
        Ok(req) => {
            let (tx, rx) = oneshot::channel();
            if to_loop.send((req, tx)).await.is_err() {
                Answer {
                    exit_code: 1,
                    output: "the daemon is shutting down\n".into(),
                }
            } else {
                rx.await.unwrap_or(Answer {
                    exit_code: 1,
                    output: "the daemon dropped the request (shutting down?)\n".into(),
                })
            }
        }
        Err(e) => Answer {
            exit_code: 2,
            output: format!("bad control request: {e}\n"),
        },
    };
    let mut bytes = serde_json::to_vec(&answer).unwrap_or_default();
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await
}

/// Sends a request to a running daemon. `Ok(None)`: no daemon listens
/// there, so the caller opens the store itself.
pub async fn request(path: &Path, req: &Request) -> Result<Option<Answer>, ControlError> {
    let shown = path.display().to_string();
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(ControlError::Talk {
                path: shown,
                detail: format!("{e} (run as the daemon's user, or as root)"),
            });
        }
    };
    let talk = |e: std::io::Error| ControlError::Talk {
        path: shown.clone(),
        detail: e.to_string(),
    };
    let (read, mut write) = stream.into_split();
    let mut bytes = serde_json::to_vec(req).unwrap_or_default();
    bytes.push(b'\n');
    write.write_all(&bytes).await.map_err(talk)?;
    let mut line = String::new();
    BufReader::new(read)
        .read_line(&mut line)
        .await
        .map_err(talk)?;
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| ControlError::Talk {
            path: shown.clone(),
            detail: format!("unreadable answer: {e}"),
        })
}
