//! The real binary recovering from what goes wrong on its own machine
//! (issue 11): a full disk, a store left mid-write or not a store at all,
//! a control socket path that is something else, an unread systemd
//! notification socket, and cycles that keep failing, which `status` must
//! show.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::daemon::{Daemon, HANG, NEVER, NotifySocket};
use crate::common::hostile::Action;
use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn run_bounded(env: &Env, args: &[&str]) -> (i32, String, String) {
    tokio::time::timeout(HANG, env.run(args))
        .await
        .unwrap_or_else(|_| panic!("`hitosync {}` did not end", args.join(" ")))
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `Err` says why the machine does not allow it.
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_cycles_until_space_is_back_then_syncs_without_a_restart() {
    let env = Env::start_full(NEVER, "").await;
    let state = env.dir.path().join("state");
    let fs = match Tmpfs::mount(&state, "6m") {
        Ok(fs) => fs,
        Err(why) => {
            // Written to stderr directly, not through eprintln!, which the
            // test harness would swallow for a test that passes.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED a_full_disk_fails_cycles_until_space_is_back: cannot mount a tmpfs here ({why}); run the tests as root on a machine that allows mounts"
            );
            return;
        }
    };
    let first = env.schedule("ap_1", 1, 10);
    let mut d = Daemon::start(&env, &[]).await;
    d.signal(10);
    d.wait_log("cycle done").await;
    env.event_of(&first);
    let (_, out, _) = run_bounded(&env, &["status", "--json"]).await;
    let before: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cursor_before = before["hitolink_cursor"]["saved_at"].clone();
    assert!(cursor_before.is_string(), "{before}");

    // the disk fills up; meanwhile there is work on both sides
    let filler = fs.fill();
    let second = env.schedule("ap_2", 2, 11);
    env.hitolink
        .emu
        .admin_edit(&first, &json!({"location": "本社 9F"}))
        .unwrap();
    d.signal(10);
    let line = d.wait_log("cycle failed").await;
    assert!(line.contains("space"), "{line}");
    let (code, out, _) = run_bounded(&env, &["status", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let during: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(during["health"]["consecutive_failures"], 1, "{during}");
    assert!(
        during["health"]["last_error"]
            .as_str()
            .unwrap()
            .contains("space"),
        "{during}"
    );
    assert_eq!(
        during["hitolink_cursor"]["saved_at"], cursor_before,
        "the cursor moved while nothing could be stored"
    );
    // still full: the store does not open again, which status says
    d.signal(10);
    d.wait_log("cycle failed").await;
    let (_, out, _) = run_bounded(&env, &["status"]).await;
    assert!(out.contains("failed cycles in a row: 2"), "{out}");

    // space comes back: the next cycle syncs it all, no restart
    std::fs::remove_file(filler).unwrap();
    d.signal(10);
    d.wait_log("cycle done").await;
    env.event_of(&second);
    assert_eq!(env.event_of(&first)["location"], "本社 9F");
    let (_, out, _) = run_bounded(&env, &["status", "--json"]).await;
    let after: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(after["health"]["consecutive_failures"], 0, "{after}");
    assert_eq!(after["mapped_interviews"], 2, "{after}");
    assert_eq!(d.stop().await, 0);
    drop(fs);
}

#[tokio::test]
async fn a_store_with_an_unfinished_snapshot_opens() {
    let env = Env::start().await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    // what a write cut short by a full disk leaves
    let left = env
        .dir
        .path()
        .join("state/sled/snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&left, b"the first bytes of a snapshot").unwrap();
    let (code, out, err) = run_bounded(&env, &["sync"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("removed an unfinished snapshot"), "{err}");
    assert!(!left.exists());
    let (_, out, _) = run_bounded(&env, &["inspect", &id]).await;
    assert!(out.contains("CreateEvent"), "the mapping was lost: {out}");
}

#[tokio::test]
async fn what_is_not_a_store_is_refused_and_left_alone() {
    let env = Env::start().await;
    let sled = env.dir.path().join("state/sled");
    std::fs::create_dir_all(&sled).unwrap();
    std::fs::write(sled.join("conf"), b"this is not sled").unwrap();
    std::fs::write(sled.join("db"), vec![0x5Au8; 8192]).unwrap();
    for args in [vec!["sync"], vec!["status"], vec!["run"]] {
        let (code, out, err) = run_bounded(&env, &args).await;
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(
            err.contains("holds no readable hitosync store")
                && err.contains("hitosync sync --full"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read(sled.join("conf")).unwrap(),
        b"this is not sled"
    );
    assert_eq!(std::fs::read(sled.join("db")).unwrap(), vec![0x5Au8; 8192]);
    assert!(
        env.events().is_empty(),
        "a cycle ran on an unreadable store"
    );
}

#[tokio::test]
async fn the_store_is_private_whatever_the_umask() {
    let env = Env::start().await;
    env.schedule("ap_1", 1, 10);
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" sync --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_hitosync"))
        .arg(&env.config)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = env.dir.path().join("state");
    let mut stack = vec![state.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", e.path().display());
            }
        }
    }
    assert!(files >= 2, "no store files to check");
}

#[tokio::test]
async fn a_control_socket_path_that_is_no_socket_is_never_removed() {
    let env = Env::start().await;
    let path = env.dir.path().join("control.sock");
    std::fs::write(&path, b"someone's notes").unwrap();
    let mut d = Daemon::spawn(&env, &[]);
    assert_eq!(d.exit_code().await, 2, "{}", d.log());
    assert!(d.log().contains("daemon.control_socket"), "{}", d.log());
    assert_eq!(std::fs::read(&path).unwrap(), b"someone's notes");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let mut d = Daemon::spawn(&env, &[]);
    assert_eq!(d.exit_code().await, 2, "{}", d.log());
    assert!(d.log().contains("directory"), "{}", d.log());
    assert!(path.is_dir());
}

#[tokio::test]
async fn an_endless_control_request_is_cut_and_the_daemon_answers_on() {
    let env = Env::start_full(NEVER, "").await;
    let d = Daemon::start(&env, &[]).await;
    let stream = tokio::net::UnixStream::connect(env.dir.path().join("control.sock"))
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    // 4 MiB and no newline
    drop(tokio::spawn(async move {
        let junk = vec![b'{'; 4 * 1024 * 1024];
        let _ = write.write_all(&junk).await;
    }));
    let mut line = String::new();
    tokio::time::timeout(HANG, BufReader::new(read).read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert!(line.contains("longer than"), "{line}");
    let (code, out, _) = run_bounded(&env, &["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(d.stop().await, 0);
}

#[tokio::test]
async fn status_tells_how_many_cycles_failed_and_why() {
    let env = Env::start_full(NEVER, "").await;
    let id = env.schedule("ap_1", 1, 10);
    env.sync().await;
    let (_, h) = env.through_proxies().await;
    h.on(
        None,
        "/v1/interviews/changes",
        Action::Answer {
            status: 429,
            body: json!({"error": "rate_limited", "message": "come back tomorrow"})
                .to_string()
                .into_bytes(),
            retry_after: Some(86_400),
        },
        None,
    );
    // without a daemon: from the store
    for _ in 0..2 {
        let (code, _, err) = run_bounded(&env, &["sync"]).await;
        assert_eq!(code, 1, "{err}");
    }
    let (code, text, _) = run_bounded(&env, &["status"]).await;
    assert_eq!(code, 0);
    assert!(text.contains("failed cycles in a row: 2"), "{text}");
    assert!(text.contains("last error ("), "{text}");
    assert!(text.contains("HITO-Link asked to wait 86400 s"), "{text}");
    let v = env.status_json().await;
    assert!(v["health"]["last_success_at"].is_string(), "{v}");
    // with a daemon: counted on, live
    let mut d = Daemon::start(&env, &[]).await;
    d.signal(10);
    d.wait_log("cycle failed").await;
    let v = env.status_json().await;
    assert_eq!(v["health"]["consecutive_failures"], 3, "{v}");
    assert_eq!(v["daemon"]["cycle_running"], serde_json::Value::Null, "{v}");
    // and back to good
    h.clear();
    env.hitolink
        .emu
        .admin_edit(&id, &json!({"location": "本社 9F"}))
        .unwrap();
    d.signal(10);
    d.wait_log("cycle done").await;
    let v = env.status_json().await;
    assert_eq!(v["health"]["consecutive_failures"], 0, "{v}");
    assert!(
        v["health"]["last_error"].is_string(),
        "the last error is kept: {v}"
    );
    assert_eq!(env.event_of(&id)["location"], "本社 9F");
    assert_eq!(d.stop().await, 0);
}

#[tokio::test]
async fn an_unread_notify_socket_stalls_nothing() {
    let env = Env::start_full(NEVER, "").await;
    // bound, never read: its queue is full after a few datagrams
    let notify = NotifySocket::bind(env.dir.path(), false);
    let mut d = Daemon::start(
        &env,
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            // a ping every millisecond fills the queue at once
            ("WATCHDOG_USEC", "2000"),
        ],
    )
    .await;
    let id = env.schedule("ap_1", 1, 10);
    d.signal(10);
    d.wait_log("cycle done").await;
    env.event_of(&id);
    let (code, out, _) = run_bounded(&env, &["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("mapped interviews: 1"), "{out}");
    assert_eq!(d.stop().await, 0);
}
