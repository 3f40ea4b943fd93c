//! What the write funnel publishes, statement by statement: exactly the
//! typed changes that were committed, in commit order, and nothing else.

use super::{ChangeOp, ChangeSink, RowChange, WriteSet};
use crate::table_store::RowScope;
use crate::{AppContext, CoreOptions, ExecutionContext};
use kalamdb_commons::{Role, UserId, Value};
use kalamdb_store::{RocksDbBackend, RocksDbOptions};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Records every publish call.
#[derive(Default)]
struct Recorder(Mutex<Vec<Vec<WriteSet>>>);

impl ChangeSink for Recorder {
    fn publish(&self, sets: Vec<WriteSet>) {
        self.0.lock().unwrap().push(sets);
    }
}

impl Recorder {
    fn take(&self) -> Vec<Vec<WriteSet>> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: Arc<AppContext>,
    sink: Arc<Recorder>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let options = CoreOptions {
            bcrypt_cost: 4,
            ..CoreOptions::default()
        };
        let app = AppContext::open(backend, &options).unwrap();
        let sink = Arc::new(Recorder::default());
        assert!(app.set_change_sink(sink.clone()));
        let f = Self {
            _dir: dir,
            app,
            sink,
        };
        f.run(
            &f.root(),
            "CREATE NAMESPACE app; \
             CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT); \
             CREATE SHARED TABLE app.kv (k TEXT PRIMARY KEY, v INT); \
             CREATE SHARED TABLE app.log (msg TEXT); \
             CREATE USER 'ann' WITH PASSWORD 'ann-pass-123' ROLE user; \
             CREATE USER 'svc' WITH PASSWORD 'svc-pass-123' ROLE service",
        )
        .await
        .unwrap();
        f.sink.take();
        f
    }

    fn root(&self) -> ExecutionContext {
        ExecutionContext::new(UserId::new("root"), "root", Role::System)
    }

    fn user(&self, name: &str) -> ExecutionContext {
        let u = self.app.meta.user(name).unwrap().unwrap();
        ExecutionContext::new(u.user_id, name, u.role)
    }

    async fn run(&self, ctx: &ExecutionContext, sql: &str) -> Result<Vec<Vec<Vec<Json>>>, String> {
        crate::executor::handlers::test_support::run_sql(&self.app, ctx, sql).await
    }

    /// A transaction holding what `sql` staged (the request ends without
    /// COMMIT, so it reports a rollback; the sets stay staged in it).
    async fn staged(&self, sql: &str) -> Arc<crate::write_set::Transaction> {
        let tx = Arc::new(crate::write_set::Transaction::begin(Arc::clone(
            self.app.table_store.backend(),
        )));
        let mut ctx = self.root();
        ctx.transaction = Some(Arc::clone(&tx));
        let e = self.app.execute(&mut ctx, sql, &[]).await.unwrap_err();
        assert!(e.to_string().contains("BEGIN without COMMIT"), "{e}");
        tx
    }

    /// The one publish call `sql` made, with its one write set.
    async fn one_set(&self, ctx: &ExecutionContext, sql: &str) -> WriteSet {
        self.run(ctx, sql).await.unwrap();
        let mut calls = self.sink.take();
        assert_eq!(calls.len(), 1, "{sql}: {calls:?}");
        let mut sets = calls.remove(0);
        assert_eq!(sets.len(), 1, "{sql}");
        sets.remove(0)
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn ops(set: &WriteSet) -> Vec<ChangeOp> {
    set.changes.iter().map(|c| c.op).collect()
}

#[tokio::test]
async fn inserts_publish_one_typed_change_per_row_in_the_callers_scope() {
    let f = Fixture::new().await;
    let ann = f.user("ann");
    let set = f
        .one_set(&ann, "INSERT INTO app.notes VALUES (1, 'a')")
        .await;
    assert_eq!(set.scope, RowScope::User(ann.user_id.clone()));
    let [change] = &set.changes[..] else {
        panic!("{set:?}")
    };
    assert_eq!(change.op, ChangeOp::Insert);
    assert_eq!(change.values, vec![Value::Int32(1), text("a")]);
    assert_eq!(change.old_values, None);
    assert_eq!(set.pk_of(change), [&Value::Int32(1)]);
    // the published _seq is the row's
    let rows = f
        .run(&ann, "SELECT _seq FROM app.notes WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(rows[0][0][0], Json::String(change.seq.to_string()));

    let set = f
        .one_set(
            &ann,
            "INSERT INTO app.notes VALUES (2, 'b'), (3, 'c'), (4, NULL)",
        )
        .await;
    assert_eq!(ops(&set), vec![ChangeOp::Insert; 3]);
    let ids: Vec<&Value> = set.changes.iter().map(|c| &c.values[0]).collect();
    assert_eq!(ids, [&Value::Int32(2), &Value::Int32(3), &Value::Int32(4)]);
    assert!(set.changes.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn insert_select_and_execute_as_user_publish_where_the_rows_went() {
    let f = Fixture::new().await;
    f.run(&f.root(), "INSERT INTO app.kv VALUES ('x', 1), ('y', 2)")
        .await
        .unwrap();
    f.sink.take();
    let set = f
        .one_set(
            &f.root(),
            "INSERT INTO app.log SELECT k FROM app.kv ORDER BY k",
        )
        .await;
    assert_eq!(set.scope, RowScope::Shared);
    assert_eq!(ops(&set), vec![ChangeOp::Insert; 2]);
    assert_eq!(set.changes[0].values, vec![text("x")]);
    assert_eq!(
        set.pk_of(&set.changes[0]),
        Vec::<&Value>::new(),
        "keyless: keyed by _seq"
    );

    let svc = f.user("svc");
    let ann = f.user("ann");
    let set = f
        .one_set(
            &svc,
            "EXECUTE AS USER 'ann' (INSERT INTO app.notes VALUES (9, 'for ann'))",
        )
        .await;
    assert_eq!(set.scope, RowScope::User(ann.user_id));
    assert_eq!(
        set.changes[0].values,
        vec![Value::Int32(9), text("for ann")]
    );
}

#[tokio::test]
async fn updates_and_deletes_carry_old_and_new_values() {
    let f = Fixture::new().await;
    let ann = f.user("ann");
    f.run(&ann, "INSERT INTO app.notes VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    f.sink.take();

    // by primary key (the fast path)
    let set = f
        .one_set(&ann, "UPDATE app.notes SET body = 'A' WHERE id = 1")
        .await;
    let [c] = &set.changes[..] else { panic!() };
    assert_eq!(c.op, ChangeOp::Update);
    assert_eq!(c.old_values, Some(vec![Value::Int32(1), text("a")]));
    assert_eq!(c.values, vec![Value::Int32(1), text("A")]);

    // through a query
    let set = f
        .one_set(
            &ann,
            "UPDATE app.notes SET body = body || '!' WHERE body = 'b'",
        )
        .await;
    let [c] = &set.changes[..] else { panic!() };
    assert_eq!(c.old_values, Some(vec![Value::Int32(2), text("b")]));
    assert_eq!(c.values, vec![Value::Int32(2), text("b!")]);

    let set = f.one_set(&ann, "DELETE FROM app.notes WHERE id = 2").await;
    let [c] = &set.changes[..] else { panic!() };
    assert_eq!(c.op, ChangeOp::Delete);
    assert_eq!(c.values, vec![Value::Int32(2), text("b!")]);
    assert_eq!(c.old_values.as_ref(), Some(&c.values));

    // nothing matched: nothing published
    f.run(&ann, "UPDATE app.notes SET body = 'z' WHERE id = 42")
        .await
        .unwrap();
    f.run(&ann, "DELETE FROM app.notes WHERE id = 2")
        .await
        .unwrap();
    assert!(f.sink.take().is_empty());
}

#[tokio::test]
async fn on_conflict_publishes_only_what_it_wrote() {
    let f = Fixture::new().await;
    let root = f.root();
    f.run(&root, "INSERT INTO app.kv VALUES ('a', 1)")
        .await
        .unwrap();
    f.sink.take();
    let set = f
        .one_set(
            &root,
            "INSERT INTO app.kv VALUES ('a', 10), ('b', 2) ON CONFLICT (k) DO NOTHING",
        )
        .await;
    assert_eq!(ops(&set), vec![ChangeOp::Insert]);
    assert_eq!(set.changes[0].values, vec![text("b"), Value::Int32(2)]);

    let set = f
        .one_set(
            &root,
            "INSERT INTO app.kv VALUES ('a', 5), ('c', 3) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
        )
        .await;
    assert_eq!(ops(&set), vec![ChangeOp::Update, ChangeOp::Insert]);
    assert_eq!(
        set.changes[0].old_values,
        Some(vec![text("a"), Value::Int32(1)])
    );
    assert_eq!(set.changes[0].values, vec![text("a"), Value::Int32(5)]);
    assert_eq!(set.changes[1].old_values, None);
}

#[tokio::test]
async fn a_transaction_publishes_at_commit_and_only_if_it_commits() {
    let f = Fixture::new().await;
    let root = f.root();
    f.run(
        &root,
        "BEGIN; INSERT INTO app.kv VALUES ('t', 1); UPDATE app.kv SET v = 2 WHERE k = 't'; \
         INSERT INTO app.log VALUES ('x'); COMMIT",
    )
    .await
    .unwrap();
    let calls = f.sink.take();
    assert_eq!(calls.len(), 1, "one publish for the COMMIT: {calls:?}");
    let sets = &calls[0];
    assert_eq!(sets.len(), 3);
    assert_eq!(ops(&sets[0]), vec![ChangeOp::Insert]);
    assert_eq!(ops(&sets[1]), vec![ChangeOp::Update]);
    assert_eq!(
        sets[1].changes[0].old_values,
        Some(vec![text("t"), Value::Int32(1)])
    );
    assert_eq!(sets[2].changes[0].values, vec![text("x")]);

    for sql in [
        "BEGIN; INSERT INTO app.kv VALUES ('r', 1); ROLLBACK",
        "BEGIN; INSERT INTO app.kv VALUES ('m', 1)",
        "BEGIN; INSERT INTO app.kv VALUES ('f', 1); INSERT INTO app.kv VALUES ('t', 9); COMMIT",
        "INSERT INTO app.kv VALUES ('n', 1), ('t', 9)",
        "UPDATE app.kv SET v = 'not a number' WHERE k = 't'",
    ] {
        assert!(
            f.run(&root, sql).await.is_err() || sql.contains("ROLLBACK"),
            "{sql}"
        );
        assert!(f.sink.take().is_empty(), "{sql} published");
    }
    let rows = f
        .run(&root, "SELECT k, v FROM app.kv ORDER BY k")
        .await
        .unwrap();
    assert_eq!(rows[0], vec![vec![Json::from("t"), Json::from(2)]]);
}

#[test]
fn a_write_set_is_a_plain_serialisable_value() {
    let set = WriteSet {
        table_id: kalamdb_commons::TableId(7),
        schema_version: 2,
        column_ids: vec![1, 3],
        primary_key: vec![0],
        scope: RowScope::User(UserId::new("u_1")),
        changes: vec![RowChange {
            op: ChangeOp::Update,
            key: vec![1, 2, 3],
            moved_from: None,
            seq: 42,
            values: vec![Value::Int32(1), text("new")],
            old_values: Some(vec![Value::Int32(1), text("old")]),
            read: super::Read::Row(41),
        }],
        ephemeral: false,
        read_at: Some(40),
        prefix: Vec::new(),
    };
    let json = serde_json::to_string(&set).unwrap();
    let back: WriteSet = serde_json::from_str(&json).unwrap();
    assert_eq!(back.changes, set.changes);
    let (mut a, mut b) = (kalamdb_store::Batch::new(), kalamdb_store::Batch::new());
    let indexes = crate::indexes::IndexCatalog::default();
    set.to_batch(&mut a, &indexes).unwrap();
    back.to_batch(&mut b, &indexes).unwrap();
    assert_eq!(
        format!("{a:?}"),
        format!("{b:?}"),
        "a replica applies the same write"
    );
}

mod replay {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(i32, i32),
        Upsert(i32, i32),
        Update(i32, i32),
        UpdateWhere(i32),
        Delete(i32),
        Transaction(Vec<(i32, i32)>, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = 0..12i32;
        prop_oneof![
            (k.clone(), any::<i16>()).prop_map(|(k, v)| Op::Insert(k, v.into())),
            (k.clone(), any::<i16>()).prop_map(|(k, v)| Op::Upsert(k, v.into())),
            (k.clone(), any::<i16>()).prop_map(|(k, v)| Op::Update(k, v.into())),
            (0..3i32).prop_map(Op::UpdateWhere),
            k.clone().prop_map(Op::Delete),
            (
                proptest::collection::vec((k, any::<i16>().prop_map(i32::from)), 1..4),
                any::<bool>()
            )
                .prop_map(|(rows, commit)| Op::Transaction(rows, commit)),
        ]
    }

    fn sql(op: &Op, t: &str) -> String {
        match op {
            Op::Insert(k, v) => format!("INSERT INTO app.{t} VALUES ({k}, {v})"),
            Op::Upsert(k, v) => format!(
                "INSERT INTO app.{t} VALUES ({k}, {v}) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"
            ),
            Op::Update(k, v) => format!("UPDATE app.{t} SET v = {v} WHERE id = {k}"),
            Op::UpdateWhere(m) => format!("UPDATE app.{t} SET v = v / 2 WHERE id % 3 = {m}"),
            Op::Delete(k) => format!("DELETE FROM app.{t} WHERE id = {k}"),
            Op::Transaction(rows, commit) => {
                let body: Vec<String> = rows
                    .iter()
                    .map(|(k, v)| format!("INSERT INTO app.{t} VALUES ({k}, {v}) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"))
                    .collect();
                format!(
                    "BEGIN; {}; {}",
                    body.join("; "),
                    if *commit { "COMMIT" } else { "ROLLBACK" }
                )
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]
        /// Random writes; the recorded changes replayed onto an empty map
        /// equal a full SELECT of the table.
        #[test]
        fn replaying_the_published_changes_rebuilds_the_table(ops in proptest::collection::vec(op(), 1..25)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let f = Fixture::new().await;
                let root = f.root();
                f.run(&root, "CREATE SHARED TABLE app.p (id INT PRIMARY KEY, v INT)").await.unwrap();
                f.sink.take();
                for op in &ops {
                    // some fail (duplicate key): they must publish nothing
                    let _ = f.run(&root, &sql(op, "p")).await;
                }
                let mut replayed: BTreeMap<i32, Json> = BTreeMap::new();
                for sets in f.sink.take() {
                    for set in sets {
                        for c in &set.changes {
                            let [Value::Int32(k)] = set.pk_of(c)[..] else { panic!("{c:?}") };
                            match c.op {
                                ChangeOp::Delete => { replayed.remove(k); }
                                _ => {
                                    let v = match &c.values[1] {
                                        Value::Int32(v) => Json::from(*v),
                                        Value::Null => Json::Null,
                                        other => panic!("{other:?}"),
                                    };
                                    replayed.insert(*k, v);
                                }
                            }
                        }
                    }
                }
                let rows = f.run(&root, "SELECT id, v FROM app.p ORDER BY id").await.unwrap();
                let selected: BTreeMap<i32, Json> = rows[0]
                    .iter()
                    .map(|r| (r[0].as_i64().unwrap() as i32, r[1].clone()))
                    .collect();
                assert_eq!(replayed, selected, "{ops:?}");
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seq_order_is_commit_order_under_concurrent_writers() {
    let f = Arc::new(Fixture::new().await);
    let mut writers = Vec::new();
    for w in 0..8 {
        let f = Arc::clone(&f);
        writers.push(tokio::spawn(async move {
            let root = f.root();
            for i in 0..50 {
                let sql = if i % 5 == 4 {
                    format!("UPDATE app.kv SET v = v + 1 WHERE k = 'w{w}-{}'", i - 1)
                } else {
                    format!("INSERT INTO app.kv VALUES ('w{w}-{i}', {i}); INSERT INTO app.log VALUES ('w{w}-{i}')")
                };
                f.run(&root, &sql).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // every publish, in publish order, carries higher `_seq`s than the one
    // before: a cursor "after N" never misses a row committed later
    let published: Vec<i64> = f
        .sink
        .take()
        .iter()
        .flatten()
        .flat_map(|s| s.changes.iter().map(|c| c.seq))
        .collect();
    assert_eq!(published.len(), 8 * (40 * 2 + 10));
    assert!(
        published.windows(2).all(|w| w[0] < w[1]),
        "published out of _seq order"
    );
    // and what is stored is what was published
    let stored: Vec<i64> = f
        .run(
            &f.root(),
            "SELECT _seq FROM app.kv UNION ALL SELECT _seq FROM app.log",
        )
        .await
        .unwrap()[0]
        .iter()
        .map(|r| r[0].as_str().unwrap().parse().unwrap())
        .collect();
    let latest: std::collections::BTreeSet<i64> = stored.into_iter().collect();
    let max_published = *published.last().unwrap();
    assert!(latest.iter().all(|s| published.contains(s)));
    assert_eq!(*latest.iter().max().unwrap(), max_published);
    f.app
        .writes
        .at_commit_point(|point| assert_eq!(point, max_published));
}

#[tokio::test]
async fn a_keyless_row_written_twice_in_one_transaction_is_stored_once_at_its_final_seq() {
    let f = Fixture::new().await;
    let root = f.root();
    f.run(
        &root,
        "BEGIN; INSERT INTO app.log VALUES ('draft'); \
         UPDATE app.log SET msg = 'final' WHERE msg = 'draft'; COMMIT",
    )
    .await
    .unwrap();
    let published = f.sink.take();
    assert_eq!(published.len(), 1, "one COMMIT, one publish");
    let changes: Vec<&RowChange> = published[0].iter().flat_map(|s| &s.changes).collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].moved_from.as_ref(), Some(&changes[0].key));
    let rows = f
        .run(&root, "SELECT msg, _seq FROM app.log")
        .await
        .unwrap()
        .remove(0);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], Json::from("final"));
    assert_eq!(rows[0][1], Json::from(changes[1].seq.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_never_lose_an_update() {
    let f = Arc::new(Fixture::new().await);
    f.run(&f.root(), "INSERT INTO app.kv VALUES ('hits', 0)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                f.run(&f.root(), "UPDATE app.kv SET v = v + 1 WHERE k = 'hits'")
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = f.run(&f.root(), "SELECT v FROM app.kv").await.unwrap();
    assert_eq!(rows[0], vec![vec![Json::from(200)]]);
    // and the published changes form one chain: each old value is the
    // previous new value
    let olds: Vec<Value> = f
        .sink
        .take()
        .iter()
        .flatten()
        .flat_map(|s| s.changes.iter())
        .filter(|c| c.op == ChangeOp::Update)
        .map(|c| c.old_values.as_ref().unwrap()[1].clone())
        .collect();
    assert_eq!(olds, (0..200).map(Value::Int32).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_transaction_whose_read_row_changed_fails_its_commit_and_writes_nothing() {
    let f = Fixture::new().await;
    let root = f.root();
    f.run(&root, "INSERT INTO app.kv VALUES ('a', 1)")
        .await
        .unwrap();
    f.sink.take();
    // the transaction reads 'a' and stages a write computed from it ...
    let tx = f.staged("UPDATE app.kv SET v = v + 10 WHERE k = 'a'").await;
    // ... another commit changes 'a' before the COMMIT
    f.run(&root, "UPDATE app.kv SET v = 5 WHERE k = 'a'")
        .await
        .unwrap();
    let err = f.app.writes.commit_transaction(&tx).await.unwrap_err();
    assert_eq!(
        kalamdb_commons::error_code::HasErrorCode::error_code(&err),
        kalamdb_commons::ErrorCode::WriteConflict
    );
    let rows = f.run(&root, "SELECT v FROM app.kv").await.unwrap();
    assert_eq!(
        rows[0],
        vec![vec![Json::from(5)]],
        "the conflicting commit wrote nothing"
    );
    assert_eq!(
        f.sink.take().len(),
        1,
        "only the other commit was published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_new_key_store_one_row_and_report_the_rest_as_duplicates() {
    let f = Arc::new(Fixture::new().await);
    for round in 0..20 {
        let key = format!("k{round}");
        // a soft-deleted row's key is free again: half the rounds race for
        // such a key
        if round % 2 == 1 {
            f.run(
                &f.root(),
                &format!("INSERT INTO app.kv VALUES ('{key}', -1)"),
            )
            .await
            .unwrap();
            f.run(&f.root(), &format!("DELETE FROM app.kv WHERE k = '{key}'"))
                .await
                .unwrap();
        }
        f.sink.take();
        let barrier = Arc::new(tokio::sync::Barrier::new(6));
        let mut tasks = Vec::new();
        for writer in 0..6 {
            let (f, key, barrier) = (Arc::clone(&f), key.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                f.run(
                    &f.root(),
                    &format!("INSERT INTO app.kv VALUES ('{key}', {writer})"),
                )
                .await
            }));
        }
        let mut won = Vec::new();
        for (writer, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(_) => won.push(writer),
                Err(e) => assert!(
                    e.contains("UNIQUE_VIOLATION") || e.contains("uplicate"),
                    "{e}"
                ),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one INSERT succeeds: {won:?}"
        );
        let rows = f
            .run(
                &f.root(),
                &format!("SELECT v FROM app.kv WHERE k = '{key}'"),
            )
            .await
            .unwrap();
        assert_eq!(
            rows[0],
            vec![vec![Json::from(won[0] as i64)]],
            "round {round}"
        );
        let inserts: Vec<_> = f
            .sink
            .take()
            .into_iter()
            .flatten()
            .flat_map(|s| s.changes)
            .collect();
        assert_eq!(
            inserts.len(),
            1,
            "round {round}: one change published: {inserts:?}"
        );
        assert_eq!(inserts[0].op, ChangeOp::Insert);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_one_new_key_insert_once_and_update_the_rest() {
    let f = Arc::new(Fixture::new().await);
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            f.run(
                &f.root(),
                &format!(
                    "INSERT INTO app.kv VALUES ('n', {writer}) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
                ),
            )
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let changes: Vec<RowChange> = f
        .sink
        .take()
        .into_iter()
        .flatten()
        .flat_map(|s| s.changes)
        .collect();
    let ops: Vec<ChangeOp> = changes.iter().map(|c| c.op).collect();
    assert_eq!(ops[0], ChangeOp::Insert, "{ops:?}");
    assert!(ops[1..].iter().all(|op| *op == ChangeOp::Update), "{ops:?}");
    assert_eq!(ops.len(), 8, "{ops:?}");
    // each update replaced the row the previous change left: one chain
    for pair in changes.windows(2) {
        assert_eq!(pair[1].old_values.as_ref(), Some(&pair[0].values));
    }
    let rows = f
        .run(&f.root(), "SELECT v FROM app.kv WHERE k = 'n'")
        .await
        .unwrap();
    let Value::Int32(last) = changes[7].values[1] else {
        panic!("{:?}", changes[7]);
    };
    assert_eq!(
        rows[0],
        vec![vec![Json::from(last)]],
        "the last change is stored"
    );
}

#[tokio::test]
async fn a_transaction_whose_free_key_was_taken_fails_its_commit_and_writes_nothing() {
    let f = Fixture::new().await;
    let root = f.root();
    // 'b' was written and soft-deleted: its key is free again
    f.run(&root, "INSERT INTO app.kv VALUES ('b', 0)")
        .await
        .unwrap();
    f.run(&root, "DELETE FROM app.kv WHERE k = 'b'")
        .await
        .unwrap();
    for key in ["a", "b"] {
        f.sink.take();
        // the transaction finds the key free and stages an INSERT ...
        let tx = f
            .staged(&format!("INSERT INTO app.kv VALUES ('{key}', 1)"))
            .await;
        // ... another commit takes the key before the COMMIT
        f.run(&root, &format!("INSERT INTO app.kv VALUES ('{key}', 2)"))
            .await
            .unwrap();
        let err = f.app.writes.commit_transaction(&tx).await.unwrap_err();
        assert_eq!(
            kalamdb_commons::error_code::HasErrorCode::error_code(&err),
            kalamdb_commons::ErrorCode::WriteConflict,
            "{key}"
        );
        let rows = f
            .run(&root, &format!("SELECT v FROM app.kv WHERE k = '{key}'"))
            .await
            .unwrap();
        assert_eq!(
            rows[0],
            vec![vec![Json::from(2)]],
            "{key}: the first commit's row stays"
        );
        assert_eq!(
            f.sink.take().len(),
            1,
            "{key}: only the other commit was published"
        );
    }
}
