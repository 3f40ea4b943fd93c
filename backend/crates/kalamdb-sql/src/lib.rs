//! KalamDB's SQL front end. It wraps sqlparser instead of forking it: the
//! first keywords of each statement decide whether one of our small parsers
//! (one file per statement family under `parsers/`) takes it, or whether it is
//! standard SQL handed to sqlparser unchanged. Either way the result is one
//! [`SqlStatement`].

pub mod error;
pub mod limits;
pub mod loggable;
pub mod parser;
pub mod parsers;
pub mod shape;
pub mod statement;
pub mod types;

pub use datafusion::sql::sqlparser;
pub use error::SqlParseError;
pub use limits::SqlLimits;
pub use loggable::loggable_sql;
pub use parser::{ParsedStatement, parse_sql, parse_sql_with_limits};
pub use shape::{has_subquery, ordered_select, plain_select};
pub use statement::{
    ColumnSpec, CreateTableStatement, QualifiedName, SqlStatement, StorageOptions, UniqueSpec,
    UserAuth, UserChange,
};
