//! The desired state: a manifest (what a device should run) inside a signed
//! envelope. The signature covers the manifest's exact bytes, so any language can
//! sign and check it without agreeing on a canonical JSON form.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use vwed_base::paths::{PathError, check_file_path, check_project_name};

use crate::crypto;
use crate::topics::Source;

/// Format of the manifest this device understands.
pub const FORMAT: u32 = 1;
/// Largest envelope (manifest and signature) a device reads.
pub const MAX_ENVELOPE_BYTES: usize = 512 * 1024;
pub const MAX_FILES: usize = 2_000;
pub const MAX_RUN: usize = 64;
/// Smallest and largest chunk a manifest may ask files to travel in.
pub const MIN_CHUNK_BYTES: u64 = 1024;
pub const MAX_CHUNK_BYTES: u64 = 512 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub deployment_id: String,
    /// Grows with every deployment; a device never applies one that is not above
    /// the last it switched to.
    pub revision: u64,
    pub fleet: String,
    pub scope: Scope,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    /// Size of the chunks files travel in (the last one of a file is shorter).
    pub chunk_bytes: u64,
    pub projects: Vec<ProjectSpec>,
    pub run: Vec<RunSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Scope {
    Device(String),
    Group(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    pub name: String,
    pub files: Vec<FileSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// `<project>/<file path>`.
    pub script: String,
    #[serde(default)]
    pub start_params: Value,
}

/// What travels on a `desired` topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The manifest's JSON text, signed as it is.
    pub manifest: String,
    /// The signer's Ed25519 public key, 64 hex digits.
    #[serde(default)]
    pub key: String,
    /// Ed25519 signature of `manifest`'s UTF-8 bytes, 128 hex digits.
    #[serde(default)]
    pub signature: String,
}

/// What is wrong with a manifest's shape (names, paths, digests, bounds). The
/// text travels in [`Refusal::Invalid`] to the central side.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("format {0} (本设备支持 {FORMAT})", FORMAT = FORMAT)]
    Format(u32),
    #[error("deployment_id 必须是 1 到 128 个字符")]
    DeploymentId,
    #[error("chunk_bytes 必须在 {MIN} 与 {MAX} 之间", MIN = MIN_CHUNK_BYTES, MAX = MAX_CHUNK_BYTES)]
    ChunkBytes,
    #[error("{name}: {reason}")]
    ProjectName { name: String, reason: PathError },
    #[error("项目 {0} 出现了两次")]
    DuplicateProject(String),
    /// `file` is `<project>/<path>`.
    #[error("{file}: {reason}")]
    FilePath { file: String, reason: PathError },
    #[error("{0}: sha256 必须是 64 个小写十六进制数字")]
    Digest(String),
    #[error("文件 {0} 出现了两次")]
    DuplicateFile(String),
    #[error("文件过多: {0} 个, 上限 {MAX}", MAX = MAX_FILES)]
    TooManyFiles(usize),
    #[error("部署过大: {bytes} 字节, 本设备上限 {max}")]
    TooLarge { bytes: u64, max: u64 },
    #[error("run 过长: 上限 {MAX} 个脚本", MAX = MAX_RUN)]
    RunTooLong,
    #[error("run 中的脚本 {0} 不在清单的文件中")]
    RunNotInFiles(String),
    #[error("run 中的脚本 {0} 出现了两次")]
    RunTwice(String),
    #[error("{0} 的 start_params 必须是 JSON 对象")]
    StartParams(String),
}

/// Why a device did not apply a deployment. `code` is for programs, the message
/// for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("消息不是有效的部署信封: {0}")]
    Malformed(String),
    #[error("部署没有签名")]
    NoSignature,
    #[error("签名公钥 {0} 不在本设备信任的公钥列表中")]
    UntrustedKey(String),
    #[error("签名校验失败")]
    BadSignature,
    #[error("清单无效: {0}")]
    Invalid(String),
    #[error("部署的范围是 {scope}, 不是本设备 ({device})")]
    WrongScope { scope: String, device: String },
    #[error("部署已于 {0} (unix ms) 过期")]
    Expired(u64),
    #[error("版本 {revision} 不高于本设备上次应用的版本 {last} (重放或回退)")]
    StaleRevision { revision: u64, last: u64 },
    #[error("文件 {0} 的内容与清单中的哈希不符")]
    HashMismatch(String),
    #[error("文件 {0} 不是 UTF-8 文本")]
    NotText(String),
    #[error("等待文件 {0} 超时")]
    FetchTimeout(String),
    #[error("项目 {0} 已在本地脱离 fleet 管理")]
    Detached(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::NoSignature => "no_signature",
            Refusal::UntrustedKey(_) => "untrusted_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::Invalid(_) => "invalid",
            Refusal::WrongScope { .. } => "wrong_scope",
            Refusal::Expired(_) => "expired",
            Refusal::StaleRevision { .. } => "stale_revision",
            Refusal::HashMismatch(_) => "hash_mismatch",
            Refusal::NotText(_) => "not_text",
            Refusal::FetchTimeout(_) => "fetch_timeout",
            Refusal::Detached(_) => "detached",
        }
    }
}

/// Who the device is, for the scope check.
pub struct Identity<'a> {
    pub device: &'a str,
    pub fleet: &'a str,
    pub groups: &'a [String],
}

/// What a verification needs besides the message.
pub struct Checks<'a> {
    pub trusted: &'a BTreeSet<String>,
    pub me: Identity<'a>,
    /// The topic the message came from: a manifest for a group that arrives on a
    /// device's topic (or the other way round) is not for this device either.
    pub source: &'a Source,
    pub now_ms: u64,
    /// Revision of the deployment the device last switched to.
    pub last_revision: u64,
    pub max_bytes: u64,
}

/// Checks, in this order: envelope, signature present, key trusted, signature
/// valid (nothing of the manifest is read before), manifest well-formed. Then
/// [`admit`] decides whether this device takes it.
pub fn open(payload: &[u8], c: &Checks<'_>) -> Result<Manifest, Refusal> {
    if payload.len() > MAX_ENVELOPE_BYTES {
        return Err(Refusal::Malformed(format!(
            "{} 字节, 上限 {MAX_ENVELOPE_BYTES}",
            payload.len()
        )));
    }
    let env: Envelope =
        serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if env.signature.trim().is_empty() || env.key.trim().is_empty() {
        return Err(Refusal::NoSignature);
    }
    let key =
        crypto::public_key_hex(&env.key).map_err(|_| Refusal::UntrustedKey(env.key.clone()))?;
    if !c.trusted.contains(&key) {
        return Err(Refusal::UntrustedKey(key));
    }
    crypto::verify(&key, env.manifest.as_bytes(), &env.signature)
        .map_err(|_| Refusal::BadSignature)?;
    let m: Manifest =
        serde_json::from_str(&env.manifest).map_err(|e| Refusal::Invalid(e.to_string()))?;
    m.check_shape(c.max_bytes)
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
    Ok(m)
}

/// A genuine manifest is for this device: scope, expiry, revision.
pub fn admit(m: &Manifest, c: &Checks<'_>) -> Result<(), Refusal> {
    m.check_scope(&c.me, c.source)?;
    if c.now_ms > m.expires_at_ms {
        return Err(Refusal::Expired(m.expires_at_ms));
    }
    if m.revision <= c.last_revision {
        return Err(Refusal::StaleRevision {
            revision: m.revision,
            last: c.last_revision,
        });
    }
    Ok(())
}

impl Manifest {
    /// Every file by `(project, path)`.
    pub fn files(&self) -> impl Iterator<Item = (&str, &FileSpec)> {
        self.projects
            .iter()
            .flat_map(|p| p.files.iter().map(move |f| (p.name.as_str(), f)))
    }

    pub fn total_bytes(&self) -> u64 {
        self.files().map(|(_, f)| f.size).sum()
    }

    /// Names, paths, digests and bounds: everything that must hold before a byte
    /// of it is written anywhere.
    pub fn check_shape(&self, max_bytes: u64) -> Result<(), ManifestError> {
        if self.format != FORMAT {
            return Err(ManifestError::Format(self.format));
        }
        if self.deployment_id.is_empty() || self.deployment_id.len() > 128 {
            return Err(ManifestError::DeploymentId);
        }
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&self.chunk_bytes) {
            return Err(ManifestError::ChunkBytes);
        }
        let mut names = BTreeSet::new();
        let mut paths = BTreeMap::new();
        for p in &self.projects {
            check_project_name(&p.name).map_err(|reason| ManifestError::ProjectName {
                name: p.name.clone(),
                reason,
            })?;
            if !names.insert(p.name.as_str()) {
                return Err(ManifestError::DuplicateProject(p.name.clone()));
            }
            for f in &p.files {
                let file = format!("{}/{}", p.name, f.path);
                if let Err(reason) = check_file_path(&f.path) {
                    return Err(ManifestError::FilePath { file, reason });
                }
                if !crypto::is_digest(&f.sha256) {
                    return Err(ManifestError::Digest(file));
                }
                if paths.insert(file.clone(), f).is_some() {
                    return Err(ManifestError::DuplicateFile(file));
                }
            }
        }
        if paths.len() > MAX_FILES {
            return Err(ManifestError::TooManyFiles(paths.len()));
        }
        if self.total_bytes() > max_bytes {
            return Err(ManifestError::TooLarge {
                bytes: self.total_bytes(),
                max: max_bytes,
            });
        }
        self.check_run(&paths)
    }

    fn check_run(&self, paths: &BTreeMap<String, &FileSpec>) -> Result<(), ManifestError> {
        if self.run.len() > MAX_RUN {
            return Err(ManifestError::RunTooLong);
        }
        let mut seen = BTreeSet::new();
        for r in &self.run {
            if !paths.contains_key(&r.script) {
                return Err(ManifestError::RunNotInFiles(r.script.clone()));
            }
            if !seen.insert(r.script.as_str()) {
                return Err(ManifestError::RunTwice(r.script.clone()));
            }
            if !matches!(r.start_params, Value::Null | Value::Object(_)) {
                return Err(ManifestError::StartParams(r.script.clone()));
            }
        }
        Ok(())
    }

    fn check_scope(&self, me: &Identity<'_>, source: &Source) -> Result<(), Refusal> {
        let fits = self.fleet == me.fleet
            && match (&self.scope, source) {
                (Scope::Device(d), Source::Device) => d == me.device,
                (Scope::Group(g), Source::Group(i)) => me.groups.get(*i) == Some(g),
                _ => false,
            };
        if fits {
            return Ok(());
        }
        let scope = match &self.scope {
            Scope::Device(d) => format!("{}/device/{d}", self.fleet),
            Scope::Group(g) => format!("{}/group/{g}", self.fleet),
        };
        Err(Refusal::WrongScope {
            scope,
            device: format!("{}/device/{}", me.fleet, me.device),
        })
    }
}

impl Scope {
    pub fn label(&self) -> String {
        match self {
            Scope::Device(d) => format!("device/{d}"),
            Scope::Group(g) => format!("group/{g}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;

    fn manifest(revision: u64) -> Manifest {
        Manifest {
            format: FORMAT,
            deployment_id: "dep-1".into(),
            revision,
            fleet: "f".into(),
            scope: Scope::Device("d1".into()),
            issued_at_ms: 1,
            expires_at_ms: 1_000,
            chunk_bytes: 4096,
            projects: vec![ProjectSpec {
                name: "p".into(),
                files: vec![FileSpec {
                    path: "main.py".into(),
                    sha256: crypto::sha256_hex(b"x"),
                    size: 1,
                }],
            }],
            run: vec![RunSpec {
                script: "p/main.py".into(),
                start_params: Value::Null,
            }],
        }
    }

    fn sealed(m: &Manifest, key: &SigningKey) -> Vec<u8> {
        let text = serde_json::to_string(m).expect("json");
        serde_json::to_vec(&Envelope {
            signature: key.sign_hex(text.as_bytes()),
            key: key.public_hex(),
            manifest: text,
        })
        .expect("json")
    }

    fn check(
        payload: &[u8],
        trusted: &BTreeSet<String>,
        now: u64,
        last: u64,
    ) -> Result<Manifest, Refusal> {
        let groups = vec!["g".to_string()];
        let c = Checks {
            trusted,
            me: Identity {
                device: "d1",
                fleet: "f",
                groups: &groups,
            },
            source: &Source::Device,
            now_ms: now,
            last_revision: last,
            max_bytes: 1 << 20,
        };
        let m = open(payload, &c)?;
        admit(&m, &c)?;
        Ok(m)
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let key = SigningKey::generate().expect("key");
        let trusted: BTreeSet<String> = [key.public_hex()].into();
        let good = sealed(&manifest(5), &key);
        assert_eq!(check(&good, &trusted, 10, 4).expect("valid").revision, 5);
        assert_eq!(
            check(&good, &trusted, 10, 5).expect_err("replay").code(),
            "stale_revision"
        );
        assert_eq!(
            check(&good, &trusted, 1_001, 4).expect_err("old").code(),
            "expired"
        );
        let stranger = SigningKey::generate().expect("key");
        let foreign = sealed(&manifest(5), &stranger);
        assert_eq!(
            check(&foreign, &trusted, 10, 4).expect_err("key").code(),
            "untrusted_key"
        );
        let mut env: Envelope = serde_json::from_slice(&good).expect("env");
        env.manifest = env.manifest.replace("dep-1", "dep-2");
        let forged = serde_json::to_vec(&env).expect("json");
        assert_eq!(
            check(&forged, &trusted, 10, 4).expect_err("sig").code(),
            "bad_signature"
        );
        env.signature.clear();
        let unsigned = serde_json::to_vec(&env).expect("json");
        assert_eq!(
            check(&unsigned, &trusted, 10, 4).expect_err("none").code(),
            "no_signature"
        );
        let mut other = manifest(5);
        other.scope = Scope::Device("d2".into());
        let wrong = sealed(&other, &key);
        assert_eq!(
            check(&wrong, &trusted, 10, 4).expect_err("scope").code(),
            "wrong_scope"
        );
        let mut evil = manifest(5);
        evil.projects[0].files[0].path = "../../etc/passwd".into();
        let evil = sealed(&evil, &key);
        assert_eq!(
            check(&evil, &trusted, 10, 4).expect_err("path").code(),
            "invalid"
        );
    }
}
