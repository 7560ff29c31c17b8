//! The API's errors: each is an HTTP status and a JSON body with a stable
//! `code` a program can match on and a `message` a person can read
//! (docs/HTTP.md, "Errors").

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `match` is not a valid regex, or compiles too large.
    #[error("match: {0}")]
    BadRegex(String),
    /// A query parameter or body is malformed or unknown.
    #[error("{0}")]
    BadRequest(String),
    /// The request is larger than `http.max_request_bytes`.
    #[error("the request exceeds http.max_request_bytes ({limit} bytes)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// No such route.
    #[error("no such endpoint: {method} {path} (see docs/HTTP.md)")]
    NotFound {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// The caller may not register (uid and gid not allowed).
    #[error("{0}")]
    NotAllowed(String),
    /// The URI is registered on this node by someone else.
    #[error("{0}")]
    Conflict(String),
    /// No such lease.
    #[error("{0}")]
    NoLease(String),
    /// The lease is another user's.
    #[error("{0}")]
    NotOwner(String),
    /// `http.max_leases` are held.
    #[error("{0}")]
    TooManyLeases(String),
    /// The node could not answer (it is stopping).
    #[error("the node cannot answer now: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRegex(_) => "bad_regex",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::NotFound { .. } => "not_found",
            ApiError::NotAllowed(_) => "not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::NoLease(_) => "no_lease",
            ApiError::NotOwner(_) => "not_owner",
            ApiError::TooManyLeases(_) => "too_many_leases",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRegex(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } | ApiError::NoLease(_) => StatusCode::NOT_FOUND,
            ApiError::NotAllowed(_) | ApiError::NotOwner(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyLeases(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(json!({
            "error": { "code": self.code(), "message": self.to_string() }
        }))
    }
}
