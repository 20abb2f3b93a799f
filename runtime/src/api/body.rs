//! Request bodies: bounded in size whether or not the client sent a length, and
//! parsed with messages a person can act on.

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::http::StatusCode;

use super::reply::ApiError;

#[derive(Debug)]
pub struct TooLarge(pub u64);
impl warp::reject::Reject for TooLarge {}

#[derive(Debug)]
pub struct BodyError(pub String);
impl warp::reject::Reject for BodyError {}

/// The whole body, refused with 413 past `limit` bytes.
pub fn limited(limit: u64) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |len: Option<u64>, stream| async move {
            if len.is_some_and(|l| l > limit) {
                // Read (and drop) a bounded amount first: a server that answers while
                // the client is still sending resets the connection, and the client
                // sees a broken pipe instead of the 413.
                if len.is_some_and(|l| l <= DRAIN_MAX) {
                    drain(stream, DRAIN_MAX).await;
                }
                return Err(warp::reject::custom(TooLarge(limit)));
            }
            collect(stream, limit).await
        })
}

/// Most of an oversized body that is read and dropped so the 413 arrives intact.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

async fn drain<S, B>(stream: S, max: u64)
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut seen = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.remaining() as u64;
        if seen > max {
            break;
        }
    }
}

async fn collect<S, B>(stream: S, limit: u64) -> Result<Bytes, warp::Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| warp::reject::custom(BodyError(e.to_string())))?;
        if buf.len() as u64 + chunk.remaining() as u64 > limit {
            // As above: let the client finish sending, within bounds.
            drain(stream.as_mut(), DRAIN_MAX).await;
            return Err(warp::reject::custom(TooLarge(limit)));
        }
        while chunk.has_remaining() {
            let c = chunk.chunk();
            buf.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

/// Parses a JSON body into `T`; an empty body counts as `{}`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let kind = if e.is_data() {
            "请求参数错误"
        } else {
            "请求体不是合法的JSON"
        };
        ApiError::new(StatusCode::BAD_REQUEST, format!("{kind}: {e}"))
    })
}
