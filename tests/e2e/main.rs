//! End-to-end tests: one test binary, one module per area. Each test starts the real
//! `vwed-edge` binary on a loopback port with its own data dir (see `vwed_e2e`).

mod auth;
mod data_util;
mod envelope;
mod events_timers;
mod files;
mod functions;
mod integration;
mod io;
mod io_rtu;
mod isolation;
mod lifecycle;
mod logs_ws;
mod paths;
mod projects;
mod restore;
mod sample;
mod script_api;
mod seed_examples;
mod stubs;
mod watchdog;
