//! Roles as stored (",learner,admin,") and as sent (the proto enum).

use tt_common::auth::Role;
use tt_proto::identity::v1 as pb;

/// Encodes roles for the `users.roles` column: sorted, comma-wrapped.
pub fn encode(roles: &[Role]) -> String {
    let mut names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    format!(",{},", names.join(","))
}

/// Decodes the column, in role order (learner first).
pub fn decode(column: &str) -> Vec<Role> {
    let mut roles: Vec<Role> = column.split(',').filter_map(Role::parse).collect();
    roles.sort_unstable();
    roles
}

pub fn to_proto(role: Role) -> pb::Role {
    match role {
        Role::Learner => pb::Role::Learner,
        Role::Admin => pb::Role::Admin,
        Role::Service => pb::Role::Service,
        Role::ContentEditor => pb::Role::ContentEditor,
    }
}

pub fn from_proto(role: pb::Role) -> Option<Role> {
    match role {
        pb::Role::Unspecified => None,
        pb::Role::Learner => Some(Role::Learner),
        pb::Role::Admin => Some(Role::Admin),
        pb::Role::Service => Some(Role::Service),
        pb::Role::ContentEditor => Some(Role::ContentEditor),
    }
}
