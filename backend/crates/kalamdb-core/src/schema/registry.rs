//! The [`SchemaRegistry`]: namespaces and table definitions cached in memory
//! over their persisted form in the `meta` partition.
//!
//! Writers persist first and then swap the cached entry, both under the DDL
//! lock, so a reader sees either the old or the new definition, never a mix.
//! Lookups are two hash probes by `&str`, with no allocation.

use super::CachedTable;
use crate::error::{CoreError, CoreResult};
use crate::indexes::IndexCatalog;
use crate::meta_store::{MetaStore, NamespaceRecord};
use crate::stream_store::StreamTables;
use dashmap::DashMap;
use kalamdb_commons::TableDefinition;
use kalamdb_store::Batch;
use std::sync::Arc;

#[derive(Debug)]
struct NamespaceEntry {
    record: NamespaceRecord,
    tables: DashMap<String, Arc<CachedTable>>,
}

pub struct SchemaRegistry {
    meta: MetaStore,
    /// Every table's indexes, for the write funnel.
    indexes: Arc<IndexCatalog>,
    /// Where STREAM tables' rows go (told of each one as it appears).
    streams: Arc<StreamTables>,
    namespaces: DashMap<String, Arc<NamespaceEntry>>,
}

impl SchemaRegistry {
    /// Loads every namespace and table definition from the metadata store.
    pub fn load(meta: MetaStore, streams: Arc<StreamTables>) -> CoreResult<Self> {
        let registry = Self {
            indexes: Arc::default(),
            namespaces: DashMap::new(),
            meta,
            streams,
        };
        for record in registry.meta.namespaces()? {
            registry.cache_namespace(record);
        }
        for def in registry.meta.tables()? {
            let entry = registry
                .namespace_entry(def.namespace.as_str())
                .ok_or_else(|| {
                    CoreError::Internal(format!(
                        "table {}.{} belongs to a missing namespace",
                        def.namespace, def.name
                    ))
                })?;
            registry.streams.register(&def);
            registry.indexes.set(&def);
            entry
                .tables
                .insert(def.name.clone(), Arc::new(CachedTable::new(def)));
        }
        Ok(registry)
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// Every table's indexes, as the write funnel maintains them.
    pub fn indexes(&self) -> &Arc<IndexCatalog> {
        &self.indexes
    }

    fn namespace_entry(&self, name: &str) -> Option<Arc<NamespaceEntry>> {
        self.namespaces.get(name).map(|e| Arc::clone(e.value()))
    }

    fn cache_namespace(&self, record: NamespaceRecord) {
        self.namespaces.insert(
            record.name.as_str().to_string(),
            Arc::new(NamespaceEntry {
                record,
                tables: DashMap::new(),
            }),
        );
    }

    /// The live table with id `id` (a scan: for jobs, not request paths).
    pub fn table_by_id(&self, id: kalamdb_commons::TableId) -> Option<Arc<CachedTable>> {
        self.tables(None)
            .into_iter()
            .find(|t| t.definition.table_id == id)
    }

    pub fn get_table(&self, namespace: &str, table: &str) -> Option<Arc<CachedTable>> {
        let ns = self.namespaces.get(namespace)?;
        ns.tables.get(table).map(|t| Arc::clone(t.value()))
    }

    /// The USER/SHARED/STREAM table `[ns.]t` names in a session whose
    /// namespace is `session_namespace`: the one table resolution every
    /// statement uses, with its errors.
    pub fn resolve(
        &self,
        session_namespace: &str,
        name: &kalamdb_sql::QualifiedName,
    ) -> CoreResult<Arc<CachedTable>> {
        let ns = name.namespace.as_deref().unwrap_or(session_namespace);
        match self.get_table(ns, &name.name) {
            Some(t) => Ok(t),
            None if !self.namespace_exists(ns) => Err(CoreError::NamespaceNotFound(ns.into())),
            None => Err(CoreError::TableNotFound(format!("{ns}.{}", name.name))),
        }
    }

    pub fn namespace_exists(&self, name: &str) -> bool {
        self.namespaces.contains_key(name)
    }

    /// Namespaces, sorted by name.
    pub fn namespaces(&self) -> Vec<NamespaceRecord> {
        let mut out: Vec<_> = self
            .namespaces
            .iter()
            .map(|e| e.value().record.clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Tables of one namespace (or of all, with `None`), sorted by name.
    pub fn tables(&self, namespace: Option<&str>) -> Vec<Arc<CachedTable>> {
        let mut out: Vec<Arc<CachedTable>> = match namespace {
            Some(ns) => self
                .namespace_entry(ns)
                .map(|e| e.tables.iter().map(|t| Arc::clone(t.value())).collect())
                .unwrap_or_default(),
            None => self
                .namespaces
                .iter()
                .flat_map(|e| {
                    e.value()
                        .tables
                        .iter()
                        .map(|t| Arc::clone(t.value()))
                        .collect::<Vec<_>>()
                })
                .collect(),
        };
        out.sort_by(|a, b| {
            (a.definition.namespace.as_str(), a.definition.name.as_str())
                .cmp(&(b.definition.namespace.as_str(), b.definition.name.as_str()))
        });
        out
    }

    pub fn table_names(&self, namespace: &str) -> Vec<String> {
        self.namespace_entry(namespace)
            .map(|e| e.tables.iter().map(|t| t.key().clone()).collect())
            .unwrap_or_default()
    }

    /// Persists `batch` (which must hold the namespace record) and caches it.
    pub fn commit_namespace(&self, batch: Batch, record: NamespaceRecord) -> CoreResult<()> {
        self.meta.backend().write(batch)?;
        self.cache_namespace(record);
        Ok(())
    }

    /// Persists `batch` (which must delete the namespace and all its tables)
    /// and forgets them.
    pub fn commit_drop_namespace(&self, batch: Batch, name: &str) -> CoreResult<()> {
        self.meta.backend().write(batch)?;
        if let Some((_, entry)) = self.namespaces.remove(name) {
            for table in entry.tables.iter() {
                self.indexes.remove(table.definition.table_id);
            }
        }
        Ok(())
    }

    /// Persists `batch` (which must hold the definition) and caches it.
    pub fn commit_table(&self, batch: Batch, def: TableDefinition) -> CoreResult<Arc<CachedTable>> {
        let entry = self
            .namespace_entry(def.namespace.as_str())
            .ok_or_else(|| CoreError::NamespaceNotFound(def.namespace.to_string()))?;
        self.streams.register(&def);
        self.meta.backend().write(batch)?;
        self.indexes.set(&def);
        let cached = Arc::new(CachedTable::new(def));
        entry
            .tables
            .insert(cached.definition.name.clone(), Arc::clone(&cached));
        Ok(cached)
    }

    /// Persists `batch` (which must delete the table) and forgets it.
    pub fn commit_drop_table(&self, batch: Batch, namespace: &str, table: &str) -> CoreResult<()> {
        self.meta.backend().write(batch)?;
        if let Some(entry) = self.namespace_entry(namespace)
            && let Some((_, dropped)) = entry.tables.remove(table)
        {
            self.indexes.remove(dropped.definition.table_id);
        }
        Ok(())
    }
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("namespaces", &self.namespaces.len())
            .finish()
    }
}
