//! The README's walk-through, run as written: its `sh` blocks of "Five minutes
//! with curl" and "Watching and reacting", in order, against the real binary with
//! the sample project. Every `curl` must answer 2xx, and `success: true` when the
//! answer is the API's envelope.
//!
//! The commands run in one `bash`, in a directory whose `vwed-data` is the
//! runtime's data dir (as with `scripts/run`), so shell variables (`SID=$(...)`)
//! and files under `vwed-data/` work as they do for a reader.

use std::path::Path;
use std::process::Command;

use vwed_e2e::{Opts, Runtime, TempDir, Value};

const SECTIONS: [&str; 2] = ["## Five minutes with curl", "## Watching and reacting"];

/// The fenced `sh` blocks of the section that starts with `heading`.
fn sh_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let body = &readme[start + heading.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in body.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Reads `text` as the shell would quote it, starting in `quote` (None, '\'' or
/// '"'): the quote open at its end, and whether a pipe, list or redirection
/// stood outside quotes.
fn scan(text: &str, mut quote: Option<char>) -> (Option<char>, bool) {
    let mut compound = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') | (Some('"'), '\\') => {
                chars.next();
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '|' | ';' | '&' | '>' | '<') => compound = true,
            _ => {}
        }
    }
    (quote, compound)
}

/// One shell command per entry: continuation lines (`\` at the end, or an open
/// quote) joined; comments and blank lines dropped.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for line in block.lines() {
        if current.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        current.push_str(line);
        quote = scan(line, quote).0;
        if quote.is_none() && !line.ends_with('\\') {
            out.push(std::mem::take(&mut current));
        } else {
            current.push('\n');
        }
    }
    assert!(current.is_empty(), "unterminated command: {current}");
    out
}

/// Does the command hold a pipe, list or redirection outside quotes? Then its
/// output cannot simply be captured by options added at its end. (`$(...)` is
/// fine: it is expanded before curl runs.)
fn is_compound(cmd: &str) -> bool {
    scan(cmd, None).1
}

enum Step {
    /// A `curl` whose answer is checked.
    Checked(String),
    /// Run for its effect (`SID=$(curl ...)`).
    Run(String),
}

/// The README's commands in order. Commands that are neither `curl` nor a
/// variable assignment (`xdg-open` of the test page) are left out.
fn steps(readme: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for heading in SECTIONS {
        let blocks = sh_blocks(readme, heading);
        assert!(!blocks.is_empty(), "no sh block under {heading}");
        for cmd in blocks.iter().flat_map(|b| commands(b)) {
            let first = cmd.split_whitespace().next().unwrap_or("");
            let assignment = first.split_once('=').is_some_and(|(name, _)| {
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if first == "curl" {
                assert!(
                    !is_compound(&cmd),
                    "a README curl command this test cannot check on its own: {cmd}"
                );
                steps.push(Step::Checked(cmd));
            } else if assignment {
                steps.push(Step::Run(cmd));
            }
        }
    }
    steps
}

/// One bash script: each checked curl writes its status and body to files
/// numbered in order.
fn script(steps: &[Step], port: u16, out: &Path) -> String {
    let host = format!("127.0.0.1:{port}");
    let mut s = String::from("set -u\n");
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Checked(cmd) => s.push_str(&format!(
                "{} -o '{dir}/{i}.body' -w '%{{http_code}}' > '{dir}/{i}.code'\n",
                cmd.replace("localhost:8000", &host),
                dir = out.display()
            )),
            Step::Run(cmd) => {
                s.push_str(&cmd.replace("localhost:8000", &host));
                s.push('\n');
            }
        }
    }
    s
}

#[test]
fn the_readme_walk_through_runs_top_to_bottom_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let steps = steps(&readme);
    let checked = steps
        .iter()
        .filter(|s| matches!(s, Step::Checked(_)))
        .count();
    assert!(
        checked >= 15,
        "only {checked} curl commands found in the README"
    );

    let rt = Runtime::with(Opts::default().sample());
    let work = TempDir::new("readme");
    std::os::unix::fs::symlink(rt.data_dir(), work.path().join("vwed-data")).expect("symlink");
    let out = work.path().join("answers");
    std::fs::create_dir_all(&out).expect("answers dir");
    let run = Command::new("bash")
        .arg("-c")
        .arg(script(&steps, rt.port, &out))
        .current_dir(work.path())
        .env("no_proxy", "*")
        .env("NO_PROXY", "*")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .expect("run bash");
    assert!(
        run.status.success(),
        "the walk-through failed: {}\n{}",
        String::from_utf8_lossy(&run.stderr),
        rt.stderr()
    );
    for (i, step) in steps.iter().enumerate() {
        let Step::Checked(cmd) = step else { continue };
        let code = std::fs::read_to_string(out.join(format!("{i}.code"))).unwrap_or_default();
        let body = std::fs::read_to_string(out.join(format!("{i}.body"))).unwrap_or_default();
        assert!(
            code.starts_with('2'),
            "HTTP {code} for README command\n{cmd}\nanswer: {body}"
        );
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&body)
            && let Some(ok) = o.get("success")
        {
            assert_eq!(
                ok,
                &Value::Bool(true),
                "success is not true for README command\n{cmd}\nanswer: {body}"
            );
        }
    }
}

#[test]
fn readme_commands_are_split_like_a_shell_would() {
    let block = "# a comment\ncurl -s a \\\n  -d '{\n  \"x\": 1}'\n\nX=$(curl -s b | python3 -c 'print(1)')\ncurl -s \"c/$X\"\n";
    assert_eq!(
        commands(block),
        [
            "curl -s a \\\n  -d '{\n  \"x\": 1}'",
            "X=$(curl -s b | python3 -c 'print(1)')",
            "curl -s \"c/$X\"",
        ]
    );
    assert!(is_compound("curl -s a | jq ."));
    assert!(!is_compound("curl -s 'a|b' -d \"x;y\""));
    // A later README may pass a token from the data dir.
    let auth =
        r#"curl -s -H "Authorization: Bearer $(cat vwed-data/admin.token)" localhost:8000/x"#;
    assert_eq!(commands(auth), [auth]);
    assert!(!is_compound(auth));
}

/// Every command the README shows a user outside the curl walk-through, with the
/// file that runs it and what that file must contain (compared without
/// whitespace, so rustfmt's line breaks do not matter).
const SHOWN: &[(&str, &str, &[&str])] = &[
    ("scripts/run", "scripts/test", &["scripts/check-run"]),
    ("scripts/test", ".ci/run", &["execscripts/test"]),
    (
        "xdg-open http://localhost:8000/api/script/ws/test-page",
        "tests/e2e/logs_ws.rs",
        &["rt.get(\"/api/script/ws/test-page\")"],
    ),
    (
        "vwed-edge token create --name task-server --role operator [--expires-days 90]",
        "tests/e2e/auth.rs",
        &["\"token\",\"create\",\"--name\"", "\"--expires-days\""],
    ),
    ("token list", "tests/e2e/auth.rs", &["[\"token\",\"list\"]"]),
    (
        "token revoke <id>",
        "tests/e2e/auth.rs",
        &["[\"token\",\"revoke\","],
    ),
    (
        "vwed-edge user add",
        "tests/e2e/auth.rs",
        &["[\"user\",\"add\","],
    ),
    (
        "vwed-edge user passwd",
        "tests/e2e/auth.rs",
        &["[\"user\",\"passwd\","],
    ),
    (
        "vwed-edge user set",
        "tests/e2e/auth.rs",
        &["[\"user\",\"set\","],
    ),
    (
        "vwed-edge user del",
        "tests/e2e/auth.rs",
        &["[\"user\",\"del\","],
    ),
    (
        "vwed-edge user list",
        "tests/e2e/auth.rs",
        &["[\"user\",\"list\"]"],
    ),
    (
        "vwed-edge serve --no-auth",
        "tests/e2e/auth.rs",
        &["[\"serve\",\"--no-auth\","],
    ),
    (
        "vwed-edge config",
        "tests/e2e/auth.rs",
        &["cmd.arg(\"config\")"],
    ),
    (
        "vwed-edge serve --listen ADDR --data-dir DIR --config FILE",
        "tests/e2e/readme.rs",
        &["\"--config\""],
    ),
    ("vwed-edge --help", "tests/e2e/readme.rs", &["[\"--help\"]"]),
    ("vwed-edge stubs", "tests/e2e/readme.rs", &["[\"stubs\"]"]),
    (
        "image/build-bundle.sh aarch64",
        "image/ci-arm.sh",
        &["\"$here/build-bundle.sh\"\"$VWED_ARCH\""],
    ),
    (
        "vwed-fleet keygen",
        "tests/e2e/fleet_deploy.rs",
        &["cli_output(&[\"keygen\","],
    ),
    (
        "vwed-fleet deploy",
        "tests/src/fleet.rs",
        &["self.cli(\"deploy\","],
    ),
    (
        "vwed-fleet status",
        "tests/src/fleet.rs",
        &["self.cli(\"status\","],
    ),
    (
        "vwed-fleet call",
        "tests/e2e/fleet_calls.rs",
        &["fleet.cli(\"call\","],
    ),
    (
        "vwed-fleet rollback",
        "tests/e2e/fleet_rollback.rs",
        &["fleet.cli(\"rollback\","],
    ),
];

/// The commands the README shows outside its curl walk-through: inline code that
/// starts with a program of the project (`a|b` alternatives spelled out), and
/// the lines of `sh` blocks that are neither curl nor an assignment.
fn shown_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, span) in readme.split('`').enumerate() {
        let span = span.split_whitespace().collect::<Vec<_>>().join(" ");
        let programs = [
            "vwed-edge ",
            "vwed-fleet ",
            "scripts/",
            "image/",
            "cargo ",
            "token ",
        ];
        if i % 2 == 0 || span.ends_with(".md") || !programs.iter().any(|p| span.starts_with(p)) {
            continue;
        }
        // `user add|passwd` and `vwed-fleet keygen | deploy`: one command each.
        let span = span.replace(" | ", "|");
        let words: Vec<&str> = span.split(' ').collect();
        match words.iter().position(|w| w.contains('|')) {
            Some(at) => out.extend(words[at].split('|').map(|alt| {
                let mut cmd = words[..at].to_vec();
                cmd.push(alt);
                cmd.extend(&words[at + 1..]);
                cmd.join(" ")
            })),
            None => out.push(span),
        }
    }
    let heading = "## Set-up";
    for section in std::iter::once(heading).chain(SECTIONS) {
        for cmd in sh_blocks(readme, section).iter().flat_map(|b| commands(b)) {
            let first = cmd.split_whitespace().next().unwrap_or("");
            if first != "curl" && !first.contains('=') {
                out.push(cmd);
            }
        }
    }
    out
}

#[test]
fn every_command_the_readme_shows_is_run_by_a_test() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let shown = shown_commands(&readme);
    assert!(
        shown.len() >= 20,
        "only {} commands found: {shown:?}",
        shown.len()
    );
    for cmd in &shown {
        assert!(
            SHOWN.iter().any(|(c, _, _)| c == cmd),
            "the README shows `{cmd}` and no test is listed for it in SHOWN"
        );
    }
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    for (cmd, file, needles) in SHOWN {
        assert!(
            shown.contains(&cmd.to_string()),
            "SHOWN lists `{cmd}`, the README no longer shows it"
        );
        let text = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for needle in *needles {
            assert!(
                squeeze(&text).contains(&squeeze(needle)),
                "{file} does not run `{cmd}` ({needle})"
            );
        }
    }
}

#[test]
fn help_lists_every_command_and_stubs_prints_the_vwed_stubs() {
    let help = Command::new(vwed_e2e::binary())
        .args(["--help"])
        .output()
        .expect("--help");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{text}");
    for cmd in ["serve", "config", "stubs", "token", "user"] {
        assert!(text.contains(cmd), "--help does not explain {cmd}:\n{text}");
    }
    let stubs = Command::new(vwed_e2e::binary())
        .args(["stubs"])
        .output()
        .expect("stubs");
    let text = String::from_utf8_lossy(&stubs.stdout);
    assert!(
        stubs.status.success() && text.contains("class") && text.contains("def "),
        "{text}"
    );
}

#[test]
fn serve_reads_the_settings_of_its_config_file() {
    let dir = TempDir::new("config-file");
    let file = dir.path().join("vwed.toml");
    std::fs::write(&file, "call_timeout_ms = 4321\nstop_grace_ms = 1234\n").expect("config");
    let rt = Runtime::with(
        Opts::default()
            .arg("--config")
            .arg(&file.display().to_string()),
    );
    let info = rt.get("/api/system/info");
    let config = info.ok().data()["config"].clone();
    assert_eq!(config["call_timeout_ms"], 4321, "{config}");
    assert_eq!(config["stop_grace_ms"], 1234, "{config}");
}
