//! Connecting: the URL from `state.url`, the password from a file or a
//! systemd credential (never from the config file itself), TLS through
//! rustls when the URL says `sslmode=require`, with the server's
//! certificate verified against the public roots or `state.tls_ca_file`.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use hitosync_config::{StateConfig, redact_url};
use hitosync_state::StateError;
use secrecy::{ExposeSecret, SecretString};

use crate::PgState;

/// How long connecting, waiting for a pooled connection, and one statement
/// may take: every database call is bounded, like every HTTP call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
const STATEMENT_TIMEOUT_MS: u64 = 30_000;

pub(crate) fn pool(cfg: &StateConfig) -> Result<PgState, StateError> {
    let raw = cfg.url.as_deref().unwrap_or_default();
    let target = redact_url(raw);
    let bad = |detail: String| StateError::Database {
        target: target.clone(),
        detail,
    };
    let mut pg = tokio_postgres::Config::from_str(raw)
        .map_err(|e| bad(format!("state.url does not parse: {e}")))?;
    if let Some(pw) = read_password(cfg)? {
        pg.password(pw.expose_secret().as_bytes());
    }
    // TLS only when the URL asks for it, and then always verified: the
    // config allows anything else only to this machine (a unix socket or
    // loopback). tokio-postgres's default, `prefer`, would try TLS and
    // fail on a loopback server's self-signed certificate instead of
    // falling back as libpq does.
    if pg.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    pg.connect_timeout(CONNECT_TIMEOUT);
    pg.application_name("hitosync");
    pg.options(format!(
        "-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}"
    ));
    let tls = tls_connector(cfg.tls_ca_file.as_deref()).map_err(bad)?;
    let mgr = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(mgr)
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| bad(format!("cannot build the connection pool: {e}")))?;
    Ok(PgState {
        pool,
        target: target.into(),
    })
}

/// The database password: `state.password_file`, or the systemd
/// credential `state.password_credential` (`$CREDENTIALS_DIRECTORY/NAME`),
/// or none (peer or certificate authentication, a `.pgpass`-less trust).
pub fn read_password(cfg: &StateConfig) -> Result<Option<SecretString>, StateError> {
    let path = match (&cfg.password_file, &cfg.password_credential) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => {
            let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
                return Err(StateError::Database {
                    target: redact_url(cfg.url.as_deref().unwrap_or_default()),
                    detail: format!(
                        "state.password_credential = {name:?} but $CREDENTIALS_DIRECTORY is not set: add LoadCredential={name}:/path/to/password to the unit (systemd 247 or later), or use state.password_file"
                    ),
                });
            };
            Path::new(&dir).join(name)
        }
        (None, None) => return Ok(None),
    };
    // A credential systemd hands over is the service's alone; a password
    // file must be too.
    let bytes = hitosync_net::private_file::read(&path, false).map_err(|e| {
        use hitosync_net::private_file::PrivateFileError as E;
        let why = match e {
            E::Missing => "it does not exist".to_string(),
            E::Unreadable(io) => io.to_string(),
            E::Insecure { mode } => format!(
                "it is readable by group or others (mode {mode:o}): chmod 600 {}",
                path.display()
            ),
        };
        StateError::Database {
            target: redact_url(cfg.url.as_deref().unwrap_or_default()),
            detail: format!("cannot read the password file {}: {why}", path.display()),
        }
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let pw = text.trim_end_matches(['\r', '\n']);
    Ok(Some(SecretString::from(pw.to_string())))
}

/// rustls with the public roots (webpki-roots, as for HTTPS) plus the
/// site's own CA when it runs one.
fn tls_connector(
    ca_file: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read state.tls_ca_file {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| {
                format!(
                    "state.tls_ca_file {} holds no PEM certificate: {e}",
                    path.display()
                )
            })?;
            roots
                .add(cert)
                .map_err(|e| format!("state.tls_ca_file {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "state.tls_ca_file {} holds no PEM certificate",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
