//! Opening the store safely: private permissions, what an interrupted
//! write leaves behind, and sled's I/O errors in an admin's words.

use std::path::{Path, PathBuf};

/// sled keeps the OS error as its debug text (`Os { code: 28, kind:
/// StorageFull, message: "No space left on device" }`); an admin needs
/// the message, and what to do about a full disk.
pub(crate) fn io_text(e: &sled::Error) -> String {
    let sled::Error::Io(io) = e else {
        return e.to_string();
    };
    let inner = io
        .get_ref()
        .map(|i| i.to_string())
        .unwrap_or_else(|| io.to_string());
    let text = inner
        .split("message: \"")
        .nth(1)
        .and_then(|m| m.split('"').next())
        .map(str::to_string)
        .unwrap_or(inner);
    if io.kind() == std::io::ErrorKind::StorageFull {
        format!(
            "{text}: free space on the disk that holds daemon.state_dir; nothing is lost, the cursors did not move"
        )
    } else {
        text
    }
}

/// State dir 0700, the sled folder 0700 and every file in it 0600,
/// whatever the umask: the store holds interview data. Files sled makes
/// later sit in the 0700 folder.
pub(crate) fn make_private(dir: &Path, sled_dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let set = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        };
        set(dir, 0o700)?;
        std::fs::create_dir_all(sled_dir)?;
        set(sled_dir, 0o700)?;
        let mut stack = vec![sled_dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    set(&entry.path(), 0o700)?;
                    stack.push(entry.path());
                } else if kind.is_file() {
                    set(&entry.path(), 0o600)?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, sled_dir);
    Ok(())
}

/// sled writes a snapshot as `snap.<lsn>.generating` and renames it when
/// complete. A write cut short (a full disk, a crash) leaves the partial
/// file, which sled then takes for the newest snapshot and calls the whole
/// store corrupted. It was never the snapshot in force, so it goes.
/// Returns the ones that could not be removed.
pub(crate) fn remove_unfinished_snapshots(sled_dir: &Path) -> Vec<PathBuf> {
    let mut left = vec![];
    let Ok(entries) = std::fs::read_dir(sled_dir) else {
        return left;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::warn!(file = %entry.path().display(), "removed an unfinished snapshot left by an interrupted write")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove an unfinished snapshot");
                    left.push(entry.path());
                }
            }
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use crate::*;
    use chrono::Utc;
    use std::path::Path;

    #[test]
    fn an_unfinished_snapshot_does_not_stop_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.set_cursors(Some("g"), Some("h"), Utc::now()).unwrap();
        }
        // what a write cut short by a full disk leaves behind
        let left = dir.path().join("sled/snap.00000000FFFFFFFF.generating");
        std::fs::write(&left, b"partial snapshot bytes").unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.cursor(Side::Hitolink).unwrap().unwrap().value, "h");
        assert!(!left.exists());
    }

    #[test]
    fn what_is_not_a_store_is_never_taken_for_an_empty_one() {
        // garbage where the database should be
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sled")).unwrap();
        std::fs::write(dir.path().join("sled/conf"), b"not sled at all").unwrap();
        std::fs::write(dir.path().join("sled/db"), vec![0xA5u8; 4096]).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StateError::NotAStore { .. }), "{err}");
        assert!(err.to_string().contains("hitosync sync --full"), "{err}");
        // a sound sled database that hitosync never wrote
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path().join("sled")).unwrap();
            db.insert("someone else's", &b"data"[..]).unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StateError::NotAStore { .. }), "{err}");
        // a fresh dir is a fresh store
        let dir = tempfile::tempdir().unwrap();
        Store::open(&dir.path().join("new")).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        {
            Store::open(&state)
                .unwrap()
                .set_cursors(Some("g"), None, Utc::now())
                .unwrap();
        }
        let s = Store::open(&state).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("sled")), 0o700);
        assert_eq!(mode(&state.join("sled/db")), 0o600);
        assert_eq!(mode(&state.join("sled/conf")), 0o600);
        s.check_writable().unwrap();
    }
}
