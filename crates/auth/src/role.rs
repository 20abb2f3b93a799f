//! The four roles, each including the one before.

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads status, logs, registry, I/O values, files.
    Viewer,
    /// Also starts/stops scripts, executes functions, emits events, writes I/O, runs task blocks.
    Operator,
    /// Also edits projects and files and changes script settings.
    Engineer,
    /// Also manages users, tokens, configuration and reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Engineer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Does this role include everything `needed` may do?
    pub fn includes(self, needed: Role) -> bool {
        self >= needed
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn each_role_includes_the_ones_before() {
        assert!(Role::Admin.includes(Role::Viewer));
        assert!(Role::Operator.includes(Role::Operator));
        assert!(!Role::Operator.includes(Role::Engineer));
        assert_eq!(Role::parse("engineer"), Some(Role::Engineer));
        assert_eq!(Role::parse("root"), None);
    }
}
