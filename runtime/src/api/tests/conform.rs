//! Every answer the in-process tests get is checked against the schema the
//! document gives for its operation and status, so a documented type that
//! drifts from what the handler sends fails the test that saw it. The check is
//! stricter than JSON Schema in one way: an object schema that lists its
//! `properties` and says nothing of `additionalProperties` admits no other
//! keys, so a field a handler adds must be documented too.

use std::sync::OnceLock;

use serde_json::Value;

/// The document as the code describes it now (not the file: a schema changed
/// in the code is checked before the file is regenerated).
fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(super::doc::document(&[])).expect("document as JSON"))
}

/// Panics when the JSON answer `body` to `method path` with `status` is not what
/// the document says.
#[track_caller]
pub fn check(method: &str, path: &str, status: u16, content_type: &str, body: &Value) {
    if !content_type.starts_with("application/json") {
        return;
    }
    let Some(schema) = answer_schema(method, path, status) else {
        return;
    };
    if let Err(e) = conforms(schema, body, "$") {
        panic!("{method} {path} answered {status} with {body}, not as documented: {e}");
    }
}

/// The schema of the answer: the operation's for that status, else its
/// `default`, else (an error status of an undocumented path) `Failure`.
fn answer_schema(method: &str, path: &str, status: u16) -> Option<&'static Value> {
    let doc = doc();
    let failure = &doc["components"]["schemas"]["Failure"];
    let Some(op) = operation(doc, method, path) else {
        return (status >= 400).then_some(failure);
    };
    let responses = &op["responses"];
    let response = match responses.get(status.to_string()) {
        Some(r) => r,
        None => match responses.get("default") {
            Some(r) => r,
            None if status >= 400 => return Some(failure),
            None => panic!("{method} {path}: status {status} is not documented"),
        },
    };
    response["content"]["application/json"].get("schema")
}

/// The operation whose path template matches `path`; of several, the one with
/// the most literal segments (`/files/search` before `/files/{file_id}`).
fn operation<'d>(doc: &'d Value, method: &str, path: &str) -> Option<&'d Value> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .filter_map(|(template, item)| {
            let literal = matches(template, &segments)?;
            Some((literal, item.get(method.to_ascii_lowercase())?))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, op)| op)
}

/// How many literal segments `template` has, if it matches `segments`.
fn matches(template: &str, segments: &[&str]) -> Option<usize> {
    let parts: Vec<&str> = template.split('/').collect();
    // `/script-api/{path}` stands for every path below it.
    let rest = template.starts_with("/script-api/") && template.ends_with("{path}");
    if parts.len() != segments.len() && !(rest && segments.len() >= parts.len()) {
        return None;
    }
    let mut literal = 0;
    for (p, s) in parts.iter().zip(segments) {
        if p.starts_with('{') {
            continue;
        }
        if p != s {
            return None;
        }
        literal += 1;
    }
    Some(literal)
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(&doc()["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Whether `v` is an instance of `schema` (the subset of JSON Schema utoipa
/// writes: `$ref`, `type`, `enum`, `properties`, `required`,
/// `additionalProperties`, `items`, `oneOf`, `anyOf`, `allOf`).
fn conforms(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(schema);
    if let Some(alts) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        let errors: Vec<String> = alts
            .iter()
            .filter_map(|s| conforms(s, v, at).err())
            .collect();
        if errors.len() == alts.len() {
            return Err(format!(
                "{at}: none of the alternatives: {}",
                errors.join("; ")
            ));
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            conforms(s, v, at)?;
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            t => t.as_str().into_iter().collect(),
        };
        if !types.iter().any(|t| is_type(t, v)) {
            return Err(format!("{at}: {v} is not {}", types.join(" or ")));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {allowed:?}"));
    }
    match v {
        Value::Object(obj) => object_conforms(schema, obj, at),
        Value::Array(items) => match schema.get("items") {
            Some(item) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| conforms(item, x, &format!("{at}[{i}]"))),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

fn object_conforms(
    schema: &Value,
    obj: &serde_json::Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap_or_default();
        if !obj.contains_key(key) {
            return Err(format!("{at}: required {key} is missing"));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let extra = schema.get("additionalProperties");
    for (key, value) in obj {
        let here = format!("{at}.{key}");
        match (props.and_then(|p| p.get(key)), extra) {
            (Some(s), _) => conforms(s, value, &here)?,
            (None, Some(Value::Bool(false))) => return Err(format!("{here} is not documented")),
            (None, Some(Value::Bool(true))) => {}
            (None, Some(s)) => conforms(s, value, &here)?,
            (None, None) if props.is_some() => return Err(format!("{here} is not documented")),
            (None, None) => {}
        }
    }
    Ok(())
}

fn is_type(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

#[test]
fn an_answer_with_an_undocumented_or_mistyped_field_is_refused() {
    let failure = &doc()["components"]["schemas"]["Failure"];
    let ok = serde_json::json!({"success": false, "error": "x"});
    assert_eq!(conforms(failure, &ok, "$"), Ok(()));
    let extra = serde_json::json!({"success": false, "error": "x", "result": 1});
    assert!(conforms(failure, &extra, "$").is_err_and(|e| e.contains("result")));
    let mistyped = serde_json::json!({"success": "no", "error": "x"});
    assert!(conforms(failure, &mistyped, "$").is_err());
    let missing = serde_json::json!({"success": false});
    assert!(conforms(failure, &missing, "$").is_err_and(|e| e.contains("error")));
}
