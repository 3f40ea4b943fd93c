//! The DataFusion catalog: namespaces are schemas, plus `system`. Tables are
//! looked up in the [`SchemaRegistry`] on every resolution, so DDL is visible
//! to the next statement without re-registering anything.
//!
//! Each query runs on a catalog bound to its caller ([`KalamCatalog::scoped`],
//! installed through [`ScopedCatalogs`]), so every provider it hands out, and
//! every listing it answers (`information_schema` included, which DataFusion
//! reads at execution time, possibly on other tasks), is the caller's. The
//! unbound catalog lists only what the least privileged role may read and
//! its tables scan nothing.

use super::row_table::RowTableProvider;
use super::system_table::SystemTableProvider;
use crate::error::CoreError;
use crate::query_scope::QueryScope;
use crate::schema::SchemaRegistry;
use crate::system_tables::SystemTablesRegistry;
use crate::table_store::{RowScope, TableStore};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use kalamdb_commons::{Role, SYSTEM_NAMESPACE};
use std::sync::Arc;

#[derive(Clone)]
struct Shared {
    registry: Arc<SchemaRegistry>,
    system: Arc<SystemTablesRegistry>,
    store: TableStore,
    /// The caller every provider of this catalog is bound to.
    scope: Option<Arc<QueryScope>>,
    /// Names of DataFusion's table functions (`generate_series`, `range`…):
    /// not tables, so not missing ones.
    table_functions: Arc<std::collections::HashSet<String>>,
}

#[derive(Clone)]
pub struct KalamCatalog {
    shared: Shared,
}

impl std::fmt::Debug for KalamCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KalamCatalog")
    }
}

impl KalamCatalog {
    pub fn new(
        registry: Arc<SchemaRegistry>,
        system: Arc<SystemTablesRegistry>,
        store: TableStore,
    ) -> Self {
        Self {
            shared: Shared {
                registry,
                system,
                store,
                scope: None,
                table_functions: Arc::new(
                    datafusion::execution::SessionStateDefaults::default_table_functions()
                        .iter()
                        .map(|f| f.name().to_string())
                        .collect(),
                ),
            },
        }
    }

    /// This catalog, bound to one caller and the row store it sees (its
    /// transaction's, inside BEGIN … COMMIT).
    pub fn scoped(&self, scope: Arc<QueryScope>, store: TableStore) -> Self {
        let mut shared = self.shared.clone();
        shared.scope = Some(scope);
        shared.store = store;
        Self { shared }
    }
}

/// The catalog list of one query: just its caller-bound catalog.
#[derive(Debug)]
pub struct ScopedCatalogs {
    catalog: Arc<KalamCatalog>,
}

impl ScopedCatalogs {
    pub fn new(catalog: KalamCatalog) -> Self {
        Self {
            catalog: Arc::new(catalog),
        }
    }
}

impl CatalogProviderList for ScopedCatalogs {
    /// Catalogs are fixed: nothing is registered through DataFusion.
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![super::CATALOG_NAME.to_string()]
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        (name == super::CATALOG_NAME).then(|| Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>)
    }
}

impl CatalogProvider for KalamCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .registry
            .namespaces()
            .into_iter()
            .map(|n| n.name.to_string())
            .collect();
        names.push(SYSTEM_NAMESPACE.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_NAMESPACE {
            return Some(Arc::new(SystemSchema {
                shared: self.shared.clone(),
            }));
        }
        // A namespace that does not exist still resolves, so that naming a
        // table in it fails as TABLE_NOT_FOUND (see `missing`).
        Some(Arc::new(NamespaceSchema {
            namespace: name.to_string(),
            shared: self.shared.clone(),
        }))
    }
}

struct NamespaceSchema {
    namespace: String,
    shared: Shared,
}

impl std::fmt::Debug for NamespaceSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NamespaceSchema({})", self.namespace)
    }
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    /// Only the tables the caller may read (outside any query scope: what
    /// the least privileged role may read), so `information_schema` lists
    /// nothing a caller cannot query.
    fn table_names(&self) -> Vec<String> {
        let role = self.shared.scope.as_ref().map_or(Role::User, |s| s.role);
        let mut tables = self.shared.registry.tables(Some(&self.namespace));
        tables.retain(|t| crate::table_access::may_access_table(role, &t.definition, false));
        tables
            .iter()
            .map(|t| t.definition.name.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.shared.registry.get_table(&self.namespace, name) else {
            if self.shared.table_functions.contains(name) {
                // a table function's call: DataFusion's to answer
                return Ok(None);
            }
            return Err(missing(&self.namespace, name));
        };
        let scope = self.shared.scope.as_ref();
        // A table the caller may not read still describes itself (so catalog
        // listings such as information_schema work); its scan is refused.
        let denied = scope.as_ref().and_then(|s| {
            crate::table_access::authorize_table(s.role, &table.definition, false).err()
        });
        let row_scope = scope
            .as_ref()
            .and_then(|s| RowScope::for_table(&table.definition, &s.user_id).ok());
        let with_system = scope.as_ref().is_some_and(|s| s.include_system_columns);
        let provider =
            RowTableProvider::new(table, self.shared.store.clone(), row_scope, with_system);
        Ok(Some(Arc::new(match denied {
            Some(e) => provider.denied(e),
            None => provider,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared
            .registry
            .get_table(&self.namespace, name)
            .is_some()
    }
}

/// The error a query naming `namespace.name` that does not exist gets (its
/// namespace missing too), as a typed [`CoreError`] DataFusion carries back
/// to us unchanged.
fn missing(namespace: &str, name: &str) -> DataFusionError {
    DataFusionError::External(Box::new(CoreError::TableNotFound(format!(
        "{namespace}.{name}"
    ))))
}

struct SystemSchema {
    shared: Shared,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemSchema")
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        self.shared.system.names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.shared.system.get(name) else {
            return Err(missing(SYSTEM_NAMESPACE, name));
        };
        Ok(Some(Arc::new(SystemTableProvider::new(
            table,
            self.shared.scope.clone(),
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared.system.get(name).is_some()
    }
}
