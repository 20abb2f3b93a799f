//! VWED.data (kept per script file, across restarts), VWED.util and get_script_id.

use serde_json::json;
use vwed_e2e::{Runtime, py};

const DATA: &str = r#"
import re
def boot():
    @VWED.function.register("roundtrip")
    def roundtrip(args):
        VWED.data.set("count", 100)
        VWED.data.set("config", {"host": "localhost", "port": 8080, "tags": ["a", "b"]})
        out = {
            "count": VWED.data.get("count", 0),
            "config": VWED.data.get("config", {}),
            "missing": VWED.data.get("nope", "default"),
            "has": VWED.data.has("count"),
            "keys": sorted(VWED.data.keys()),
        }
        VWED.data.delete("count")
        out["has_after_delete"] = VWED.data.has("count")
        return out

    @VWED.function.register("get")
    def get(args):
        return {"config": VWED.data.get("config"), "keys": VWED.data.keys()}

    @VWED.function.register("clear")
    def clear(args):
        VWED.data.clear()
        return VWED.data.keys()

    @VWED.function.register("too_big")
    def too_big(args):
        try:
            VWED.data.set("big", "x" * (2 * 1024 * 1024))
        except Exception as e:
            return {"error": str(e), "stored": VWED.data.has("big")}

    @VWED.function.register("not_json")
    def not_json(args):
        try:
            VWED.data.set("obj", object())
        except VWEDArgumentError as e:
            return {"error": str(e)}

    @VWED.function.register("util")
    def util(args):
        return {
            "now": VWED.util.now(),
            "timestamp": VWED.util.timestamp(),
            "uuid": VWED.util.uuid(),
            "script_id": VWED.get_script_id(),
        }

    @VWED.function.register("sleepy")
    async def sleepy(args):
        VWED.util.sleep(0.01)
        await VWED.util.async_sleep(0.01)
        return True
"#;

#[test]
fn data_round_trips_and_survives_restarts() {
    let rt = Runtime::start();
    let sid = rt.deploy("d", "data.py", &py(DATA));
    let v = rt.execute_ok(None, "roundtrip", json!({}));
    assert_eq!(v["count"], 100);
    assert_eq!(v["config"]["port"], 8080);
    assert_eq!(v["missing"], "default");
    assert_eq!(v["has"], true);
    assert_eq!(v["keys"], json!(["config", "count"]));
    assert_eq!(v["has_after_delete"], false);

    // A new run of the same file sees the same data; so does a new runtime.
    let sid2 = rt
        .restart(&sid)
        .get("script_id")
        .as_str()
        .expect("id")
        .to_string();
    assert_ne!(sid, sid2);
    let v = rt.execute_ok(None, "get", json!({}));
    assert_eq!(v["config"]["tags"], json!(["a", "b"]));
    let data = rt.kill9_keep_data();
    let rt = Runtime::start_in(data, vwed_e2e::Opts::default());
    let v = rt.execute_ok(None, "get", json!({}));
    assert_eq!(v["keys"], json!(["config"]), "{v}");
    assert_eq!(rt.execute_ok(None, "clear", json!({})), json!([]));
}

#[test]
fn data_limits_give_clear_errors() {
    let rt = Runtime::start();
    rt.deploy("d", "data.py", &py(DATA));
    let v = rt.execute_ok(None, "too_big", json!({}));
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("值过大")),
        "{v}"
    );
    assert_eq!(v["stored"], false);
    let v = rt.execute_ok(None, "not_json", json!({}));
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("JSON serializable")),
        "{v}"
    );
}

#[test]
fn util_and_script_id() {
    let rt = Runtime::start();
    let sid = rt.deploy("d", "data.py", &py(DATA));
    let v = rt.execute_ok(None, "util", json!({}));
    assert_eq!(v["script_id"], json!(sid));
    assert!(
        v["now"]
            .as_str()
            .is_some_and(|s| s.len() >= 19 && s.contains('T')),
        "{v}"
    );
    assert!(v["timestamp"].as_f64().is_some_and(|t| t > 1.7e9), "{v}");
    assert_eq!(v["uuid"].as_str().map(str::len), Some(36));
    assert_eq!(rt.execute_ok(None, "sleepy", json!({})), json!(true));
}
