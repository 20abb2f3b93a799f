//! Text a script writes, bounded before it crosses the socket: every line at most
//! the supervisor's `max_line_bytes` (plus a marker). A Python string is read in
//! slices of [`SLICE_CHARS`] characters, so a line of 200 MB never needs 200 MB
//! more here: only its first `max_line_bytes` are kept, the rest is counted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PySlice, PyString};
use vwed_ipc::lines::{self, Lines};

use crate::convert::py_to_json_string;

/// Characters read from a Python string at a time.
const SLICE_CHARS: usize = 64 * 1024;

/// Completed output is sent once it reaches this many bytes, so a burst of
/// short lines in one write becomes several frames of bounded size.
pub const OUTPUT_BATCH_BYTES: usize = 256 * 1024;

static LINE_LIMIT: AtomicUsize = AtomicUsize::new(lines::DEFAULT_LINE_BYTES);

/// Unfinished lines of stdout and stderr.
static PENDING: Mutex<[Lines; 2]> = Mutex::new([Lines::new(), Lines::new()]);

/// The slot of a stream in [`PENDING`]: 2 is stderr, anything else stdout.
fn slot(stream: i32) -> usize {
    usize::from(stream == 2)
}

/// Set from the supervisor's `Boot`.
pub fn set_line_limit(bytes: usize) {
    LINE_LIMIT.store(bytes.max(1), Ordering::Relaxed);
}

pub fn line_limit() -> usize {
    LINE_LIMIT.load(Ordering::Relaxed)
}

/// Calls `each` with the text of `s`, slice by slice; stops early when `each`
/// says it needs no more and returns the UTF-8 bytes of the slices it skipped.
fn slices(s: &Bound<'_, PyString>, mut each: impl FnMut(&str) -> bool) -> PyResult<u64> {
    let n = s.len()?;
    if n <= SLICE_CHARS {
        each(&s.to_string_lossy());
        return Ok(0);
    }
    let mut skipped = 0u64;
    let mut wants = true;
    for start in (0..n).step_by(SLICE_CHARS) {
        let end = (start + SLICE_CHARS).min(n);
        let range = PySlice::new(s.py(), start as isize, end as isize, 1);
        let part = s.as_any().get_item(range)?.cast_into::<PyString>()?;
        let text = part.to_string_lossy();
        if wants {
            wants = each(&text);
        } else {
            skipped += text.len() as u64;
        }
    }
    Ok(skipped)
}

/// `s` as one record (a log message, a traceback): cut to the line limit.
pub fn record(s: &Bound<'_, PyString>) -> PyResult<String> {
    let limit = line_limit();
    let mut head = String::new();
    let mut seen = 0u64;
    let skipped = slices(s, |text| {
        seen += text.len() as u64;
        let taken = lines::prefix(text, limit.saturating_sub(head.len()));
        head.push_str(taken);
        // Once a slice did not fit whole, nothing after it belongs to the head.
        taken.len() == text.len()
    })?;
    let dropped = seen - head.len() as u64 + skipped;
    lines::mark(&mut head, dropped, limit);
    Ok(head)
}

/// Feeds what a script wrote to `stream` (1 stdout, 2 stderr); `send` gets the
/// completed lines in batches of about [`OUTPUT_BATCH_BYTES`].
pub fn write(
    stream: i32,
    s: &Bound<'_, PyString>,
    mut send: impl FnMut(String) -> PyResult<()>,
) -> PyResult<bool> {
    let limit = line_limit();
    let mut done = String::new();
    let mut sent = false;
    let mut failed = None;
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    let lines = &mut pending[slot(stream)];
    let skipped = slices(s, |text| {
        lines.feed(text, limit, &mut done);
        if done.len() >= OUTPUT_BATCH_BYTES {
            sent = true;
            if let Err(e) = send(std::mem::take(&mut done)) {
                failed = Some(e);
            }
        }
        // Slices without a line break cannot end the line: count them only.
        true
    })?;
    lines.drop_bytes(skipped);
    drop(pending);
    if let Some(e) = failed {
        return Err(e);
    }
    if !done.is_empty() {
        sent = true;
        send(done)?;
    }
    Ok(sent)
}

/// Ends the unfinished line of `stream`, if any, and sends it.
pub fn flush(stream: i32, send: impl FnOnce(String) -> PyResult<()>) -> PyResult<bool> {
    let mut done = String::new();
    PENDING.lock().unwrap_or_else(|p| p.into_inner())[slot(stream)].finish(line_limit(), &mut done);
    if done.is_empty() {
        return Ok(false);
    }
    send(done)?;
    Ok(true)
}

/// The fields of a log line as JSON text of at most the line limit: long text
/// values are cut first (without reading them whole); fields that are still too
/// long are replaced by a note.
pub fn fields(f: &Bound<'_, PyAny>) -> PyResult<String> {
    let limit = line_limit();
    let json = match f.cast::<PyDict>() {
        Ok(d) => {
            let cut = PyDict::new(f.py());
            for (k, v) in d.iter() {
                match v.cast::<PyString>() {
                    Ok(s) if s.len()? > limit => cut.set_item(k, record(s)?)?,
                    _ => cut.set_item(k, v)?,
                }
            }
            py_to_json_string(&cut)?
        }
        Err(_) => py_to_json_string(f)?,
    };
    if json.len() <= limit {
        return Ok(json);
    }
    let note = format!("字段过长 ({} 字节), 已省略", json.len());
    Ok(serde_json::json!({ "_truncated": note }).to_string())
}
