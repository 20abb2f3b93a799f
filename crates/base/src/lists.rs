//! Lists in settings: one spelling for TOML arrays and environment variables.

/// A list of hosts (or other names) from TOML (an array) or the environment
/// (`"a,b:80"`).
pub fn host_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Hosts {
        One(String),
        Many(Vec<String>),
    }
    let list = match serde::Deserialize::deserialize(d)? {
        Hosts::One(s) => s.split(',').map(String::from).collect(),
        Hosts::Many(v) => v,
    };
    Ok(list
        .into_iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect())
}
