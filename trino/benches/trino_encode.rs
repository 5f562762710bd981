//! Server-side Trino JSON page encoding throughput: rows per second on one
//! core, for the shape of `sales.orders` as
//! the demo serves it (bigint, varchar, varchar(64-char hash), double,
//! timestamp(6), decimal(12,2)), next to Arrow IPC encoding of the same
//! batches (what Flight SQL sends) measured in the same run.
//!
//! `cargo bench -p sluice-trino --bench trino_encode`; criterion prints
//! elements/s = rows/s.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 8192;
const BATCHES: usize = 32;

fn batches() -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("customer_email", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "ordered_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("price", DataType::Decimal128(12, 2), true),
    ]));
    let regions = ["eu", "us", "apac", "latam"];
    (0..BATCHES)
        .map(|b| {
            let base = (b * BATCH) as i64;
            let ids: Vec<i64> = (0..BATCH as i64).map(|i| base + i).collect();
            let cols: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| regions[(*i % 4) as usize]),
                )),
                Arc::new(StringArray::from_iter_values(ids.iter().map(|i| {
                    format!("{:064x}", (*i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                }))),
                Arc::new(Float64Array::from_iter_values(
                    ids.iter().map(|i| (*i % 100_000) as f64 / 7.0),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    ids.iter().map(|i| 1_700_000_000_000_000 + i * 1_000_003),
                )),
                Arc::new(
                    Decimal128Array::from_iter_values(
                        ids.iter().map(|i| i128::from(*i % 1_000_000)),
                    )
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
                ),
            ];
            RecordBatch::try_new(Arc::clone(&schema), cols).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let batches = batches();
    let rows = (BATCH * BATCHES) as u64;
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(rows));
    group.sample_size(10);
    group.bench_function("trino_json", |b| {
        b.iter(|| {
            let mut page: Vec<u8> = Vec::with_capacity(4 << 20);
            let mut bytes = 0usize;
            for batch in &batches {
                let mut start = 0;
                while start < batch.num_rows() {
                    let first = page.is_empty();
                    let n = sluice_trino::encode::write_rows(
                        batch,
                        start,
                        batch.num_rows() - start,
                        &mut page,
                        4 << 20,
                        first,
                    )
                    .unwrap();
                    start += n;
                    if page.len() >= 4 << 20 {
                        bytes += page.len();
                        page.clear();
                    }
                }
            }
            bytes + page.len()
        })
    });
    group.bench_function("arrow_ipc", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(64 << 20);
            let mut w =
                arrow::ipc::writer::StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
            for batch in &batches {
                w.write(batch).unwrap();
            }
            w.finish().unwrap();
            drop(w);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
