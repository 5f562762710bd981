//! Mask throughput on one core: values per second of each text mask over
//! e-mail-like values (the shape of `customer_email`), next to copying the
//! same values (memory speed) measured in the same run.
//!
//! `cargo bench --bench masks`; criterion prints elements/s = values/s.
//! Target (README, Benchmarks): `hash` at ≥ 5 M values/s per core.

use arrow::array::{Array, StringArray};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_planner::Mask;
use sluice_planner::masks::{MaskKey, apply_mask};

const VALUES: usize = 1 << 20;

fn emails() -> StringArray {
    StringArray::from_iter((0..VALUES).map(|i| {
        (i % 50 != 0).then(|| format!("customer{}@example{}.com", i * 7919 % 1_000_003, i % 97))
    }))
}

fn bench(c: &mut Criterion) {
    let input = emails();
    let key = MaskKey::new(b"a deployment's mask key material");
    let mut group = c.benchmark_group("masks");
    group.throughput(Throughput::Elements(VALUES as u64));
    group.sample_size(10);
    group.bench_function("copy", |b| {
        b.iter(|| {
            let copy = StringArray::from_iter(input.iter());
            assert_eq!(copy.len(), VALUES);
        })
    });
    let masks = [
        ("hash", Mask::Hash),
        ("redact", Mask::Redact),
        (
            "partial_2_4",
            Mask::Partial {
                keep_first: 2,
                keep_last: 4,
            },
        ),
    ];
    for (name, mask) in masks {
        group.bench_function(name, |b| {
            b.iter(|| {
                let out = apply_mask(&mask, &input, Some(key.as_bytes()));
                assert_eq!(out.len(), VALUES);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
