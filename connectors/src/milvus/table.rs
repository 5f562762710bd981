//! One Milvus collection as sluice describes it: its Arrow schema (from
//! the collection's description), its primary key, the metric of each
//! indexed vector field and the size estimate that bounds an answer; and
//! the list of a catalog's collections it belongs to.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock, Weak};

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use milvus::v2::prelude::DataType as MilvusType;
use sluice_planner::vectors::Metric;

use super::client::Shared;
use super::types::arrow_type;

/// The collections of one catalog by name, as last read (each refresh
/// replaces the map).
pub(super) type Collections = RwLock<BTreeMap<String, Arc<MilvusTable>>>;

/// One collection.
pub struct MilvusTable {
    pub(super) shared: Weak<Shared>,
    /// The collections of the catalog (a native search plans against the
    /// collection as the catalog knows it now).
    pub(super) collections: Weak<Collections>,
    pub(super) catalog: String,
    pub(super) collection: String,
    pub(super) schema: SchemaRef,
    pub(super) primary_key: String,
    pub(super) pk_is_int: bool,
    /// Metric of each indexed vector field.
    pub(super) metrics: BTreeMap<String, Metric>,
    /// Upper estimate of each field's encoded size per row.
    pub(super) field_bytes: BTreeMap<String, usize>,
}

impl fmt::Debug for MilvusTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MilvusTable({}.{})", self.catalog, self.collection)
    }
}

impl MilvusTable {
    pub(super) fn from_description(
        shared: Weak<Shared>,
        collections: Weak<Collections>,
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
            collections,
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
    pub(super) fn rows_per_message(&self, fields: &[String]) -> usize {
        const BUDGET: usize = 3 * 1024 * 1024;
        let width: usize = fields
            .iter()
            .map(|f| self.field_bytes.get(f).copied().unwrap_or(16))
            .sum::<usize>()
            .max(1);
        (BUDGET / width).max(1)
    }

    pub(super) fn shared(&self) -> DFResult<Arc<Shared>> {
        self.shared.upgrade().ok_or_else(|| self.unloaded())
    }

    pub(super) fn collections(&self) -> DFResult<Arc<Collections>> {
        self.collections.upgrade().ok_or_else(|| self.unloaded())
    }

    fn unloaded(&self) -> DataFusionError {
        DataFusionError::Execution(format!("catalog {} was unloaded", self.catalog))
    }
}
