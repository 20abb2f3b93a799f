//! CPU time of a worker process, from `/proc/<pid>/stat`.

/// User plus system time of every thread of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ticks(&stat)
}

/// Fields 14 and 15 (`utime`, `stime`) counted from after the command name,
/// which is in parentheses and may itself contain spaces or parentheses.
fn parse_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(n).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_found_after_a_command_name_with_spaces() {
        let stat = "42 (vwed (x) y) R 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 30 10 3 0 1 2 3";
        assert_eq!(parse_ticks(stat), Some(280));
        assert_eq!(parse_ticks("garbage"), None);
        assert!(cpu_ticks(std::process::id()).is_some());
        assert!(clock_ticks_per_s() > 0);
    }
}
