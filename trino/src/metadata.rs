//! Trino-shaped metadata for Trino-dialect sessions: every catalog gets an
//! `information_schema` with Trino's tables and column names, and a
//! `system` catalog holds `system.jdbc.*` as Trino's JDBC driver and
//! SQLAlchemy dialect read them.
//!
//! Everything here is computed from the token's *scoped* catalogs (the same
//! providers queries resolve against), so a table or column the token
//! cannot see is absent by construction, not by filtering.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider};
use datafusion::common::{Result, not_impl_err};
use datafusion::datasource::TableProvider;

use sluice_planner::RUNTIME_SCHEMA;

use crate::types::TrinoType;

/// Name of every catalog's metadata schema.
pub const INFORMATION_SCHEMA: &str = "information_schema";
pub use sluice_planner::SYSTEM_CATALOG;

const INFO_TABLES: [&str; 4] = ["columns", "schemata", "tables", "views"];
const JDBC_TABLES: [&str; 5] = ["catalogs", "columns", "schemas", "table_types", "tables"];

/// A column of a visible table, as metadata reports it.
#[derive(Debug, Clone)]
struct ColumnInfo {
    catalog: String,
    schema: String,
    table: String,
    name: String,
    position: i64,
    ty: TrinoType,
    nullable: bool,
}

impl ColumnInfo {
    /// `YES` / `NO`, as both metadata tables spell it.
    fn is_nullable(&self) -> &'static str {
        if self.nullable { "YES" } else { "NO" }
    }
}

/// A scoped catalog plus Trino's `information_schema`.
#[derive(Debug)]
pub struct TrinoCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
}

impl TrinoCatalog {
    /// Adds `information_schema` to `inner` (served as `name`).
    pub fn new(name: String, inner: Arc<dyn CatalogProvider>) -> Self {
        Self { name, inner }
    }
}

impl CatalogProvider for TrinoCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        with_information_schema(self.inner.as_ref())
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == INFORMATION_SCHEMA {
            return Some(Arc::new(InfoSchema {
                catalog: self.name.clone(),
                inner: Arc::clone(&self.inner),
            }));
        }
        self.inner.schema(name)
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        not_impl_err!("sluice is read-only: schemas cannot be created")
    }
}

/// `<catalog>.information_schema`.
#[derive(Debug)]
struct InfoSchema {
    catalog: String,
    inner: Arc<dyn CatalogProvider>,
}

#[async_trait]
impl SchemaProvider for InfoSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        INFO_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let cat = self.catalog.as_str();
        let batch = match name {
            "schemata" => {
                let names = with_information_schema(self.inner.as_ref());
                batch(vec![
                    text("catalog_name", vec![Some(cat.to_string()); names.len()]),
                    text("schema_name", names.into_iter().map(Some).collect()),
                ])?
            }
            "tables" => {
                let tables = catalog_tables(cat, self.inner.as_ref());
                batch(vec![
                    text_of("table_catalog", &tables, |t| t.0.clone()),
                    text_of("table_schema", &tables, |t| t.1.clone()),
                    text_of("table_name", &tables, |t| t.2.clone()),
                    text(
                        "table_type",
                        vec![Some("BASE TABLE".to_string()); tables.len()],
                    ),
                ])?
            }
            "views" => batch(vec![
                text("table_catalog", vec![]),
                text("table_schema", vec![]),
                text("table_name", vec![]),
                text("view_definition", vec![]),
            ])?,
            "columns" => {
                let cols = catalog_columns(cat, self.inner.as_ref()).await?;
                batch(vec![
                    text_of("table_catalog", &cols, |c| c.catalog.clone()),
                    text_of("table_schema", &cols, |c| c.schema.clone()),
                    text_of("table_name", &cols, |c| c.table.clone()),
                    text_of("column_name", &cols, |c| c.name.clone()),
                    int_of("ordinal_position", &cols, |c| c.position),
                    text("column_default", vec![None; cols.len()]),
                    text(
                        "is_nullable",
                        cols.iter()
                            .map(|c| Some(c.is_nullable().to_string()))
                            .collect(),
                    ),
                    text_of("data_type", &cols, |c| c.ty.name()),
                    text("comment", vec![None; cols.len()]),
                    text("extra_info", vec![None; cols.len()]),
                ])?
            }
            _ => return Ok(None),
        };
        Ok(Some(mem_table(batch)?))
    }

    fn table_exist(&self, name: &str) -> bool {
        INFO_TABLES.contains(&name)
    }
}

/// The `system` catalog: `system.jdbc.*` over the session's catalogs.
#[derive(Debug)]
pub struct SystemCatalog {
    catalogs: Arc<Vec<(String, Arc<dyn CatalogProvider>)>>,
    runtime: Option<Arc<dyn SchemaProvider>>,
}

impl SystemCatalog {
    /// Metadata over `catalogs` (name → Trino catalog of the session).
    pub fn new(catalogs: Vec<(String, Arc<dyn CatalogProvider>)>) -> Self {
        Self {
            catalogs: Arc::new(catalogs),
            runtime: None,
        }
    }

    /// Adds the gateway's `system.runtime` schema (admin sessions).
    pub fn with_runtime(mut self, runtime: Option<Arc<dyn SchemaProvider>>) -> Self {
        self.runtime = runtime;
        self
    }

    fn sibling(&self) -> SystemCatalog {
        SystemCatalog {
            catalogs: Arc::clone(&self.catalogs),
            runtime: self.runtime.clone(),
        }
    }
}

impl CatalogProvider for SystemCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![
            INFORMATION_SCHEMA.to_string(),
            "jdbc".to_string(),
            "metadata".to_string(),
        ];
        if self.runtime.is_some() {
            names.push(RUNTIME_SCHEMA.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            "jdbc" => Some(Arc::new(JdbcSchema {
                catalogs: Arc::clone(&self.catalogs),
            })),
            "metadata" => Some(Arc::new(MetadataSchema {
                jdbc: JdbcSchema {
                    catalogs: Arc::clone(&self.catalogs),
                },
            })),
            INFORMATION_SCHEMA => Some(Arc::new(InfoSchema {
                catalog: SYSTEM_CATALOG.to_string(),
                inner: Arc::new(self.sibling()),
            })),
            RUNTIME_SCHEMA => self.runtime.clone(),
            _ => None,
        }
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        not_impl_err!("sluice is read-only: schemas cannot be created")
    }
}

/// `system.jdbc`.
#[derive(Debug)]
struct JdbcSchema {
    catalogs: Arc<Vec<(String, Arc<dyn CatalogProvider>)>>,
}

impl JdbcSchema {
    fn all(&self) -> Vec<(String, Arc<dyn CatalogProvider>)> {
        let mut all: Vec<(String, Arc<dyn CatalogProvider>)> = self.catalogs.as_ref().clone();
        all.push((
            SYSTEM_CATALOG.to_string(),
            Arc::new(SystemCatalog::new(self.catalogs.as_ref().clone())),
        ));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[async_trait]
impl SchemaProvider for JdbcSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        JDBC_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let all = self.all();
        let batch = match name {
            "catalogs" => batch(vec![text_of("table_cat", &all, |c| c.0.clone())])?,
            "table_types" => batch(vec![text("table_type", vec![Some("TABLE".to_string())])])?,
            "schemas" => {
                let mut rows = Vec::new();
                for (cat, provider) in &all {
                    for s in provider.schema_names() {
                        rows.push((s, cat.clone()));
                    }
                }
                batch(vec![
                    text_of("table_schem", &rows, |r| r.0.clone()),
                    text_of("table_catalog", &rows, |r| r.1.clone()),
                ])?
            }
            "tables" => {
                let mut rows = Vec::new();
                for (cat, provider) in &all {
                    rows.extend(catalog_tables(cat, provider.as_ref()));
                }
                let n = rows.len();
                batch(vec![
                    text_of("table_cat", &rows, |t| t.0.clone()),
                    text_of("table_schem", &rows, |t| t.1.clone()),
                    text_of("table_name", &rows, |t| t.2.clone()),
                    text("table_type", vec![Some("TABLE".to_string()); n]),
                    text("remarks", vec![None; n]),
                    text("type_cat", vec![None; n]),
                    text("type_schem", vec![None; n]),
                    text("type_name", vec![None; n]),
                    text("self_referencing_col_name", vec![None; n]),
                    text("ref_generation", vec![None; n]),
                ])?
            }
            "columns" => {
                // Data catalogs only: the metadata tables' own columns would
                // make `system` describe itself recursively.
                let mut cols = Vec::new();
                for (cat, provider) in self.catalogs.iter() {
                    cols.extend(catalog_columns(cat, provider.as_ref()).await?);
                }
                let n = cols.len();
                let sizes: Vec<(Option<i64>, Option<i64>)> =
                    cols.iter().map(|c| c.ty.jdbc_size()).collect();
                batch(vec![
                    text_of("table_cat", &cols, |c| c.catalog.clone()),
                    text_of("table_schem", &cols, |c| c.schema.clone()),
                    text_of("table_name", &cols, |c| c.table.clone()),
                    text_of("column_name", &cols, |c| c.name.clone()),
                    int(
                        "data_type",
                        cols.iter()
                            .map(|c| Some(i64::from(c.ty.jdbc_type())))
                            .collect(),
                    ),
                    text_of("type_name", &cols, |c| c.ty.name()),
                    int("column_size", sizes.iter().map(|s| s.0).collect()),
                    int("buffer_length", vec![None; n]),
                    int("decimal_digits", sizes.iter().map(|s| s.1).collect()),
                    int(
                        "num_prec_radix",
                        cols.iter()
                            .map(|c| match c.ty {
                                TrinoType::TinyInt
                                | TrinoType::SmallInt
                                | TrinoType::Integer
                                | TrinoType::BigInt
                                | TrinoType::Decimal(..) => Some(10),
                                TrinoType::Real | TrinoType::Double => Some(2),
                                _ => None,
                            })
                            .collect(),
                    ),
                    int(
                        "nullable",
                        cols.iter().map(|c| Some(i64::from(c.nullable))).collect(),
                    ),
                    text("remarks", vec![None; n]),
                    text("column_def", vec![None; n]),
                    int("sql_data_type", vec![None; n]),
                    int("sql_datetime_sub", vec![None; n]),
                    int("char_octet_length", vec![None; n]),
                    int_of("ordinal_position", &cols, |c| c.position),
                    text(
                        "is_nullable",
                        cols.iter()
                            .map(|c| Some(c.is_nullable().to_string()))
                            .collect(),
                    ),
                    text("scope_catalog", vec![None; n]),
                    text("scope_schema", vec![None; n]),
                    text("scope_table", vec![None; n]),
                    int("source_data_type", vec![None; n]),
                    text("is_autoincrement", vec![Some("NO".to_string()); n]),
                    text("is_generatedcolumn", vec![Some("NO".to_string()); n]),
                ])?
            }
            _ => return Ok(None),
        };
        Ok(Some(mem_table(batch)?))
    }

    fn table_exist(&self, name: &str) -> bool {
        JDBC_TABLES.contains(&name)
    }
}

/// `system.metadata`: `catalogs` and `table_comments` (no comments).
#[derive(Debug)]
struct MetadataSchema {
    jdbc: JdbcSchema,
}

const METADATA_TABLES: [&str; 2] = ["catalogs", "table_comments"];

#[async_trait]
impl SchemaProvider for MetadataSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        METADATA_TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let all = self.jdbc.all();
        let batch = match name {
            "catalogs" => batch(vec![
                text_of("catalog_name", &all, |c| c.0.clone()),
                text_of("connector_id", &all, |c| c.0.clone()),
                text(
                    "connector_name",
                    all.iter()
                        .map(|c| {
                            Some(
                                if c.0 == SYSTEM_CATALOG {
                                    "system"
                                } else {
                                    "sluice"
                                }
                                .to_string(),
                            )
                        })
                        .collect(),
                ),
            ])?,
            "table_comments" => {
                let mut rows = Vec::new();
                for (cat, provider) in &all {
                    rows.extend(catalog_tables(cat, provider.as_ref()));
                }
                batch(vec![
                    text_of("catalog_name", &rows, |t| t.0.clone()),
                    text_of("schema_name", &rows, |t| t.1.clone()),
                    text_of("table_name", &rows, |t| t.2.clone()),
                    text("comment", vec![None; rows.len()]),
                ])?
            }
            _ => return Ok(None),
        };
        Ok(Some(mem_table(batch)?))
    }

    fn table_exist(&self, name: &str) -> bool {
        METADATA_TABLES.contains(&name)
    }
}

/// The schemas of `inner` plus `information_schema`, sorted.
fn with_information_schema(inner: &dyn CatalogProvider) -> Vec<String> {
    let mut names: Vec<String> = inner
        .schema_names()
        .into_iter()
        .filter(|s| s != INFORMATION_SCHEMA)
        .collect();
    names.push(INFORMATION_SCHEMA.to_string());
    names.sort();
    names
}

/// `(catalog, schema, table)` of every visible table of `provider`, sorted.
fn catalog_tables(cat: &str, provider: &dyn CatalogProvider) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut schemas = provider.schema_names();
    schemas.sort();
    for s in schemas {
        let Some(schema) = provider.schema(&s) else {
            continue;
        };
        let mut tables = schema.table_names();
        tables.sort();
        for t in tables {
            out.push((cat.to_string(), s.clone(), t));
        }
    }
    out
}

async fn catalog_columns(cat: &str, provider: &dyn CatalogProvider) -> Result<Vec<ColumnInfo>> {
    let mut out = Vec::new();
    for (_, s, t) in catalog_tables(cat, provider) {
        if s == INFORMATION_SCHEMA {
            continue;
        }
        let Some(schema) = provider.schema(&s) else {
            continue;
        };
        let Some(table) = schema.table(&t).await? else {
            continue;
        };
        for (i, f) in table.schema().fields().iter().enumerate() {
            out.push(ColumnInfo {
                catalog: cat.to_string(),
                schema: s.clone(),
                table: t.clone(),
                name: f.name().clone(),
                position: i as i64 + 1,
                ty: TrinoType::of(f.data_type()),
                nullable: f.is_nullable(),
            });
        }
    }
    Ok(out)
}

type Col = (Field, ArrayRef);

fn text(name: &str, values: Vec<Option<String>>) -> Col {
    (
        Field::new(name, DataType::Utf8, true),
        Arc::new(StringArray::from(values)),
    )
}

/// A text column with one value per row of `rows`.
fn text_of<T>(name: &str, rows: &[T], value: impl Fn(&T) -> String) -> Col {
    text(name, rows.iter().map(|r| Some(value(r))).collect())
}

/// An integer column with one value per row of `rows`.
fn int_of<T>(name: &str, rows: &[T], value: impl Fn(&T) -> i64) -> Col {
    int(name, rows.iter().map(|r| Some(value(r))).collect())
}

fn int(name: &str, values: Vec<Option<i64>>) -> Col {
    (
        Field::new(name, DataType::Int64, true),
        Arc::new(Int64Array::from(values)),
    )
}

fn batch(cols: Vec<Col>) -> Result<RecordBatch> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = cols.into_iter().unzip();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn mem_table(batch: RecordBatch) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![vec![batch]],
    )?))
}
