//! The seed's envelope: `{"success": ..., "message"?, "data"?, "error"?}`.

use std::fmt::Display;

use serde_json::{Value, json};
use warp::http::{StatusCode, header};

pub type Resp = warp::reply::Response;

pub fn json_response(status: StatusCode, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = warp::reply::Response::new(bytes.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub fn ok_data(data: Value) -> Resp {
    json_response(StatusCode::OK, &json!({"success": true, "data": data}))
}

pub fn ok_message(message: impl Into<String>, data: Option<Value>) -> Resp {
    let mut body = json!({"success": true, "message": message.into()});
    if let Some(d) = data {
        body["data"] = d;
    }
    json_response(StatusCode::OK, &body)
}

pub fn fail(status: StatusCode, error: impl Display) -> Resp {
    json_response(
        status,
        &json!({"success": false, "error": error.to_string()}),
    )
}

pub fn fail_with(status: StatusCode, error: impl Display, data: Value) -> Resp {
    json_response(
        status,
        &json!({"success": false, "error": error.to_string(), "data": data}),
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
            E::ProjectExists(_) | E::FileExists(_) | E::Running(_) => StatusCode::CONFLICT,
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
