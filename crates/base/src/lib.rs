//! The ground floor of VWED Edge: what every other crate may use and nothing of
//! theirs. Time and its formats (`clock`), durable file writes confined to a
//! directory (`fsio`), the path rules of projects and files (`paths`), cron schedules (`cron`), bounded line
//! reading from pipes (`pipe`), one runtime per data dir (`lock`), the
//! allocator's thresholds (`heap`) and a lock that survives a panicked holder
//! (`sync`).

pub mod clock;
pub mod cron;
pub mod fsio;
pub mod heap;
pub mod lists;
pub mod lock;
pub mod paths;
pub mod pipe;
pub mod sync;
