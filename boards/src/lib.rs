//! Board profiles and I/O point configuration.
//!
//! A board profile (built in, or a TOML file) names the controller's serial
//! ports and defaults. A device config (TOML) lists buses, devices, points
//! and robots; it is validated against the board and turned into the
//! [`vwed_hal::IoSpec`] that starts the HAL. Every validation error names
//! the file, line, column and field.

mod board;
mod devices;
mod error;
mod robot;

use std::path::Path;

pub use board::{BoardDefaults, BoardProfile, PortKind, SerialPortDef};
pub use devices::{BusConfig, DeviceConfig, DeviceDef, NamedBus};
pub use error::{ConfigError, ConfigErrors, LoadError};
pub use robot::{DispatchError, RobotProfile};

/// A board and the device config validated against it.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    pub board: BoardProfile,
    pub devices: DeviceConfig,
}

/// Loads a device config and its board. `board` overrides the config's own
/// `board = "..."` key; with neither, the simulator profile is used. A
/// board given as a relative path in the config is relative to the config.
pub fn load(config: &Path, board: Option<&str>) -> Result<Setup, LoadError> {
    let text = std::fs::read_to_string(config).map_err(|source| LoadError::Read {
        path: config.display().to_string(),
        source,
    })?;
    let named = DeviceConfig::board_name(&text);
    let board = match (board, named) {
        (Some(b), _) => BoardProfile::load(b)?,
        (None, Some(b)) if b.contains('/') || b.ends_with(".toml") => {
            let base = config.parent().unwrap_or(Path::new("."));
            BoardProfile::from_path(&base.join(b))?
        }
        (None, Some(b)) => BoardProfile::builtin(&b)?,
        (None, None) => BoardProfile::builtin("linux-sim")?,
    };
    let devices = DeviceConfig::parse(&text, &config.display().to_string(), &board)?;
    Ok(Setup { board, devices })
}
