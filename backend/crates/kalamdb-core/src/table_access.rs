//! Which tables a caller may read or write: SHARED tables by their
//! ACCESS_LEVEL; USER and STREAM tables always (a caller only ever reaches
//! its own partition). Used by the executor, the catalog, the providers and
//! the system tables alike, so it lives below all of them.

use crate::error::{CoreError, CoreResult};
use kalamdb_commons::definition::AccessLevel;
use kalamdb_commons::{Role, TableDefinition, TableType};

/// Table-level access on top of the statement gate. USER tables are open to
/// every role (each caller reaches only its own partition); SHARED tables
/// follow their ACCESS_LEVEL (PRIVATE when none was given):
///
/// | level | read | write |
/// | --- | --- | --- |
/// | PUBLIC | every role | service and above |
/// | PRIVATE | service and above | service and above |
/// | RESTRICTED | dba and above | dba and above |
pub fn may_access_table(role: Role, def: &TableDefinition, write: bool) -> bool {
    if def.table_type != TableType::Shared {
        return true;
    }
    match def.options.access_level.unwrap_or(AccessLevel::Private) {
        AccessLevel::Public if !write => true,
        AccessLevel::Public | AccessLevel::Private => role >= Role::Service,
        AccessLevel::Restricted => role >= Role::Dba,
    }
}

pub fn authorize_table(role: Role, def: &TableDefinition, write: bool) -> CoreResult<()> {
    if may_access_table(role, def, write) {
        Ok(())
    } else {
        Err(CoreError::PermissionDenied(format!(
            "Role '{role}' may not {} {} table '{}' (ACCESS_LEVEL {})",
            if write { "write to" } else { "read" },
            def.table_type,
            def.table_ref(),
            def.options
                .access_level
                .unwrap_or(AccessLevel::Private)
                .as_str()
        )))
    }
}
