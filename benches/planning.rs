//! Plan + policy rewrite cost: what the policy adds to DataFusion's own
//! planning.
//!
//! Measures, in one run and over the same in-memory catalog:
//! - `datafusion`: raw DataFusion, SQL → optimised physical plan, no policy;
//! - `sluice`: the governor's full path for one request: scoped session for
//!   the token, SQL guard, planning through secure views, optimised
//!   physical plan (the policy barrier included).
//!
//! The query joins three tables (orders ⋈ customers ⋈ orders) with an
//! aggregate, under a token with a row rule, a deny rule and a mask.
//!
//! `cargo bench --bench planning` prints both; the ratio is the policy's
//! overhead on planning.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::prelude::SessionContext;

const QUERY: &str = "SELECT c.name, count(*) AS n, sum(o.amount) AS total
    FROM lake.sales.orders o
    JOIN lake.sales.customers c ON o.customer_id = c.customer_id
    JOIN lake.sales.orders o2 ON o2.customer_id = c.customer_id AND o2.order_id <> o.order_id
    WHERE o.amount > 10 AND o.customer_email LIKE '%a%'
    GROUP BY c.name ORDER BY total DESC LIMIT 10";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let governor = Arc::new(sluice_test_support::governor());
    let scope = sluice_test_support::token("eu");

    // Raw DataFusion over the same tables, no policy.
    let raw = SessionContext::new();
    raw.register_catalog("lake", sluice_test_support::raw_catalog());

    let mut group = c.benchmark_group("plan_3_join");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("datafusion", |b| {
        b.to_async(&rt).iter(|| async {
            let df = raw.sql(QUERY).await.unwrap();
            df.create_physical_plan().await.unwrap()
        })
    });
    group.bench_function("sluice", |b| {
        b.to_async(&rt).iter(|| async {
            let plan = governor.plan(&scope, QUERY).await.unwrap();
            let state = plan.context().state();
            let optimized = state.optimize(plan.logical_plan()).unwrap();
            state.create_physical_plan(&optimized).await.unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
