//! Indexes stay true to their rows under concurrent writers, while being
//! built, and after DROP; a unique index admits one row per value however
//! writers race.

use super::check_indexes;
use crate::{AppContext, CoreOptions, ExecutionContext};
use kalamdb_commons::{Role, UserId};
use kalamdb_store::{RocksDbBackend, RocksDbOptions};
use serde_json::Value as Json;
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    app: Arc<AppContext>,
}

impl Fixture {
    async fn new(setup: &str) -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let backend =
            Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
        let options = CoreOptions {
            bcrypt_cost: 4,
            ..CoreOptions::default()
        };
        let app = AppContext::open(backend, &options).unwrap();
        app.job_manager.start(&app).unwrap();
        let f = Arc::new(Self { _dir: dir, app });
        f.run(setup).await.unwrap();
        f
    }

    async fn run(&self, sql: &str) -> Result<Vec<Vec<Vec<Json>>>, String> {
        let root = ExecutionContext::new(UserId::new("root"), "root", Role::System);
        crate::executor::handlers::test_support::run_sql(&self.app, &root, sql).await
    }

    /// The one number a `SELECT count(*) …` returns.
    async fn count(&self, sql: &str) -> i64 {
        let rows = self.run(sql).await.unwrap();
        match &rows[0][0][0] {
            Json::Number(n) => n.as_i64().unwrap(),
            Json::String(s) => s.parse().unwrap(),
            other => panic!("{other}"),
        }
    }

    fn assert_consistent(&self) -> super::IndexCheck {
        let report = check_indexes(&self.app).unwrap();
        assert!(
            report.problems.is_empty(),
            "{} problem(s), first: {:?}",
            report.problems.len(),
            report.problems.first()
        );
        report
    }
}

/// A tiny deterministic generator, so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// One writer's statement: inserts, updates of the indexed columns (and
/// others), deletes, upserts, and two-statement transactions.
fn statement(rng: &mut Lcg) -> String {
    let id = rng.next(200);
    let v = rng.next(20);
    match rng.next(7) {
        0 => format!("INSERT INTO app.t VALUES ({id}, {v}, 'x{id}')"),
        1 => format!("UPDATE app.t SET v = {v} WHERE id = {id}"),
        2 => format!("UPDATE app.t SET body = 'y{v}' WHERE id = {id}"),
        3 => format!("DELETE FROM app.t WHERE id = {id}"),
        4 => format!(
            "INSERT INTO app.t VALUES ({id}, {v}, 'z') ON CONFLICT (id) DO UPDATE SET v = {v}"
        ),
        5 => format!("UPDATE app.t SET v = v + 1 WHERE v = {v}"),
        _ => format!(
            "BEGIN; UPDATE app.t SET v = {v} WHERE id = {id}; INSERT INTO app.t VALUES ({}, {v}, 'w') ON CONFLICT (id) DO NOTHING; COMMIT",
            (id + 1) % 200
        ),
    }
}

async fn write_storm(f: &Arc<Fixture>, writers: u64, statements: usize) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let f = Arc::clone(f);
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(w + 1);
            for _ in 0..statements {
                let sql = statement(&mut rng);
                if let Err(e) = f.run(&sql).await {
                    // a write that lost a race is refused whole, never half
                    assert!(
                        e.contains("WRITE_CONFLICT")
                            || e.contains("changed")
                            || e.contains("uplicate"),
                        "{sql}: {e}"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_every_entry_true_to_its_row() {
    let f = Fixture::new(
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.t (id INT PRIMARY KEY, v INT, body TEXT); \
         CREATE INDEX t_v ON app.t (v); CREATE INDEX t_body_v ON app.t (body, v)",
    )
    .await;
    write_storm(&f, 4, 300).await;
    let report = f.assert_consistent();
    assert_eq!(report.indexes, 2);
    // and every value's rows through the index are the full scan's
    for v in 0..21 {
        let by_index = f
            .count(&format!("SELECT count(*) FROM app.t WHERE v = {v}"))
            .await;
        let by_scan = f
            .count(&format!("SELECT count(*) FROM app.t WHERE v + 0 = {v}"))
            .await;
        assert_eq!(by_index, by_scan, "v = {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_index_built_while_writers_write_matches_every_row() {
    let f = Fixture::new(
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.t (id INT PRIMARY KEY, v INT, body TEXT)",
    )
    .await;
    // enough rows for many build chunks
    let values: Vec<String> = (0..3000)
        .map(|i| format!("({}, {}, 'r{i}')", i + 1000, i % 20))
        .collect();
    f.run(&format!("INSERT INTO app.t VALUES {}", values.join(", ")))
        .await
        .unwrap();
    let storm = {
        let f = Arc::clone(&f);
        tokio::spawn(async move { write_storm(&f, 3, 300).await })
    };
    // the table stays writable while the job builds the index
    f.run("CREATE INDEX t_v ON app.t (v)").await.unwrap();
    storm.await.unwrap();
    let report = f.assert_consistent();
    assert!(report.entries >= 3000, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_of_one_unique_value_store_it_once() {
    let f = Fixture::new(
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.u (id INT PRIMARY KEY, email TEXT UNIQUE)",
    )
    .await;
    for round in 0..20 {
        let barrier = Arc::new(tokio::sync::Barrier::new(6));
        let mut tasks = Vec::new();
        for w in 0..6 {
            let (f, barrier) = (Arc::clone(&f), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                // half insert new rows, half move an existing row onto it
                let sql = if w % 2 == 0 {
                    format!("INSERT INTO app.u VALUES ({}, 'e{round}')", round * 10 + w)
                } else {
                    format!("INSERT INTO app.u VALUES ({}, 'o{round}-{w}'); UPDATE app.u SET email = 'e{round}' WHERE id = {}", round * 10 + w, round * 10 + w)
                };
                f.run(&sql).await
            }));
        }
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                assert!(
                    e.contains("uplicate") || e.contains("WRITE_CONFLICT"),
                    "{e}"
                );
            }
        }
        let holders = f
            .count(&format!(
                "SELECT count(*) FROM app.u WHERE email = 'e{round}'"
            ))
            .await;
        assert_eq!(holders, 1, "round {round}");
    }
    f.assert_consistent();
}

#[tokio::test]
async fn dropping_an_index_or_its_table_leaves_no_entry() {
    let f = Fixture::new(
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.t (id INT PRIMARY KEY, v INT); \
         CREATE USER TABLE app.n (id INT PRIMARY KEY, v INT); \
         INSERT INTO app.t VALUES (1, 1), (2, 2); \
         CREATE INDEX t_v ON app.t (v); CREATE INDEX n_v ON app.n (v); \
         EXECUTE AS USER 'root' (INSERT INTO app.n VALUES (1, 5))",
    )
    .await;
    let entries = |f: &Fixture| {
        let mut n = 0;
        f.app
            .table_store
            .backend()
            .scan(
                kalamdb_store::Partition::Index,
                &[],
                &[0xFF; 9],
                &mut |_, _| {
                    n += 1;
                    Ok(true)
                },
            )
            .unwrap();
        n
    };
    assert_eq!(entries(&f), 3);
    f.run("DROP INDEX app.t_v").await.unwrap();
    assert_eq!(entries(&f), 1);
    f.run("DROP TABLE app.n").await.unwrap();
    assert_eq!(entries(&f), 0);
    f.assert_consistent();
}
