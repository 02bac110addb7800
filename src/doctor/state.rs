//! Where the links' state lives, checked first: every link needs it.

use std::path::Path;

use super::{Check, STEP_CONFIG};
use hitosync_config::{Backend as Kind, ConfigFile};

/// Where the state lives: the state dir is writable, or the database
/// answers and its schema is one this version reads (migrated if older).
pub(super) async fn state_check(file: &ConfigFile) -> Check {
    match file.state.backend {
        Kind::Sled => state_dir(&file.daemon.state_dir),
        Kind::Postgres => match hitosync_state_postgres::PgState::open(&file.state).await {
            Ok(pg) => Check::ok(
                STEP_CONFIG,
                "state database",
                format!(
                    "{} answers; schema version {}",
                    pg.target(),
                    hitosync_state_postgres::LATEST
                ),
            ),
            Err(e) => Check::failed(
                STEP_CONFIG,
                "state database",
                e.to_string(),
                "state.url のデータベースが起動していて接続できること、パスワード (state.password_file または state.password_credential) とユーザーの権限を確認してください。",
                "Check that the database in state.url runs and is reachable, and the password (state.password_file or state.password_credential) and the user's rights.",
            ),
        },
    }
}

fn state_dir(dir: &Path) -> Check {
    let probe = dir.join(".hitosync-doctor-probe");
    let result = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b"probe"))
        .and_then(|_| std::fs::remove_file(&probe));
    match result {
        Ok(()) => Check::ok(
            STEP_CONFIG,
            "state dir",
            format!("{} is writable", dir.display()),
        ),
        Err(e) => Check::failed(
            STEP_CONFIG,
            "state dir",
            format!("{}: {e}", dir.display()),
            "daemon.state_dir を hitosync の実行ユーザーが書き込めるディレクトリにしてください(systemd では StateDirectory が用意します)。",
            "Point daemon.state_dir at a folder hitosync's user can write (under systemd, StateDirectory provides one).",
        ),
    }
}
