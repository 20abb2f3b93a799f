//! Folders, move, copy, search and archive of a project, and system info.

use serde_json::{Value, json};

use super::Api;

/// A project with `main.txt` and `lib/util.txt` (text files need no analyzer).
async fn project(api: &Api) -> u64 {
    let p = api
        .post("/api/script/projects", json!({"project_name": "demo"}))
        .await;
    let id = p.ok()["data"]["id"].as_u64().expect("project id");
    for (name, path, content) in [
        ("main.txt", "main.txt", "first line\nHello World\n"),
        (
            "util.txt",
            "lib/util.txt",
            "def helper():\n    return 'hello'\n",
        ),
    ] {
        api.post(
            "/api/script/files",
            json!({"project_id": id, "file_name": name, "file_path": path,
                   "content": content, "file_type": "text"}),
        )
        .await
        .ok();
    }
    id
}

async fn paths(api: &Api, id: u64) -> Vec<(String, String)> {
    let r = api.get(&format!("/api/script/projects/{id}/tree")).await;
    r.ok()["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap_or("").to_string(),
                e["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has(list: &[(String, String)], path: &str, kind: &str) -> bool {
    list.iter().any(|(p, k)| p == path && k == kind)
}

#[tokio::test]
async fn folders_are_made_listed_and_deleted_only_when_asked() {
    let api = Api::new();
    let id = project(&api).await;
    let made = api
        .post(
            &format!("/api/script/projects/{id}/dirs"),
            json!({"path": "a/b"}),
        )
        .await;
    made.ok();
    let list = paths(&api, id).await;
    assert!(
        has(&list, "a", "dir") && has(&list, "a/b", "dir"),
        "{list:?}"
    );
    assert!(has(&list, "lib/util.txt", "file"), "{list:?}");
    // Folders come first.
    assert_eq!(list[0].1, "dir");
    api.post(
        &format!("/api/script/projects/{id}/dirs"),
        json!({"path": "a/b"}),
    )
    .await
    .fails(409, "已存在");
    api.post(
        &format!("/api/script/projects/{id}/dirs"),
        json!({"path": "../x"}),
    )
    .await
    .fails(400, "..");
    let del = |q: &str| format!("/api/script/projects/{id}/dirs?{q}");
    api.send("DELETE", &del("path=lib"), b"")
        .await
        .fails(409, "不是空的");
    let r = api
        .send("DELETE", &del("path=lib&recursive=true"), b"")
        .await;
    assert_eq!(r.ok()["data"]["files_deleted"], json!(1));
    let list = paths(&api, id).await;
    assert!(!list.iter().any(|(p, _)| p.starts_with("lib")), "{list:?}");
    // The file's record went with its folder.
    let search = api.get("/api/script/files/search?keyword=util").await;
    assert_eq!(search.ok()["data"]["count"], json!(0));
    api.send("DELETE", &del("path=nothere"), b"")
        .await
        .fails(404, "不存在");
}

#[tokio::test]
async fn a_moved_file_keeps_its_id_and_a_copy_gets_a_new_one() {
    let api = Api::new();
    let id = project(&api).await;
    let tree = api.get(&format!("/api/script/projects/{id}/tree")).await;
    let main_id = tree.ok()["data"]["entries"]
        .as_array()
        .and_then(|v| v.iter().find(|e| e["path"] == "main.txt"))
        .map(|e| e["file"]["id"].clone())
        .expect("main.txt has a record");
    let mv = |from: &str, to: &str| {
        (
            format!("/api/script/projects/{id}/move"),
            json!({"from": from, "to": to}),
        )
    };
    let (u, b) = mv("main.txt", "lib/main2.txt");
    api.post(&u, b).await.ok();
    let got = api.get(&format!("/api/script/files/{main_id}")).await;
    let data = got.ok()["data"].clone();
    assert_eq!(data["file"]["file_path"], "lib/main2.txt");
    assert_eq!(data["file"]["file_name"], "main2.txt");
    assert_eq!(data["content"], "first line\nHello World\n");
    // A folder moves with its files; into itself it cannot.
    let (u, b) = mv("lib", "lib/inner");
    api.post(&u, b).await.fails(400, "自己里面");
    let (u, b) = mv("lib", "src");
    assert_eq!(api.post(&u, b).await.ok()["data"]["files_moved"], json!(2));
    let (u, b) = mv("nothere.txt", "x.txt");
    api.post(&u, b).await.fails(404, "不存在");
    let (u, b) = mv("src/util.txt", "/etc/passwd");
    api.post(&u, b).await.fails(400, "绝对路径");
    let copy = api
        .post(
            &format!("/api/script/projects/{id}/copy"),
            json!({"from": "src", "to": "src2"}),
        )
        .await;
    assert_eq!(copy.ok()["data"]["files_copied"], json!(2));
    api.post(
        &format!("/api/script/projects/{id}/copy"),
        json!({"from": "src", "to": "src2"}),
    )
    .await
    .fails(409, "已存在");
    let list = paths(&api, id).await;
    assert!(has(&list, "src2/main2.txt", "file"), "{list:?}");
    let found = api.get("/api/script/files/search?keyword=main2").await;
    let files = found.ok()["data"]["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_ne!(files[0]["id"], files[1]["id"]);
}

#[tokio::test]
async fn search_finds_lines_with_numbers_ignoring_case() {
    let api = Api::new();
    let id = project(&api).await;
    let r = api
        .get(&format!("/api/script/grep?q=HELLO&project_id={id}"))
        .await;
    let hits: Vec<Value> = r.ok()["data"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut found: Vec<(String, u64, u64)> = hits
        .iter()
        .map(|h| {
            (
                h["file_path"].as_str().unwrap_or("").to_string(),
                h["line"].as_u64().unwrap_or(0),
                h["column"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![("lib/util.txt".into(), 2, 13), ("main.txt".into(), 2, 1)]
    );
    let one = api.get("/api/script/grep?q=hello&limit=1").await;
    assert_eq!(one.ok()["data"]["truncated"], json!(true));
    api.get("/api/script/grep").await.fails(400, "q");
    api.get("/api/script/grep?q=x&regex=1")
        .await
        .fails(400, "regex");
}

#[tokio::test]
async fn a_project_downloads_as_a_tar_archive() {
    let api = Api::new();
    let id = project(&api).await;
    let r = warp::test::request()
        .path(&format!("/api/script/projects/{id}/archive"))
        .header("host", super::HOST)
        .header("authorization", api.bearer(vwed_auth::Role::Viewer))
        .reply(&api.filter)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let body = r.body();
    assert_eq!(&body[..13], b"demo/lib/util");
    assert_eq!(&body[257..262], b"ustar");
    assert!(body.windows(11).any(|w| w == b"Hello World"));
    api.get("/api/script/projects/99/archive")
        .await
        .fails(404, "不存在");
}

#[tokio::test]
async fn system_info_tells_version_disk_and_hides_secrets() {
    let api = Api::new();
    let r = api.get("/api/system/info").await;
    let d = r.ok()["data"].clone();
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    assert!(d["disk"]["total_bytes"].as_u64().unwrap_or(0) > 0, "{d}");
    assert!(
        d["databases"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["name"] == "vwed.redb")),
        "{d}"
    );
    assert_eq!(d["config"]["smtp_password"], "");
    assert!(d["config"]["data_dir"].is_string());
    assert_eq!(d["board"]["arch"], std::env::consts::ARCH);
}

#[tokio::test]
async fn links_in_a_project_are_never_followed_by_tree_move_copy_or_delete() {
    let api = Api::new();
    let id = project(&api).await;
    let dir = api._dir.0.join("projects/demo");
    let outside = api._dir.0.join("outside");
    std::fs::create_dir_all(outside.join("secret")).expect("mkdir");
    std::fs::write(outside.join("secret/keep.txt"), "KEEP").expect("write");
    std::os::unix::fs::symlink(&outside, dir.join("lib/out")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("secret/keep.txt"), dir.join("f.txt"))
        .expect("symlink");
    let list = paths(&api, id).await;
    assert!(
        !list.iter().any(|(p, _)| p.contains("out") || p == "f.txt"),
        "{list:?}"
    );
    let post = |what: &str, from: &str, to: &str| {
        (
            format!("/api/script/projects/{id}/{what}"),
            json!({"from": from, "to": to}),
        )
    };
    // Through a link, or a link itself as the thing copied: refused.
    let (u, b) = post("copy", "lib/out/secret", "stolen");
    api.post(&u, b).await.fails(400, "符号链接");
    let (u, b) = post("copy", "f.txt", "g.txt");
    api.post(&u, b).await.fails(404, "不存在");
    let (u, b) = post("move", "lib/util.txt", "lib/out/secret/util.txt");
    api.post(&u, b).await.fails(400, "符号链接");
    // A folder copy takes its empty folders with it.
    api.post(
        &format!("/api/script/projects/{id}/dirs"),
        json!({"path": "lib/empty"}),
    )
    .await
    .ok();
    let (u, b) = post("copy", "lib", "lib2");
    api.post(&u, b).await.ok();
    let list = paths(&api, id).await;
    assert!(has(&list, "lib2/empty", "dir"), "{list:?}");
    assert!(
        !list.iter().any(|(p, _)| p.starts_with("lib2/out")),
        "{list:?}"
    );
    // Deleting the folder removes the link, not what it points at.
    let r = api
        .send(
            "DELETE",
            &format!("/api/script/projects/{id}/dirs?path=lib&recursive=true"),
            b"",
        )
        .await;
    r.ok();
    assert!(!dir.join("lib").exists());
    assert_eq!(
        std::fs::read_to_string(outside.join("secret/keep.txt")).expect("kept"),
        "KEEP"
    );
}
