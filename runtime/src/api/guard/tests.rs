//! The request checks as warp filters: what a refusal answers, that it is
//! recorded, and the client address of the connection.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use warp::Filter;
use warp::http::{HeaderValue, Method};

use super::*;
use vwed_auth::Via;
use vwed_auth::audit::{Outcome, Query};
use vwed_auth::testing::{TestAuth, addr, bearer, headers};

fn operator_route(auth: Arc<Auth>) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    guard(auth, Role::Operator, true)
        .map(|p: Principal| crate::api::reply::ok_data(serde_json::json!({"who": p.name})))
        .recover(|r: warp::Rejection| async move { recover(&r).ok_or(r) })
        .unify()
        .boxed()
}

fn body(r: &warp::http::Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(r.body()).expect("JSON envelope")
}

#[tokio::test]
async fn guard_answers_401_403_and_lets_the_lowest_role_in() {
    let t = TestAuth::new("guard");
    let route = operator_route(t.auth.clone());
    let call = |auth: Option<String>| {
        let mut r = warp::test::request()
            .method("POST")
            .path("/x")
            .header("host", "127.0.0.1:8000")
            .header("content-type", "application/json")
            .body("{}");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.reply(&route)
    };
    let none = call(None).await;
    assert_eq!(none.status(), 401);
    assert_eq!(body(&none)["success"], false);
    assert!(none.headers().contains_key("www-authenticate"));
    assert_eq!(call(Some("Basic abc".into())).await.status(), 401);
    assert_eq!(
        call(Some(format!("Bearer vwed_{}", "0".repeat(64))))
            .await
            .status(),
        401
    );
    let big = format!("Bearer {}", "x".repeat(8 * 1024));
    let r = call(Some(big)).await;
    assert_eq!(r.status(), 401, "oversized header: clear 401");
    assert_eq!(body(&r)["success"], false);
    for (role, want) in [
        (Role::Viewer, 403),
        (Role::Operator, 200),
        (Role::Engineer, 200),
        (Role::Admin, 200),
    ] {
        let r = call(Some(bearer(&t.token(role)))).await;
        assert_eq!(r.status(), want, "{role:?}: {:?}", r.body());
    }
}

#[tokio::test]
async fn cross_origin_text_plain_post_and_rebinding_are_refused() {
    let t = TestAuth::new("csrf-web");
    let route = operator_route(t.auth.clone());
    let token = bearer(&t.token(Role::Admin));
    let r = warp::test::request()
        .method("POST")
        .path("/x")
        .header("host", "127.0.0.1:8000")
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .header("authorization", &token)
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(r.status(), 403, "cross-origin");
    let r = warp::test::request()
        .method("POST")
        .path("/x")
        .header("host", "127.0.0.1:8000")
        .header("content-type", "text/plain")
        .header("authorization", &token)
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(r.status(), 415, "text/plain where JSON is expected");
    let r = warp::test::request()
        .method("POST")
        .path("/x")
        .header("host", "evil.example")
        .header("content-type", "application/json")
        .header("authorization", &token)
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(r.status(), 403, "DNS rebinding");
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "no CORS headers"
    );
}

#[tokio::test]
async fn cookie_post_needs_the_csrf_header() {
    let t = TestAuth::new("csrf");
    let pw = t.user("fay", Role::Operator);
    let ok = t.auth.login("fay", &pw, addr()).await.expect("login");
    let route = operator_route(t.auth.clone());
    let send = |csrf: Option<&str>| {
        let mut r = warp::test::request()
            .method("POST")
            .path("/x")
            .header("host", "localhost:8000")
            .header("origin", "http://localhost:8000")
            .header("content-type", "application/json")
            .header("cookie", format!("vwed_session={}", ok.session_id))
            .body("{}");
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.reply(&route)
    };
    assert_eq!(send(None).await.status(), 403);
    assert_eq!(send(Some(&ok.csrf)).await.status(), 200);
}

#[tokio::test]
async fn refusals_are_in_the_audit_log() {
    let t = TestAuth::new("refused");
    let route = operator_route(t.auth.clone());
    let viewer = t.token(Role::Viewer);
    for auth in [None, Some(bearer(&viewer))] {
        let mut r = warp::test::request()
            .method("POST")
            .path("/api/script/scripts/start")
            .header("host", "127.0.0.1:8000")
            .extension(crate::server::test_client(SocketAddr::from((
                [127, 0, 0, 1],
                5555,
            ))));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.reply(&route).await;
    }
    let page = t
        .auth
        .audit
        .query(&Query {
            outcome: Some(Outcome::Denied),
            limit: 10,
            ..Query::default()
        })
        .expect("query");
    assert_eq!(page.entries.len(), 2, "{:?}", page.entries);
    assert_eq!(page.entries[0].status, 403);
    assert_eq!(page.entries[0].user, "viewer-token", "who was refused");
    assert_eq!(page.entries[1].status, 401);
    assert_eq!(page.entries[1].action, "POST /api/script/scripts/start");
    assert_eq!(page.entries[1].addr, "127.0.0.1:5555");
}

#[tokio::test]
async fn no_auth_lets_everyone_in_as_admin_but_keeps_host_and_origin_checks() {
    let t = TestAuth::with("noauth", |c| c.no_auth = true);
    let p = t
        .auth
        .check(&Method::POST, &headers(&[]), Role::Admin, false)
        .expect("no credential needed");
    assert_eq!(p.via, Via::NoAuth);
    let mut h = headers(&[("origin", "http://evil.example")]);
    assert!(
        t.auth
            .check(&Method::POST, &h, Role::Viewer, false)
            .is_err()
    );
    h.insert("host", HeaderValue::from_static("evil.example"));
    assert!(t.auth.check(&Method::GET, &h, Role::Viewer, false).is_err());
}
