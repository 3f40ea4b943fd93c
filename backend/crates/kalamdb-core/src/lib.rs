//! KalamDB's execution core: the [`AppContext`] with its registries and
//! stores, the DataFusion adapters, and the handler-based [`SqlExecutor`].

pub mod app_context;
pub mod checked_arithmetic;
pub mod cold;
pub mod context;
pub mod error;
pub mod executor;
pub mod functions;
pub mod index_check;
pub mod indexes;
pub mod jobs;
pub mod meta_store;
mod open;
pub mod providers;
pub mod query_limits;
pub mod query_scope;
pub mod result;
pub mod row_reader;
pub mod rows;
pub mod schema;
pub mod storages;
pub mod stream_eviction;
pub mod stream_store;
pub mod system_tables;
pub mod table_access;
pub mod table_store;
pub mod write_set;

pub use app_context::{AppContext, CoreOptions, StatementExecutor};
pub use context::ExecutionContext;
pub use error::{CoreError, CoreResult};
pub use executor::SqlExecutor;
pub use result::{ExecutionError, StatementResult};
