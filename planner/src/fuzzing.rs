//! Entry points for the coverage-guided fuzzer (`fuzz/`) and for the
//! replay of its corpus in the normal tests: what a token holder controls,
//! driven through the same path as every frontend. Not an API.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use futures::StreamExt;

use std::net::IpAddr;

use crate::limits::{Limits, LimitsConfig};
use crate::{AuthFailure, AuthFailureKind, Authenticator, CatalogEntry, Governor, TokenScope};

/// The fuzz token's secret.
pub const SECRET: &str = "fuzz-secret";

/// Knows only the fuzz token ([`SECRET`]).
#[derive(Debug)]
pub struct FuzzAuthenticator;

#[async_trait::async_trait]
impl Authenticator for FuzzAuthenticator {
    async fn authenticate(
        &self,
        secret: &str,
        _client: Option<IpAddr>,
    ) -> Result<Arc<TokenScope>, AuthFailure> {
        if secret == SECRET {
            Ok(Arc::clone(&gateway().1))
        } else {
            Err(AuthFailure::new(AuthFailureKind::Unknown))
        }
    }
}

/// The fuzz gateway's governor and token.
pub fn governor_and_token() -> (Governor, Arc<TokenScope>) {
    let (g, t, _) = gateway();
    (g.clone(), Arc::clone(t))
}

/// A gateway with one small table (`lake.db.t`: `id`, `name`), statements
/// bounded to a second, and a token granted it with a masked column.
fn gateway() -> &'static (Governor, Arc<TokenScope>, tokio::runtime::Runtime) {
    static GATEWAY: OnceLock<(Governor, Arc<TokenScope>, tokio::runtime::Runtime)> =
        OnceLock::new();
    GATEWAY.get_or_init(|| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..64)),
                Arc::new(StringArray::from_iter_values(
                    (0..64).map(|i| format!("n{i}")),
                )),
            ],
        )
        .expect("a valid batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("a valid table");
        let db = MemorySchemaProvider::new();
        db.register_table("t".into(), Arc::new(table))
            .expect("a new table");
        let lake = MemoryCatalogProvider::new();
        lake.register_schema("db", Arc::new(db))
            .expect("a new schema");
        let mut governor = Governor::new();
        governor.add_catalog(
            "lake",
            CatalogEntry {
                provider: Arc::new(lake) as Arc<dyn CatalogProvider>,
                tables: Default::default(),
            },
        );
        let limits = Limits::new(
            LimitsConfig {
                query_timeout: Duration::from_secs(1),
                memory_limit: Some(256 << 20),
                query_memory_limit: Some(64 << 20),
                spill_limit: 0,
                ..LimitsConfig::default()
            },
            None,
        )
        .expect("valid limits");
        let governor = governor.with_limits(Arc::new(limits));
        let scope: TokenScope = serde_json::from_value(serde_json::json!({
            "token_id": "t-fuzz", "name": "fuzz", "row_limit": 1000,
            "grants": [{"table": "lake.db.t", "masks": {"name": "hash"}}]
        }))
        .expect("a valid scope");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        (governor, Arc::new(scope), runtime)
    })
}

/// Plans `data` (as SQL text) for the fuzz token and runs it to the end:
/// any outcome but a crash or a hang is fine.
pub fn statement(data: &[u8]) {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let (governor, scope, runtime) = gateway();
    runtime.block_on(async {
        let Ok(plan) = governor.plan(scope, sql).await else {
            return;
        };
        let Ok(mut stream) = plan.execute().await else {
            return;
        };
        while let Some(batch) = stream.next().await {
            if batch.is_err() {
                break;
            }
        }
    });
}
