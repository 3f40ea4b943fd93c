//! The cold tier end to end inside one database: FLUSH moves rows into
//! segments, and every read and write path answers as before.

use crate::app_context::{AppContext, CoreOptions};
use crate::jobs::JobStatus;
use kalamdb_commons::{Role, UserId};
use kalamdb_store::{Partition, RocksDbBackend, RocksDbOptions, StorageBackend};
use serde_json::{Value as Json, json};
use std::sync::Arc;

struct Db {
    _dir: tempfile::TempDir,
    app: Arc<AppContext>,
}

fn open(dir: tempfile::TempDir) -> Db {
    let backend = Arc::new(
        RocksDbBackend::open(&dir.path().join("rocks"), &RocksDbOptions::default()).unwrap(),
    );
    let options = CoreOptions {
        bcrypt_cost: 4,
        local_storage_dir: dir.path().join("storage").display().to_string(),
        ..CoreOptions::default()
    };
    let app = AppContext::open(backend as Arc<dyn StorageBackend>, &options).unwrap();
    app.job_manager.start(&app).unwrap();
    Db { _dir: dir, app }
}

impl Db {
    fn new() -> Self {
        open(tempfile::tempdir().unwrap())
    }

    async fn try_sql(&self, user: &str, sql: &str) -> Result<Vec<Vec<Json>>, String> {
        let role = if user == "root" {
            Role::System
        } else {
            Role::User
        };
        let mut ctx = crate::ExecutionContext::new(UserId::new(user), user, role);
        let results = self.app.execute(&mut ctx, sql, &[]).await.map_err(|e| {
            format!(
                "{} {e}",
                kalamdb_commons::error_code::HasErrorCode::error_code(&e.error)
            )
        })?;
        let last = results.last().unwrap();
        let mut rows = Vec::new();
        for batch in &last.batches {
            crate::rows::json::append_rows(batch, &mut rows);
        }
        if rows.is_empty()
            && let Some(message) = &last.message
        {
            rows.push(vec![json!(message)]);
        }
        Ok(rows)
    }

    async fn sql(&self, user: &str, sql: &str) -> Vec<Vec<Json>> {
        self.try_sql(user, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs FLUSH TABLE and waits for its job; returns the job's message.
    async fn flush(&self, table: &str) -> String {
        let rows = self.sql("root", &format!("FLUSH TABLE {table}")).await;
        let message = rows[0][0].as_str().unwrap().to_string();
        let job_id = message.rsplit("Job ID: ").next().unwrap().to_string();
        let job = self.app.job_manager.finished(&job_id).await.unwrap();
        assert_eq!(job.status, JobStatus::Completed, "{job:?}");
        job.message.unwrap()
    }

    /// A job manager of its own running only `executor` (one a test can
    /// hold mid-way).
    fn manager_of(
        &self,
        executor: Arc<dyn crate::jobs::JobExecutor<AppContext>>,
    ) -> Arc<crate::jobs::UnifiedJobManager<AppContext>> {
        let mut registry = crate::jobs::JobRegistry::new();
        registry.register(executor);
        let manager = Arc::new(crate::jobs::UnifiedJobManager::new(
            self.app.meta.clone(),
            crate::jobs::JobsConfig::default(),
            Arc::new(crate::jobs::SystemClock),
            registry,
        ));
        manager.start(&self.app).unwrap();
        manager
    }

    fn hot_rows(&self, table: &str) -> usize {
        let table = self.app.schema_registry.get_table("app", table).unwrap();
        let (start, end) = crate::table_store::table_range(table.definition.table_id);
        let mut n = 0;
        self.app
            .table_store
            .backend()
            .scan(Partition::Data, &start, &end, &mut |_, _| {
                n += 1;
                Ok(true)
            })
            .unwrap();
        n
    }
}

const QUERIES: &[&str] = &[
    "SELECT count(*) FROM app.items",
    "SELECT * FROM app.items ORDER BY id",
    "SELECT * FROM app.items WHERE id = 123",
    "SELECT id, name FROM app.items WHERE id IN (3, 150, 299, 5000) ORDER BY id",
    "SELECT id FROM app.items WHERE id BETWEEN 100 AND 110 ORDER BY id DESC",
    "SELECT id, n FROM app.items ORDER BY id DESC LIMIT 5",
    "SELECT sum(n), count(name) FROM app.items WHERE name LIKE 'item 1%'",
    "SELECT n % 7 AS k, count(*) FROM app.items GROUP BY n % 7 ORDER BY k",
];

async fn answers(db: &Db) -> Vec<Vec<Vec<Json>>> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(db.sql("root", q).await);
    }
    out
}

fn items(range: std::ops::Range<i64>) -> String {
    let rows: Vec<String> = range
        .map(|i| {
            let name = if i % 10 == 0 {
                "NULL".to_string()
            } else {
                format!("'item {i}'")
            };
            format!("({i}, {name}, {})", i * 3)
        })
        .collect();
    format!(
        "INSERT INTO app.items (id, name, n) VALUES {}",
        rows.join(", ")
    )
}

#[tokio::test]
async fn a_flushed_shared_table_answers_every_read_and_write_as_before() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, n INT)",
    )
    .await;
    db.sql("root", &items(0..300)).await;
    let before = answers(&db).await;
    assert_eq!(before[0], vec![vec![json!("300")]]);

    let message = db.flush("app.items").await;
    assert!(message.starts_with("Flushed 300 row(s)"), "{message}");
    assert_eq!(
        db.hot_rows("items"),
        0,
        "every flushed row left the hot tier"
    );
    assert_eq!(answers(&db).await, before);

    // writes over cold rows: a new hot version, a hot tombstone, the key
    // check, ON CONFLICT
    db.sql("root", "UPDATE app.items SET n = -1 WHERE id = 5")
        .await;
    db.sql("root", "DELETE FROM app.items WHERE id = 6").await;
    let dup = db
        .try_sql("root", "INSERT INTO app.items (id, n) VALUES (7, 0)")
        .await;
    assert!(dup.unwrap_err().starts_with("UNIQUE_VIOLATION"));
    db.sql(
        "root",
        "INSERT INTO app.items (id, n) VALUES (8, 0) ON CONFLICT (id) DO UPDATE SET n = 88",
    )
    .await;
    db.sql(
        "root",
        "INSERT INTO app.items (id, name, n) VALUES (1000, 'new', 1)",
    )
    .await;
    db.sql(
        "root",
        "UPDATE app.items SET name = 'ranged' WHERE id >= 290 AND id < 292",
    )
    .await;
    let changed =
        "SELECT id, name, n FROM app.items WHERE id IN (5, 6, 7, 8, 290, 291, 1000) ORDER BY id";
    let expected = vec![
        vec![json!("5"), json!("item 5"), json!(-1)],
        vec![json!("7"), json!("item 7"), json!(21)],
        vec![json!("8"), json!("item 8"), json!(88)],
        vec![json!("290"), json!("ranged"), json!(870)],
        vec![json!("291"), json!("ranged"), json!(873)],
        vec![json!("1000"), json!("new"), json!(1)],
    ];
    assert_eq!(db.sql("root", changed).await, expected);
    assert_eq!(
        db.sql("root", "SELECT count(*) FROM app.items").await,
        vec![vec![json!("300")]]
    );
    assert_eq!(
        db.sql("root", "SELECT * FROM app.items WHERE id = 6").await,
        Vec::<Vec<Json>>::new()
    );
    let after_writes = answers(&db).await;

    // the second flush puts the newer versions and the tombstone in a
    // second segment; the older versions in the first never come back
    let message = db.flush("app.items").await;
    assert!(message.starts_with("Flushed 6 row(s)"), "{message}");
    assert_eq!(db.hot_rows("items"), 0);
    assert_eq!(db.sql("root", changed).await, expected);
    assert_eq!(answers(&db).await, after_writes);

    // a tombstone over a cold version survives retention's purge
    db.sql("root", "DELETE FROM app.items WHERE id = 9").await;
    let table = db.app.schema_registry.get_table("app", "items").unwrap();
    let reader = crate::row_reader::RowReader::new(
        Arc::clone(&table),
        db.app.table_store.clone(),
        &crate::table_store::RowScope::Shared,
    );
    let key = reader.key_of(&[kalamdb_commons::Value::Int64(9)]).unwrap();
    let (seq, _) = {
        let mut found = None;
        reader
            .get_row(&key, true, &mut |row| {
                found = Some((row.seq, row.deleted));
                Ok(())
            })
            .unwrap();
        found.unwrap()
    };
    assert_eq!(
        db.app
            .writes
            .purge(&[(key, seq)], kalamdb_store::Batch::new())
            .unwrap(),
        0
    );
    assert_eq!(
        db.sql("root", "SELECT id FROM app.items WHERE id = 9")
            .await,
        Vec::<Vec<Json>>::new()
    );

    // with nothing cached (as after a restart) the manifests and the cold
    // index come from RocksDB
    let final_answers = answers(&db).await;
    db.app.table_store.cold().clear();
    assert_eq!(answers(&db).await, final_answers);
    assert_eq!(db.sql("root", changed).await, expected);
}

#[tokio::test]
async fn a_user_tables_partitions_flush_apart_and_each_user_reads_only_their_own() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)",
    )
    .await;
    for user in ["u_a", "u_b"] {
        let rows: Vec<String> = (0..50).map(|i| format!("({i}, '{user} {i}')")).collect();
        db.sql(
            user,
            &format!("INSERT INTO app.notes VALUES {}", rows.join(", ")),
        )
        .await;
    }
    let message = db.flush("app.notes").await;
    assert!(
        message.contains("100 row(s)") && message.contains("from 2 partition(s) into 2 segment(s)"),
        "{message}"
    );
    assert_eq!(db.hot_rows("notes"), 0);
    for user in ["u_a", "u_b"] {
        let rows = db
            .sql(
                user,
                "SELECT body FROM app.notes WHERE id >= 48 ORDER BY id",
            )
            .await;
        assert_eq!(
            rows,
            vec![
                vec![json!(format!("{user} 48"))],
                vec![json!(format!("{user} 49"))]
            ]
        );
        assert_eq!(
            db.sql(user, "SELECT count(*) FROM app.notes").await,
            vec![vec![json!("50")]]
        );
        assert_eq!(
            db.sql(user, "SELECT body FROM app.notes WHERE id = 3")
                .await,
            vec![vec![json!(format!("{user} 3"))]]
        );
    }
    // an index built over cold rows of every user, read by each user
    db.sql("root", "CREATE INDEX by_body ON app.notes (body)")
        .await;
    for user in ["u_a", "u_b"] {
        assert_eq!(
            db.sql(
                user,
                &format!("SELECT id FROM app.notes WHERE body = '{user} 7'")
            )
            .await,
            vec![vec![json!(7)]]
        );
        assert_eq!(
            db.sql(
                user,
                "SELECT id FROM app.notes WHERE body = 'u_a 8' OR body = 'u_b 9' ORDER BY id"
            )
            .await,
            vec![vec![json!(if user == "u_a" { 8 } else { 9 })]]
        );
    }
    db.sql("u_a", "UPDATE app.notes SET body = 'changed' WHERE id = 3")
        .await;
    assert_eq!(
        db.sql("u_b", "SELECT body FROM app.notes WHERE id = 3")
            .await,
        vec![vec![json!("u_b 3")]]
    );
    assert_eq!(
        db.sql("u_a", "SELECT body FROM app.notes WHERE id = 3")
            .await,
        vec![vec![json!("changed")]]
    );
}

#[tokio::test]
async fn purging_a_users_rows_takes_their_cold_rows_too() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)",
    )
    .await;
    for user in ["u_a", "u_b"] {
        db.sql(
            user,
            &format!("INSERT INTO app.notes VALUES (1, '{user}'), (2, '{user}')"),
        )
        .await;
    }
    db.flush("app.notes").await;
    db.sql("u_a", "INSERT INTO app.notes VALUES (3, 'hot')")
        .await;
    // what UserCleanup writes for a purged user
    let table = db.app.schema_registry.get_table("app", "notes").unwrap();
    let mut batch = kalamdb_store::Batch::new();
    crate::table_store::delete_user_rows(&mut batch, &table.definition, &UserId::new("u_a"))
        .unwrap();
    db.app.table_store.write(batch).unwrap();
    let prefix = crate::table_store::partition_prefix(
        table.definition.table_id,
        &crate::table_store::RowScope::User(UserId::new("u_a")),
    );
    db.app.table_store.cold().forget(&prefix);
    assert_eq!(
        db.sql("u_a", "SELECT count(*) FROM app.notes").await,
        vec![vec![json!("0")]]
    );
    assert_eq!(
        db.sql("u_a", "SELECT * FROM app.notes WHERE id = 1").await,
        Vec::<Vec<Json>>::new()
    );
    let again = db
        .try_sql("u_a", "INSERT INTO app.notes VALUES (1, 'new')")
        .await;
    assert!(again.is_ok(), "the key is free: {again:?}");
    assert_eq!(
        db.sql("u_b", "SELECT count(*) FROM app.notes").await,
        vec![vec![json!("2")]]
    );
    let manifests = crate::cold::manifests_of(
        db.app.table_store.backend().as_ref(),
        table.definition.table_id.0,
    )
    .unwrap();
    assert_eq!(manifests.len(), 1, "u_b's manifest only");
}

#[tokio::test]
async fn a_segment_written_under_an_old_schema_reads_under_the_new_one() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT, n INT, note TEXT)",
    )
    .await;
    db.sql(
        "root",
        "INSERT INTO app.t VALUES (1, 'one', 10, 'x'), (2, 'two', 20, NULL)",
    )
    .await;
    db.flush("app.t").await;
    // v1 → v6: added with a default, renamed, widened, dropped, re-added
    db.sql(
        "root",
        "ALTER TABLE app.t ADD COLUMN tag TEXT DEFAULT 'none';          ALTER TABLE app.t RENAME COLUMN v TO body;          ALTER TABLE app.t ALTER COLUMN n TYPE BIGINT;          ALTER TABLE app.t DROP COLUMN note;          ALTER TABLE app.t ADD COLUMN note TEXT",
    )
    .await;
    db.sql(
        "root",
        "INSERT INTO app.t VALUES (3, 'three', 30, 'new', 'y')",
    )
    .await;
    db.flush("app.t").await;
    db.sql("root", "UPDATE app.t SET tag = 'set' WHERE id = 2")
        .await;
    let want = vec![
        vec![
            json!("1"),
            json!("one"),
            json!("10"),
            json!("none"),
            Json::Null,
        ],
        vec![
            json!("2"),
            json!("two"),
            json!("20"),
            json!("set"),
            Json::Null,
        ],
        vec![
            json!("3"),
            json!("three"),
            json!("30"),
            json!("new"),
            json!("y"),
        ],
    ];
    let all = "SELECT id, body, n, tag, note FROM app.t ORDER BY id";
    assert_eq!(db.sql("root", all).await, want);
    assert_eq!(
        db.sql("root", "SELECT body, tag FROM app.t WHERE id = 1")
            .await,
        vec![vec![json!("one"), json!("none")]]
    );
    // checks over existing rows see the cold ones
    let refused = db
        .try_sql("root", "ALTER TABLE app.t ALTER COLUMN note SET NOT NULL")
        .await;
    assert!(refused.is_err(), "rows 1 and 2 have no note: {refused:?}");
    db.app.table_store.cold().clear();
    assert_eq!(db.sql("root", all).await, want);
}

#[tokio::test]
async fn what_cannot_be_flushed_says_why() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (at BIGINT, line TEXT); \
         CREATE STREAM TABLE app.ev (id INT PRIMARY KEY) WITH (TTL_SECONDS = 60)",
    )
    .await;
    let stream = db.try_sql("root", "FLUSH TABLE app.ev").await.unwrap_err();
    assert!(stream.contains("STREAM table"), "{stream}");
    // FLUSH ALL skips the STREAM table (the keyless SHARED one flushes)
    let all = db.sql("root", "FLUSH ALL TABLES IN app").await;
    let message = all[0][0].as_str().unwrap();
    assert!(
        message.starts_with("Flush started for 1 table(s). Job IDs: [FL-"),
        "{message}"
    );
}

#[tokio::test]
async fn a_keyless_table_flushes_and_its_moved_rows_never_resurface() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.log (at BIGINT, line TEXT); \
         INSERT INTO app.log VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )
    .await;
    let message = db.flush("app.log").await;
    assert!(message.starts_with("Flushed 3 row(s)"), "{message}");
    assert_eq!(db.hot_rows("log"), 0);
    let all = "SELECT at, line FROM app.log ORDER BY at";
    // an UPDATE moves the row to its new _seq key; the cold copy at the old
    // key is hidden by the tombstone left there
    db.sql(
        "root",
        "UPDATE app.log SET line = 'TWO' WHERE at = 2; DELETE FROM app.log WHERE at = 3",
    )
    .await;
    let want = vec![
        vec![json!("1"), json!("one")],
        vec![json!("2"), json!("TWO")],
    ];
    assert_eq!(db.sql("root", all).await, want);
    assert_eq!(
        db.sql("root", "SELECT count(*) FROM app.log").await,
        vec![vec![json!("2")]]
    );
    db.app.table_store.cold().clear();
    assert_eq!(db.sql("root", all).await, want);
    // flushed again (the moved row, its tombstone and the delete's), then
    // updated again while cold
    db.flush("app.log").await;
    assert_eq!(db.sql("root", all).await, want);
    db.sql("root", "UPDATE app.log SET line = 'uno' WHERE at = 1")
        .await;
    assert_eq!(
        db.sql("root", all).await,
        vec![
            vec![json!("1"), json!("uno")],
            vec![json!("2"), json!("TWO")],
        ]
    );
}

#[tokio::test]
async fn a_write_during_the_upload_stays_hot_and_wins_over_its_cold_copy() {
    use crate::jobs::executors::flush::{FlushExecutor, FlushPause};
    use crate::jobs::{JobOptions, JobType};
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, n INT)",
    )
    .await;
    db.sql("root", &items(0..10)).await;
    // a manager of its own whose flush waits between upload and commit
    let pause = Arc::new(FlushPause::default());
    let manager = db.manager_of(Arc::new(FlushExecutor {
        pause: Some(Arc::clone(&pause)),
    }));
    let table = db.app.schema_registry.get_table("app", "items").unwrap();
    let job = manager
        .create_job(
            JobType::Flush,
            JobOptions {
                parameters: json!({ "table_id": table.definition.table_id.0 }),
                ..JobOptions::default()
            },
        )
        .unwrap();
    pause.uploaded.notified().await;
    // the segment holds all ten rows as they were; these commit now
    db.sql("root", "UPDATE app.items SET n = 1000 WHERE id = 3")
        .await;
    db.sql("root", "DELETE FROM app.items WHERE id = 4").await;
    pause.resume.notify_one();
    let done = manager.finished(&job).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    let message = done.message.unwrap();
    assert!(
        message.contains("8 hot row(s) removed (2 changed during the flush"),
        "{message}"
    );
    assert_eq!(
        db.hot_rows("items"),
        2,
        "the two rows written during the upload stay hot"
    );
    let rows = db
        .sql(
            "root",
            "SELECT id, n FROM app.items WHERE id BETWEEN 2 AND 5 ORDER BY id",
        )
        .await;
    assert_eq!(
        rows,
        vec![
            vec![json!("2"), json!(6)],
            vec![json!("3"), json!(1000)],
            vec![json!("5"), json!(15)],
        ]
    );
    assert_eq!(
        db.sql("root", "SELECT count(*) FROM app.items").await,
        vec![vec![json!("9")]]
    );
    // the next flush moves them too; the older copies stay hidden
    let message = db.flush("app.items").await;
    assert!(message.starts_with("Flushed 2 row(s)"), "{message}");
    assert_eq!(db.hot_rows("items"), 0);
    assert_eq!(
        db.sql(
            "root",
            "SELECT id, n FROM app.items WHERE id BETWEEN 2 AND 5 ORDER BY id"
        )
        .await,
        rows
    );
}

#[tokio::test]
async fn indexes_transactions_and_key_orders_work_over_cold_rows() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, n INT); \
         CREATE INDEX by_n ON app.items (n)",
    )
    .await;
    db.sql("root", &items(0..100)).await;
    db.flush("app.items").await;
    // an index built after the flush reads the cold rows; one maintained
    // before it still finds them
    db.sql("root", "CREATE INDEX by_name ON app.items (name)")
        .await;
    assert_eq!(
        db.sql("root", "SELECT id FROM app.items WHERE name = 'item 42'")
            .await,
        vec![vec![json!("42")]]
    );
    assert_eq!(
        db.sql(
            "root",
            "SELECT id FROM app.items WHERE n = 99 OR n = 102 ORDER BY id"
        )
        .await,
        vec![vec![json!("33")], vec![json!("34")]]
    );
    // a transaction over cold rows sees its own writes, then commits them
    db.sql(
        "root",
        "BEGIN; UPDATE app.items SET n = 5000 WHERE id = 10; DELETE FROM app.items WHERE id = 11; \
         INSERT INTO app.items (id, n) VALUES (500, 1); COMMIT",
    )
    .await;
    assert_eq!(
        db.sql(
            "root",
            "SELECT id, n FROM app.items WHERE id IN (10, 11, 500) ORDER BY id"
        )
        .await,
        vec![vec![json!("10"), json!(5000)], vec![json!("500"), json!(1)]]
    );
    assert_eq!(
        db.sql("root", "SELECT id FROM app.items WHERE n = 5000")
            .await,
        vec![vec![json!("10")]]
    );
    assert_eq!(
        db.sql("root", "SELECT id FROM app.items WHERE n = 30")
            .await,
        Vec::<Vec<Json>>::new()
    );
    // backward and forward over a mix of hot and cold rows
    assert_eq!(
        db.sql(
            "root",
            "SELECT id FROM app.items WHERE id > 97 ORDER BY id DESC"
        )
        .await,
        vec![vec![json!("500")], vec![json!("99")], vec![json!("98")]]
    );
    assert_eq!(
        db.sql(
            "root",
            "SELECT id FROM app.items WHERE id >= 9 ORDER BY id LIMIT 3"
        )
        .await,
        vec![vec![json!("9")], vec![json!("10")], vec![json!("12")]]
    );
}

#[tokio::test]
async fn flush_policies_start_flushes_by_rows_and_by_interval() {
    use crate::jobs::executors::flush::FlushPolicies;
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, n INT) WITH (FLUSH_POLICY = 'rows:100'); \
         CREATE SHARED TABLE app.slow (id INT PRIMARY KEY) WITH (FLUSH_POLICY = 'interval:60'); \
         CREATE SHARED TABLE app.never (id INT PRIMARY KEY)",
    )
    .await;
    let policies = FlushPolicies::default();
    let t0 = 1_000_000;
    db.sql("root", &items(0..60)).await;
    db.sql(
        "root",
        "INSERT INTO app.slow VALUES (1); INSERT INTO app.never VALUES (1)",
    )
    .await;
    assert!(
        policies.tick(&db.app, t0).is_empty(),
        "60 rows of 100, and no time passed"
    );
    db.sql("root", &items(60..130)).await;
    let started = policies.tick(&db.app, t0 + 1000);
    assert_eq!(started.len(), 1, "rows:100 reached");
    let job = db.app.job_manager.finished(&started[0]).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert!(
        job.message
            .unwrap()
            .starts_with("Flushed 130 row(s) of app.items")
    );
    assert_eq!(db.hot_rows("items"), 0);
    // the count starts again; the interval table's minute has not passed
    assert!(policies.tick(&db.app, t0 + 2000).is_empty());
    let started = policies.tick(&db.app, t0 + 61_000);
    assert_eq!(started.len(), 1, "interval:60 passed with a row written");
    let job = db.app.job_manager.finished(&started[0]).await.unwrap();
    assert!(
        job.message
            .unwrap()
            .starts_with("Flushed 1 row(s) of app.slow")
    );
    // nothing written since: no flush however long it has been
    assert!(policies.tick(&db.app, t0 + 500_000).is_empty());
    assert_eq!(db.hot_rows("never"), 1);
    assert_eq!(
        db.sql("root", "SELECT count(*) FROM app.items").await,
        vec![vec![json!("130")]]
    );
}

impl Db {
    /// Runs STORAGE COMPACT TABLE and waits for its job; returns the job's
    /// message.
    async fn compact(&self, table: &str) -> String {
        let rows = self
            .sql("root", &format!("STORAGE COMPACT TABLE {table}"))
            .await;
        let message = rows[0][0].as_str().unwrap().to_string();
        let job_id = message.rsplit("Job ID: ").next().unwrap().to_string();
        let job = self.app.job_manager.finished(&job_id).await.unwrap();
        assert_eq!(job.status, JobStatus::Completed, "{job:?}");
        job.message.unwrap()
    }

    /// The segment files on the local storage.
    fn segment_files(&self) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".parquet"))
                {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self._dir.path().join("storage"), &mut out);
        out.sort();
        out
    }

    /// The manifest of the SHARED table `app.<table>`.
    fn shared_manifest(&self, table: &str) -> Arc<kalamdb_filestore::Manifest> {
        let table = self.app.schema_registry.get_table("app", table).unwrap();
        let (prefix, _) = crate::table_store::table_range(table.definition.table_id);
        self.app
            .table_store
            .cold()
            .manifest(self.app.table_store.backend().as_ref(), &prefix)
            .unwrap()
    }

    /// Waits for the jobs a job's message lists in `[…]` after `marker`.
    async fn followups(&self, message: &str, marker: &str) -> Vec<String> {
        let Some((_, rest)) = message.split_once(marker) else {
            return Vec::new();
        };
        let list = rest
            .trim_start_matches([' ', '['])
            .split(']')
            .next()
            .unwrap();
        let mut out = Vec::new();
        for id in list.split(", ").filter(|s| !s.is_empty()) {
            let job = self.app.job_manager.finished(id).await.unwrap();
            assert_eq!(job.status, JobStatus::Completed, "{job:?}");
            out.push(job.message.unwrap());
        }
        out
    }

    async fn retention(&self) -> String {
        let id = self
            .app
            .job_manager
            .create_job(
                crate::jobs::JobType::Retention,
                crate::jobs::JobOptions::default(),
            )
            .unwrap();
        let job = self.app.job_manager.finished(&id).await.unwrap();
        assert_eq!(job.status, JobStatus::Completed, "{job:?}");
        job.message.unwrap()
    }
}

/// Three segments of `app.items` (ids 0..3000) with newer versions of some
/// rows and tombstones of others in the later ones.
async fn three_segments(db: &Db, options: &str) {
    db.sql(
        "root",
        &format!(
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, n INT){options}"
        ),
    )
    .await;
    for chunk in 0..3 {
        db.sql("root", &items(chunk * 1000..(chunk + 1) * 1000))
            .await;
    }
    db.flush("app.items").await;
    db.sql(
        "root",
        "UPDATE app.items SET n = -1 WHERE id % 100 = 5; DELETE FROM app.items WHERE id % 100 = 6",
    )
    .await;
    db.flush("app.items").await;
    db.sql(
        "root",
        "UPDATE app.items SET name = 'third' WHERE id % 100 = 5 AND id < 1000; \
         INSERT INTO app.items (id, name, n) VALUES (5000, 'new', 1)",
    )
    .await;
    db.flush("app.items").await;
}

#[tokio::test]
async fn compaction_merges_segments_into_one_that_reads_the_same() {
    let db = Db::new();
    three_segments(&db, "").await;
    assert_eq!(db.shared_manifest("items").segments.len(), 3);
    assert_eq!(db.segment_files().len(), 3);
    let before = answers(&db).await;
    let deleted = "SELECT count(*) FROM app.items WHERE _deleted = true";
    assert_eq!(db.sql("root", deleted).await, vec![vec![json!("30")]]);
    let changed =
        "SELECT id, name, n FROM app.items WHERE id IN (5, 6, 105, 1005, 5000) ORDER BY id";
    let changed_before = db.sql("root", changed).await;
    assert_eq!(
        changed_before,
        vec![
            vec![json!("5"), json!("third"), json!(-1)],
            vec![json!("105"), json!("third"), json!(-1)],
            vec![json!("1005"), json!("item 1005"), json!(-1)],
            vec![json!("5000"), json!("new"), json!(1)],
        ]
    );

    let message = db.compact("app.items").await;
    // 3000 + 60 + 11 rows in; 3001 keys out (the 30 tombstones are within
    // their retention: kept)
    assert_eq!(
        message,
        "Compacted app.items: 3 segment(s) of 1 partition(s) into 1; 3071 row(s) read, 3001 written (70 superseded version(s) and 0 tombstone(s) dropped)"
    );
    let manifest = db.shared_manifest("items");
    assert_eq!(manifest.segments.len(), 1);
    assert_eq!(manifest.segments[0].rows, 3001);
    assert_eq!(manifest.segments[0].deleted, 30);
    assert_eq!(db.segment_files().len(), 1, "the replaced files are gone");
    assert_eq!(answers(&db).await, before);
    assert_eq!(db.sql("root", changed).await, changed_before);
    assert_eq!(db.sql("root", deleted).await, vec![vec![json!("30")]]);
    // the key check and ON CONFLICT find the compacted rows
    let dup = db
        .try_sql("root", "INSERT INTO app.items (id, n) VALUES (7, 0)")
        .await;
    assert!(dup.unwrap_err().starts_with("UNIQUE_VIOLATION"));
    db.sql("root", "INSERT INTO app.items (id, n) VALUES (6, 66)")
        .await;
    // nothing cached: the manifest and the cold index come from RocksDB
    db.app.table_store.cold().clear();
    assert_eq!(
        db.sql(
            "root",
            "SELECT id, n FROM app.items WHERE id IN (5, 6) ORDER BY id"
        )
        .await,
        vec![vec![json!("5"), json!(-1)], vec![json!("6"), json!(66)]]
    );

    // nothing left to merge: one segment is not rewritten
    let message = db.compact("app.items").await;
    assert!(
        message.contains(": 0 segment(s) of 0 partition(s)"),
        "{message}"
    );
    // STORAGE COMPACT ALL starts one job per table with a cold tier
    db.sql("root", "CREATE SHARED TABLE app.empty (id INT PRIMARY KEY)")
        .await;
    let rows = db.sql("root", "STORAGE COMPACT ALL IN app").await;
    let message = rows[0][0].as_str().unwrap();
    assert!(
        message.starts_with("Compaction started for 1 table(s)"),
        "{message}"
    );
    let err = db
        .try_sql("root", "STORAGE COMPACT ALL IN nowhere")
        .await
        .unwrap_err();
    assert!(err.starts_with("NAMESPACE_NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn retention_drops_cold_tombstones_through_flush_and_compaction() {
    let db = Db::new();
    three_segments(&db, " WITH (DELETED_RETENTION_HOURS = 0)").await;
    let deleted = "SELECT count(*) FROM app.items WHERE _deleted = true";
    // a cold row deleted now: its hot tombstone hides the cold version
    db.sql("root", "DELETE FROM app.items WHERE id = 2999")
        .await;
    let before = answers(&db).await;
    assert_eq!(db.sql("root", deleted).await, vec![vec![json!("31")]]);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let message = db.retention().await;
    assert!(
        message.starts_with("Purged 0 soft-deleted row(s)"),
        "{message}"
    );
    let jobs = db.followups(&message, "started for the cold tier:").await;
    // the hot tombstone flushed; the four segments' tombstones dropped
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs[0].starts_with("Flushed 1 row(s)"), "{jobs:?}");
    assert!(
        jobs[1].contains("into 1;") && jobs[1].ends_with("and 31 tombstone(s) dropped)"),
        "{jobs:?}"
    );
    let manifest = db.shared_manifest("items");
    assert_eq!(manifest.segments.len(), 1);
    assert_eq!(manifest.segments[0].rows, 2970);
    assert_eq!(manifest.segments[0].deleted, 0);
    assert_eq!(db.sql("root", deleted).await, vec![vec![json!("0")]]);
    assert_eq!(
        db.sql("root", "SELECT count(*) FROM app.items").await,
        vec![vec![json!("2970")]]
    );
    assert!(
        answers(&db).await == before,
        "every live row reads as before"
    );
    // the dropped keys' cold index entries went with them
    let table = db.app.schema_registry.get_table("app", "items").unwrap();
    let reader = crate::row_reader::RowReader::new(
        Arc::clone(&table),
        db.app.table_store.clone(),
        &crate::table_store::RowScope::Shared,
    );
    for id in [6, 2906, 2999] {
        let key = reader.key_of(&[kalamdb_commons::Value::Int64(id)]).unwrap();
        let stub = db
            .app
            .table_store
            .backend()
            .get(Partition::Index, &crate::cold::cold_index_key(&key))
            .unwrap();
        assert!(stub.is_none(), "id {id}");
    }
    // a second run has nothing to do
    let message = db.retention().await;
    assert!(!message.contains("started for the cold tier"), "{message}");
}

#[tokio::test]
async fn a_query_reading_replaced_segments_keeps_their_files_until_it_ends() {
    let db = Db::new();
    three_segments(&db, "").await;
    let old_files = db.segment_files();
    let table = db.app.schema_registry.get_table("app", "items").unwrap();
    let (start, end) = crate::table_store::table_range(table.definition.table_id);
    let cold = Arc::clone(db.app.table_store.cold());
    // a scan begun before the compaction holds its segments open
    let mut cursors = cold
        .cursors(
            db.app.table_store.backend().as_ref(),
            &start,
            true,
            &start,
            &end,
            false,
        )
        .unwrap();
    assert_eq!(cursors.len(), 3);
    db.compact("app.items").await;
    assert_eq!(cold.retired_count(), 3, "held by the running scan");
    for file in &old_files {
        assert!(file.exists(), "{file:?} deleted under a reader");
    }
    assert_eq!(db.segment_files().len(), 4);
    // the scan reads every row of the segments it began with
    let mut rows = 0;
    for (cursor, _) in &mut cursors {
        while cursor.fill().unwrap() {
            rows += 1;
            cursor.advance();
        }
    }
    assert_eq!(rows, 3071);
    assert_eq!(cold.reap().await, 0, "still open");
    drop(cursors);
    assert_eq!(cold.reap().await, 3);
    assert_eq!(cold.retired_count(), 0);
    assert_eq!(db.segment_files().len(), 1);
    for file in &old_files {
        assert!(!file.exists(), "{file:?}");
    }
    // a backup in progress holds deletions off
    db.sql("root", "UPDATE app.items SET n = n WHERE id < 10")
        .await;
    db.flush("app.items").await;
    db.sql("root", "UPDATE app.items SET n = n WHERE id < 10")
        .await;
    db.flush("app.items").await;
    let hold = cold.hold_deletions();
    db.compact("app.items").await;
    assert_eq!(cold.retired_count(), 3, "the compacted one and the two new");
    assert_eq!(cold.reap().await, 0);
    drop(hold);
    assert_eq!(cold.reap().await, 3);
    assert_eq!(db.segment_files().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_running_throughout_compactions_answer_correctly() {
    let db = Arc::new(Db::new());
    three_segments(&db, "").await;
    let expected = answers(&db).await;
    let changed =
        "SELECT id, name, n FROM app.items WHERE id IN (5, 6, 105, 1005, 5000) ORDER BY id";
    let expected_changed = db.sql("root", changed).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (db, stop, expected, expected_changed) = (
            Arc::clone(&db),
            Arc::clone(&stop),
            expected.clone(),
            expected_changed.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                assert_eq!(answers(&db).await, expected);
                assert_eq!(db.sql("root", changed).await, expected_changed);
                rounds += 1;
            }
            rounds
        }));
    }
    for round in 0..6 {
        // a new version of a tenth of the rows, same values: a new segment
        db.sql(
            "root",
            &format!("UPDATE app.items SET n = n WHERE id % 10 = {round}"),
        )
        .await;
        db.flush("app.items").await;
        if round % 2 == 1 {
            let message = db.compact("app.items").await;
            assert!(message.contains("into 1;"), "{message}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut rounds = 0;
    for reader in readers {
        rounds += reader.await.unwrap();
    }
    assert!(rounds >= 2, "the readers ran {rounds} round(s)");
    db.app.table_store.cold().reap().await;
    assert_eq!(db.shared_manifest("items").segments.len(), 1);
    assert_eq!(db.segment_files().len(), 1);
    assert_eq!(answers(&db).await, expected);
}

// ------------------------------------------------------ backup and restore

impl Db {
    /// Runs `sql` (a statement starting a job) and waits for the job.
    async fn job(&self, sql: &str) -> crate::jobs::Job {
        let rows = self.sql("root", sql).await;
        let message = rows[0][0].as_str().unwrap().to_string();
        let job_id = message.rsplit("Job ID: ").next().unwrap().to_string();
        self.app.job_manager.finished(&job_id).await.unwrap()
    }
}

/// Every row of the backup test's tables, with its `_seq`, as each reader
/// sees it, through the key, the index, scans and aggregates.
async fn contents(db: &Db) -> Vec<Vec<Vec<Json>>> {
    let mut out = answers(db).await;
    for (user, q) in [
        (
            "root",
            "SELECT id, name, n, _seq FROM app.items ORDER BY id",
        ),
        (
            "root",
            "SELECT count(*) FROM app.items WHERE _deleted = true",
        ),
        (
            "root",
            "SELECT id, name FROM app.items WHERE n = 7 ORDER BY id",
        ),
        (
            "ann",
            "SELECT id, body, tag, _seq FROM app.notes ORDER BY id",
        ),
        (
            "bob",
            "SELECT id, body, tag, _seq FROM app.notes ORDER BY id",
        ),
        ("ann", "SELECT body FROM app.notes WHERE id = 2"),
    ] {
        out.push(db.sql(user, q).await);
    }
    out
}

#[tokio::test]
async fn a_backup_taken_while_writes_and_a_compaction_go_on_restores_row_for_row() {
    use crate::jobs::executors::backup::BackupExecutor;
    use crate::jobs::executors::flush::FlushPause;
    use crate::jobs::{JobOptions, JobType};
    let db = Db::new();
    // SHARED: three segments, hot versions and tombstones over cold rows,
    // an index; USER: two partitions, a segment under schema v1 read as v2
    three_segments(&db, "").await;
    db.sql(
        "root",
        "UPDATE app.items SET n = 7 WHERE id < 20; DELETE FROM app.items WHERE id BETWEEN 20 AND 24; \
         CREATE INDEX by_n ON app.items (n); \
         CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT); \
         CREATE USER 'carol' WITH PASSWORD 'carol-pass-1' ROLE user; \
         CREATE USER 'ops' WITH PASSWORD 'ops-pass-123' ROLE system",
    )
    .await;
    for user in ["ann", "bob"] {
        db.sql(
            user,
            &format!("INSERT INTO app.notes VALUES (1, '{user} one'), (2, '{user} two')"),
        )
        .await;
    }
    db.flush("app.notes").await;
    db.sql(
        "root",
        "ALTER TABLE app.notes ADD COLUMN tag TEXT DEFAULT 'none'",
    )
    .await;
    db.sql(
        "ann",
        "INSERT INTO app.notes (id, body, tag) VALUES (3, 'ann three', 'hot'); \
         UPDATE app.notes SET body = 'edited' WHERE id = 1",
    )
    .await;
    let expected = contents(&db).await;
    assert_eq!(expected[8].len(), 3001 - 30 - 5);
    let segments_before = db.segment_files();
    assert_eq!(segments_before.len(), 5);

    // a manager of its own whose backup waits after its checkpoint
    let pause = Arc::new(FlushPause::default());
    let manager = db.manager_of(Arc::new(BackupExecutor {
        pause: Some(Arc::clone(&pause)),
    }));
    let target = tempfile::tempdir().unwrap();
    let path = target.path().join("nightly");
    let job = manager
        .create_job(
            JobType::Backup,
            JobOptions {
                parameters: json!({ "path": path.display().to_string() }),
                ..JobOptions::default()
            },
        )
        .unwrap();
    pause.uploaded.notified().await;
    // after the checkpoint: writes, a flush, and a compaction replacing
    // every segment the checkpoint names
    db.sql(
        "root",
        "INSERT INTO app.items (id, name, n) VALUES (9000, 'after', 1); \
         UPDATE app.items SET name = 'later' WHERE id = 1",
    )
    .await;
    db.flush("app.items").await;
    let message = db.compact("app.items").await;
    assert!(message.contains("4 segment(s)"), "{message}");
    let cold = db.app.table_store.cold();
    assert_eq!(cold.reap().await, 0, "held by the backup");
    for file in &segments_before {
        assert!(file.exists(), "{file:?} deleted under the backup");
    }
    pause.resume.notify_one();
    let done = manager.finished(&job).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    let message = done.message.unwrap();
    assert!(
        message.starts_with("Backed up 2 table(s) and 5 segment(s)"),
        "{message}"
    );
    assert_eq!(cold.reap().await, 4, "deletions go on after the backup");
    assert!(path.join("backup.json").is_file());
    assert!(!path.join(".in-progress").exists());
    let shown = db.sql("root", "SHOW BACKUPS").await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0][0], json!(job));
    assert_eq!(shown[0][2], json!(path.display().to_string()));
    assert_eq!(shown[0][3], json!("2"));
    assert_eq!(shown[0][4], json!("5"));
    let e = db.try_sql("ann", "SHOW BACKUPS").await.unwrap_err();
    assert!(e.contains("PERMISSION_DENIED"), "{e}");
    assert!(
        db.sql("ann", "SELECT * FROM system.backups")
            .await
            .is_empty()
    );

    // into a fresh database: every row as it was at the checkpoint
    let fresh = Db::new();
    let restore = fresh
        .job(&format!("RESTORE DATABASE FROM '{}'", path.display()))
        .await;
    assert_eq!(restore.status, JobStatus::Completed, "{restore:?}");
    let message = restore.message.unwrap();
    assert!(
        message.starts_with("Restored 2 table(s) from backup ")
            && message.contains("5 segment(s)")
            && message.contains("1 namespace(s), 2 user(s), 0 storage(s) added"),
        "{message}"
    );
    assert_eq!(contents(&fresh).await, expected);
    assert_eq!(fresh.segment_files().len(), 5);
    let id_of = |db: &Db| {
        db.app
            .schema_registry
            .get_table("app", "items")
            .unwrap()
            .definition
            .table_id
    };
    assert_eq!(id_of(&fresh), id_of(&db), "a fresh server keeps the ids");
    let users = fresh
        .sql(
            "root",
            "SELECT username FROM system.users ORDER BY username",
        )
        .await;
    assert!(users.contains(&vec![json!("carol")]), "{users:?}");
    // the restored table takes writes: the key check sees restored cold
    // rows, and new versions get later `_seq`s
    let e = fresh
        .try_sql(
            "root",
            "INSERT INTO app.items (id, name, n) VALUES (7, 'dup', 1)",
        )
        .await
        .unwrap_err();
    assert!(e.contains("exists") || e.contains("CONFLICT"), "{e}");
    fresh
        .sql("root", "UPDATE app.items SET n = 8 WHERE id = 30")
        .await;
    let max_seq = expected[8]
        .iter()
        .map(|r| r[3].as_str().unwrap().parse::<i64>().unwrap())
        .max()
        .unwrap();
    let seq = fresh
        .sql("root", "SELECT _seq FROM app.items WHERE id = 30")
        .await;
    assert!(seq[0][0].as_str().unwrap().parse::<i64>().unwrap() > max_seq);
    let message = fresh.compact("app.items").await;
    assert!(message.contains("3 segment(s)"), "{message}");

    // again: refused, the tables exist; WITH OVERWRITE replaces them
    let again = format!("RESTORE DATABASE FROM '{}'", path.display());
    let e = fresh.try_sql("root", &again).await.unwrap_err();
    assert!(
        e.contains("Table 'app.items' exists") && e.contains("WITH OVERWRITE"),
        "{e}"
    );
    let restore = fresh
        .job(&format!(
            "RESTORE DATABASE app FROM '{}' WITH OVERWRITE",
            path.display()
        ))
        .await;
    assert_eq!(restore.status, JobStatus::Completed, "{restore:?}");
    let message = restore.message.unwrap();
    assert!(
        message.contains("replaced app.items, app.notes"),
        "{message}"
    );
    // under new ids: each segment was rewritten with its keys under it
    assert_ne!(id_of(&fresh), id_of(&db));
    let now = contents(&fresh).await;
    for (i, (a, b)) in now.iter().zip(&expected).enumerate() {
        assert_eq!(a, b, "query {i}");
    }

    // a backup never goes over another; paths are absolute
    let e = db
        .try_sql("root", &format!("BACKUP DATABASE TO '{}'", path.display()))
        .await
        .unwrap_err();
    assert!(e.contains("is not empty"), "{e}");
    let inside = db._dir.path().join("storage").join("backups");
    let e = db
        .try_sql(
            "root",
            &format!("BACKUP DATABASE TO '{}'", inside.display()),
        )
        .await
        .unwrap_err();
    assert!(e.contains("is inside storage 'local'"), "{e}");
    let e = db
        .try_sql("root", "BACKUP DATABASE TO 'relative/dir'")
        .await
        .unwrap_err();
    assert!(e.contains("must be absolute"), "{e}");
    let e = db
        .try_sql("root", "BACKUP DATABASE nope TO '/tmp/x'")
        .await
        .unwrap_err();
    assert!(e.contains("Namespace 'nope' does not exist"), "{e}");
    let e = fresh
        .try_sql(
            "root",
            &format!("RESTORE DATABASE FROM '{}'", target.path().display()),
        )
        .await
        .unwrap_err();
    assert!(e.contains("holds no backup"), "{e}");

    // a dba may not bring back a system account
    let third = Db::new();
    let mut dba = crate::ExecutionContext::new(UserId::new("d1"), "d1", Role::Dba);
    let e = third
        .app
        .execute(&mut dba, &again, &[])
        .await
        .unwrap_err()
        .error
        .to_string();
    assert!(
        e.contains("holds system account 'ops': only the system role may restore it"),
        "{e}"
    );

    // a damaged backup is refused before anything changes
    let segment = std::fs::read_dir(path.join("segments").join("local"))
        .map(|_| {
            let mut found = Vec::new();
            fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    if entry.path().is_dir() {
                        walk(&entry.path(), out);
                    } else {
                        out.push(entry.path());
                    }
                }
            }
            walk(&path.join("segments"), &mut found);
            found.remove(0)
        })
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&segment, bytes).unwrap();
    let restore = third
        .job(&format!("RESTORE DATABASE FROM '{}'", path.display()))
        .await;
    assert_eq!(restore.status, JobStatus::Failed, "{restore:?}");
    let message = restore.message.unwrap();
    assert!(message.contains("the backup is damaged"), "{message}");
    assert!(
        third
            .try_sql("root", "SELECT 1 FROM app.items")
            .await
            .is_err()
    );
}

/// The `segment_rows` figure of `EXPLAIN ANALYZE sql` (one scan): the rows
/// it took straight from segments' columns, as DataFusion shows counts
/// ("44.54 K").
async fn segment_rows(db: &Db, sql: &str) -> String {
    let plan = db.sql("root", &format!("EXPLAIN ANALYZE {sql}")).await;
    let text: String = plan
        .iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let figures: Vec<String> = text
        .match_indices("segment_rows=")
        .map(|(at, m)| {
            text[at + m.len()..]
                .chars()
                .take_while(|c| *c != ',' && *c != ']')
                .collect()
        })
        .collect();
    assert_eq!(figures.len(), 1, "{text}");
    figures[0].clone()
}

fn shown(count: u64) -> String {
    datafusion::common::human_readable_count(count as usize)
}

/// The same query over the flushed table and over its never-flushed mirror
/// (read by the merging row path alone) answers the same.
async fn same_as_mirror(db: &Db, queries: &[&str]) {
    for q in queries {
        let cold = db.sql("root", &q.replace("{t}", "app.items")).await;
        let hot = db.sql("root", &q.replace("{t}", "app.mirror")).await;
        assert_eq!(cold, hot, "{q}");
    }
}

const SCANS: &[&str] = &[
    "SELECT count(*), sum(n), count(name), min(id), max(id) FROM {t}",
    "SELECT * FROM {t} ORDER BY id",
    "SELECT id, n FROM {t} WHERE id BETWEEN 1000 AND 30017 ORDER BY id",
    "SELECT id, name FROM {t} WHERE id >= 16383 ORDER BY id LIMIT 7",
    "SELECT n % 11 AS k, count(*), sum(n) FROM {t} GROUP BY n % 11 ORDER BY k",
    "SELECT count(*) FROM {t} WHERE name LIKE 'item 4%'",
    "SELECT id, _seq > 0, _deleted FROM {t} WHERE id < 200 ORDER BY id",
    "SELECT count(*) FROM {t} WHERE _deleted = true",
];

#[tokio::test]
async fn scans_of_cold_stretches_read_segment_columns_and_answer_as_the_merge_does() {
    let db = Db::new();
    db.sql(
        "root",
        "CREATE NAMESPACE app; \
         CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, n INT); \
         CREATE SHARED TABLE app.mirror (id BIGINT PRIMARY KEY, name TEXT, n INT)",
    )
    .await;
    let both = |sql: String| {
        let db = &db;
        async move {
            db.sql("root", &sql).await;
            db.sql("root", &sql.replace("app.items", "app.mirror"))
                .await;
        }
    };
    // 40,000 rows (three row groups and a part), some deleted while hot:
    // the segment holds their tombstones
    for start in (0..40_000).step_by(5_000) {
        both(items(start..start + 5_000)).await;
    }
    both("DELETE FROM app.items WHERE id % 97 = 0".into()).await;
    db.flush("app.items").await;
    // a second segment, after the first
    both(items(40_000..45_000)).await;
    db.flush("app.items").await;
    assert_eq!(db.hot_rows("items"), 0);
    same_as_mirror(&db, SCANS).await;
    let live = 45_000 - 40_000_u64.div_ceil(97);
    assert_eq!(
        segment_rows(&db, "SELECT count(*) FROM app.items").await,
        shown(live)
    );
    assert_eq!(
        segment_rows(&db, "SELECT sum(n) FROM app.items WHERE id >= 40000").await,
        shown(5_000),
        "a key range reads only its stretch"
    );

    // columns added and widened since: backfill and casts as in the merge
    both("ALTER TABLE app.items ADD COLUMN tag TEXT DEFAULT 'none'".into()).await;
    both("ALTER TABLE app.items ALTER COLUMN n TYPE BIGINT".into()).await;
    same_as_mirror(
        &db,
        &[
            "SELECT id, n, tag FROM {t} ORDER BY id",
            "SELECT tag, count(*), sum(n) FROM {t} GROUP BY tag ORDER BY tag",
        ],
    )
    .await;

    // hot versions and tombstones over cold rows: the stretches between
    // them still come from the segment, the rest through the merge
    both("UPDATE app.items SET n = -1, tag = 'hot' WHERE id % 1000 = 500".into()).await;
    both("DELETE FROM app.items WHERE id % 1000 = 501".into()).await;
    both(items(45_000..45_010)).await;
    same_as_mirror(&db, SCANS).await;
    // about 44,5xx of 44,490 live: fewer than all, more than 40,000
    let taken = segment_rows(&db, "SELECT count(*) FROM app.items").await;
    let thousands: f64 = taken.trim_end_matches(" K").parse().unwrap();
    assert!(thousands > 40.0 && taken != shown(live), "{taken}");

    // flushed, they form a segment overlapping the first two: the merge
    db.flush("app.items").await;
    same_as_mirror(&db, SCANS).await;
    // compacted into one, every row comes from its columns again
    db.compact("app.items").await;
    assert_eq!(db.shared_manifest("items").segments.len(), 1);
    same_as_mirror(&db, SCANS).await;
    let live = db.sql("root", "SELECT count(*) FROM app.items").await[0][0]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(
        segment_rows(&db, "SELECT count(*) FROM app.items").await,
        shown(live)
    );
}
