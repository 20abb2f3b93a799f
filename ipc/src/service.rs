//! The `VWED.*` calls a worker may ask the supervisor to perform, and how they fail.
//!
//! [`Service`] is the one list of them: the variant's serde name is the name the
//! Python facade uses (`"io.read"`), its fields are the argument shape. The worker
//! builds a `Service` from `(name, args)` through serde (see [`Service::from_json`]),
//! so an unknown name or a wrong shape fails in the script before anything is sent;
//! the supervisor `match`es on it. Dynamic values travel as [`JsonText`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A dynamic JSON value inside a typed message. Postcard cannot describe one, so it
/// travels as JSON text; in a human-readable format (the worker reading the facade's
/// arguments, which arrive as JSON) it is any JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonText(pub String);

impl Default for JsonText {
    fn default() -> Self {
        JsonText("null".to_string())
    }
}

impl JsonText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match serde_json::from_str::<serde_json::Value>(&self.0) {
                Ok(v) => v.serialize(s),
                Err(_) => s.serialize_str(&self.0),
            }
        } else {
            s.serialize_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            serde_json::Value::deserialize(d).map(|v| JsonText(v.to_string()))
        } else {
            String::deserialize(d).map(JsonText)
        }
    }
}

/// Raw Modbus access to a device (or a bus, with `unit`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ModbusArgs {
    /// A device name or a bus name.
    pub target: String,
    #[serde(default)]
    pub unit: Option<u8>,
    pub address: u16,
    #[serde(default)]
    pub count: Option<u16>,
    #[serde(default)]
    pub value: Option<JsonText>,
    #[serde(default)]
    pub values: Option<Vec<JsonText>>,
}

/// `VWED.http.request`; `timeout` in seconds, as in `requests`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub json: Option<JsonText>,
    /// A string body, or a dict sent form-encoded.
    #[serde(default)]
    pub data: Option<JsonText>,
    /// A dict of query parameters.
    #[serde(default)]
    pub params: Option<JsonText>,
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// `VWED.mail.send` / `send_with_attachment`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MailMessage {
    pub to: Vec<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub attachment_path: Option<String>,
}

/// Every `VWED.*` call the supervisor performs for a worker. Task ids arrive as
/// text: the facade turns an int id into its decimal string.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Service {
    #[serde(rename = "function.call")]
    FunctionCall {
        name: String,
        #[serde(default)]
        args: JsonText,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    #[serde(rename = "function.list")]
    FunctionList,
    /// Answered once every line this worker sent before it is on disk.
    #[serde(rename = "log.flush")]
    LogFlush,
    #[serde(rename = "event.emit")]
    EventEmit {
        name: String,
        #[serde(default)]
        data: JsonText,
    },
    #[serde(rename = "data.set")]
    DataSet {
        key: String,
        #[serde(default)]
        value: JsonText,
    },
    #[serde(rename = "data.get")]
    DataGet { key: String },
    #[serde(rename = "data.has")]
    DataHas { key: String },
    #[serde(rename = "data.delete")]
    DataDelete { key: String },
    #[serde(rename = "data.keys")]
    DataKeys,
    #[serde(rename = "data.clear")]
    DataClear,
    #[serde(rename = "task.get_variables")]
    TaskGetVariables { task_id: String },
    #[serde(rename = "task.set_variable")]
    TaskSetVariable {
        task_id: String,
        name: String,
        #[serde(default)]
        value: JsonText,
    },
    #[serde(rename = "task.create")]
    TaskCreate {
        task_label: String,
        #[serde(default)]
        input_params: JsonText,
    },
    #[serde(rename = "task.get_status")]
    TaskGetStatus { task_id: String },
    #[serde(rename = "task.stop")]
    TaskStop { task_id: String },
    #[serde(rename = "task.execute")]
    TaskExecute {
        task_id: String,
        #[serde(default)]
        input_params: JsonText,
    },
    #[serde(rename = "storage.get_location")]
    StorageGetLocation { location_code: String },
    #[serde(rename = "storage.list_locations")]
    StorageListLocations {
        #[serde(default)]
        area: Option<String>,
        #[serde(default)]
        locked: Option<bool>,
        #[serde(default)]
        limit: Option<u32>,
    },
    #[serde(rename = "storage.lock_location")]
    StorageLockLocation {
        location_code: String,
        task_id: String,
    },
    #[serde(rename = "storage.unlock_location")]
    StorageUnlockLocation {
        location_code: String,
        #[serde(default)]
        task_id: Option<String>,
        #[serde(default)]
        force: bool,
    },
    #[serde(rename = "http.request")]
    HttpRequest(HttpRequest),
    #[serde(rename = "mail.send")]
    MailSend(MailMessage),
    #[serde(rename = "mail.attachment_dir")]
    MailAttachmentDir,
    #[serde(rename = "io.read")]
    IoRead {
        tag: String,
        #[serde(default)]
        live: bool,
        #[serde(default)]
        detail: bool,
    },
    #[serde(rename = "io.write")]
    IoWrite {
        tag: String,
        #[serde(default)]
        value: JsonText,
    },
    #[serde(rename = "io.points")]
    IoPoints,
    #[serde(rename = "device.serial.request")]
    SerialRequest {
        device: String,
        line: String,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// The seed's `VWED.device.modbus(ip=, port=, register=, value=)`.
    #[serde(rename = "device.modbus.oneshot")]
    ModbusOneShot {
        ip: String,
        port: u16,
        #[serde(default)]
        unit: Option<u8>,
        register: u16,
        #[serde(default)]
        value: Option<JsonText>,
        #[serde(default)]
        count: Option<u16>,
    },
    #[serde(rename = "device.modbus.read_holding")]
    ModbusReadHolding(ModbusArgs),
    #[serde(rename = "device.modbus.read_input")]
    ModbusReadInput(ModbusArgs),
    #[serde(rename = "device.modbus.read_coils")]
    ModbusReadCoils(ModbusArgs),
    #[serde(rename = "device.modbus.read_discrete")]
    ModbusReadDiscrete(ModbusArgs),
    #[serde(rename = "device.modbus.write_register")]
    ModbusWriteRegister(ModbusArgs),
    #[serde(rename = "device.modbus.write_registers")]
    ModbusWriteRegisters(ModbusArgs),
    #[serde(rename = "device.modbus.write_coil")]
    ModbusWriteCoil(ModbusArgs),
    #[serde(rename = "device.modbus.write_coils")]
    ModbusWriteCoils(ModbusArgs),
    #[serde(rename = "robot.get_status")]
    RobotGetStatus { robot_id: String },
    #[serde(rename = "robot.get_all")]
    RobotGetAll,
    #[serde(rename = "robot.dispatch")]
    RobotDispatch {
        robot_id: String,
        #[serde(default)]
        command: Option<String>,
        #[serde(default)]
        value: JsonText,
        #[serde(default)]
        task_id: JsonText,
    },
}

impl Service {
    /// The service `name` with `args` (JSON text; `null` for none). The error says
    /// what is wrong in words a script author can act on.
    pub fn from_json(name: &str, args: &str) -> Result<Service, ServiceError> {
        if !Self::names().contains(&name) {
            return Err(ServiceError::new(
                ServiceErrorKind::BadArguments,
                format!("未知的服务调用: {name}"),
            ));
        }
        let tagged = format!("{{{}:{args}}}", serde_json::Value::String(name.to_string()));
        serde_json::from_str(&tagged).map_err(|e| {
            ServiceError::new(
                ServiceErrorKind::BadArguments,
                format!("{name} 参数错误: {e}"),
            )
        })
    }

    /// Every service name, in declaration order: the serde table itself.
    pub fn names() -> &'static [&'static str] {
        variant_names::<Service>()
    }

    /// This call's service name.
    pub fn name(&self) -> &'static str {
        let mut probe = NameProbe(None);
        // Serializing stops at the variant: NameProbe refuses everything after it.
        let _ = self.serialize(&mut probe);
        probe.0.unwrap_or("?")
    }
}

/// What kind of failure a `VWED.*` call met; scripts catch each as its own
/// `VWEDError` subclass.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceErrorKind {
    /// Unknown service, wrong argument shape, or a value out of range.
    BadArguments,
    /// No such point, device, robot, function, location, ...
    NotFound,
    Timeout,
    /// The device or peer is unreachable, the connection was lost.
    Transport,
    /// The device answered with a Modbus exception (it is reachable and healthy).
    DeviceException {
        code: u8,
    },
    /// Refused by policy: a read-only point, a host not on the allow-list.
    PermissionDenied,
    /// Queue full or too many requests; may succeed later.
    Busy,
    /// A size or count limit of the runtime (keys, locations, registrations, bytes).
    LimitExceeded,
    /// The feature needs configuration that is missing (io_config, task_server_url).
    NotConfigured,
    /// Someone else holds it (a route, a function name, a lock).
    Conflict,
    /// A function called through `VWED.function.call` raised.
    Raised,
    Internal,
}

impl ServiceErrorKind {
    /// The name scripts see as `VWEDError.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceErrorKind::BadArguments => "bad_arguments",
            ServiceErrorKind::NotFound => "not_found",
            ServiceErrorKind::Timeout => "timeout",
            ServiceErrorKind::Transport => "transport",
            ServiceErrorKind::DeviceException { .. } => "device_exception",
            ServiceErrorKind::PermissionDenied => "permission_denied",
            ServiceErrorKind::Busy => "busy",
            ServiceErrorKind::LimitExceeded => "limit_exceeded",
            ServiceErrorKind::NotConfigured => "not_configured",
            ServiceErrorKind::Conflict => "conflict",
            ServiceErrorKind::Raised => "raised",
            ServiceErrorKind::Internal => "internal",
        }
    }

    /// The Modbus exception code, for [`ServiceErrorKind::DeviceException`].
    pub fn code(self) -> Option<u8> {
        match self {
            ServiceErrorKind::DeviceException { code } => Some(code),
            _ => None,
        }
    }
}

/// Why a `VWED.*` call or a registration failed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ServiceError {
    pub kind: ServiceErrorKind,
    pub message: String,
}

impl ServiceError {
    pub fn new(kind: ServiceErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {}

/// How a registered function call failed inside the worker.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptErrorKind {
    /// The arguments did not bind to the function's signature; the body never ran.
    ArgumentMismatch,
    /// The function ran and raised.
    Raised,
    /// The function returned something that is not JSON.
    BadResult,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ScriptError {
    pub kind: ScriptErrorKind,
    pub message: String,
}

/// The variant names of an enum, as its `Deserialize` impl declares them.
fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = VariantProbe(&[]);
    let _ = T::deserialize(&mut probe);
    probe.0
}

#[derive(Debug)]
struct ProbeDone;

impl std::fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for ProbeDone {}

impl serde::de::Error for ProbeDone {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        ProbeDone
    }
}

impl serde::ser::Error for ProbeDone {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        ProbeDone
    }
}

/// A deserializer that only records the variant list an enum asks for.
struct VariantProbe(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut VariantProbe {
    type Error = ProbeDone;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeDone> {
        Err(ProbeDone)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ProbeDone> {
        self.0 = variants;
        Err(ProbeDone)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// A serializer that only records the variant name it is given.
struct NameProbe(Option<&'static str>);

impl Serializer for &mut NameProbe {
    type Ok = ();
    type Error = ProbeDone;
    type SerializeSeq = serde::ser::Impossible<(), ProbeDone>;
    type SerializeTuple = serde::ser::Impossible<(), ProbeDone>;
    type SerializeTupleStruct = serde::ser::Impossible<(), ProbeDone>;
    type SerializeTupleVariant = serde::ser::Impossible<(), ProbeDone>;
    type SerializeMap = serde::ser::Impossible<(), ProbeDone>;
    type SerializeStruct = serde::ser::Impossible<(), ProbeDone>;
    type SerializeStructVariant = serde::ser::Impossible<(), ProbeDone>;

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), ProbeDone> {
        self.0 = Some(variant);
        Ok(())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<(), ProbeDone> {
        self.0 = Some(variant);
        Ok(())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, ProbeDone> {
        self.0 = Some(variant);
        Err(ProbeDone)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, ProbeDone> {
        self.0 = Some(variant);
        Err(ProbeDone)
    }

    fn serialize_bool(self, _: bool) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_i8(self, _: i8) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_i16(self, _: i16) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_i32(self, _: i32) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_i64(self, _: i64) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_u8(self, _: u8) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_u16(self, _: u16) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_u32(self, _: u32) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_u64(self, _: u64) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_f32(self, _: f32) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_f64(self, _: f64) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_char(self, _: char) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_str(self, _: &str) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_none(self) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_unit(self) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, ProbeDone> {
        Err(ProbeDone)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, ProbeDone> {
        Err(ProbeDone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_serde_table() {
        let names = Service::names();
        assert!(names.contains(&"io.read"));
        assert!(names.contains(&"device.modbus.write_coils"));
        assert_eq!(Service::IoPoints.name(), "io.points");
        assert_eq!(
            Service::ModbusReadHolding(ModbusArgs::default()).name(),
            "device.modbus.read_holding"
        );
        let dup: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(dup.len(), names.len(), "service names are unique");
    }

    #[test]
    fn a_call_is_built_from_name_and_json_args() {
        let s =
            Service::from_json("data.set", r#"{"key":"k","value":{"a":[1,2]}}"#).expect("valid");
        assert_eq!(
            s,
            Service::DataSet {
                key: "k".into(),
                value: JsonText(r#"{"a":[1,2]}"#.into())
            }
        );
        assert_eq!(
            Service::from_json("io.points", "null").ok(),
            Some(Service::IoPoints)
        );
        let bad = Service::from_json("io.read", r#"{"tg":"x"}"#).expect_err("missing tag");
        assert_eq!(bad.kind, ServiceErrorKind::BadArguments);
        assert!(bad.message.contains("tag"), "{}", bad.message);
        let unknown = Service::from_json("io.reed", "null").expect_err("unknown");
        assert!(unknown.message.contains("io.reed"));
    }

    #[test]
    fn dynamic_values_survive_postcard_as_text() {
        let s = Service::RobotDispatch {
            robot_id: "agv".into(),
            command: None,
            value: JsonText("[1,{\"x\":null}]".into()),
            task_id: JsonText::default(),
        };
        let bytes = postcard::to_allocvec(&s).expect("encode");
        let back: Service = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, s);
    }
}
