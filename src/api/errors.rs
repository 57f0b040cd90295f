//! The one error type of the HTTP layer and the one error body every failure answers with:
//! `{"timestamp","status","error","message","path","trace"}` (plus `error_description` and the
//! RFC 6749 code as `error` on `/oauth/*`). Store errors are mapped to statuses here and
//! nowhere else.

use http::StatusCode;

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Short machine code, `[a-z0-9_]`, ≤ 64 characters.
    pub trace: &'static str,
    pub message: String,
    /// RFC 6749 error code for `/oauth/*` answers.
    pub oauth: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, trace: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            trace,
            message: message.into(),
            oauth: None,
            retry_after: None,
        }
    }

    pub fn bad_request(trace: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, trace, message)
    }

    pub fn not_found(trace: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, trace, message)
    }

    pub fn forbidden(trace: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, trace, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn conflict(trace: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, trace, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn oauth(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            oauth: Some(code),
            ..Self::new(status, code, message)
        }
    }

    /// The JSON body for a request to `path` (raw path, no query).
    pub fn body(&self, path: &str) -> serde_json::Value {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let mut body = serde_json::json!({
            "timestamp": crate::ids::now_ms(),
            "status": self.status.as_u16(),
            "error": self.oauth.unwrap_or(reason),
            "message": self.message,
            "path": path,
            "trace": self.trace,
        });
        if self.oauth.is_some() {
            body["error_description"] = serde_json::Value::String(self.message.clone());
        }
        body
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => ApiError::bad_request(m.trace, m.to_string()),
            StoreError::NotFound { what, trace } => {
                ApiError::not_found(trace, format!("{what} not found"))
            }
            StoreError::Conflict { trace, message } => ApiError::conflict(trace, message),
            StoreError::Forbidden { trace, message } => ApiError::forbidden(trace, message),
            StoreError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "binary_too_large",
                format!("the binary is larger than the limit of {limit} bytes"),
            ),
            StoreError::Empty => ApiError::bad_request("empty_binary", "the binary is empty"),
            StoreError::Full { .. } => {
                tracing::warn!(error = %e, "upload refused: disk full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the server's disk is full; free space or raise its capacity, then retry",
                )
            }
            StoreError::Reopening => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_recovering",
                    "storage is recovering from an I/O error; retry shortly",
                );
                e.retry_after = Some(2);
                e
            }
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            ),
            other @ (StoreError::AlreadyOpen(_)
            | StoreError::Corrupt(_)
            | StoreError::Db(_)
            | StoreError::TooNew { .. }) => {
                tracing::error!(error = %other, "storage failure");
                ApiError::internal("internal storage error; see the server log")
            }
        }
    }
}

impl From<crate::store::SliceError> for ApiError {
    fn from(e: crate::store::SliceError) -> Self {
        match e {
            crate::store::SliceError::Range(r) => ApiError::bad_request("bad_range", r.to_string()),
            crate::store::SliceError::Store(s) => s.into(),
        }
    }
}
