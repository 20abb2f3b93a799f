//! Query strings. An endpoint that reads one declares its parameters as a type
//! deriving `utoipa::IntoParams`: the names are what the endpoint accepts (any
//! other is refused with 400 and the list), and the types and doc comments are
//! what the OpenAPI document shows. Handlers read the values by name, with the
//! parsers below, so that every endpoint words a bad value the same way.
//!
//! Such a type is never built, hence `#[allow(dead_code)]` on each.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future;
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;
use warp::{Filter, Rejection};

use super::reply::ApiError;

/// A query parameter the endpoint does not know.
#[derive(Debug)]
pub struct Unknown {
    pub name: String,
    pub known: Arc<[String]>,
}
impl warp::reject::Reject for Unknown {}

impl Unknown {
    pub fn message(&self) -> String {
        if self.known.is_empty() {
            format!("未知的查询参数 {}: 此接口不接受查询参数", self.name)
        } else {
            format!(
                "未知的查询参数 {}, 可用的参数: {}",
                self.name,
                self.known.join(", ")
            )
        }
    }
}

/// The names `T` declares.
pub fn names<T: IntoParams>() -> Vec<String> {
    T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// The query as name → value (the last of repeated names), refused with
/// [`Unknown`] when it holds a name `T` does not declare.
pub fn known<T: IntoParams>()
-> impl Filter<Extract = (HashMap<String, String>,), Error = Rejection> + Clone {
    accept(names::<T>())
}

/// As [`known`], for an endpoint whose parameters several types declare.
pub fn accept(
    names: Vec<String>,
) -> impl Filter<Extract = (HashMap<String, String>,), Error = Rejection> + Clone {
    let known: Arc<[String]> = names.into();
    warp::query::<Vec<(String, String)>>().and_then(move |pairs: Vec<(String, String)>| {
        let unknown = pairs
            .iter()
            .find(|(k, _)| !known.iter().any(|n| n == k))
            .map(|(k, _)| Unknown {
                name: k.clone(),
                known: known.clone(),
            });
        future::ready(match unknown {
            Some(u) => Err(warp::reject::custom(u)),
            None => Ok(pairs.into_iter().collect::<HashMap<_, _>>()),
        })
    })
}

pub fn query_bool(q: &HashMap<String, String>, key: &str) -> Result<Option<bool>, ApiError> {
    match q.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(Some(true)),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!(
            "参数 {key} 必须是 true 或 false, 得到 {v}"
        ))),
    }
}

pub fn query_u64(q: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    q.get(key)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("参数 {key} 必须是非负整数, 得到 {v}")))
        })
        .transpose()
}
