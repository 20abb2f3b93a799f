//! Path traversal: nothing the API is given can make the runtime write outside a
//! project folder, be it `..`, absolute paths, NUL, backslashes, over-long names or
//! symlinks planted inside a project.

use std::path::{Path, PathBuf};

use vwed_e2e::{Runtime, TempDir, json};

/// Every file below `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                _ => out.push(p),
            }
        }
    }
    out
}

#[test]
fn traversal_names_are_refused_and_nothing_is_written() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let before = all_files(rt.data_dir());
    let long_seg = format!("{}.py", "a".repeat(300));
    let long_path = format!("{}/x.py", vec!["abcd"; 110].join("/"));
    let cases: Vec<(&str, &str)> = vec![
        ("x.py", "../x.py"),
        ("x.py", "../../x.py"),
        ("passwd", "/etc/passwd"),
        ("x.py", "/tmp/x.py"),
        ("x.py", "a/../../x.py"),
        ("x.py", "a/./x.py"),
        ("x.py", "./x.py"),
        ("x.py", "a//x.py"),
        ("a\0b.py", "a\0b.py"),
        ("x.py", "a\0/x.py"),
        ("..\\x.py", "..\\x.py"),
        ("x.py", "a\\..\\..\\x.py"),
        ("..", ""),
        ("../x.py", ""),
        ("a/x.py", ""),
        (".x.py", ""),
        ("x.py", ".git/x.py"),
        (long_seg.as_str(), ""),
        ("x.py", long_path.as_str()),
        ("x\n.py", ""),
    ];
    for (name, path) in &cases {
        let r = rt.post(
            "/api/script/files",
            &json!({"project_id": pid, "file_name": name, "file_path": path, "content": "X = 1\n"}),
        );
        assert_eq!(
            r.status, 400,
            "file_name {name:?} file_path {path:?} must be refused: {}",
            r.text
        );
        assert_eq!(r.get("success"), &json!(false));
        assert!(!r.error().is_empty());
    }
    assert_eq!(
        all_files(rt.data_dir()),
        before,
        "nothing new in the data dir"
    );
    let parent = rt.data_dir().parent().expect("parent of the data dir");
    assert!(!parent.join("x.py").exists());

    // Starting by such a path finds nothing.
    for p in [
        "p/../p/x.py",
        "../p/x.py",
        "p//x.py",
        "p/a\\..\\x.py",
        "/etc/passwd",
    ] {
        let r = rt.start_script(p, None);
        assert!(
            r.status == 404 || r.status == 400,
            "start {p:?}: {}",
            r.text
        );
    }
    // Nor do names made of the project name.
    rt.start_script("..", None).expect_status(404);
}

#[test]
fn a_symlink_in_a_project_does_not_let_a_write_escape() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let outside = TempDir::new("outside");
    let dir = rt.project_dir("p");

    // A directory link.
    std::os::unix::fs::symlink(outside.path(), dir.join("link")).expect("symlink dir");
    let r = rt.create_file_resp(pid, "link/evil.py", "X = 1\n");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        !outside.path().join("evil.py").exists(),
        "write escaped through a dir link"
    );

    // A dangling file link.
    std::os::unix::fs::symlink(outside.path().join("dangle.py"), dir.join("dangle.py"))
        .expect("symlink file");
    let r = rt.create_file_resp(pid, "dangle.py", "X = 1\n");
    assert!(r.status == 400 || r.status == 409, "{}", r.text);
    assert!(
        !outside.path().join("dangle.py").exists(),
        "write escaped through a file link"
    );

    // A link that replaces a file the runtime knows: update must not follow it.
    let fid = rt.create_file(pid, "main.py", "X = 1\n");
    let victim = outside.path().join("victim.py");
    std::fs::write(&victim, "ORIGINAL\n").expect("victim");
    std::fs::remove_file(dir.join("main.py")).expect("rm");
    std::os::unix::fs::symlink(&victim, dir.join("main.py")).expect("symlink over file");
    let r = rt.put(
        &format!("/api/script/files/{fid}"),
        &json!({"content": "EVIL\n"}),
    );
    assert_ne!(r.status, 200, "update through a link must fail: {}", r.text);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "ORIGINAL\n"
    );
    // Nor can it be read or started through the link.
    let r = rt.get(&format!("/api/script/files/{fid}"));
    assert_ne!(r.status, 200, "read through a link: {}", r.text);
    assert!(!r.text.contains("ORIGINAL"));
    let r = rt.start_script("p/main.py", None);
    assert_ne!(r.status, 200, "start through a link: {}", r.text);
    // Deleting removes at most the link, never the target.
    let _ = rt.delete(&format!("/api/script/files/{fid}"));
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "ORIGINAL\n"
    );

    // A link to a folder with a subfolder path below it.
    std::os::unix::fs::symlink(outside.path(), dir.join("deep")).expect("symlink");
    let r = rt.create_file_resp(pid, "deep/sub/evil.py", "X = 1\n");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(!outside.path().join("sub").exists());

    // The project folder itself replaced by a link.
    let pid2 = rt.create_project("q");
    let qdir = rt.project_dir("q");
    std::fs::remove_dir(&qdir).expect("rmdir q");
    std::os::unix::fs::symlink(outside.path(), &qdir).expect("symlink project");
    let r = rt.create_file_resp(pid2, "evil2.py", "X = 1\n");
    assert!(
        !outside.path().join("evil2.py").exists(),
        "write escaped through a linked project folder: {}",
        r.text
    );
}
