//! The demo warehouse (real Iceberg tables, written by iceberg-rust) behind
//! a governor, as `sluice demo` serves it: `lake.sales.orders` with its
//! sensitivity and attachment columns classified.

use std::path::Path;

use sluice_connectors::{build_demo_warehouse, demo_catalog_config, load_iceberg_catalog};
use sluice_planner::{CatalogEntry, Governor};

use crate::catalog::sales_classes;

/// Writes the demo warehouse with `rows` orders into `dir` and returns a
/// governor serving it as `lake`, with the `hash` mask keyed by `mask_key`.
///
/// # Panics
///
/// When the warehouse cannot be written or loaded (a broken test machine).
pub async fn demo_governor(dir: &Path, rows: u64, mask_key: &[u8]) -> Governor {
    build_demo_warehouse(dir, rows)
        .await
        .expect("the demo warehouse is written");
    let config = demo_catalog_config(dir).expect("the demo catalog config");
    let mut governor = Governor::new().with_mask_key(mask_key);
    governor.add_catalog(
        "lake",
        CatalogEntry {
            provider: load_iceberg_catalog(&config)
                .await
                .expect("the demo catalog loads"),
            tables: sales_classes(),
        },
    );
    governor
}
