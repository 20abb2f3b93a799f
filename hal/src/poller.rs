//! Polls points on their periods, keeps the current value and quality of
//! every point, emits change records, and writes points by tag.
//!
//! Each bus gets its own polling task and its own client on that bus's
//! master, so a slow or dead bus delays only its own points. Change
//! records go to one bounded channel; when the consumer falls behind the
//! record is counted as dropped (and the sequence number shows the gap)
//! while the point table keeps the latest value, so a consumer can always
//! resynchronise from [`Poller::snapshot`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Exception, HalError};
use crate::modbus::{
    MAX_READ_BITS, MAX_READ_REGISTERS, ModbusBus, ModbusClient, ModbusRequest, ModbusResult,
    RegisterBus, Request, Response,
};
use crate::plan::{ReadBlock, plan_reads};
use crate::point::{CodecError, DataType, PointSpec, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    Bad,
}

/// One change of a point's value or quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Increases by one per record produced, so a gap reveals dropped records.
    pub seq: u64,
    pub tag: Arc<str>,
    /// `None` when the point went bad.
    pub value: Option<Value>,
    /// The value last reported in a change record.
    pub previous: Option<Value>,
    pub quality: Quality,
    pub timestamp: SystemTime,
    /// Why the point is bad.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointSnapshot {
    pub tag: String,
    /// Last value read, kept while the point is bad.
    pub value: Option<Value>,
    pub quality: Quality,
    pub error: Option<String>,
    pub last_change: Option<SystemTime>,
    pub last_read: Option<SystemTime>,
    pub writable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollerStats {
    pub reads: u64,
    pub read_failures: u64,
    pub changes_emitted: u64,
    /// Change records that did not fit in the channel.
    pub changes_dropped: u64,
}

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub change_capacity: usize,
    /// Per-client queue capacity on each bus (for the poller and writers).
    pub queue_capacity: usize,
    pub max_registers: u16,
    pub max_bits: u16,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            change_capacity: 4096,
            queue_capacity: 64,
            max_registers: MAX_READ_REGISTERS,
            max_bits: MAX_READ_BITS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollerError {
    #[error("point {tag}: unknown bus {bus}")]
    UnknownBus { tag: String, bus: String },
    #[error("duplicate point tag {0}")]
    DuplicateTag(String),
    #[error("invalid point: {0}")]
    InvalidPoint(String),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("unknown point {0}")]
    UnknownTag(String),
    #[error("point {0} is read-only")]
    ReadOnly(String),
    #[error("point {tag}: {source}")]
    Codec { tag: String, source: CodecError },
    #[error("point {tag}: device refused: {exception}")]
    Exception { tag: String, exception: Exception },
    #[error("point {tag}: {source}")]
    Bus { tag: String, source: HalError },
}

#[derive(Debug)]
struct PointState {
    value: Option<Value>,
    reported: Option<Value>,
    quality: Quality,
    /// False until the first change record for this point went out, so a
    /// point that is bad from the start is still announced.
    announced: bool,
    error: Option<String>,
    last_change: Option<SystemTime>,
    last_read: Option<SystemTime>,
}

struct PointTable {
    specs: Vec<PointSpec>,
    tags: Vec<Arc<str>>,
    index: HashMap<String, usize>,
    states: Mutex<Vec<PointState>>,
    changes: mpsc::Sender<Change>,
    seq: AtomicU64,
    reads: AtomicU64,
    read_failures: AtomicU64,
    emitted: AtomicU64,
    dropped: AtomicU64,
}

impl PointTable {
    fn lock(&self) -> MutexGuard<'_, Vec<PointState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, block: &ReadBlock, result: ModbusResult<Response>) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        let shared_error = match &result {
            Ok(Ok(_)) => None,
            Ok(Err(exception)) => Some(exception.to_string()),
            Err(err) => Some(err.to_string()),
        };
        if shared_error.is_some() {
            self.read_failures.fetch_add(1, Ordering::Relaxed);
        }
        let mut states = self.lock();
        for &i in &block.members {
            let spec = &self.specs[i];
            let outcome = match (&shared_error, &result) {
                (Some(err), _) => Err(err.clone()),
                (None, Ok(Ok(response))) => decode(spec, block.start, response),
                (None, _) => Err("no response".to_owned()),
            };
            if let Some(change) = update(&mut states[i], spec, outcome, now, &self.tags[i]) {
                self.emit(change);
            }
        }
    }

    fn emit(&self, mut change: Change) {
        change.seq = self.seq.fetch_add(1, Ordering::Relaxed);
        match self.changes.try_send(change) {
            Ok(()) => {
                self.emitted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn decode(spec: &PointSpec, block_start: u16, response: &Response) -> Result<Value, String> {
    let offset = usize::from(spec.address - block_start);
    match response {
        Response::Bits(bits) => bits
            .get(offset)
            .map(|&b| spec.encoding.decode_bit(b))
            .ok_or_else(|| "short response".to_owned()),
        Response::Words(words) => words
            .get(offset..offset + usize::from(spec.width()))
            .ok_or_else(|| "short response".to_owned())
            .and_then(|w| spec.encoding.decode_words(w).map_err(|e| e.to_string())),
        Response::Written => Err("unexpected write acknowledgement".to_owned()),
    }
}

fn significant(spec: &PointSpec, previous: Option<Value>, new: Value) -> bool {
    let Some(prev) = previous else {
        return true;
    };
    let numeric = spec.encoding.data_type != DataType::Bool
        || spec.encoding.scale != 1.0
        || spec.encoding.offset != 0.0;
    if !numeric || spec.deadband <= 0.0 {
        let (a, b) = (prev.as_f64(), new.as_f64());
        return prev != new && !(a.is_nan() && b.is_nan());
    }
    let (a, b) = (prev.as_f64(), new.as_f64());
    if a.is_nan() || b.is_nan() {
        return a.is_nan() != b.is_nan();
    }
    (b - a).abs() >= spec.deadband
}

fn update(
    state: &mut PointState,
    spec: &PointSpec,
    outcome: Result<Value, String>,
    now: SystemTime,
    tag: &Arc<str>,
) -> Option<Change> {
    state.last_read = Some(now);
    match outcome {
        Ok(value) => {
            state.value = Some(value);
            state.error = None;
            let recovered = state.quality == Quality::Bad;
            state.quality = Quality::Good;
            if !recovered && !significant(spec, state.reported, value) {
                return None;
            }
            let previous = state.reported.replace(value);
            state.last_change = Some(now);
            state.announced = true;
            Some(Change {
                seq: 0,
                tag: Arc::clone(tag),
                value: Some(value),
                previous,
                quality: Quality::Good,
                timestamp: now,
                error: None,
            })
        }
        Err(error) => {
            let announce = state.quality == Quality::Good || !state.announced;
            state.quality = Quality::Bad;
            state.error = Some(error.clone());
            if !announce {
                return None;
            }
            state.announced = true;
            state.last_change = Some(now);
            Some(Change {
                seq: 0,
                tag: Arc::clone(tag),
                value: None,
                previous: state.reported,
                quality: Quality::Bad,
                timestamp: now,
                error: Some(error),
            })
        }
    }
}

/// A running poller. Dropping it stops the polling tasks.
pub struct Poller {
    table: Arc<PointTable>,
    buses: HashMap<String, ModbusBus>,
    queue_capacity: usize,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("points", &self.table.specs.len())
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// Starts polling `points` over `buses` (keyed by bus name). Must be
    /// called from within a Tokio runtime.
    pub fn start(
        points: Vec<PointSpec>,
        buses: &HashMap<String, ModbusBus>,
        config: &PollerConfig,
    ) -> Result<(Self, mpsc::Receiver<Change>), PollerError> {
        let mut index = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            p.validate().map_err(PollerError::InvalidPoint)?;
            if !buses.contains_key(&p.bus) {
                return Err(PollerError::UnknownBus {
                    tag: p.tag.clone(),
                    bus: p.bus.clone(),
                });
            }
            if index.insert(p.tag.clone(), i).is_some() {
                return Err(PollerError::DuplicateTag(p.tag.clone()));
            }
        }
        let blocks = plan_reads(&points, config.max_registers, config.max_bits);
        let (tx, rx) = mpsc::channel(config.change_capacity.max(1));
        let states = points
            .iter()
            .map(|_| PointState {
                value: None,
                reported: None,
                quality: Quality::Bad,
                announced: false,
                error: Some("not read yet".to_owned()),
                last_change: None,
                last_read: None,
            })
            .collect();
        let table = Arc::new(PointTable {
            tags: points.iter().map(|p| Arc::from(p.tag.as_str())).collect(),
            specs: points,
            index,
            states: Mutex::new(states),
            changes: tx,
            seq: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            read_failures: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let mut per_bus: HashMap<&str, Vec<ReadBlock>> = HashMap::new();
        for block in &blocks {
            per_bus
                .entry(block.bus.as_str())
                .or_default()
                .push(block.clone());
        }
        let mut tasks = Vec::new();
        for (bus_name, blocks) in per_bus {
            if let Some(bus) = buses.get(bus_name) {
                let client = bus.client("poller", config.queue_capacity);
                tasks.push(tokio::spawn(poll_bus(Arc::clone(&table), client, blocks)));
            }
        }
        Ok((
            Self {
                table,
                buses: buses.clone(),
                queue_capacity: config.queue_capacity,
                tasks,
            },
            rx,
        ))
    }

    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.table.specs.iter().map(|p| p.tag.as_str())
    }

    pub fn spec(&self, tag: &str) -> Option<&PointSpec> {
        self.table.index.get(tag).map(|&i| &self.table.specs[i])
    }

    pub fn point(&self, tag: &str) -> Option<PointSnapshot> {
        let &i = self.table.index.get(tag)?;
        let states = self.table.lock();
        Some(snapshot(&self.table.specs[i], &states[i]))
    }

    pub fn snapshot(&self) -> Vec<PointSnapshot> {
        let states = self.table.lock();
        self.table
            .specs
            .iter()
            .zip(states.iter())
            .map(|(spec, state)| snapshot(spec, state))
            .collect()
    }

    pub fn stats(&self) -> PollerStats {
        let t = &self.table;
        PollerStats {
            reads: t.reads.load(Ordering::Relaxed),
            read_failures: t.read_failures.load(Ordering::Relaxed),
            changes_emitted: t.emitted.load(Ordering::Relaxed),
            changes_dropped: t.dropped.load(Ordering::Relaxed),
        }
    }

    /// A writer with its own queue on every bus: give each script (or
    /// other independent caller) its own so the bus serves them fairly.
    pub fn writer(&self, client_name: &str) -> TagWriter {
        TagWriter {
            table: Arc::clone(&self.table),
            clients: self
                .buses
                .iter()
                .map(|(name, bus)| (name.clone(), bus.client(client_name, self.queue_capacity)))
                .collect(),
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn snapshot(spec: &PointSpec, state: &PointState) -> PointSnapshot {
    PointSnapshot {
        tag: spec.tag.clone(),
        value: state.value,
        quality: state.quality,
        error: state.error.clone(),
        last_change: state.last_change,
        last_read: state.last_read,
        writable: spec.writable(),
    }
}

async fn poll_bus(table: Arc<PointTable>, mut client: ModbusClient, blocks: Vec<ReadBlock>) {
    let start = Instant::now();
    let mut due: Vec<Instant> = vec![start; blocks.len()];
    loop {
        let Some((i, at)) = due.iter().copied().enumerate().min_by_key(|&(_, at)| at) else {
            return;
        };
        tokio::time::sleep_until(at).await;
        let block = &blocks[i];
        let result = client
            .call(
                block.unit,
                Request::read(block.table, block.start, block.count),
            )
            .await;
        table.apply(block, result);
        // Missed periods are skipped rather than replayed in a burst.
        let next = at + block.period;
        due[i] = next.max(Instant::now());
    }
}

/// Writes and reads points by tag through the bus masters' fair queues.
pub struct TagWriter {
    table: Arc<PointTable>,
    clients: HashMap<String, ModbusClient>,
}

impl std::fmt::Debug for TagWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagWriter").finish_non_exhaustive()
    }
}

impl TagWriter {
    fn lookup(&self, tag: &str) -> Result<(&PointSpec, &ModbusClient), WriteError> {
        let spec = self
            .table
            .index
            .get(tag)
            .map(|&i| &self.table.specs[i])
            .ok_or_else(|| WriteError::UnknownTag(tag.to_owned()))?;
        let client = self.clients.get(&spec.bus).ok_or_else(|| WriteError::Bus {
            tag: tag.to_owned(),
            source: HalError::Closed(spec.bus.clone()),
        })?;
        Ok((spec, client))
    }

    /// Encodes `value` and writes it to the device. Refuses read-only points.
    pub async fn write(&self, tag: &str, value: Value) -> Result<(), WriteError> {
        let (spec, client) = self.lookup(tag)?;
        if !spec.writable() {
            return Err(WriteError::ReadOnly(tag.to_owned()));
        }
        let codec = |source| WriteError::Codec {
            tag: tag.to_owned(),
            source,
        };
        let request = if spec.table.is_bits() {
            Request::WriteSingleCoil {
                addr: spec.address,
                value: spec.encoding.encode_bit(value).map_err(codec)?,
            }
        } else {
            let words = spec.encoding.encode_words(value).map_err(codec)?;
            match words.as_slice() {
                [single] => Request::WriteSingleRegister {
                    addr: spec.address,
                    value: *single,
                },
                _ => Request::WriteMultipleRegisters {
                    addr: spec.address,
                    values: words,
                },
            }
        };
        self.send(tag, spec, client, request).await.map(|_| ())
    }

    /// Reads the point from the device now, bypassing the poll period.
    /// Does not change the point table.
    pub async fn read(&self, tag: &str) -> Result<Value, WriteError> {
        let (spec, client) = self.lookup(tag)?;
        let request = Request::read(spec.table, spec.address, spec.width());
        let response = self.send(tag, spec, client, request).await?;
        decode(spec, spec.address, &response).map_err(|message| WriteError::Bus {
            tag: tag.to_owned(),
            source: HalError::Protocol(message),
        })
    }

    async fn send(
        &self,
        tag: &str,
        spec: &PointSpec,
        client: &ModbusClient,
        request: Request,
    ) -> Result<Response, WriteError> {
        let bus_error = |source| WriteError::Bus {
            tag: tag.to_owned(),
            source,
        };
        request.validate().map_err(bus_error)?;
        match client
            .submit(ModbusRequest {
                unit: spec.unit,
                request,
            })
            .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(exception)) => Err(WriteError::Exception {
                tag: tag.to_owned(),
                exception,
            }),
            Err(source) => Err(bus_error(source)),
        }
    }
}
