//! Adapts a [`SystemTable`] to DataFusion: builds its rows for the caller at
//! scan time and serves them from memory with projection applied.

use crate::error::CoreError;
use crate::query_scope::QueryScope;
use crate::system_tables::SystemTable;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

#[derive(Debug)]
pub struct SystemTableProvider {
    table: Arc<dyn SystemTable>,
    scope: Option<Arc<QueryScope>>,
}

impl SystemTableProvider {
    pub fn new(table: Arc<dyn SystemTable>, scope: Option<Arc<QueryScope>>) -> Self {
        Self { table, scope }
    }
}

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.table.narrows_by(f) {
                true => TableProviderFilterPushDown::Inexact,
                false => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scope = self.scope.as_ref().ok_or_else(|| {
            DataFusionError::External(Box::new(CoreError::Internal(
                "system table scanned outside a query scope".into(),
            )))
        })?;
        let batch = self
            .table
            .scan_filtered(scope, filters)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema(),
            projection.cloned(),
        )?)
    }
}
