//! Secrets in the configuration: shown as `***` wherever the configuration is
//! shown (`vwed-edge config`, the API, logs), and each one may come from a file
//! instead (`smtp_password_file`), which fits systemd credentials
//! (`LoadCredential=`; a relative path is taken below `$CREDENTIALS_DIRECTORY`).

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Settings that hold secrets, as dotted paths into the configuration's
/// tables. A new one goes here and gets a `<name>_file` twin;
/// `every_secret_looking_setting_is_listed` fails until it does. (The fleet
/// broker's `password_file` is read by the fleet settings themselves.)
pub const SECRET_KEYS: &[&str] = &["smtp_password", "fleet.password"];

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
    if let Some(v) = from_file(
        "smtp_password",
        &cfg.integrations.smtp_password,
        &cfg.integrations.smtp_password_file,
    )? {
        cfg.integrations.smtp_password = v;
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
        if let Some(toml::Value::String(v)) = setting_mut(&mut t, key)
            && !v.is_empty()
        {
            *v = MASK.to_string();
        }
    }
    Ok(t)
}

/// The value at a dotted path (`fleet.password`).
fn setting_mut<'a>(t: &'a mut toml::Table, path: &str) -> Option<&'a mut toml::Value> {
    match path.split_once('.') {
        None => t.get_mut(path),
        Some((table, rest)) => setting_mut(t.get_mut(table)?.as_table_mut()?, rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_output_masks_secrets() {
        let mut cfg = Config::default();
        cfg.integrations.smtp_password = "hunter2-secret".into();
        cfg.fleet.password = "broker-hunter3".into();
        let text = toml::to_string(&redacted(&cfg).expect("toml")).expect("text");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("hunter3"), "the broker's password: {text}");
        assert!(text.contains("smtp_password = \"***\""), "{text}");
        // An unset secret stays visibly unset.
        let text = toml::to_string(&redacted(&Config::default()).expect("toml")).expect("text");
        assert!(text.contains("smtp_password = \"\""), "{text}");
    }

    /// Every setting of `t` and its tables, as (dotted path, the table it is in, name).
    fn settings<'a>(
        prefix: &str,
        t: &'a toml::Table,
        out: &mut Vec<(String, &'a toml::Table, String)>,
    ) {
        for (key, v) in t {
            let path = format!("{prefix}{key}");
            match v {
                toml::Value::Table(inner) => settings(&format!("{path}."), inner, out),
                _ => out.push((path, t, key.clone())),
            }
        }
    }

    #[test]
    fn every_secret_looking_setting_is_listed() {
        let mut cfg = Config::default();
        // A project's grants are a table per project: one, so that it is looked at.
        cfg.sandbox.projects.insert("p".into(), Default::default());
        let t = toml::Table::try_from(cfg).expect("toml");
        let mut all = Vec::new();
        settings("", &t, &mut all);
        assert!(
            all.iter().any(|(p, _, _)| p == "fleet.password"),
            "nested tables are walked"
        );
        for (path, table, key) in all {
            let looks_secret = ["password", "secret", "token"]
                .iter()
                .any(|w| key.contains(w))
                && !key.ends_with("_file");
            if looks_secret {
                assert!(
                    SECRET_KEYS.contains(&path.as_str()),
                    "{path} is not in SECRET_KEYS"
                );
                assert!(
                    table.contains_key(&format!("{key}_file")),
                    "{path} has no {key}_file"
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
        let mut cfg = Config::default();
        cfg.integrations.smtp_password_file = f.display().to_string();
        load_files(&mut cfg).expect("load");
        assert_eq!(cfg.integrations.smtp_password, "s3cret");
        assert!(matches!(load_files(&mut cfg), Err(SecretError::Both(_))));
        let mut missing = Config::default();
        missing.integrations.smtp_password_file = dir.join("nope").display().to_string();
        assert!(matches!(
            load_files(&mut missing),
            Err(SecretError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
