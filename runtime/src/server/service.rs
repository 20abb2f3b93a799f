//! The warp service as hyper sees it: each request gets the client address and a
//! timed body; its response body tells the connection when the response is done;
//! a request whose body timed out is answered 408 whatever the handler said.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use serde_json::json;
use warp::http::{HeaderValue, Request, Response, StatusCode, header};

use super::body::TimedBody;
use super::state::ConnState;

/// The peer of the connection a request came on; read with [`super::client_addr`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

pub struct Svc<S> {
    inner: S,
    state: Arc<ConnState>,
    addr: ClientAddr,
}

impl<S> Svc<S> {
    pub fn new(inner: S, state: Arc<ConnState>, addr: SocketAddr) -> Svc<S> {
        Svc {
            inner,
            state,
            addr: ClientAddr(addr),
        }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Svc<S>
where
    S: tower_service::Service<Request<TimedBody>, Response = Response<B>, Error = Infallible>
        + Clone,
    B: Body<Data = Bytes> + From<Bytes> + Unpin,
{
    type Response = Response<DoneBody<B>>;
    type Error = Infallible;
    type Future = SvcFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.state.on_request();
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(self.addr);
        let req = Request::from_parts(parts, TimedBody::new(body, self.state.clone()));
        // warp's service is ready at all times and cheap to clone (an `Arc`).
        let mut inner = self.inner.clone();
        SvcFuture {
            inner: inner.call(req),
            state: Some(self.state.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct SvcFuture<F> {
        #[pin]
        inner: F,
        state: Option<Arc<ConnState>>,
    }
}

impl<F, B> Future for SvcFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
    B: Body<Data = Bytes> + From<Bytes> + Unpin,
{
    type Output = Result<Response<DoneBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(resp) = ready!(this.inner.poll(cx));
        let Some(state) = this.state.take() else {
            // Polled again after it answered: a contract breach by the caller.
            return Poll::Pending;
        };
        let resp = if state.take_body_timeout() {
            body_timeout_response(&state)
        } else {
            resp
        };
        Poll::Ready(Ok(resp.map(|inner| DoneBody { inner, state })))
    }
}

fn body_timeout_response<B: From<Bytes>>(state: &ConnState) -> Response<B> {
    let l = state.shared.limits.body;
    let error = if l.min_bytes_per_s > 0 {
        format!(
            "请求体接收超时: 须在 {} 秒内发送完毕, 且每 {} 毫秒至少 {} 字节; 连接已关闭",
            l.total.as_secs(),
            l.window.as_millis(),
            l.bytes_per_window()
        )
    } else {
        format!(
            "请求体接收超时: 须在 {} 秒内发送完毕; 连接已关闭",
            l.total.as_secs()
        )
    };
    let text = json!({"success": false, "error": error}).to_string();
    let mut r = Response::new(B::from(Bytes::from(text)));
    *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A response body that tells the connection when it was sent (or dropped).
pub struct DoneBody<B> {
    inner: B,
    state: Arc<ConnState>,
}

impl<B> Drop for DoneBody<B> {
    fn drop(&mut self) {
        self.state.on_response_end();
    }
}

impl<B: Body + Unpin> Body for DoneBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
