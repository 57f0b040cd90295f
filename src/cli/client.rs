//! The admin CLI's one error type, and what it makes of the HTTP client's errors.
//!
//! Lives here: [`CliError`] (what went wrong, one line, and the documented exit code it
//! maps to), the mapping of API error answers to messages and exit codes ([`api_error`], in
//! one place) and of every other [`HttpError`], and [`record_mut`]. Not here: the HTTPS
//! transport itself (`client/http.rs`), where the URL, CA and token come from
//! (`session.rs`), what the commands send (one file per noun) and how results are printed
//! (`output.rs`).

use std::fmt;
use std::process::ExitCode;

use http::StatusCode;
use serde_json::Value;

use crate::client::http::HttpError;

/// The exit codes of the admin commands (docs/cli.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything else (server unreachable, bad input refused by the server, I/O).
    Failure,
    /// 2: the command line itself is wrong (clap reports its own usage errors with 2 too).
    Usage,
    /// 3: the named record does not exist.
    NotFound,
    /// 4: the record exists already or is in use.
    Conflict,
    /// 5: not logged in, token expired or revoked, or not allowed.
    Auth,
}

/// The one error of the CLI layer: a one-line message and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub kind: Kind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn fail(message: impl Into<String>) -> Self {
        Self::new(Kind::Failure, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, message)
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(Kind::Auth, message)
    }

    /// Prefixes the message with what was being done (`create image x 1.0: ...`).
    pub fn context(mut self, what: &str) -> Self {
        if !what.is_empty() {
            self.message = format!("{what}: {}", self.message);
        }
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self.kind {
            Kind::Failure => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::Conflict => 4,
            Kind::Auth => 5,
        })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::fail(message)
    }
}

/// The error for an API answer that is not a success: the API's message and trace passed
/// through, with what to do for the statuses a person can act on.
pub fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let message = text("error_description")
        .or_else(|| text("message"))
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unexpected answer")
                .to_string()
        });
    let trace = text("trace").or_else(|| text("error"));
    let detail = match trace {
        Some(t) if !t.is_empty() => format!("{message} ({t})"),
        _ => message,
    };
    match status.as_u16() {
        401 => CliError::auth(format!(
            "{detail}; log in again with `otad login` (or set OTAD_TOKEN)"
        )),
        403 => CliError::auth(format!(
            "{detail}; this login may not do that (an appliance admin can, or name your own partner)"
        )),
        404 => CliError::not_found(detail),
        409 => CliError::conflict(detail),
        code => CliError::fail(format!("server answered {code}: {detail}")),
    }
}

impl From<HttpError> for CliError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Usage(message) => Self::usage(message),
            HttpError::Failed(message) => Self::fail(message),
            HttpError::Status { status, body } => api_error(status, &body),
        }
    }
}

/// [`CliError::context`] on an HTTP client error, so a command says what it was doing the
/// same way whichever layer failed.
pub trait Context {
    fn context(self, what: &str) -> CliError;
}

impl Context for HttpError {
    fn context(self, what: &str) -> CliError {
        CliError::from(self).context(what)
    }
}

/// A server answer that must be a record (a JSON object), to set fields on: an answer of
/// another shape is an error, not a panic.
pub fn record_mut(answer: &mut Value) -> Result<&mut serde_json::Map<String, Value>> {
    answer
        .as_object_mut()
        .ok_or_else(|| CliError::fail("the server's answer is not a JSON object"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::http::ServerUrl;

    #[test]
    fn urls() {
        let u = ServerUrl::parse("https://otad.example:8443/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("otad.example", 8443, "")
        );
        let u = ServerUrl::parse("https://[::1]:9/x/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("::1", 9, "/x")
        );
        assert_eq!(u.display(), "https://[::1]:9/x");
        assert_eq!(ServerUrl::parse("https://h").unwrap().port, 443);
        for bad in [
            "http://h:1",
            "h:1",
            "https://:1",
            "https://h:x",
            "https://[::1",
        ] {
            assert_eq!(
                CliError::from(ServerUrl::parse(bad).unwrap_err()).kind,
                Kind::Usage,
                "{bad}"
            );
        }
    }

    #[test]
    fn api_errors_map_to_exit_kinds() {
        let body =
            br#"{"status":409,"message":"version 1.0 of x exists","trace":"version_exists"}"#;
        let e = api_error(StatusCode::CONFLICT, body);
        assert_eq!(e.kind, Kind::Conflict);
        assert_eq!(e.message, "version 1.0 of x exists (version_exists)");
        let e = api_error(StatusCode::UNAUTHORIZED, b"{}");
        assert_eq!(e.kind, Kind::Auth);
        assert!(e.message.contains("otad login"), "{}", e.message);
        assert_eq!(api_error(StatusCode::NOT_FOUND, b"").kind, Kind::NotFound);
        let e = api_error(StatusCode::BAD_REQUEST, b"not json");
        assert_eq!(e.kind, Kind::Failure);
        assert!(e.message.contains("400"), "{}", e.message);
    }
}
