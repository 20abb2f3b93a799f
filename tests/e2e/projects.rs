//! Projects: create, list, the files of a project.

use vwed_e2e::{Runtime, json};

#[test]
fn create_project_answers_the_seed_shape_and_makes_the_folder() {
    let rt = Runtime::start();
    let r = rt.post(
        "/api/script/projects",
        &json!({"project_name": "测试项目", "description": "这是一个测试项目", "created_by": "admin"}),
    );
    r.ok();
    assert_eq!(r.get("message"), "项目 测试项目 创建成功");
    let d = r.data();
    assert!(d["id"].as_u64().is_some(), "{}", r.text);
    assert_eq!(d["project_name"], "测试项目");
    assert_eq!(d["project_path"], "projects/测试项目");
    assert_eq!(d["description"], "这是一个测试项目");
    assert_eq!(d["status"], "active");
    assert_eq!(d["created_by"], "admin");
    assert!(d["created_at"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(d["updated_at"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        rt.project_dir("测试项目").is_dir(),
        "project folder on disk"
    );

    // The same name again is a conflict.
    rt.create_project_resp("测试项目").fails(409, "已存在");
    // A name of exactly 100 characters is fine.
    rt.create_project("a".repeat(100).as_str());
}

#[test]
fn bad_project_names_are_refused_and_nothing_is_created() {
    let rt = Runtime::start();
    let long = "a".repeat(101);
    for bad in [
        "..",
        ".",
        "a/b",
        "",
        "   ",
        long.as_str(),
        "a\\b",
        "a\0b",
        ".hidden",
    ] {
        let r = rt.create_project_resp(bad);
        assert_eq!(r.status, 400, "name {bad:?} must be refused: {}", r.text);
        assert_eq!(r.get("success"), &json!(false), "{}", r.text);
        assert!(!r.error().is_empty(), "readable error for {bad:?}");
    }
    // created_by longer than 100 characters
    rt.post(
        "/api/script/projects",
        &json!({"project_name": "ok", "created_by": "x".repeat(101)}),
    )
    .fails(400, "created_by");
    let list = rt.get("/api/script/projects?status=all");
    list.ok();
    assert_eq!(list.data(), &json!([]), "no project was created");
    let entries: Vec<_> = std::fs::read_dir(rt.data_dir().join("projects"))
        .expect("projects dir")
        .collect();
    assert!(entries.is_empty(), "no folder was created: {entries:?}");
    assert!(!rt.data_dir().join("a").exists());
}

#[test]
fn project_requests_with_bad_bodies_are_400() {
    let rt = Runtime::start();
    rt.send_raw(
        "POST",
        "/api/script/projects",
        "application/json",
        b"{not json".to_vec(),
    )
    .fails(400, "JSON");
    rt.post("/api/script/projects", &json!({"project_name": 5}))
        .fails(400, "请求参数错误");
    rt.post("/api/script/projects", &json!({}))
        .fails(400, "project_name");
    rt.post(
        "/api/script/projects",
        &json!({"project_name": "x", "bogus": 1}),
    )
    .fails(400, "bogus");
    rt.get("/api/script/projects/abc/files").expect_status(404);
}

#[test]
fn list_filters_by_status() {
    let rt = Runtime::start();
    let a = rt.create_project("alpha");
    let b = rt.create_project("beta");
    let r = rt.get("/api/script/projects");
    r.ok();
    let ids: Vec<u64> = r
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    assert_eq!(ids, vec![a, b], "default lists active projects: {}", r.text);
    let r = rt.get("/api/script/projects?status=active");
    assert_eq!(r.data().as_array().map(Vec::len), Some(2), "{}", r.text);
    let r = rt.get("/api/script/projects?status=archived");
    r.ok();
    assert_eq!(r.data(), &json!([]), "no archived projects");
    for p in r.data().as_array().expect("list") {
        assert_eq!(p["status"], "archived");
    }
}

#[test]
fn project_files_with_and_without_content() {
    let rt = Runtime::start();
    let pid = rt.create_project("proj");
    let src = "def boot():\n    pass\n";
    let fid = rt.create_file(pid, "main.py", src);
    rt.create_file(pid, "lib/util.py", "X = 1\n");

    let r = rt.get(&format!("/api/script/projects/{pid}/files"));
    r.ok();
    let d = r.data();
    assert_eq!(d["project"]["id"], json!(pid));
    assert_eq!(d["project"]["project_name"], "proj");
    assert_eq!(d["project"]["project_path"], "projects/proj");
    let files = d["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{}", r.text);
    let main = files
        .iter()
        .find(|f| f["id"] == json!(fid))
        .expect("main.py listed");
    assert_eq!(main["file_name"], "main.py");
    assert_eq!(main["file_path"], "main.py");
    assert_eq!(main["file_type"], "python");
    assert_eq!(main["size"], json!(src.len()));
    assert_eq!(main["has_boot_function"], json!(true));
    assert_eq!(main["status"], "active");
    assert!(
        main.get("content").is_none(),
        "no content unless asked: {main}"
    );
    let util = files
        .iter()
        .find(|f| f["file_path"] == "lib/util.py")
        .expect("util listed");
    assert_eq!(util["has_boot_function"], json!(false));

    let r = rt.get(&format!(
        "/api/script/projects/{pid}/files?include_content=true"
    ));
    r.ok();
    let files = r.data()["files"].as_array().expect("files").clone();
    let main = files
        .iter()
        .find(|f| f["id"] == json!(fid))
        .expect("main.py");
    assert_eq!(main["content"], src);

    rt.get(&format!(
        "/api/script/projects/{pid}/files?include_content=maybe"
    ))
    .fails(400, "include_content");
    rt.get("/api/script/projects/9999/files")
        .fails(404, "不存在");
}
