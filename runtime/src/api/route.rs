//! The route table. Every endpoint the server mounts is one [`Route`]: its
//! [`Endpoint`] (method, path pattern, lowest role, body, HTTP or WebSocket) and
//! the filter that serves it. The filter is built from the endpoint, path and
//! method first, so an endpoint cannot be served at a path other than the one it
//! declares, and nothing is mounted that is not in the table.
//!
//! [`mount`] puts each route behind its endpoint's admission: the request checks
//! of its access (`guard::admission`: Host, Origin, credential, role,
//! CSRF, JSON content type; refusals recorded in the audit log) before the
//! handler reads anything, and, for state-changing endpoints, the audit record
//! of the answer, written durably before the answer leaves.

use std::str::FromStr;
use std::sync::Arc;

use futures::future;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::guard::{self, Need};
use super::reply::Resp;
use vwed_auth::audit::Entry;
use vwed_auth::{Auth, Principal, Role};

/// The HTTP method an endpoint answers. `Any` is for `/script-api/*`, whose
/// methods are whatever the scripts registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Any,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::Any => "ANY",
        }
    }

    fn filter(self) -> BoxedFilter<()> {
        match self {
            Verb::Get => warp::get().boxed(),
            Verb::Post => warp::post().boxed(),
            Verb::Put => warp::put().boxed(),
            Verb::Patch => warp::patch().boxed(),
            Verb::Delete => warp::delete().boxed(),
            Verb::Any => warp::any().boxed(),
        }
    }
}

/// Who may call an endpoint: anyone, or a role and every role above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Role(Role),
}

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

/// What the request body of an endpoint is. A JSON body must be declared as
/// JSON (`Content-Type: application/json`): a browser sends a form or
/// `text/plain` POST to another origin without asking first, never JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Json,
    /// Multipart uploads, and script routes whose bodies are the script's business.
    Other,
}

/// Who records a state-changing call in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Nothing but refusals: reads, and script routes (their hot path).
    Refusals,
    /// [`mount`]: who, role, from where, method and path, status.
    Table,
    /// The handler, which knows more (the account a login tried, the user a
    /// command changed); the table records only refusals.
    Handler,
}

/// What a route declares. The path pattern is written as in OpenAPI:
/// `/api/script/files/{file_id}`; a last segment `{*name}` takes the rest of the path.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub verb: Verb,
    pub path: &'static str,
    pub access: Access,
    pub kind: Kind,
    pub body: Body,
    pub audit: Audit,
}

/// Does a request path fit an endpoint: its pattern, and its parameters parse.
type Fits = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// One mounted endpoint.
pub struct Route {
    pub endpoint: Endpoint,
    fits: Fits,
    /// Requests that need no credential although the endpoint has a role
    /// (script routes their scripts registered as public).
    opens: Option<guard::Opens>,
    /// Path and handler; the method and the access are checked by `mount`.
    filter: BoxedFilter<(Resp,)>,
}

impl Route {
    /// Lets `opens` waive the credential for some requests to this endpoint;
    /// Host and Origin are still checked.
    pub fn opened_by(mut self, opens: guard::Opens) -> Route {
        self.opens = Some(opens);
        self
    }
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

pub fn patch(path: &'static str, access: impl Into<Access>) -> Endpoint {
    Endpoint::new(Verb::Patch, path, access.into())
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
        let (body, audit) = match verb {
            Verb::Get => (Body::None, Audit::Refusals),
            Verb::Post | Verb::Put | Verb::Patch => (Body::Json, Audit::Table),
            Verb::Delete => (Body::None, Audit::Table),
            Verb::Any => (Body::Other, Audit::Refusals),
        };
        Endpoint {
            verb,
            path,
            access,
            kind: Kind::Http,
            body,
            audit,
        }
    }

    pub fn websocket(mut self) -> Endpoint {
        self.kind = Kind::WebSocket;
        self
    }

    /// A state-changing endpoint that reads no body (stop, restart, unlock).
    pub fn no_body(mut self) -> Endpoint {
        self.body = Body::None;
        self
    }

    pub fn multipart(mut self) -> Endpoint {
        self.body = Body::Other;
        self
    }

    /// The handler writes the audit record itself (see [`Audit::Handler`]).
    pub fn audited_by_handler(mut self) -> Endpoint {
        self.audit = Audit::Handler;
        self
    }

    /// Serves an endpoint without path parameters: `handler` gets the matched
    /// filter and adds what the endpoint reads (engine, query, body) and answers.
    pub fn to<F>(self, handler: impl FnOnce(At<()>) -> F) -> Route
    where
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let pattern = self.pattern(0, false);
        let at = matched(pattern.clone(), |_| Some(())).untuple_one().boxed();
        self.route(fits(pattern, |_| Some(())), handler(at))
    }

    /// As [`Endpoint::to`], with the one path parameter parsed as `T`; a segment
    /// that does not parse is not this endpoint (404), as with warp's own params.
    pub fn to1<T, F>(self, handler: impl FnOnce(At<(T,)>) -> F) -> Route
    where
        T: FromStr + Send + 'static,
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let pattern = self.pattern(1, false);
        let extract = |c: &Captures<'_>| c.params[0].parse::<T>().ok();
        let at = matched(pattern.clone(), extract);
        self.route(fits(pattern, extract), handler(at))
    }

    /// As [`Endpoint::to`], with two path parameters.
    pub fn to2<A, B, F>(self, handler: impl FnOnce(At<(A, B)>) -> F) -> Route
    where
        A: FromStr + Send + 'static,
        B: FromStr + Send + 'static,
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let pattern = self.pattern(2, false);
        let extract = |c: &Captures<'_>| {
            Some((
                c.params[0].parse::<A>().ok()?,
                c.params[1].parse::<B>().ok()?,
            ))
        };
        let at = matched(pattern.clone(), extract).untuple_one().boxed();
        self.route(fits(pattern, extract), handler(at))
    }

    /// As [`Endpoint::to`] for a `{*name}` pattern: the handler gets the rest of the path.
    pub fn to_rest<F>(self, handler: impl FnOnce(At<(Rest,)>) -> F) -> Route
    where
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        let pattern = self.pattern(0, true);
        let p = pattern.clone();
        let at = warp::path::full()
            .and_then(move |full: FullPath| {
                let rest = p.captures(full.as_str()).map(|c| c.rest_start);
                future::ready(match rest {
                    Some(start) => Ok(Rest { full, start }),
                    None => Err(warp::reject::not_found()),
                })
            })
            .boxed();
        self.route(fits(pattern, |_| Some(())), handler(at))
    }

    fn route<F>(self, fits: Fits, filter: F) -> Route
    where
        F: Filter<Extract = (Resp,), Error = Rejection> + Clone + Send + Sync + 'static,
    {
        Route {
            endpoint: self,
            fits,
            opens: None,
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

    /// What a request must pass once its path fits, before the handler runs:
    /// the method (path first: an unknown path is 404 whatever its method, and
    /// a known path with another method is 405), then the access checks. Gives
    /// the caller (None on public endpoints and opened requests).
    fn admission(
        &self,
        fits: Fits,
        opens: Option<guard::Opens>,
        auth: &Arc<Auth>,
    ) -> BoxedFilter<(Option<Principal>,)> {
        let need = match self.access {
            Access::Public => Need::Public,
            Access::Role(r) => Need::Role(r),
        };
        // Script routes are named by the request; the rest by their pattern.
        let label = (self.verb != Verb::Any).then_some(self.path);
        warp::path::full()
            .and_then(move |p: FullPath| {
                future::ready(if fits(p.as_str()) {
                    Ok(())
                } else {
                    Err(warp::reject::not_found())
                })
            })
            .untuple_one()
            .and(self.verb.filter())
            .and(guard::admission(
                auth.clone(),
                need,
                self.body == Body::Json,
                label,
                opens,
            ))
            .boxed()
    }
}

/// The filter that matches `pattern` and extracts the path parameters.
fn matched<T: Send + 'static>(
    pattern: Arc<Pattern>,
    extract: fn(&Captures<'_>) -> Option<T>,
) -> BoxedFilter<(T,)> {
    warp::path::full()
        .and_then(move |full: FullPath| {
            let got = pattern.captures(full.as_str()).and_then(|c| extract(&c));
            future::ready(got.ok_or_else(warp::reject::not_found))
        })
        .boxed()
}

/// Whether a path fits, by the same test [`matched`] makes.
fn fits<T: 'static>(pattern: Arc<Pattern>, extract: fn(&Captures<'_>) -> Option<T>) -> Fits {
    Arc::new(move |path: &str| pattern.captures(path).and_then(|c| extract(&c)).is_some())
}

impl Route {
    /// The route behind its admission, with the audit record of its answer
    /// when the table keeps it.
    fn admitted(self, auth: &Arc<Auth>) -> BoxedFilter<(Resp,)> {
        let ep = self.endpoint;
        let admitted = ep.admission(self.fits, self.opens, auth);
        if ep.audit != Audit::Table {
            return admitted.and(self.filter).map(|_, r| r).boxed();
        }
        let log = auth.audit.clone();
        // Bodies that cannot be read or parsed are answers of this call too.
        let answer = self.filter.recover(super::recover).unify();
        admitted
            .and(warp::method())
            .and(warp::path::full())
            .and(crate::server::client_addr())
            .and(answer)
            .then(
                move |who: Option<Principal>, method: Method, path: FullPath, addr, resp| {
                    let log = log.clone();
                    async move {
                        let entry = Entry::new(
                            who.as_ref(),
                            &guard::addr_text(addr),
                            &guard::action(&method, ep.path),
                            path.as_str(),
                        );
                        log.around(entry, future::ready(resp)).await
                    }
                },
            )
            .boxed()
    }
}

/// Mounts a table as one filter, each route behind its admission. Earlier
/// routes are tried first, so the table's head should be the hot path: each
/// route passed costs a little.
pub fn mount(routes: Vec<Route>, auth: &Arc<Auth>) -> BoxedFilter<(Resp,)> {
    let mut filters = routes.into_iter().rev().map(|r| r.admitted(auth));
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
        // "/" has no segments at all.
        for s in path
            .trim_start_matches('/')
            .split('/')
            .filter(|_| path != "/")
        {
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
        assert!(caps("/", "/").is_some());
        assert!(caps("/", "/x").is_none());
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
