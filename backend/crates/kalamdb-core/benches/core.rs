//! In-process benchmarks of the core: registry lookup, and the executor's
//! point read, single-row insert and `SELECT 1` without HTTP.
//!
//! `cargo bench -p kalamdb-core --bench core`

use criterion::{Criterion, criterion_group, criterion_main};
use kalamdb_commons::{Role, UserId};
use kalamdb_core::{AppContext, CoreOptions, ExecutionContext};
use kalamdb_store::{RocksDbBackend, RocksDbOptions};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

fn setup() -> (tempfile::TempDir, Arc<AppContext>, tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(RocksDbBackend::open(dir.path(), &RocksDbOptions::default()).unwrap());
    let app = AppContext::open(backend, &CoreOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sql = String::from("CREATE NAMESPACE app;");
    for i in 0..100 {
        sql.push_str(&format!(
            "CREATE TABLE app.t{i} (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE);"
        ));
    }
    let values: Vec<String> = (0..10_000).map(|i| format!("({i}, 'n{i}', 1.5)")).collect();
    sql.push_str(&format!("INSERT INTO app.t42 VALUES {}", values.join(",")));
    runtime
        .block_on(app.execute(&mut ctx(), &sql, &[]))
        .unwrap();
    (dir, app, runtime)
}

fn ctx() -> ExecutionContext {
    ExecutionContext::new(UserId::new("root"), "root", Role::System)
}

fn benches(c: &mut Criterion) {
    let (_dir, app, runtime) = setup();
    c.bench_function("schema_registry_get_table", |b| {
        b.iter(|| {
            app.schema_registry
                .get_table(black_box("app"), black_box("t42"))
        })
    });
    c.bench_function("executor_point_select", |b| {
        b.iter(|| {
            runtime
                .block_on(app.execute(
                    &mut ctx(),
                    black_box("SELECT * FROM app.t42 WHERE id = 4242"),
                    &[],
                ))
                .unwrap()
        })
    });
    let next = AtomicI64::new(1_000_000);
    c.bench_function("executor_insert_one_row", |b| {
        b.iter(|| {
            let id = next.fetch_add(1, Ordering::Relaxed);
            let sql = format!("INSERT INTO app.t1 VALUES ({id}, 'x', 1.0)");
            runtime
                .block_on(app.execute(&mut ctx(), &sql, &[]))
                .unwrap()
        })
    });
    c.bench_function("executor_select_1_datafusion", |b| {
        b.iter(|| {
            runtime
                .block_on(app.execute(&mut ctx(), black_box("SELECT 1"), &[]))
                .unwrap()
        })
    });
    c.bench_function("session_state_clone", |b| {
        b.iter(|| black_box(app.session_state().clone()))
    });
}

criterion_group!(core, benches);
criterion_main!(core);
