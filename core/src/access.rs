//! Who may do what: the roles of API keys (and of people, who hold the same roles).
//!
//! `viewer`, `editor` and `admin` each include the roles before them: viewers read, editors also write
//! campaigns, segments and messages, admins also manage keys. `conversions`, for the bank's backend, only
//! posts conversions (editors and admins may too), so the key a backend holds can read or change nothing.

#[cfg(feature = "openapi")]
use alloc::{string::String, vec::Vec};
use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Conversions,
    Viewer,
    Editor,
    Admin,
}

/// What a request asks to be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
    ManageKeys,
    PostConversions,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Conversions, Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Conversions => "conversions",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    pub fn permits(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => self >= Role::Viewer,
            Permission::Write => self >= Role::Editor,
            Permission::ManageKeys => self == Role::Admin,
            Permission::PostConversions => self != Role::Viewer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_exactly_what_it_is_for() {
        use Permission::*;
        let table = [
            (Role::Conversions, [false, false, false, true]),
            (Role::Viewer, [true, false, false, false]),
            (Role::Editor, [true, true, false, true]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (permission, allowed) in [Read, Write, ManageKeys, PostConversions].into_iter().zip(allowed) {
                assert_eq!(role.permits(permission), allowed, "{role:?} {permission:?}");
            }
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
