//! Accounts, tokens, sessions, the request checks and the audit log, on a real
//! `auth.redb` in a temporary directory. (The checks as warp filters are tested
//! in the API: `api/guard/tests.rs`.)

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use http::{Method, StatusCode};

use super::admin::Command;
use super::audit::{Entry, Outcome, Query};
use super::store::NewToken;
use super::*;
use crate::testing::{TestAuth, addr, bearer, headers};

#[test]
fn token_authenticates_with_its_role_until_revoked() {
    let t = TestAuth::new("token");
    let value = t.token(Role::Operator);
    let h = headers(&[("authorization", &bearer(&value))]);
    let p = t.auth.authenticate(&h).expect("token works");
    assert_eq!(p.role, Role::Operator);
    assert!(matches!(p.via, Via::Token { .. }));
    let list = t
        .auth
        .execute(Command::TokenList, &Principal::cli())
        .expect("list");
    assert_eq!(list[0]["state"], "active");
    assert!(list[0]["last_used_at"].is_string(), "use is noted: {list}");
    assert!(
        !list.to_string().contains(&value),
        "the list never shows a token"
    );
    let id = list[0]["id"].as_u64().expect("id");
    t.auth
        .execute(Command::TokenRevoke { id }, &Principal::cli())
        .expect("revoke");
    let e = t.auth.authenticate(&h).expect_err("revoked");
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    assert!(e.message.contains("吊销"), "{}", e.message);
    let list = t
        .auth
        .execute(Command::TokenList, &Principal::cli())
        .expect("list");
    assert_eq!(list[0]["state"], "revoked");
}

#[test]
fn expired_token_gets_a_clear_401() {
    let t = TestAuth::new("expired");
    let (value, digest) = secret::new_token().expect("random");
    t.auth
        .change(false, |s| {
            s.add_token(
                NewToken {
                    name: "old".into(),
                    role: Role::Admin,
                    digest,
                    hint: "x".into(),
                    created_by: "test".into(),
                    expires_ms: Some(unix_ms() - 1),
                },
                unix_ms(),
            )
        })
        .expect("add");
    let e = t
        .auth
        .authenticate(&headers(&[("authorization", &bearer(&value))]))
        .expect_err("expired");
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    assert!(e.message.contains("过期"), "{}", e.message);
    for junk in ["vwed_", "vwed_zz", "Bearer", "not-a-token"] {
        let e = t
            .auth
            .authenticate(&headers(&[("authorization", &bearer(junk))]))
            .expect_err(junk);
        assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{junk}");
    }
}

#[tokio::test]
async fn session_needs_csrf_for_changes_and_ends_at_logout() {
    let t = TestAuth::new("session");
    let pw = t.user("alice", Role::Engineer);
    let ok = t.auth.login("alice", &pw, addr()).await.expect("login");
    let cookie = format!("vwed_session={}", ok.session_id);
    let get = headers(&[("cookie", &cookie)]);
    let p = t
        .auth
        .check(&Method::GET, &get, Role::Viewer, false)
        .expect("read");
    assert_eq!(p.role, Role::Engineer);
    let e = t
        .auth
        .check(&Method::POST, &get, Role::Operator, false)
        .expect_err("no csrf");
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    let wrong = headers(&[("cookie", &cookie), ("x-csrf-token", "0000")]);
    assert!(
        t.auth
            .check(&Method::POST, &wrong, Role::Operator, false)
            .is_err()
    );
    let right = headers(&[("cookie", &cookie), ("x-csrf-token", &ok.csrf)]);
    t.auth
        .check(&Method::POST, &right, Role::Operator, false)
        .expect("csrf given");
    assert!(t.auth.logout(&p).expect("logout"));
    let e = t.auth.authenticate(&get).expect_err("logged out");
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_user_disabled_user_and_wrong_password_answer_alike() {
    let t = TestAuth::new("alike");
    let pw = t.user("bob", Role::Viewer);
    let pw2 = t.user("carol", Role::Viewer);
    t.auth
        .execute(
            Command::UserSet {
                name: "carol".into(),
                role: None,
                disabled: Some(true),
            },
            &Principal::cli(),
        )
        .expect("disable");
    let answers = [
        t.auth.login("nobody", &pw, addr()).await,
        t.auth.login("bob", "wrong-password", addr()).await,
        t.auth.login("carol", &pw2, addr()).await,
    ];
    let texts: Vec<String> = answers
        .iter()
        .map(|a| {
            a.as_ref()
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string())
        })
        .collect();
    assert!(texts.iter().all(|m| m == "用户名或密码错误"), "{texts:?}");
}

#[tokio::test]
async fn repeated_failures_are_throttled_even_for_unknown_accounts() {
    let t = TestAuth::new("throttle");
    let pw = t.user("dave", Role::Viewer);
    for name in ["dave", "ghost"] {
        for _ in 0..6 {
            let _ = t.auth.login(name, "wrong-password", addr()).await;
        }
        match t.auth.login(name, "wrong-password", addr()).await {
            Err(LoginError::Throttled(s)) => assert!(s >= 1),
            other => panic!("{name}: expected throttling, got {other:?}"),
        }
        // Blocked now even with the right password: waiting is the point. Asked
        // at once, while the first wait (1 s) runs; the other name's hashing
        // would outlast it on a loaded machine.
        if name == "dave" {
            assert!(matches!(
                t.auth.login("dave", &pw, addr()).await,
                Err(LoginError::Throttled(_))
            ));
        }
    }
}

#[tokio::test]
async fn concurrent_login_storm_is_bounded_and_never_panics() {
    let t = TestAuth::new("storm");
    t.user("erin", Role::Viewer);
    let mut tasks = Vec::new();
    for i in 0..120u16 {
        let auth = t.auth.clone();
        let from = Some(SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1)));
        tasks.push(tokio::spawn(async move {
            auth.login(&format!("user{i}"), "wrong-password", from)
                .await
        }));
    }
    let mut busy = 0;
    for task in tasks {
        match task.await.expect("no panic") {
            Err(LoginError::Busy) => busy += 1,
            Err(LoginError::Invalid) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        busy > 0,
        "past the queue logins are refused, not queued without bound"
    );
}

#[test]
fn role_too_low_is_403_and_no_credential_is_401() {
    let t = TestAuth::new("roles");
    let viewer = t.token(Role::Viewer);
    let e = t
        .auth
        .check(
            &Method::GET,
            &headers(&[("authorization", &bearer(&viewer))]),
            Role::Operator,
            false,
        )
        .expect_err("viewer");
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    let e = t
        .auth
        .check(&Method::GET, &headers(&[]), Role::Viewer, false)
        .expect_err("nothing");
    assert_eq!(e.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn last_enabled_admin_stays_and_changes_end_sessions() {
    let t = TestAuth::new("admins");
    let pw = t.user("root", Role::Admin);
    let by = Principal::cli();
    let refuse = |cmd| t.auth.execute(cmd, &by).map(|_| ()).map_err(|e| e.status());
    assert_eq!(
        refuse(Command::UserDel {
            name: "root".into()
        }),
        Err(409)
    );
    assert_eq!(
        refuse(Command::UserSet {
            name: "root".into(),
            role: Some(Role::Viewer),
            disabled: None
        }),
        Err(409)
    );
    let ok = t.auth.login("root", &pw, addr()).await.expect("login");
    let cookie = headers(&[("cookie", &format!("vwed_session={}", ok.session_id))]);
    t.auth.authenticate(&cookie).expect("session");
    t.auth
        .execute(
            Command::UserPasswd {
                name: "root".into(),
                password: None,
            },
            &by,
        )
        .expect("passwd");
    assert!(
        t.auth.authenticate(&cookie).is_err(),
        "new password ends sessions"
    );
}

#[test]
fn first_start_writes_private_files_once() {
    let t = TestAuth::new("first");
    assert!(t.auth.first_start().expect("first start"));
    for f in [INITIAL_PASSWORD_FILE, ADMIN_TOKEN_FILE] {
        let meta = std::fs::metadata(t.dir.join(f)).expect(f);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
    }
    let token = std::fs::read_to_string(t.dir.join(ADMIN_TOKEN_FILE)).expect("token");
    let p = t
        .auth
        .authenticate(&headers(&[("authorization", &bearer(token.trim()))]))
        .expect("admin token");
    assert_eq!(p.role, Role::Admin);
    assert!(!t.auth.first_start().expect("second start"), "only once");
    // A chosen password makes the first one's file go.
    t.auth
        .execute(
            Command::UserPasswd {
                name: "admin".into(),
                password: Some("chosen-password".into()),
            },
            &Principal::cli(),
        )
        .expect("passwd");
    assert!(!t.dir.join(INITIAL_PASSWORD_FILE).exists());
}

#[tokio::test]
async fn initial_password_logs_in_as_admin() {
    let t = TestAuth::new("initial");
    t.auth.first_start().expect("first start");
    let pw = std::fs::read_to_string(t.dir.join(INITIAL_PASSWORD_FILE)).expect("pw");
    let ok = t
        .auth
        .login("admin", pw.trim(), addr())
        .await
        .expect("login");
    assert_eq!(ok.role, Role::Admin);
}

#[test]
fn accounts_and_tokens_survive_a_reopen() {
    let t = TestAuth::new("reopen");
    let token = t.token(Role::Engineer);
    let dir = t.dir.join("copy");
    std::fs::create_dir_all(&dir).expect("dir");
    // A second store, closed and opened again (one process per redb file).
    let cfg = AuthSettings::default();
    let first = Auth::open(&dir, Settings::resolve(&cfg, false)).expect("open");
    let out = first
        .execute(
            Command::TokenCreate {
                name: "kept".into(),
                role: Role::Engineer,
                expires_days: Some(1),
            },
            &Principal::cli(),
        )
        .expect("token");
    let kept = out["token"].as_str().expect("value").to_string();
    first.close();
    drop(first);
    let again = Auth::open(&dir, Settings::resolve(&cfg, false)).expect("reopen");
    let p = again
        .authenticate(&headers(&[("authorization", &bearer(&kept))]))
        .expect("token after reopen");
    assert_eq!(p.role, Role::Engineer);
    assert!(
        again
            .authenticate(&headers(&[("authorization", &bearer(&token))]))
            .is_err()
    );
    let meta = std::fs::metadata(dir.join(STORE_FILE)).expect("store");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn until_invalid_resolves_when_the_token_is_revoked() {
    let t = TestAuth::new("watch");
    let value = t.token(Role::Viewer);
    let p = t
        .auth
        .authenticate(&headers(&[("authorization", &bearer(&value))]))
        .expect("token");
    let auth = t.auth.clone();
    let watcher = tokio::spawn(async move { auth.until_invalid(&p).await });
    tokio::task::yield_now().await;
    assert!(!watcher.is_finished());
    let list = t
        .auth
        .execute(Command::TokenList, &Principal::cli())
        .expect("list");
    let id = list[0]["id"].as_u64().expect("id");
    t.auth
        .execute(Command::TokenRevoke { id }, &Principal::cli())
        .expect("revoke");
    tokio::time::timeout(std::time::Duration::from_secs(10), watcher)
        .await
        .expect("resolved after revocation")
        .expect("task");
}

#[tokio::test]
async fn cli_reaches_a_runtime_in_a_deep_data_dir_through_the_socket() {
    let t = TestAuth::new("sock");
    // Deeper than a Unix socket path may be.
    let deep = t.dir.join("d".repeat(60)).join("e".repeat(60));
    std::fs::create_dir_all(&deep).expect("deep dir");
    let cfg = AuthSettings::default();
    let auth = Auth::open(&deep, Settings::resolve(&cfg, false)).expect("open");
    socket::serve(auth.clone()).expect("socket");
    let dir = deep.clone();
    let (out, route) = tokio::task::spawn_blocking(move || {
        cli::run(
            &cfg,
            &dir,
            Command::UserAdd {
                name: "sam".into(),
                role: Role::Viewer,
                password: None,
            },
        )
    })
    .await
    .expect("task")
    .expect("through the socket");
    assert_eq!(route, cli::Route::Socket);
    assert!(out["password"].is_string(), "generated and shown: {out}");
    assert!(
        auth.snapshot().users.contains_key("sam"),
        "the runtime sees it at once"
    );
    let mode = std::fs::metadata(socket::path(&deep))
        .expect("sock")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

// ------------------------------------------------------------ audit log

#[tokio::test]
async fn audit_pages_newest_first_and_filters() {
    let t = TestAuth::new("audit");
    let a = &t.auth.audit;
    for i in 0..30u16 {
        let who = if i % 3 == 0 { "ann" } else { "ben" };
        let mut e = Entry::new(None, "127.0.0.1:1", &format!("act{}", i % 2), "t");
        e.user = who.into();
        a.record(e.status(if i % 5 == 0 { 403 } else { 200 }))
            .await
            .expect("record");
    }
    let page = a
        .query(&Query {
            limit: 4,
            ..Query::default()
        })
        .expect("page");
    let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![30, 29, 28, 27]);
    let next = a
        .query(&Query {
            limit: 4,
            before: page.next,
            ..Query::default()
        })
        .expect("next page");
    assert_eq!(next.entries[0].seq, 26);
    let anns = a
        .query(&Query {
            user: Some("ann".into()),
            limit: 100,
            ..Query::default()
        })
        .expect("ann");
    assert_eq!(anns.entries.len(), 10);
    assert!(anns.next.is_none());
    let denied = a
        .query(&Query {
            outcome: Some(Outcome::Denied),
            action: Some("act0".into()),
            limit: 100,
            ..Query::default()
        })
        .expect("denied");
    assert!(
        denied
            .entries
            .iter()
            .all(|e| e.status == 403 && e.action == "act0")
    );
    assert_eq!(denied.entries.len(), 3, "i = 0, 10, 20");
}

#[tokio::test]
async fn audit_is_pruned_by_size_and_age() {
    let t = TestAuth::with("prune", |c| c.audit_max_bytes = 4_000);
    let a = &t.auth.audit;
    for _ in 0..200 {
        a.record(Entry::new(None, "x", "big", &"t".repeat(100)).status(200))
            .await
            .expect("record");
    }
    let all = a
        .query(&Query {
            limit: 500,
            ..Query::default()
        })
        .expect("all");
    assert!(
        all.entries.len() < 60,
        "pruned to the size: {}",
        all.entries.len()
    );
    assert_eq!(all.entries[0].seq, 200, "newest kept");
    let old = TestAuth::with("age", |c| c.audit_max_age_days = 1);
    let mut e = Entry::new(None, "x", "ancient", "");
    e.time_ms = unix_ms() - 3 * 86_400_000;
    old.auth.audit.record(e).await.expect("old");
    old.auth
        .audit
        .record(Entry::new(None, "x", "fresh", ""))
        .await
        .expect("fresh");
    let left = old
        .auth
        .audit
        .query(&Query {
            limit: 10,
            ..Query::default()
        })
        .expect("left");
    let actions: Vec<&str> = left.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["fresh"]);
}

#[tokio::test]
async fn script_io_writes_are_queued_without_waiting() {
    let t = TestAuth::new("io");
    let ok: Result<(), String> = Ok(());
    let refused: Result<(), String> = Err("只读点".into());
    let a = &t.auth.audit;
    a.record_nowait(Entry::io_write(
        "line.py_1",
        "conveyor.run",
        &serde_json::json!(true),
        &ok,
    ));
    a.record_nowait(Entry::io_write(
        "line.py_1",
        "door",
        &serde_json::json!(1),
        &refused,
    ));
    // A durable record after them commits them too (one writer, in order).
    a.record(Entry::new(None, "", "marker", ""))
        .await
        .expect("marker");
    let page = a
        .query(&Query {
            action: Some("io.write".into()),
            limit: 10,
            ..Query::default()
        })
        .expect("page");
    let got: Vec<(String, u16, String)> = page
        .entries
        .iter()
        .map(|e| (e.target.clone(), e.status, e.user.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("door".into(), 409, "script:line.py_1".into()),
            ("conveyor.run".into(), 200, "script:line.py_1".into()),
        ]
    );
}

#[tokio::test]
async fn around_records_the_answer_status_before_answering() {
    let t = TestAuth::new("around");
    let resp = t
        .auth
        .audit
        .around(
            Entry::new(Some(&Principal::cli()), "", "io.write", "tag:x"),
            async {
                http::Response::builder()
                    .status(StatusCode::CONFLICT)
                    .body(())
                    .expect("response")
            },
        )
        .await;
    assert_eq!(resp.status(), 409);
    let page = t
        .auth
        .audit
        .query(&Query {
            limit: 1,
            ..Query::default()
        })
        .expect("page");
    assert_eq!(page.entries[0].status, 409);
    assert_eq!(page.entries[0].via, "cli");
    assert_eq!(page.entries[0].target, "tag:x");
}
