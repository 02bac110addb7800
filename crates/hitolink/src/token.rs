//! The HITO-Link API token: read from its file, checked before use.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// Why the API token could not be read. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the HITO-Link token file {path} does not exist: put the API token in it and set hitolink.api_token_file"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot read the HITO-Link token file {path}: {source} (check that hitosync's user may read it)"
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the HITO-Link token file {path} is empty: put the API token on its first line")]
    Empty { path: PathBuf },
    /// A token with a control character cannot go into a header; left in,
    /// every request would fail as if the network were down.
    #[error(
        "the HITO-Link token file {path} holds a control character in its first line (an editor's stray byte, a Windows line end inside the token?): put the API token alone on the first line"
    )]
    ControlCharacter { path: PathBuf },
    #[error(
        "the HITO-Link token file {path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`, or set hitolink.allow_insecure_token_permissions = true to accept it"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
}

/// Reads the bearer token: the first line of the file, trimmed.
pub fn read_token(path: &Path, allow_insecure: bool) -> Result<SecretString, TokenError> {
    use hitosync_net::private_file::{self, PrivateFileError as E};
    let bytes = private_file::read(path, allow_insecure).map_err(|e| match e {
        E::Missing => TokenError::Missing {
            path: path.to_path_buf(),
        },
        E::Unreadable(source) => TokenError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        E::Insecure { mode } => TokenError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        },
    })?;
    let text = String::from_utf8(bytes).map_err(|_| TokenError::Unreadable {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    if token.chars().any(char::is_control) {
        return Err(TokenError::ControlCharacter {
            path: path.to_path_buf(),
        });
    }
    Ok(SecretString::from(token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_with_a_control_character_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "abc\u{7}def\n").unwrap();
        assert!(matches!(
            read_token(&path, true).unwrap_err(),
            TokenError::ControlCharacter { .. }
        ));
        std::fs::write(&path, "abcdef\r\n").unwrap();
        assert!(read_token(&path, true).is_ok(), "a CRLF line end is fine");
    }
}
