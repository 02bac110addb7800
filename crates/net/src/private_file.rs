//! Reading a file that holds a secret (the P12 key, the HITO-Link token):
//! refused when group or others may read it, unless the admin says so.

use std::io;
use std::path::Path;

#[derive(Debug)]
pub enum PrivateFileError {
    Missing,
    Unreadable(io::Error),
    /// Readable by group or others; the mode's permission bits.
    Insecure {
        mode: u32,
    },
}

/// The file's bytes, after the permission check.
pub fn read(path: &Path, allow_insecure: bool) -> Result<Vec<u8>, PrivateFileError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => PrivateFileError::Missing,
        _ => PrivateFileError::Unreadable(e),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            if !allow_insecure {
                return Err(PrivateFileError::Insecure { mode });
            }
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "secret file is readable by group or others");
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, allow_insecure);
    std::fs::read(path).map_err(PrivateFileError::Unreadable)
}
