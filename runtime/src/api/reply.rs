//! The seed's envelope: `{"success": ..., "message"?, "data"?, "error"?}`.

use std::fmt::Display;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use warp::http::{StatusCode, header};

pub type Resp = warp::reply::Response;

/// The envelope of the `/api` answers (seed 001): `success: true` with `data`
/// and/or `message`. Each operation's document names the type of its `data`
/// (`Envelope_<type>`); failures are [`Failure`]. A few endpoints of the seed
/// add fields beside these (`script_id`, `registrations`, `result`, ...); their
/// answers have types of their own in `answers.rs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = warp::reply::Response::new(bytes.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn envelope(status: StatusCode, e: Envelope<Value>) -> Resp {
    json_response(status, &e)
}

pub fn ok_data(data: Value) -> Resp {
    envelope(
        StatusCode::OK,
        Envelope {
            success: true,
            message: None,
            data: Some(data),
            error: None,
        },
    )
}

pub fn ok_message(message: impl Into<String>, data: Option<Value>) -> Resp {
    envelope(
        StatusCode::OK,
        Envelope {
            success: true,
            message: Some(message.into()),
            data,
            error: None,
        },
    )
}

/// The answer of a request that failed: `success: false`, `error` (a message a
/// person can act on) and, for some errors, `data` with details (which script
/// holds a path, the line of a syntax error, the current version of a file).
/// Its own type, so that the document shows clients what an error status
/// carries; the fields are in the order of [`Envelope`], so the bytes are those
/// an `Envelope` with `success: false` would give.
#[derive(Debug, Serialize, ToSchema)]
pub struct Failure {
    /// Always false.
    pub success: bool,
    /// Details of the error, for some errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    pub error: String,
}

pub fn fail(status: StatusCode, error: impl Display) -> Resp {
    fail_inner(status, error, None)
}

pub fn fail_with(status: StatusCode, error: impl Display, data: Value) -> Resp {
    fail_inner(status, error, Some(data))
}

fn fail_inner(status: StatusCode, error: impl Display, data: Option<Value>) -> Resp {
    let f = Failure {
        success: false,
        data,
        error: error.to_string(),
    };
    json_response(status, &f)
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub data: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Display) -> Self {
        ApiError {
            status,
            message: message.to_string(),
            data: None,
        }
    }

    pub fn bad_request(message: impl Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn into_response(self) -> Resp {
        match self.data {
            Some(d) => fail_with(self.status, self.message, d),
            None => fail(self.status, self.message),
        }
    }
}

impl From<vwed_store::StoreError> for ApiError {
    fn from(e: vwed_store::StoreError) -> Self {
        use vwed_store::StoreError as E;
        let status = match &e {
            E::ProjectNotFound(_) | E::FileNotFound(_) => StatusCode::NOT_FOUND,
            E::ProjectExists(_) | E::FileExists(_) | E::Running(_) | E::VersionConflict { .. } => {
                StatusCode::CONFLICT
            }
            E::Path(_) | E::OutsideProject(_) | E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Db(_) | E::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e)
    }
}

impl From<vwed_engine::analyzer::AnalyzerError> for ApiError {
    fn from(e: vwed_engine::analyzer::AnalyzerError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e)
    }
}

/// Handlers return `Result<Resp, ApiError>`; this folds both into a response.
pub fn finish(r: Result<Resp, ApiError>) -> Resp {
    r.unwrap_or_else(ApiError::into_response)
}

/// Runs blocking store work off the executor threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, vwed_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    off_thread(f).await
}

/// Runs blocking work off the executor threads; its error becomes the answer.
pub async fn off_thread<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}
