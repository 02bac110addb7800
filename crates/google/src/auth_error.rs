//! Why no access token could be had, in the setup guide's terms.

use yup_oauth2::error::AuthErrorCode;

use hitosync_config::CALENDAR_SCOPE;

/// Why no access token could be had. The variants follow the setup guide's
/// steps, because each has a different fix in a different console.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "Google refused domain-wide delegation (unauthorized_client): in the Admin console, Security > API controls > Domain-wide delegation, authorize the service account's client ID with the scope {scope} (setup guide 2. API承認設定)"
    )]
    DelegationNotGranted { scope: String },
    #[error(
        "Google rejected the key's signature (invalid_grant: {detail}): the key was deleted or belongs to another service account; download a new P12 key (setup guide 1-③) and check google.service_account_email"
    )]
    KeyRejected { detail: String },
    #[error(
        "Google does not know the user to act as (invalid_grant: {detail}): google.organizer_email must be a real user with a calendar, not a group (setup guide 1-⑤)"
    )]
    SubjectRejected { detail: String },
    #[error(
        "Google rejected the token request's time (invalid_grant: {detail}): this machine's clock is off; enable NTP (timedatectl set-ntp true)"
    )]
    ClockSkew { detail: String },
    #[error(
        "Google does not know the service account (invalid_grant: {detail}): check google.service_account_email against the account in the Cloud console (setup guide 1-④)"
    )]
    UnknownServiceAccount { detail: String },
    /// The JWT's `aud` (the configured token endpoint) is not the endpoint
    /// that answered: a wrong `google.token_uri`, or a proxy in between.
    #[error(
        "the token endpoint rejected the JWT's audience (invalid_grant: {detail}): google.token_uri must be the URL of the endpoint that answers, https://oauth2.googleapis.com/token for Google (leave the key out to get it)"
    )]
    AudienceMismatch { detail: String },
    #[error("Google refused the token request ({code}: {detail})")]
    Refused { code: String, detail: String },
    #[error(
        "cannot reach the token endpoint {uri}: {detail} (check google.token_uri and the network)"
    )]
    Unreachable { uri: String, detail: String },
    #[error("the token request failed: {0}")]
    Other(String),
}

impl AuthError {
    /// Maps yup-oauth2's error into a step of the setup guide.
    ///
    /// `invalid_grant` covers several mistakes and Google tells them apart
    /// only in its description, so that is read word by word: "exp" as a
    /// word, never as a substring ("expected audience" is no clock matter).
    pub fn classify(e: &yup_oauth2::Error, token_uri: &str) -> AuthError {
        use yup_oauth2::Error as Y;
        match e {
            Y::AuthError(a) => {
                let detail = scrub(a.error_description.as_deref().unwrap_or_default());
                let lower = detail.to_ascii_lowercase();
                let words: Vec<&str> = lower
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                let has = |w: &str| words.contains(&w);
                let phrase = |p: &str| lower.contains(p);
                match &a.error {
                    AuthErrorCode::UnauthorizedClient => AuthError::DelegationNotGranted {
                        scope: CALENDAR_SCOPE.into(),
                    },
                    AuthErrorCode::InvalidGrant if has("audience") => {
                        AuthError::AudienceMismatch { detail }
                    }
                    AuthErrorCode::InvalidGrant if has("signature") => {
                        AuthError::KeyRejected { detail }
                    }
                    AuthErrorCode::InvalidGrant if has("email") || phrase("user id") => {
                        AuthError::SubjectRejected { detail }
                    }
                    AuthErrorCode::InvalidGrant
                        if has("timeframe") || has("iat") || has("exp") || phrase("clock") =>
                    {
                        AuthError::ClockSkew { detail }
                    }
                    AuthErrorCode::InvalidGrant if phrase("account not found") => {
                        AuthError::UnknownServiceAccount { detail }
                    }
                    code => AuthError::Refused {
                        code: code.as_str().to_string(),
                        detail,
                    },
                }
            }
            Y::HttpError(h) => AuthError::Unreachable {
                uri: token_uri.into(),
                detail: scrub(&hitosync_net::http::error_chain(h)),
            },
            Y::HttpClientError(h) => AuthError::Unreachable {
                uri: token_uri.into(),
                detail: scrub(&hitosync_net::http::error_chain(h)),
            },
            // JSON errors quote the server's answer: scrubbed like any
            // server text, in case it echoed the assertion.
            other => AuthError::Other(scrub(&other.to_string())),
        }
    }
}

/// Server text, without anything shaped like a credential (the token
/// endpoint may echo the signed JWT it was sent).
fn scrub(text: &str) -> String {
    hitosync_net::redact::scrub(text, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yup_errors_map_to_setup_steps() {
        let auth = |code: AuthErrorCode, desc: &str| {
            yup_oauth2::Error::AuthError(yup_oauth2::error::AuthError {
                error: code,
                error_description: Some(desc.into()),
                error_uri: None,
            })
        };
        let uri = "https://oauth2.googleapis.com/token";
        assert!(matches!(
            AuthError::classify(
                &auth(AuthErrorCode::UnauthorizedClient, "Client is unauthorized"),
                uri
            ),
            AuthError::DelegationNotGranted { .. }
        ));
        assert!(matches!(
            AuthError::classify(
                &auth(AuthErrorCode::InvalidGrant, "Invalid JWT Signature."),
                uri
            ),
            AuthError::KeyRejected { .. }
        ));
        assert!(matches!(
            AuthError::classify(
                &auth(AuthErrorCode::InvalidGrant, "Invalid email or User ID"),
                uri
            ),
            AuthError::SubjectRejected { .. }
        ));
        assert!(matches!(
            AuthError::classify(
                &auth(
                    AuthErrorCode::InvalidGrant,
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
                ),
                uri
            ),
            AuthError::ClockSkew { .. }
        ));
        assert!(
            AuthError::classify(&auth(AuthErrorCode::UnauthorizedClient, ""), uri)
                .to_string()
                .contains("2. API承認設定")
        );
        // "expected" holds "exp": still no clock matter
        let aud = AuthError::classify(
            &auth(
                AuthErrorCode::InvalidGrant,
                "Invalid JWT: Failed audience check. The audience in the JWT ('http://a/token') does not match the expected audience ('http://b/token').",
            ),
            uri,
        );
        assert!(matches!(aud, AuthError::AudienceMismatch { .. }), "{aud:?}");
        assert!(aud.to_string().contains("google.token_uri"), "{aud}");
        assert!(!aud.to_string().contains("clock"), "{aud}");
        // an echoed assertion does not survive
        let echoed = AuthError::classify(
            &auth(
                AuthErrorCode::InvalidRequest,
                "bad assertion eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLXBhcnQ",
            ),
            uri,
        );
        assert!(!echoed.to_string().contains("eyJpc3M"), "{echoed}");
    }
}
