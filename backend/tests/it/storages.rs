//! Storages against the real server: one suite — tables on a created
//! storage, flush, merged reads and writes over both tiers, compaction, a restart with
//! an emptied cache, the orphan sweep, DROP STORAGE refused while in use,
//! BACKUP while writes go on and RESTORE into a fresh server —
//! run on a filesystem storage and on S3 (moto's S3-compatible server,
//! started here from `moto_server` or `python3 -m moto.server`).

use crate::cold_tier::{compact, flush, run_job};
use crate::common::{TestServer, rows};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BUCKET: &str = "kalam-test";
const SECRET: &str = "moto-secret-key-never-shown";

/// moto's server on a free port, with [`BUCKET`] created; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    http: reqwest::Client,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
            .to_string();
        let args = ["-H", "127.0.0.1", "-p", port.as_str()];
        let spawn = |program: &str, prefix: &[&str]| {
            Command::new(program)
                .args(prefix)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let child = spawn("moto_server", &[])
            .or_else(|_| spawn("python3", &["-m", "moto.server"]))
            .expect(
                "moto's S3 server is needed: pip install 'moto[server]' (scripts/test.sh does)",
            );
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut moto = Self {
            child,
            endpoint,
            http,
        };
        for _ in 0..300 {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited: {status}");
            }
            if moto.http.get(&moto.endpoint).send().await.is_ok() {
                let created = moto
                    .http
                    .put(format!("{}/{BUCKET}", moto.endpoint))
                    .send()
                    .await
                    .expect("create bucket");
                assert!(created.status().is_success(), "{created:?}");
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto.child.kill().ok();
        panic!("moto_server did not start");
    }

    /// The keys of the bucket under `prefix`.
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let body = self
            .http
            .get(format!(
                "{}/{BUCKET}?list-type=2&prefix={prefix}&max-keys=1000",
                self.endpoint
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    async fn put(&self, key: &str, body: &'static [u8]) {
        let response = self
            .http
            .put(format!("{}/{BUCKET}/{key}", self.endpoint))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }
}

/// Where the suite finds the storage's segment files.
enum Files<'a> {
    Dir(&'a Path),
    Bucket(&'a Moto, &'a str),
}

impl Files<'_> {
    async fn segments(&self, under: &str) -> Vec<String> {
        match self {
            Files::Dir(dir) => {
                let mut out = Vec::new();
                walk(&dir.join(under), under, &mut out);
                out
            }
            Files::Bucket(moto, prefix) => moto
                .keys(&format!("{prefix}/{under}"))
                .await
                .into_iter()
                .filter(|k| k.ends_with(".parquet"))
                .collect(),
        }
    }

    /// The exported manifest of the partition directory `under`, if any.
    async fn manifest(&self, under: &str) -> Option<Value> {
        let bytes = match self {
            Files::Dir(dir) => std::fs::read(dir.join(under).join("manifest.json")).ok()?,
            Files::Bucket(moto, prefix) => {
                let response = moto
                    .http
                    .get(format!(
                        "{}/{BUCKET}/{prefix}/{under}/manifest.json",
                        moto.endpoint
                    ))
                    // moto checks no signature, but serves objects only to a
                    // named caller
                    .header(
                        "authorization",
                        "AWS4-HMAC-SHA256 Credential=moto/20260101/us-east-1/s3/aws4_request, \
                         SignedHeaders=host, Signature=0",
                    )
                    .send()
                    .await
                    .unwrap();
                if !response.status().is_success() {
                    let keys = moto.keys(&format!("{prefix}/{under}")).await;
                    eprintln!("GET manifest.json: {} (keys: {keys:?})", response.status());
                    return None;
                }
                response.bytes().await.unwrap().to_vec()
            }
        };
        Some(serde_json::from_slice(&bytes).expect("the exported manifest is JSON"))
    }

    async fn plant(&self, path: &str) {
        match self {
            Files::Dir(dir) => {
                let file = dir.join(path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, b"left by a crash").unwrap();
            }
            Files::Bucket(moto, prefix) => moto.put(&format!("{prefix}/{path}"), b"left").await,
        }
    }
}

fn walk(dir: &Path, shown: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = format!("{shown}/{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            walk(&entry.path(), &name, out);
        } else if name.ends_with(".parquet") {
            out.push(name);
        }
    }
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(n) FROM arc.items",
    "SELECT id, name FROM arc.items WHERE id IN (7, 777, 1499)",
    "SELECT id FROM arc.items WHERE id >= 1490 ORDER BY id DESC LIMIT 3",
    "SELECT n, count(*) FROM arc.items GROUP BY n ORDER BY n LIMIT 3",
    "EXECUTE AS USER 'arc_x' (SELECT id, body FROM arc.notes ORDER BY id)",
    "EXECUTE AS USER 'arc_y' (SELECT id, body FROM arc.notes ORDER BY id)",
];

async fn answers(server: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(rows(&server.ok(q).await, 0).clone().into());
    }
    out
}

/// The suite. `create` makes storage `arc_store` (`other_path`: a PATH of
/// its type elsewhere); `files` sees its
/// segments; `cache` is where the server keeps downloaded copies (none for
/// a filesystem storage); `elsewhere` sees `other_path`, where the fresh
/// server restoring the backup keeps its `arc_store`. Returns the server,
/// still running.
async fn suite(
    data: &Path,
    create: &str,
    other_path: &str,
    files: Files<'_>,
    cache: Option<&Path>,
    elsewhere: Files<'_>,
) -> TestServer {
    let server = TestServer::start_on(data, &[]);
    let body = server.ok(create).await;
    assert!(
        body["results"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Storage 'arc_store' created"),
        "{body}"
    );
    server
        .ok("CREATE NAMESPACE arc; \
             CREATE SHARED TABLE arc.items (id BIGINT PRIMARY KEY, name TEXT, n INT) WITH (STORAGE_ID = 'arc_store'); \
             CREATE USER TABLE arc.notes (id INT PRIMARY KEY, body TEXT) WITH (STORAGE_ID = 'arc_store'); \
             CREATE USER 'arc_x' WITH PASSWORD 'x-pass-123' ROLE user; \
             CREATE USER 'arc_y' WITH PASSWORD 'y-pass-123' ROLE user")
        .await;
    let values: Vec<String> = (0..1500)
        .map(|i| format!("({i}, 'item {i}', {})", i % 7))
        .collect();
    server
        .ok(&format!(
            "INSERT INTO arc.items VALUES {}",
            values.join(", ")
        ))
        .await;
    for user in ["arc_x", "arc_y"] {
        server
            .ok(&format!(
                "EXECUTE AS USER '{user}' (INSERT INTO arc.notes VALUES (1, '{user} one'), (2, '{user} two'))"
            ))
            .await;
    }
    let before = answers(&server).await;

    let message = flush(&server, "arc.items").await;
    assert!(message.starts_with("Flushed 1500 row(s)"), "{message}");
    let message = flush(&server, "arc.notes").await;
    assert!(message.contains("from 2 partition(s)"), "{message}");
    // the templates place them: shared/<ns>/<table>, users/<user id>/<ns>/<table>
    assert_eq!(files.segments("shared/arc/items").await.len(), 1);
    // the manifest is exported next to the segments it lists
    let exported = files
        .manifest("shared/arc/items")
        .await
        .expect("manifest.json");
    assert_eq!(
        exported["segments"].as_array().unwrap().len(),
        1,
        "{exported}"
    );
    assert_eq!(exported["segments"][0]["rows"], 1500);
    // with per-column null counts and bounds: id 0..1499, name, n 0..6
    let stats = exported["segments"][0]["columns"]
        .as_array()
        .unwrap()
        .clone();
    let bounds: Vec<(Value, Value, Value)> = stats
        .iter()
        .map(|c| (c["min"].clone(), c["max"].clone(), c["null_count"].clone()))
        .collect();
    assert_eq!(
        bounds,
        vec![
            (json!(0), json!(1499), json!(0)),
            (json!("item 0"), json!("item 999"), json!(0)),
            (json!(0), json!(6), json!(0)),
        ],
        "{stats:?}"
    );
    let listed = exported["segments"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        files
            .segments("shared/arc/items")
            .await
            .iter()
            .any(|p| listed.ends_with(p.as_str()) || p.ends_with(listed.as_str())),
        "{listed}"
    );
    let body = server
        .ok("SELECT user_id FROM system.users WHERE username LIKE 'arc_%' ORDER BY username")
        .await;
    for user in rows(&body, 0) {
        let user = user[0].as_str().unwrap();
        let dir = format!("users/{user}/arc/notes");
        assert_eq!(files.segments(&dir).await.len(), 1, "{dir}");
        let exported = files.manifest(&dir).await.expect("a user's manifest.json");
        assert_eq!(exported["segments"][0]["rows"], 2, "{exported}");
    }
    assert_eq!(answers(&server).await, before);

    // writes over both tiers: cold rows updated, deleted, re-inserted
    server
        .ok("UPDATE arc.items SET name = 'changed' WHERE id = 777; \
             DELETE FROM arc.items WHERE id = 1499; \
             EXECUTE AS USER 'arc_x' (UPDATE arc.notes SET body = 'edited' WHERE id = 2)")
        .await;
    let (status, body) = server
        .sql("INSERT INTO arc.items VALUES (7, 'again', 1)")
        .await;
    assert_eq!(status, 409, "a cold key still conflicts: {body}");
    let changed = answers(&server).await;
    assert_eq!(
        changed[1],
        json!([["7", "item 7"], ["777", "changed"]]),
        "{changed:?}"
    );
    assert_eq!(changed[4], json!([[1, "arc_x one"], [2, "edited"]]));
    assert_eq!(changed[5], before[5]);
    let message = flush(&server, "arc.items").await;
    assert!(message.starts_with("Flushed 2 row(s)"), "{message}");
    assert_eq!(files.segments("shared/arc/items").await.len(), 2);
    let exported = files.manifest("shared/arc/items").await.unwrap();
    assert_eq!(
        exported["segments"].as_array().unwrap().len(),
        2,
        "rewritten at each flush"
    );
    assert_eq!(answers(&server).await, changed);

    // compaction: the two segments of items become one, arc_x's two become
    // one; the replaced files go from the storage, every row reads the same
    let message = flush(&server, "arc.notes").await;
    assert!(message.starts_with("Flushed 1 row(s)"), "{message}");
    let message = compact(&server, "arc.items").await;
    assert!(
        message.starts_with("Compacted arc.items: 2 segment(s) of 1 partition(s) into 1; 1502 row(s) read, 1500 written"),
        "{message}"
    );
    assert_eq!(files.segments("shared/arc/items").await.len(), 1);
    let exported = files.manifest("shared/arc/items").await.unwrap();
    assert_eq!(
        exported["segments"].as_array().unwrap().len(),
        1,
        "{exported}"
    );
    assert_eq!(exported["segments"][0]["rows"], 1500);
    let message = compact(&server, "arc.notes").await;
    assert!(
        message.starts_with("Compacted arc.notes: 2 segment(s) of 1 partition(s) into 1"),
        "{message}"
    );
    let body = server
        .ok("SELECT user_id FROM system.users WHERE username = 'arc_x'")
        .await;
    let x = rows(&body, 0)[0][0].as_str().unwrap().to_string();
    assert_eq!(
        files.segments(&format!("users/{x}/arc/notes")).await.len(),
        1
    );
    assert_eq!(answers(&server).await, changed);

    // in use: neither dropped nor moved
    let (_, body) = server.sql("DROP STORAGE arc_store").await;
    assert!(body.to_string().contains("arc.items"), "{body}");
    let (_, body) = server
        .sql(&format!("ALTER STORAGE arc_store SET PATH '{other_path}'"))
        .await;
    assert!(body.to_string().contains("cannot be moved"), "{body}");

    // a crash's leftover goes at the next start; with an emptied cache
    // every segment is read again from the storage
    files.plant("shared/arc/items/seg-1.parquet").await;
    server.stop();
    if let Some(cache) = cache {
        assert!(
            cache.exists(),
            "segments read from a cloud storage are cached"
        );
        std::fs::remove_dir_all(cache).unwrap();
    }
    let server = TestServer::start_on(data, &[]);
    assert_eq!(answers(&server).await, changed);
    let items = files.segments("shared/arc/items").await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(
        items.iter().all(|p| !p.ends_with("/seg-1.parquet")),
        "{items:?}"
    );
    backup_and_restore(&server, data, create, other_path, elsewhere).await;
    server
}

/// Every row of the suite's tables, hot and cold, with its `_seq`, as root
/// and as each user sees it.
async fn everything(server: &TestServer) -> Vec<Value> {
    let mut out = answers(server).await;
    for q in [
        "SELECT id, name, n, _seq FROM arc.items ORDER BY id",
        "SELECT count(*) FROM arc.items WHERE _deleted = true",
        "EXECUTE AS USER 'arc_x' (SELECT id, body, _seq FROM arc.notes ORDER BY id)",
        "EXECUTE AS USER 'arc_y' (SELECT id, body, _seq FROM arc.notes ORDER BY id)",
    ] {
        out.push(rows(&server.ok(q).await, 0).clone().into());
    }
    out
}

/// BACKUP while a writer keeps inserting, then RESTORE into a fresh server
/// whose `arc_store` lies at `other_path`: every row of both tables as it
/// was, the writer's table a gap-free prefix of what it wrote; again only
/// WITH OVERWRITE.
async fn backup_and_restore(
    server: &TestServer,
    data: &Path,
    create: &str,
    other_path: &str,
    elsewhere: Files<'_>,
) {
    let before = everything(server).await;
    assert_eq!(
        rows(&server.ok("SELECT count(*) FROM arc.items").await, 0)[0][0],
        json!("1499")
    );
    server
        .ok("CREATE SHARED TABLE arc.log (id BIGINT PRIMARY KEY, at TEXT)")
        .await;
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().join("nightly");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let written = std::sync::atomic::AtomicU64::new(0);
    let writer = async {
        let mut i = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            server
                .ok(&format!("INSERT INTO arc.log VALUES ({i}, 'row {i}')"))
                .await;
            i += 1;
            written.store(i, std::sync::atomic::Ordering::Release);
        }
        i
    };
    let backup = async {
        while written.load(std::sync::atomic::Ordering::Acquire) < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let message = run_job(
            server,
            &format!("BACKUP DATABASE TO '{}'", dir.display()),
            "BK-",
        )
        .await;
        stop.store(true, std::sync::atomic::Ordering::Release);
        message
    };
    let (total, message) = tokio::join!(writer, backup);
    assert!(
        message.starts_with("Backed up 3 table(s) and 3 segment(s)"),
        "{message}"
    );
    let body = server.ok("SHOW BACKUPS").await;
    let listed = rows(&body, 0);
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0][2], json!(dir.display().to_string()));

    // a fresh server, its arc_store elsewhere
    let fresh_data = data.join("fresh");
    let fresh = TestServer::start_on(&fresh_data, &[]);
    let other = create.replacen(
        create
            .split("PATH '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap(),
        other_path,
        1,
    );
    fresh.ok(&other).await;
    let restore = format!("RESTORE DATABASE FROM '{}'", dir.display());
    let message = run_job(&fresh, &restore, "RS-").await;
    assert!(
        message.starts_with("Restored 3 table(s)")
            && message.contains("1 namespace(s), 2 user(s), 0 storage(s) added"),
        "{message}"
    );
    assert_eq!(everything(&fresh).await, before);
    // the writer's rows: a prefix, without a gap, of those it wrote
    let body = fresh.ok("SELECT id FROM arc.log ORDER BY id").await;
    let ids: Vec<u64> = rows(&body, 0)
        .iter()
        .map(|r| r[0].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.len() >= 20 && ids.len() as u64 <= total,
        "{} of {total}",
        ids.len()
    );
    assert!(ids.iter().enumerate().all(|(i, id)| *id == i as u64));
    // restored accounts log in with their passwords
    let (status, body) = fresh
        .post_raw(
            json!({ "sql": "SELECT id, body FROM arc.notes ORDER BY id" }).to_string(),
            Some(("arc_x", "x-pass-123")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body, 0), before[4].as_array().unwrap());
    // the segments were copied to the fresh server's storage
    assert_eq!(elsewhere.segments("shared/arc/items").await.len(), 1);
    assert!(elsewhere.manifest("shared/arc/items").await.is_some());

    // over existing tables only WITH OVERWRITE
    let (status, body) = fresh.sql(&restore).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("WITH OVERWRITE"), "{body}");
    let message = run_job(&fresh, &format!("{restore} WITH OVERWRITE"), "RS-").await;
    assert!(
        message.contains("replaced arc.items, arc.notes, arc.log"),
        "{message}"
    );
    assert_eq!(everything(&fresh).await, before);
    fresh.stop();
    server.ok("DROP TABLE arc.log").await;
}

#[tokio::test]
async fn tables_on_a_created_filesystem_storage() {
    let temp = tempfile::tempdir().unwrap();
    let create = "CREATE STORAGE arc_store TYPE filesystem PATH 'archive' \
                  SHARED_TABLES_TEMPLATE 'shared/{namespace}/{tableName}' \
                  USER_TABLES_TEMPLATE 'users/{userId}/{namespace}/{tableName}'";
    let archive = temp.path().join("archive");
    let elsewhere = temp.path().join("fresh").join("elsewhere");
    let server = suite(
        temp.path(),
        create,
        "elsewhere",
        Files::Dir(&archive),
        None,
        Files::Dir(&elsewhere),
    )
    .await;
    // nothing went to the local storage
    let mut local = Vec::new();
    walk(&temp.path().join("storage"), "", &mut local);
    assert!(local.is_empty(), "{local:?}");
    server.stop();
}

#[tokio::test]
async fn tables_on_s3() {
    let moto = Moto::start().await;
    let temp = tempfile::tempdir().unwrap();
    let create = format!(
        "CREATE STORAGE arc_store TYPE s3 NAME 'S3 archive' PATH 's3://{BUCKET}/kalam' \
         SHARED_TABLES_TEMPLATE 'shared/{{namespace}}/{{tableName}}' \
         USER_TABLES_TEMPLATE 'users/{{userId}}/{{namespace}}/{{tableName}}' \
         CONFIG '{{\"endpoint\": \"{}\", \"region\": \"us-east-1\", \"allow_http\": true}}' \
         CREDENTIALS '{{\"access_key_id\": \"moto\", \"secret_access_key\": \"{SECRET}\"}}'",
        moto.endpoint
    );
    let cache = temp.path().join("cache").join("arc_store");
    let server = suite(
        temp.path(),
        &create,
        "s3://kalam-test/elsewhere",
        Files::Bucket(&moto, "kalam"),
        Some(&cache),
        Files::Bucket(&moto, "elsewhere"),
    )
    .await;

    // the secret is stored, never shown back
    for q in [
        "SELECT * FROM system.storages",
        "SHOW STORAGES",
        "SELECT * FROM system.audit_log",
        "SELECT * FROM system.jobs",
    ] {
        let body = server.ok(q).await;
        assert!(!body.to_string().contains(SECRET), "{q}: {body}");
    }
    let body = server
        .ok("SELECT has_credentials, config FROM system.storages WHERE storage_id = 'arc_store'")
        .await;
    let row = &rows(&body, 0)[0];
    assert_eq!(row[0], json!(true));
    assert!(row[1].as_str().unwrap().contains(&moto.endpoint), "{row}");

    // new credentials take effect at once; wrong ones are refused at ALTER
    let (status, body) = server
        .sql("ALTER STORAGE arc_store SET CREDENTIALS '{\"access_key_id\": \"other\", \"secret_access_key\": \"x\"}'")
        .await;
    assert_eq!(status, 200, "moto accepts any key: {body}");
    assert_eq!(
        rows(&server.ok("SELECT count(*) FROM arc.items").await, 0),
        &vec![json!(["1499"])]
    );

    // a storage that does not answer is refused at CREATE
    let (status, body) = server
        .sql("CREATE STORAGE nowhere TYPE s3 PATH 's3://b' \
              CONFIG '{\"endpoint\": \"http://127.0.0.1:9\", \"region\": \"us-east-1\", \"allow_http\": true}' \
              CREDENTIALS '{\"access_key_id\": \"a\", \"secret_access_key\": \"b\"}'")
        .await;
    assert_ne!(status, 200, "{body}");
    assert!(body.to_string().contains("does not answer"), "{body}");
    // and one overlapping another storage's prefix
    let (_, body) = server
        .sql(&format!(
            "CREATE STORAGE inner_store TYPE s3 PATH 's3://{BUCKET}/kalam/inner' \
             CONFIG '{{\"endpoint\": \"{}\", \"region\": \"us-east-1\", \"allow_http\": true}}'",
            moto.endpoint
        ))
        .await;
    assert!(
        body.to_string()
            .contains("would overlap storage 'arc_store'"),
        "{body}"
    );

    // DROP TABLE: its segments go (after the grace period, or at the next start)
    server
        .ok("DROP TABLE arc.items; DROP TABLE arc.notes")
        .await;
    server.stop();
    let server = TestServer::start_on(temp.path(), &[]);
    let left = moto.keys("kalam/").await;
    assert!(
        left.iter()
            .all(|k| !k.ends_with(".parquet") && !k.ends_with("manifest.json")),
        "segments and their exported manifests go: {left:?}"
    );
    server.ok("DROP STORAGE arc_store").await;
    server.stop();
}
