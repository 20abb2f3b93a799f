//! The topic tree (docs/fleet.md): everything of one fleet lives below
//! `vwed/v1/<fleet>/`.

/// Version of the topic tree and message formats.
pub const PROTOCOL: u32 = 1;

#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
}

/// Where a desired state came from: the device's own topic or one of its groups.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Device,
    /// Index into the device's groups (their priority order).
    Group(usize),
}

/// What arrived on a topic the device subscribed to.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    Desired(Source),
    Chunk { digest: &'a str, index: u32 },
    Call,
    Sync,
    Other,
}

impl Topics {
    pub fn new(fleet: &str) -> Topics {
        Topics {
            root: format!("vwed/v1/{fleet}"),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn desired_device(&self, device: &str) -> String {
        format!("{}/desired/device/{device}", self.root)
    }

    pub fn desired_group(&self, group: &str) -> String {
        format!("{}/desired/group/{group}", self.root)
    }

    /// The desired state the `rollback` command goes back to.
    pub fn previous_device(&self, device: &str) -> String {
        format!("{}/previous/device/{device}", self.root)
    }

    pub fn previous_group(&self, group: &str) -> String {
        format!("{}/previous/group/{group}", self.root)
    }

    pub fn chunk(&self, digest: &str, index: u32) -> String {
        format!("{}/blob/{digest}/{index}", self.root)
    }

    pub fn chunks(&self, digest: &str) -> String {
        format!("{}/blob/{digest}/+", self.root)
    }

    fn device(&self, device: &str, leaf: &str) -> String {
        format!("{}/device/{device}/{leaf}", self.root)
    }

    pub fn state(&self, device: &str) -> String {
        self.device(device, "state")
    }

    pub fn presence(&self, device: &str) -> String {
        self.device(device, "presence")
    }

    pub fn events(&self, device: &str) -> String {
        self.device(device, "events")
    }

    pub fn call(&self, device: &str) -> String {
        self.device(device, "call")
    }

    /// The device talks to itself here to learn that the retained messages of its
    /// subscriptions have all arrived.
    pub fn sync(&self, device: &str) -> String {
        self.device(device, "sync")
    }

    /// Where replies go when a call names no `reply_to`.
    pub fn reply(&self, device: &str) -> String {
        self.device(device, "reply")
    }

    pub fn all_devices(&self, leaf: &str) -> String {
        format!("{}/device/+/{leaf}", self.root)
    }

    /// The device a `device/<id>/<leaf>` topic names.
    pub fn device_of<'a>(&self, topic: &'a str, leaf: &str) -> Option<&'a str> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix("/device/")?;
        let (device, l) = rest.split_once('/')?;
        (l == leaf).then_some(device)
    }

    /// What a topic the device subscribed to is.
    pub fn classify<'a>(&self, topic: &'a str, device: &str, groups: &[String]) -> Inbound<'a> {
        let Some(rest) = topic
            .strip_prefix(self.root.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Inbound::Other;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["desired", "device", d] if *d == device => Inbound::Desired(Source::Device),
            ["desired", "group", g] => match groups.iter().position(|x| x == g) {
                Some(i) => Inbound::Desired(Source::Group(i)),
                None => Inbound::Other,
            },
            ["blob", digest, index] => match index.parse() {
                Ok(index) => Inbound::Chunk { digest, index },
                Err(_) => Inbound::Other,
            },
            ["device", d, "call"] if *d == device => Inbound::Call,
            ["device", d, "sync"] if *d == device => Inbound::Sync,
            _ => Inbound::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let t = Topics::new("f1");
        let groups = vec!["line-a".to_string(), "all".to_string()];
        assert_eq!(
            t.classify(&t.desired_device("d1"), "d1", &groups),
            Inbound::Desired(Source::Device)
        );
        assert_eq!(
            t.classify(&t.desired_device("d2"), "d1", &groups),
            Inbound::Other
        );
        assert_eq!(
            t.classify(&t.desired_group("all"), "d1", &groups),
            Inbound::Desired(Source::Group(1))
        );
        assert_eq!(
            t.classify(&t.chunk("ab", 3), "d1", &groups),
            Inbound::Chunk {
                digest: "ab",
                index: 3
            }
        );
        assert_eq!(t.classify(&t.call("d1"), "d1", &groups), Inbound::Call);
        assert_eq!(
            t.classify("vwed/v1/f2/device/d1/call", "d1", &groups),
            Inbound::Other
        );
        assert_eq!(t.device_of(&t.state("d7"), "state"), Some("d7"));
        assert_eq!(t.device_of(&t.state("d7"), "presence"), None);
    }
}
