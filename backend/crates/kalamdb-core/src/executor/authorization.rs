//! The one authorization gate: every statement passes here before any
//! handler runs. The rules are a single table, read top to bottom.

use crate::error::{CoreError, CoreResult};
use kalamdb_commons::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementFamily {
    /// CREATE/DROP NAMESPACE
    NamespaceDdl,
    /// CREATE/DROP TABLE
    TableDdl,
    /// CREATE/ALTER/DROP STORAGE
    StorageDdl,
    /// INSERT, UPDATE, DELETE
    Dml,
    /// SELECT, EXPLAIN
    Query,
    /// SHOW, DESCRIBE
    Show,
    /// USE
    Session,
    /// CREATE/ALTER/DROP USER (system accounts: system role only)
    UserManagement,
    /// KILL JOB / CANCEL JOB, BACKUP DATABASE, RESTORE DATABASE
    JobControl,
    /// SUBSCRIBE TO / LIVE SELECT, KILL LIVE QUERY (the live layer checks
    /// the table and the owner)
    Live,
}

impl StatementFamily {
    /// Its name in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            StatementFamily::NamespaceDdl => "namespace_ddl",
            StatementFamily::TableDdl => "table_ddl",
            StatementFamily::StorageDdl => "storage_ddl",
            StatementFamily::Dml => "dml",
            StatementFamily::Query => "query",
            StatementFamily::Show => "show",
            StatementFamily::Session => "session",
            StatementFamily::UserManagement => "user_management",
            StatementFamily::JobControl => "job_control",
            StatementFamily::Live => "live",
        }
    }

    pub const ALL: [StatementFamily; 10] = [
        StatementFamily::NamespaceDdl,
        StatementFamily::TableDdl,
        StatementFamily::StorageDdl,
        StatementFamily::Dml,
        StatementFamily::Query,
        StatementFamily::Show,
        StatementFamily::Session,
        StatementFamily::UserManagement,
        StatementFamily::JobControl,
        StatementFamily::Live,
    ];
}

/// Which roles may run each family. Row-level limits (a `user` reaches only
/// its own partition of USER tables) are enforced by the stores, not here.
const RULES: &[(StatementFamily, &[Role])] = &[
    (StatementFamily::NamespaceDdl, &[Role::Dba, Role::System]),
    (StatementFamily::TableDdl, &[Role::Dba, Role::System]),
    (StatementFamily::StorageDdl, &[Role::Dba, Role::System]),
    (
        StatementFamily::Dml,
        &[Role::User, Role::Service, Role::Dba, Role::System],
    ),
    (
        StatementFamily::Query,
        &[Role::User, Role::Service, Role::Dba, Role::System],
    ),
    (
        StatementFamily::Show,
        &[Role::User, Role::Service, Role::Dba, Role::System],
    ),
    (
        StatementFamily::Session,
        &[Role::User, Role::Service, Role::Dba, Role::System],
    ),
    (StatementFamily::UserManagement, &[Role::Dba, Role::System]),
    (StatementFamily::JobControl, &[Role::Dba, Role::System]),
    (
        StatementFamily::Live,
        &[Role::User, Role::Service, Role::Dba, Role::System],
    ),
];

pub fn is_allowed(role: Role, family: StatementFamily) -> bool {
    RULES
        .iter()
        .any(|(f, roles)| *f == family && roles.contains(&role))
}

pub fn authorize(role: Role, family: StatementFamily, what: &str) -> CoreResult<()> {
    if is_allowed(role, family) {
        Ok(())
    } else {
        Err(CoreError::PermissionDenied(format!(
            "Role '{role}' may not run {what}"
        )))
    }
}

/// Who may act as whom with `EXECUTE AS USER`: system → anyone;
/// dba → dba, service, user; service → service, user; user → only itself.
pub fn may_impersonate(actor: Role, actor_name: &str, target_name: &str, target: Role) -> bool {
    match actor {
        Role::System => true,
        Role::Dba => target != Role::System,
        Role::Service => matches!(target, Role::Service | Role::User),
        Role::User => actor_name == target_name,
    }
}

pub fn authorize_impersonation(
    actor: Role,
    actor_name: &str,
    target_name: &str,
    target: Role,
) -> CoreResult<()> {
    if may_impersonate(actor, actor_name, target_name, target) {
        Ok(())
    } else {
        Err(CoreError::PermissionDenied(format!(
            "Role '{actor}' may not execute as {target} user '{target_name}'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_matrix() {
        use StatementFamily as F;
        for role in [Role::User, Role::Service, Role::Dba, Role::System] {
            for family in F::ALL {
                let expected = match family {
                    F::NamespaceDdl
                    | F::TableDdl
                    | F::StorageDdl
                    | F::UserManagement
                    | F::JobControl => role.is_admin(),
                    F::Dml | F::Query | F::Show | F::Session | F::Live => true,
                };
                assert_eq!(is_allowed(role, family), expected, "{role} {family:?}");
            }
        }
        assert!(
            authorize(Role::User, F::TableDdl, "CREATE TABLE")
                .unwrap_err()
                .to_string()
                .contains("Role 'user' may not run CREATE TABLE")
        );
    }
}
