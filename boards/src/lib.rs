//! Board profiles and I/O point configuration.
