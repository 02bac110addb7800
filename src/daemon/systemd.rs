//! Telling systemd how the daemon is doing (`Type=notify`), without ever
//! blocking.
//!
//! `sd_notify` sends a datagram to `NOTIFY_SOCKET`. The receiving queue is
//! short (10 datagrams by default) and nothing guarantees it is read: a
//! blocking send to a full queue would stall whatever task made it, SIGTERM
//! handling included. So the socket is non-blocking and a message that does
//! not fit is dropped; the next one (a watchdog ping every half interval,
//! a status after every cycle) says the same or newer.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixDatagram;

use sd_notify::NotifyState;

#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, OsString)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; a notifier that does nothing when it is unset.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let sock = UnixDatagram::unbound()
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|e| tracing::warn!(error = %e, "cannot make a socket for systemd notifications"))
                .ok()?;
            Some((sock, path))
        });
        Notifier { target }
    }

    /// Sends `states` as one datagram; never waits.
    pub fn notify(&self, states: &[NotifyState<'_>]) {
        let Some((sock, path)) = &self.target else {
            return;
        };
        let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
        if let Err(e) = send(sock, path, msg.as_bytes()) {
            if e.kind() == io::ErrorKind::WouldBlock {
                tracing::debug!("systemd's notification queue is full; message dropped");
            } else {
                tracing::debug!(error = %e, "cannot notify systemd");
            }
        }
    }

    pub fn status(&self, text: &str) {
        self.notify(&[NotifyState::Status(text)]);
    }
}

fn send(sock: &UnixDatagram, path: &OsString, msg: &[u8]) -> io::Result<usize> {
    // A leading '@' names a socket in the abstract namespace (sd_notify(3)).
    #[cfg(target_os = "linux")]
    if let Some(name) = path.as_encoded_bytes().strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        return sock.send_to_addr(msg, &addr);
    }
    sock.send_to(msg, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let sock = UnixDatagram::unbound().unwrap();
        sock.set_nonblocking(true).unwrap();
        let n = Notifier {
            target: Some((sock, path.into_os_string())),
        };
        // nobody reads: far more than the queue holds, and this returns
        for _ in 0..1000 {
            n.notify(&[NotifyState::Watchdog]);
        }
        let mut buf = [0u8; 64];
        let got = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"WATCHDOG=1\n");
    }
}
