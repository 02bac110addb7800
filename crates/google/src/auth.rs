//! Acting as the 予約元 organizer: the service account's key, domain-wide
//! delegation, and the access tokens that come from them.
//!
//! The setup guide hands over a P12 file (1-③), the service account's address
//! (1-④) and the organizer address (1-⑤). yup-oauth2 only understands Google's
//! JSON key format, so the P12's private key is unpacked here into the same
//! shape. Nothing in this module ever formats key material: the credential
//! types implement `Debug` by hand, and errors name files, never contents.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use google_calendar3::common::GetToken;
use secrecy::{ExposeSecret, SecretString};
use yup_oauth2::ServiceAccountKey;
use yup_oauth2::authenticator::Authenticator;

use hitosync_config::{CALENDAR_SCOPE, Config};

pub use super::auth_error::AuthError;
use hitosync_net::http::Connector;

/// What can be wrong with the key file. Each variant says which setup step
/// produces the file, so the admin knows whom to ask.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the key file {path} does not exist: download a P12 key for the service account (setup guide 1-③) and set google.p12_key_file"
    )]
    Missing { path: PathBuf },
    #[error("cannot read the key file {path}: {source} (check that hitosync's user may read it)")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the key file {path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`, or set google.allow_insecure_key_permissions = true to accept it"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error(
        "the key file {path} is not a PKCS#12 (.p12) file: choose \"P12\" when creating the key (setup guide 1-③ step 6), or set google.json_key_file for a JSON key"
    )]
    NotPkcs12 { path: PathBuf },
    #[error(
        "the key file {path} does not open with the configured password: Google's P12 keys use \"notasecret\"; set google.p12_password if the key was re-exported with another one"
    )]
    WrongPassword { path: PathBuf },
    #[error(
        "the key file {path} holds no private key: download a new P12 key for the service account (setup guide 1-③)"
    )]
    NoPrivateKey { path: PathBuf },
    #[error(
        "the private key in {path} is not an RSA key usable for RS256: download a new P12 key (setup guide 1-③)"
    )]
    NotRsa { path: PathBuf },
    #[error(
        "the JSON key file {path} is not a Google service account key ({reason}): download a new key (setup guide 1-③)"
    )]
    BadJson { path: PathBuf, reason: String },
}

/// The service account's signing key plus who it signs as. `Debug` shows
/// only the address: the key is a secret (SPEC invariant 7).
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    /// PKCS#8 PEM, the form yup-oauth2 reads.
    private_key_pem: SecretString,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_pem", &"[REDACTED]")
            .finish()
    }
}

impl ServiceAccount {
    /// Loads the key named by the config (P12 or JSON).
    pub fn from_config(config: &Config) -> Result<ServiceAccount, KeyError> {
        let g = &config.google;
        if let Some(path) = &g.json_key_file {
            let bytes = read_key_file(path, g.allow_insecure_key_permissions)?;
            return ServiceAccount::from_json(path, &bytes, &g.service_account_email);
        }
        // validated by Config: one of the two key files is set
        let Some(path) = &g.p12_key_file else {
            return Err(KeyError::Missing {
                path: PathBuf::from("(google.p12_key_file not set)"),
            });
        };
        let bytes = read_key_file(path, g.allow_insecure_key_permissions)?;
        let pkcs8 = p12_private_key(path, &bytes, config.p12_password())?;
        ServiceAccount::from_pkcs8(path, &pkcs8, &g.service_account_email)
    }

    /// From a PKCS#8 DER private key, checked to be an RSA key now rather
    /// than at the first token request.
    pub fn from_pkcs8(path: &Path, der: &[u8], email: &str) -> Result<ServiceAccount, KeyError> {
        ring::signature::RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::NotRsa {
            path: path.to_path_buf(),
        })?;
        Ok(ServiceAccount {
            client_email: email.to_string(),
            private_key_pem: SecretString::from(pem("PRIVATE KEY", der)),
        })
    }

    fn from_json(
        path: &Path,
        bytes: &[u8],
        configured_email: &str,
    ) -> Result<ServiceAccount, KeyError> {
        let bad = |reason: String| KeyError::BadJson {
            path: path.to_path_buf(),
            reason,
        };
        // Parsed into a Value, not ServiceAccountKey, so that a serde error
        // message can never quote the key.
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|_| bad("not valid JSON".into()))?;
        if v.get("type").and_then(|t| t.as_str()) != Some("service_account") {
            return Err(bad("\"type\" is not \"service_account\"".into()));
        }
        let pem_text = v
            .get("private_key")
            .and_then(|k| k.as_str())
            .ok_or_else(|| bad("no \"private_key\"".into()))?;
        let email = v
            .get("client_email")
            .and_then(|k| k.as_str())
            .unwrap_or(configured_email);
        let der = pem_body(pem_text).ok_or_else(|| bad("\"private_key\" is not PEM".into()))?;
        let mut sa = ServiceAccount::from_pkcs8(path, &der, email)?;
        // The config names the account the site means; the key file only
        // has to agree with it, which doctor checks.
        sa.client_email = configured_email.to_string();
        Ok(sa)
    }

    /// The key in the shape yup-oauth2 takes. Lives only as long as the
    /// authenticator is being built.
    fn to_yup_key(&self, token_uri: &str) -> ServiceAccountKey {
        ServiceAccountKey {
            key_type: Some("service_account".into()),
            project_id: None,
            private_key_id: None,
            private_key: self.private_key_pem.expose_secret().to_string(),
            client_email: self.client_email.clone(),
            client_id: None,
            auth_uri: None,
            token_uri: token_uri.to_string(),
            auth_provider_x509_cert_url: None,
            client_x509_cert_url: None,
        }
    }
}

fn read_key_file(path: &Path, allow_insecure: bool) -> Result<Vec<u8>, KeyError> {
    use hitosync_net::private_file::{self, PrivateFileError as E};
    let path_buf = path.to_path_buf();
    private_file::read(path, allow_insecure).map_err(|e| match e {
        E::Missing => KeyError::Missing { path: path_buf },
        E::Unreadable(source) => KeyError::Unreadable {
            path: path_buf,
            source,
        },
        E::Insecure { mode } => KeyError::InsecurePermissions {
            path: path_buf,
            mode,
        },
    })
}

/// The private key (PKCS#8 DER) of a Google-style P12 file: legacy
/// 3DES/RC2-40 encryption with a SHA-1 MAC, as Google writes them, or any
/// modern PBES2 file.
pub fn p12_private_key(path: &Path, bytes: &[u8], password: &str) -> Result<Vec<u8>, KeyError> {
    let store = open_p12(path, bytes, password)?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| KeyError::NoPrivateKey {
            path: path.to_path_buf(),
        })?;
    Ok(chain.key().as_der().to_vec())
}

/// The leaf certificate (DER) of a P12 file; Google keeps it to verify the
/// service account's signatures, and so does the emulator.
pub fn p12_certificate(path: &Path, bytes: &[u8], password: &str) -> Result<Vec<u8>, KeyError> {
    let store = open_p12(path, bytes, password)?;
    if let Some(cert) = store
        .private_key_chain()
        .and_then(|(_, chain)| chain.certs().first())
    {
        return Ok(cert.as_der().to_vec());
    }
    store
        .entries()
        .find_map(|(_, e)| match e {
            p12_keystore::KeyStoreEntry::Certificate(c) => Some(c.as_der().to_vec()),
            _ => None,
        })
        .ok_or_else(|| KeyError::NoPrivateKey {
            path: path.to_path_buf(),
        })
}

fn open_p12(path: &Path, bytes: &[u8], password: &str) -> Result<p12_keystore::KeyStore, KeyError> {
    use p12_keystore::error::Error as P;
    p12_keystore::KeyStore::from_pkcs12(bytes, password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| match e {
            // The MAC is keyed by the password, so a failed MAC (or, for
            // files without one, undecryptable bags) means a wrong password.
            P::MacError(_) | P::UnpadError | P::InvalidPrivateKey => KeyError::WrongPassword {
                path: path.to_path_buf(),
            },
            _ => KeyError::NotPkcs12 {
                path: path.to_path_buf(),
            },
        })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_body(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Hands out access tokens for the organizer.
///
/// It always asks for the configured scope, whatever the caller names:
/// google-calendar3 asks `events.list` for `calendar.events.owned.readonly`,
/// which a delegation of `auth/calendar` does not cover, so passing its
/// choice through would make every list fail with `unauthorized_client`.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Authenticator<Connector>>,
    token_uri: String,
    scope: String,
    /// Token exchanges seen (a token unlike the last one), for metrics.
    refreshes: Arc<AtomicU64>,
    last: Arc<parking_lot::Mutex<u64>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_uri", &self.token_uri)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An access token. `Debug` does not show it.
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

impl AccessToken {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0.expose_secret())
    }

    /// The token itself, only to scrub it out of a server's answer.
    pub fn secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl TokenSource {
    /// Builds the domain-wide-delegation authenticator: the service account
    /// signs a JWT whose `sub` is the organizer, so the tokens act as the
    /// organizer on the organizer's calendar.
    pub async fn new(
        account: &ServiceAccount,
        organizer: &str,
        token_uri: &str,
        connector: Connector,
    ) -> Result<TokenSource, AuthError> {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, String>(connector);
        let auth = yup_oauth2::ServiceAccountAuthenticator::with_client(
            account.to_yup_key(token_uri),
            yup_oauth2::CustomHyperClientBuilder::from(client),
        )
        .subject(organizer)
        .build()
        .await
        // The key was validated when loaded; this only fails on a broken
        // PEM, and io::Error here never quotes the key.
        .map_err(|e| AuthError::Other(format!("cannot use the service account key: {e}")))?;
        Ok(TokenSource {
            inner: Arc::new(auth),
            token_uri: token_uri.to_string(),
            scope: CALENDAR_SCOPE.to_string(),
            refreshes: Arc::new(AtomicU64::new(0)),
            last: Arc::new(parking_lot::Mutex::new(0)),
        })
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// Token exchanges so far (shared: a reloaded config keeps counting on).
    pub fn refreshes(&self) -> Arc<AtomicU64> {
        self.refreshes.clone()
    }

    /// Continues counting on `other`'s counter (after a config reload).
    pub fn share_counter(&mut self, other: &TokenSource) {
        self.refreshes = other.refreshes.clone();
    }

    /// A valid token, from yup-oauth2's cache or a fresh exchange.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let token = self
            .inner
            .token(&[self.scope.as_str()])
            .await
            .map_err(|e| AuthError::classify(&e, &self.token_uri))?;
        let text = token
            .token()
            .ok_or_else(|| AuthError::Other("the token endpoint sent no access_token".into()))?;
        // yup-oauth2 caches tokens; a token unlike the last is a new exchange.
        // Only a hash is kept, never the token.
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut h);
            h.finish()
        };
        {
            let mut last = self.last.lock();
            if *last != digest {
                *last = digest;
                self.refreshes.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(AccessToken(SecretString::from(text.to_string())))
    }
}

impl GetToken for TokenSource {
    fn get_token<'a>(
        &'a self,
        _scopes: &'a [&str],
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>,
                > + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            match self.token().await {
                Ok(t) => Ok(Some(t.0.expose_secret().to_string())),
                Err(e) => Err(e.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/google-legacy.p12");
    const CERT_ONLY: &[u8] = include_bytes!("../../../tests/fixtures/cert-only.p12");

    #[test]
    fn google_style_p12_opens_with_notasecret() {
        let der = p12_private_key(Path::new("k.p12"), FIXTURE, "notasecret").unwrap();
        let sa =
            ServiceAccount::from_pkcs8(Path::new("k.p12"), &der, "sa@p.iam.gserviceaccount.com")
                .unwrap();
        assert!(
            sa.private_key_pem
                .expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        let cert = p12_certificate(Path::new("k.p12"), FIXTURE, "notasecret").unwrap();
        assert!(x509_parser::parse_x509_certificate(&cert).is_ok());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let der = p12_private_key(Path::new("k.p12"), FIXTURE, "notasecret").unwrap();
        let sa =
            ServiceAccount::from_pkcs8(Path::new("k.p12"), &der, "sa@p.iam.gserviceaccount.com")
                .unwrap();
        let shown = format!("{sa:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("REDACTED"));
        let token = AccessToken(SecretString::from("ya29.secret-token".to_string()));
        assert!(!format!("{token:?}").contains("ya29"));
    }

    #[test]
    fn distinct_errors_for_each_bad_file() {
        let p = Path::new("k.p12");
        assert!(matches!(
            p12_private_key(p, FIXTURE, "wrong").unwrap_err(),
            KeyError::WrongPassword { .. }
        ));
        assert!(matches!(
            p12_private_key(p, b"-----BEGIN PRIVATE KEY-----", "notasecret").unwrap_err(),
            KeyError::NotPkcs12 { .. }
        ));
        assert!(matches!(
            p12_private_key(p, CERT_ONLY, "notasecret").unwrap_err(),
            KeyError::NoPrivateKey { .. }
        ));
    }

    #[test]
    fn json_key_is_accepted() {
        let der = p12_private_key(Path::new("k.p12"), FIXTURE, "notasecret").unwrap();
        let json = serde_json::json!({
            "type": "service_account",
            "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": pem("PRIVATE KEY", &der),
        });
        let sa = ServiceAccount::from_json(
            Path::new("k.json"),
            json.to_string().as_bytes(),
            "sa@p.iam.gserviceaccount.com",
        )
        .unwrap();
        assert_eq!(sa.client_email, "sa@p.iam.gserviceaccount.com");
        let err = ServiceAccount::from_json(Path::new("k.json"), b"{\"type\":\"user\"}", "x@y.z")
            .unwrap_err();
        assert!(matches!(err, KeyError::BadJson { .. }));
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_key_is_refused_unless_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.p12");
        std::fs::write(&path, FIXTURE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_key_file(&path, false).unwrap_err(),
            KeyError::InsecurePermissions { mode: 0o640, .. }
        ));
        assert!(read_key_file(&path, true).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_key_file(&path, false).is_ok());
        assert!(matches!(
            read_key_file(&dir.path().join("nope.p12"), false).unwrap_err(),
            KeyError::Missing { .. }
        ));
    }
}
