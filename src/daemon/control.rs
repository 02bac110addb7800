//! The control socket: `status`, `sync`, `plan` and `inspect` reach the
//! running daemon through it, because sled admits one process per store.
//!
//! One JSON request per connection, one JSON answer: the text to print and
//! the exit code, exactly as the command would have printed it alone.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// `link`: one link, or (none) every link.
    Status {
        json: bool,
        #[serde(default)]
        link: Option<String>,
    },
    Sync {
        full: bool,
        allow_mass_delete: bool,
        #[serde(default)]
        link: Option<String>,
    },
    Plan {
        full: bool,
        json: bool,
        #[serde(default)]
        link: Option<String>,
    },
    /// `link` is needed when the daemon serves more than one.
    Inspect {
        id: String,
        json: bool,
        #[serde(default)]
        link: Option<String>,
    },
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
    /// Something else than a socket is where the socket goes: never removed.
    #[error(
        "daemon.control_socket = {path} names an existing {kind}, not a socket; hitosync removes only a stale socket of its own there: point daemon.control_socket at a free path (like /run/hitosync/control.sock)"
    )]
    NotASocket { path: String, kind: &'static str },
    #[error("cannot talk to the daemon on {path}: {detail}")]
    Talk { path: String, detail: String },
}

/// The longest request line read; a request is a few dozen bytes.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// How long a connection may take to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What is at `path`, when it is not a socket.
fn not_a_socket(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    let t = meta.file_type();
    if t.is_socket() {
        None
    } else if t.is_dir() {
        Some("directory")
    } else if t.is_symlink() {
        Some("symbolic link")
    } else if t.is_file() {
        Some("regular file")
    } else {
        Some("file")
    }
}

/// Removes the socket at `path`, and only a socket.
pub fn remove_socket(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok() && not_a_socket(path).is_none() {
        let _ = std::fs::remove_file(path);
    }
}

/// Binds the socket (mode 0600: only hitosync's user may steer it) and
/// serves requests by forwarding them to the loop.
pub async fn serve(
    path: &Path,
    to_loop: mpsc::Sender<Envelope>,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    let shown = path.display().to_string();
    if std::fs::symlink_metadata(path).is_ok() {
        if let Some(kind) = not_a_socket(path) {
            return Err(ControlError::NotASocket { path: shown, kind });
        }
        // A live daemon answers; a stale socket from a crash does not.
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse { path: shown });
        }
        remove_socket(path);
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

/// One request line, at most [`MAX_REQUEST_BYTES`], within
/// [`REQUEST_READ_TIMEOUT`]; `Err` says what to answer instead.
async fn read_request(read: tokio::net::unix::OwnedReadHalf) -> Result<String, String> {
    let mut line = Vec::new();
    let mut limited = BufReader::new(read.take(MAX_REQUEST_BYTES));
    match tokio::time::timeout(REQUEST_READ_TIMEOUT, limited.read_until(b'\n', &mut line)).await {
        Err(_) => return Err("no request within 10 s".into()),
        Ok(Err(e)) => return Err(format!("reading the request failed: {e}")),
        Ok(Ok(_)) => {}
    }
    if !line.ends_with(b"\n") && line.len() as u64 >= MAX_REQUEST_BYTES {
        return Err(format!(
            "the request is longer than {MAX_REQUEST_BYTES} bytes; a request is one short JSON line"
        ));
    }
    String::from_utf8(line).map_err(|_| "the request is not UTF-8 text".to_string())
}

async fn handle(stream: UnixStream, to_loop: mpsc::Sender<Envelope>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let line = match read_request(read).await {
        Ok(line) => line,
        Err(why) => {
            let mut bytes = serde_json::to_vec(&Answer {
                exit_code: 2,
                output: format!("bad control request: {why}\n"),
            })
            .unwrap_or_default();
            bytes.push(b'\n');
            write.write_all(&bytes).await?;
            return write.shutdown().await;
        }
    };
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
    // An answer is the text a command prints; a status of many parked
    // records runs to megabytes at most.
    BufReader::new(read.take(256 * 1024 * 1024))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_socket_is_ever_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("control.sock");
        std::fs::write(&file, b"precious").unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let err = serve(&file, tx.clone()).await.unwrap_err();
        assert!(
            matches!(
                err,
                ControlError::NotASocket {
                    kind: "regular file",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("daemon.control_socket"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"precious");
        let sub = dir.path().join("a-dir");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(
            serve(&sub, tx.clone()).await.unwrap_err(),
            ControlError::NotASocket {
                kind: "directory",
                ..
            }
        ));
        assert!(sub.is_dir());
        // a stale socket (nobody listens) is replaced
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let task = serve(&stale, tx).await.unwrap();
        task.abort();
        remove_socket(&file);
        assert!(file.exists(), "remove_socket removed a regular file");
    }

    #[tokio::test]
    async fn an_endless_request_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let (tx, _rx) = mpsc::channel(1);
        let task = serve(&path, tx).await.unwrap();
        let stream = UnixStream::connect(&path).await.unwrap();
        let (read, mut write) = stream.into_split();
        // 1 MiB without a newline; the server stops reading at its limit
        let junk = vec![b'x'; 1024 * 1024];
        drop(tokio::spawn(async move { write.write_all(&junk).await }));
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await.unwrap();
        let answer: Answer = serde_json::from_str(&line).unwrap();
        assert_eq!(answer.exit_code, 2);
        assert!(answer.output.contains("longer than"), "{}", answer.output);
        task.abort();
    }
}
