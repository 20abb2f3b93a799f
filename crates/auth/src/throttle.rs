//! Failed logins slow down the next attempts, per account name and per client
//! address, in tables of bounded size. Account names are counted whether or not
//! the account exists, so the answers say nothing about which ones do.
//!
//! Times are monotonic (`Instant`): a wall-clock jump neither frees a blocked
//! account nor blocks one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vwed_base::sync::Locked;

/// Entries per table; past it the stalest entry goes.
pub const CAPACITY: usize = 4_096;
/// An entry with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const LONGEST_WAIT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Instant,
}

struct Table {
    /// Failures allowed before waits begin.
    free: u32,
    map: HashMap<String, Entry>,
}

impl Table {
    fn new(free: u32) -> Table {
        Table {
            free,
            map: HashMap::new(),
        }
    }

    fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let e = self.map.get(key)?;
        (e.blocked_until > now).then(|| e.blocked_until - now)
    }

    fn fail(&mut self, key: &str, now: Instant) {
        if !self.map.contains_key(key) && self.map.len() >= CAPACITY {
            self.map
                .retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if self.map.len() >= CAPACITY
                && let Some(stalest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone())
            {
                self.map.remove(&stalest);
            }
        }
        let e = self.map.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            last: now,
            blocked_until: now,
        });
        if now.duration_since(e.last) >= FORGET_AFTER {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        if let Some(over) = e.failures.checked_sub(self.free + 1) {
            // 1 s, 2 s, 4 s ... up to LONGEST_WAIT.
            let wait = Duration::from_secs(1u64 << over.min(16)).min(LONGEST_WAIT);
            e.blocked_until = now + wait;
        }
    }

    fn forget(&mut self, key: &str) {
        self.map.remove(key);
    }
}

pub struct Throttle {
    tables: Mutex<(Table, Table)>,
}

impl Default for Throttle {
    fn default() -> Self {
        // An address may be a NAT or a shared workshop PC: more slack there.
        Throttle {
            tables: Mutex::new((Table::new(5), Table::new(20))),
        }
    }
}

impl Throttle {
    /// How long the caller must wait before this attempt may be checked.
    pub fn wait(&self, account: &str, addr: &str, now: Instant) -> Option<Duration> {
        let t = self.tables.locked();
        let account = account.to_lowercase();
        match (t.0.wait(&account, now), t.1.wait(addr, now)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn failed(&self, account: &str, addr: &str, now: Instant) {
        let mut t = self.tables.locked();
        t.0.fail(&account.to_lowercase(), now);
        t.1.fail(addr, now);
    }

    /// A correct password clears the account's count (not the address's: one
    /// right guess must not reset a spray across accounts).
    pub fn succeeded(&self, account: &str) {
        let mut t = self.tables.locked();
        t.0.forget(&account.to_lowercase());
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let t = self.tables.locked();
        (t.0.map.len(), t.1.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_begin_after_free_failures_and_grow() {
        let th = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(th.wait("Admin", "10.0.0.1", t0), None);
            th.failed("Admin", "10.0.0.1", t0);
        }
        assert_eq!(th.wait("admin", "10.0.0.2", t0), None, "5 are free");
        th.failed("admin", "10.0.0.2", t0);
        assert_eq!(
            th.wait("ADMIN", "10.0.0.3", t0),
            Some(Duration::from_secs(1))
        );
        let later = t0 + Duration::from_secs(3);
        assert_eq!(th.wait("admin", "10.0.0.3", later), None);
        th.failed("admin", "10.0.0.3", later);
        assert_eq!(th.wait("admin", "x", later), Some(Duration::from_secs(2)));
        th.succeeded("admin");
        assert_eq!(th.wait("admin", "x", later), None);
    }

    #[test]
    fn address_is_throttled_across_accounts() {
        let th = Throttle::default();
        let t0 = Instant::now();
        for i in 0..21 {
            assert!(th.wait("someone-new", "10.9.9.9", t0).is_none(), "{i}");
            th.failed(&format!("user{i}"), "10.9.9.9", t0);
        }
        assert!(th.wait("someone-new", "10.9.9.9", t0).is_some());
        assert!(th.wait("someone-new", "10.9.9.8", t0).is_none());
    }

    #[test]
    fn tables_stay_bounded_under_a_spray_of_names() {
        let th = Throttle::default();
        let t0 = Instant::now();
        for i in 0..(CAPACITY * 3) {
            th.failed(
                &format!("u{i}"),
                &format!("a{i}"),
                t0 + Duration::from_millis(i as u64),
            );
        }
        let (a, b) = th.sizes();
        assert!(a <= CAPACITY && b <= CAPACITY, "{a} {b}");
    }

    #[test]
    fn failures_are_forgotten_after_quiet_time() {
        let th = Throttle::default();
        let t0 = Instant::now();
        for _ in 0..7 {
            th.failed("bob", "h", t0);
        }
        let later = t0 + FORGET_AFTER + LONGEST_WAIT;
        th.failed("bob", "h", later);
        assert_eq!(th.wait("bob", "h", later), None, "count restarted");
    }
}
