//! Runtime configuration: defaults, then a TOML file, then `VWED_*` environment
//! variables, then command-line flags (each overrides the one before).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the configuration could not be loaded. Environment errors name the
/// variable, so that a typo in a systemd unit is found without guessing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML")]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid configuration{}: {message}", in_file(.file.as_deref()))]
    Invalid {
        file: Option<PathBuf>,
        message: String,
    },
    #[error("{var}: invalid number \"{raw}\"")]
    EnvNumber { var: String, raw: String },
    #[error("{var}: invalid boolean \"{raw}\" (true or false)")]
    EnvBool { var: String, raw: String },
    #[error("{var}: invalid value \"{raw}\": {message}")]
    EnvValue {
        var: String,
        raw: String,
        message: String,
    },
    #[error("{0}")]
    Rule(&'static str),
    /// A `[sandbox]` setting or a project's grant is not acceptable.
    #[error(transparent)]
    Sandbox(#[from] vwed_sandbox::SettingsError),
    /// A `[supervision]` setting is not acceptable.
    #[error(transparent)]
    Supervision(#[from] vwed_engine::supervision::SupervisionError),
}

fn in_file(file: Option<&Path>) -> String {
    file.map(|p| format!(" (file {})", p.display()))
        .unwrap_or_default()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
// Each part a crate owns is flattened in, so the file keeps one flat list of
// keys. serde's `deny_unknown_fields` does not work with `flatten`: `load`
// refuses unknown keys itself (`unknown_keys`).
#[serde(default)]
pub struct Config {
    /// Address of the HTTP/WebSocket API.
    pub listen: SocketAddr,
    /// Where the database, the project sources and the lock file live.
    pub data_dir: PathBuf,
    #[serde(flatten)]
    pub engine: vwed_engine::EngineSettings,
    /// Largest request body accepted by any endpoint.
    pub max_body_bytes: u64,
    #[serde(flatten)]
    pub integrations: vwed_integrations::IntegrationSettings,
    /// Create the sample project when the data dir is new.
    pub sample_project: bool,
    #[serde(flatten)]
    pub io: vwed_io::IoSettings,
    /// redb page cache, in bytes.
    pub db_cache_bytes: usize,
    #[serde(flatten)]
    pub logs: vwed_logs::LogSettings,
    /// Threads of the async executor (HTTP, IPC, timers). 1 gives slightly lower tail
    /// latency on a 2-core controller, 2 slightly more throughput.
    pub executor_threads: usize,
    // HTTP server bounds (runtime/src/server, docs/limits.md).
    #[serde(flatten)]
    pub server: crate::server::ServerSettings,
    // Jobs: one-shot Python and Bash scripts (runtime/src/jobs, docs/jobs.md).
    #[serde(flatten)]
    pub jobs: vwed_jobs::JobSettings,
    // --- access control, TLS and secrets (issue 10) ---
    #[serde(flatten)]
    pub auth: vwed_auth::AuthSettings,
    #[serde(flatten)]
    pub tls: vwed_tls::TlsSettings,
    // Tables after the plain settings, so that the TOML form can list them last.
    // Bounds of script output, logs and file history (docs/limits.md).
    /// Previous versions of a file kept; older ones are pruned (and counted).
    pub file_versions_keep: u64,
    /// Bytes of previous versions kept across all files, pruned oldest first
    /// (the newest version of a file is kept even above it).
    pub file_versions_max_bytes: u64,
    /// Confinement and limits of script workers, and per-project grants
    /// (`[sandbox]`, `[sandbox.projects.<name>]`; see docs/sandbox.md).
    pub sandbox: vwed_sandbox::SandboxSettings,
    /// Restart policy defaults, busy grace, CPU limit, safe mode (`[supervision]`;
    /// see docs/sandbox.md).
    pub supervision: vwed_engine::supervision::SupervisionSettings,
    /// `serve --safe`: start without restoring the scripts that ran before.
    #[serde(skip)]
    pub safe_start: bool,
    /// Fleet sync over MQTT (`[fleet]`, docs/fleet.md); off while `broker_url` is empty.
    pub fleet: vwed_fleet_agent::FleetSettings,
}

impl Default for Config {
    // long: one line per setting, in the order of the struct.
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./vwed-data"),
            engine: vwed_engine::EngineSettings::default(),
            max_body_bytes: 8 * 1024 * 1024,
            integrations: vwed_integrations::IntegrationSettings::default(),
            sample_project: true,
            io: vwed_io::IoSettings::default(),
            db_cache_bytes: 4 * 1024 * 1024,
            logs: vwed_logs::LogSettings::default(),
            executor_threads: 2,
            server: crate::server::ServerSettings::default(),
            jobs: vwed_jobs::JobSettings::default(),
            file_versions_keep: 100,
            file_versions_max_bytes: 64 * 1024 * 1024,
            sandbox: vwed_sandbox::SandboxSettings::default(),
            auth: vwed_auth::AuthSettings::default(),
            tls: vwed_tls::TlsSettings::default(),
            supervision: vwed_engine::supervision::SupervisionSettings::default(),
            safe_start: false,
            fleet: vwed_fleet_agent::FleetSettings::default(),
        }
    }
}

/// Values given on the command line; `None` leaves the configured value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub board: Option<String>,
    pub io_config: Option<String>,
    /// Start in safe mode (`serve --safe`).
    pub safe: bool,
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut table = defaults();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let from_file: toml::Table =
                toml::from_str(&text).map_err(|source| ConfigError::Toml {
                    path: path.to_path_buf(),
                    source,
                })?;
            unknown_keys(&table, &from_file).map_err(|message| ConfigError::Invalid {
                file: Some(path.to_path_buf()),
                message,
            })?;
            merge(&mut table, from_file);
        }
        apply_env(&mut table, "VWED_", std::env::vars())?;
        let mut cfg: Config =
            table
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    file: file.map(Path::to_path_buf),
                    message: e.message().to_string(),
                })?;
        if let Some(l) = overrides.listen {
            cfg.listen = l;
        }
        if let Some(d) = &overrides.data_dir {
            cfg.data_dir.clone_from(d);
        }
        if let Some(b) = &overrides.board {
            cfg.io.board.clone_from(b);
        }
        if let Some(p) = &overrides.io_config {
            cfg.io.io_config.clone_from(p);
        }
        cfg.sandbox.config_file = file.map(Path::to_path_buf);
        cfg.safe_start = overrides.safe;
        cfg.validate()?;
        Ok(cfg)
    }
    /// What the engine is configured with.
    pub fn engine_config(&self) -> vwed_engine::EngineConfig {
        vwed_engine::EngineConfig {
            engine: self.engine.clone(),
            data_dir: self.data_dir.clone(),
            sandbox: self.sandbox.clone(),
            supervision: self.supervision.clone(),
            safe_start: self.safe_start,
        }
    }

    /// What the services beyond the core (task server, HTTP, mail) are set up with.
    pub fn integrations_setup(&self) -> vwed_integrations::Setup {
        vwed_integrations::Setup {
            settings: self.integrations.clone(),
            tls: self.tls.clone(),
            data_dir: self.data_dir.clone(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.engine.call_timeout_ms == 0 || self.engine.boot_timeout_ms == 0 {
            return Err(ConfigError::Rule(
                "call_timeout_ms and boot_timeout_ms must be more than 0",
            ));
        }
        if self.engine.max_running_scripts == 0 {
            return Err(ConfigError::Rule("max_running_scripts must be at least 1"));
        }
        if self.engine.output_lines == 0 {
            return Err(ConfigError::Rule("output_lines must be at least 1"));
        }
        if !(MIN_LINE_BYTES..=MAX_LINE_BYTES).contains(&self.engine.max_line_bytes) {
            return Err(ConfigError::Rule(
                "max_line_bytes must be between 256 and 4194304 (4 MiB)",
            ));
        }
        if self.file_versions_keep == 0 {
            return Err(ConfigError::Rule("file_versions_keep must be at least 1"));
        }
        self.sandbox.validate(&self.data_dir)?;
        self.supervision.validate()?;
        Ok(())
    }
}

/// Range of `max_line_bytes`: a line must hold a marker, and a few lines must fit
/// in one worker frame.
const MIN_LINE_BYTES: usize = 256;
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// The built-in defaults as a TOML table: every setting is there, with its type.
fn defaults() -> toml::Table {
    match toml::Table::try_from(Config::default()) {
        Ok(t) => t,
        // Config serializes to a table by construction (a unit test checks it).
        Err(_) => toml::Table::new(),
    }
}

/// The first top-level key of `file` that no setting has (the sections check
/// their own keys), with the setting it was probably meant to be.
fn unknown_keys(defaults: &toml::Table, file: &toml::Table) -> Result<(), String> {
    let Some(k) = file.keys().find(|k| !defaults.contains_key(*k)) else {
        return Ok(());
    };
    let near = defaults
        .keys()
        .map(|d| (edit_distance(k, d), d))
        .filter(|(n, d)| *n <= (k.len() / 3).max(1) || d.starts_with(k.as_str()))
        .min();
    Err(match near {
        Some((_, d)) => format!("unknown field `{k}`, did you mean `{d}`?"),
        None => format!("unknown field `{k}`"),
    })
}

/// Levenshtein distance of two setting names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// `VWED_CALL_TIMEOUT_MS=5000` sets `call_timeout_ms`; `VWED_SECTION__KEY` reaches
/// into a table. A value is read as the setting's type (number, boolean, list of
/// hosts, string) and checked on its own, so an error names the variable.
/// Variables that name no setting are ignored, so that `VWED_CONFIG` and the like
/// can share the prefix.
fn apply_env(
    table: &mut toml::Table,
    prefix: &str,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = defaults();
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix(prefix) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let Some(default) = lookup(&defaults, &path) else {
            continue;
        };
        let value = env_value(&var, &raw, default)?;
        // Range and syntax (a port above 65535, an address without port) show
        // only when the value meets its field.
        let mut probe = defaults.clone();
        set_known(&mut probe, &path, value.clone());
        if let Err(e) = probe.try_into::<Config>() {
            return Err(ConfigError::EnvValue {
                var,
                raw,
                message: e.message().to_string(),
            });
        }
        set_known(table, &path, value);
    }
    Ok(())
}

/// Reads `raw` as the type of the setting's default.
fn env_value(var: &str, raw: &str, default: &toml::Value) -> Result<toml::Value, ConfigError> {
    use toml::Value as V;
    let text = raw.trim();
    let as_toml = || {
        toml::from_str::<toml::Table>(&format!("v = {text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    let number = || ConfigError::EnvNumber {
        var: var.to_string(),
        raw: raw.to_string(),
    };
    // TOML's digit separators stay allowed: 5_000.
    let digits = text.replace('_', "");
    match default {
        V::Integer(_) => digits.parse::<i64>().map(V::Integer).map_err(|_| number()),
        V::Float(_) => digits.parse::<f64>().map(V::Float).map_err(|_| number()),
        V::Boolean(_) => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(V::Boolean(true)),
            "false" => Ok(V::Boolean(false)),
            _ => Err(ConfigError::EnvBool {
                var: var.to_string(),
                raw: raw.to_string(),
            }),
        },
        // A quoted TOML string loses its quotes; anything else is taken as is
        // (a password of digits stays a string). Lists also take "a,b".
        V::String(_) | V::Array(_) => Ok(match as_toml() {
            Some(v @ (V::String(_) | V::Array(_))) => v,
            _ => V::String(raw.to_string()),
        }),
        _ => Ok(as_toml().unwrap_or_else(|| V::String(raw.to_string()))),
    }
}

/// The value at `path`, if that setting exists.
fn lookup<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    match path {
        [] => None,
        [last] => table.get(last),
        [first, rest @ ..] => match table.get(first) {
            Some(toml::Value::Table(inner)) => lookup(inner, rest),
            _ => None,
        },
    }
}

/// Sets `path` in `table` only if that key already exists (every known setting
/// has a default, so unknown names are simply not there).
fn set_known(table: &mut toml::Table, path: &[String], value: toml::Value) -> bool {
    match path {
        [] => false,
        [last] => match table.get_mut(last) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        },
        [first, rest @ ..] => match table.get_mut(first) {
            Some(toml::Value::Table(inner)) => set_known(inner, rest, value),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_hosts_from_env_string_or_toml_array() {
        let mut table = toml::Table::try_from(Config::default()).expect("defaults");
        let vars = vec![(
            "VWED_HTTP_ALLOW_HOSTS".to_string(),
            "127.0.0.1:8080, api.example.com".to_string(),
        )];
        apply_env(&mut table, "VWED_", vars.into_iter()).expect("env");
        let cfg: Config = table.try_into().expect("config");
        assert_eq!(
            cfg.integrations.http_allow_hosts,
            vec!["127.0.0.1:8080", "api.example.com"]
        );
        let mut table = toml::Table::try_from(Config::default()).expect("defaults");
        merge(
            &mut table,
            toml::from_str("http_allow_hosts = [\"a\", \"b:1\"]").expect("toml"),
        );
        let cfg: Config = table.try_into().expect("config");
        assert_eq!(cfg.integrations.http_allow_hosts, vec!["a", "b:1"]);
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        let mut table = toml::Table::try_from(Config::default()).expect("defaults");
        merge(
            &mut table,
            toml::from_str("call_timeout_ms = 1000\nlisten = \"127.0.0.1:9000\"").expect("toml"),
        );
        let vars = vec![
            ("VWED_CALL_TIMEOUT_MS".to_string(), "2500".to_string()),
            ("VWED_DATA_DIR".to_string(), "/tmp/x y".to_string()),
            ("VWED_CONFIG".to_string(), "ignored.toml".to_string()),
            ("OTHER".to_string(), "1".to_string()),
        ];
        apply_env(&mut table, "VWED_", vars.into_iter()).expect("env");
        let cfg: Config = table.try_into().expect("config");
        assert_eq!(cfg.engine.call_timeout_ms, 2500);
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x y"));
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("vwed-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("c.toml");
        std::fs::write(&f, "call_timeout = 5\n").expect("write");
        let err = Config::load(Some(&f), &Overrides::default()).expect_err("must fail");
        assert!(
            format!("{err:#}")
                .contains("unknown field `call_timeout`, did you mean `call_timeout_ms`?"),
            "{err:#}"
        );
        std::fs::write(&f, "zzz = 5\n").expect("write");
        let err = Config::load(Some(&f), &Overrides::default()).expect_err("must fail");
        assert!(
            format!("{err:#}").ends_with("unknown field `zzz`"),
            "{err:#}"
        );
    }

    fn env_error(var: &str, raw: &str) -> String {
        let mut table = defaults();
        let vars = vec![(var.to_string(), raw.to_string())];
        match apply_env(&mut table, "VWED_", vars.into_iter()) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_setting_names_its_variable_when_the_value_is_bad() {
        let table = defaults();
        assert!(table.len() > 30, "defaults serialize to a full table");
        check_every_setting("VWED_", &table);
    }

    /// Each setting of `table` (and of its sections, `VWED_SECTION__KEY`).
    fn check_every_setting(prefix: &str, table: &toml::Table) {
        for (key, default) in table {
            let var = format!("{prefix}{}", key.to_ascii_uppercase());
            match default {
                toml::Value::Integer(_) => {
                    assert_eq!(
                        env_error(&var, "abc"),
                        format!("{var}: invalid number \"abc\""),
                    );
                    let negative = env_error(&var, "-1");
                    assert!(negative.starts_with(&format!("{var}: invalid value \"-1\"")));
                }
                toml::Value::Boolean(_) => assert_eq!(
                    env_error(&var, "abc"),
                    format!("{var}: invalid boolean \"abc\" (true or false)"),
                ),
                toml::Value::String(_) if key == "listen" || key == "restart" => {
                    let e = env_error(&var, "abc");
                    assert!(
                        e.starts_with(&format!("{var}: invalid value \"abc\": ")),
                        "{e}"
                    );
                }
                // Any text is a valid path, URL, name or list of hosts; they are
                // checked where they are used.
                toml::Value::String(_) | toml::Value::Array(_) => {
                    assert_eq!(env_error(&var, "abc"), "", "{var}");
                }
                // A section; `sandbox.projects` (a map of names) is empty here.
                toml::Value::Table(inner) => check_every_setting(&format!("{var}__"), inner),
                other => panic!("setting {key} has a type this test does not cover: {other}"),
            }
        }
    }

    #[test]
    fn env_values_out_of_range_or_in_other_spellings() {
        let e = env_error("VWED_SMTP_PORT", "70000");
        assert!(
            e.starts_with("VWED_SMTP_PORT: invalid value \"70000\": "),
            "{e}"
        );
        assert_eq!(env_error("VWED_CALL_TIMEOUT_MS", " 5_000 "), "");
        assert_eq!(env_error("VWED_SPARE_WORKER", "False"), "");
        let mut table = defaults();
        let vars = [
            ("VWED_SMTP_PASSWORD", "12345"),
            ("VWED_SMTP_USERNAME", "\"quoted\""),
        ];
        apply_env(
            &mut table,
            "VWED_",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .expect("env");
        let cfg: Config = table.try_into().expect("config");
        assert_eq!(
            cfg.integrations.smtp_password, "12345",
            "digits stay a string"
        );
        assert_eq!(cfg.integrations.smtp_username, "quoted");
    }
}
