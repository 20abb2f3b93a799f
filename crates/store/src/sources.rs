//! What the store can tell of a script source without Python.

/// A line at column 0 that starts `def boot(` or `async def boot(`: the module's
/// own `boot`, as far as a source that does not parse can tell.
pub fn defines_boot(source: &str) -> bool {
    source.lines().any(|line| {
        let line = line
            .strip_prefix("async")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        line.strip_prefix("def")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .and_then(|rest| rest.trim_start().strip_prefix("boot"))
            .is_some_and(|rest| rest.trim_start().starts_with('('))
    })
}
