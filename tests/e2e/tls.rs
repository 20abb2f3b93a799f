//! TLS on the real binary: the API over HTTPS with the certificate made on
//! first start (its fingerprint in the log, session cookies `Secure`),
//! `VWED.http` and the task server at HTTPS peers trusted through
//! `tls_ca_file`, and mail over SMTP with STARTTLS, all through the runtime's
//! rustls stack.

use vwed_e2e::peers::{TestCa, http_standin, smtp_standin};
use vwed_e2e::*;

use crate::integration::{FETCHER, TASK_CLIENT, mail_once, wait_mail};

/// `AB:CD:...`, as the runtime logs it.
fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint the runtime logged for its certificate.
fn logged_fingerprint(log: &str) -> String {
    let at = log
        .find("SHA-256 fingerprint ")
        .unwrap_or_else(|| panic!("no fingerprint in the log:\n{log}"));
    log[at + "SHA-256 fingerprint ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == ':')
        .collect()
}

#[test]
fn the_api_answers_over_https_with_the_certificate_whose_fingerprint_is_logged() {
    let rt = Runtime::with(Opts::default().https());
    assert!(rt.base.starts_with("https://"), "{}", rt.base);
    assert!(
        rt.stderr().contains("listening on https://"),
        "{}",
        rt.stderr()
    );
    // The client trusts only the runtime's own certificate (tls/cert.pem).
    let r = rt
        .client()
        .get(rt.url("/api/auth/me"))
        .send()
        .expect("HTTPS");
    assert_eq!(r.status().as_u16(), 200);
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    let presented = sha256_hex(info.peer_certificate().expect("a certificate"));
    assert_eq!(presented, logged_fingerprint(&rt.stderr()));

    // A client that does not know the certificate refuses it; plain HTTP gets nowhere.
    let stranger = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    assert!(stranger.get(rt.url("/health")).send().is_err());
    let plain = format!("http://127.0.0.1:{}/health", rt.port);
    assert!(
        stranger
            .get(plain)
            .send()
            .map_or(true, |r| r.status() != 200)
    );

    // Over TLS the session cookie is Secure.
    let pw = std::fs::read_to_string(rt.data_dir().join("initial-admin-password"))
        .expect("initial password");
    let login = rt.post(
        "/api/auth/login",
        &json!({"username": "admin", "password": pw.trim()}),
    );
    login.ok();
    let cookie = login.header("set-cookie").expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");

    // The certificate is made once: a restart serves the same one.
    let data = rt.terminate_keep_data(std::time::Duration::from_secs(20));
    let rt = Runtime::start_in(data, Opts::default().https());
    assert_eq!(logged_fingerprint(&rt.stderr()), presented);
}

#[test]
fn vwed_http_reaches_https_peers_signed_by_the_configured_ca_only() {
    let ca = TestCa::new();
    let trusted = http_standin(Some(&ca.issue("peer")));
    let stranger = http_standin(Some(&ca.stranger("stranger")));
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_HTTP_ALLOW_HOSTS", "127.0.0.1")
            .env("VWED_TLS_CA_FILE", ca.cert.display()),
    );
    rt.deploy("net", "fetch.py", &py(FETCHER));
    let fetch = |port: u16| {
        let base = format!("https://127.0.0.1:{port}");
        rt.execute_ok(None, "fetch", json!({"base": base, "kind": "post"}))
    };
    let r = fetch(trusted.port);
    assert_eq!(r["status"], json!(200), "{r}");
    assert_eq!(r["json"]["json"], json!({"key": "value"}), "{r}");
    let r = fetch(stranger.port);
    let e = r["error"].as_str().unwrap_or("");
    assert!(
        e.contains("HTTP 请求失败") && e.to_ascii_lowercase().contains("certificate"),
        "{r}"
    );
}

#[test]
fn task_server_is_reached_over_https_checked_against_the_configured_ca() {
    let ca = TestCa::new();
    let with_server = |peer: u16| {
        let rt = Runtime::with(
            Opts::default()
                .env("VWED_TASK_SERVER_URL", format!("https://127.0.0.1:{peer}"))
                .env("VWED_TLS_CA_FILE", ca.cert.display()),
        );
        rt.deploy("tasks", "client.py", &py(TASK_CLIENT));
        rt.execute_ok(None, "remote", json!({"op": "create"}))
    };
    let trusted = http_standin(Some(&ca.issue("tasks")));
    let created = with_server(trusted.port);
    assert_eq!(created["success"], json!(true), "{created}");
    assert_eq!(created["data"]["request"]["task_label"], json!("move"));
    let stranger = http_standin(Some(&ca.stranger("stranger")));
    let r = with_server(stranger.port);
    let e = r["error"].as_str().unwrap_or("");
    assert!(
        e.contains("任务服务器") && e.to_ascii_lowercase().contains("certificate"),
        "{r}"
    );
}

#[test]
fn mail_goes_over_starttls_checked_against_the_configured_ca() {
    let ca = TestCa::new();
    let out = TempDir::new("smtp-tls");
    let smtp = smtp_standin(
        out.path(),
        Some(("edge", "s3cret")),
        Some(&ca.issue("smtp")),
    );
    let opts = |starttls: bool| {
        Opts::default()
            .env("VWED_SMTP_HOST", "127.0.0.1")
            .env("VWED_SMTP_PORT", smtp.port)
            .env("VWED_SMTP_FROM", "edge@example.com")
            .env("VWED_SMTP_USERNAME", "edge")
            .env("VWED_SMTP_PASSWORD", "s3cret")
            .env("VWED_SMTP_STARTTLS", starttls)
            .env("VWED_TLS_CA_FILE", ca.cert.display())
    };
    // Without STARTTLS the server (which requires it) refuses the plain session.
    let r = mail_once(opts(false));
    assert!(
        r["error"].as_str().unwrap_or("").contains("邮件发送失败"),
        "{r}"
    );
    let r = mail_once(opts(true));
    assert_eq!(r["to"], json!(["admin@example.com"]), "{r}");
    let mails = wait_mail(out.path(), 1);
    assert!(mails[0].contains("X-Over-TLS: yes"), "{}", mails[0]);

    // A server whose certificate the CA did not sign is refused before AUTH.
    let stranger = smtp_standin(
        out.path(),
        Some(("edge", "s3cret")),
        Some(&ca.stranger("s2")),
    );
    let r = mail_once(opts(true).env("VWED_SMTP_PORT", stranger.port));
    let e = r["error"].as_str().unwrap_or("");
    assert!(
        e.contains("邮件发送失败") && e.to_ascii_lowercase().contains("certificate"),
        "{r}"
    );
}
