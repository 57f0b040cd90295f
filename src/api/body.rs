//! Request and response bodies: bounded reading of small bodies, JSON parsing without
//! coercion, and the response body types (whole, or streamed from a channel).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, Incoming};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::errors::ApiError;

pub type Body = BoxBody<Bytes, io::Error>;

/// How much of a refused body is read and thrown away before answering (see `drain`).
const DRAIN_LIMIT: usize = 16 << 20;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

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

/// A response body fed from a channel by a producer task (streamed downloads, CSV).
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
}

impl ChannelBody {
    /// A body and the sender that feeds it; `depth` pieces may wait in between.
    pub fn channel(depth: usize) -> (mpsc::Sender<Result<Bytes, io::Error>>, Body) {
        let (tx, rx) = mpsc::channel(depth.max(1));
        (tx, ChannelBody { rx }.boxed())
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}
