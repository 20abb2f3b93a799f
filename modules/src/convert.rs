//! JSON ↔ Python without going through the `json` module: the worker must also run
//! on a static ARM build where `_json` is not compiled in, and this path is hot
//! (every request body and every handler result).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;

/// Nesting deeper than this is refused rather than risking the native stack.
const MAX_DEPTH: usize = 128;

pub fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, value_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Parses JSON text into Python objects.
pub fn json_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| PyValueError::new_err(format!("invalid JSON from runtime: {e}")))?;
    value_to_py(py, &v)
}

/// Serializes a Python object as JSON, the way `json.dumps` would for the same
/// input, plus datetime/date/time (ISO text) and tuples/sets (arrays). Anything else
/// raises the same `TypeError` that `json.dumps` raises.
pub fn py_to_json(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    write_value(obj, out, 0)
}

pub fn py_to_json_string(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let mut out = Vec::with_capacity(64);
    py_to_json(obj, &mut out)?;
    // Only valid UTF-8 is ever written.
    String::from_utf8(out).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping of a plain &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_value(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> PyResult<()> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err("value nested too deeply for JSON"));
    }
    if obj.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(s) = obj.cast::<PyString>() {
        write_str(&s.to_cow()?, out);
    } else if let Ok(b) = obj.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if let Ok(i) = obj.cast::<PyInt>() {
        match i.extract::<i64>() {
            Ok(v) => out.extend_from_slice(v.to_string().as_bytes()),
            // Big ints keep every digit, as json.dumps does.
            Err(_) => out.extend_from_slice(i.str()?.to_cow()?.as_bytes()),
        }
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        if v.is_finite() {
            let _ = serde_json::to_writer(&mut *out, &v);
        } else {
            // JSON has no NaN/Infinity; null is what strict parsers accept.
            out.extend_from_slice(b"null");
        }
    } else if let Ok(d) = obj.cast::<PyDict>() {
        out.push(b'{');
        let mut first = true;
        for (k, v) in d.iter() {
            if !first {
                out.push(b',');
            }
            first = false;
            write_key(&k, out)?;
            out.push(b':');
            write_value(&v, out, depth + 1)?;
        }
        out.push(b'}');
    } else if let Ok(l) = obj.cast::<PyList>() {
        write_seq(l.iter(), out, depth)?;
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        write_seq(t.iter(), out, depth)?;
    } else if obj.hasattr("isoformat")? {
        let s = obj.call_method0("isoformat")?;
        write_value(&s, out, depth + 1)?;
    } else if obj.hasattr("__json__")? {
        let v = obj.call_method0("__json__")?;
        write_value(&v, out, depth + 1)?;
    } else if let Ok(iter) = obj.cast::<pyo3::types::PySet>() {
        write_seq(iter.iter(), out, depth)?;
    } else if let Ok(iter) = obj.cast::<pyo3::types::PyFrozenSet>() {
        write_seq(iter.iter(), out, depth)?;
    } else if let Ok(m) = obj.cast::<pyo3::types::PyMapping>() {
        let d = PyDict::new(obj.py());
        for item in m.items()?.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            d.set_item(k, v)?;
        }
        write_value(d.as_any(), out, depth)?;
    } else {
        let name = obj.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "Object of type {name} is not JSON serializable"
        )));
    }
    Ok(())
}

fn write_seq<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    out: &mut Vec<u8>,
    depth: usize,
) -> PyResult<()> {
    out.push(b'[');
    let mut first = true;
    for item in items {
        if !first {
            out.push(b',');
        }
        first = false;
        write_value(&item, out, depth + 1)?;
    }
    out.push(b']');
    Ok(())
}

fn write_key(k: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(s) = k.cast::<PyString>() {
        write_str(&s.to_cow()?, out);
    } else if k.is_none() {
        out.extend_from_slice(b"\"null\"");
    } else if let Ok(b) = k.cast::<PyBool>() {
        write_str(if b.is_true() { "true" } else { "false" }, out);
    } else if k.cast::<PyInt>().is_ok() || k.cast::<PyFloat>().is_ok() {
        write_str(&k.str()?.to_cow()?, out);
    } else {
        let name = k.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "keys must be str, int, float, bool or None, not {name}"
        )));
    }
    Ok(())
}
