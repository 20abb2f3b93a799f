//! File history under concurrent writers and its bounds (issue 9): every
//! acknowledged update is in the history, racing writers are told about each
//! other (`ETag` / `If-Match` / `base_version`), and history is pruned by count
//! and bytes, oldest first, with the count of pruned versions shown.

use std::collections::HashSet;

use vwed_e2e::{Opts, Resp, Runtime, Value, json};

/// A file that is not Python, so that updates need no syntax check.
fn text_file(rt: &Runtime, project: u64, name: &str, content: &str) -> u64 {
    let r = rt.post(
        "/api/script/files",
        &json!({"project_id": project, "file_name": name, "content": content, "file_type": "text"}),
    );
    r.ok();
    r.data()["id"].as_u64().expect("file id")
}

fn versions(rt: &Runtime, fid: u64) -> Resp {
    let r = rt.get(&format!("/api/script/files/{fid}/versions"));
    r.ok();
    r
}

/// One number field of every entry of a versions list.
fn each_version(r: &Resp, field: &str) -> Vec<u64> {
    r.data()["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v[field].as_u64().expect(field))
        .collect()
}

fn version_numbers(r: &Resp) -> Vec<u64> {
    each_version(r, "version")
}

#[test]
fn concurrent_updates_to_one_file_lose_no_version() {
    let rt = Runtime::with(Opts::default().env("VWED_FILE_VERSIONS_KEEP", 10_000));
    let pid = rt.create_project("p");
    let fid = text_file(&rt, pid, "shared.txt", "initial");
    let (writers, each) = (4, 40);
    let acknowledged: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let rt = &rt;
                s.spawn(move || {
                    (0..each)
                        .map(|i| {
                            let content = format!("writer {w} update {i}");
                            let r = rt.put(
                                &format!("/api/script/files/{fid}"),
                                &json!({"content": content}),
                            );
                            r.ok();
                            content
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect()
    });
    let list = versions(&rt, fid);
    let numbers = version_numbers(&list);
    assert_eq!(
        numbers,
        (1..=(writers * each) as u64).collect::<Vec<_>>(),
        "one version per acknowledged update, numbered without gaps"
    );
    // Each acknowledged content is kept: as a later update's previous content,
    // or as the current content.
    let mut kept: HashSet<String> = numbers
        .iter()
        .map(|n| {
            let v = rt.get(&format!("/api/script/files/{fid}/versions/{n}"));
            v.ok();
            v.data()["content"].as_str().expect("content").to_string()
        })
        .collect();
    let current = rt.get(&format!("/api/script/files/{fid}"));
    kept.insert(
        current.data()["content"]
            .as_str()
            .expect("content")
            .to_string(),
    );
    for c in &acknowledged {
        assert!(kept.contains(c), "acknowledged update {c:?} is lost");
    }
    assert!(kept.contains("initial"));
    assert_eq!(
        current.data()["file"]["version"],
        json!(writers * each + 1),
        "{}",
        current.text
    );
}

fn put_if(rt: &Runtime, fid: u64, body: Value, if_match: Option<&str>) -> Resp {
    let headers: Vec<(&str, &str)> = if_match.map(|v| ("If-Match", v)).into_iter().collect();
    rt.send(
        "PUT",
        &format!("/api/script/files/{fid}"),
        Some(&body),
        &headers,
    )
}

#[test]
fn a_stale_writer_is_told_with_409_and_the_current_version() {
    let rt = Runtime::start();
    let pid = rt.create_project("p");
    let fid = text_file(&rt, pid, "a.txt", "one");
    let g = rt.get(&format!("/api/script/files/{fid}"));
    g.ok();
    assert_eq!(g.header("etag"), Some("\"1\""));
    assert_eq!(g.data()["file"]["version"], json!(1));
    assert_eq!(g.data()["file"]["versions_pruned"], json!(0));

    // Two editors read version 1; the first saves, the second is stale.
    let first = put_if(&rt, fid, json!({"content": "two"}), Some("\"1\""));
    first.ok();
    assert_eq!(first.header("etag"), Some("\"2\""));
    assert_eq!(first.data()["file"]["version"], json!(2));
    let stale = put_if(&rt, fid, json!({"content": "lost?"}), Some("\"1\""));
    stale.fails(409, "已被修改");
    assert_eq!(stale.data()["current_version"], json!(2));
    assert_eq!(stale.data()["base_version"], json!(1));
    assert_eq!(stale.header("etag"), Some("\"2\""));
    // The same with base_version in the body.
    put_if(
        &rt,
        fid,
        json!({"content": "lost?", "base_version": 1}),
        None,
    )
    .fails(409, "已被修改");
    assert_eq!(
        rt.get(&format!("/api/script/files/{fid}")).data()["content"],
        "two",
        "a refused update changes nothing"
    );
    assert_eq!(version_numbers(&versions(&rt, fid)), vec![1]);

    // Up to date: accepted, in either spelling; a weak tag and * too.
    put_if(
        &rt,
        fid,
        json!({"content": "three", "base_version": 2}),
        None,
    )
    .ok();
    put_if(&rt, fid, json!({"content": "four"}), Some("W/\"3\"")).ok();
    put_if(&rt, fid, json!({"content": "five"}), Some("*")).ok();
    // Without either, as the seed's clients do: last writer wins, history kept.
    put_if(&rt, fid, json!({"content": "six"}), None).ok();
    assert_eq!(version_numbers(&versions(&rt, fid)), vec![1, 2, 3, 4, 5]);

    put_if(&rt, fid, json!({"content": "x"}), Some("abc")).fails(400, "If-Match");
    put_if(
        &rt,
        fid,
        json!({"content": "x", "base_version": 5}),
        Some("\"6\""),
    )
    .fails(400, "不一致");
}

#[test]
fn version_history_is_bounded_by_count_and_bytes_and_says_what_was_pruned() {
    let data = vwed_e2e::TempDir::new("versions");
    let opts = Opts::default()
        .env("VWED_FILE_VERSIONS_KEEP", 5)
        .env("VWED_FILE_VERSIONS_MAX_BYTES", 40 * 1024);
    let rt = Runtime::start_in(data, opts);
    let pid = rt.create_project("p");
    let page = |tag: &str| format!("{tag}{}", "x".repeat(4096));
    // Updates `fid` to pages "<tag>1" … "<tag><n>".
    let update = |fid: u64, tag: &str, n: u32| {
        for i in 1..=n {
            let body = json!({"content": page(&format!("{tag}{i}"))});
            rt.put(&format!("/api/script/files/{fid}"), &body).ok();
        }
    };
    let a = text_file(&rt, pid, "a.txt", &page("a0"));
    update(a, "a", 30);
    let list = versions(&rt, a);
    assert_eq!(version_numbers(&list), vec![26, 27, 28, 29, 30]);
    assert_eq!(list.data()["pruned"], json!(25));
    let file = rt.get(&format!("/api/script/files/{a}"));
    assert_eq!(file.data()["file"]["versions_pruned"], json!(25));
    assert_eq!(file.data()["file"]["version"], json!(31));
    rt.get(&format!("/api/script/files/{a}/versions/25"))
        .fails(404, "版本");
    assert!(
        rt.get(&format!("/api/script/files/{a}/versions/30")).data()["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("a29")),
    );

    // A second file's history pushes the first one's oldest out: 40 KiB hold
    // about nine versions of 4 KiB in all.
    let b = text_file(&rt, pid, "b.txt", &page("b0"));
    update(b, "b", 5);
    let (la, lb) = (versions(&rt, a), versions(&rt, b));
    assert_eq!(version_numbers(&lb), vec![1, 2, 3, 4, 5], "the newest stay");
    let kept_a = version_numbers(&la);
    assert!(kept_a.len() < 5, "{kept_a:?}");
    assert_eq!(kept_a.last(), Some(&30), "oldest first: {kept_a:?}");
    let pruned_a = la.data()["pruned"].as_u64().expect("pruned");
    assert_eq!(pruned_a, 25 + 5 - kept_a.len() as u64);
    let size = |r: &Resp| -> u64 { each_version(r, "size").iter().sum() };
    assert!(size(&la) + size(&lb) <= 40 * 1024, "within the byte budget");

    // Lower limits at the next start apply to what is stored.
    let data = rt.terminate_keep_data(std::time::Duration::from_secs(20));
    let rt = Runtime::start_in(data, Opts::default().env("VWED_FILE_VERSIONS_KEEP", 2));
    assert_eq!(version_numbers(&versions(&rt, b)), vec![4, 5]);
    assert_eq!(versions(&rt, b).data()["pruned"], json!(3));

    // Deleting a file forgets its history.
    rt.delete(&format!("/api/script/files/{b}")).ok();
    rt.get(&format!("/api/script/files/{b}/versions"))
        .fails(404, "不存在");
}
