//! The seed's envelope: `{"success": ..., "message"?, "data"?, "error"?}`.

use std::fmt::Display;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use warp::http::{StatusCode, header};

pub type Resp = warp::reply::Response;

/// The envelope of the `/api` answers (seed 001). A success has `success: true`
/// and `data` and/or `message`; a failure has `success: false`, `error` (a
/// message a person can act on) and sometimes `data` with details. Some
/// endpoints of the seed add fields beside these (e.g. `script_id`,
/// `registrations`, `result`, `execution_time_ms`); their descriptions say so.
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

pub fn fail(status: StatusCode, error: impl Display) -> Resp {
    envelope(
        status,
        Envelope {
            success: false,
            message: None,
            data: None,
            error: Some(error.to_string()),
        },
    )
}

pub fn fail_with(status: StatusCode, error: impl Display, data: Value) -> Resp {
    envelope(
        status,
        Envelope {
            success: false,
            message: None,
            data: Some(data),
            error: Some(error.to_string()),
        },
    )
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

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
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

impl From<crate::analyzer::AnalyzerError> for ApiError {
    fn from(e: crate::analyzer::AnalyzerError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e)
    }
}

/// Handlers return `Result<Resp, ApiError>`; this folds both into a response.
pub fn finish(r: Result<Resp, ApiError>) -> Resp {
    r.unwrap_or_else(ApiError::into_response)
}

/// Runs blocking store work off the executor threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}
