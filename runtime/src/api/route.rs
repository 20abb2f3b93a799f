//! The route table. Every endpoint the server mounts is one [`Route`]: its
//! [`Endpoint`] (method, path pattern, lowest role, HTTP or WebSocket) and the
//! filter that serves it. The filter is built from the endpoint, path and method
//! first, so an endpoint cannot be served at a path other than the one it declares,
//! and nothing is mounted that is not in the table.

use std::str::FromStr;
use std::sync::Arc;

use futures::future;
use warp::filters::BoxedFilter;
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::reply::Resp;
use crate::auth::Role;

/// The HTTP method an endpoint answers. `Any` is for `/script-api/*`, whose
/// methods are whatever the scripts registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
    Any,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
            Verb::Any => "ANY",
        }
    }
}

/// Who may call an endpoint: anyone, or a role and every role above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Role(Role),
}

// Read by the OpenAPI test now, and by the access check that comes next.
#[cfg_attr(not(test), allow(dead_code))]
impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Role(r) => r.as_str(),
        }
    }
}

impl From<Role> for Access {
    fn from(r: Role) -> Self {
        Access::Role(r)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    WebSocket,
}

/// What a route declares. The path pattern is written as in OpenAPI:
/// `/api/script/files/{file_id}`; a last segment `{*name}` takes the rest of the path.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub verb: Verb,
    pub path: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    pub access: Access,
    pub kind: Kind,
}

/// One mounted endpoint.
pub struct Route {
    #[cfg_attr(not(test), allow(dead_code))]
    pub endpoint: Endpoint,
    filter: BoxedFilter<(Resp,)>,
}

pub fn get(path: &'static str, access: impl Into<Access>) -> Endpoint {
    Endpoint::new(Verb::Get, path, access.into())
}

pub fn post(path: &'static str, access: impl Into<Access>) -> Endpoint {
    Endpoint::new(Verb::Post, path, access.into())
}

pub fn put(path: &'static str, access: impl Into<Access>) -> Endpoint {
    Endpoint::new(Verb::Put, path, access.into())
}

pub fn delete(path: &'static str, access: impl Into<Access>) -> Endpoint {
    Endpoint::new(Verb::Delete, path, access.into())
}

pub fn any(path: &'static str, access: impl Into<Access>) -> Endpoint {
    Endpoint::new(Verb::Any, path, access.into())
}

/// What follows the prefix of a `{*name}` pattern, still percent-encoded.
pub struct Rest {
    full: FullPath,
    start: usize,
}

impl Rest {
    pub fn as_str(&self) -> &str {
        self.full.as_str().get(self.start..).unwrap_or("")
    }
}

/// A filter that has matched an endpoint's path and method and extracted `T`.
pub type At<T> = BoxedFilter<T>;

impl Endpoint {
    fn new(verb: Verb, path: &'static str, access: Access) -> Endpoint {
        Endpoint {
            verb,
            path,
            access,
            kind: Kind::Http,
        }
    }

    pub fn websocket(mut self) -> Endpoint {
        self.kind = Kind::WebSocket;
        self
    }

    /// Serves an endpoint without path parameters: `handler` gets the matched
    /// filter and adds what the endpoint reads (engine, query, body) and answers.
    pub fn to<F>(self, handler: impl FnOnce(At<()>) -> F) -> Route
    where
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let at = self
            .matched(self.pattern(0, false), |_| Some(()))
            .untuple_one()
            .boxed();
        self.route(handler(at))
    }

    /// As [`Endpoint::to`], with the one path parameter parsed as `T`; a segment
    /// that does not parse is not this endpoint (404), as with warp's own params.
    pub fn to1<T, F>(self, handler: impl FnOnce(At<(T,)>) -> F) -> Route
    where
        T: FromStr + Send + 'static,
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let at = self.matched(self.pattern(1, false), |c| c.params[0].parse::<T>().ok());
        self.route(handler(at))
    }

    /// As [`Endpoint::to`], with two path parameters.
    pub fn to2<A, B, F>(self, handler: impl FnOnce(At<(A, B)>) -> F) -> Route
    where
        A: FromStr + Send + 'static,
        B: FromStr + Send + 'static,
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let at = self
            .matched(self.pattern(2, false), |c| {
                Some((
                    c.params[0].parse::<A>().ok()?,
                    c.params[1].parse::<B>().ok()?,
                ))
            })
            .untuple_one()
            .boxed();
        self.route(handler(at))
    }

    /// As [`Endpoint::to`] for a `{*name}` pattern: the handler gets the rest of the path.
    pub fn to_rest<F>(self, handler: impl FnOnce(At<(Rest,)>) -> F) -> Route
    where
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let pattern = self.pattern(0, true);
        let at = warp::path::full()
            .and_then(move |full: FullPath| {
                let rest = pattern.captures(full.as_str()).map(|c| c.rest_start);
                future::ready(match rest {
                    Some(start) => Ok(Rest { full, start }),
                    None => Err(warp::reject::not_found()),
                })
            })
            .and(self.admission())
            .boxed();
        self.route(handler(at))
    }

    fn route<F>(self, filter: F) -> Route
    where
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        Route {
            endpoint: self,
            filter: filter.boxed(),
        }
    }

    /// The pattern, checked against the parameters the handler takes: a table
    /// that disagrees with itself is a programming error, found at start-up.
    fn pattern(&self, params: usize, rest: bool) -> Arc<Pattern> {
        let p = Pattern::parse(self.path);
        assert!(
            p.params == params && p.rest == rest,
            "{} {}: the handler takes {params} path parameters{}",
            self.verb.as_str(),
            self.path,
            if rest { " and the rest" } else { "" }
        );
        Arc::new(p)
    }

    /// Path first, then method: an unknown path is 404 whatever its method, and
    /// a known path with another method is 405.
    fn matched<T: Send + 'static>(
        &self,
        pattern: Arc<Pattern>,
        extract: fn(&Captures<'_>) -> Option<T>,
    ) -> BoxedFilter<(T,)> {
        warp::path::full()
            .and_then(move |full: FullPath| {
                let got = pattern.captures(full.as_str()).and_then(|c| extract(&c));
                future::ready(got.ok_or_else(warp::reject::not_found))
            })
            .and(self.admission())
            .boxed()
    }

    /// What a request must pass once its path matched: the method. The access
    /// check belongs here too, so that it sees only requests for this endpoint
    /// and runs before the handler reads the body.
    fn admission(&self) -> BoxedFilter<()> {
        match self.verb {
            Verb::Get => warp::get().boxed(),
            Verb::Post => warp::post().boxed(),
            Verb::Put => warp::put().boxed(),
            Verb::Delete => warp::delete().boxed(),
            Verb::Any => warp::any().boxed(),
        }
    }
}

/// Mounts a table as one filter. Earlier routes are tried first, so the table's
/// head should be the hot path: each route passed costs a little.
pub fn mount(routes: Vec<Route>) -> BoxedFilter<(Resp,)> {
    let mut filters = routes.into_iter().rev().map(|r| r.filter);
    let Some(last) = filters.next() else {
        return warp::any()
            .and_then(|| future::ready(Err::<Resp, _>(warp::reject::not_found())))
            .boxed();
    };
    // Folded from the end, so that the first routes sit nearest the top.
    filters.fold(last, |rest, f| f.or(rest).unify().boxed())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    Param,
}

#[derive(Debug)]
struct Pattern {
    segs: Vec<Seg>,
    params: usize,
    /// Ends in `{*name}`: whatever follows the segments matches.
    rest: bool,
}

/// Most path parameters one endpoint has.
const MAX_PARAMS: usize = 2;

struct Captures<'a> {
    params: [&'a str; MAX_PARAMS],
    /// Where the rest of the path begins (its end, unless the pattern has a rest).
    rest_start: usize,
}

impl Pattern {
    fn parse(path: &'static str) -> Pattern {
        let mut segs = Vec::new();
        let mut rest = false;
        for s in path.trim_start_matches('/').split('/') {
            assert!(!rest, "{path}: {{*name}} must be the last segment");
            if s.starts_with("{*") && s.ends_with('}') {
                rest = true;
            } else if s.starts_with('{') && s.ends_with('}') {
                segs.push(Seg::Param);
            } else {
                assert!(!s.is_empty(), "{path}: empty segment");
                segs.push(Seg::Lit(s));
            }
        }
        let params = segs.iter().filter(|s| **s == Seg::Param).count();
        assert!(params <= MAX_PARAMS, "{path}: too many path parameters");
        Pattern { segs, params, rest }
    }

    /// Matches segment by segment as warp's path filters do: raw (not decoded)
    /// segments, empty segments match nothing, one trailing slash is allowed.
    fn captures<'a>(&self, path: &'a str) -> Option<Captures<'a>> {
        let mut caps = Captures {
            params: [""; MAX_PARAMS],
            rest_start: 0,
        };
        let mut pos = usize::from(path.starts_with('/'));
        let mut n = 0;
        for seg in &self.segs {
            let left = path.get(pos..)?;
            let len = left.find('/').unwrap_or(left.len());
            let s = &left[..len];
            match seg {
                Seg::Lit(l) if s == *l => {}
                Seg::Param if !s.is_empty() => {
                    caps.params[n] = s;
                    n += 1;
                }
                _ => return None,
            }
            pos += len;
            if pos < path.len() {
                pos += 1;
            }
        }
        caps.rest_start = pos;
        (self.rest || pos == path.len()).then_some(caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pattern: &'static str, path: &str) -> Option<(Vec<String>, String)> {
        let p = Pattern::parse(pattern);
        p.captures(path).map(|c| {
            (
                c.params[..p.params].iter().map(|s| s.to_string()).collect(),
                path[c.rest_start..].to_string(),
            )
        })
    }

    #[test]
    fn patterns_match_like_warps_path_filters() {
        let files = "/api/script/files/{file_id}";
        assert_eq!(
            caps(files, "/api/script/files/7"),
            Some((vec!["7".into()], "".into()))
        );
        assert!(caps(files, "/api/script/files/7/").is_some());
        assert_eq!(caps(files, "/api/script/files/"), None);
        assert_eq!(caps(files, "/api/script/files/7//"), None);
        assert_eq!(caps(files, "/api/script/files/7/x"), None);
        assert_eq!(caps(files, "/api/script//files/7"), None);
        assert_eq!(caps(files, "/api/script/filesx/7"), None);
        let two = "/a/{x}/v/{y}";
        assert_eq!(
            caps(two, "/a/1/v/%E4%B8%AD"),
            Some((vec!["1".into(), "%E4%B8%AD".into()], "".into()))
        );
        assert!(caps("/health", "/health").is_some());
        assert!(caps("/health", "/healthz").is_none());
        assert!(caps("/health", "/").is_none());
    }

    #[test]
    fn a_rest_pattern_takes_what_follows() {
        let api = "/script-api/{*path}";
        assert_eq!(caps(api, "/script-api/a/b?"), Some((vec![], "a/b?".into())));
        assert_eq!(caps(api, "/script-api"), Some((vec![], "".into())));
        assert_eq!(caps(api, "/script-api/"), Some((vec![], "".into())));
        assert_eq!(caps(api, "/script-apix/a"), None);
    }
}
