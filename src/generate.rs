//! Man pages and shell completions, written from the clap definition of the
//! binary that runs this, so that they never drift from `--help` (and a
//! build without the emulators documents no `demo` or `emulate`).
//! `packaging/build-deb` calls it through `hitosync generate`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {what} into {dir}: {source} (is the directory there and writable?)")]
pub struct GenerateError {
    what: &'static str,
    dir: PathBuf,
    #[source]
    source: std::io::Error,
}

/// `hitosync.1` and one page per visible subcommand (`hitosync-sync.1`, ...).
pub fn man_pages(dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let err = |source| GenerateError {
        what: "the man pages",
        dir: dir.to_path_buf(),
        source,
    };
    clap_mangen::generate_to(Cli::command(), dir).map_err(err)?;
    written(dir, |name| name.ends_with(".1")).map_err(err)
}

/// bash, zsh and fish completions, under the names each shell looks for.
pub fn completions(dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let mut cmd = visible_command();
    let bin = cmd.get_name().to_string();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut cmd, &bin, dir).map_err(|source| GenerateError {
                what: "the shell completions",
                dir: dir.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// The command line as completions should offer it. clap_complete walks
/// hidden subcommands too (clap-rs/clap#1335), and `Command` cannot drop
/// one, so the root is put together again from the definition's own
/// arguments and visible subcommands: nothing of it is restated here.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new(full.get_name().to_owned())
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(version) = full.get_version() {
        cmd = cmd.version(version.to_owned());
    }
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

fn written(dir: &Path, keep: impl Fn(&str) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(&keep) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_visible_command_and_none_for_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for name in [
            "hitosync.1",
            "hitosync-run.1",
            "hitosync-sync.1",
            "hitosync-doctor.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.contains("generate")),
            "the hidden generator got a page: {names:?}"
        );
        let sync = std::fs::read_to_string(dir.path().join("hitosync-sync.1")).unwrap();
        assert!(sync.contains("allow\\-mass\\-delete"), "{sync}");
        let main = std::fs::read_to_string(dir.path().join("hitosync.1")).unwrap();
        assert!(!main.contains("generate"), "{main}");
    }

    #[test]
    fn completions_for_three_shells_know_the_commands() {
        let dir = tempfile::tempdir().unwrap();
        let files = completions(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["hitosync.bash", "_hitosync", "hitosync.fish"]);
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.contains("doctor"), "{}", f.display());
            assert!(text.contains("allow-mass-delete"), "{}", f.display());
            assert!(!text.contains("generate"), "{}", f.display());
        }
    }

    #[test]
    fn a_missing_directory_is_named() {
        let e = man_pages(Path::new("/nonexistent/hitosync-man")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/hitosync-man"), "{e}");
    }
}
