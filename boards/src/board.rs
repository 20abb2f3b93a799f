//! Board profiles: which serial ports a controller has and the defaults
//! that go with it.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vwed_hal::{Parity, SerialSettings};

use crate::error::{ConfigErrors, LoadError, Source};

/// Profiles compiled into the binary, so a controller needs no files to
/// know its own ports.
const BUILTIN: &[(&str, &str)] = &[
    ("linux-sim", include_str!("../profiles/linux-sim.toml")),
    (
        "raspberry-pi-4",
        include_str!("../profiles/raspberry-pi-4.toml"),
    ),
    (
        "revpi-connect",
        include_str!("../profiles/revpi-connect.toml"),
    ),
    (
        "siemens-iot2050",
        include_str!("../profiles/siemens-iot2050.toml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortKind {
    Rs232,
    Rs422,
    Rs485,
    /// Mode chosen on the device (e.g. IOT2050 X30).
    Switchable,
    /// Logic-level UART needing an external transceiver.
    Ttl,
    Usb,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SerialPortDef {
    pub name: String,
    pub kind: PortKind,
    pub note: Option<String>,
    /// Path plus the board's default line settings.
    pub settings: SerialSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoardDefaults {
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    pub data_bits: u8,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub poll_period: Duration,
}

impl Default for BoardDefaults {
    fn default() -> Self {
        Self {
            baud: 9600,
            parity: Parity::None,
            stop_bits: 1,
            data_bits: 8,
            request_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            poll_period: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoardProfile {
    pub name: String,
    pub description: String,
    /// Whether `sim` buses are meant for this board (they work anywhere).
    pub simulator: bool,
    pub defaults: BoardDefaults,
    pub serial_ports: Vec<SerialPortDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    simulator: bool,
    defaults: Option<RawDefaults>,
    #[serde(default)]
    serial_port: Vec<Spanned<RawPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    baud: Option<Spanned<u32>>,
    parity: Option<Parity>,
    stop_bits: Option<Spanned<u8>>,
    data_bits: Option<Spanned<u8>>,
    request_timeout_ms: Option<Spanned<u64>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    poll_period_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    path: Spanned<String>,
    kind: PortKind,
    note: Option<String>,
    baud: Option<Spanned<u32>>,
    parity: Option<Parity>,
    stop_bits: Option<Spanned<u8>>,
    data_bits: Option<Spanned<u8>>,
}

impl BoardProfile {
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(name, _)| *name).collect()
    }

    pub fn builtin(name: &str) -> Result<Self, LoadError> {
        let (_, text) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| LoadError::UnknownBoard {
                    name: name.to_owned(),
                    available: Self::builtin_names().join(", "),
                })?;
        Self::parse(text, &format!("boards/profiles/{name}.toml"))
    }

    pub fn from_path(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// A built-in name, or a path if it contains a `/` or ends in `.toml`.
    pub fn load(name_or_path: &str) -> Result<Self, LoadError> {
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            Self::from_path(Path::new(name_or_path))
        } else {
            Self::builtin(name_or_path)
        }
    }

    /// Parses and validates a profile; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, LoadError> {
        let src = Source::new(file, text);
        let raw: RawBoard = toml::from_str(text)
            .map_err(|e| LoadError::Invalid(ConfigErrors(vec![src.parse_error(&e)])))?;
        let mut errors = Vec::new();

        if !is_identifier(raw.name.get_ref()) {
            errors.push(src.error(
                raw.name.span(),
                "name",
                "use lowercase letters, digits and '-'",
            ));
        }
        let defaults = match raw.defaults {
            Some(d) => parse_defaults(&src, d, &mut errors),
            None => BoardDefaults::default(),
        };
        let mut ports: Vec<SerialPortDef> = Vec::new();
        for (i, port) in raw.serial_port.into_iter().enumerate() {
            let port = parse_port(&src, i, port.into_inner(), &defaults, &ports, &mut errors);
            ports.push(port);
        }

        if !errors.is_empty() {
            return Err(LoadError::Invalid(ConfigErrors(errors)));
        }
        Ok(Self {
            name: raw.name.into_inner(),
            description: raw.description,
            simulator: raw.simulator,
            defaults,
            serial_ports: ports,
        })
    }

    pub fn port(&self, name: &str) -> Option<&SerialPortDef> {
        self.serial_ports.iter().find(|p| p.name == name)
    }
}

/// `[defaults]`: each value given replaces the built-in default.
fn parse_defaults(
    src: &Source<'_>,
    d: RawDefaults,
    errors: &mut Vec<crate::ConfigError>,
) -> BoardDefaults {
    let mut defaults = BoardDefaults::default();
    if let Some(baud) = d.baud {
        check_baud(src, &baud, "defaults.baud", errors);
        defaults.baud = *baud.get_ref();
    }
    if let Some(p) = d.parity {
        defaults.parity = p;
    }
    if let Some(sb) = d.stop_bits {
        check_stop_bits(src, &sb, "defaults.stop_bits", errors);
        defaults.stop_bits = *sb.get_ref();
    }
    if let Some(db) = d.data_bits {
        check_data_bits(src, &db, "defaults.data_bits", errors);
        defaults.data_bits = *db.get_ref();
    }
    let ms = |v: &Option<Spanned<u64>>, field: &str, errors: &mut Vec<_>| {
        v.as_ref().map(|v| {
            if *v.get_ref() == 0 {
                errors.push(src.error(v.span(), field, "must be > 0"));
            }
            Duration::from_millis(*v.get_ref())
        })
    };
    if let Some(t) = ms(&d.request_timeout_ms, "defaults.request_timeout_ms", errors) {
        defaults.request_timeout = t;
    }
    if let Some(t) = ms(&d.connect_timeout_ms, "defaults.connect_timeout_ms", errors) {
        defaults.connect_timeout = t;
    }
    if let Some(t) = ms(&d.poll_period_ms, "defaults.poll_period_ms", errors) {
        defaults.poll_period = t;
    }
    defaults
}

/// `serial_port[i]`, checked against the ports before it; its settings are the
/// defaults where it gives none.
fn parse_port(
    src: &Source<'_>,
    i: usize,
    port: RawPort,
    defaults: &BoardDefaults,
    before: &[SerialPortDef],
    errors: &mut Vec<crate::ConfigError>,
) -> SerialPortDef {
    let field = |f: &str| format!("serial_port[{i}].{f}");
    let name = port.name.get_ref();
    if !is_identifier(name) {
        errors.push(src.error(
            port.name.span(),
            &field("name"),
            "use lowercase letters, digits and '-'",
        ));
    } else if before.iter().any(|p| &p.name == name) {
        errors.push(src.error(
            port.name.span(),
            &field("name"),
            format!("duplicate port name '{name}'"),
        ));
    }
    if !port.path.get_ref().starts_with('/') {
        errors.push(src.error(port.path.span(), &field("path"), "must be an absolute path"));
    }
    let mut settings = SerialSettings {
        path: port.path.get_ref().clone(),
        baud: defaults.baud,
        parity: port.parity.unwrap_or(defaults.parity),
        stop_bits: defaults.stop_bits,
        data_bits: defaults.data_bits,
    };
    if let Some(b) = &port.baud {
        check_baud(src, b, &field("baud"), errors);
        settings.baud = *b.get_ref();
    }
    if let Some(sb) = &port.stop_bits {
        check_stop_bits(src, sb, &field("stop_bits"), errors);
        settings.stop_bits = *sb.get_ref();
    }
    if let Some(db) = &port.data_bits {
        check_data_bits(src, db, &field("data_bits"), errors);
        settings.data_bits = *db.get_ref();
    }
    SerialPortDef {
        name: name.clone(),
        kind: port.kind,
        note: port.note,
        settings,
    }
}

pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(crate) fn check_baud(
    src: &Source<'_>,
    v: &Spanned<u32>,
    field: &str,
    errors: &mut Vec<crate::ConfigError>,
) {
    if *v.get_ref() == 0 {
        errors.push(src.error(v.span(), field, "must be > 0"));
    }
}

pub(crate) fn check_stop_bits(
    src: &Source<'_>,
    v: &Spanned<u8>,
    field: &str,
    errors: &mut Vec<crate::ConfigError>,
) {
    if !matches!(v.get_ref(), 1 | 2) {
        errors.push(src.error(v.span(), field, "must be 1 or 2"));
    }
}

pub(crate) fn check_data_bits(
    src: &Source<'_>,
    v: &Spanned<u8>,
    field: &str,
    errors: &mut Vec<crate::ConfigError>,
) {
    if !(5..=8).contains(v.get_ref()) {
        errors.push(src.error(v.span(), field, "must be 5 to 8"));
    }
}
