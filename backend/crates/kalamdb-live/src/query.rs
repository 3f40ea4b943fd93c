//! A live query: the SELECT a client subscribes with, checked and compiled
//! once — which table and whose rows, which columns, and its WHERE as a
//! DataFusion physical expression — then evaluated on each committed change.

use crate::error::LiveError;
use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use kalamdb_commons::TableType;
use kalamdb_commons::snowflake::first_id_at;
use kalamdb_core::providers::key_range::KeyRead;
use kalamdb_core::providers::row_table::key_read_of;
use kalamdb_core::providers::scan::ScanTarget;
use kalamdb_core::row_reader::RowReader;
use kalamdb_core::rows::json::append_rows;
use kalamdb_core::rows::{BatchBuilder, OutputColumn};
use kalamdb_core::schema::CachedTable;
use kalamdb_core::table_store::RowScope;
use kalamdb_core::write_set::{ChangeOp, WriteSet};
use kalamdb_core::{AppContext, ExecutionContext};
use kalamdb_sql::parsers::{normalize, parse_qualified_name_from};
use kalamdb_sql::sqlparser::ast::{Expr, SelectItem, Statement, TableFactor};
use kalamdb_sql::{SqlStatement, has_subquery, parse_sql_with_limits, plain_select};
use kalamdb_store::row::RowView;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

/// A row as a live client receives it: column name → value, `_seq` always
/// included (as a string, like every 64-bit integer in rows).
pub type LiveRow = Map<String, Json>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        }
    }
}

/// One change as a subscriber sees it: rows entering the WHERE arrive as
/// inserts, rows leaving it as deletes.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveChange {
    pub kind: ChangeKind,
    /// The row's storage key: how an initial load recognises a row it
    /// already holds.
    pub key: Vec<u8>,
    /// The `_seq` the change was committed with.
    pub seq: i64,
    /// The row after the change (insert, update); shared by every
    /// subscriber the change goes to.
    pub row: Option<Arc<LiveRow>>,
    /// The row before it (update, delete).
    pub old: Option<Arc<LiveRow>>,
    /// The change's part of a `change` message, serialised once for every
    /// subscriber it goes to.
    pub wire: WireCache,
}

/// A lazily serialised form, shared by clones (not part of equality).
#[derive(Clone, Default)]
pub struct WireCache(Arc<std::sync::OnceLock<String>>);

impl PartialEq for WireCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for WireCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WireCache")
    }
}

impl LiveChange {
    /// `"change_type": …, "rows": […], "old_values": […]}`: everything of a
    /// `change` message after its `type` and `subscription_id`.
    pub fn wire_tail(&self) -> &str {
        self.wire.0.get_or_init(|| {
            let mut m = serde_json::Map::new();
            m.insert(
                "change_type".into(),
                Json::String(self.kind.as_str().into()),
            );
            if let Some(row) = &self.row {
                m.insert(
                    "rows".into(),
                    Json::Array(vec![Json::Object(row.as_ref().clone())]),
                );
            }
            if self.kind != ChangeKind::Insert
                && let Some(old) = &self.old
            {
                m.insert(
                    "old_values".into(),
                    Json::Array(vec![Json::Object(old.as_ref().clone())]),
                );
            }
            let text = Json::Object(m).to_string();
            // drop the opening brace: the message's head comes before it
            text[1..].to_string()
        })
    }

    /// An insert's row as JSON (the element of its `rows`), so consecutive
    /// inserts can share one `change` message.
    pub fn inserted_row_wire(&self) -> Option<&str> {
        if self.kind != ChangeKind::Insert {
            return None;
        }
        self.wire_tail()
            .strip_prefix(INSERT_TAIL_HEAD)
            .and_then(|rest| rest.strip_suffix("]}"))
    }
}

/// How an insert's `wire_tail` begins.
pub const INSERT_TAIL_HEAD: &str = "\"change_type\":\"insert\",\"rows\":[";

pub struct LiveQuery {
    pub table: Arc<CachedTable>,
    pub scope: RowScope,
    pub sql: String,
    /// Declared-column positions the SELECT list names.
    projection: Vec<usize>,
    /// The WHERE over declared columns, `_seq` and `_deleted`.
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// The keys a matching row can have (the key rule on the WHERE): the
    /// initial rows read only these. The key's columns never change, so a
    /// row outside them never matches, before or after a change.
    keys: KeyRead,
}

impl std::fmt::Debug for LiveQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveQuery").field("sql", &self.sql).finish()
    }
}

impl LiveQuery {
    /// Checks `sql` for the caller `ctx` and compiles it. What cannot be
    /// live (joins, aggregates, ORDER BY / LIMIT, subqueries…) is refused
    /// with `UNSUPPORTED`, never run unfiltered.
    pub fn compile(app: &AppContext, ctx: &ExecutionContext, sql: &str) -> Result<Self, LiveError> {
        let mut statements = parse_sql_with_limits(sql, &app.options.sql_limits)
            .map_err(|e| LiveError::invalid_sql(e.to_string()))?;
        if statements.len() != 1 {
            return Err(LiveError::invalid_sql(
                "A subscription is exactly one SELECT",
            ));
        }
        let SqlStatement::Standard(statement) = statements.remove(0).statement else {
            return Err(LiveError::unsupported("Only a SELECT can be subscribed to"));
        };
        let Statement::Query(query) = *statement else {
            return Err(LiveError::unsupported("Only a SELECT can be subscribed to"));
        };
        let select = plain_select(&query).map_err(|clause| {
            LiveError::unsupported(format!(
                "A live query cannot use {clause}: it reads one table with a WHERE and \
                 column names only"
            ))
        })?;
        let [from] = select.from.as_slice() else {
            return Err(LiveError::unsupported(
                "A live query reads exactly one table",
            ));
        };
        let TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } = &from.relation
        else {
            return Err(LiveError::unsupported(
                "A live query reads a table by its name (no alias, function or subquery)",
            ));
        };
        let name = parse_qualified_name_from(name).map_err(LiveError::invalid_sql)?;
        let table = app
            .schema_registry
            .resolve(ctx.namespace.as_str(), &name)
            .map_err(LiveError::from)?;
        kalamdb_core::table_access::authorize_table(ctx.role, &table.definition, false)
            .map_err(LiveError::from)?;
        let scope =
            RowScope::for_table(&table.definition, &ctx.user_id).map_err(LiveError::from)?;

        let mut projection = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) => {
                    projection.extend(0..table.definition.columns.len());
                }
                SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                    let column = normalize(ident);
                    if column == kalamdb_commons::SEQ_COLUMN {
                        continue; // always sent
                    }
                    projection.push(table.column_index(&column).map_err(LiveError::from)?);
                }
                other => {
                    return Err(LiveError::unsupported(format!(
                        "A live query's SELECT list names columns only (got {other}): \
                         expressions and aggregates cannot be kept live"
                    )));
                }
            }
        }
        let (filter, keys) = match &select.selection {
            None => (None, KeyRead::All),
            Some(expr) if has_subquery(expr) => {
                return Err(LiveError::unsupported(
                    "A live query's WHERE cannot contain a subquery",
                ));
            }
            Some(expr) => {
                let (physical, logical) = compile_filter(app, &table, expr)?;
                (Some(physical), key_read_of(&table, &logical))
            }
        };
        Ok(Self {
            table,
            scope,
            sql: sql.to_string(),
            projection,
            filter,
            keys,
        })
    }

    /// The keys its initial rows are read from.
    pub fn initial_keys(&self) -> &KeyRead {
        &self.keys
    }

    /// The columns its rows carry (declared, projected; `_seq` besides).
    pub fn schema(&self) -> datafusion::arrow::datatypes::Schema {
        self.table
            .schema
            .project(&self.projection)
            .unwrap_or_else(|_| self.table.schema.as_ref().clone())
    }

    /// What this query's subscriber sees of `set`, in commit order: each
    /// change classified by whether its old and new rows match the WHERE
    /// (both: update; only the old: delete; only the new: insert).
    pub fn changes_of(&self, set: &WriteSet) -> Result<Vec<LiveChange>, LiveError> {
        if set.table_id != self.table.definition.table_id || set.scope != self.scope {
            return Ok(Vec::new());
        }
        let n = set.changes.len();
        let new_batch = self.batch(set.changes.iter().map(|c| set.encode(c)))?;
        // old rows, where the change has them, and which change each is of
        let olds: Vec<(usize, Vec<u8>)> = set
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| set.encode_old(c).map(|bytes| (i, bytes)))
            .collect();
        let mut old_at = vec![None; n];
        for (j, (i, _)) in olds.iter().enumerate() {
            old_at[*i] = Some(j);
        }
        let old_batch = self.batch(olds.iter().map(|(_, bytes)| bytes.clone()))?;
        let new_match = self.matches(&new_batch)?;
        let old_match = self.matches(&old_batch)?;

        let kinds: Vec<Option<ChangeKind>> = (0..n)
            .map(|i| {
                let is = set.changes[i].op != ChangeOp::Delete && new_match[i];
                let was = old_at[i].is_some_and(|j| old_match[j]);
                match (was, is) {
                    (true, true) => Some(ChangeKind::Update),
                    (true, false) => Some(ChangeKind::Delete),
                    (false, true) => Some(ChangeKind::Insert),
                    (false, false) => None,
                }
            })
            .collect();
        if kinds.iter().all(Option::is_none) {
            return Ok(Vec::new());
        }
        let mut rows = self.json(&new_batch, |i| set.changes[i].seq)?;
        let mut old_rows = self.json(&old_batch, |j| set.changes[olds[j].0].seq)?;
        let mut out = Vec::new();
        for (i, kind) in kinds.into_iter().enumerate() {
            let Some(kind) = kind else { continue };
            let change = &set.changes[i];
            out.push(LiveChange {
                kind,
                key: change.key.clone(),
                seq: change.seq,
                row: (kind != ChangeKind::Delete).then(|| Arc::new(std::mem::take(&mut rows[i]))),
                old: match kind {
                    ChangeKind::Insert => None,
                    _ => old_at[i].map(|j| Arc::new(std::mem::take(&mut old_rows[j]))),
                },
                wire: WireCache::default(),
            });
        }
        Ok(out)
    }

    /// `RESUME_TOO_OLD` unless a resume from `from` (if given) is complete.
    fn check_resume(&self, app: &AppContext, from: Option<i64>) -> Result<(), LiveError> {
        match from {
            Some(from) if !self.can_resume_from(app, from)? => Err(LiveError::new(
                "RESUME_TOO_OLD",
                format!(
                    "Cannot resume from _seq {from}: rows deleted since may be purged already \
                     (past the deleted-row retention, or a STREAM table's rows removed or lost \
                     at a restart); subscribe again without \"from\""
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether a resume from cursor `from` can report every row deleted
    /// since: no soft-deleted row after it has been purged (Retention's
    /// horizon), no STREAM row it may hold removed for good since.
    pub fn can_resume_from(&self, app: &AppContext, from: i64) -> Result<bool, LiveError> {
        let def = &self.table.definition;
        // a cursor from before the table existed holds none of its rows
        if from < first_id_at(u64::try_from(def.created_at).unwrap_or(0)) {
            return Ok(true);
        }
        Ok(if def.table_type == TableType::Stream {
            app.streams.answers_from(def.table_id.0, &self.scope, from)
        } else {
            from >= app.meta.resume_horizon(def.table_id)?
        })
    }

    /// The rows a new subscription starts from, read after it registered
    /// (see [`Handover`]). `from`: only rows changed after that `_seq`, and
    /// a delete for every row deleted — or changed and no longer matching —
    /// after it. `last_rows`: only the newest N matching rows. At most
    /// `max_rows` rows (and deletes) are held: a read that would hold more
    /// fails with `BATCH_FETCH_FAILED` (narrow the WHERE, or use `last_rows`);
    /// rows are evaluated per chunk as they are read, so what the scan
    /// passes over and drops is never all in memory at once.
    pub fn initial_rows(
        &self,
        app: &AppContext,
        from: Option<i64>,
        last_rows: Option<usize>,
        max_rows: usize,
    ) -> Result<InitialRows, LiveError> {
        if let Some(n) = last_rows
            && n > max_rows
        {
            return Err(too_many_rows(max_rows));
        }
        self.check_resume(app, from)?;
        let reader = RowReader::new(
            Arc::clone(&self.table),
            app.table_store.clone(),
            &self.scope,
        );
        let mut held = Held {
            from,
            keep: last_rows.unwrap_or(max_rows),
            newest_only: last_rows.is_some(),
            max_rows,
            seen: HashMap::new(),
            rows: Vec::new(),
            deletes: Vec::new(),
        };
        // deleted rows too: what the handover must know was already seen;
        // only the keys a matching row can have
        let mut keys = Vec::new();
        let mut builder = self.builder()?;
        let mut failure: Option<LiveError> = None;
        let mut take = |key: &[u8], row: &RowView<'_>| -> kalamdb_core::CoreResult<bool> {
            keys.push(key.to_vec());
            builder.push(row)?;
            if keys.len() == INITIAL_CHUNK {
                let batch = builder.finish()?;
                if let Err(e) = self.hold(&mut held, std::mem::take(&mut keys), &batch) {
                    failure = Some(e);
                    return Ok(false);
                }
            }
            Ok(true)
        };
        match ScanTarget::of(self.keys.clone(), &reader) {
            ScanTarget::Keys(points) => {
                for key in &points {
                    reader.get_row(key, true, &mut |row| take(key, row).map(|_| ()))?;
                }
            }
            ScanTarget::Ranges(ranges) => {
                for (start, end) in &ranges {
                    reader.scan_range(start, end, false, true, &mut take)?;
                }
            }
            _ => reader.scan_rows(reader.start(), true, &mut take)?,
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if !keys.is_empty() {
            let batch = builder.finish()?;
            self.hold(&mut held, keys, &batch)?;
        }
        // again after the scan: a purge that began meanwhile raised the
        // horizon before removing anything
        self.check_resume(app, from)?;
        let Held {
            mut rows,
            mut deletes,
            seen,
            ..
        } = held;
        rows.sort_by_key(|(seq, _)| *seq);
        if let Some(n) = last_rows {
            let skip = rows.len().saturating_sub(n);
            rows.drain(..skip);
        }
        deletes.sort_by_key(|c| c.seq);
        let last_seq = seen.values().copied().max().unwrap_or(0);
        Ok(InitialRows {
            rows: rows.into_iter().map(|(_, row)| row).collect(),
            deletes,
            last_seq,
            handover: Handover { seen },
        })
    }

    /// Takes one chunk of the initial read: every key into the handover,
    /// the matching rows (and the deletes since `from`) into `held`.
    fn hold(
        &self,
        held: &mut Held,
        keys: Vec<Vec<u8>>,
        batch: &RecordBatch,
    ) -> Result<(), LiveError> {
        let matching = self.matches(batch)?;
        let seqs = seq_column(batch)?;
        let deleted = deleted_column(batch)?;
        let mut json = self.json(batch, |i| seqs[i])?;
        let from = held.from;
        for (i, key) in keys.into_iter().enumerate() {
            let changed_after = from.is_some_and(|f| seqs[i] > f);
            if !deleted[i] && matching[i] && from.is_none_or(|f| seqs[i] > f) {
                held.rows.push((seqs[i], std::mem::take(&mut json[i])));
            } else if changed_after {
                // gone, or no longer matching, since the cursor
                held.deletes.push(LiveChange {
                    kind: ChangeKind::Delete,
                    key: key.clone(),
                    seq: seqs[i],
                    row: None,
                    old: Some(Arc::new(std::mem::take(&mut json[i]))),
                    wire: WireCache::default(),
                });
            }
            held.seen.insert(key, seqs[i]);
        }
        if held.newest_only && held.rows.len() > 2 * held.keep.max(INITIAL_CHUNK) {
            // only the newest `keep` can be sent: the rest go now
            held.rows.sort_by_key(|(seq, _)| *seq);
            let skip = held.rows.len() - held.keep;
            held.rows.drain(..skip);
        }
        let holding = held.deletes.len() + if held.newest_only { 0 } else { held.rows.len() };
        if holding > held.max_rows {
            return Err(too_many_rows(held.max_rows));
        }
        Ok(())
    }

    /// The rows as a batch of declared columns, `_seq` and `_deleted`.
    fn batch(&self, rows: impl Iterator<Item = Vec<u8>>) -> Result<RecordBatch, LiveError> {
        let mut builder = self.builder()?;
        for bytes in rows {
            builder.push(&RowView::decode(&bytes).map_err(kalamdb_core::CoreError::from)?)?;
        }
        Ok(builder.finish()?)
    }

    /// A builder of batches of declared columns, `_seq` and `_deleted`.
    fn builder(&self) -> Result<BatchBuilder, LiveError> {
        let def = &self.table.definition;
        let mut columns: Vec<OutputColumn> =
            def.columns.iter().map(OutputColumn::declared).collect();
        columns.push(OutputColumn::Seq);
        columns.push(OutputColumn::Deleted);
        let mut missing = self.table.backfill.clone();
        missing.extend([None, None]);
        Ok(
            BatchBuilder::new(Arc::clone(&self.table.schema_with_system), columns, 0)?
                .with_missing(missing),
        )
    }

    /// Per row of `batch`: whether it satisfies the WHERE (NULL does not).
    fn matches(&self, batch: &RecordBatch) -> Result<Vec<bool>, LiveError> {
        let Some(filter) = &self.filter else {
            return Ok(vec![true; batch.num_rows()]);
        };
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let array = filter
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| LiveError::failed(format!("evaluating the WHERE: {e}")))?;
        let bools = array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| LiveError::failed("the WHERE is not a boolean"))?;
        Ok((0..bools.len())
            .map(|i| bools.is_valid(i) && bools.value(i))
            .collect())
    }

    /// The projected rows of `batch` as JSON objects, each with the `_seq`
    /// of its change (for an old row too: the point the client has seen).
    fn json(
        &self,
        batch: &RecordBatch,
        seq_of: impl Fn(usize) -> i64,
    ) -> Result<Vec<LiveRow>, LiveError> {
        let projected = batch
            .project(&self.projection)
            .map_err(|e| LiveError::failed(e.to_string()))?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        append_rows(&projected, &mut rows);
        let names = self
            .projection
            .iter()
            .map(|&i| self.table.definition.columns[i].name.as_str());
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(r, values)| {
                let mut row: LiveRow = names.clone().map(str::to_string).zip(values).collect();
                row.insert(
                    kalamdb_commons::SEQ_COLUMN.into(),
                    Json::String(seq_of(r).to_string()),
                );
                row
            })
            .collect())
    }
}

/// Rows of the initial read evaluated per Arrow batch.
const INITIAL_CHUNK: usize = 1024;

/// What the initial read holds so far.
struct Held {
    from: Option<i64>,
    /// With `last_rows`, how many newest rows are kept; else the bound.
    keep: usize,
    newest_only: bool,
    max_rows: usize,
    seen: HashMap<Vec<u8>, i64>,
    rows: Vec<(i64, LiveRow)>,
    deletes: Vec<LiveChange>,
}

fn too_many_rows(max_rows: usize) -> LiveError {
    LiveError::new(
        "BATCH_FETCH_FAILED",
        format!(
            "A subscription starts with at most {max_rows} rows \
             (websocket.max_initial_rows): narrow its WHERE, or ask for the newest with last_rows"
        ),
    )
}

fn seq_column(batch: &RecordBatch) -> Result<Vec<i64>, LiveError> {
    let n = batch.num_columns();
    batch
        .column(n - 2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .map(|a| a.values().to_vec())
        .ok_or_else(|| LiveError::failed("_seq is not a BIGINT"))
}

fn deleted_column(batch: &RecordBatch) -> Result<Vec<bool>, LiveError> {
    let n = batch.num_columns();
    batch
        .column(n - 1)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .map(|a| (0..a.len()).map(|i| a.value(i)).collect())
        .ok_or_else(|| LiveError::failed("_deleted is not a BOOLEAN"))
}

/// What a new subscription starts from.
#[derive(Debug)]
pub struct InitialRows {
    /// The matching rows, oldest `_seq` first.
    pub rows: Vec<LiveRow>,
    /// With `from`: a delete for every row gone or no longer matching since
    /// the cursor, in `_seq` order.
    pub deletes: Vec<LiveChange>,
    /// The highest `_seq` the read saw (0 for an empty table).
    pub last_seq: i64,
    pub handover: Handover,
}

/// The hand-over from the initial rows to the stream: the subscription
/// registered before the read, so its queue may hold changes the read
/// already reflects. A change is in the read exactly when the read saw its
/// row at that `_seq` or a later one (`_seq` order is commit order); every
/// other queued change is delivered. So no change is both in the initial
/// rows and delivered, and none is in neither.
#[derive(Debug, Default)]
pub struct Handover {
    /// Storage key → the `_seq` the read saw it at (deleted rows included).
    seen: HashMap<Vec<u8>, i64>,
}

impl Handover {
    /// How many keys the read saw.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Whether `change`, queued while the initial rows were read, is news
    /// to a client holding them.
    pub fn admits(&self, change: &LiveChange) -> bool {
        self.seen
            .get(&change.key)
            .is_none_or(|&seen| seen < change.seq)
    }
}

/// The WHERE as a physical expression over the table's columns, `_seq` and
/// `_deleted`, planned by the session's own rules (so it means what it
/// means in a SELECT: coercions, IN, LIKE, functions).
fn compile_filter(
    app: &AppContext,
    table: &CachedTable,
    expr: &Expr,
) -> Result<(Arc<dyn PhysicalExpr>, datafusion::logical_expr::Expr), LiveError> {
    let schema = DFSchema::try_from(table.schema_with_system.as_ref().clone())
        .map_err(|e| LiveError::failed(e.to_string()))?;
    let state = app.session_state();
    let logical = state
        .create_logical_expr(&expr.to_string(), &schema)
        .map_err(|e| LiveError::from(kalamdb_core::CoreError::from(e)))?;
    let physical = state
        .create_physical_expr(logical.clone(), &schema)
        .map_err(|e| LiveError::from(kalamdb_core::CoreError::from(e)))?;
    let data_type = physical
        .data_type(table.schema_with_system.as_ref())
        .map_err(|e| LiveError::invalid_sql(e.to_string()))?;
    if data_type != datafusion::arrow::datatypes::DataType::Boolean {
        return Err(LiveError::invalid_sql(format!(
            "A WHERE must be a boolean condition, not {data_type}"
        )));
    }
    Ok((physical, logical))
}
