//! Google's error answers, in the envelope the Calendar API uses
//! ("Handle API errors": `{"error": {"errors": [{domain, reason, message}],
//! "code", "message"}}`), and the OAuth endpoint's flat shape.

use serde_json::{Value, json};

/// An error answer: status plus Google's JSON body, or no answer at all.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
    /// The client gets no answer: the HTTP layer closes the connection. Set
    /// only by an injected fault; `status` and `body` are then meaningless.
    pub disconnect: bool,
}

impl ApiError {
    /// Google's error envelope.
    pub fn google(status: u16, domain: &str, reason: &str, message: &str) -> ApiError {
        ApiError {
            status,
            body: json!({"error": {
                "errors": [{"domain": domain, "reason": reason, "message": message}],
                "code": status,
                "message": message,
            }}),
            retry_after: None,
            disconnect: false,
        }
    }

    /// The OAuth endpoint's flat error shape.
    pub fn oauth(status: u16, error: &str, description: &str) -> ApiError {
        ApiError {
            status,
            body: json!({"error": error, "error_description": description}),
            retry_after: None,
            disconnect: false,
        }
    }

    /// No answer: the connection is closed.
    pub fn dropped() -> ApiError {
        ApiError {
            disconnect: true,
            ..ApiError::google(0, "global", "disconnected", "no answer")
        }
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::google(404, "global", "notFound", "Not Found")
    }

    /// `400 invalid`: a value Google does not accept. The reference
    /// documents the status and reason, not the wording of each message;
    /// messages here follow what Google is seen to answer where known.
    pub(crate) fn bad(message: &str) -> ApiError {
        ApiError::google(400, "global", "invalid", message)
    }

    /// `400` with one of the Calendar domain's own reasons.
    pub(crate) fn bad_reason(reason: &str, message: &str) -> ApiError {
        ApiError::google(400, "calendar", reason, message)
    }

    /// `400 required`: a field that must be present is missing.
    pub(crate) fn required(message: &str) -> ApiError {
        ApiError::google(400, "global", "required", message)
    }

    /// A query parameter outside its documented values: the form Google's
    /// front end answers for every enum parameter.
    pub(crate) fn invalid_parameter(name: &str, value: &str, pattern: &str) -> ApiError {
        let message = format!(
            "Invalid value '{value}'. Values must match the following regular expression: '{pattern}'"
        );
        let mut e = ApiError::google(400, "global", "invalidParameter", &message);
        e.body["error"]["errors"][0]["locationType"] = json!("parameter");
        e.body["error"]["errors"][0]["location"] = json!(name);
        e
    }

    /// A guest's copy: "Shared properties can only be changed by the
    /// organizer of the event." (`403 forbiddenForNonOrganizer`, domain
    /// `calendar`, as Google answers it.)
    pub(crate) fn forbidden_for_non_organizer() -> ApiError {
        ApiError::google(
            403,
            "calendar",
            "forbiddenForNonOrganizer",
            "Shared properties can only be changed by the organizer of the event.",
        )
    }

    /// "Handle API errors", 403 "Calendar usage limits exceeded": the
    /// per-user limits of Calendar itself (here: invitations to external
    /// guests), not the API's request quota.
    pub(crate) fn quota_exceeded() -> ApiError {
        ApiError::google(
            403,
            "usageLimits",
            "quotaExceeded",
            "Calendar usage limits exceeded.",
        )
    }

    /// "Handle API errors", 410 Gone: the sync token expired.
    pub(crate) fn full_sync_required() -> ApiError {
        ApiError::google(
            410,
            "global",
            "fullSyncRequired",
            "Sync token is no longer valid, a full sync is required.",
        )
    }

    pub(crate) fn duplicate() -> ApiError {
        ApiError::google(
            409,
            "global",
            "duplicate",
            "The requested identifier already exists.",
        )
    }

    pub(crate) fn deleted() -> ApiError {
        ApiError::google(410, "global", "deleted", "Resource has been deleted")
    }

    pub(crate) fn precondition_failed() -> ApiError {
        ApiError::google(412, "global", "conditionNotMet", "Precondition Failed")
    }
}
