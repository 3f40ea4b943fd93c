//! What one query may spend, by the caller's role: wall time and memory.
//!
//! Both bound the DataFusion part of a statement (planning, execution and
//! the collected result), never a storage write: a DML statement reads and
//! computes under the limits, then writes in one batch after they are
//! passed, so a cancelled statement has written nothing.

use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, UnboundedMemoryPool};
use datafusion::execution::runtime_env::RuntimeEnv;
use kalamdb_commons::Role;
use std::sync::Arc;
use std::time::Duration;

/// One role's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryLimits {
    pub timeout: Option<Duration>,
    pub memory_bytes: Option<usize>,
}

/// Limits per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleQueryLimits {
    pub user: QueryLimits,
    pub service: QueryLimits,
    pub dba: QueryLimits,
    pub system: QueryLimits,
}

impl Default for RoleQueryLimits {
    fn default() -> Self {
        let app = QueryLimits {
            timeout: Some(Duration::from_secs(30)),
            memory_bytes: Some(256 << 20),
        };
        let admin = QueryLimits {
            timeout: Some(Duration::from_secs(300)),
            memory_bytes: Some(1 << 30),
        };
        Self {
            user: app,
            service: app,
            dba: admin,
            system: admin,
        }
    }
}

impl RoleQueryLimits {
    pub fn for_role(&self, role: Role) -> QueryLimits {
        match role {
            Role::User => self.user,
            Role::Service => self.service,
            Role::Dba => self.dba,
            Role::System => self.system,
        }
    }
}

impl QueryLimits {
    /// A runtime like `base` whose memory pool holds this query alone.
    pub fn runtime(&self, base: &RuntimeEnv) -> Arc<RuntimeEnv> {
        let memory_pool: Arc<dyn MemoryPool> = match self.memory_bytes {
            Some(bytes) => Arc::new(GreedyMemoryPool::new(bytes)),
            None => Arc::new(UnboundedMemoryPool::default()),
        };
        Arc::new(RuntimeEnv {
            memory_pool,
            disk_manager: Arc::clone(&base.disk_manager),
            cache_manager: Arc::clone(&base.cache_manager),
            object_store_registry: Arc::clone(&base.object_store_registry),
        })
    }
}
