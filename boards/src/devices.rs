//! Device configuration: buses, devices, named I/O points and robot
//! profiles, validated against a board profile and turned into the plain
//! [`vwed_hal::IoSpec`] the HAL starts from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vwed_hal::{
    BusKind, BusSpec, ByteOrder, DataType, Encoding, IoSpec, Parity, PointSpec, SerialSettings,
    SimDevice, Table, UnitId, WordOrder,
};

use crate::board::{BoardProfile, check_baud, check_data_bits, check_stop_bits, is_identifier};
use crate::error::{ConfigError, ConfigErrors, LoadError, Source};
use crate::robot::RobotProfile;

#[derive(Debug, Clone, PartialEq)]
pub enum BusConfig {
    Tcp {
        address: String,
        connect_timeout: Duration,
        request_timeout: Duration,
    },
    Rtu {
        serial: SerialSettings,
        request_timeout: Duration,
    },
    Line {
        serial: SerialSettings,
        terminator: Vec<u8>,
        timeout: Duration,
    },
    Sim {
        /// Entries per table of every simulated unit.
        size: u16,
        request_timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamedBus {
    pub name: String,
    pub config: BusConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDef {
    pub name: String,
    pub bus: String,
    pub unit: UnitId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// Board named in the file, if any.
    pub board: Option<String>,
    pub buses: Vec<NamedBus>,
    pub devices: Vec<DeviceDef>,
    pub points: Vec<PointSpec>,
    pub robots: Vec<RobotProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    board: Option<String>,
    #[serde(default)]
    bus: Vec<Spanned<RawBus>>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
    #[serde(default)]
    point: Vec<Spanned<RawPoint>>,
    #[serde(default)]
    robot: Vec<Spanned<RawRobot>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawKind {
    Tcp,
    Rtu,
    Line,
    Sim,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBus {
    name: Spanned<String>,
    kind: Spanned<RawKind>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    serial: Option<Spanned<String>>,
    baud: Option<Spanned<u32>>,
    parity: Option<Spanned<Parity>>,
    stop_bits: Option<Spanned<u8>>,
    data_bits: Option<Spanned<u8>>,
    terminator: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<u64>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    size: Option<Spanned<u16>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    bus: Spanned<String>,
    unit: Spanned<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    tag: Spanned<String>,
    device: Spanned<String>,
    table: Spanned<Table>,
    address: Spanned<u16>,
    #[serde(rename = "type")]
    data_type: Option<Spanned<DataType>>,
    byte_order: Option<ByteOrder>,
    word_order: Option<WordOrder>,
    scale: Option<Spanned<f64>>,
    offset: Option<Spanned<f64>>,
    period_ms: Option<Spanned<u64>>,
    deadband: Option<Spanned<f64>>,
    #[serde(default)]
    read_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRobot {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    status: Vec<Spanned<String>>,
    #[serde(default)]
    commands: BTreeMap<String, Spanned<String>>,
}

impl DeviceConfig {
    pub fn from_path(path: &Path, board: &BoardProfile) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), board)
    }

    /// The `board = "..."` key of a config, without validating the rest,
    /// so the right profile can be loaded before the full parse.
    pub fn board_name(text: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct OnlyBoard {
            board: Option<String>,
        }
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.try_into::<OnlyBoard>().ok())
            .and_then(|b| b.board)
    }

    /// Parses and validates; `file` names the config in errors.
    pub fn parse(text: &str, file: &str, board: &BoardProfile) -> Result<Self, LoadError> {
        let src = Source::new(file, text);
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| LoadError::Invalid(ConfigErrors(vec![src.parse_error(&e)])))?;
        let mut v = Validator {
            src: &src,
            board,
            errors: Vec::new(),
        };
        let buses = v.buses(raw.bus);
        let devices = v.devices(raw.device, &buses);
        let points = v.points(raw.point, &devices);
        let robots = v.robots(raw.robot, &points);
        if !v.errors.is_empty() {
            return Err(LoadError::Invalid(ConfigErrors(v.errors)));
        }
        Ok(Self {
            board: raw.board,
            buses,
            devices,
            points,
            robots,
        })
    }

    pub fn robot(&self, name: &str) -> Option<&RobotProfile> {
        self.robots.iter().find(|r| r.name == name)
    }

    /// The HAL's start-up description. Each `sim` bus gets a fresh
    /// simulated device with one unit per configured device.
    pub fn to_io_spec(&self) -> IoSpec {
        let buses = self
            .buses
            .iter()
            .map(|bus| BusSpec {
                name: bus.name.clone(),
                kind: match &bus.config {
                    BusConfig::Tcp {
                        address,
                        connect_timeout,
                        request_timeout,
                    } => BusKind::ModbusTcp {
                        address: address.clone(),
                        connect_timeout: *connect_timeout,
                        request_timeout: *request_timeout,
                    },
                    BusConfig::Rtu {
                        serial,
                        request_timeout,
                    } => BusKind::ModbusRtu {
                        serial: serial.clone(),
                        request_timeout: *request_timeout,
                    },
                    BusConfig::Line {
                        serial,
                        terminator,
                        timeout,
                    } => BusKind::Line {
                        serial: serial.clone(),
                        terminator: terminator.clone(),
                        timeout: *timeout,
                    },
                    BusConfig::Sim {
                        size,
                        request_timeout,
                    } => {
                        let device = SimDevice::new();
                        for d in self.devices.iter().filter(|d| d.bus == bus.name) {
                            device.add_unit(d.unit, *size);
                        }
                        BusKind::Sim {
                            device,
                            request_timeout: *request_timeout,
                        }
                    }
                },
            })
            .collect();
        IoSpec {
            buses,
            points: self.points.clone(),
            ..IoSpec::default()
        }
    }
}

struct Validator<'a> {
    src: &'a Source<'a>,
    board: &'a BoardProfile,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.errors.push(self.src.error(at.span(), field, message));
    }

    fn ms(&mut self, v: &Option<Spanned<u64>>, field: &str, default: Duration) -> Duration {
        match v {
            Some(ms) if *ms.get_ref() == 0 => {
                self.err(ms, field, "must be > 0");
                default
            }
            Some(ms) => Duration::from_millis(*ms.get_ref()),
            None => default,
        }
    }

    /// Board port name, or an absolute device path.
    fn serial(
        &mut self,
        raw: &RawBus,
        bus_span: &Spanned<RawBus>,
        f: &dyn Fn(&str) -> String,
    ) -> SerialSettings {
        let d = &self.board.defaults;
        let mut settings = SerialSettings {
            path: String::new(),
            baud: d.baud,
            parity: d.parity,
            stop_bits: d.stop_bits,
            data_bits: d.data_bits,
        };
        match &raw.serial {
            None => self.err(
                bus_span,
                &f("serial"),
                "required: a board port name or a /dev path",
            ),
            Some(s) if s.get_ref().starts_with('/') => settings.path = s.get_ref().clone(),
            Some(s) => match self.board.port(s.get_ref()) {
                Some(port) => settings = port.settings.clone(),
                None => {
                    let known: Vec<&str> = self
                        .board
                        .serial_ports
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    let message = format!(
                        "board '{}' has no port '{}' (ports: {}); or give an absolute path",
                        self.board.name,
                        s.get_ref(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    );
                    self.err(s, &f("serial"), message);
                }
            },
        }
        let mut errors = Vec::new();
        if let Some(b) = &raw.baud {
            check_baud(self.src, b, &f("baud"), &mut errors);
            settings.baud = *b.get_ref();
        }
        if let Some(p) = &raw.parity {
            settings.parity = *p.get_ref();
        }
        if let Some(sb) = &raw.stop_bits {
            check_stop_bits(self.src, sb, &f("stop_bits"), &mut errors);
            settings.stop_bits = *sb.get_ref();
        }
        if let Some(db) = &raw.data_bits {
            check_data_bits(self.src, db, &f("data_bits"), &mut errors);
            settings.data_bits = *db.get_ref();
        }
        self.errors.extend(errors);
        settings
    }

    fn reject<T>(&mut self, v: &Option<Spanned<T>>, field: &str, kind: &str) {
        if let Some(v) = v {
            self.err(v, field, format!("not used by a {kind} bus"));
        }
    }

    fn buses(&mut self, raw: Vec<Spanned<RawBus>>) -> Vec<NamedBus> {
        let mut out: Vec<NamedBus> = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let b = spanned.get_ref();
            let f = |name: &str| format!("bus[{i}].{name}");
            let name = b.name.get_ref();
            if !is_identifier(name) {
                self.err(
                    &b.name,
                    &f("name"),
                    "use lowercase letters, digits, '-' and '_'",
                );
            } else if out.iter().any(|o| &o.name == name) {
                self.err(&b.name, &f("name"), format!("duplicate bus '{name}'"));
            }
            let timeout = self.ms(
                &b.timeout_ms,
                &f("timeout_ms"),
                self.board.defaults.request_timeout,
            );
            self.reject_foreign(b, &f);
            let config = match *b.kind.get_ref() {
                RawKind::Tcp => self.tcp_bus(b, spanned, &f, timeout),
                RawKind::Rtu => BusConfig::Rtu {
                    serial: self.serial(b, spanned, &f),
                    request_timeout: timeout,
                },
                RawKind::Line => self.line_bus(b, spanned, &f, timeout),
                RawKind::Sim => {
                    let size = b.size.as_ref().map_or(1000, |s| *s.get_ref());
                    if let Some(s) = b.size.as_ref().filter(|_| size == 0) {
                        self.err(s, &f("size"), "must be > 0");
                    }
                    BusConfig::Sim {
                        size,
                        request_timeout: timeout,
                    }
                }
            };
            out.push(NamedBus {
                name: name.clone(),
                config,
            });
        }
        out
    }

    /// Fields of other kinds of bus, given to this one: each is named as unused.
    fn reject_foreign(&mut self, b: &RawBus, f: &dyn Fn(&str) -> String) {
        let kind = *b.kind.get_ref();
        let kind_name = match kind {
            RawKind::Tcp => "tcp",
            RawKind::Rtu => "rtu",
            RawKind::Line => "line",
            RawKind::Sim => "sim",
        };
        if kind != RawKind::Tcp {
            self.reject(&b.host, &f("host"), kind_name);
            self.reject(&b.port, &f("port"), kind_name);
            self.reject(&b.connect_timeout_ms, &f("connect_timeout_ms"), kind_name);
        }
        if !matches!(kind, RawKind::Rtu | RawKind::Line) {
            self.reject(&b.serial, &f("serial"), kind_name);
            self.reject(&b.baud, &f("baud"), kind_name);
            self.reject(&b.parity, &f("parity"), kind_name);
            self.reject(&b.stop_bits, &f("stop_bits"), kind_name);
            self.reject(&b.data_bits, &f("data_bits"), kind_name);
        }
        if kind != RawKind::Line {
            self.reject(&b.terminator, &f("terminator"), kind_name);
        }
        if kind != RawKind::Sim {
            self.reject(&b.size, &f("size"), kind_name);
        }
    }

    fn tcp_bus(
        &mut self,
        b: &RawBus,
        spanned: &Spanned<RawBus>,
        f: &dyn Fn(&str) -> String,
        request_timeout: Duration,
    ) -> BusConfig {
        let host = match &b.host {
            Some(h) if !h.get_ref().trim().is_empty() => h.get_ref().clone(),
            Some(h) => {
                self.err(h, &f("host"), "must not be empty");
                String::new()
            }
            None => {
                self.err(spanned, &f("host"), "required for a tcp bus");
                String::new()
            }
        };
        let port = b.port.as_ref().map_or(502, |p| *p.get_ref());
        // Bracket IPv6 literals so "host:port" stays parseable.
        let address = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        BusConfig::Tcp {
            address,
            connect_timeout: self.ms(
                &b.connect_timeout_ms,
                &f("connect_timeout_ms"),
                self.board.defaults.connect_timeout,
            ),
            request_timeout,
        }
    }

    fn line_bus(
        &mut self,
        b: &RawBus,
        spanned: &Spanned<RawBus>,
        f: &dyn Fn(&str) -> String,
        timeout: Duration,
    ) -> BusConfig {
        let terminator = b
            .terminator
            .as_ref()
            .map_or_else(|| "\r\n".to_owned(), |t| t.get_ref().clone());
        if let Some(t) = b.terminator.as_ref().filter(|_| terminator.is_empty()) {
            self.err(t, &f("terminator"), "must not be empty");
        }
        BusConfig::Line {
            serial: self.serial(b, spanned, f),
            terminator: terminator.into_bytes(),
            timeout,
        }
    }

    fn devices(&mut self, raw: Vec<Spanned<RawDevice>>, buses: &[NamedBus]) -> Vec<DeviceDef> {
        let mut out: Vec<DeviceDef> = Vec::new();
        for (i, d) in raw.iter().enumerate() {
            let d = d.get_ref();
            let f = |name: &str| format!("device[{i}].{name}");
            let name = d.name.get_ref();
            if !is_identifier(name) {
                self.err(
                    &d.name,
                    &f("name"),
                    "use lowercase letters, digits, '-' and '_'",
                );
            } else if out.iter().any(|o| &o.name == name) {
                self.err(&d.name, &f("name"), format!("duplicate device '{name}'"));
            }
            let unit = *d.unit.get_ref();
            match buses.iter().find(|b| &b.name == d.bus.get_ref()) {
                None => self.err(
                    &d.bus,
                    &f("bus"),
                    format!("no bus named '{}'", d.bus.get_ref()),
                ),
                Some(bus) => match &bus.config {
                    BusConfig::Line { .. } => {
                        self.err(&d.bus, &f("bus"), "a line bus carries no Modbus devices")
                    }
                    // 0 is broadcast and 248..=255 are reserved on serial lines.
                    BusConfig::Rtu { .. } if !(1..=247).contains(&unit) => {
                        self.err(&d.unit, &f("unit"), "must be 1 to 247 on an RTU bus")
                    }
                    _ => {}
                },
            }
            if out
                .iter()
                .any(|o| o.bus == *d.bus.get_ref() && o.unit == unit && o.name != *name)
            {
                self.err(
                    &d.unit,
                    &f("unit"),
                    format!("unit {unit} is already used on bus '{}'", d.bus.get_ref()),
                );
            }
            out.push(DeviceDef {
                name: name.clone(),
                bus: d.bus.get_ref().clone(),
                unit,
            });
        }
        out
    }

    fn points(&mut self, raw: Vec<Spanned<RawPoint>>, devices: &[DeviceDef]) -> Vec<PointSpec> {
        let mut out: Vec<PointSpec> = Vec::new();
        let mut tags = HashSet::new();
        for (i, p) in raw.iter().enumerate() {
            let p = p.get_ref();
            let f = |name: &str| format!("point[{i}].{name}");
            let tag = p.tag.get_ref();
            if tag.trim().is_empty() {
                self.err(&p.tag, &f("tag"), "must not be empty");
            } else if !tags.insert(tag.clone()) {
                self.err(&p.tag, &f("tag"), format!("duplicate tag '{tag}'"));
            }
            let device = devices.iter().find(|d| &d.name == p.device.get_ref());
            if device.is_none() {
                self.err(
                    &p.device,
                    &f("device"),
                    format!("no device named '{}'", p.device.get_ref()),
                );
            }
            let table = *p.table.get_ref();
            let data_type = match &p.data_type {
                Some(dt) => {
                    if table.is_bits() && *dt.get_ref() != DataType::Bool {
                        self.err(dt, &f("type"), "coil and discrete points must be bool");
                    }
                    *dt.get_ref()
                }
                None if table.is_bits() => DataType::Bool,
                None => DataType::U16,
            };
            let width = if table.is_bits() {
                1
            } else {
                data_type.words()
            };
            if u32::from(*p.address.get_ref()) + u32::from(width) > 0x1_0000 {
                self.err(
                    &p.address,
                    &f("address"),
                    format!("{data_type:?} does not fit below 65536"),
                );
            }
            let (scale, offset, deadband) = self.scaling(p, &f);
            let period = self.ms(
                &p.period_ms,
                &f("period_ms"),
                self.board.defaults.poll_period,
            );
            let (bus, unit) = device.map_or((String::new(), 0), |d| (d.bus.clone(), d.unit));
            out.push(PointSpec {
                tag: tag.clone(),
                bus,
                unit,
                table,
                address: *p.address.get_ref(),
                encoding: Encoding {
                    data_type,
                    byte_order: p.byte_order.unwrap_or_default(),
                    word_order: p.word_order.unwrap_or_default(),
                    scale,
                    offset,
                },
                period,
                deadband,
                read_only: p.read_only || !table.is_writable(),
            });
        }
        out
    }

    /// A point's `scale`, `offset` and `deadband`, checked.
    fn scaling(&mut self, p: &RawPoint, f: &dyn Fn(&str) -> String) -> (f64, f64, f64) {
        let scale = p.scale.as_ref().map_or(1.0, |s| *s.get_ref());
        if let Some(s) = p
            .scale
            .as_ref()
            .filter(|s| !s.get_ref().is_finite() || *s.get_ref() == 0.0)
        {
            self.err(s, &f("scale"), "must be finite and non-zero");
        }
        let offset = p.offset.as_ref().map_or(0.0, |o| *o.get_ref());
        if let Some(o) = p.offset.as_ref().filter(|o| !o.get_ref().is_finite()) {
            self.err(o, &f("offset"), "must be finite");
        }
        let deadband = p.deadband.as_ref().map_or(0.0, |d| *d.get_ref());
        if let Some(d) = p
            .deadband
            .as_ref()
            .filter(|d| !(d.get_ref().is_finite() && *d.get_ref() >= 0.0))
        {
            self.err(d, &f("deadband"), "must be >= 0");
        }
        (scale, offset, deadband)
    }

    fn robots(&mut self, raw: Vec<Spanned<RawRobot>>, points: &[PointSpec]) -> Vec<RobotProfile> {
        let by_tag: HashMap<&str, &PointSpec> =
            points.iter().map(|p| (p.tag.as_str(), p)).collect();
        let mut out: Vec<RobotProfile> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let r = r.get_ref();
            let f = |name: &str| format!("robot[{i}].{name}");
            let name = r.name.get_ref();
            if !is_identifier(name) {
                self.err(
                    &r.name,
                    &f("name"),
                    "use lowercase letters, digits, '-' and '_'",
                );
            } else if out.iter().any(|o| &o.name == name) {
                self.err(&r.name, &f("name"), format!("duplicate robot '{name}'"));
            }
            for (j, tag) in r.status.iter().enumerate() {
                if !by_tag.contains_key(tag.get_ref().as_str()) {
                    self.err(
                        tag,
                        &format!("robot[{i}].status[{j}]"),
                        format!("no point tagged '{}'", tag.get_ref()),
                    );
                }
            }
            for (command, tag) in &r.commands {
                let field = format!("robot[{i}].commands.{command}");
                match by_tag.get(tag.get_ref().as_str()) {
                    None => self.err(tag, &field, format!("no point tagged '{}'", tag.get_ref())),
                    Some(p) if !p.writable() => self.err(
                        tag,
                        &field,
                        format!("point '{}' is read-only", tag.get_ref()),
                    ),
                    Some(_) => {}
                }
            }
            out.push(RobotProfile {
                name: name.clone(),
                description: r.description.clone(),
                status: r.status.iter().map(|t| t.get_ref().clone()).collect(),
                commands: r
                    .commands
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
            });
        }
        out
    }
}
