//! Reads of a table whose primary key has two columns: the leading column
//! pinned gives one range of the key (read either way, never sorted), a
//! later column alone restricts nothing, and a sort the key order does not
//! give still runs.

use super::plan_tests::{column, context_with, plan_of};
use super::*;
use crate::write_set::{ChangeOp, Read, RowChange, WriteSet};
use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::prelude::SessionContext;
use kalamdb_commons::{
    KalamDataType, NamespaceId, TableDefinition, TableId, TableOptions, TableType, Value,
};
use kalamdb_store::{RocksDbBackend, RocksDbOptions};

/// `t (room TEXT, id BIGINT, v TEXT, PRIMARY KEY (room, id))` holding rooms
/// r0..r4 × ids 0..50, v = "v{id}".
async fn fixture() -> (tempfile::TempDir, SessionContext) {
    let table = Arc::new(CachedTable::new(TableDefinition {
        table_id: TableId(11),
        namespace: NamespaceId::new("app"),
        name: "t".into(),
        table_type: TableType::Shared,
        columns: vec![
            column(1, "room", KalamDataType::Text, true),
            column(2, "id", KalamDataType::BigInt, true),
            column(3, "v", KalamDataType::Text, false),
        ],
        schema_version: 1,
        options: TableOptions::default(),
        created_at: 0,
        indexes: Vec::new(),
        next_index_id: 1,
        key_columns: vec![1, 2],
    }));
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let store = TableStore::new(backend);
    let mut set = WriteSet::new(&table.definition, RowScope::Shared);
    // written out of key order: storage orders them
    for id in (0..50).rev() {
        for room in 0..5 {
            let values = vec![
                Value::Text(format!("r{room}")),
                Value::Int64(id),
                Value::Text(format!("v{id}")),
            ];
            set.push(RowChange {
                op: ChangeOp::Insert,
                key: set.key_of_row(&values).unwrap(),
                moved_from: None,
                seq: 1000 + set.len() as i64,
                values,
                old_values: None,
                read: Read::Nothing,
            });
        }
    }
    let mut batch = kalamdb_store::Batch::new();
    set.to_batch(&mut batch, &Default::default()).unwrap();
    store.write(batch).unwrap();
    let provider = RowTableProvider::new(table, store, Some(RowScope::Shared), false);
    (dir, context_with(provider))
}

/// The `(room, id)` of every row `sql` (selecting room, id first) returns.
async fn rows_of(ctx: &SessionContext, sql: &str) -> Vec<(String, i64)> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let rooms = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let ids = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            out.push((rooms.value(i).to_string(), ids.value(i)));
        }
    }
    out
}

fn rows(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(r, i)| (r.to_string(), *i)).collect()
}

#[tokio::test]
async fn the_leading_column_pinned_reads_one_range_in_either_direction() {
    let (_dir, ctx) = fixture().await;
    let sql = "SELECT room, id FROM t WHERE room = 'r2' ORDER BY id DESC LIMIT 3";
    let plan = plan_of(&ctx, sql).await;
    assert!(!plan.contains("SortExec"), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
    assert!(plan.contains("read=range"), "{plan}");
    assert!(plan.contains("reverse, fetch=3"), "{plan}");
    assert_eq!(
        rows_of(&ctx, sql).await,
        rows(&[("r2", 49), ("r2", 48), ("r2", 47)])
    );

    // the pinned column in the sort changes nothing
    let sql = "SELECT room, id FROM t WHERE room = 'r1' ORDER BY room, id DESC LIMIT 2";
    let plan = plan_of(&ctx, sql).await;
    assert!(!plan.contains("SortExec"), "{plan}");
    assert_eq!(rows_of(&ctx, sql).await, rows(&[("r1", 49), ("r1", 48)]));

    // a filter on another column between scan and sort: still no sort
    let sql = "SELECT room, id, v FROM t WHERE room = 'r3' AND v < 'v2' ORDER BY id DESC LIMIT 2";
    let plan = plan_of(&ctx, sql).await;
    assert!(!plan.contains("SortExec"), "{plan}");
    assert_eq!(rows_of(&ctx, sql).await, rows(&[("r3", 19), ("r3", 18)]));

    // a keyset page inside the room
    let sql = "SELECT room, id FROM t WHERE room = 'r0' AND id > 10 ORDER BY id LIMIT 2";
    let plan = plan_of(&ctx, sql).await;
    assert!(plan.contains("read=range"), "{plan}");
    assert!(
        !plan.contains("SortExec") && !plan.contains("FilterExec"),
        "{plan}"
    );
    assert_eq!(rows_of(&ctx, sql).await, rows(&[("r0", 11), ("r0", 12)]));
}

#[tokio::test]
async fn whole_keys_are_points_and_several_leading_values_several_ranges() {
    let (_dir, ctx) = fixture().await;
    let sql = "SELECT room, id FROM t WHERE id = 7 AND room = 'r4'";
    let plan = plan_of(&ctx, sql).await;
    assert!(plan.contains("read=point"), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
    assert_eq!(rows_of(&ctx, sql).await, rows(&[("r4", 7)]));

    let sql = "SELECT room, id FROM t WHERE room IN ('r3', 'r1') AND id IN (2, 1)";
    let plan = plan_of(&ctx, sql).await;
    assert!(plan.contains("read=points(4)"), "{plan}");
    assert_eq!(
        rows_of(&ctx, sql).await,
        rows(&[("r1", 1), ("r1", 2), ("r3", 1), ("r3", 2)])
    );

    let sql = "SELECT room, id FROM t WHERE room IN ('r3', 'r1') AND id >= 48";
    let plan = plan_of(&ctx, sql).await;
    assert!(plan.contains("read=ranges(2)"), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
    assert_eq!(
        rows_of(&ctx, sql).await,
        rows(&[("r1", 48), ("r1", 49), ("r3", 48), ("r3", 49)])
    );
    let sql = "SELECT room, id FROM t WHERE room IN ('r3', 'r1') AND id >= 48 ORDER BY room DESC, id DESC LIMIT 3";
    let plan = plan_of(&ctx, sql).await;
    assert!(!plan.contains("SortExec"), "{plan}");
    assert_eq!(
        rows_of(&ctx, sql).await,
        rows(&[("r3", 49), ("r3", 48), ("r1", 49)])
    );
}

#[tokio::test]
async fn a_later_column_alone_or_a_foreign_sort_is_left_to_datafusion() {
    let (_dir, ctx) = fixture().await;
    let sql = "SELECT room, id FROM t WHERE id = 7";
    let plan = plan_of(&ctx, sql).await;
    assert!(plan.contains("read=full"), "{plan}");
    assert!(plan.contains("FilterExec"), "{plan}");
    let mut got = rows_of(&ctx, sql).await;
    got.sort();
    assert_eq!(
        got,
        rows(&[("r0", 7), ("r1", 7), ("r2", 7), ("r3", 7), ("r4", 7)])
    );

    // the key's order, forward and backward: no sort
    for (sql, want) in [
        (
            "SELECT room, id FROM t ORDER BY room, id LIMIT 2",
            rows(&[("r0", 0), ("r0", 1)]),
        ),
        (
            "SELECT room, id FROM t ORDER BY room DESC, id DESC LIMIT 2",
            rows(&[("r4", 49), ("r4", 48)]),
        ),
        (
            "SELECT room, id FROM t ORDER BY room DESC LIMIT 1",
            rows(&[("r4", 49)]),
        ),
    ] {
        let plan = plan_of(&ctx, sql).await;
        assert!(!plan.contains("SortExec"), "{sql}: {plan}");
        let got = rows_of(&ctx, sql).await;
        if sql.ends_with("LIMIT 1") {
            assert_eq!(got[0].0, want[0].0, "{sql}");
        } else {
            assert_eq!(got, want, "{sql}");
        }
    }
    // orders the key does not give: sorted
    for (sql, want) in [
        (
            "SELECT room, id FROM t ORDER BY room, id DESC LIMIT 2",
            rows(&[("r0", 49), ("r0", 48)]),
        ),
        (
            "SELECT room, id FROM t ORDER BY id DESC, room LIMIT 2",
            rows(&[("r0", 49), ("r1", 49)]),
        ),
        (
            "SELECT room, id, v FROM t WHERE room = 'r2' ORDER BY v DESC, id LIMIT 2",
            rows(&[("r2", 9), ("r2", 8)]),
        ),
    ] {
        let plan = plan_of(&ctx, sql).await;
        assert!(plan.contains("SortExec"), "{sql}: {plan}");
        assert_eq!(rows_of(&ctx, sql).await, want, "{sql}");
    }
}
