//! The Python-facing side of VWED Edge.
//!
//! Only this crate touches Python, and only inside a worker process: the supervisor
//! starts `vwed-edge worker`, which calls [`worker::run`]. The `VWED` object itself is
//! written in Python (`python/vwed_runtime/`) on top of the native `_vwed` module,
//! which owns the socket to the supervisor.

mod bounded;
mod channel;
mod convert;
mod native;
mod sandbox;
pub mod worker;

/// The Python half of the worker, compiled into the binary: the package
/// `vwed_runtime`, whose `__init__` serves the submodules below from memory.
pub const RUNTIME_PY: &str = include_str!("../python/vwed_runtime/__init__.py");

macro_rules! runtime_modules {
    ($($name:literal),* $(,)?) => {
        /// The submodules of `vwed_runtime`: (name, source).
        pub const RUNTIME_MODULES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../python/vwed_runtime/", $name, ".py")))),*
        ];
    };
}

runtime_modules!(
    "aio",
    "errors",
    "core",
    "report",
    "handlers",
    "api",
    "functions",
    "events",
    "logdata",
    "devices",
    "integrations",
    "facade",
    "boot",
    "job",
    "loop",
    "analyzer",
);

/// Type stubs for the `VWED` object, for editors (embedded by `vwed-ipc`, which
/// the supervisor links without Python).
pub use vwed_ipc::STUBS_PYI;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Service names the facade passes to `call`, `call_async` or `notify`: the
    /// first argument, a string literal, is the only place a name is spelled.
    fn names_used_by_the_facade() -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        for (_, source) in crate::RUNTIME_MODULES {
            for call in ["call(\"", "call_async(\"", "notify(\""] {
                for (at, _) in source.match_indices(call) {
                    let before = source[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                        continue;
                    }
                    let rest = &source[at + call.len()..];
                    if let Some(end) = rest.find('"') {
                        used.insert(rest[..end].to_string());
                    }
                }
            }
        }
        used
    }

    #[test]
    fn every_service_is_reachable_from_the_facade_and_every_name_is_a_service() {
        let services: BTreeSet<String> = vwed_ipc::Service::names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let used = names_used_by_the_facade();
        let unknown: Vec<_> = used.difference(&services).collect();
        assert!(unknown.is_empty(), "facade names no service: {unknown:?}");
        let unreachable: Vec<_> = services.difference(&used).collect();
        assert!(
            unreachable.is_empty(),
            "services the facade never calls: {unreachable:?}"
        );
    }

    #[test]
    fn the_facade_asks_the_supervisor_only_through_core() {
        for (name, source) in crate::RUNTIME_MODULES {
            if *name == "core" {
                continue;
            }
            for raw in ["_vwed.request(", "_vwed.request_nowait(", "_vwed.notify("] {
                assert!(!source.contains(raw), "{name}.py uses {raw} directly");
            }
        }
    }
}
