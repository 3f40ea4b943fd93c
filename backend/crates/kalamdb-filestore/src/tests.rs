use super::*;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use std::sync::Arc;

fn key(i: u64) -> Vec<u8> {
    let mut k = b"p".to_vec();
    k.extend_from_slice(&(i * 2).to_be_bytes());
    k
}

fn columns() -> Vec<SegmentColumn> {
    vec![
        SegmentColumn {
            id: 1,
            name: "id".into(),
            data_type: DataType::Int64,
        },
        SegmentColumn {
            id: 4,
            name: "body".into(),
            data_type: DataType::Utf8,
        },
    ]
}

/// Writes `n` rows (key i*2, _seq 1000+i, every 7th a tombstone) in
/// batches of 5,000.
async fn segment(storage: &Storage, n: u64) -> SegmentMeta {
    let mut writer =
        SegmentWriter::create(storage, "t/seg-1.parquet".into(), 1, 3, &columns(), 42).unwrap();
    let mut at = 0;
    while at < n {
        let to = (at + 5000).min(n);
        let keys: Vec<Vec<u8>> = (at..to).map(key).collect();
        let seqs: Vec<i64> = (at..to).map(|i| 1000 + i as i64).collect();
        let deleted: Vec<bool> = (at..to).map(|i| i % 7 == 0).collect();
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((at..to).map(|i| i as i64)));
        let bodies: ArrayRef = Arc::new(StringArray::from_iter(
            (at..to).map(|i| (i % 3 != 0).then(|| format!("row {i}"))),
        ));
        writer
            .write(&keys, &seqs, &deleted, vec![ids, bodies])
            .await
            .unwrap();
        at = to;
    }
    writer.finish().await.unwrap()
}

fn ids_of(cursor: &mut SegmentCursor) -> Vec<i64> {
    let mut out = Vec::new();
    while cursor.fill().unwrap() {
        let (batch, row) = cursor.row();
        let ids = batch
            .column(3)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(cursor.seq(), 1000 + ids.value(row));
        assert_eq!(cursor.deleted(), ids.value(row) % 7 == 0);
        out.push(ids.value(row));
        cursor.advance();
    }
    out
}

#[tokio::test]
async fn a_segment_reads_back_by_range_both_ways_and_by_ordinal() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::filesystem(dir.path()).unwrap();
    let n = 2 * ROW_GROUP_ROWS as u64 + 1234;
    let meta = segment(&storage, n).await;
    assert_eq!(meta.rows, n);
    // per-column statistics for the manifest
    let bodies: Vec<String> = (0..n)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("row {i}"))
        .collect();
    assert_eq!(
        meta.columns,
        vec![
            ColumnStats {
                column_id: 1,
                null_count: 0,
                min: Some(serde_json::json!(0)),
                max: Some(serde_json::json!(n - 1)),
            },
            ColumnStats {
                column_id: 4,
                null_count: n.div_ceil(3),
                min: bodies.iter().min().map(|s| serde_json::json!(s)),
                max: bodies.iter().max().map(|s| serde_json::json!(s)),
            },
        ]
    );
    assert_eq!(meta.deleted, n.div_ceil(7));
    assert_eq!((meta.min_seq, meta.max_seq), (1000, 1000 + n as i64 - 1));
    assert_eq!(
        (meta.min_key.clone(), meta.max_key.clone()),
        (key(0), key(n - 1))
    );
    assert!(meta.bytes > 0);
    assert_eq!(
        meta.bytes,
        std::fs::metadata(storage.local_copy(&meta.path).unwrap())
            .unwrap()
            .len()
    );

    // uncached, cached whole, and through a cache smaller than the file
    // (each twice: the second pass reads what the first cached)
    for cache in [
        None,
        Some(Arc::new(GroupCache::new(1 << 30))),
        Some(Arc::new(GroupCache::new(400_000))),
    ] {
        let path = storage.local_copy(&meta.path).unwrap();
        let file = Arc::new(SegmentFile::open(1, &path, cache.clone()).unwrap());
        check_reads(&file, n);
        check_reads(&file, n);
        if let Some(cache) = cache {
            assert!(cache.bytes() > 0);
            assert!(cache.bytes() <= 1 << 30);
        }
    }
}

fn check_reads(file: &Arc<SegmentFile>, n: u64) {
    assert_eq!(file.rows(), n);
    assert_eq!(file.column_ids(), &[None, None, None, Some(1), Some(4)]);

    let all: Vec<i64> = (0..n as i64).collect();
    assert_eq!(ids_of(&mut file.cursor(&key(0), b"q", false)), all);
    let mut backward = all.clone();
    backward.reverse();
    assert_eq!(ids_of(&mut file.cursor(b"p", b"q", true)), backward);

    // a range across a row group boundary, bounds between stored keys
    let lo = ROW_GROUP_ROWS as u64 - 3;
    let hi = ROW_GROUP_ROWS as u64 + 5;
    let mut start = key(lo);
    start.push(0); // just after key(lo)
    let want: Vec<i64> = ((lo + 1) as i64..hi as i64).collect();
    assert_eq!(ids_of(&mut file.cursor(&start, &key(hi), false)), want);
    let mut want_back = want.clone();
    want_back.reverse();
    assert_eq!(ids_of(&mut file.cursor(&start, &key(hi), true)), want_back);
    // nothing in range
    assert!(ids_of(&mut file.cursor(b"a", b"b", false)).is_empty());
    assert!(ids_of(&mut file.cursor(b"z", b"zz", true)).is_empty());

    let picks = [
        0,
        5,
        ROW_GROUP_ROWS as u64 - 1,
        ROW_GROUP_ROWS as u64,
        n - 1,
    ];
    let rows = file.read_ordinals(&picks).unwrap();
    let ids = rows
        .column(3)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(
        ids.values().to_vec(),
        picks.iter().map(|&p| p as i64).collect::<Vec<_>>()
    );
    let bodies = rows
        .column(4)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(bodies.is_null(0)); // row 0: 0 % 3 == 0
    assert_eq!(bodies.value(1), "row 5");
    assert!(file.read_ordinals(&[3, 2]).is_err());
    assert!(file.read_ordinals(&[n]).is_err());
}

#[tokio::test]
async fn keys_out_of_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::filesystem(dir.path()).unwrap();
    let mut writer = SegmentWriter::create(&storage, "seg-2.parquet".into(), 2, 1, &[], 0).unwrap();
    writer
        .write(&[key(5)], &[1], &[false], vec![])
        .await
        .unwrap();
    let err = writer.write(&[key(5)], &[2], &[false], vec![]).await;
    assert!(err.is_err());
}

#[test]
fn a_manifest_round_trips_and_refuses_other_formats() {
    let segment = SegmentMeta {
        id: 7,
        storage: "archive".into(),
        path: "ns/t/seg-7.parquet".into(),
        rows: 10,
        bytes: 100,
        deleted: 1,
        min_seq: 1,
        max_seq: 9,
        min_key: vec![0, 1, 0xff],
        max_key: vec![2],
        schema_version: 3,
        created_at_ms: 5,
        purged_below: 0,
        columns: vec![ColumnStats {
            column_id: 3,
            null_count: 2,
            min: Some(serde_json::json!(-1)),
            max: Some(serde_json::json!("z")),
        }],
    };
    let manifest = Manifest::new().with(segment.clone());
    assert_eq!(manifest.generation, 1);
    assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
    assert_eq!(manifest.segment(7), Some(&segment));
    // manifests written before segments named their storage: `local`
    let mut old: serde_json::Value = serde_json::from_slice(&manifest.encode()).unwrap();
    old["segments"][0]
        .as_object_mut()
        .unwrap()
        .remove("storage");
    let old = Manifest::decode(&serde_json::to_vec(&old).unwrap()).unwrap();
    assert_eq!(old.segments[0].storage, "local");
    let mut other = manifest.clone();
    other.format = 99;
    assert!(Manifest::decode(&other.encode()).is_err());
}

#[tokio::test]
async fn a_range_scan_yields_exactly_the_rows_in_range_and_only_the_fields_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::filesystem(dir.path()).unwrap();
    let n = 3 * ROW_GROUP_ROWS as u64 + 100;
    let meta = segment(&storage, n).await;
    let path = storage.local_copy(&meta.path).unwrap();
    // edge groups come through the cache when there is one: twice each
    let cache = Some(Arc::new(GroupCache::new(1 << 30)));
    for file in [
        Arc::new(SegmentFile::open(1, &path, None).unwrap()),
        Arc::new(SegmentFile::open(1, &path, cache.clone()).unwrap()),
        Arc::new(SegmentFile::open(1, &path, cache).unwrap()),
    ] {
        range_scans(&file, n);
    }
}

fn range_scans(file: &Arc<SegmentFile>, n: u64) {
    let g = ROW_GROUP_ROWS as u64;
    // keys are i*2: odd bounds fall between rows, even ones on a row;
    // group edges exactly, inside groups, across several, the whole file
    let odd = |i: u64| {
        let mut k = key(i);
        k.push(0);
        k
    };
    let cases: Vec<(Vec<u8>, Vec<u8>, std::ops::Range<u64>)> = vec![
        (b"p".to_vec(), b"q".to_vec(), 0..n),
        (key(0), key(g), 0..g),
        (key(g), key(2 * g), g..2 * g),
        (key(10), key(20), 10..20),
        (odd(10), odd(20), 11..21),
        (key(g - 5), key(2 * g + 7), g - 5..2 * g + 7),
        (key(3 * g), b"q".to_vec(), 3 * g..n),
        (key(n - 1), b"q".to_vec(), n - 1..n),
        (key(5), key(5), 5..5),
        (b"q".to_vec(), b"r".to_vec(), 0..0),
    ];
    for (start, end, want) in cases {
        for batch_rows in [1000, 50_000] {
            // `_deleted` and `id` (fields 2 and 3), given out of order
            let mut scan = file.range_scan(&start, &end, &[3, 2], batch_rows).unwrap();
            let mut ids = Vec::new();
            while let Some(batch) = scan.next_batch().unwrap() {
                assert_eq!(batch.num_columns(), 2);
                assert!(batch.num_rows() <= batch_rows);
                let deleted = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                    .unwrap();
                let id = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                for row in 0..batch.num_rows() {
                    assert_eq!(deleted.value(row), id.value(row) % 7 == 0);
                    ids.push(id.value(row) as u64);
                }
            }
            assert_eq!(
                ids,
                want.clone().collect::<Vec<_>>(),
                "{want:?} by {batch_rows}"
            );
        }
    }
    // `_key` is no field to ask for, nor one past the last
    assert!(file.range_scan(b"p", b"q", &[0], 10).is_err());
    assert!(file.range_scan(b"p", b"q", &[5], 10).is_err());
}
