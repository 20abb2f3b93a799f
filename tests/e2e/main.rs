//! End-to-end tests: one test binary, one module per area. Each test starts the real
//! `vwed-edge` binary on a loopback port with its own data dir (see `vwed_e2e`).

mod access;
mod auth;
mod clock;
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
mod readme;
mod restore;
mod sample;
mod sandbox;
mod script_api;
mod script_errors;
mod seed_examples;
mod server_bounds;
mod startup;
mod stubs;
mod tls;
mod watchdog;
