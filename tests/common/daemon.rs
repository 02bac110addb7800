//! `hitosync run` as a child process: its log lines, signals, and the
//! systemd notification socket it writes to.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::Env;

/// A schedule that never fires during a test: cycles come from signals.
pub const NEVER: &str = "schedule = \"0 0 0 1 1 *\"\nfull_resync_schedule = \"0 0 0 1 1 *\"";

/// How long any single wait in these tests may take before the test fails
/// as hung. Generous: it only turns a hang into a failure, it measures
/// nothing.
pub const HANG: Duration = Duration::from_secs(60);

pub struct Daemon {
    pub child: Child,
    logs: mpsc::UnboundedReceiver<String>,
    pub seen: Vec<String>,
    /// `wait_log` looks at lines from here on.
    next: usize,
}

/// The systemd notification socket a test hands the daemon.
pub struct NotifySocket {
    pub path: std::path::PathBuf,
    /// Every datagram read so far (when drained).
    pub got: Arc<Mutex<Vec<String>>>,
    _socket: Arc<UnixDatagram>,
}

impl NotifySocket {
    /// Bound in `dir`; read continuously by a thread when `drain`, never
    /// read at all otherwise (its queue then fills after a few messages).
    pub fn bind(dir: &Path, drain: bool) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = Arc::new(UnixDatagram::bind(&path).unwrap());
        let got = Arc::new(Mutex::new(vec![]));
        if drain {
            let (socket, got) = (socket.clone(), got.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.recv(&mut buf) {
                    got.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            });
        }
        NotifySocket {
            path,
            got,
            _socket: socket,
        }
    }

    pub async fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + HANG;
        while !self.got.lock().unwrap().iter().any(|m| m.contains(text)) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the notify socket; got {:?}",
                self.got.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Daemon {
    pub async fn start(env: &Env, envs: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon::spawn(env, envs);
        d.wait_log("daemon started").await;
        d
    }

    /// Started, not yet waited for (for daemons meant to fail at start).
    pub fn spawn(env: &Env, envs: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_config(&env.config, envs)
    }

    /// The daemon of any config file, not yet waited for.
    pub fn spawn_config(config: &Path, envs: &[(&str, &str)]) -> Daemon {
        // systemd names the watched process in WATCHDOG_PID; a shell that
        // execs the daemon knows its pid in advance.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"")
            .arg(env!("CARGO_BIN_EXE_hitosync"))
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, logs) = mpsc::unbounded_channel();
        let stderr = child.stderr.take().unwrap();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
        Daemon {
            child,
            logs,
            seen: vec![],
            next: 0,
        }
    }

    fn pull(&mut self) {
        while let Ok(l) = self.logs.try_recv() {
            self.seen.push(l);
        }
    }

    /// Waits for a log line containing `text` that came after the line the
    /// previous `wait_log` matched, and returns it.
    pub async fn wait_log(&mut self, text: &str) -> String {
        let deadline = Instant::now() + HANG;
        loop {
            self.pull();
            if let Some(i) = self.seen[self.next..].iter().position(|l| l.contains(text)) {
                self.next += i + 1;
                return self.seen[self.next - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.logs.recv()).await {
                Ok(Some(l)) => self.seen.push(l),
                _ => panic!("no log line with {text:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    pub fn count(&mut self, text: &str) -> usize {
        self.pull();
        self.seen.iter().filter(|l| l.contains(text)).count()
    }

    pub fn log(&mut self) -> String {
        self.pull();
        self.seen.join("\n")
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.id().unwrap() as i32;
        std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
    }

    /// Waits for the process to end; fails the test if it hangs. Every
    /// line it logged is read before this returns (the reader may lag
    /// behind the exit).
    pub async fn exit_code(&mut self) -> i32 {
        let status = tokio::time::timeout(HANG, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the daemon did not exit; log:\n{}", self.log()))
            .unwrap();
        while let Ok(Some(l)) = tokio::time::timeout(HANG, self.logs.recv()).await {
            self.seen.push(l);
        }
        status.code().unwrap_or(-1)
    }

    /// SIGTERM, then the exit code.
    pub async fn stop(mut self) -> i32 {
        self.signal(15);
        self.exit_code().await
    }
}

/// Polls `f` until it holds; fails the test as hung after [`HANG`].
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
