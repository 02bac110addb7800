//! Google's OAuth token endpoint (the JWT-bearer grant with domain-wide
//! delegation, as the setup guide configures it) and the check of the
//! bearer token every Calendar call carries.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::state::{GoogleEmulator, Json, Principal, State};

/// What the token endpoint knows: the service account, its public key, the
/// Workspace users, and the Admin-console switches of the setup guide.
#[derive(Debug, Clone)]
pub struct AuthSetup {
    pub service_account: String,
    /// PKCS#1 RSAPublicKey DER, from the P12's certificate.
    pub public_key: Vec<u8>,
    /// Users that exist in the Workspace (and so may be impersonated).
    pub users: BTreeSet<String>,
    /// Domain-wide delegation (setup guide 2.): the scopes granted to the
    /// service account's client ID, or `None` when it is not registered.
    pub delegated_scopes: Option<BTreeSet<String>>,
    /// Setup guide 1-②: the Calendar API is enabled in the project.
    pub api_enabled: bool,
    /// Added to this machine's clock when checking `iat`/`exp`, to act out a
    /// client whose clock is wrong.
    pub clock_skew_secs: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Grant {
    pub(super) subject: Option<String>,
    pub(super) expires: Instant,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl GoogleEmulator {
    // -----------------------------------------------------------------

    /// `POST /token` with a JWT-bearer grant. `audience` is this endpoint's
    /// own URL, which the JWT's `aud` must name.
    pub fn token(
        &self,
        grant_type: &str,
        assertion: &str,
        audience: &str,
    ) -> Result<Json, ApiError> {
        let mut st = self.state.lock();
        *st.counters.entry("token".into()).or_default() += 1;
        if grant_type != JWT_BEARER {
            return Err(ApiError::oauth(
                400,
                "unsupported_grant_type",
                "Invalid grant_type: ",
            ));
        }
        let claims = verify_jwt(assertion, &st.auth.public_key)?;
        let claim_str = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let iss = claim_str("iss").unwrap_or_default();
        if iss != st.auth.service_account {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                "Invalid grant: account not found",
            ));
        }
        if claims.get("__bad_signature").is_some() {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                "Invalid JWT Signature.",
            ));
        }
        let aud = claim_str("aud").unwrap_or_default();
        if aud != audience {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                &format!(
                    "Invalid JWT: Failed audience check. The audience in the JWT ('{aud}') does not match the expected audience ('{audience}')."
                ),
            ));
        }
        let now = Utc::now().timestamp() + st.auth.clock_skew_secs;
        let iat = claims.get("iat").and_then(|v| v.as_i64()).unwrap_or(0);
        let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
        // Google allows a little skew, and at most an hour of validity.
        if exp <= now || iat > now + 300 || exp - iat > 3600 || exp < iat {
            return Err(ApiError::oauth(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            ));
        }
        let scopes: BTreeSet<String> = claim_str("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if scopes.is_empty() {
            return Err(ApiError::oauth(
                400,
                "invalid_scope",
                "Empty or missing scope not allowed.",
            ));
        }
        let subject = claim_str("sub");
        if let Some(sub) = &subject {
            let sub = sub.to_ascii_lowercase();
            if !st.auth.users.contains(&sub) {
                // Groups exist but have no calendar of their own: Google
                // answers them like unknown users.
                return Err(ApiError::oauth(
                    400,
                    "invalid_grant",
                    "Invalid email or User ID",
                ));
            }
            let granted = st.auth.delegated_scopes.as_ref();
            if granted.is_none_or(|g| !scopes.is_subset(g)) {
                return Err(ApiError::oauth(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
                ));
            }
        }
        let token = format!("ya29.emu-{}", random_token());
        st.grants.insert(
            token.clone(),
            Grant {
                subject: subject.map(|s| s.to_ascii_lowercase()),
                expires: Instant::now() + Duration::from_secs(3599),
            },
        );
        Ok(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
    }

    /// Changes the Admin/Cloud-console switches (delegation, API enabled,
    /// clock skew) in place.
    pub fn with_auth<R>(&self, f: impl FnOnce(&mut AuthSetup) -> R) -> R {
        let mut st = self.state.lock();
        let r = f(&mut st.auth);
        let users: Vec<String> = st.auth.users.iter().cloned().collect();
        for u in users {
            st.ensure_primary(&u);
        }
        r
    }

    /// An access token for `subject` without the OAuth exchange, for callers
    /// in the same process (property tests) that still go through `begin`.
    pub fn issue_token(&self, subject: &str) -> String {
        let token = format!("ya29.inproc-{}", random_token());
        self.state.lock().grants.insert(
            token.clone(),
            Grant {
                subject: Some(subject.to_ascii_lowercase()),
                expires: Instant::now() + Duration::from_secs(86_400),
            },
        );
        token
    }

    /// Forgets the issued access tokens, as if they all expired.
    pub fn expire_access_tokens(&self) {
        self.state.lock().grants.clear();
    }
}

impl State {
    /// The caller behind a bearer token: `401` as Google answers a missing
    /// or unknown/expired token.
    pub(super) fn authenticate(&self, bearer: Option<&str>) -> Result<Principal, ApiError> {
        let Some(token) = bearer else {
            return Err(ApiError {
                status: 401,
                body: json!({"error": {
                    "code": 401,
                    "message": "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                    "errors": [{"message": "Login Required.", "domain": "global", "reason": "required", "location": "Authorization", "locationType": "header"}],
                    "status": "UNAUTHENTICATED"
                }}),
                retry_after: None,
                disconnect: false,
            });
        };
        match self.grants.get(token) {
            Some(g) if g.expires > Instant::now() => Ok(Principal {
                subject: g.subject.clone(),
            }),
            _ => Err(ApiError::google(
                401,
                "global",
                "authError",
                "Invalid Credentials",
            )),
        }
    }
}

pub(super) fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url with or without padding, as JWTs are seen in the wild.
fn b64url(s: &str) -> Option<Vec<u8>> {
    let trimmed = s.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
}

/// Checks an RS256 JWT and returns its claims. A bad signature is reported
/// after the issuer check (Google names an unknown account first), so it is
/// flagged in the claims rather than returned at once.
fn verify_jwt(jwt: &str, public_key: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let malformed = || ApiError::oauth(400, "invalid_grant", "Invalid JWT: malformed assertion.");
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header: Value =
        serde_json::from_slice(&b64url(h).ok_or_else(malformed)?).map_err(|_| malformed())?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err(ApiError::oauth(
            400,
            "invalid_grant",
            "Invalid JWT: unsupported algorithm.",
        ));
    }
    let claims: Value =
        serde_json::from_slice(&b64url(c).ok_or_else(malformed)?).map_err(|_| malformed())?;
    let Value::Object(mut claims) = claims else {
        return Err(malformed());
    };
    let signature = b64url(s).ok_or_else(malformed)?;
    let signed = &jwt[..h.len() + 1 + c.len()];
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    );
    if key.verify(signed.as_bytes(), &signature).is_err() {
        claims.insert("__bad_signature".into(), json!(true));
    }
    Ok(claims)
}

/// The RSA public key (PKCS#1 DER) inside an X.509 certificate.
pub fn public_key_of_certificate(cert_der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}
