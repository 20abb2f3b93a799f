//! The envelope and its errors: malformed JSON, wrong types, oversized bodies.
//! Whatever arrives, the runtime answers with JSON and never panics.

use std::io::Read;

use vwed_e2e::{Opts, Runtime, json};

#[test]
fn malformed_json_and_wrong_types_are_400_with_a_readable_message() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let fid = rt.create_file(pid, "main.py", "def boot():\n    pass\n");
    let endpoints = [
        ("POST", "/api/script/projects".to_string()),
        ("POST", "/api/script/files".to_string()),
        ("PUT", format!("/api/script/files/{fid}")),
        ("POST", "/api/script/validate-syntax".to_string()),
        ("POST", "/api/script/scripts/start".to_string()),
        ("POST", "/api/script/scripts/execute-function".to_string()),
    ];
    for (m, path) in &endpoints {
        for body in [
            &b"{not json"[..],
            b"{",
            b"{,}",
            b"{'single': 1}",
            b"{\"unterminated",
        ] {
            let r = rt.send_raw(m, path, "application/json", body.to_vec());
            r.fails(400, "请求体不是合法的JSON");
            assert!(r.error().contains("line 1"), "says where: {}", r.text);
        }
        let r = rt.send_raw(m, path, "application/json", vec![0xff, 0xfe, b'{']);
        assert_eq!(r.status, 400, "{m} {path} non-UTF-8: {}", r.text);
        assert_eq!(r.get("success"), &json!(false));
        // A JSON value that is not an object.
        let r = rt.send_raw(m, path, "application/json", b"[1, 2]".to_vec());
        r.fails(400, "请求参数错误");
    }
    rt.post(
        "/api/script/files",
        &json!({"project_id": -1, "file_name": "a.py"}),
    )
    .fails(400, "请求参数错误");
    rt.post(
        "/api/script/files",
        &json!({"project_id": pid, "file_name": ["a.py"]}),
    )
    .fails(400, "请求参数错误");
    rt.put(
        &format!("/api/script/files/{fid}"),
        &json!({"content": null}),
    )
    .fails(400, "请求参数错误");
    rt.post("/api/script/scripts/start", &json!({"file_id": "1"}))
        .fails(400, "请求参数错误");
    rt.post(
        "/api/script/scripts/start",
        &json!({"script_path": "p/main.py", "start_params": "x"}),
    )
    .fails(400, "start_params");

    // Wrong methods and unknown endpoints are JSON too.
    let r = rt.send("DELETE", "/api/script/projects", None, &[]);
    assert!(r.status == 405 || r.status == 404, "{}", r.text);
    assert_eq!(r.get("success"), &json!(false));
    rt.get("/api/script/nothing/here").fails(404, "接口不存在");
    rt.get("/api/script/files/search?keyword=a&project_id=-3")
        .fails(400, "project_id");

    assert!(!rt.stderr().contains("panicked"), "{}", rt.stderr());
}

struct Chunked {
    left: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.left.min(buf.len()).min(512);
        buf[..n].fill(b'a');
        self.left -= n;
        Ok(n)
    }
}

/// Sends an oversized request up to 3 times. The runtime refuses it before reading
/// the body, and the kernel may then reset the connection before the client has read
/// the 413; at least one attempt must see the 413, and none may see anything else.
#[track_caller]
fn expect_413(what: &str, send: impl Fn() -> reqwest::Result<reqwest::blocking::Response>) {
    let mut errors = Vec::new();
    for _ in 0..3 {
        match send() {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().unwrap_or_default();
                assert_eq!(status, 413, "{what}: {text}");
                assert!(
                    text.is_empty() || text.contains("请求体过大"),
                    "{what}: {text}"
                );
                return;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    panic!("{what}: no answer, only transport errors: {errors:?}");
}

#[test]
fn oversized_bodies_are_413() {
    let rt = Runtime::with(
        Opts::default()
            .env("VWED_MAX_BODY_BYTES", 4096)
            .env("VWED_MAX_SCRIPT_BYTES", 1024),
    );
    let pid = rt.create_project("p");
    let client = rt.client();
    let big = "x".repeat(10_000);
    let json_post = |path: &str, body: serde_json::Value| {
        let url = rt.url(path);
        let c = client.clone();
        move || c.post(&url).json(&body).send()
    };
    expect_413(
        "project",
        json_post("/api/script/projects", json!({"project_name": big})),
    );
    expect_413(
        "file",
        json_post(
            "/api/script/files",
            json!({"project_id": pid, "file_name": "a.py", "content": big}),
        ),
    );
    expect_413(
        "validate",
        json_post("/api/script/validate-syntax", json!({"content": big})),
    );
    // Under the body limit but over the script limit.
    let medium = format!("# {}\ndef boot():\n    pass\n", "x".repeat(2000));
    rt.post(
        "/api/script/files",
        &json!({"project_id": pid, "file_name": "a.py", "content": medium}),
    )
    .fails(413, "脚本内容过大");
    assert!(!rt.project_dir("p").join("a.py").exists());

    // Without a Content-Length (chunked), the limit holds as well.
    let r = client
        .post(rt.url("/api/script/projects"))
        .header("content-type", "application/json")
        .body(reqwest::blocking::Body::new(Chunked { left: 100_000 }))
        .send();
    match r {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        // The server may close the connection once it has refused the body.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }

    // Uploads and script routes are bounded too.
    expect_413("upload", || {
        let form = reqwest::blocking::multipart::Form::new()
            .text("project_id", pid.to_string())
            .part(
                "file",
                reqwest::blocking::multipart::Part::bytes(big.clone().into_bytes())
                    .file_name("u.py"),
            );
        client
            .post(rt.url("/api/script/upload"))
            .multipart(form)
            .send()
    });
    assert!(!rt.project_dir("p").join("u.py").exists());
    rt.deploy(
        "p",
        "r.py",
        "def boot():\n    VWED.api.register_route('/in', 'POST', lambda r: {'n': len(r['body'])})\n",
    );
    expect_413("script route", || {
        client
            .post(rt.url("/script-api/in"))
            .header("content-type", "text/plain")
            .body(big.clone())
            .send()
    });
    let r = rt.send_raw("POST", "/script-api/in", "text/plain", b"small".to_vec());
    assert_eq!(r.json, json!({"n": 5}));

    // The runtime is fine afterwards.
    rt.get("/health").expect_status(200);
    assert!(!rt.stderr().contains("panicked"), "{}", rt.stderr());
}
