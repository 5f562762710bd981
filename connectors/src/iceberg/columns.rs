//! Which columns a scan asks iceberg's reader for, and how the batches it
//! reads take the table's current shape.
//!
//! DataFusion plans with the table's current schema; iceberg reads a
//! snapshot with the schema the snapshot was written under (iceberg-rust
//! 0.10 binds the scan to `snapshot.schema`). They agree until the schema
//! evolves without a new write. Columns are matched by field id, never by
//! name: a column renamed since the snapshot is read under its old name,
//! one added since reads as NULL (no file of the snapshot can hold it), a
//! promoted type (`int` → `long`, `float` → `double`) is cast.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::Schema as IcebergSchema;

/// The scan's columns: what to select from the snapshot and where each
/// output column comes from.
#[derive(Debug)]
pub(super) struct ColumnMap {
    /// Names in the snapshot's schema, in the reader's output order.
    select: Vec<String>,
    /// Per output column: the reader's column and the type to cast it to
    /// (when it differs), or `None` for a column the snapshot lacks.
    sources: Vec<Option<(usize, Option<DataType>)>>,
    /// The output (the projected current schema).
    output: SchemaRef,
    /// Snapshot and current schema are the same: batches pass through and
    /// filters may be pushed into iceberg's planning by name.
    same_schema: bool,
}

impl ColumnMap {
    /// The map from the current schema's `projected` columns (their Arrow
    /// form is `output`) to `snapshot`'s.
    pub(super) fn new(
        current: &IcebergSchema,
        snapshot: &IcebergSchema,
        projected: &[String],
        output: SchemaRef,
    ) -> Result<Self> {
        let same_schema = current.schema_id() == snapshot.schema_id();
        if same_schema {
            return Ok(Self {
                select: projected.to_vec(),
                sources: (0..projected.len()).map(|i| Some((i, None))).collect(),
                output,
                same_schema,
            });
        }
        let snapshot_arrow =
            schema_to_arrow_schema(snapshot).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut select: Vec<String> = Vec::new();
        let mut sources = Vec::with_capacity(projected.len());
        for (name, field) in projected.iter().zip(output.fields()) {
            let id = current
                .as_struct()
                .fields()
                .iter()
                .find(|f| &f.name == name)
                .map(|f| f.id)
                .ok_or_else(|| {
                    DataFusionError::Internal(format!("column {name} is not in the table schema"))
                })?;
            // Top-level only: a field id that moved into a struct is a
            // different column here.
            let Some(old) = snapshot.as_struct().fields().iter().find(|f| f.id == id) else {
                sources.push(None);
                continue;
            };
            let position = match select.iter().position(|s| s == &old.name) {
                Some(p) => p,
                None => {
                    select.push(old.name.clone());
                    select.len() - 1
                }
            };
            let read_type = snapshot_arrow
                .field_with_name(&old.name)
                .map_err(DataFusionError::from)?
                .data_type()
                .clone();
            let cast_to = (&read_type != field.data_type()).then(|| field.data_type().clone());
            sources.push(Some((position, cast_to)));
        }
        Ok(Self {
            select,
            sources,
            output,
            same_schema,
        })
    }

    /// Snapshot column names to select.
    pub(super) fn select(&self) -> &[String] {
        &self.select
    }

    /// Whether filters written against the current schema may be bound to
    /// the snapshot's.
    pub(super) fn same_schema(&self) -> bool {
        self.same_schema
    }

    /// The output schema.
    pub(super) fn output(&self) -> &SchemaRef {
        &self.output
    }

    /// `batch` (as the reader produced it) in the output's shape.
    pub(super) fn assemble(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.sources.len());
        for (source, field) in self.sources.iter().zip(self.output.fields()) {
            columns.push(match source {
                Some((i, None)) => Arc::clone(batch.column(*i)),
                Some((i, Some(to))) => cast(batch.column(*i), to)?,
                None => new_null_array(field.data_type(), rows),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.output),
            columns,
            &options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use iceberg::spec::{NestedField, PrimitiveType, Type};

    use super::*;

    fn schema(id: i32, fields: Vec<(i32, &str, PrimitiveType)>) -> IcebergSchema {
        IcebergSchema::builder()
            .with_schema_id(id)
            .with_fields(
                fields
                    .into_iter()
                    .map(|(fid, name, t)| {
                        Arc::new(NestedField::optional(fid, name, Type::Primitive(t)))
                    })
                    .collect::<Vec<_>>(),
            )
            .build()
            .unwrap()
    }

    fn arrow_of(s: &IcebergSchema, names: &[&str]) -> SchemaRef {
        let full = schema_to_arrow_schema(s).unwrap();
        let fields: Vec<Field> = names
            .iter()
            .map(|n| full.field_with_name(n).unwrap().clone())
            .collect();
        Arc::new(Schema::new(fields))
    }

    #[test]
    fn renamed_added_and_promoted_columns_are_matched_by_field_id() {
        let snapshot = schema(
            0,
            vec![
                (1, "id", PrimitiveType::Int),
                (2, "mail", PrimitiveType::String),
            ],
        );
        let current = schema(
            1,
            vec![
                (1, "id", PrimitiveType::Long),
                (2, "email", PrimitiveType::String),
                (3, "tier", PrimitiveType::String),
            ],
        );
        let names = ["tier".to_string(), "email".to_string(), "id".to_string()];
        let output = arrow_of(&current, &["tier", "email", "id"]);
        let map = ColumnMap::new(&current, &snapshot, &names, Arc::clone(&output)).unwrap();
        assert!(!map.same_schema());
        assert_eq!(map.select(), ["mail", "id"]);

        let read = RecordBatch::try_new(
            arrow_of(&snapshot, &["mail", "id"]),
            vec![
                Arc::new(StringArray::from(vec!["a@x", "b@x"])),
                Arc::new(Int32Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let out = map.assemble(read).unwrap();
        assert_eq!(out.schema(), output);
        assert_eq!(
            out.column(0).null_count(),
            2,
            "an added column reads as NULL"
        );
        let email = out
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(email.value(1), "b@x");
        let id = out.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(id.values(), &[1, 2]);
    }

    #[test]
    fn a_name_reused_for_another_field_id_is_not_read_for_it() {
        // `email` was dropped (id 2) and a new `email` (id 3) added.
        let snapshot = schema(0, vec![(2, "email", PrimitiveType::String)]);
        let current = schema(1, vec![(3, "email", PrimitiveType::String)]);
        let output = arrow_of(&current, &["email"]);
        let map = ColumnMap::new(&current, &snapshot, &["email".to_string()], output).unwrap();
        assert!(map.select().is_empty());
        let read = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(3)),
        )
        .unwrap();
        let out = map.assemble(read).unwrap();
        assert_eq!(out.num_rows(), 3);
        assert_eq!(out.column(0).null_count(), 3);
    }
}
