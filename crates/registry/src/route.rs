//! Route paths: parsing `/items/{id}` into segments, telling when two patterns
//! clash, and finding the route for a request path.

use std::collections::HashMap;
use std::sync::Arc;

use super::{RegError, RouteEntry, Wiring};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    Lit(String),
    Param(String),
}

const MAX_ROUTE_PATH: usize = 500;

pub(super) fn parse_route(path: &str) -> Result<Vec<Seg>, RegError> {
    if !path.starts_with('/') || path.len() > MAX_ROUTE_PATH {
        return Err(RegError::Invalid(format!(
            "接口路径必须以 / 开头且不超过 {MAX_ROUTE_PATH} 个字符: {path}"
        )));
    }
    if path.contains(['?', '#', '\0']) {
        return Err(RegError::Invalid(format!(
            "接口路径不能包含 ? # 或 NUL: {path}"
        )));
    }
    let trimmed = path.trim_end_matches('/');
    trimmed
        .split('/')
        .skip(1)
        .map(|s| parse_seg(s, path))
        .collect()
}

fn parse_seg(s: &str, path: &str) -> Result<Seg, RegError> {
    if s.is_empty() {
        return Err(RegError::Invalid(format!("接口路径含有空段: {path}")));
    }
    if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(RegError::Invalid(format!("路径参数名无效: {s}")));
        }
        return Ok(Seg::Param(name.to_string()));
    }
    if s.contains(['{', '}']) {
        return Err(RegError::Invalid(format!(
            "路径段 {s} 只能是完整的 {{name}}"
        )));
    }
    Ok(Seg::Lit(s.to_string()))
}

/// Two patterns clash when they match the same paths: same literals, parameters in
/// the same places (their names don't matter).
pub(super) fn same_shape(a: &[Seg], b: &[Seg]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Seg::Lit(p), Seg::Lit(q)) => p == q,
            (Seg::Param(_), Seg::Param(_)) => true,
            _ => false,
        })
}

pub(super) fn canonical(segs: &[Seg]) -> String {
    if segs.is_empty() {
        return "/".into();
    }
    let mut s = String::new();
    for seg in segs {
        s.push('/');
        match seg {
            Seg::Lit(l) => s.push_str(l),
            Seg::Param(p) => {
                s.push('{');
                s.push_str(p);
                s.push('}');
            }
        }
    }
    s
}

fn exact_key(method: &str, path: &str) -> String {
    let mut k = String::with_capacity(method.len() + path.len() + 1);
    k.push_str(method);
    k.push(' ');
    k.push_str(path);
    k
}

/// A matched route and the values of its `{name}` segments.
pub type RouteMatch<W> = (Arc<RouteEntry<W>>, Vec<(String, String)>);

pub(super) struct Routes<W: Wiring> {
    /// "METHOD /literal/path" → entry, for the common case of no parameters.
    exact: HashMap<String, Arc<RouteEntry<W>>>,
    patterns: Vec<Arc<RouteEntry<W>>>,
    /// How many of them are public.
    pub(super) public: usize,
}

impl<W: Wiring> Default for Routes<W> {
    fn default() -> Self {
        Routes {
            exact: HashMap::new(),
            patterns: Vec::new(),
            public: 0,
        }
    }
}

impl<W: Wiring> Routes<W> {
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<RouteEntry<W>>> {
        self.exact.values().chain(self.patterns.iter())
    }

    pub(super) fn insert(&mut self, r: Arc<RouteEntry<W>>) {
        self.public += usize::from(r.public);
        if r.segs.iter().all(|s| matches!(s, Seg::Lit(_))) {
            if let Some(old) = self.exact.insert(exact_key(&r.method, &r.path), r) {
                self.public -= usize::from(old.public);
            }
        } else {
            self.patterns.push(r);
        }
    }

    /// Keeps the routes `keep` says yes to; returns how many went.
    pub(super) fn retain(&mut self, keep: impl Fn(&RouteEntry<W>) -> bool) -> usize {
        let before = self.exact.len() + self.patterns.len();
        self.exact.retain(|_, e| keep(e));
        self.patterns.retain(|e| keep(e));
        self.public = self.iter().filter(|e| e.public).count();
        before - self.exact.len() - self.patterns.len()
    }

    /// See [`super::Registry::match_route`].
    pub(super) fn find(&self, method: &str, segs: &[String]) -> Option<RouteMatch<W>> {
        // A segment holding a slash can only fill a `{param}`.
        if segs.iter().all(|s| !s.contains('/')) {
            let path = format!("/{}", segs.join("/"));
            if let Some(r) = self.exact.get(&exact_key(method, &path)) {
                return Some((r.clone(), Vec::new()));
            }
        }
        let r = self.best_pattern(method, segs)?;
        let params = r
            .segs
            .iter()
            .zip(segs)
            .filter_map(|(s, p)| match s {
                Seg::Param(name) => Some((name.clone(), p.clone())),
                Seg::Lit(_) => None,
            })
            .collect();
        Some((r.clone(), params))
    }

    /// The matching pattern with the most literal segments.
    fn best_pattern(&self, method: &str, segs: &[String]) -> Option<&Arc<RouteEntry<W>>> {
        let mut best: Option<(usize, &Arc<RouteEntry<W>>)> = None;
        for r in self.patterns.iter().filter(|r| r.method == method) {
            if r.segs.len() != segs.len() {
                continue;
            }
            let ok = r.segs.iter().zip(segs).all(|(s, p)| match s {
                Seg::Lit(l) => l == p,
                Seg::Param(_) => true,
            });
            if ok {
                let lits = r.segs.iter().filter(|s| matches!(s, Seg::Lit(_))).count();
                if best.is_none_or(|(b, _)| lits > b) {
                    best = Some((lits, r));
                }
            }
        }
        best.map(|(_, r)| r)
    }
}
