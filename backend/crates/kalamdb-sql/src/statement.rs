//! The parsed form of every statement KalamDB runs.

use datafusion::sql::sqlparser;
use kalamdb_commons::definition::TableOptions;
use kalamdb_commons::password::Secret;
use kalamdb_commons::{KalamDataType, Role, TableType};
use sqlparser::ast::Statement;

/// The options of CREATE / ALTER STORAGE, as written (checked by the
/// executor). `credentials` never shows in `Debug`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageOptions {
    pub storage_type: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub path: Option<String>,
    pub shared_tables_template: Option<String>,
    pub user_tables_template: Option<String>,
    /// A JSON object of object_store options.
    pub config: Option<String>,
    /// A JSON object of secret options.
    pub credentials: Option<Secret>,
}

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
    /// A `UNIQUE` column constraint.
    pub unique: bool,
}

/// A table-level `[CONSTRAINT name] UNIQUE (columns)`.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueSpec {
    pub name: Option<String>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTableStatement {
    pub table: QualifiedName,
    pub table_type: TableType,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnSpec>,
    /// The primary key's columns in key order (those flagged `primary_key`);
    /// empty for a table keyed by `_seq`.
    pub primary_key: Vec<String>,
    /// Table-level UNIQUE constraints.
    pub unique: Vec<UniqueSpec>,
    pub options: TableOptions,
}

/// How a new user authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAuth {
    Password(Secret),
    /// No password; localhost only.
    Internal,
}

/// One change of `ALTER USER`.
#[derive(Debug, Clone, PartialEq)]
pub enum UserChange {
    Password(Secret),
    Role(Role),
    Email(String),
    AllowRemote(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SqlStatement {
    CreateUser {
        name: String,
        if_not_exists: bool,
        auth: UserAuth,
        role: Role,
        email: Option<String>,
        allow_remote: bool,
    },
    AlterUser {
        name: String,
        change: UserChange,
    },
    DropUser {
        name: String,
        if_exists: bool,
    },
    /// `KILL JOB 'id'` / `CANCEL JOB 'id'`
    KillJob {
        job_id: String,
    },
    /// `SUBSCRIBE TO <select>` / `LIVE SELECT …`: over HTTP, how to
    /// subscribe (live queries run over the WebSocket).
    Subscribe {
        select: String,
    },
    /// `KILL LIVE QUERY 'id'`
    KillLiveQuery {
        live_id: String,
    },
    /// `[STORAGE] FLUSH TABLE [ns.]t`
    FlushTable {
        table: QualifiedName,
    },
    /// `STORAGE FLUSH ALL [IN ns]` / `FLUSH ALL TABLES [IN ns]`
    FlushAll {
        namespace: Option<String>,
    },
    /// `STORAGE COMPACT TABLE [ns.]t`
    CompactTable {
        table: QualifiedName,
    },
    /// `STORAGE COMPACT ALL [IN ns]`
    CompactAll {
        namespace: Option<String>,
    },
    /// `BACKUP DATABASE [ns] TO 'path'`
    BackupDatabase {
        namespace: Option<String>,
        path: String,
    },
    /// `RESTORE DATABASE [ns] FROM 'path' [WITH OVERWRITE]`
    RestoreDatabase {
        namespace: Option<String>,
        path: String,
        /// Tables the backup holds replace tables of the same name.
        overwrite: bool,
    },
    /// `SHOW BACKUPS`
    ShowBackups,
    /// `EXECUTE AS USER 'name' ( <one statement> )`
    ExecuteAsUser {
        user: String,
        statement: Box<SqlStatement>,
    },
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
    /// `SHOW STATS FOR TABLE t`
    ShowStats {
        table: QualifiedName,
    },
    ShowStorages,
    /// `CREATE STORAGE [IF NOT EXISTS] id <options>`
    CreateStorage {
        storage_id: String,
        if_not_exists: bool,
        options: StorageOptions,
    },
    /// `ALTER STORAGE id SET <options>`
    AlterStorage {
        storage_id: String,
        options: StorageOptions,
    },
    /// `DROP STORAGE [IF EXISTS] id`
    DropStorage {
        storage_id: String,
        if_exists: bool,
    },
    /// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (columns)`
    CreateIndex {
        /// `None`: named after the table and columns.
        name: Option<String>,
        table: QualifiedName,
        columns: Vec<String>,
        unique: bool,
        if_not_exists: bool,
    },
    /// `DROP INDEX [IF EXISTS] [ns.]name [ON t]`
    DropIndex {
        index: QualifiedName,
        table: Option<QualifiedName>,
        if_exists: bool,
    },
    /// `SHOW INDEXES [FROM t]`
    ShowIndexes {
        table: Option<QualifiedName>,
    },
    DescribeTable {
        table: QualifiedName,
        history: bool,
    },
    /// Standard SQL, as sqlparser parsed it.
    Standard(Box<Statement>),
}

impl SqlStatement {
    /// The standard SQL statement this is or wraps (`EXECUTE AS USER`).
    pub fn standard(&self) -> Option<&Statement> {
        match self {
            SqlStatement::Standard(s) => Some(s),
            SqlStatement::ExecuteAsUser { statement, .. } => statement.standard(),
            _ => None,
        }
    }

    /// A short name for logs and errors, e.g. `CREATE TABLE`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            SqlStatement::CreateUser { .. } => "CREATE USER",
            SqlStatement::AlterUser { .. } => "ALTER USER",
            SqlStatement::DropUser { .. } => "DROP USER",
            SqlStatement::ExecuteAsUser { .. } => "EXECUTE AS USER",
            SqlStatement::KillJob { .. } => "KILL JOB",
            SqlStatement::Subscribe { .. } => "SUBSCRIBE",
            SqlStatement::KillLiveQuery { .. } => "KILL LIVE QUERY",
            SqlStatement::FlushTable { .. } => "FLUSH TABLE",
            SqlStatement::FlushAll { .. } => "FLUSH ALL",
            SqlStatement::CompactTable { .. } => "COMPACT TABLE",
            SqlStatement::CompactAll { .. } => "COMPACT ALL",
            SqlStatement::BackupDatabase { .. } => "BACKUP DATABASE",
            SqlStatement::RestoreDatabase { .. } => "RESTORE DATABASE",
            SqlStatement::ShowBackups => "SHOW BACKUPS",
            SqlStatement::CreateNamespace { .. } => "CREATE NAMESPACE",
            SqlStatement::DropNamespace { .. } => "DROP NAMESPACE",
            SqlStatement::ShowNamespaces => "SHOW NAMESPACES",
            SqlStatement::UseNamespace { .. } => "USE",
            SqlStatement::CreateTable(_) => "CREATE TABLE",
            SqlStatement::DropTable { .. } => "DROP TABLE",
            SqlStatement::ShowTables { .. } => "SHOW TABLES",
            SqlStatement::DescribeTable { .. } => "DESCRIBE TABLE",
            SqlStatement::ShowStats { .. } => "SHOW STATS",
            SqlStatement::ShowStorages => "SHOW STORAGES",
            SqlStatement::CreateStorage { .. } => "CREATE STORAGE",
            SqlStatement::AlterStorage { .. } => "ALTER STORAGE",
            SqlStatement::DropStorage { .. } => "DROP STORAGE",
            SqlStatement::CreateIndex { .. } => "CREATE INDEX",
            SqlStatement::DropIndex { .. } => "DROP INDEX",
            SqlStatement::ShowIndexes { .. } => "SHOW INDEXES",
            SqlStatement::Standard(s) => match s.as_ref() {
                Statement::Query(_) => "SELECT",
                Statement::Insert(_) => "INSERT",
                Statement::Update(_) => "UPDATE",
                Statement::Delete(_) => "DELETE",
                Statement::Explain { .. } => "EXPLAIN",
                Statement::AlterTable(_) => "ALTER TABLE",
                _ => "statement",
            },
        }
    }
}
