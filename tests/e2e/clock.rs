//! Wall-clock jumps, made with libfaketime under the runtime (wall time only:
//! the monotonic clock runs on). Sessions and tokens expire by wall time: a
//! jump forward ends them early (401, and an open WebSocket closes within the
//! runtime's re-check period), a jump back makes them valid again unless the
//! minute's pruning removed an expired session meanwhile. Tokens without an
//! expiry, revocation and the login throttle (monotonic) do not move with it;
//! the audit log keeps its order (by sequence) when time goes backwards.

use std::path::PathBuf;

use tungstenite::protocol::frame::coding::CloseCode;
use vwed_e2e::*;

use crate::access::{admin_session, new_token};

fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file());
    found.expect("libfaketime is not installed (scripts/install-deps; .ci/apt-packages.txt)")
}

/// A runtime whose wall clock is real time plus what `offset` says (`+2d`).
fn runtime_with_clock(offset: &std::path::Path) -> Runtime {
    std::fs::write(offset, "+0\n").expect("offset file");
    Runtime::with(
        Opts::default()
            .env("LD_PRELOAD", libfaketime().display())
            .env("FAKETIME_TIMESTAMP_FILE", offset.display())
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    )
}

fn jump(offset: &std::path::Path, to: &str) {
    std::fs::write(offset, format!("{to}\n")).expect("offset file");
}

#[test]
fn wall_clock_jumps_move_session_and_token_expiry_but_not_revocation() {
    let dir = TempDir::new("clock");
    let offset = dir.path().join("offset");
    let rt = runtime_with_clock(&offset);
    let (_, day) = new_token(&rt, rt.token(), "viewer", Some(1));
    let (revoked_id, revoked) = new_token(&rt, rt.token(), "viewer", Some(1));
    let (cookie, _) = admin_session(&rt);
    let me_by_cookie = || {
        rt.bare()
            .get(rt.url("/api/auth/me"))
            .header("cookie", &cookie)
            .send()
            .expect("me")
            .status()
            .as_u16()
    };
    assert_eq!(me_by_cookie(), 200);
    let auth = format!("Bearer {day}");
    let mut socket =
        ws::connect_with(&rt, "?client_id=day", &[("authorization", &auth)]).expect("socket");
    ws::wait(&mut socket, "welcome", |m| m["type"] == "welcome");
    rt.delete(&format!("/api/auth/tokens/{revoked_id}")).ok();

    // Two days ahead: the day token and the 12-hour session are over.
    jump(&offset, "+2d");
    rt.send_as(Some(&day), "GET", "/api/auth/me", None)
        .fails(401, "已过期");
    assert_eq!(me_by_cookie(), 401);
    rt.get("/api/auth/me").ok();
    assert_eq!(ws::close_code(&mut socket), Some(CloseCode::Policy));

    // Back to now: they work again (nothing pruned the session in these
    // seconds); the revoked token stays revoked.
    jump(&offset, "+0");
    rt.send_as(Some(&day), "GET", "/api/auth/me", None).ok();
    assert_eq!(me_by_cookie(), 200);
    rt.send_as(Some(&revoked), "GET", "/api/auth/me", None)
        .fails(401, "吊销");

    // A day back: records made now carry earlier times, and the log still
    // lists newest first by its sequence.
    jump(&offset, "-1d");
    rt.create_project("yesterday");
    let r = rt.get("/api/audit?limit=3");
    let entries = r.ok().data()["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        entries[0]["action"],
        json!("POST /api/script/projects"),
        "{entries:?}"
    );
    assert!(entries[0]["seq"].as_u64() > entries[1]["seq"].as_u64());
    assert!(entries[0]["time_ms"].as_u64() < entries[1]["time_ms"].as_u64());
}
