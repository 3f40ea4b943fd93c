//! The parsed form of every statement KalamDB runs.

use datafusion::sql::sqlparser;
use kalamdb_commons::definition::TableOptions;
use kalamdb_commons::{KalamDataType, TableType};
use sqlparser::ast::Statement;

/// `[namespace.]name`, already normalized (unquoted identifiers lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: KalamDataType,
    pub nullable: bool,
    pub primary_key: bool,
    /// DEFAULT expression as SQL text.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTableStatement {
    pub table: QualifiedName,
    pub table_type: TableType,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnSpec>,
    pub options: TableOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SqlStatement {
    CreateNamespace {
        name: String,
        if_not_exists: bool,
    },
    DropNamespace {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    ShowNamespaces,
    UseNamespace {
        name: String,
    },
    CreateTable(Box<CreateTableStatement>),
    DropTable {
        table: QualifiedName,
        /// The kind named in `DROP USER TABLE`; must match the table's.
        table_type: Option<TableType>,
        if_exists: bool,
    },
    ShowTables {
        namespace: Option<String>,
    },
    DescribeTable {
        table: QualifiedName,
        history: bool,
    },
    /// Standard SQL, as sqlparser parsed it.
    Standard(Box<Statement>),
}

impl SqlStatement {
    /// A short name for logs and errors, e.g. `CREATE TABLE`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            SqlStatement::CreateNamespace { .. } => "CREATE NAMESPACE",
            SqlStatement::DropNamespace { .. } => "DROP NAMESPACE",
            SqlStatement::ShowNamespaces => "SHOW NAMESPACES",
            SqlStatement::UseNamespace { .. } => "USE",
            SqlStatement::CreateTable(_) => "CREATE TABLE",
            SqlStatement::DropTable { .. } => "DROP TABLE",
            SqlStatement::ShowTables { .. } => "SHOW TABLES",
            SqlStatement::DescribeTable { .. } => "DESCRIBE TABLE",
            SqlStatement::Standard(s) => match s.as_ref() {
                Statement::Query(_) => "SELECT",
                Statement::Insert(_) => "INSERT",
                Statement::Update(_) => "UPDATE",
                Statement::Delete(_) => "DELETE",
                Statement::Explain { .. } => "EXPLAIN",
                _ => "statement",
            },
        }
    }
}
