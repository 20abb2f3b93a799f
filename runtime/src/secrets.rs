//! Secrets in the configuration: shown as `***` wherever the configuration is
//! shown (`vwed-edge config`, the API, logs), and each one may come from a file
//! instead (`smtp_password_file`), which fits systemd credentials
//! (`LoadCredential=`; a relative path is taken below `$CREDENTIALS_DIRECTORY`).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Settings that hold secrets. A new one (a broker password, ...) goes here and
/// gets a `<name>_file` twin; `every_secret_looking_setting_is_listed` fails
/// until it does.
pub const SECRET_KEYS: &[&str] = &["smtp_password"];

pub const MASK: &str = "***";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {key}_file {path}: {err}")]
    Read {
        key: &'static str,
        path: String,
        err: std::io::Error,
    },
    #[error("set {0} or {0}_file, not both")]
    Both(&'static str),
    #[error("{key}_file {path} is empty")]
    Empty { key: &'static str, path: String },
}

/// Fills each secret whose `<name>_file` is set from that file (trailing
/// newlines dropped).
pub fn load_files(cfg: &mut Config) -> Result<(), SecretError> {
    if let Some(v) = from_file("smtp_password", &cfg.smtp_password, &cfg.smtp_password_file)? {
        cfg.smtp_password = v;
    }
    Ok(())
}

fn from_file(key: &'static str, inline: &str, file: &str) -> Result<Option<String>, SecretError> {
    if file.trim().is_empty() {
        return Ok(None);
    }
    if !inline.is_empty() {
        return Err(SecretError::Both(key));
    }
    let path = resolve(Path::new(file.trim()));
    let text = std::fs::read_to_string(&path).map_err(|err| SecretError::Read {
        key,
        path: path.display().to_string(),
        err,
    })?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(SecretError::Empty {
            key,
            path: path.display().to_string(),
        });
    }
    Ok(Some(value))
}

fn resolve(p: &Path) -> PathBuf {
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if p.is_relative() => Path::new(&dir).join(p),
        _ => p.to_path_buf(),
    }
}

/// The configuration as TOML with every set secret replaced by `***`.
pub fn redacted(cfg: &Config) -> Result<toml::Table, toml::ser::Error> {
    let mut t = toml::Table::try_from(cfg)?;
    for key in SECRET_KEYS {
        if let Some(toml::Value::String(v)) = t.get_mut(*key)
            && !v.is_empty()
        {
            *v = MASK.to_string();
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_output_masks_secrets() {
        let cfg = Config {
            smtp_password: "hunter2-secret".into(),
            ..Config::default()
        };
        let text = toml::to_string(&redacted(&cfg).expect("toml")).expect("text");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("smtp_password = \"***\""), "{text}");
        // An unset secret stays visibly unset.
        let text = toml::to_string(&redacted(&Config::default()).expect("toml")).expect("text");
        assert!(text.contains("smtp_password = \"\""), "{text}");
    }

    #[test]
    fn every_secret_looking_setting_is_listed() {
        let t = toml::Table::try_from(Config::default()).expect("toml");
        for key in t.keys() {
            let looks_secret = ["password", "secret", "token"]
                .iter()
                .any(|w| key.contains(w))
                && !key.ends_with("_file");
            if looks_secret {
                assert!(
                    SECRET_KEYS.contains(&key.as_str()),
                    "{key} is not in SECRET_KEYS"
                );
                assert!(
                    t.contains_key(&format!("{key}_file")),
                    "{key} has no {key}_file"
                );
            }
        }
    }

    #[test]
    fn secret_from_file_trims_newline_and_refuses_both() {
        let dir = std::env::temp_dir().join(format!("vwed-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("smtp");
        std::fs::write(&f, "s3cret\n").expect("write");
        let mut cfg = Config {
            smtp_password_file: f.display().to_string(),
            ..Config::default()
        };
        load_files(&mut cfg).expect("load");
        assert_eq!(cfg.smtp_password, "s3cret");
        assert!(matches!(load_files(&mut cfg), Err(SecretError::Both(_))));
        let mut missing = Config {
            smtp_password_file: dir.join("nope").display().to_string(),
            ..Config::default()
        };
        assert!(matches!(
            load_files(&mut missing),
            Err(SecretError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
