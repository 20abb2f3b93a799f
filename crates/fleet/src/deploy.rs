//! `keygen`, `deploy` and `rollback`: sign a manifest, publish its files by
//! content hash and the desired state, both retained.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};

use vwed_base::clock;
use vwed_fleet_proto::crypto::{self, SigningKey};
use vwed_fleet_proto::manifest::{self, Envelope, FileSpec, Manifest, ProjectSpec, RunSpec, Scope};
use vwed_fleet_proto::topics::Topics;

use crate::args::{BrokerArgs, CentralError, TargetArgs};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// A project folder (its name is the project's), or NAME=DIR. Repeatable.
    #[arg(long = "project", required = true)]
    pub projects: Vec<String>,
    /// A script to run, FILE[:PARAMS_JSON]; FILE is <project>/<path>, or a path
    /// in the only project. Repeatable.
    #[arg(long = "run")]
    pub run: Vec<String>,
    /// The signing key file (from `vwed-fleet keygen`).
    #[arg(long)]
    pub key: PathBuf,
    /// How long devices accept the deployment.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub ttl_s: u64,
    /// Expiry as Unix milliseconds instead of --ttl-s.
    #[arg(long)]
    pub expires_at_ms: Option<u64>,
    /// Default: the current Unix time in milliseconds (always above the last).
    #[arg(long)]
    pub revision: Option<u64>,
    #[arg(long)]
    pub deployment_id: Option<String>,
    /// Size of the chunks files travel in.
    #[arg(long, default_value_t = 128 * 1024)]
    pub chunk_bytes: u64,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub key: PathBuf,
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub ttl_s: u64,
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> CentralError + '_ {
    move |source| CentralError::File {
        path: path.to_path_buf(),
        source,
    }
}

pub fn keygen(out: &Path) -> Result<i32, CentralError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = SigningKey::generate()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(file_error(out))?;
    writeln!(f, "{}", key.seed_hex()).map_err(file_error(out))?;
    let mut public = out.as_os_str().to_owned();
    public.push(".pub");
    let public = PathBuf::from(public);
    std::fs::write(&public, format!("{}\n", key.public_hex())).map_err(file_error(&public))?;
    println!("{}", key.public_hex());
    Ok(0)
}

fn load_key(path: &Path) -> Result<SigningKey, CentralError> {
    let text = std::fs::read_to_string(path).map_err(file_error(path))?;
    SigningKey::from_hex(text.trim())
        .map_err(|e| CentralError::Usage(format!("{}: {e}", path.display())))
}

/// Every file below `dir` (hidden ones and `__pycache__` left out), by path.
fn read_tree(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, CentralError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(file_error(&d))? {
            let e = e.map_err(file_error(&d))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            let rel = format!("{prefix}{name}");
            let ft = e.file_type().map_err(file_error(&e.path()))?;
            if ft.is_dir() {
                stack.push((e.path(), format!("{rel}/")));
            } else if ft.is_file() {
                let data = std::fs::read(e.path()).map_err(file_error(&e.path()))?;
                if std::str::from_utf8(&data).is_err() {
                    return Err(CentralError::Usage(format!(
                        "{}: not UTF-8 text (devices keep scripts and text files only)",
                        e.path().display()
                    )));
                }
                out.insert(rel, data);
            }
        }
    }
    Ok(out)
}

/// `NAME=DIR` or `DIR` (named after its last component).
fn project_arg(arg: &str) -> Result<(String, PathBuf), CentralError> {
    if let Some((name, dir)) = arg.split_once('=') {
        return Ok((name.to_string(), PathBuf::from(dir)));
    }
    let dir = PathBuf::from(arg);
    let name = std::fs::canonicalize(&dir)
        .map_err(file_error(&dir))?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CentralError::Usage(format!("{arg}: no folder name")))?;
    Ok((name, dir))
}

/// `FILE[:PARAMS_JSON]`.
fn run_arg(arg: &str, projects: &[ProjectSpec]) -> Result<RunSpec, CentralError> {
    let (file, params) = match arg.find(":{") {
        Some(i) => (&arg[..i], &arg[i + 1..]),
        None => (arg, ""),
    };
    let start_params: Value = if params.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(params)
            .map_err(|e| CentralError::Usage(format!("--run {arg}: start params: {e}")))?
    };
    let script = match projects {
        [only] if !file.starts_with(&format!("{}/", only.name)) => format!("{}/{file}", only.name),
        _ => file.to_string(),
    };
    Ok(RunSpec {
        script,
        start_params,
    })
}

fn scope(t: &TargetArgs) -> Scope {
    match (&t.device, &t.group) {
        (Some(d), _) => Scope::Device(d.clone()),
        (_, Some(g)) => Scope::Group(g.clone()),
        _ => Scope::Group(String::new()),
    }
}

fn desired_topic(topics: &Topics, s: &Scope) -> (String, String) {
    match s {
        Scope::Device(d) => (topics.desired_device(d), topics.previous_device(d)),
        Scope::Group(g) => (topics.desired_group(g), topics.previous_group(g)),
    }
}

fn seal(m: &Manifest, key: &SigningKey) -> Vec<u8> {
    let text = serde_json::to_string(m).unwrap_or_default();
    let env = Envelope {
        signature: key.sign_hex(text.as_bytes()),
        key: key.public_hex(),
        manifest: text,
    };
    serde_json::to_vec(&env).unwrap_or_default()
}

fn chunks(topics: &Topics, data: &[u8], chunk: usize) -> Vec<(String, Vec<u8>, bool)> {
    let digest = crypto::sha256_hex(data);
    data.chunks(chunk.max(1))
        .enumerate()
        .map(|(i, c)| (topics.chunk(&digest, i as u32), c.to_vec(), true))
        .collect()
}

pub async fn deploy(a: &DeployArgs) -> Result<i32, CentralError> {
    a.target.check()?;
    let key = load_key(&a.key)?;
    let mut projects = Vec::new();
    let mut contents = BTreeMap::new();
    for arg in &a.projects {
        let (name, dir) = project_arg(arg)?;
        let files = read_tree(&dir)?;
        let specs = files
            .iter()
            .map(|(path, data)| FileSpec {
                path: path.clone(),
                sha256: crypto::sha256_hex(data),
                size: data.len() as u64,
            })
            .collect();
        for data in files.into_values() {
            contents.insert(crypto::sha256_hex(&data), data);
        }
        projects.push(ProjectSpec { name, files: specs });
    }
    let run = a
        .run
        .iter()
        .map(|r| run_arg(r, &projects))
        .collect::<Result<Vec<_>, _>>()?;
    let now = clock::unix_ms();
    let revision = a.revision.unwrap_or(now);
    let m = Manifest {
        format: manifest::FORMAT,
        deployment_id: a
            .deployment_id
            .clone()
            .unwrap_or_else(|| format!("d-{revision}-{:08x}", rand::random::<u32>())),
        revision,
        fleet: a.broker.fleet.clone(),
        scope: scope(&a.target),
        issued_at_ms: now,
        expires_at_ms: a
            .expires_at_ms
            .unwrap_or_else(|| now.saturating_add(a.ttl_s.saturating_mul(1000))),
        chunk_bytes: a.chunk_bytes,
        projects,
        run,
    };
    m.check_shape(u64::MAX)?;
    let mut s = Session::connect(&a.broker).await?;
    let mut msgs = Vec::new();
    for data in contents.values() {
        msgs.extend(chunks(&s.topics, data, a.chunk_bytes as usize));
    }
    let chunk_count = msgs.len();
    publish_desired(&mut s, &m.scope, seal(&m, &key), msgs).await?;
    s.close();
    println!(
        "{}",
        json!({
            "deployment_id": m.deployment_id,
            "revision": m.revision,
            "scope": m.scope.label(),
            "files": m.files().count(),
            "bytes": m.total_bytes(),
            "chunks": chunk_count,
        })
    );
    Ok(0)
}

/// Publishes the files, then keeps the current desired state as the previous one
/// (for `rollback`), then the new desired state: a device never sees a manifest
/// whose files are not retained yet.
async fn publish_desired(
    s: &mut Session,
    scope: &Scope,
    envelope: Vec<u8>,
    mut files: Vec<(String, Vec<u8>, bool)>,
) -> Result<(), CentralError> {
    let (desired, previous) = desired_topic(&s.topics, scope);
    let current = s.retained(std::slice::from_ref(&desired)).await?;
    if let Some(old) = current.get(&desired) {
        files.push((previous, old.to_vec(), true));
    }
    s.publish_all(&files).await?;
    s.publish_all(&[(desired, envelope, true)]).await
}

pub async fn rollback(a: &RollbackArgs) -> Result<i32, CentralError> {
    a.target.check()?;
    let key = load_key(&a.key)?;
    let scope = scope(&a.target);
    let mut s = Session::connect(&a.broker).await?;
    let (_, previous) = desired_topic(&s.topics, &scope);
    let found = s.retained(std::slice::from_ref(&previous)).await?;
    let old = found.get(&previous).ok_or_else(|| {
        CentralError::Usage(format!("nothing to roll back to: {previous} is empty"))
    })?;
    let env: Envelope =
        serde_json::from_slice(old).map_err(|e| CentralError::Usage(format!("{previous}: {e}")))?;
    let mut m: Manifest = serde_json::from_str(&env.manifest)
        .map_err(|e| CentralError::Usage(format!("{previous}: {e}")))?;
    let now = clock::unix_ms();
    m.revision = now;
    m.deployment_id = format!("rollback-{now}-{:08x}", rand::random::<u32>());
    m.issued_at_ms = now;
    m.expires_at_ms = now.saturating_add(a.ttl_s.saturating_mul(1000));
    publish_desired(&mut s, &scope, seal(&m, &key), Vec::new()).await?;
    s.close();
    println!(
        "{}",
        json!({"deployment_id": m.deployment_id, "revision": m.revision, "scope": m.scope.label()})
    );
    Ok(0)
}
