//! The API's side of bodies: bounded reading of request bodies (timeouts, 413), JSON parsing
//! without coercion, and JSON and status-only responses.
//!
//! Not here: the body types themselves, which the HTTP client shares (`crate::body`).

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::errors::ApiError;
pub use crate::body::{Body, ChannelBody, empty, full};

/// How much of a refused body is read and thrown away before answering (see `drain`).
const DRAIN_LIMIT: usize = 16 << 20;

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn status_only(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = status;
    resp
}

/// Reads the next piece of a request body, failing after `timeout` of silence.
pub async fn next_chunk(body: &mut Incoming, timeout: Duration) -> Result<Option<Bytes>, ApiError> {
    loop {
        let frame = tokio::time::timeout(timeout, body.frame())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body stalled",
                )
            })?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => {
                return Err(ApiError::bad_request(
                    "body_read",
                    format!("cannot read the request body: {e}"),
                ));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads and throws away up to `DRAIN_LIMIT` more bytes of a refused body, so that the
/// client, which may still be sending, can read the error answer instead of meeting a reset.
pub async fn drain(body: &mut Incoming, timeout: Duration) {
    let mut drained = 0usize;
    while drained <= DRAIN_LIMIT {
        match next_chunk(body, timeout).await {
            Ok(Some(c)) => drained += c.len(),
            _ => break,
        }
    }
}

/// Reads a whole body of at most `limit` bytes; over it → 413 `body_too_large`.
pub async fn read_limited(
    mut body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = next_chunk(&mut body, timeout).await? {
        if buf.len() + chunk.len() > limit {
            drain(&mut body, timeout).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than the limit of {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Parses JSON whatever the Content-Type says; type mismatches are 400, never coerced.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}
