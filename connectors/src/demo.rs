//! The demo warehouse behind `sluice demo`: a local Iceberg SQL catalog on
//! SQLite with deterministic data, written by iceberg-rust through
//! DataFusion `INSERT`.
//!
//! - `sales.orders` (`rows` rows): order_id, region, customer_id,
//!   customer_email, amount, sensitivity (0–3), embedding (8 floats),
//!   attachment (binary), created_at;
//! - `sales.customers` (10 000 rows): customer_id, name, email, country, tier;
//! - `hr.salaries` (1 000 rows): a table the demo's restricted tokens are
//!   never granted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::iceberg::spec::{ListType, NestedField, PrimitiveType, Schema, Type};
use ::iceberg::{NamespaceIdent, TableCreation, TableIdent};
use datafusion::prelude::SessionContext;
use iceberg_datafusion::IcebergCatalogProvider;

use crate::error::{Error, Result};
use crate::iceberg::{IcebergCatalogConfig, IcebergCatalogKind, connect};

/// Where the demo warehouse lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoWarehouse {
    /// SQL catalog URI (`sqlite:/abs/catalog.db`).
    pub catalog_uri: String,
    /// Warehouse location (`file:///abs/warehouse`).
    pub warehouse: String,
    /// The Iceberg catalog name (`lake`).
    pub catalog_name: String,
    /// Rows in `sales.orders`.
    pub orders_rows: u64,
    /// Whether the tables were written now (false: an existing warehouse was reused).
    pub created: bool,
}

/// Name of the demo catalog.
pub const DEMO_CATALOG: &str = "lake";

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

fn long(id: i32, name: &str, required: bool) -> Arc<NestedField> {
    field(id, name, Type::Primitive(PrimitiveType::Long), required)
}

fn string(id: i32, name: &str) -> Arc<NestedField> {
    field(id, name, Type::Primitive(PrimitiveType::String), false)
}

fn field(id: i32, name: &str, t: Type, required: bool) -> Arc<NestedField> {
    Arc::new(if required {
        NestedField::required(id, name, t)
    } else {
        NestedField::optional(id, name, t)
    })
}

fn orders_schema() -> Result<Schema> {
    Ok(Schema::builder()
        .with_fields(vec![
            long(1, "order_id", true),
            string(2, "region"),
            long(3, "customer_id", false),
            string(4, "customer_email"),
            field(5, "amount", Type::Primitive(PrimitiveType::Double), false),
            field(6, "sensitivity", Type::Primitive(PrimitiveType::Int), false),
            field(
                7,
                "embedding",
                Type::List(ListType {
                    element_field: Arc::new(NestedField::list_element(
                        10,
                        Type::Primitive(PrimitiveType::Float),
                        false,
                    )),
                }),
                false,
            ),
            field(
                8,
                "attachment",
                Type::Primitive(PrimitiveType::Binary),
                false,
            ),
            field(
                9,
                "created_at",
                Type::Primitive(PrimitiveType::Timestamp),
                false,
            ),
        ])
        .build()?)
}

fn customers_schema() -> Result<Schema> {
    Ok(Schema::builder()
        .with_fields(vec![
            long(1, "customer_id", true),
            string(2, "name"),
            string(3, "email"),
            string(4, "country"),
            string(5, "tier"),
        ])
        .build()?)
}

fn salaries_schema() -> Result<Schema> {
    Ok(Schema::builder()
        .with_fields(vec![
            long(1, "employee_id", true),
            string(2, "name"),
            field(3, "salary", Type::Primitive(PrimitiveType::Double), false),
        ])
        .build()?)
}

/// The catalog config pointing at a demo warehouse in `dir`.
pub fn demo_catalog_config(dir: &Path) -> Result<IcebergCatalogConfig> {
    let dir = absolute(dir)?;
    Ok(IcebergCatalogConfig {
        catalog: IcebergCatalogKind::Sql,
        catalog_name: Some(DEMO_CATALOG.to_string()),
        uri: format!("sqlite:{}", dir.join("catalog.db").display()),
        warehouse: Some(format!("file://{}", dir.join("warehouse").display())),
        props: Default::default(),
        s3: None,
        tables: Default::default(),
        refresh_interval: crate::iceberg::DEFAULT_REFRESH_INTERVAL,
    })
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    dir.canonicalize()
        .map_err(io(format!("resolving {}", dir.display())))
}

/// Builds (or reuses) the demo warehouse in `dir` with `rows` orders.
pub async fn build_demo_warehouse(dir: &Path, rows: u64) -> Result<DemoWarehouse> {
    let cfg = demo_catalog_config(dir)?;
    let dir = absolute(dir)?;
    std::fs::create_dir_all(dir.join("warehouse"))
        .map_err(io("creating the warehouse directory"))?;
    let db = dir.join("catalog.db");
    if !db.exists() {
        std::fs::File::create(&db).map_err(io(format!("creating {}", db.display())))?;
    }
    let catalog = connect(&cfg).await?;
    let orders = TableIdent::from_strs(["sales", "orders"])?;
    let mut warehouse = DemoWarehouse {
        catalog_uri: cfg.uri.clone(),
        warehouse: cfg.warehouse.clone().unwrap_or_default(),
        catalog_name: cfg.name().to_string(),
        orders_rows: rows,
        created: false,
    };
    if catalog.table_exists(&orders).await? {
        return Ok(warehouse);
    }

    for ns in ["sales", "hr"] {
        let ns = NamespaceIdent::new(ns.to_string());
        if !catalog.namespace_exists(&ns).await? {
            catalog.create_namespace(&ns, HashMap::new()).await?;
        }
    }
    let create = |name: &str, schema: Schema| {
        TableCreation::builder()
            .name(name.to_string())
            .schema(schema)
            .build()
    };
    let sales = NamespaceIdent::new("sales".to_string());
    catalog
        .create_table(&sales, create("customers", customers_schema()?))
        .await?;
    catalog
        .create_table(
            &NamespaceIdent::new("hr".to_string()),
            create("salaries", salaries_schema()?),
        )
        .await?;
    // orders last: its existence marks a complete warehouse.
    let ctx = SessionContext::new();
    let provider = IcebergCatalogProvider::try_new(Arc::clone(&catalog)).await?;
    ctx.register_catalog(DEMO_CATALOG, Arc::new(provider));
    run(&ctx, &customers_insert()).await?;
    run(&ctx, SALARIES_INSERT).await?;

    catalog
        .create_table(&sales, create("orders", orders_schema()?))
        .await?;
    let provider = IcebergCatalogProvider::try_new(catalog).await?;
    ctx.register_catalog(DEMO_CATALOG, Arc::new(provider));
    // Several commits, like a real table that grew over time.
    let chunks = 4u64;
    let per = rows.div_ceil(chunks).max(1);
    let mut start = 1u64;
    while start <= rows {
        let end = (start + per - 1).min(rows);
        run(&ctx, &orders_insert(start, end)).await?;
        start = end + 1;
    }
    warehouse.created = true;
    Ok(warehouse)
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<()> {
    ctx.sql(sql).await?.collect().await?;
    Ok(())
}

/// Deterministic orders `start..=end`. Regions cycle eu/us/apac/eu/latam
/// with every 97th region NULL; amounts spread over 0–14 285 (some above
/// 10 000, every 101st NULL); sensitivity 0–3 (every 89th NULL).
fn orders_insert(start: u64, end: u64) -> String {
    let emb: Vec<String> = (1..=8)
        .map(|k| format!("CAST(sin(CAST(value * {k} AS DOUBLE)) AS FLOAT)"))
        .collect();
    format!(
        "INSERT INTO lake.sales.orders
         SELECT value AS order_id,
                CASE WHEN value % 97 = 0 THEN NULL
                     ELSE CASE value % 5 WHEN 0 THEN 'eu' WHEN 1 THEN 'us' WHEN 2 THEN 'apac' WHEN 3 THEN 'eu' ELSE 'latam' END
                END AS region,
                (value * 7919) % 10000 + 1 AS customer_id,
                concat('customer', CAST((value * 7919) % 10000 + 1 AS VARCHAR), '@example.com') AS customer_email,
                CASE WHEN value % 101 = 0 THEN NULL ELSE CAST((value * 2654435761) % 100000 AS DOUBLE) / 7.0 END AS amount,
                CASE WHEN value % 89 = 0 THEN NULL ELSE CAST((value * 40503) % 4 AS INT) END AS sensitivity,
                make_array({emb}) AS embedding,
                CAST(concat('attachment-', CAST(value AS VARCHAR)) AS BYTEA) AS attachment,
                CAST(to_timestamp_seconds(1700000000 + value * 37) AS TIMESTAMP) AS created_at
         FROM generate_series({start}, {end})",
        emb = emb.join(", ")
    )
}

fn customers_insert() -> String {
    "INSERT INTO lake.sales.customers
     SELECT value AS customer_id,
            concat('Customer ', CAST(value AS VARCHAR)) AS name,
            concat('customer', CAST(value AS VARCHAR), '@example.com') AS email,
            CASE value % 4 WHEN 0 THEN 'DE' WHEN 1 THEN 'US' WHEN 2 THEN 'JP' ELSE 'FR' END AS country,
            CASE WHEN value % 10 = 0 THEN 'gold' WHEN value % 3 = 0 THEN 'silver' ELSE 'bronze' END AS tier
     FROM generate_series(1, 10000)"
        .to_string()
}

const SALARIES_INSERT: &str = "INSERT INTO lake.hr.salaries
     SELECT value AS employee_id, concat('Employee ', CAST(value AS VARCHAR)) AS name,
            CAST(40000 + (value * 7727) % 90000 AS DOUBLE) AS salary
     FROM generate_series(1, 1000)";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn builds_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("sluice-demo-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = build_demo_warehouse(&dir, 1000).await.unwrap();
        assert!(w.created);
        let again = build_demo_warehouse(&dir, 1000).await.unwrap();
        assert!(!again.created, "an existing warehouse is reused");

        let ctx = SessionContext::new();
        let catalog = crate::load_iceberg_catalog(&demo_catalog_config(&dir).unwrap())
            .await
            .unwrap();
        ctx.register_catalog("lake", catalog);
        let batches = ctx
            .sql("SELECT count(*), count(DISTINCT region), max(array_length(embedding)) FROM lake.sales.orders")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| 1000 "), "{text}");
        assert!(text.contains("| 4 "), "{text}");
        assert!(text.contains("| 8 "), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
