//! The `/api/auth/*` and `/api/audit` handlers through `warp::test`.

use serde_json::{Value, json};
use warp::Filter;
use warp::http::Response;

use super::routes;
use vwed_auth::testing::TestAuth;
use vwed_auth::{Principal, Role};

fn body(r: &Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(r.body()).expect("JSON envelope")
}

struct Client {
    route: warp::filters::BoxedFilter<(super::Resp,)>,
}

impl Client {
    fn new(t: &TestAuth) -> Client {
        Client {
            route: super::super::route::mount(routes(&t.auth), &t.auth)
                .recover(super::super::recover)
                .unify()
                .boxed(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        json: Option<Value>,
    ) -> Response<bytes::Bytes> {
        let mut r = warp::test::request()
            .method(method)
            .path(path)
            .header("host", "127.0.0.1:8000")
            .extension(crate::server::test_client(([127, 0, 0, 1], 4321).into()));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(j) = json {
            r = r
                .header("content-type", "application/json")
                .body(j.to_string());
        }
        r.reply(&self.route).await
    }
}

fn cookie_of(r: &Response<bytes::Bytes>) -> String {
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie");
    set.split(';').next().expect("pair").to_string()
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_me_returns_the_csrf_token() {
    let t = TestAuth::new("api-login");
    let pw = t.user("gus", Role::Operator);
    let c = Client::new(&t);
    let r = c
        .send(
            "POST",
            "/api/auth/login",
            &[],
            Some(json!({"username": "gus", "password": pw})),
        )
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let set = r.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=")
    );
    let csrf = body(&r)["data"]["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    let cookie = cookie_of(&r);
    let me = c
        .send("GET", "/api/auth/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(me.status(), 200);
    let d = &body(&me)["data"];
    assert_eq!(
        (d["user"].as_str(), d["role"].as_str()),
        (Some("gus"), Some("operator"))
    );
    assert_eq!(d["csrf_token"], csrf.as_str());
    let out = c
        .send("POST", "/api/auth/logout", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(
        out.status(),
        403,
        "logout by cookie needs the CSRF header too"
    );
    let out = c
        .send(
            "POST",
            "/api/auth/logout",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            None,
        )
        .await;
    assert_eq!(out.status(), 200);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    let me = c
        .send("GET", "/api/auth/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(me.status(), 401, "the session ended on the server");
}

#[tokio::test]
async fn login_failures_say_nothing_about_the_user_and_bad_bodies_get_400() {
    let t = TestAuth::new("api-fail");
    t.user("hal", Role::Viewer);
    let c = Client::new(&t);
    let a = c
        .send(
            "POST",
            "/api/auth/login",
            &[],
            Some(json!({"username": "hal", "password": "nope-nope"})),
        )
        .await;
    let b = c
        .send(
            "POST",
            "/api/auth/login",
            &[],
            Some(json!({"username": "nobody", "password": "nope-nope"})),
        )
        .await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (401, 401));
    assert_eq!(body(&a)["error"], body(&b)["error"]);
    let junk = warp::test::request()
        .method("POST")
        .path("/api/auth/login")
        .header("host", "127.0.0.1:8000")
        .header("content-type", "application/json")
        .body("{not json")
        .reply(&c.route)
        .await;
    assert_eq!(junk.status(), 400);
    assert_eq!(body(&junk)["success"], false);
    let plain = warp::test::request()
        .method("POST")
        .path("/api/auth/login")
        .header("host", "127.0.0.1:8000")
        .header("content-type", "text/plain")
        .body(json!({"username": "hal", "password": "x"}).to_string())
        .reply(&c.route)
        .await;
    assert_eq!(plain.status(), 415);
    let page = t.auth.audit.query(&vwed_auth::audit::Query {
        action: Some("auth.login".into()),
        limit: 10,
        ..Default::default()
    });
    let statuses: Vec<u16> = page
        .expect("audit")
        .entries
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        statuses,
        vec![400, 401, 401],
        "both failed logins and the malformed one recorded"
    );
}

// long: one account's and one token's life over HTTP, each step on the one before
#[tokio::test]
async fn admin_manages_users_and_tokens_over_http() {
    let t = TestAuth::new("api-admin");
    let admin = format!("Bearer {}", t.token(Role::Admin));
    let h = [("authorization", admin.as_str())];
    let c = Client::new(&t);
    let r = c
        .send(
            "POST",
            "/api/auth/users",
            &h,
            Some(json!({"name": "ivy", "role": "operator"})),
        )
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.body());
    let pw = body(&r)["data"]["password"]
        .as_str()
        .expect("generated")
        .to_string();
    t.auth
        .login("ivy", &pw, None)
        .await
        .expect("generated password works");
    let dup = c
        .send(
            "POST",
            "/api/auth/users",
            &h,
            Some(json!({"name": "ivy", "role": "viewer"})),
        )
        .await;
    assert_eq!(dup.status(), 409);
    let bad = c
        .send(
            "POST",
            "/api/auth/users",
            &h,
            Some(json!({"name": "x y", "role": "root"})),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let list = c.send("GET", "/api/auth/users", &h, None).await;
    let users = body(&list)["data"].clone();
    assert_eq!(users[0]["name"], "ivy");
    assert!(users[0]["last_login_at"].is_string(), "{users}");
    let r = c
        .send(
            "PATCH",
            "/api/auth/users/ivy",
            &h,
            Some(json!({"role": "engineer", "disabled": true})),
        )
        .await;
    assert_eq!(body(&r)["data"]["role"], "engineer");
    assert_eq!(body(&r)["data"]["disabled"], true);
    assert_eq!(
        c.send("DELETE", "/api/auth/users/ivy", &h, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        c.send("DELETE", "/api/auth/users/ivy", &h, None)
            .await
            .status(),
        404
    );

    let r = c
        .send(
            "POST",
            "/api/auth/tokens",
            &h,
            Some(json!({"name": "plc", "role": "operator", "expires_days": 30})),
        )
        .await;
    let d = body(&r)["data"].clone();
    let value = d["token"].as_str().expect("shown once").to_string();
    assert!(value.starts_with("vwed_"));
    assert!(d["expires_at"].is_string());
    let list = c.send("GET", "/api/auth/tokens", &h, None).await;
    let text = String::from_utf8_lossy(list.body()).to_string();
    assert!(
        !text.contains(&value),
        "listed tokens never show their value"
    );
    let id = d["id"].as_u64().expect("id");
    let plc = format!("Bearer {value}");
    assert_eq!(
        c.send("GET", "/api/auth/me", &[("authorization", &plc)], None)
            .await
            .status(),
        200
    );
    let r = c
        .send("DELETE", &format!("/api/auth/tokens/{id}"), &h, None)
        .await;
    assert_eq!(body(&r)["data"]["state"], "revoked");
    assert_eq!(
        c.send("GET", "/api/auth/me", &[("authorization", &plc)], None)
            .await
            .status(),
        401
    );

    let audit = c
        .send("GET", "/api/audit?action=token.&result=ok", &h, None)
        .await;
    let actions: Vec<String> = body(&audit)["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(actions, vec!["token.revoke", "token.create"]);
}

#[tokio::test]
async fn non_admins_cannot_manage_accounts_or_read_the_audit() {
    let t = TestAuth::new("api-deny");
    let c = Client::new(&t);
    let eng = format!("Bearer {}", t.token(Role::Engineer));
    for (m, p) in [
        ("GET", "/api/auth/users"),
        ("GET", "/api/auth/tokens"),
        ("GET", "/api/audit"),
    ] {
        assert_eq!(
            c.send(m, p, &[("authorization", &eng)], None)
                .await
                .status(),
            403,
            "{p}"
        );
        assert_eq!(c.send(m, p, &[], None).await.status(), 401, "{p}");
    }
    let r = c
        .send(
            "POST",
            "/api/auth/tokens",
            &[("authorization", &eng)],
            Some(json!({"name": "x", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status(), 403);
    let other = c.send("GET", "/api/script/projects", &[], None).await;
    assert_eq!(other.status(), 404, "other paths pass on untouched");
}

#[tokio::test]
async fn password_change_needs_the_current_one_and_gives_a_new_session() {
    let t = TestAuth::new("api-pw");
    let pw = t.user("jo", Role::Viewer);
    let c = Client::new(&t);
    let r = c
        .send(
            "POST",
            "/api/auth/login",
            &[],
            Some(json!({"username": "jo", "password": pw})),
        )
        .await;
    let cookie = cookie_of(&r);
    let csrf = body(&r)["data"]["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_string();
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let wrong = c
        .send(
            "POST",
            "/api/auth/password",
            &h,
            Some(json!({"current_password": "bad-bad-bad", "new_password": "new-password-1"})),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let ok = c
        .send(
            "POST",
            "/api/auth/password",
            &h,
            Some(json!({"current_password": pw, "new_password": "new-password-1"})),
        )
        .await;
    assert_eq!(ok.status(), 200, "{:?}", ok.body());
    assert_eq!(
        c.send("GET", "/api/auth/me", &[("cookie", &cookie)], None)
            .await
            .status(),
        401
    );
    let fresh = cookie_of(&ok);
    assert_eq!(
        c.send("GET", "/api/auth/me", &[("cookie", &fresh)], None)
            .await
            .status(),
        200
    );
    t.auth
        .login("jo", "new-password-1", None)
        .await
        .expect("new password");
    let _ = Principal::cli();
}
