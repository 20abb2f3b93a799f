//! Robot profiles: a robot is a set of status points plus named command
//! points. These helpers are what `VWED.robot.get_status/get_all/dispatch`
//! sit on.

use std::collections::BTreeMap;

use vwed_hal::{PointSnapshot, Poller, TagWriter, Value, WriteError};

/// A robot: status points to report and named command points to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotProfile {
    pub name: String,
    pub description: String,
    /// Status point tags, in the order they are reported.
    pub status: Vec<String>,
    /// Command name to writable point tag.
    pub commands: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DispatchError {
    #[error("robot {robot} has no command '{command}' (commands: {known})")]
    UnknownCommand {
        robot: String,
        command: String,
        known: String,
    },
    #[error("robot {robot}: {source}")]
    Write { robot: String, source: WriteError },
}

impl RobotProfile {
    /// Current value and quality of every status point, in profile order.
    /// Points the poller does not know are left out; config validation
    /// makes that impossible for a poller started from the same config.
    pub fn status(&self, poller: &Poller) -> Vec<PointSnapshot> {
        self.status
            .iter()
            .filter_map(|tag| poller.point(tag))
            .collect()
    }

    /// Writes `value` to the point behind `command`.
    pub async fn dispatch(
        &self,
        writer: &TagWriter,
        command: &str,
        value: Value,
    ) -> Result<(), DispatchError> {
        let tag = self
            .commands
            .get(command)
            .ok_or_else(|| DispatchError::UnknownCommand {
                robot: self.name.clone(),
                command: command.to_owned(),
                known: self.commands.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        writer
            .write(tag, value)
            .await
            .map_err(|source| DispatchError::Write {
                robot: self.name.clone(),
                source,
            })
    }
}
