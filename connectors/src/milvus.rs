//! Milvus collections served to DataFusion (`milvus-sdk-rust`, gRPC).
//!
//! One catalog per configured Milvus database: schema = the database name,
//! tables = its collections. Scalar fields map to Arrow types, a
//! `FloatVector(dim)` field to `FixedSizeList(Float32, dim)`; JSON fields
//! are text; other field kinds (binary/sparse/half vectors, arrays,
//! the dynamic field) are not exposed.
//!
//! Scans run Milvus `query` calls that carry the projection and a boolean
//! expression translated from the filters (comparisons, `IN`, `AND`/`OR`/
//! `NOT`, `LIKE 'prefix%'`); they page through the collection by primary
//! key (`pk > last` with a page limit) so a large collection is never held
//! whole. Filters that do not translate stay in DataFusion. Vector search
//! uses Milvus' native ANN `search` ([`NativeVectorSearch`]).
//!
//! Availability: the collection list is read at start and refreshed in the
//! background; every call has a deadline. An unreachable or slow server
//! gives [`ConnectorUnavailable`] (a clear error naming the catalog) and
//! never blocks other catalogs; [`MilvusCatalog::status`] feeds `/ready`.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;
use milvus::v2::prelude::{
    ClientV2, ConnectConfig, ConsistencyLevel, DataType as MilvusType, DescribeCollectionRequest,
    DescribeIndexRequest, FieldData, Ids, ListCollectionsRequest, MetricType, QueryRequest,
    SearchRequest, SearchVectors,
};
use sluice_planner::connector::{
    ConnectorUnavailable, INTERNAL_DISTANCE_COLUMN as DISTANCE_COLUMN, NativeVectorSearch,
};
use sluice_planner::vectors::Metric;

use crate::error::{Error, Result};

/// How to reach one Milvus database.
#[derive(Clone)]
pub struct MilvusConfig {
    /// The catalog name (in errors and logs).
    pub name: String,
    /// gRPC endpoint, `http://host:19530`.
    pub uri: String,
    /// Milvus database (`default`).
    pub database: String,
    /// User name (with `password`), when authentication is on.
    pub username: Option<String>,
    /// Password (never logged).
    pub password: Option<String>,
    /// API token instead of user/password (never logged).
    pub token: Option<String>,
    /// Deadline of every call (connect, list, query page, search).
    pub timeout: Duration,
    /// How often the collection list is re-read.
    pub refresh_interval: Duration,
    /// Rows per query page (at most 16384).
    pub page_size: usize,
    /// Consistency level of reads (`strong`, `session`, `bounded`,
    /// `eventually`); `None`: each collection's own.
    pub consistency: Option<String>,
}

impl fmt::Debug for MilvusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MilvusConfig")
            .field("name", &self.name)
            .field("uri", &self.uri)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("refresh_interval", &self.refresh_interval)
            .field("page_size", &self.page_size)
            .field("consistency", &self.consistency)
            .finish()
    }
}

fn consistency_level(name: &str) -> Option<ConsistencyLevel> {
    match name.to_ascii_lowercase().as_str() {
        "strong" => Some(ConsistencyLevel::Strong),
        "session" => Some(ConsistencyLevel::Session),
        "bounded" => Some(ConsistencyLevel::Bounded),
        "eventually" => Some(ConsistencyLevel::Eventually),
        _ => None,
    }
}

/// Largest page / top-k Milvus accepts.
const MILVUS_MAX_LIMIT: usize = 16_384;

/// Whether the catalog is reachable, as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogStatus {
    /// The last refresh succeeded.
    pub ready: bool,
    /// Why the last refresh failed.
    pub error: Option<String>,
    /// Collections known.
    pub tables: usize,
}

struct Shared {
    cfg: MilvusConfig,
    client: tokio::sync::Mutex<Option<ClientV2>>,
    tables: RwLock<BTreeMap<String, Arc<MilvusTable>>>,
    status: RwLock<CatalogStatus>,
}

/// A Milvus database as a DataFusion catalog.
#[derive(Clone)]
pub struct MilvusCatalog {
    shared: Arc<Shared>,
}

impl fmt::Debug for MilvusCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MilvusCatalog")
            .field("config", &self.shared.cfg)
            .finish()
    }
}

/// An answer larger than the SDK accepts (4 MiB): ask for fewer rows.
#[derive(Debug)]
struct AnswerTooLarge;

impl fmt::Display for AnswerTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the Milvus answer exceeds the 4 MiB message limit")
    }
}

impl std::error::Error for AnswerTooLarge {}

fn is_too_large(e: &DataFusionError) -> bool {
    matches!(e.find_root(), DataFusionError::External(x) if x.is::<AnswerTooLarge>())
}

fn unavailable(cfg: &MilvusConfig, reason: impl Into<String>) -> DataFusionError {
    ConnectorUnavailable {
        catalog: cfg.name.clone(),
        reason: reason.into(),
        peer: false,
    }
    .into_datafusion()
}

impl Shared {
    fn consistency(&self) -> Option<ConsistencyLevel> {
        self.cfg.consistency.as_deref().and_then(consistency_level)
    }

    async fn client(&self) -> DFResult<ClientV2> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let mut config = ConnectConfig::new()
            .uri(self.cfg.uri.clone())
            .connect_timeout(self.cfg.timeout)
            .rpc_timeout(self.cfg.timeout)
            // Retries end within the call's deadline (and an oversized
            // answer is not asked for again and again).
            .retry(
                milvus::v2::prelude::RetryConfig::new()
                    .max_attempts(3)
                    .max_retry_timeout(self.cfg.timeout),
            )
            .database(self.cfg.database.clone());
        if let Some(t) = &self.cfg.token {
            config = config.token(t.clone());
        }
        if let Some(u) = &self.cfg.username {
            config = config.username(u.clone());
        }
        if let Some(p) = &self.cfg.password {
            config = config.password(p.clone());
        }
        let client = match tokio::time::timeout(self.cfg.timeout, ClientV2::new(&config)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(catalog = %self.cfg.name, error = %e, "cannot connect to milvus");
                return Err(unavailable(&self.cfg, "cannot connect"));
            }
            Err(_) => {
                return Err(unavailable(
                    &self.cfg,
                    format!("no connection within {:?}", self.cfg.timeout),
                ));
            }
        };
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Runs one call under the deadline. Transport failures drop the
    /// client (the next call reconnects) and are reported as
    /// unavailability with a fixed reason: server and transport texts can
    /// quote the request's expression (the token's policy), so they only
    /// go to the log.
    async fn call<T, F>(&self, what: &str, f: impl FnOnce(ClientV2) -> F) -> DFResult<T>
    where
        F: Future<Output = milvus::v2::error::Result<T>>,
    {
        self.call_traced(what, None, f).await
    }

    /// [`Shared::call`] on behalf of a request whose W3C trace id is
    /// `trace`: Milvus receives it as its `client_request_id` (which Milvus
    /// uses as the trace id of its own spans).
    async fn call_traced<T, F>(
        &self,
        what: &str,
        trace: Option<&str>,
        f: impl FnOnce(ClientV2) -> F,
    ) -> DFResult<T>
    where
        F: Future<Output = milvus::v2::error::Result<T>>,
    {
        use milvus::v2::error::Error as E;
        let client = self.client().await?;
        let call = f(client);
        let call = async move {
            match trace {
                Some(t) => milvus::v2::client::with_client_request_id(t.to_string(), call).await,
                None => call.await,
            }
        };
        let outcome = tokio::time::timeout(self.cfg.timeout, call).await;
        let e = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => {
                *self.client.lock().await = None;
                tracing::warn!(catalog = %self.cfg.name, what, "milvus call timed out");
                return Err(unavailable(
                    &self.cfg,
                    format!("{what}: no answer within {:?}", self.cfg.timeout),
                ));
            }
        };
        tracing::warn!(catalog = %self.cfg.name, what, error = %e, "milvus call failed");
        let root = match &e {
            E::RetryExhausted { source, .. } => source.as_ref(),
            other => other,
        };
        match root {
            // The answer exceeds the SDK's 4 MiB message limit.
            // gRPC codes 8 (RESOURCE_EXHAUSTED) and 11 (OUT_OF_RANGE).
            E::Grpc(status) if matches!(i32::from(status.code()), 8 | 11) => {
                Err(DataFusionError::External(Box::new(AnswerTooLarge)))
            }
            E::Grpc(_) | E::Timeout(_) | E::Cancelled(_) | E::RetryExhausted { .. } => {
                *self.client.lock().await = None;
                Err(unavailable(
                    &self.cfg,
                    format!("{what} failed (transport error)"),
                ))
            }
            // CollectionNotLoaded: an operator must load it.
            E::Server(s) if s.code() == 101 || s.legacy_code() == 101 => Err(unavailable(
                &self.cfg,
                format!("{what} failed: the collection is not loaded"),
            )),
            _ => Err(DataFusionError::External(Box::new(Error::Milvus {
                catalog: self.cfg.name.clone(),
                message: format!("{what} failed; the details are in the server log"),
            }))),
        }
    }

    /// Re-reads the collection list and schemas.
    async fn refresh(self: &Arc<Self>) -> DFResult<()> {
        let db = self.cfg.database.clone();
        let names = self
            .call("listing collections", |c| {
                let db = db.clone();
                async move {
                    c.list_collections(
                        ListCollectionsRequest::builder()
                            .database_name(db)
                            .build()?,
                    )
                    .await
                }
            })
            .await?
            .collection_names()
            .to_vec();
        let mut tables = BTreeMap::new();
        for name in names {
            let request = DescribeCollectionRequest::builder()
                .database_name(db.clone())
                .collection_name(name.clone())
                .build()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let desc = self
                .call("describing a collection", |c| async move {
                    c.describe_collection(request).await
                })
                .await?;
            let desc = desc.description();
            let mut metrics = BTreeMap::new();
            for vector in desc.get_vector_field_names() {
                let request = DescribeIndexRequest::builder()
                    .database_name(db.clone())
                    .collection_name(name.clone())
                    .field_name(vector.clone())
                    .build()
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                // No index: no native search on that field (exact search only).
                if let Ok(index) = self
                    .call("describing an index", |c| async move {
                        c.describe_index(request).await
                    })
                    .await
                    && let Some(metric) = index
                        .indexes()
                        .iter()
                        .find_map(|i| metric_of(i.get_metric_type()))
                {
                    metrics.insert(vector.clone(), metric);
                }
            }
            match MilvusTable::from_description(Arc::downgrade(self), &name, desc, metrics) {
                Some(t) => {
                    tables.insert(name, Arc::new(t));
                }
                None => tracing::warn!(
                    catalog = %self.cfg.name, collection = %name,
                    "collection not exposed: no primary key sluice can page by"
                ),
            }
        }
        let count = tables.len();
        *self.tables.write().expect("milvus tables lock") = tables;
        *self.status.write().expect("milvus status lock") = CatalogStatus {
            ready: true,
            error: None,
            tables: count,
        };
        Ok(())
    }

    async fn refresh_recording(self: &Arc<Self>) -> DFResult<()> {
        let result = self.refresh().await;
        if let Err(e) = &result {
            let mut status = self.status.write().expect("milvus status lock");
            status.ready = false;
            status.error = Some(e.to_string());
        }
        result
    }
}

fn metric_of(m: MetricType) -> Option<Metric> {
    match m {
        MetricType::L2 => Some(Metric::L2),
        MetricType::Ip => Some(Metric::InnerProduct),
        MetricType::Cosine => Some(Metric::Cosine),
        _ => None,
    }
}

fn milvus_metric(m: Metric) -> MetricType {
    match m {
        Metric::L2 => MetricType::L2,
        Metric::InnerProduct => MetricType::Ip,
        Metric::Cosine => MetricType::Cosine,
    }
}

/// Connects to Milvus and serves its collections. The gateway starts even
/// when Milvus is down: the catalog is then empty, reports not ready and
/// keeps retrying every `refresh_interval`.
pub async fn load_milvus_catalog(cfg: MilvusConfig) -> Result<MilvusCatalog> {
    if cfg.page_size == 0 || cfg.page_size > MILVUS_MAX_LIMIT {
        return Err(Error::Config {
            catalog: cfg.name.clone(),
            message: format!("page_size must be between 1 and {MILVUS_MAX_LIMIT}"),
        });
    }
    if let Some(c) = &cfg.consistency
        && consistency_level(c).is_none()
    {
        return Err(Error::Config {
            catalog: cfg.name.clone(),
            message: format!(
                "consistency must be strong, session, bounded or eventually, not {c:?}"
            ),
        });
    }
    let shared = Arc::new(Shared {
        cfg,
        client: tokio::sync::Mutex::new(None),
        tables: RwLock::new(BTreeMap::new()),
        status: RwLock::new(CatalogStatus {
            ready: false,
            error: Some("not connected yet".to_string()),
            tables: 0,
        }),
    });
    if let Err(e) = shared.refresh_recording().await {
        tracing::warn!(catalog = %shared.cfg.name, error = %e, "milvus catalog not available at start; retrying in the background");
    }
    let weak = Arc::downgrade(&shared);
    let every = shared.cfg.refresh_interval;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(shared) = weak.upgrade() else { break };
            let was_ready = shared.status.read().expect("milvus status lock").ready;
            match shared.refresh_recording().await {
                Ok(()) if !was_ready => {
                    tracing::info!(catalog = %shared.cfg.name, "milvus catalog available")
                }
                Err(e) if was_ready => {
                    tracing::warn!(catalog = %shared.cfg.name, error = %e, "milvus catalog unavailable")
                }
                _ => {}
            }
        }
    });
    Ok(MilvusCatalog { shared })
}

impl MilvusCatalog {
    /// Reachability as of the last refresh.
    pub fn status(&self) -> CatalogStatus {
        self.shared
            .status
            .read()
            .expect("milvus status lock")
            .clone()
    }

    /// Re-reads the collection list now.
    pub async fn refresh(&self) -> DFResult<()> {
        self.shared.refresh_recording().await
    }

    /// The native vector search of `table` if it is a Milvus table (the
    /// planner's lookup for this catalog).
    pub fn native_search(table: &Arc<dyn TableProvider>) -> Option<Arc<dyn NativeVectorSearch>> {
        table
            .as_any()
            .downcast_ref::<MilvusTableHandle>()
            .map(|h| Arc::clone(&h.0) as Arc<dyn NativeVectorSearch>)
    }
}

impl CatalogProvider for MilvusCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        vec![self.shared.cfg.database.clone()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == self.shared.cfg.database).then(|| {
            Arc::new(MilvusSchema {
                shared: Arc::clone(&self.shared),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

struct MilvusSchema {
    shared: Arc<Shared>,
}

impl fmt::Debug for MilvusSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MilvusSchema({})", self.shared.cfg.name)
    }
}

#[async_trait]
impl SchemaProvider for MilvusSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.shared
            .tables
            .read()
            .expect("milvus tables lock")
            .keys()
            .cloned()
            .collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let found = self
            .shared
            .tables
            .read()
            .expect("milvus tables lock")
            .get(name)
            .cloned();
        Ok(found.map(|t| Arc::new(MilvusTableHandle(t)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared
            .tables
            .read()
            .expect("milvus tables lock")
            .contains_key(name)
    }
}

/// One collection.
pub struct MilvusTable {
    shared: Weak<Shared>,
    catalog: String,
    collection: String,
    schema: SchemaRef,
    primary_key: String,
    pk_is_int: bool,
    /// Metric of each indexed vector field.
    metrics: BTreeMap<String, Metric>,
    /// Upper estimate of each field's encoded size per row.
    field_bytes: BTreeMap<String, usize>,
}

impl fmt::Debug for MilvusTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MilvusTable({}.{})", self.catalog, self.collection)
    }
}

/// The `TableProvider` of a [`MilvusTable`].
#[derive(Debug)]
pub struct MilvusTableHandle(Arc<MilvusTable>);

fn arrow_type(f: &milvus::v2::prelude::FieldSchema) -> Option<DataType> {
    Some(match f.get_data_type() {
        MilvusType::Bool => DataType::Boolean,
        MilvusType::Int8 => DataType::Int8,
        MilvusType::Int16 => DataType::Int16,
        MilvusType::Int32 => DataType::Int32,
        MilvusType::Int64 => DataType::Int64,
        MilvusType::Float => DataType::Float32,
        MilvusType::Double => DataType::Float64,
        MilvusType::VarChar | MilvusType::Text | MilvusType::Json => DataType::Utf8,
        MilvusType::FloatVector => DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, true)),
            i32::try_from(f.get_dimension()).ok()?,
        ),
        _ => return None,
    })
}

impl MilvusTable {
    fn from_description(
        shared: Weak<Shared>,
        name: &str,
        desc: &milvus::v2::prelude::CollectionDesc,
        metrics: BTreeMap<String, Metric>,
    ) -> Option<Self> {
        let catalog = shared
            .upgrade()
            .map(|s| s.cfg.name.clone())
            .unwrap_or_default();
        let mut fields = Vec::new();
        let mut field_bytes = BTreeMap::new();
        let mut primary = None;
        for f in desc.get_schema().get_fields() {
            if f.is_dynamic() {
                continue;
            }
            let Some(t) = arrow_type(f) else {
                tracing::info!(catalog = %catalog, collection = %name, field = %f.get_name(),
                    kind = ?f.get_data_type(), "milvus field kind not exposed");
                continue;
            };
            if f.is_primary_key() {
                primary = Some((
                    f.get_name().to_string(),
                    f.get_data_type() == MilvusType::Int64,
                ));
            }
            let mut field = Field::new(f.get_name(), t, f.is_nullable());
            if f.get_data_type() == MilvusType::Json {
                field =
                    field.with_metadata([("milvus.kind".to_string(), "json".to_string())].into());
            }
            let bytes = match f.get_data_type() {
                MilvusType::FloatVector => 4 * f.get_dimension() as usize + 16,
                MilvusType::VarChar | MilvusType::Text => {
                    f.get_max_length().clamp(16, 65_536) as usize
                }
                MilvusType::Json => 4096,
                _ => 16,
            };
            field_bytes.insert(f.get_name().to_string(), bytes);
            fields.push(field);
        }
        let (primary_key, pk_is_int) = primary?;
        Some(Self {
            shared,
            catalog,
            collection: name.to_string(),
            schema: Arc::new(Schema::new(fields)),
            primary_key,
            pk_is_int,
            metrics,
            field_bytes,
        })
    }

    /// Rows of `fields` that fit in one answer (the SDK's gRPC client
    /// accepts messages of at most 4 MiB).
    fn rows_per_message(&self, fields: &[String]) -> usize {
        const BUDGET: usize = 3 * 1024 * 1024;
        let width: usize = fields
            .iter()
            .map(|f| self.field_bytes.get(f).copied().unwrap_or(16))
            .sum::<usize>()
            .max(1);
        (BUDGET / width).max(1)
    }

    fn shared(&self) -> DFResult<Arc<Shared>> {
        self.shared.upgrade().ok_or_else(|| {
            DataFusionError::Execution(format!("catalog {} was unloaded", self.catalog))
        })
    }
}

// ---------------------------------------------------------------------------
// Filter translation

fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl MilvusTable {
    /// The scalar (non-vector, non-JSON, non-nullable) field `name` refers to.
    fn scalar_field(&self, name: &str) -> Option<&Field> {
        let f = self.schema.field_with_name(name).ok()?;
        if f.is_nullable() {
            return None;
        }
        match f.data_type() {
            // Floating point: Milvus compares with IEEE semantics (-0.0 =
            // 0.0, NaN matches nothing), DataFusion with a total order
            // (-0.0 < 0.0, NaN above everything), and FLOAT fields may be
            // compared in single precision. Not exact, so never pushed.
            DataType::FixedSizeList(..) | DataType::Float32 | DataType::Float64 => None,
            DataType::Utf8 if self.is_json(name) => None,
            _ => Some(f),
        }
    }

    fn is_json(&self, name: &str) -> bool {
        self.schema
            .field_with_name(name)
            .ok()
            .and_then(|f| f.metadata().get("milvus.kind"))
            .is_some_and(|k| k == "json")
    }

    /// A column reference, possibly under a lossless numeric cast.
    fn operand_column(&self, e: &Expr) -> Option<String> {
        match e {
            Expr::Column(c) => self.scalar_field(&c.name).map(|f| f.name().clone()),
            Expr::Cast(c) => {
                let inner = self.operand_column(&c.expr)?;
                let from = self
                    .schema
                    .field_with_name(&inner)
                    .ok()?
                    .data_type()
                    .clone();
                // Integer widenings only: Milvus refuses a float literal
                // against an integer field.
                let lossless = matches!(
                    (&from, &c.data_type),
                    (
                        DataType::Int8 | DataType::Int16 | DataType::Int32,
                        DataType::Int64
                    ) | (DataType::Int8 | DataType::Int16, DataType::Int32)
                        | (DataType::Int8, DataType::Int16)
                );
                lossless.then_some(inner)
            }
            _ => None,
        }
    }

    fn literal(v: &ScalarValue) -> Option<String> {
        Some(match v {
            ScalarValue::Boolean(Some(b)) => b.to_string(),
            ScalarValue::Int8(Some(i)) => i.to_string(),
            ScalarValue::Int16(Some(i)) => i.to_string(),
            ScalarValue::Int32(Some(i)) => i.to_string(),
            // Milvus cannot parse -9223372036854775808 (it negates the
            // out-of-range 9223372036854775808).
            ScalarValue::Int64(Some(i)) if *i != i64::MIN => i.to_string(),
            ScalarValue::UInt8(Some(i)) => i.to_string(),
            ScalarValue::UInt16(Some(i)) => i.to_string(),
            ScalarValue::UInt32(Some(i)) => i.to_string(),
            ScalarValue::Float32(Some(f)) if f.is_finite() => format!("{f:?}"),
            ScalarValue::Float64(Some(f)) if f.is_finite() => format!("{f:?}"),
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => quote_string(s),
            _ => return None,
        })
    }

    fn operand_literal(e: &Expr) -> Option<String> {
        match e {
            Expr::Literal(v, _) => Self::literal(v),
            Expr::Cast(c) => match c.expr.as_ref() {
                Expr::Literal(v, _) => Self::literal(&v.cast_to(&c.data_type).ok()?),
                _ => None,
            },
            _ => None,
        }
    }

    /// The Milvus boolean expression equivalent to `e` (rows kept iff `e`
    /// is TRUE), or `None` when there is none. Fields are non-nullable, so
    /// two-valued logic applies.
    pub fn translate(&self, e: &Expr) -> Option<String> {
        match e {
            Expr::BinaryExpr(b) => match b.op {
                Operator::And | Operator::Or => {
                    let l = self.translate(&b.left)?;
                    let r = self.translate(&b.right)?;
                    let op = if b.op == Operator::And { "and" } else { "or" };
                    Some(format!("({l}) {op} ({r})"))
                }
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsNotDistinctFrom
                | Operator::IsDistinctFrom => {
                    let (c, lit, op) = if let Some(c) = self.operand_column(&b.left) {
                        (c, Self::operand_literal(&b.right)?, b.op)
                    } else {
                        let c = self.operand_column(&b.right)?;
                        (c, Self::operand_literal(&b.left)?, b.op.swap()?)
                    };
                    let sym = match op {
                        Operator::Eq | Operator::IsNotDistinctFrom => "==",
                        Operator::NotEq | Operator::IsDistinctFrom => "!=",
                        Operator::Lt => "<",
                        Operator::LtEq => "<=",
                        Operator::Gt => ">",
                        Operator::GtEq => ">=",
                        _ => return None,
                    };
                    Some(format!("{c} {sym} {lit}"))
                }
                _ => None,
            },
            Expr::Not(x) => Some(format!("not ({})", self.translate(x)?)),
            Expr::IsTrue(x) | Expr::IsNotFalse(x) => self.translate(x),
            Expr::IsFalse(x) | Expr::IsNotTrue(x) => Some(format!("not ({})", self.translate(x)?)),
            Expr::Column(_) => {
                let c = self.operand_column(e)?;
                (self.schema.field_with_name(&c).ok()?.data_type() == &DataType::Boolean)
                    .then(|| format!("{c} == true"))
            }
            Expr::Between(b) => {
                let c = self.operand_column(&b.expr)?;
                let lo = Self::operand_literal(&b.low)?;
                let hi = Self::operand_literal(&b.high)?;
                let range = format!("({c} >= {lo}) and ({c} <= {hi})");
                Some(if b.negated {
                    format!("not ({range})")
                } else {
                    range
                })
            }
            Expr::InList(l) => {
                let c = self.operand_column(&l.expr)?;
                if l.list.is_empty() {
                    return None;
                }
                let items = l
                    .list
                    .iter()
                    .map(Self::operand_literal)
                    .collect::<Option<Vec<_>>>()?;
                let op = if l.negated { "not in" } else { "in" };
                Some(format!("{c} {op} [{}]", items.join(", ")))
            }
            Expr::Like(l) if !l.case_insensitive && l.escape_char.is_none() => {
                let c = self.operand_column(&l.expr)?;
                if self.schema.field_with_name(&c).ok()?.data_type() != &DataType::Utf8 {
                    return None;
                }
                let Expr::Literal(pattern, _) = l.pattern.as_ref() else {
                    return None;
                };
                let pattern = match pattern {
                    ScalarValue::Utf8(Some(p))
                    | ScalarValue::LargeUtf8(Some(p))
                    | ScalarValue::Utf8View(Some(p)) => p,
                    _ => return None,
                };
                // Only `prefix%` (no other wildcard, no backslash) is exact.
                let prefix = pattern.strip_suffix('%')?;
                if prefix.contains(['%', '_', '\\']) {
                    return None;
                }
                let like = format!("{c} like {}", quote_string(&format!("{prefix}%")));
                Some(if l.negated {
                    format!("not ({like})")
                } else {
                    like
                })
            }
            _ => None,
        }
    }

    fn filter_expression(&self, filters: &[Expr]) -> Option<String> {
        let parts: Vec<String> = filters.iter().filter_map(|f| self.translate(f)).collect();
        match parts.len() {
            0 => None,
            1 => parts.into_iter().next(),
            _ => Some(
                parts
                    .iter()
                    .map(|p| format!("({p})"))
                    .collect::<Vec<_>>()
                    .join(" and "),
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Arrow conversion

fn to_arrow(data: &FieldData, field: &Field, rows: usize) -> DFResult<ArrayRef> {
    let (inner, valid) = match data {
        FieldData::Nullable { data, valid_data } => (data.as_ref(), Some(valid_data.as_slice())),
        other => (other, None),
    };
    // Nullable data holds only the valid values: spread them over the rows.
    fn spread<T: Clone>(values: &[T], valid: Option<&[bool]>) -> Vec<Option<T>> {
        match valid {
            None => values.iter().cloned().map(Some).collect(),
            Some(v) => {
                let mut it = values.iter();
                v.iter()
                    .map(|ok| if *ok { it.next().cloned() } else { None })
                    .collect()
            }
        }
    }
    let array: ArrayRef = match (inner, field.data_type()) {
        (FieldData::Bool { values, .. }, DataType::Boolean) => {
            Arc::new(BooleanArray::from(spread(values, valid)))
        }
        (FieldData::Int8 { values, .. }, DataType::Int8) => {
            Arc::new(Int8Array::from(spread(values, valid)))
        }
        (FieldData::Int16 { values, .. }, DataType::Int16) => {
            Arc::new(Int16Array::from(spread(values, valid)))
        }
        (FieldData::Int32 { values, .. }, DataType::Int32) => {
            Arc::new(Int32Array::from(spread(values, valid)))
        }
        (FieldData::Int64 { values, .. }, DataType::Int64) => {
            Arc::new(Int64Array::from(spread(values, valid)))
        }
        (FieldData::Float { values, .. }, DataType::Float32) => {
            Arc::new(Float32Array::from(spread(values, valid)))
        }
        (FieldData::Double { values, .. }, DataType::Float64) => {
            Arc::new(Float64Array::from(spread(values, valid)))
        }
        (FieldData::VarChar { values, .. }, DataType::Utf8) => {
            Arc::new(StringArray::from(spread(values, valid)))
        }
        (FieldData::Json { values, .. }, DataType::Utf8) => {
            let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            Arc::new(StringArray::from(spread(&text, valid)))
        }
        (FieldData::FloatVector { values, .. }, DataType::FixedSizeList(item, dim)) => {
            let dim = *dim as usize;
            let vectors = spread(values, valid);
            let mut flat = Vec::with_capacity(vectors.len() * dim);
            let mut nulls = Vec::with_capacity(vectors.len());
            for v in &vectors {
                match v {
                    Some(v) if v.len() == dim => {
                        flat.extend_from_slice(v);
                        nulls.push(true);
                    }
                    Some(v) => {
                        return Err(DataFusionError::Execution(format!(
                            "milvus returned a vector of {} dimensions for field \"{}\" ({dim})",
                            v.len(),
                            field.name()
                        )));
                    }
                    None => {
                        flat.extend(std::iter::repeat_n(0.0, dim));
                        nulls.push(false);
                    }
                }
            }
            let nulls = nulls.iter().any(|ok| !ok).then(|| NullBuffer::from(nulls));
            Arc::new(FixedSizeListArray::try_new(
                Arc::clone(item),
                dim as i32,
                Arc::new(Float32Array::from(flat)),
                nulls,
            )?)
        }
        (other, t) => {
            return Err(DataFusionError::Execution(format!(
                "milvus returned {} data for field \"{}\" of type {t}",
                field_kind(other),
                field.name()
            )));
        }
    };
    if array.len() != rows {
        return Err(DataFusionError::Execution(format!(
            "milvus returned {} values for field \"{}\", expected {rows}",
            array.len(),
            field.name()
        )));
    }
    Ok(array)
}

fn field_kind(d: &FieldData) -> &'static str {
    match d {
        FieldData::Bool { .. } => "bool",
        FieldData::Int8 { .. } | FieldData::Int16 { .. } | FieldData::Int32 { .. } => "int",
        FieldData::Int64 { .. } => "int64",
        FieldData::Float { .. } | FieldData::Double { .. } => "float",
        FieldData::VarChar { .. } => "varchar",
        FieldData::Json { .. } => "json",
        FieldData::FloatVector { .. } => "float vector",
        _ => "other",
    }
}

fn ids_array(ids: &Ids) -> DFResult<ArrayRef> {
    match ids {
        Ids::Int64(v) => Ok(Arc::new(Int64Array::from(v.clone()))),
        Ids::VarChar(v) => Ok(Arc::new(StringArray::from(v.clone()))),
        _ => Err(DataFusionError::Execution(
            "milvus returned primary keys of an unsupported kind".to_string(),
        )),
    }
}

// ---------------------------------------------------------------------------
// Scan and search

#[async_trait]
impl TableProvider for MilvusTableHandle {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.0.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: DataFusion (or the secure view) re-applies every filter.
        Ok(filters
            .iter()
            .map(|f| {
                if self.0.translate(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let table = &self.0;
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..table.schema.fields().len()).collect(),
        };
        let schema = Arc::new(table.schema.project(&indices)?);
        Ok(Arc::new(MilvusExec::new(
            Arc::clone(table),
            schema,
            Request::Query {
                filter: table.filter_expression(filters),
                limit,
            },
        )))
    }
}

#[async_trait]
impl NativeVectorSearch for MilvusTable {
    fn index_metric(&self, column: &str) -> Option<Metric> {
        self.metrics.get(column).copied()
    }

    fn filter_is_exact(&self, filter: &Expr) -> bool {
        self.translate(filter).is_some()
    }

    fn max_results(&self, projection: &[usize]) -> usize {
        let names: Vec<String> = projection
            .iter()
            .map(|i| self.schema.field(*i).name().clone())
            .collect();
        self.rows_per_message(&names).min(MILVUS_MAX_LIMIT)
    }

    async fn search(
        &self,
        _state: &dyn Session,
        projection: &[usize],
        filters: &[Expr],
        column: &str,
        vector: &[f32],
        k: usize,
        metric: Metric,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let mut expr = Vec::with_capacity(filters.len());
        for f in filters {
            match self.translate(f) {
                Some(t) => expr.push(format!("({t})")),
                None => {
                    return Err(DataFusionError::Internal(
                        "a native search filter has no Milvus expression".to_string(),
                    ));
                }
            }
        }
        let mut fields: Vec<Field> = projection
            .iter()
            .map(|i| self.schema.field(*i).clone())
            .collect();
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        if k > self.rows_per_message(&names) {
            return Err(DataFusionError::Plan(format!(
                "vector_search: {k} results of {} do not fit in one Milvus answer (4 MiB); \
                 lower k or select fewer columns",
                self.collection
            )));
        }
        fields.push(Field::new(DISTANCE_COLUMN, DataType::Float64, true));
        let shared = self.shared()?;
        let me = shared
            .tables
            .read()
            .expect("milvus tables lock")
            .get(&self.collection)
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "collection {} disappeared from catalog {}",
                    self.collection, self.catalog
                ))
            })?;
        Ok(Arc::new(MilvusExec::new(
            me,
            Arc::new(Schema::new(fields)),
            Request::Search {
                filter: (!expr.is_empty()).then(|| expr.join(" and ")),
                column: column.to_string(),
                vector: vector.to_vec(),
                k,
                metric,
            },
        )))
    }
}

#[derive(Debug, Clone)]
enum Request {
    /// Page through the rows matching `filter`.
    Query {
        filter: Option<String>,
        limit: Option<usize>,
    },
    /// One top-k search.
    Search {
        filter: Option<String>,
        column: String,
        vector: Vec<f32>,
        k: usize,
        metric: Metric,
    },
}

/// The leaf that talks to Milvus.
#[derive(Debug)]
pub struct MilvusExec {
    table: Arc<MilvusTable>,
    schema: SchemaRef,
    request: Request,
    properties: Arc<PlanProperties>,
    /// The trace id of the request that planned the scan.
    trace: Option<String>,
}

impl MilvusExec {
    fn new(table: Arc<MilvusTable>, schema: SchemaRef, request: Request) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            table,
            schema,
            request,
            properties,
            trace: sluice_planner::audit::current().and_then(|h| h.snapshot().trace_id),
        }
    }

    fn output_fields(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != DISTANCE_COLUMN)
            .collect()
    }
}

impl DisplayAs for MilvusExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = self.output_fields().join(", ");
        match &self.request {
            Request::Query { filter, limit } => {
                write!(
                    f,
                    "MilvusQueryExec: collection={}, fields=[{fields}]",
                    self.table.collection
                )?;
                if let Some(e) = filter {
                    write!(f, ", expr={e}")?;
                }
                if let Some(l) = limit {
                    write!(f, ", limit={l}")?;
                }
                Ok(())
            }
            Request::Search {
                filter,
                column,
                k,
                metric,
                ..
            } => {
                write!(
                    f,
                    "MilvusSearchExec: collection={}, field={column}, k={k}, metric={}, fields=[{fields}]",
                    self.table.collection,
                    metric.function_name()
                )?;
                if let Some(e) = filter {
                    write!(f, ", expr={e}")?;
                }
                Ok(())
            }
        }
    }
}

impl ExecutionPlan for MilvusExec {
    fn name(&self) -> &str {
        match self.request {
            Request::Query { .. } => "MilvusQueryExec",
            Request::Search { .. } => "MilvusSearchExec",
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "MilvusExec has no children".to_string(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "MilvusExec has one partition, asked for {partition}"
            )));
        }
        let shared = self.table.shared()?;
        let schema = Arc::clone(&self.schema);
        let stream = match self.request.clone() {
            Request::Search {
                filter,
                column,
                vector,
                k,
                metric,
            } => {
                let search = SearchCall {
                    shared,
                    table: Arc::clone(&self.table),
                    schema: Arc::clone(&schema),
                    fields: self.output_fields(),
                    filter,
                    column,
                    vector,
                    k,
                    metric,
                    trace: self.trace.clone(),
                };
                futures::stream::once(async move { search.run().await }).boxed()
            }
            Request::Query { filter, limit } => Pager {
                shared,
                table: Arc::clone(&self.table),
                schema: Arc::clone(&schema),
                fields: self.output_fields(),
                filter,
                remaining: limit,
                cursor: None,
                done: false,
                max_rows: MILVUS_MAX_LIMIT,
                trace: self.trace.clone(),
            }
            .into_stream()
            .boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

struct SearchCall {
    shared: Arc<Shared>,
    table: Arc<MilvusTable>,
    schema: SchemaRef,
    fields: Vec<String>,
    filter: Option<String>,
    column: String,
    vector: Vec<f32>,
    k: usize,
    metric: Metric,
    trace: Option<String>,
}

impl SearchCall {
    async fn run(self) -> DFResult<RecordBatch> {
        let mut builder = SearchRequest::builder()
            .database_name(self.shared.cfg.database.clone())
            .collection_name(self.table.collection.clone())
            .vector_field(self.column.clone())
            .vectors(SearchVectors::Float(vec![self.vector.clone()]))
            .limit(self.k as i64)
            .metric_type(milvus_metric(self.metric))
            .output_fields(self.fields.clone());
        if let Some(level) = self.shared.consistency() {
            builder = builder.consistency_level(level);
        }
        if let Some(f) = &self.filter {
            builder = builder.filter(f.clone());
        }
        let request = builder
            .build()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let response = self
            .shared
            .call_traced("vector search", self.trace.as_deref(), |c| async move {
                c.search(request).await
            })
            .await?;
        let hits = response.results().get_results().first();
        let rows = hits.map_or(0, |h| h.get_scores().len());
        // No hits: Milvus answers without any output field.
        if rows == 0 {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        }
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let name = field.name();
            if name == DISTANCE_COLUMN {
                let scores = hits.map(|h| h.get_scores()).unwrap_or(&[]);
                let d: Vec<f64> = scores
                    .iter()
                    .map(|s| {
                        let s = f64::from(*s);
                        match self.metric {
                            // Milvus ranks L2 by the squared distance.
                            Metric::L2 => s.max(0.0).sqrt(),
                            // … and COSINE by the similarity.
                            Metric::Cosine => 1.0 - s,
                            Metric::InnerProduct => s,
                        }
                    })
                    .collect();
                columns.push(Arc::new(Float64Array::from(d)) as ArrayRef);
                continue;
            }
            let Some(h) = hits else {
                columns.push(arrow::array::new_empty_array(field.data_type()));
                continue;
            };
            match h.get_output_field(name) {
                Some(data) => columns.push(to_arrow(data, field, rows)?),
                None if *name == self.table.primary_key => columns.push(ids_array(h.get_ids())?),
                None => {
                    return Err(DataFusionError::Execution(format!(
                        "milvus search answered without field \"{name}\""
                    )));
                }
            }
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

/// Pages through a query by primary key.
struct Pager {
    shared: Arc<Shared>,
    table: Arc<MilvusTable>,
    schema: SchemaRef,
    fields: Vec<String>,
    filter: Option<String>,
    remaining: Option<usize>,
    cursor: Option<ScalarValue>,
    done: bool,
    /// Page bound learnt from oversized answers.
    max_rows: usize,
    /// The trace id of the request, passed to Milvus.
    trace: Option<String>,
}

impl Pager {
    fn into_stream(self) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
        futures::stream::unfold(self, |mut pager| async move {
            if pager.done {
                return None;
            }
            let started = Instant::now();
            let page = pager.next_page().await;
            tracing::trace!(collection = %pager.table.collection, elapsed_ms = started.elapsed().as_millis() as u64, "milvus page");
            match page {
                Ok(Some(batch)) => Some((Ok(batch), pager)),
                Ok(None) => None,
                Err(e) => {
                    pager.done = true;
                    Some((Err(e), pager))
                }
            }
        })
    }

    async fn next_page(&mut self) -> DFResult<Option<RecordBatch>> {
        let pk = &self.table.primary_key;
        // The primary key always comes back (the cursor needs it).
        let mut fields = self.fields.clone();
        if !fields.contains(pk) {
            fields.push(pk.clone());
        }
        let most = self
            .shared
            .cfg
            .page_size
            .min(self.table.rows_per_message(&fields));
        let page = match self.remaining {
            Some(0) => return Ok(None),
            Some(r) => r.min(most),
            None => most,
        };
        let mut expr = String::new();
        if let Some(f) = &self.filter {
            write!(expr, "({f})").expect("string write");
        }
        if let Some(c) = &self.cursor {
            if !expr.is_empty() {
                expr.push_str(" and ");
            }
            match c {
                // `> i64::MIN` cannot be written; `>= i64::MIN + 1` can.
                ScalarValue::Int64(Some(i64::MIN)) => {
                    write!(expr, "({pk} >= {})", i64::MIN + 1).expect("string write")
                }
                _ => {
                    let lit = MilvusTable::literal(c).ok_or_else(|| {
                        DataFusionError::Internal("unprintable primary key cursor".to_string())
                    })?;
                    write!(expr, "({pk} > {lit})").expect("string write");
                }
            }
        }
        if expr.is_empty() {
            // Milvus needs a condition; this one holds for every row.
            expr = if self.table.pk_is_int {
                format!("({pk} >= {}) or ({pk} < {})", i64::MIN + 1, i64::MIN + 1)
            } else {
                format!("{pk} >= \"\"")
            };
        }
        // A page of rows wider than estimated (long JSON or text) can
        // exceed the message limit: halve it until it fits.
        let mut page = page.min(self.max_rows);
        let response = loop {
            let mut request = QueryRequest::builder()
                .database_name(self.shared.cfg.database.clone())
                .collection_name(self.table.collection.clone())
                .filter(expr.clone())
                .output_fields(fields.clone())
                .limit(page as i64);
            if let Some(level) = self.shared.consistency() {
                request = request.consistency_level(level);
            }
            let request = request
                .build()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            match self
                .shared
                .call_traced("query", self.trace.as_deref(), |c| async move {
                    c.query(request).await
                })
                .await
            {
                Ok(r) => break r,
                Err(e) if is_too_large(&e) && page > 1 => {
                    page /= 2;
                    self.max_rows = page;
                }
                Err(e) if is_too_large(&e) => {
                    return Err(DataFusionError::Execution(format!(
                        "a row of {} is larger than a Milvus answer may be (4 MiB)",
                        self.table.collection
                    )));
                }
                Err(e) => return Err(e),
            }
        };
        let results = response.results();
        let pk_field = self.table.schema.field_with_name(pk)?.clone();
        let keys = match results.get_output_field(pk) {
            Some(d) => to_arrow(d, &pk_field, d.len())?,
            None => {
                return Err(DataFusionError::Execution(
                    "milvus query answered without the primary key".to_string(),
                ));
            }
        };
        let rows = keys.len();
        if rows < page {
            self.done = true;
        }
        if rows == 0 {
            return Ok(None);
        }
        // Paging by `pk > last` is only correct if pages come sorted by
        // primary key; refuse rather than skip rows if they do not.
        let sorted = arrow::compute::kernels::sort::lexsort_to_indices(
            &[arrow::compute::SortColumn {
                values: Arc::clone(&keys),
                options: None,
            }],
            None,
        )?;
        let order: Vec<u32> = sorted.values().to_vec();
        let in_order = order.iter().enumerate().all(|(i, j)| i as u32 == *j);
        self.cursor = Some(ScalarValue::try_from_array(
            &keys,
            order[rows - 1] as usize,
        )?);
        if !in_order && !self.done {
            // An unsorted page can still be paged by its largest key only
            // if it holds the smallest keys of the rest; Milvus returns
            // pages sorted when that holds, so anything else is refused.
            return Err(DataFusionError::Execution(format!(
                "milvus returned a page of {} out of primary-key order; cannot page through it",
                self.table.collection
            )));
        }
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(rows);
        }
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let data = results.get_output_field(field.name()).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "milvus query answered without field \"{}\"",
                    field.name()
                ))
            })?;
            columns.push(to_arrow(data, field, rows)?);
        }
        Ok(Some(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn table() -> MilvusTable {
        MilvusTable {
            shared: Weak::new(),
            catalog: "vec".into(),
            collection: "docs".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("title", DataType::Utf8, false),
                Field::new("level", DataType::Int32, false),
                Field::new("ok", DataType::Boolean, false),
                Field::new("note", DataType::Utf8, true),
                Field::new(
                    "embedding",
                    DataType::FixedSizeList(
                        Arc::new(Field::new("item", DataType::Float32, true)),
                        4,
                    ),
                    false,
                ),
            ])),
            primary_key: "id".into(),
            pk_is_int: true,
            metrics: BTreeMap::new(),
            field_bytes: BTreeMap::from([("embedding".to_string(), 32)]),
        }
    }

    #[test]
    fn translates_supported_filters() {
        let t = table();
        assert_eq!(t.translate(&col("id").gt(lit(5i64))).unwrap(), "id > 5");
        assert_eq!(t.translate(&lit(5i64).gt(col("id"))).unwrap(), "id < 5");
        assert_eq!(
            t.translate(&col("title").eq(lit("a\"b")).and(col("ok")))
                .unwrap(),
            "(title == \"a\\\"b\") and (ok == true)"
        );
        assert_eq!(
            t.translate(&col("level").in_list(vec![lit(1), lit(2)], true))
                .unwrap(),
            "level not in [1, 2]"
        );
        assert_eq!(
            t.translate(&col("title").like(lit("ab%"))).unwrap(),
            "title like \"ab%\""
        );
        assert_eq!(
            t.translate(&datafusion::prelude::cast(col("level"), DataType::Int64).lt_eq(lit(3i64)))
                .unwrap(),
            "level <= 3"
        );
        assert_eq!(
            t.translate(&Expr::Not(Box::new(col("id").eq(lit(1i64)))))
                .unwrap(),
            "not (id == 1)"
        );
    }

    #[test]
    fn refuses_what_is_not_exact() {
        let t = table();
        // Wildcards inside, suffix patterns, case-insensitive LIKE.
        assert!(t.translate(&col("title").like(lit("a_b%"))).is_none());
        assert!(t.translate(&col("title").like(lit("%ab"))).is_none());
        assert!(t.translate(&col("title").ilike(lit("ab%"))).is_none());
        // Nullable columns (three-valued logic), vectors, arithmetic.
        assert!(t.translate(&col("note").eq(lit("x"))).is_none());
        assert!(
            t.translate(&(col("id") + lit(1i64)).gt(lit(5i64)))
                .is_none()
        );
        assert!(t.translate(&col("id").eq(col("level"))).is_none());
        // Lossy casts.
        assert!(
            t.translate(&datafusion::prelude::cast(col("id"), DataType::Int32).eq(lit(1)))
                .is_none()
        );
        // NULL and non-finite literals.
        assert!(
            t.translate(&col("id").eq(lit(ScalarValue::Int64(None))))
                .is_none()
        );
        assert!(t.translate(&col("level").lt(lit(f64::NAN))).is_none());
        // Partial conjunctions are not translated as a whole.
        assert!(
            t.translate(
                &col("id")
                    .gt(lit(1i64))
                    .and((col("id") % lit(2i64)).eq(lit(0i64)))
            )
            .is_none()
        );
    }

    #[test]
    fn filter_expression_keeps_translatable_conjuncts() {
        let t = table();
        let e = t
            .filter_expression(&[
                col("id").gt(lit(1i64)),
                (col("id") % lit(2i64)).eq(lit(0i64)),
                col("title").eq(lit("x")),
            ])
            .unwrap();
        assert_eq!(e, "(id > 1) and (title == \"x\")");
    }

    #[test]
    fn converts_nullable_and_vectors() {
        let f = Field::new("n", DataType::Int32, true);
        let data = FieldData::Nullable {
            data: Box::new(FieldData::Int32 {
                name: "n".into(),
                values: vec![1, 3],
            }),
            valid_data: vec![true, false, true],
        };
        let a = to_arrow(&data, &f, 3).unwrap();
        assert_eq!(a.null_count(), 1);
        let v = Field::new(
            "v",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 2),
            false,
        );
        let data = FieldData::FloatVector {
            name: "v".into(),
            values: vec![vec![1.0, 2.0], vec![3.0, 4.0]],
        };
        let a = to_arrow(&data, &v, 2).unwrap();
        assert_eq!(a.len(), 2);
        let bad = FieldData::FloatVector {
            name: "v".into(),
            values: vec![vec![1.0]],
        };
        assert!(to_arrow(&bad, &v, 1).is_err());
    }
}
