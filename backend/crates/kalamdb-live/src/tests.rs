//! The manager against a real database: what each subscriber receives for
//! each kind of write, and what it is refused.

use crate::{ChangeKind, Delivery, LiveChange, LiveQuery, LiveQueryManager, Receiver};
use kalamdb_commons::{Role, UserId};
use kalamdb_core::{AppContext, CoreOptions, ExecutionContext};
use kalamdb_store::{RocksDbBackend, RocksDbOptions};
use serde_json::{Value as Json, json};
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    app: Arc<AppContext>,
    live: Arc<LiveQueryManager>,
}

impl Fixture {
    async fn new(queue_capacity: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let options = CoreOptions {
            bcrypt_cost: 4,
            ..CoreOptions::default()
        };
        let app = AppContext::open(backend, &options).unwrap();
        let live = Arc::new(LiveQueryManager::new(queue_capacity));
        assert!(app.set_change_sink(live.clone()));
        let f = Self {
            _dir: dir,
            app,
            live,
        };
        f.run(
            &f.root(),
            "CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.items (id INT PRIMARY KEY, room TEXT, n INT); \
             CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT); \
             CREATE USER 'ann' WITH PASSWORD 'ann-pass-123' ROLE user; \
             CREATE USER 'bob' WITH PASSWORD 'bob-pass-123' ROLE user",
        )
        .await;
        f
    }

    fn root(&self) -> ExecutionContext {
        ExecutionContext::new(UserId::new("root"), "root", Role::System)
    }

    fn user(&self, name: &str) -> ExecutionContext {
        let u = self.app.meta.user(name).unwrap().unwrap();
        ExecutionContext::new(u.user_id, name, u.role)
    }

    async fn run(&self, ctx: &ExecutionContext, sql: &str) {
        let mut ctx = ctx.clone();
        self.app
            .execute(&mut ctx, sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        // what the write published is fanned out before the test looks
        self.live.settle();
    }

    fn subscribe(&self, ctx: &ExecutionContext, sql: &str) -> Receiver {
        let query = LiveQuery::compile(&self.app, ctx, sql).unwrap();
        self.live
            .register(&self.app, query, crate::Owner::of(ctx))
            .1
    }

    fn refused(&self, ctx: &ExecutionContext, sql: &str) -> (&'static str, String) {
        let e = LiveQuery::compile(&self.app, ctx, sql).unwrap_err();
        (e.code, e.message)
    }
}

/// Everything queued so far, flattened, as (kind, row, old) without `_seq`.
fn drain(rx: &mut Receiver) -> Vec<(ChangeKind, Option<Json>, Option<Json>)> {
    let mut out = Vec::new();
    while let Some(d) = rx.try_recv() {
        let Delivery::Changes(changes) = d else {
            panic!("ended: {d:?}");
        };
        for c in changes {
            out.push(shape(&c));
        }
    }
    out
}

fn shape(c: &LiveChange) -> (ChangeKind, Option<Json>, Option<Json>) {
    let strip = |row: &Option<std::sync::Arc<crate::LiveRow>>| {
        row.as_ref().map(|r| {
            let seq: i64 = r["_seq"].as_str().unwrap().parse().unwrap();
            assert_eq!(seq, c.seq, "every row carries its change's _seq");
            let mut r = r.as_ref().clone();
            r.remove("_seq");
            Json::Object(r)
        })
    };
    (c.kind, strip(&c.row), strip(&c.old))
}

use ChangeKind::{Delete, Insert, Update};

#[tokio::test]
async fn rows_entering_and_leaving_the_where_arrive_as_inserts_and_deletes() {
    let f = Fixture::new(100).await;
    let root = f.root();
    let mut rx = f.subscribe(
        &root,
        "SELECT id, n FROM app.items WHERE room = 'a' AND n BETWEEN 1 AND 10",
    );
    f.run(
        &root,
        "INSERT INTO app.items VALUES (1, 'a', 5), (2, 'b', 5)",
    )
    .await;
    assert_eq!(
        drain(&mut rx),
        vec![(Insert, Some(json!({"id": 1, "n": 5})), None)]
    );
    f.run(&root, "UPDATE app.items SET n = 6 WHERE id = 1")
        .await;
    assert_eq!(
        drain(&mut rx),
        vec![(
            Update,
            Some(json!({"id": 1, "n": 6})),
            Some(json!({"id": 1, "n": 5}))
        )]
    );
    // entering
    f.run(&root, "UPDATE app.items SET room = 'a' WHERE id = 2")
        .await;
    assert_eq!(
        drain(&mut rx),
        vec![(Insert, Some(json!({"id": 2, "n": 5})), None)]
    );
    // leaving
    f.run(&root, "UPDATE app.items SET n = 50 WHERE id = 1")
        .await;
    assert_eq!(
        drain(&mut rx),
        vec![(Delete, None, Some(json!({"id": 1, "n": 6})))]
    );
    // neither before nor after: nothing
    f.run(&root, "UPDATE app.items SET n = 60 WHERE id = 1")
        .await;
    assert_eq!(drain(&mut rx), vec![]);
    f.run(&root, "DELETE FROM app.items WHERE id = 2").await;
    assert_eq!(
        drain(&mut rx),
        vec![(Delete, None, Some(json!({"id": 2, "n": 5})))]
    );
    // ON CONFLICT DO UPDATE is an update of the existing row
    f.run(
        &root,
        "INSERT INTO app.items VALUES (1, 'a', 7) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
    )
    .await;
    assert_eq!(
        drain(&mut rx),
        vec![(Insert, Some(json!({"id": 1, "n": 7})), None)]
    );
    f.run(
        &root,
        "INSERT INTO app.items VALUES (1, 'a', 8) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
    )
    .await;
    assert_eq!(
        drain(&mut rx),
        vec![(
            Update,
            Some(json!({"id": 1, "n": 8})),
            Some(json!({"id": 1, "n": 7}))
        )]
    );
}

#[tokio::test]
async fn a_projection_that_hides_the_changed_column_still_reports_the_update() {
    let f = Fixture::new(100).await;
    let root = f.root();
    f.run(&root, "INSERT INTO app.items VALUES (1, 'a', 5)")
        .await;
    let mut rx = f.subscribe(&root, "SELECT id FROM app.items");
    f.run(&root, "UPDATE app.items SET n = 6 WHERE id = 1")
        .await;
    assert_eq!(
        drain(&mut rx),
        vec![(Update, Some(json!({"id": 1})), Some(json!({"id": 1})))]
    );
}

#[tokio::test]
async fn one_statement_or_one_commit_arrives_as_one_delivery_in_commit_order() {
    let f = Fixture::new(100).await;
    let root = f.root();
    let mut rx = f.subscribe(&root, "SELECT * FROM app.items");
    f.run(
        &root,
        "BEGIN; INSERT INTO app.items VALUES (1, 'a', 1); \
         UPDATE app.items SET n = 2 WHERE id = 1; DELETE FROM app.items WHERE id = 1; COMMIT",
    )
    .await;
    let Some(Delivery::Changes(changes)) = rx.try_recv() else {
        panic!("nothing delivered");
    };
    assert!(rx.try_recv().is_none(), "one COMMIT, one delivery");
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![Insert, Update, Delete]);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    // a rolled back transaction delivers nothing
    f.run(
        &root,
        "BEGIN; INSERT INTO app.items VALUES (9, 'a', 1); ROLLBACK",
    )
    .await;
    assert!(rx.try_recv().is_none());
}

#[tokio::test]
async fn a_user_table_subscription_sees_only_its_owners_rows() {
    let f = Fixture::new(100).await;
    let (ann, bob) = (f.user("ann"), f.user("bob"));
    let mut ann_rx = f.subscribe(&ann, "SELECT * FROM app.notes");
    let mut bob_rx = f.subscribe(&bob, "SELECT * FROM app.notes");
    f.run(&ann, "INSERT INTO app.notes VALUES (1, 'ann''s')")
        .await;
    f.run(
        &f.root(),
        "EXECUTE AS USER 'bob' (INSERT INTO app.notes VALUES (1, 'bob''s'))",
    )
    .await;
    assert_eq!(
        drain(&mut ann_rx),
        vec![(Insert, Some(json!({"id": 1, "body": "ann's"})), None)]
    );
    assert_eq!(
        drain(&mut bob_rx),
        vec![(Insert, Some(json!({"id": 1, "body": "bob's"})), None)]
    );
}

#[tokio::test]
async fn filters_mean_what_they_mean_in_a_select() {
    let f = Fixture::new(100).await;
    let root = f.root();
    let mut rx = f.subscribe(
        &root,
        "SELECT id FROM app.items WHERE (n IN (1, 2) OR n IS NULL) AND lower(room) LIKE 'a%'",
    );
    f.run(
        &root,
        "INSERT INTO app.items VALUES (1, 'Apple', 1), (2, 'apple', 3), (3, 'ax', NULL), \
         (4, 'b', 1), (5, NULL, 2)",
    )
    .await;
    let ids: Vec<Json> = drain(&mut rx)
        .into_iter()
        .map(|(_, row, _)| row.unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(1), json!(3)]);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_told_overflow_and_ended_without_slowing_writers() {
    let f = Fixture::new(2).await;
    let root = f.root();
    let mut slow = f.subscribe(&root, "SELECT * FROM app.items");
    let mut fast = f.subscribe(&root, "SELECT id FROM app.items");
    for i in 0..5 {
        f.run(
            &root,
            &format!("INSERT INTO app.items VALUES ({i}, 'a', {i})"),
        )
        .await;
        assert!(matches!(fast.try_recv(), Some(Delivery::Changes(_))));
    }
    let mut got = Vec::new();
    while let Some(d) = slow.try_recv() {
        got.push(d);
    }
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(matches!(&got[0], Delivery::Changes(_)));
    assert!(
        matches!(&got[1], Delivery::Changes(c) if c[0].row.as_ref().unwrap()["id"] == json!(1))
    );
    let Delivery::Ended(e) = &got[2] else {
        panic!("{got:?}");
    };
    assert_eq!(e.code, "OVERFLOW");
    let Delivery::Changes(c) = &got[1] else {
        unreachable!()
    };
    assert!(
        e.message.contains(&format!("from = {}", c[0].seq)),
        "{}",
        e.message
    );
    assert_eq!(f.live.len(), 1, "the overflowed subscription is gone");
}

#[tokio::test]
async fn what_cannot_be_live_is_refused_with_the_reason() {
    let f = Fixture::new(10).await;
    let (root, ann) = (f.root(), f.user("ann"));
    for (sql, code, says) in [
        (
            "SELECT * FROM app.items i JOIN app.items j ON i.id = j.id",
            "UNSUPPORTED",
            "JOIN",
        ),
        (
            "SELECT * FROM app.items ORDER BY id",
            "UNSUPPORTED",
            "ORDER BY",
        ),
        ("SELECT * FROM app.items LIMIT 5", "UNSUPPORTED", "LIMIT"),
        (
            "SELECT room, count(*) FROM app.items GROUP BY room",
            "UNSUPPORTED",
            "GROUP BY",
        ),
        (
            "SELECT count(*) FROM app.items",
            "UNSUPPORTED",
            "aggregates",
        ),
        (
            "SELECT * FROM app.items WHERE id IN (SELECT id FROM app.items)",
            "UNSUPPORTED",
            "subquery",
        ),
        (
            "SELECT * FROM app.items UNION SELECT * FROM app.items",
            "UNSUPPORTED",
            "UNION",
        ),
        (
            "INSERT INTO app.items VALUES (1, 'a', 1)",
            "UNSUPPORTED",
            "SELECT",
        ),
        ("SELECT * FROM app.nope", "NOT_FOUND", "app.nope"),
        (
            "SELECT * FROM app.items WHERE nope = 1",
            "INVALID_SQL",
            "nope",
        ),
        ("SELECT * FROM app.items WHERE", "INVALID_SQL", ""),
        (
            "SELECT * FROM app.items WHERE n + 1",
            "INVALID_SQL",
            "boolean",
        ),
        (
            "SELECT * FROM app.items; SELECT 1",
            "INVALID_SQL",
            "one SELECT",
        ),
    ] {
        let (got, message) = f.refused(&root, sql);
        assert_eq!(got, code, "{sql}: {message}");
        assert!(message.contains(says), "{sql}: {message}");
    }
    // a user table is the caller's own: nothing to refuse, nothing leaks
    assert!(LiveQuery::compile(&f.app, &ann, "SELECT * FROM app.notes").is_ok());
}

mod replay {
    //! After random writes, the rows a subscriber holds (its changes
    //! applied to an empty map) equal a fresh SELECT with the same WHERE.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u8),
        Upsert(u8, u8),
        SetN(u8, u8),
        Bump(u8),
        Delete(u8),
        DeleteWhere(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..12u8, 0..20u8).prop_map(|(k, n)| Op::Insert(k, n)),
            (0..12u8, 0..20u8).prop_map(|(k, n)| Op::Upsert(k, n)),
            (0..12u8, 0..20u8).prop_map(|(k, n)| Op::SetN(k, n)),
            (0..20u8).prop_map(Op::Bump),
            (0..12u8).prop_map(Op::Delete),
            (0..20u8).prop_map(Op::DeleteWhere),
        ]
    }

    fn sql(op: &Op) -> String {
        match op {
            Op::Insert(k, n) => {
                format!("INSERT INTO app.items VALUES ({k}, 'r', {n}) ON CONFLICT (id) DO NOTHING")
            }
            Op::Upsert(k, n) => format!(
                "INSERT INTO app.items VALUES ({k}, 'r', {n}) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n"
            ),
            Op::SetN(k, n) => format!("UPDATE app.items SET n = {n} WHERE id = {k}"),
            Op::Bump(below) => format!("UPDATE app.items SET n = n + 3 WHERE n < {below}"),
            Op::Delete(k) => format!("DELETE FROM app.items WHERE id = {k}"),
            Op::DeleteWhere(above) => format!("DELETE FROM app.items WHERE n > {above}"),
        }
    }

    const WHERE: &str = "n % 2 = 0 AND n BETWEEN 4 AND 16";

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn a_subscribers_rows_equal_a_fresh_select(ops in proptest::collection::vec(op(), 1..30)) {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let f = Fixture::new(10_000).await;
                let root = f.root();
                let mut rx = f.subscribe(&root, &format!("SELECT id, n FROM app.items WHERE {WHERE}"));
                for op in &ops {
                    f.run(&root, &sql(op)).await;
                }
                let mut held: BTreeMap<i64, Json> = BTreeMap::new();
                for (kind, row, old) in drain(&mut rx) {
                    let id = |r: &Json| r["id"].as_i64().unwrap();
                    match kind {
                        Insert => {
                            let row = row.unwrap();
                            assert!(held.insert(id(&row), row).is_none(), "insert of a held row");
                        }
                        Update => {
                            let (row, old) = (row.unwrap(), old.unwrap());
                            assert_eq!(held.get(&id(&old)), Some(&old), "update of a row not held as it was");
                            held.insert(id(&row), row);
                        }
                        Delete => {
                            let old = old.unwrap();
                            assert_eq!(held.remove(&id(&old)), Some(old), "delete of a row not held");
                        }
                    }
                }
                let mut ctx = root.clone();
                let results = f
                    .app
                    .execute(&mut ctx, &format!("SELECT id, n FROM app.items WHERE {WHERE} ORDER BY id"), &[])
                    .await
                    .unwrap();
                let mut rows = Vec::new();
                for b in &results[0].batches {
                    kalamdb_core::rows::json::append_rows(b, &mut rows);
                }
                let expected: Vec<Json> = rows.into_iter().map(|r| json!({"id": r[0], "n": r[1]})).collect();
                let got: Vec<Json> = held.into_values().collect();
                assert_eq!(got, expected, "{ops:?}");
            });
        }
    }
}

mod handover {
    //! Initial rows, then the stream: no change lost, none doubled — while
    //! writers keep writing, and across a resume from a cursor.
    use super::*;
    use std::collections::BTreeMap;

    const WHERE: &str = "n % 3 <> 0";

    /// A client: the rows it holds, by id, as it received them.
    struct Client {
        rx: Receiver,
        live_id: String,
        handover: crate::Handover,
        held: BTreeMap<i64, Json>,
        last_seq: i64,
    }

    fn strip(row: &crate::LiveRow) -> (i64, Json) {
        let mut r = row.clone();
        r.remove("_seq");
        (r["id"].as_i64().unwrap(), Json::Object(r))
    }

    impl Client {
        fn subscribe(f: &Fixture, from: Option<(i64, BTreeMap<i64, Json>)>) -> Self {
            let root = f.root();
            let query = LiveQuery::compile(
                &f.app,
                &root,
                &format!("SELECT id, n FROM app.items WHERE {WHERE}"),
            )
            .unwrap();
            let (sub, rx, _) = f.live.register(&f.app, query, crate::Owner::of(&root));
            let (cursor, mut held) = from.unwrap_or_default();
            let initial = sub
                .query
                .initial_rows(&f.app, (cursor > 0).then_some(cursor), None, usize::MAX)
                .unwrap();
            for row in &initial.rows {
                let (id, row) = strip(row);
                held.insert(id, row);
            }
            for delete in &initial.deletes {
                held.remove(&strip(delete.old.as_ref().unwrap()).0);
            }
            Self {
                rx,
                live_id: sub.live_id.clone(),
                handover: initial.handover,
                held,
                last_seq: initial.last_seq.max(cursor),
            }
        }

        /// Applies what is queued; panics on anything a gap or a double
        /// would cause.
        fn catch_up(&mut self) {
            while let Some(d) = self.rx.try_recv() {
                let Delivery::Changes(changes) = d else {
                    panic!("ended: {d:?}");
                };
                for c in changes {
                    if !self.handover.admits(&c) {
                        continue;
                    }
                    self.last_seq = self.last_seq.max(c.seq);
                    let (kind, row, old) = shape(&c);
                    let id = |r: &Json| r["id"].as_i64().unwrap();
                    match kind {
                        Insert => {
                            let row = row.unwrap();
                            let before = self.held.insert(id(&row), row.clone());
                            assert!(before.is_none(), "doubled: insert of held {row}");
                        }
                        Update => {
                            let (row, old) = (row.unwrap(), old.unwrap());
                            assert_eq!(self.held.get(&id(&old)), Some(&old), "gap before update");
                            self.held.insert(id(&row), row);
                        }
                        Delete => {
                            let old = old.unwrap();
                            assert_eq!(self.held.remove(&id(&old)), Some(old), "gap before delete");
                        }
                    }
                }
            }
        }
    }

    async fn expected(f: &Fixture) -> BTreeMap<i64, Json> {
        let mut ctx = f.root();
        let results = f
            .app
            .execute(
                &mut ctx,
                &format!("SELECT id, n FROM app.items WHERE {WHERE}"),
                &[],
            )
            .await
            .unwrap();
        let mut rows = Vec::new();
        for b in &results[0].batches {
            kalamdb_core::rows::json::append_rows(b, &mut rows);
        }
        rows.into_iter()
            .map(|r| (r[0].as_i64().unwrap(), json!({"id": r[0], "n": r[1]})))
            .collect()
    }

    fn write(i: u64, w: u64) -> String {
        let k = (i * 7 + w * 13) % 60;
        match i % 5 {
            0 | 1 => format!(
                "INSERT INTO app.items VALUES ({k}, 'r', {i}) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n"
            ),
            2 => format!("UPDATE app.items SET n = n + 1 WHERE id = {k}"),
            3 => format!(
                "UPDATE app.items SET n = n + 2 WHERE id > {k} AND id < {}",
                k + 4
            ),
            _ => format!("DELETE FROM app.items WHERE id = {k}"),
        }
    }

    /// 4 writers running 150 mixed writes each, all at once.
    fn start_writers(f: &Arc<Fixture>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..4u64)
            .map(|w| {
                let f = Arc::clone(f);
                tokio::spawn(async move {
                    for i in 0..150u64 {
                        f.run(&f.root(), &write(i, w)).await;
                    }
                })
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn subscribers_joining_during_a_write_storm_end_with_exactly_the_final_rows() {
        let f = Arc::new(Fixture::new(1_000_000).await);
        f.run(
            &f.root(),
            &format!(
                "INSERT INTO app.items VALUES {}",
                (0..40)
                    .map(|i| format!("({i}, 'r', {i})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await;
        let writers = start_writers(&f);
        let mut clients = Vec::new();
        for _ in 0..12 {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            let mut c = Client::subscribe(&f, None);
            c.catch_up();
            clients.push(c);
        }
        for w in writers {
            w.await.unwrap();
        }
        let expected = expected(&f).await;
        for c in &mut clients {
            c.catch_up();
            assert_eq!(c.held, expected);
        }
    }

    /// Commits watched by at most 8 subscriptions are fanned out by their
    /// writer, others by the fan-out thread: a ninth subscriber coming and
    /// going switches between the two mid-storm, and every subscriber still
    /// gets each change once, in commit order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn switching_between_writer_and_thread_fan_out_keeps_commit_order() {
        let f = Arc::new(Fixture::new(1_000_000).await);
        let mut clients: Vec<Client> = (0..8).map(|_| Client::subscribe(&f, None)).collect();
        let writers = start_writers(&f);
        let toggler = {
            let f = Arc::clone(&f);
            tokio::spawn(async move {
                for _ in 0..60 {
                    let ninth = Client::subscribe(&f, None);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    f.live.remove(&ninth.live_id);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
        };
        for w in writers {
            w.await.unwrap();
            for c in &mut clients {
                c.catch_up();
            }
        }
        toggler.await.unwrap();
        f.live.settle();
        let expected = expected(&f).await;
        for c in &mut clients {
            c.catch_up();
            assert_eq!(c.held, expected);
        }
    }

    #[tokio::test]
    async fn a_resumed_subscription_gets_what_changed_and_what_went_since_its_cursor() {
        let f = Fixture::new(1000).await;
        let root = f.root();
        f.run(
            &root,
            "INSERT INTO app.items VALUES (1, 'r', 1), (2, 'r', 2), (3, 'r', 4), (4, 'r', 5)",
        )
        .await;
        let mut c = Client::subscribe(&f, None);
        f.run(&root, "UPDATE app.items SET n = 7 WHERE id = 4")
            .await;
        c.catch_up();
        let (cursor, held) = (c.last_seq, c.held.clone());
        f.live.remove(&f.live.subscriptions()[0].live_id);
        // while away: a delete, a row leaving the filter, a new row, a change
        f.run(&root, "DELETE FROM app.items WHERE id = 1").await;
        f.run(&root, "UPDATE app.items SET n = 3 WHERE id = 2")
            .await;
        f.run(&root, "INSERT INTO app.items VALUES (5, 'r', 8)")
            .await;
        f.run(&root, "UPDATE app.items SET n = 10 WHERE id = 3")
            .await;
        let mut again = Client::subscribe(&f, Some((cursor, held)));
        again.catch_up();
        assert_eq!(again.held, expected(&f).await);
        assert_eq!(
            again.held.keys().copied().collect::<Vec<_>>(),
            vec![3, 4, 5],
            "1 deleted and 2 left the filter while away"
        );
    }

    #[tokio::test]
    async fn initial_rows_read_only_the_keys_the_where_allows() {
        let f = Fixture::new(10).await;
        let root = f.root();
        f.run(
            &root,
            "CREATE SHARED TABLE app.msgs (room TEXT, id INT, body TEXT, PRIMARY KEY (room, id)); \
             INSERT INTO app.msgs VALUES ('a', 1, 'a1'), ('a', 2, 'a2'), ('ab', 1, 'ab1'), ('b', 1, 'b1'), ('a', 3, 'a3')",
        )
        .await;
        let sql = "SELECT id, body FROM app.msgs WHERE room = 'a' AND id >= 2";
        let query = LiveQuery::compile(&f.app, &root, sql).unwrap();
        assert!(
            matches!(query.initial_keys(), kalamdb_core::providers::key_range::KeyRead::Ranges(r) if r.len() == 1),
            "{:?}",
            query.initial_keys()
        );
        let initial = query.initial_rows(&f.app, None, None, usize::MAX).unwrap();
        let ids: Vec<i64> = initial.rows.iter().map(|r| strip(r).0).collect();
        assert_eq!(ids, vec![2, 3]);
        let cursor = initial.last_seq;
        // a resume still hears of a row of the range deleted since, and
        // of nothing outside it
        f.run(
            &root,
            "DELETE FROM app.msgs WHERE room = 'a' AND id = 2; DELETE FROM app.msgs WHERE room = 'b'; \
             INSERT INTO app.msgs VALUES ('a', 4, 'a4'), ('c', 9, 'c9')",
        )
        .await;
        let resumed = query
            .initial_rows(&f.app, Some(cursor), None, usize::MAX)
            .unwrap();
        let ids: Vec<i64> = resumed.rows.iter().map(|r| strip(r).0).collect();
        assert_eq!(ids, vec![4]);
        assert_eq!(resumed.deletes.len(), 1, "{:?}", resumed.deletes);
        // a key not in the WHERE: the whole table, as before
        let all =
            LiveQuery::compile(&f.app, &root, "SELECT id FROM app.msgs WHERE body <> 'x'").unwrap();
        assert_eq!(
            all.initial_keys(),
            &kalamdb_core::providers::key_range::KeyRead::All
        );
        let points = LiveQuery::compile(
            &f.app,
            &root,
            "SELECT id FROM app.msgs WHERE room IN ('a', 'c') AND id IN (3, 9)",
        )
        .unwrap();
        let rows = points
            .initial_rows(&f.app, None, None, usize::MAX)
            .unwrap()
            .rows;
        let ids: Vec<i64> = rows.iter().map(|r| strip(r).0).collect();
        assert_eq!(ids, vec![3, 9]);
    }

    #[tokio::test]
    async fn last_rows_starts_from_the_newest_matching_rows() {
        let f = Fixture::new(10).await;
        let root = f.root();
        f.run(
            &root,
            "INSERT INTO app.items VALUES (1, 'r', 1), (2, 'r', 2), (3, 'r', 3)",
        )
        .await;
        f.run(&root, "INSERT INTO app.items VALUES (4, 'r', 4)")
            .await;
        f.run(&root, "UPDATE app.items SET n = 5 WHERE id = 1")
            .await;
        let query = LiveQuery::compile(
            &f.app,
            &root,
            &format!("SELECT id FROM app.items WHERE {WHERE}"),
        )
        .unwrap();
        let initial = query
            .initial_rows(&f.app, None, Some(2), usize::MAX)
            .unwrap();
        let ids: Vec<i64> = initial.rows.iter().map(|r| strip(r).0).collect();
        assert_eq!(
            ids,
            vec![4, 1],
            "oldest first, the two most recently changed (3 does not match)"
        );
    }
}

/// A subscription's initial rows are held in memory while paged out: at
/// most `max_initial_rows` of them; the rows a scan passes over are not.
#[tokio::test]
async fn initial_rows_are_bounded_and_the_rows_scanned_past_are_not_held() {
    let f = Fixture::new(10).await;
    let root = f.root();
    f.run(
        &root,
        &format!(
            "INSERT INTO app.items VALUES {}",
            (0..3000)
                .map(|i| format!("({i}, '{}', {i})", if i % 500 == 7 { "a" } else { "b" }))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .await;
    f.run(&root, "UPDATE app.items SET n = -1 WHERE id = 17")
        .await;
    let compile = |sql: &str| LiveQuery::compile(&f.app, &root, sql).unwrap();
    // 3,000 rows read, 6 held
    let few = compile("SELECT id FROM app.items WHERE room = 'a'");
    let ids: Vec<i64> = few
        .initial_rows(&f.app, None, None, 10)
        .unwrap()
        .rows
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![7, 507, 1007, 1507, 2007, 2507]);
    // all 3,000 would be held: refused, with what to do instead
    let all = compile("SELECT id FROM app.items");
    let e = all.initial_rows(&f.app, None, None, 10).unwrap_err();
    assert_eq!(e.code, "BATCH_FETCH_FAILED");
    assert!(e.message.contains("last_rows"), "{}", e.message);
    // the newest 5 of 3,000: only they are kept (the row updated last first
    // among them being the newest)
    let newest = all.initial_rows(&f.app, None, Some(5), 10).unwrap();
    let ids: Vec<i64> = newest
        .rows
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![2996, 2997, 2998, 2999, 17]);
    assert_eq!(
        newest.handover.len(),
        3000,
        "every key read is known to the handover"
    );
    // asking for more than the bound is refused at once
    let e = all.initial_rows(&f.app, None, Some(11), 10).unwrap_err();
    assert_eq!(e.code, "BATCH_FETCH_FAILED");
}

#[tokio::test]
async fn subscribers_of_one_query_share_one_evaluation_and_its_rows() {
    let f = Fixture::new(100).await;
    let root = f.root();
    let mut a = f.subscribe(&root, "SELECT id, n FROM app.items WHERE n > 1");
    let mut b = f.subscribe(&root, "SELECT id, n FROM app.items WHERE n > 1");
    let mut other = f.subscribe(&root, "SELECT id FROM app.items");
    f.run(&root, "INSERT INTO app.items VALUES (1, 'a', 5)")
        .await;
    let rows = |rx: &mut Receiver| match rx.try_recv() {
        Some(Delivery::Changes(c)) => c[0].row.clone().unwrap(),
        got => panic!("{got:?}"),
    };
    let (ra, rb, ro) = (rows(&mut a), rows(&mut b), rows(&mut other));
    assert!(std::sync::Arc::ptr_eq(&ra, &rb), "one row, shared");
    assert!(!std::sync::Arc::ptr_eq(&ra, &ro), "another query, its own");
    assert_eq!(ro.len(), 2, "id and _seq");
}
