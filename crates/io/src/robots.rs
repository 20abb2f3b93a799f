//! `VWED.robot`: a robot is a set of status points plus command points, as
//! declared in the device config.

use serde_json::{Map, Value, json};
use vwed_boards::RobotProfile;

use super::error::IoOpError;
use super::json::{snapshot_json, to_value};
use super::{IoRuntime, Who};

impl IoRuntime {
    fn robot(&self, name: &str) -> Result<&RobotProfile, IoOpError> {
        self.setup
            .devices
            .robot(name)
            .ok_or_else(|| IoOpError::UnknownRobot {
                name: name.to_string(),
                known: self.robot_names(),
            })
    }

    fn robot_names(&self) -> String {
        let v: Vec<&str> = self
            .setup
            .devices
            .robots
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        if v.is_empty() {
            "无".to_string()
        } else {
            v.join(", ")
        }
    }

    fn robot_json(&self, r: &RobotProfile) -> Value {
        let points = r.status(self.io.poller());
        let online = points.iter().all(|p| p.quality == vwed_hal::Quality::Good);
        let mut status = Map::new();
        for p in &points {
            // Short keys: `agv1.battery` of robot agv1 is `battery`.
            let key = p
                .tag
                .strip_prefix(&format!("{}.", r.name))
                .unwrap_or(&p.tag)
                .to_string();
            status.insert(key, json!(p.value));
        }
        json!({
            "robot_id": r.name,
            "description": r.description,
            "online": online,
            "quality": if online { "good" } else { "bad" },
            "status": status,
            "points": points.iter().map(snapshot_json).collect::<Vec<_>>(),
            "commands": r.commands.keys().collect::<Vec<_>>(),
        })
    }

    pub fn robot_status(&self, name: &str) -> Result<Value, IoOpError> {
        self.robot(name).map(|r| self.robot_json(r))
    }

    pub fn robots_json(&self) -> Vec<Value> {
        self.setup
            .devices
            .robots
            .iter()
            .map(|r| self.robot_json(r))
            .collect()
    }

    /// Writes `value` to the command point `command` of a robot. Without a
    /// command, a robot with exactly one command uses it.
    pub async fn robot_dispatch(
        &self,
        who: &Who,
        name: &str,
        command: Option<&str>,
        value: &Value,
    ) -> Result<Value, IoOpError> {
        let r = self.robot(name)?;
        let command = match command {
            Some(c) => c.to_string(),
            None if r.commands.len() == 1 => r.commands.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(IoOpError::Robot(format!(
                    "机器人 {name} 有多个命令, 请指定 command (可选: {})",
                    r.commands.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        };
        let target = format!("robot:{name}.{command}");
        let result = self
            .audited(who, &target, value, async {
                let v = to_value(value).ok_or_else(|| {
                    IoOpError::BadValue(format!("命令值需要布尔值或数字, 得到 {value}"))
                })?;
                let writer = self
                    .callers
                    .writer(&self.io, &who.queue_name(), self.alive());
                r.dispatch(&writer, &command, v).await.map_err(|e| match e {
                    vwed_boards::DispatchError::Write { source, .. } => IoOpError::from(source),
                    other => IoOpError::Robot(other.to_string()),
                })
            })
            .await;
        result.map(|()| {
            json!({"robot_id": name, "command": command, "tag": r.commands.get(&command), "value": value})
        })
    }
}
