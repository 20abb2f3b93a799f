//! Who may do what. Every API route names the lowest [`Role`] that may call it;
//! the access-control issue fills in accounts, tokens, sessions and the checks.

mod role;

pub use role::Role;
