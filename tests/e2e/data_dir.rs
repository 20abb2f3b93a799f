//! What the runtime does with what it finds in its data dir (issue 9): a link
//! anywhere below it never leads a read or a write elsewhere, and temporary
//! files an interrupted write left are removed at start and never listed.

use std::path::Path;

use vwed_e2e::{Opts, Resp, Runtime, TempDir, json};

/// Every file below `dir`, recursively, as paths relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[track_caller]
fn refused_as_link(r: &Resp) {
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("符号链接"), "says why: {}", r.text);
}

#[test]
fn a_symlinked_project_folder_does_not_lead_writes_outside_the_data_dir() {
    let rt = Runtime::start();
    let pid = rt.create_project("q");
    let fid = rt.create_file(pid, "main.py", "def boot():\n    pass\n");
    let outside = TempDir::new("out");
    // The folder the write would land in already exists out there.
    std::fs::create_dir_all(outside.path().join("sub")).expect("mkdir");
    std::fs::write(outside.path().join("main.py"), "SECRET = 1\n").expect("write");
    let qdir = rt.project_dir("q");
    std::fs::remove_dir_all(&qdir).expect("rm q");
    std::os::unix::fs::symlink(outside.path(), &qdir).expect("symlink project");

    for path in ["sub/x.py", "x.py", "new/deeper/x.py"] {
        refused_as_link(&rt.create_file_resp(pid, path, "X = 1\n"));
    }
    let form = reqwest::blocking::multipart::Form::new()
        .text("project_id", pid.to_string())
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(b"X = 1\n".to_vec()).file_name("up.py"),
        );
    refused_as_link(&rt.send_multipart("/api/script/upload", form));
    // The known file: not read, updated, started or deleted through the link.
    let r = rt.get(&format!("/api/script/files/{fid}"));
    refused_as_link(&r);
    assert!(!r.text.contains("SECRET"));
    refused_as_link(&rt.put(
        &format!("/api/script/files/{fid}"),
        &json!({"content": "EVIL = 1\n"}),
    ));
    refused_as_link(&rt.start_script("q/main.py", None));
    refused_as_link(&rt.delete(&format!("/api/script/files/{fid}")));
    let r = rt.get(&format!(
        "/api/script/projects/{pid}/files?include_content=true"
    ));
    r.ok();
    assert!(!r.text.contains("SECRET"), "{}", r.text);

    assert_eq!(
        files_below(outside.path()),
        vec!["main.py".to_string()],
        "nothing written outside"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("main.py")).expect("read"),
        "SECRET = 1\n"
    );
    // A new project of that name is refused too, rather than adopting the link.
    let qq = rt.project_dir("qq");
    std::os::unix::fs::symlink(outside.path(), &qq).expect("symlink");
    refused_as_link(&rt.create_project_resp("qq"));
}

#[test]
fn starting_a_file_linked_out_of_its_project_is_a_400() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "main.py", "def boot():\n    pass\n");
    let outside = TempDir::new("victim");
    let victim = outside.path().join("v.py");
    std::fs::write(&victim, "def boot():\n    VWED.log.info('outside')\n").expect("victim");
    let link = rt.project_dir("p").join("main.py");
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let r = rt.start_script("p/main.py", None);
    refused_as_link(&r);
    assert!(
        r.error().contains("p/main.py"),
        "names the file: {}",
        r.text
    );
    assert!(rt.running().is_empty());
    // A link in a folder on the way is refused the same way.
    std::fs::create_dir_all(outside.path().join("lib")).expect("mkdir");
    std::fs::write(outside.path().join("lib/m.py"), "def boot():\n    pass\n").expect("m");
    std::os::unix::fs::symlink(outside.path().join("lib"), rt.project_dir("p").join("lib"))
        .expect("symlink dir");
    refused_as_link(&rt.create_file_resp(pid, "lib/m2.py", "X = 1\n"));
    assert!(!outside.path().join("lib/m2.py").exists());
}

#[test]
fn temporary_files_left_by_kill_9_are_removed_at_start_and_never_listed() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    rt.create_file(pid, "main.py", "def boot():\n    pass\n");
    rt.create_file(pid, "sub/lib.py", "X = 1\n");
    let dir = rt.project_dir("p");
    let data = rt.kill9_keep_data();
    let ours = [
        ".main.py.tmp-4242-0000abcd",
        "sub/.lib.py.tmp-1-deadbeef",
        ".gone.py.tmp-77-12345678",
    ];
    for t in ours {
        std::fs::write(dir.join(t), "").expect("plant");
    }
    // Names that only look alike stay, and so does a folder or a link by such a name.
    let others = [
        ".keep",
        "notes.tmp-1-00000000",
        ".main.py.tmp-1-xyz",
        ".main.py.tmp-12-0000abcd.bak",
    ];
    for t in others {
        std::fs::write(dir.join(t), "mine").expect("plant");
    }
    std::fs::create_dir(dir.join(".d.tmp-1-0000abcd")).expect("mkdir");
    let elsewhere = TempDir::new("elsewhere");
    std::fs::write(elsewhere.path().join("f"), "keep").expect("f");
    std::os::unix::fs::symlink(elsewhere.path().join("f"), dir.join(".l.py.tmp-1-0000abcd"))
        .expect("symlink");

    let rt = Runtime::start_in(data, Opts::default());
    for t in ours {
        assert!(!dir.join(t).exists(), "{t} was not removed");
    }
    for t in others {
        assert!(dir.join(t).exists(), "{t} was removed");
    }
    assert!(dir.join(".d.tmp-1-0000abcd").is_dir());
    assert!(dir.join(".l.py.tmp-1-0000abcd").is_symlink());
    assert_eq!(
        std::fs::read_to_string(elsewhere.path().join("f")).expect("f"),
        "keep"
    );
    assert!(
        rt.stderr().contains("removed 3 temporary files"),
        "{}",
        rt.stderr()
    );

    let listed = rt.get(&format!("/api/script/projects/{pid}/files"));
    listed.ok();
    let names: Vec<&str> = listed.data()["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["file_path"].as_str())
        .collect();
    assert_eq!(names, vec!["main.py", "sub/lib.py"]);
    for keyword in ["tmp", "main", "."] {
        let found = rt.get(&format!("/api/script/files/search?keyword={keyword}"));
        found.ok();
        assert!(!found.text.contains(".tmp-"), "{}", found.text);
    }
}
