//! Fleet convergence through one local Mosquitto (figures for BENCHMARKS.md).
//!
//! Devices: `--agents` device agents in this process, each with its own data dir,
//! running the real sync and apply code over a host that starts no workers; plus
//! `--runtimes` full `vwed-edge serve` processes that start their scripts. All are
//! in group `bench`. Phases:
//! 1. one `vwed-fleet deploy` to the group: time from the desired state's
//!    publication to each device's commit (p50, p95, max);
//! 2. a device away during a deployment comes back: time to its commit;
//! 3. a deployment with a broker outage of `--outage-s` in the middle: every
//!    device's events arrive with no gap in their sequence numbers, and no device
//!    switches to or commits the deployment twice;
//! 4. idle: memory and CPU per agent.
//!
//! cargo build --release -p vwed-edge -p vwed-fleet
//! cargo run --release -p vwed-edge --example fleet_bench -- --agents 980 --runtimes 20

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use vwed_runtime::fleet::{Agent, AgentHandle, FleetSettings, NullHost};

const FLEET: &str = "bench";
const GROUP: &str = "bench";
const HEALTH_MS: u64 = 2_000;

struct Opts {
    agents: usize,
    runtimes: usize,
    outage_s: u64,
    idle_s: u64,
}

fn opts() -> Opts {
    let mut o = Opts {
        agents: 980,
        runtimes: 20,
        outage_s: 30,
        idle_s: 30,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        match pair[0].as_str() {
            "--agents" => o.agents = v,
            "--runtimes" => o.runtimes = v,
            "--outage-s" => o.outage_s = v as u64,
            "--idle-s" => o.idle_s = v as u64,
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// `vwed-edge` (the devices) or `vwed-fleet` (the central tool), each built by
/// `cargo build --release -p <name>`.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .expect("target dir");
    assert!(
        bin.is_file(),
        "build it first: cargo build --release -p {name}"
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// Mosquitto with persistence, restartable on the same port.
struct Broker {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let mut b = Broker {
            child: None,
            port: free_port(),
            dir: dir.join("mosquitto"),
        };
        std::fs::create_dir_all(&b.dir).expect("broker dir");
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let conf = self.dir.join("m.conf");
        let d = self.dir.display();
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {d}/\nuser root\nmax_queued_messages 1000000\n\
                 log_dest none\n",
                self.port
            ),
        )
        .expect("conf");
        self.child = Some(
            Command::new("mosquitto")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto"),
        );
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) of our own child; SIGTERM lets it save its persistence.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn settings(url: &str, key: &str, device: &str) -> FleetSettings {
    FleetSettings {
        broker_url: url.to_string(),
        device_id: device.to_string(),
        fleet: FLEET.into(),
        groups: vec![GROUP.into()],
        trusted_keys: vec![key.to_string()],
        health_window_ms: HEALTH_MS,
        calls: vec!["status".into(), "execute".into()],
        ..FleetSettings::default()
    }
}

fn start_agent(url: &str, key: &str, root: &Path, i: usize) -> AgentHandle {
    let id = format!("sim-{i:04}");
    let s = settings(url, key, &id).resolve().expect("settings");
    let agent = Agent::open(s, &root.join(&id), NullHost::default()).expect("agent");
    agent.recover().expect("recover");
    agent.spawn()
}

fn start_runtime(bin: &Path, url: &str, key: &str, root: &Path, i: usize) -> Child {
    let id = format!("rt-{i:02}");
    let dir = root.join(&id);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = std::fs::File::create(dir.join("log.txt")).expect("log");
    Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("VWED_SAMPLE_PROJECT", "false")
        .env("VWED_FLEET__BROKER_URL", url)
        .env("VWED_FLEET__DEVICE_ID", &id)
        .env("VWED_FLEET__FLEET", FLEET)
        .env("VWED_FLEET__GROUPS", GROUP)
        .env("VWED_FLEET__TRUSTED_KEYS", key)
        .env("VWED_FLEET__HEALTH_WINDOW_MS", HEALTH_MS.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("runtime")
}

/// What the observer (a central server with a persistent session) has seen.
#[derive(Default)]
struct Seen {
    /// device → (revision, when the state with it arrived).
    committed: BTreeMap<String, Vec<(u64, Instant)>>,
    /// device → every event (seq, type, state, deployment).
    events: BTreeMap<String, Vec<(u64, String, String)>>,
    /// When each desired revision was first seen.
    desired: BTreeMap<u64, Instant>,
    devices: BTreeSet<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn seen(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn on_message(s: &Shared, topic: &str, payload: &[u8]) {
    let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let parts: Vec<&str> = topic.split('/').collect();
    let now = Instant::now();
    let mut g = seen(s);
    match parts.as_slice() {
        [_, _, _, "device", d, "state"] => {
            g.devices.insert(d.to_string());
            if let Some(r) = v["revision"].as_u64() {
                let list = g.committed.entry(d.to_string()).or_default();
                if list.last().map(|(x, _)| *x) != Some(r) {
                    list.push((r, now));
                }
            }
        }
        [_, _, _, "device", d, "events"] => {
            let e = (
                v["seq"].as_u64().unwrap_or(0),
                v["state"]
                    .as_str()
                    .unwrap_or(v["type"].as_str().unwrap_or(""))
                    .to_string(),
                v["deployment_id"].as_str().unwrap_or("").to_string(),
            );
            g.events.entry(d.to_string()).or_default().push(e);
        }
        [_, _, _, "desired", "group", _] => {
            let m: Value = serde_json::from_str(v["manifest"].as_str().unwrap_or("null"))
                .unwrap_or(Value::Null);
            if let Some(r) = m["revision"].as_u64() {
                g.desired.entry(r).or_insert(now);
            }
        }
        _ => {}
    }
}

fn observe(url_port: u16, s: Shared) {
    let mut o = MqttOptions::new("bench-observer", "127.0.0.1", url_port);
    o.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut ev) = AsyncClient::new(o, 10_000);
    tokio::spawn(async move {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    for t in ["device/+/state", "device/+/events", "desired/group/+"] {
                        let _ =
                            client.try_subscribe(format!("vwed/v1/{FLEET}/{t}"), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => on_message(&s, &p.topic, &p.payload),
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
}

fn cli(bin: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin).args(args).output().expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::String(
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

fn deploy(bin: &Path, url: &str, key: &Path, project: &Path) -> Value {
    cli(
        bin,
        &[
            "deploy",
            "--broker",
            url,
            "--fleet",
            FLEET,
            "--group",
            GROUP,
            "--project",
            &format!("app={}", project.display()),
            "--run",
            "main.py",
            "--key",
            &key.display().to_string(),
        ],
    )
}

fn write_project(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir).expect("project dir");
    let main = format!(
        "def boot():\n    @VWED.function.register(\"version\")\n    def version(args):\n        return \"{version}\"\n"
    );
    std::fs::write(dir.join("main.py"), main).expect("main.py");
    std::fs::write(dir.join("table.txt"), "station,x,y\n".repeat(700)).expect("table");
}

/// Waits until `count` devices report `revision`; their commit delays from the
/// desired state's publication, sorted.
async fn converged(s: &Shared, revision: u64, count: usize, limit: Duration) -> Vec<Duration> {
    let start = Instant::now();
    loop {
        {
            let g = seen(s);
            let t0 = g.desired.get(&revision).copied();
            let done: Vec<Instant> = g
                .committed
                .values()
                .filter_map(|l| l.iter().find(|(r, _)| *r == revision).map(|(_, t)| *t))
                .collect();
            if let Some(t0) = t0
                && (done.len() >= count || start.elapsed() > limit)
            {
                let mut d: Vec<Duration> = done
                    .iter()
                    .map(|t| t.saturating_duration_since(t0))
                    .collect();
                d.sort();
                return d;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pct(d: &[Duration], p: f64) -> f64 {
    if d.is_empty() {
        return f64::NAN;
    }
    let i = ((d.len() as f64 - 1.0) * p).round() as usize;
    d[i.min(d.len() - 1)].as_secs_f64()
}

fn summary(d: &[Duration], total: usize) -> Value {
    json!({"committed": d.len(), "of": total, "p50_s": pct(d, 0.5), "p95_s": pct(d, 0.95), "max_s": pct(d, 1.0)})
}

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Event sequence numbers with a gap, and deployments a device switched to or
/// committed more than once (repeats of one event dropped by `seq`).
fn audit(s: &Shared, deployment: &str) -> Value {
    let g = seen(s);
    let (mut gaps, mut twice, mut checked) = (Vec::new(), Vec::new(), 0);
    for (dev, evs) in &g.events {
        let mut by_seq: BTreeMap<u64, &(u64, String, String)> = BTreeMap::new();
        for e in evs {
            by_seq.insert(e.0, e);
        }
        let seqs: Vec<u64> = by_seq.keys().copied().collect();
        if seqs.first() != Some(&1) || seqs.windows(2).any(|w| w[1] != w[0] + 1) {
            gaps.push(dev.clone());
        }
        for step in ["switched", "committed"] {
            let n = by_seq
                .values()
                .filter(|e| e.1 == step && e.2 == deployment)
                .count();
            if n > 1 {
                twice.push(format!("{dev}:{step}x{n}"));
            }
        }
        checked += 1;
    }
    let repeats: usize = g.events.values().map(|e| e.len()).sum::<usize>()
        - g.events
            .values()
            .map(|e| e.iter().map(|x| x.0).collect::<BTreeSet<_>>().len())
            .sum::<usize>();
    json!({"devices_checked": checked, "with_gaps": gaps, "applied_twice": twice, "repeated_deliveries": repeats})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = opts();
    let bin = binary("vwed-edge");
    let tool = binary("vwed-fleet");
    let root = std::env::temp_dir().join(format!("vwed-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("root");
    let mut broker = Broker::start(&root);
    let url = broker.url();
    let key = root.join("signer.key");
    let public = cli(&tool, &["keygen", "--out", &key.display().to_string()]);
    let public = public.as_str().unwrap_or_default().to_string();
    let s: Shared = Arc::default();
    observe(broker.port, s.clone());
    let total = o.agents + o.runtimes;

    let rss0 = rss_kib();
    let mut agents: Vec<Option<AgentHandle>> = (0..o.agents)
        .map(|i| Some(start_agent(&url, &public, &root.join("agents"), i)))
        .collect();
    let mut runtimes: Vec<Child> = (0..o.runtimes)
        .map(|i| start_runtime(&bin, &url, &public, &root.join("runtimes"), i))
        .collect();
    while seen(&s).devices.len() < total {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{total} devices online");

    let project = root.join("project");
    write_project(&project, "v1");
    let d1 = deploy(&tool, &url, &key, &project);
    let r1 = d1["revision"].as_u64().unwrap_or(0);
    let first = converged(&s, r1, total, Duration::from_secs(120)).await;
    let phase1 = summary(&first, total);
    eprintln!("deploy: {phase1}");

    // A device away during a deployment comes back.
    if let Some(h) = agents[0].take() {
        h.shutdown().await;
    }
    write_project(&project, "v2");
    let d2 = deploy(&tool, &url, &key, &project);
    let r2 = d2["revision"].as_u64().unwrap_or(0);
    converged(&s, r2, total - 1, Duration::from_secs(120)).await;
    let back = Instant::now();
    agents[0] = Some(start_agent(&url, &public, &root.join("agents"), 0));
    loop {
        let done = seen(&s)
            .committed
            .get("sim-0000")
            .is_some_and(|l| l.iter().any(|(r, _)| *r == r2));
        if done || back.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reconnect_s = back.elapsed().as_secs_f64();
    eprintln!("reconnect to commit: {reconnect_s:.2} s");

    // A deployment with the broker away in the middle.
    write_project(&project, "v3");
    let d3 = deploy(&tool, &url, &key, &project);
    let r3 = d3["revision"].as_u64().unwrap_or(0);
    loop {
        let n = seen(&s)
            .committed
            .values()
            .filter(|l| l.iter().any(|(r, _)| *r == r3))
            .count();
        if n >= total / 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_cut = seen(&s)
        .committed
        .values()
        .filter(|l| l.iter().any(|(r, _)| *r == r3))
        .count();
    broker.stop();
    tokio::time::sleep(Duration::from_secs(o.outage_s)).await;
    let resumed = Instant::now();
    broker.spawn();
    let third = converged(&s, r3, total, Duration::from_secs(180)).await;
    let after_outage_s = resumed.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let audit3 = audit(&s, d3["deployment_id"].as_str().unwrap_or(""));
    eprintln!(
        "outage: cut at {at_cut} committed; all committed {after_outage_s:.1} s after the broker came back; {audit3}"
    );

    // Idle cost.
    let rss_all = rss_kib();
    let t0 = cpu_ticks();
    tokio::time::sleep(Duration::from_secs(o.idle_s)).await;
    let ticks = cpu_ticks() - t0;
    let hz = 100.0;
    let idle = json!({
        "agents": o.agents,
        "rss_mib_total": rss_all as f64 / 1024.0,
        "rss_kib_per_agent": (rss_all.saturating_sub(rss0)) as f64 / o.agents.max(1) as f64,
        "cpu_percent_all_agents": ticks as f64 / hz / o.idle_s as f64 * 100.0,
        "cpu_ms_per_agent_per_min": ticks as f64 / hz * 1000.0 / o.agents.max(1) as f64 * 60.0 / o.idle_s as f64,
    });
    println!(
        "{}",
        json!({
            "devices": total, "agents": o.agents, "runtimes": o.runtimes, "health_window_ms": HEALTH_MS,
            "deploy": phase1, "reconnect_to_commit_s": reconnect_s,
            "outage": {"seconds": o.outage_s, "committed_at_cut": at_cut, "after": summary(&third, total),
                       "all_committed_s_after_broker_back": after_outage_s, "events": audit3},
            "idle": idle,
        })
    );
    for h in agents.into_iter().flatten() {
        h.shutdown().await;
    }
    for mut c in runtimes.drain(..) {
        // SAFETY: kill(2) of our own child.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = c.wait();
    }
    broker.stop();
    let _ = std::fs::remove_dir_all(&root);
}
