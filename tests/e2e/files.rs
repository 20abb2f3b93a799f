//! Script files: create, get, update with backups, delete, search, syntax checks,
//! upload. Sources are real files under `<data-dir>/projects/<project>/<path>`.

use reqwest::blocking::multipart::{Form, Part};
use vwed_e2e::{Runtime, json, py};

fn disk(rt: &Runtime, project: &str, path: &str) -> String {
    std::fs::read_to_string(rt.project_dir(project).join(path))
        .unwrap_or_else(|e| panic!("{project}/{path} on disk: {e}"))
}

#[test]
fn create_without_content_uses_the_template_with_boot() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let r = rt.post(
        "/api/script/files",
        &json!({"project_id": pid, "file_name": "main.py", "file_path": "main.py", "created_by": "admin"}),
    );
    r.ok();
    assert_eq!(r.get("message"), "文件 main.py 创建成功");
    let d = r.data();
    let content = d["content"].as_str().expect("content").to_string();
    assert!(content.contains("def boot():"), "{content}");
    assert_eq!(d["has_boot_function"], json!(true));
    assert_eq!(d["file_type"], "python");
    assert_eq!(d["project_id"], json!(pid));
    assert_eq!(d["file_name"], "main.py");
    assert_eq!(d["file_path"], "main.py");
    assert_eq!(d["size"], json!(content.len()));
    assert_eq!(d["status"], "active");
    assert_eq!(d["created_by"], "admin");
    assert_eq!(disk(&rt, "p", "main.py"), content);
    // The template starts as it is.
    let sid = rt.start_ok("p/main.py", None);
    assert!(rt.running_entry(&sid).is_some());
}

#[test]
fn create_get_and_files_on_disk() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let src = "def boot():\n    print('Hello VWED!')\n";
    let r = rt.post(
        "/api/script/files",
        &json!({"project_id": pid, "file_name": "util.py", "file_path": "lib/util.py", "content": src}),
    );
    r.ok();
    let fid = r.data()["id"].as_u64().expect("id");
    assert_eq!(r.data()["file_path"], "lib/util.py");
    assert_eq!(disk(&rt, "p", "lib/util.py"), src);
    // file_path may name the folder only.
    let r = rt.post(
        "/api/script/files",
        &json!({"project_id": pid, "file_name": "b.py", "file_path": "lib/", "content": "X = 1\n"}),
    );
    r.ok();
    assert_eq!(r.data()["file_path"], "lib/b.py");
    assert_eq!(r.data()["has_boot_function"], json!(false));
    assert_eq!(disk(&rt, "p", "lib/b.py"), "X = 1\n");

    let r = rt.get(&format!("/api/script/files/{fid}"));
    r.ok();
    assert_eq!(r.data()["content"], src);
    let f = &r.data()["file"];
    assert_eq!(f["id"], json!(fid));
    assert_eq!(f["project_id"], json!(pid));
    assert_eq!(f["file_name"], "util.py");
    assert_eq!(f["size"], json!(src.len()));
    assert_eq!(f["has_boot_function"], json!(true));
    for k in ["created_at", "updated_at", "status", "file_type"] {
        assert!(f.get(k).is_some(), "{k} in {f}");
    }

    // Errors.
    rt.create_file_resp(pid, "lib/util.py", "x")
        .fails(409, "已存在");
    rt.create_file_resp(9999, "a.py", "x").fails(404, "不存在");
    rt.post(
        "/api/script/files",
        &json!({"project_id": pid, "file_name": "a.py", "file_path": "b.py"}),
    )
    .fails(400, "不一致");
    rt.post(
        "/api/script/files",
        &json!({"project_id": "1", "file_name": "a.py"}),
    )
    .fails(400, "请求参数错误");
    rt.post("/api/script/files", &json!({"file_name": "a.py"}))
        .fails(400, "project_id");
    rt.post(
        "/api/script/files",
        &json!({"project_id": pid, "file_name": "c.py", "file_type": "py thon"}),
    )
    .fails(400, "file_type");
    rt.get("/api/script/files/9999").fails(404, "不存在");
    rt.get("/api/script/files/notanumber").expect_status(404);
}

#[test]
fn update_keeps_a_backup_and_recomputes_has_boot() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let v1 = "def boot():\n    pass\n";
    let fid = rt.create_file(pid, "main.py", v1);

    // 'boot' only inside a string and a comment: Python's parser says no boot().
    let v2 = py(r#"
        TEXT = "def boot():\n    pass"
        # def boot():
        def not_boot():
            return 'boot'
    "#);
    let r = rt.put(
        &format!("/api/script/files/{fid}"),
        &json!({"content": v2, "updated_by": "admin"}),
    );
    r.ok();
    assert_eq!(r.get("message"), "文件内容更新成功");
    let f = &r.data()["file"];
    assert_eq!(f["has_boot_function"], json!(false), "{}", r.text);
    assert_eq!(f["content"], v2.as_str());
    assert_eq!(f["size"], json!(v2.len()));
    assert_eq!(disk(&rt, "p", "main.py"), v2);
    let backup = r.data()["backup_path"]
        .as_str()
        .expect("backup_path")
        .to_string();
    let b = rt.get(&backup);
    b.ok();
    assert_eq!(b.data()["content"], v1, "backup holds the previous content");

    // The record agrees.
    let g = rt.get(&format!("/api/script/files/{fid}"));
    assert_eq!(g.data()["file"]["has_boot_function"], json!(false));
    assert_eq!(g.data()["content"], v2.as_str());

    // An async boot counts.
    let v3 = "async def boot():\n    pass\n";
    let r = rt.put(&format!("/api/script/files/{fid}"), &json!({"content": v3}));
    r.ok();
    assert_eq!(r.data()["file"]["has_boot_function"], json!(true));
    let backup2 = r.data()["backup_path"]
        .as_str()
        .expect("backup_path")
        .to_string();
    assert_ne!(backup, backup2);
    assert_eq!(rt.get(&backup2).data()["content"], v2.as_str());
    assert_eq!(rt.get(&backup).data()["content"], v1);
    let versions = rt.get(&format!("/api/script/files/{fid}/versions"));
    versions.ok();
    assert_eq!(
        versions.data()["versions"].as_array().map(Vec::len),
        Some(2)
    );

    // A boot nested in a class or function is not the module's boot().
    let v4 = "class A:\n    def boot(self):\n        pass\n";
    let r = rt.put(&format!("/api/script/files/{fid}"), &json!({"content": v4}));
    assert_eq!(
        r.data()["file"]["has_boot_function"],
        json!(false),
        "{}",
        r.text
    );

    rt.put("/api/script/files/9999", &json!({"content": "x"}))
        .fails(404, "不存在");
    rt.put(&format!("/api/script/files/{fid}"), &json!({}))
        .fails(400, "content");
    rt.get(&format!("/api/script/files/{fid}/versions/99"))
        .fails(404, "版本");
}

#[test]
fn delete_is_refused_while_the_script_runs() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let fid = rt.create_file(pid, "main.py", "def boot():\n    pass\n");
    let sid = rt.start_ok("p/main.py", None);
    let r = rt.delete(&format!("/api/script/files/{fid}"));
    r.fails(409, "正在运行");
    assert!(
        r.error().contains(&sid),
        "names the running script: {}",
        r.text
    );
    assert!(rt.project_dir("p").join("main.py").is_file());
    rt.stop(&sid).ok();
    let r = rt.delete(&format!("/api/script/files/{fid}"));
    r.ok();
    assert_eq!(r.get("message"), "文件 main.py 删除成功");
    assert!(
        !rt.project_dir("p").join("main.py").exists(),
        "removed from disk"
    );
    rt.get(&format!("/api/script/files/{fid}"))
        .fails(404, "不存在");
    rt.delete(&format!("/api/script/files/{fid}"))
        .fails(404, "不存在");
    // The name is free again.
    rt.create_file(pid, "main.py", "X = 2\n");
}

#[test]
fn search_by_keyword_project_type_and_boot() {
    let rt = Runtime::start();
    let a = rt.create_project("alpha");
    let b = rt.create_project("beta");
    let f1 = rt.create_file(a, "robot_main.py", "def boot():\n    pass\n");
    let f2 = rt.create_file(a, "robot_util.py", "X = 1\n");
    let f3 = rt.create_file(b, "robot_b.py", "def boot():\n    pass\n");
    let r = rt.post(
        "/api/script/files",
        &json!({"project_id": b, "file_name": "robot.txt", "content": "notes", "file_type": "text"}),
    );
    r.ok();
    let f4 = r.data()["id"].as_u64().expect("id");
    rt.create_file(b, "other.py", "def boot():\n    pass\n");

    let ids = |q: &str| -> Vec<u64> {
        let r = rt.get(&format!("/api/script/files/search?{q}"));
        r.ok();
        let files = r.data()["files"].as_array().expect("files").clone();
        assert_eq!(r.data()["count"], json!(files.len()));
        let mut v: Vec<u64> = files.iter().filter_map(|f| f["id"].as_u64()).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(ids("keyword=robot"), vec![f1, f2, f3, f4]);
    assert_eq!(ids("keyword=ROBOT_M"), vec![f1], "case-insensitive");
    assert_eq!(ids(&format!("keyword=robot&project_id={a}")), vec![f1, f2]);
    assert_eq!(ids("keyword=robot&file_type=text"), vec![f4]);
    assert_eq!(ids("keyword=robot&has_boot=true"), vec![f1, f3]);
    assert_eq!(ids("keyword=robot&has_boot=false"), vec![f2, f4]);
    assert_eq!(ids("keyword=nothing-matches"), Vec::<u64>::new());
    let r = rt.get("/api/script/files/search?keyword=robot_b");
    let hit = &r.data()["files"][0];
    assert_eq!(hit["project_name"], "beta");
    assert_eq!(hit["file_name"], "robot_b.py");
    assert_eq!(hit["has_boot_function"], json!(true));
    assert_eq!(hit["file_type"], "python");
    assert!(hit["created_at"].as_str().is_some());

    rt.get("/api/script/files/search").fails(400, "keyword");
    rt.get("/api/script/files/search?keyword=a&has_boot=maybe")
        .fails(400, "has_boot");
    rt.get("/api/script/files/search?keyword=a&project_id=x")
        .fails(400, "project_id");
}

#[test]
fn validate_syntax() {
    let rt = Runtime::start();
    let r = rt.post(
        "/api/script/validate-syntax",
        &json!({"content": "def boot():\n    return 1\n"}),
    );
    r.ok();
    assert_eq!(r.data()["valid"], json!(true));
    assert_eq!(r.data()["message"], "语法检查通过");

    let bad = "def boot():\n    x = 1\n    if x\n        pass\n";
    let r = rt.post("/api/script/validate-syntax", &json!({"content": bad}));
    r.ok();
    let d = r.data();
    assert_eq!(d["valid"], json!(false), "{}", r.text);
    assert!(
        d["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("语法错误")),
        "{}",
        r.text
    );
    assert_eq!(d["line"], json!(3), "{}", r.text);
    assert!(d["offset"].as_u64().is_some_and(|o| o >= 1), "{}", r.text);

    // Errors the compiler finds after parsing count too.
    let r = rt.post(
        "/api/script/validate-syntax",
        &json!({"content": "def f():\n    pass\nreturn 5\n"}),
    );
    assert_eq!(r.data()["valid"], json!(false), "{}", r.text);
    assert_eq!(r.data()["line"], json!(3), "{}", r.text);

    // The content is parsed, never run.
    let marker = std::env::temp_dir().join(format!("vwed-e2e-validate-{}", std::process::id()));
    let evil = format!("import os\nos.system('touch {}')\n", marker.display());
    let r = rt.post("/api/script/validate-syntax", &json!({"content": evil}));
    assert_eq!(r.data()["valid"], json!(true));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!marker.exists(), "validate-syntax ran the code");

    rt.post("/api/script/validate-syntax", &json!({}))
        .fails(400, "content");
    rt.post("/api/script/validate-syntax", &json!({"content": 5}))
        .fails(400, "请求参数错误");
}

#[test]
fn upload_creates_a_file() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let src = "def boot():\n    pass\n";
    let form = Form::new().text("project_id", pid.to_string()).part(
        "file",
        Part::bytes(src.as_bytes().to_vec()).file_name("uploaded_script.py"),
    );
    let r = rt.send_multipart("/api/script/upload", form);
    r.ok();
    assert_eq!(r.get("message"), "文件上传成功");
    let d = r.data();
    assert_eq!(d["file_name"], "uploaded_script.py");
    assert_eq!(d["file_path"], "uploaded_script.py");
    assert_eq!(d["size"], json!(src.len()));
    assert_eq!(d["has_boot_function"], json!(true));
    assert!(d["created_at"].as_str().is_some());
    assert_eq!(disk(&rt, "p", "uploaded_script.py"), src);
    let fid = d["id"].as_u64().expect("id");
    rt.get(&format!("/api/script/files/{fid}")).ok();

    // A path in the file name keeps only its last part.
    let form = Form::new().text("project_id", pid.to_string()).part(
        "file",
        Part::bytes(b"X = 1\n".to_vec()).file_name("../../evil.py"),
    );
    let r = rt.send_multipart("/api/script/upload", form);
    r.ok();
    assert_eq!(r.data()["file_path"], "evil.py");
    assert_eq!(r.data()["has_boot_function"], json!(false));
    assert!(rt.project_dir("p").join("evil.py").is_file());
    assert!(!rt.data_dir().join("evil.py").exists());
    assert!(!rt.data_dir().join("projects/evil.py").exists());

    // Missing parts.
    let form = Form::new().part("file", Part::bytes(b"x".to_vec()).file_name("a.py"));
    rt.send_multipart("/api/script/upload", form)
        .fails(400, "project_id");
    let form = Form::new().text("project_id", pid.to_string());
    rt.send_multipart("/api/script/upload", form)
        .fails(400, "file");
    let form = Form::new()
        .text("project_id", "nope")
        .part("file", Part::bytes(b"x".to_vec()).file_name("a.py"));
    rt.send_multipart("/api/script/upload", form)
        .fails(400, "project_id");
    let form = Form::new()
        .text("project_id", "9999")
        .part("file", Part::bytes(b"x".to_vec()).file_name("a.py"));
    rt.send_multipart("/api/script/upload", form)
        .fails(404, "不存在");
    // Same name twice.
    let form = Form::new().text("project_id", pid.to_string()).part(
        "file",
        Part::bytes(b"x".to_vec()).file_name("uploaded_script.py"),
    );
    rt.send_multipart("/api/script/upload", form)
        .fails(409, "已存在");
}

#[test]
fn saving_code_with_a_syntax_error_succeeds_and_says_where() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    // boot() is there; line 4 is half-written.
    let broken = "def boot():\n    pass\n\nif (:\n";
    let r = rt.create_file_resp(pid, "main.py", broken);
    r.ok();
    let d = r.data();
    assert_eq!(d["has_boot_function"], json!(true), "{}", r.text);
    assert_eq!(d["syntax_error"]["line"], json!(4), "{}", r.text);
    assert!(d["syntax_error"]["offset"].as_u64().is_some(), "{}", r.text);
    assert!(
        d["syntax_error"]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("语法错误")
    );
    assert!(
        r.get("message").as_str().unwrap_or("").contains("第 4 行"),
        "{}",
        r.text
    );
    let fid = d["id"].as_u64().expect("id");
    assert_eq!(disk(&rt, "p", "main.py"), broken, "saved all the same");
    let g = rt.get(&format!("/api/script/files/{fid}"));
    assert_eq!(g.data()["file"]["has_boot_function"], json!(true));

    // PUT: the same, and a fix clears the error.
    let no_boot = "def setup():\n    pass\nx = = 1\n";
    let r = rt.put(
        &format!("/api/script/files/{fid}"),
        &json!({"content": no_boot}),
    );
    r.ok();
    assert_eq!(
        r.data()["file"]["has_boot_function"],
        json!(false),
        "{}",
        r.text
    );
    assert_eq!(r.data()["syntax_error"]["line"], json!(3), "{}", r.text);
    let fixed = "async def boot():\n    pass\n";
    let r = rt.put(
        &format!("/api/script/files/{fid}"),
        &json!({"content": fixed}),
    );
    r.ok();
    assert_eq!(r.data()["file"]["has_boot_function"], json!(true));
    assert!(r.data()["syntax_error"].is_null(), "{}", r.text);
    assert_eq!(r.get("message"), "文件内容更新成功");
}
