//! Which columns a scan asks iceberg's reader for (by field id), and how
//! its batches take the shape DataFusion planned.
//!
//! DataFusion plans with the table's current schema. The scan's tasks are
//! given that schema and the projected columns' field ids, so iceberg's
//! reader resolves every column, nested ones included, by field id in each
//! file: a column renamed since a file was written reads its old data, one
//! added since reads as NULL, a promoted type (`int` → `long`) is cast, and
//! a name reused for a new field id never reads the old values. Names are
//! never looked up, so columns named like iceberg's metadata columns
//! (`pos`, `file_path`, `_file`, …) read like any other.
//!
//! A scan that needs no column (`count(*)`) still reads one: iceberg's
//! reader reads *every* column when asked for none. The anchor is the
//! oldest (lowest field id) fixed-width column, the one most likely to be
//! in every file; the batches drop it.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use iceberg::metadata_columns::RESERVED_FIELD_ID_FILE;
use iceberg::spec::{NestedField, Schema as IcebergSchema, Type};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

/// The scan's columns.
#[derive(Debug)]
pub(super) struct ColumnMap {
    /// Field ids to read: the output's, then the anchor when there is one.
    ids: Vec<i32>,
    /// The output (the projected current schema).
    output: SchemaRef,
}

impl ColumnMap {
    /// The columns `projected` (names of `current`'s top-level fields,
    /// whose Arrow form is `output`).
    pub(super) fn new(
        current: &IcebergSchema,
        projected: &[String],
        output: SchemaRef,
    ) -> Result<Self> {
        let fields = current.as_struct().fields();
        let mut ids = projected
            .iter()
            .map(|name| {
                fields
                    .iter()
                    .find(|f| &f.name == name)
                    .map(|f| f.id)
                    .ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "column {name} is not in the table schema"
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            ids.extend(anchor(fields));
        }
        // The reader maps columns by field id only when the file's columns
        // differ from the wanted ones in number or type; with the same
        // types in another order it only renames them (a moved column would
        // read its neighbour's values). The `_file` constant column always
        // makes them differ; the batches drop it.
        ids.push(RESERVED_FIELD_ID_FILE);
        Ok(Self { ids, output })
    }

    /// Field ids to read.
    pub(super) fn ids(&self) -> &[i32] {
        &self.ids
    }

    /// The output schema.
    pub(super) fn output(&self) -> &SchemaRef {
        &self.output
    }

    /// `batch` (as the reader produced it) in the output's shape. A column
    /// whose type is not the planned one (beyond field metadata) fails the
    /// statement rather than being converted by position or name.
    pub(super) fn assemble(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let width = self.output.fields().len();
        if batch.num_columns() < width {
            return Err(DataFusionError::Execution(format!(
                "the Iceberg reader returned {} columns for {width}",
                batch.num_columns()
            )));
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
        for (array, field) in batch.columns().iter().zip(self.output.fields()) {
            let planned = field.data_type();
            columns.push(if array.data_type() == planned {
                Arc::clone(array)
            } else if view_of(array.data_type()) == Some(planned) {
                cast(array, planned)?
            } else if array.data_type().equals_datatype(planned)
                && same_nested_ids(array.data_type(), planned)
            {
                // Only field names or metadata other than ids differ.
                cast(array, planned)?
            } else {
                return Err(DataFusionError::Execution(format!(
                    "column {} of this table changed type since some of its files were \
                     written ({} in the file, {planned} now) in a way sluice cannot read",
                    field.name(),
                    array.data_type()
                )));
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

/// `schema` with its top-level `Utf8` and `Binary` columns as `Utf8View`
/// and `BinaryView`: DataFusion's Parquet reader decodes those without
/// copying each value, and grouping, comparing and hashing them is faster.
/// Clients still receive `Utf8` and `Binary` (the gateway's wire types).
pub(super) fn with_view_types(schema: Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match view_of(f.data_type()) {
            Some(view) => f.as_ref().clone().with_data_type(view.clone()),
            None => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The view type of `t`, when it has one this module uses.
fn view_of(t: &DataType) -> Option<&'static DataType> {
    match t {
        DataType::Utf8 => Some(&DataType::Utf8View),
        DataType::Binary => Some(&DataType::BinaryView),
        _ => None,
    }
}

/// Whether the nested fields of `read` and `planned` carry the same field
/// ids (`PARQUET:field_id`) where both have one: a struct whose child was
/// dropped and another added under the old name has the same layout but
/// not the same ids.
fn same_nested_ids(read: &DataType, planned: &DataType) -> bool {
    fn id(f: &Field) -> Option<&String> {
        f.metadata().get(PARQUET_FIELD_ID_META_KEY)
    }
    fn children(t: &DataType) -> Vec<&Field> {
        match t {
            DataType::Struct(fields) => fields.iter().map(|f| f.as_ref()).collect(),
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                vec![f.as_ref()]
            }
            DataType::Map(f, _) => vec![f.as_ref()],
            _ => Vec::new(),
        }
    }
    let (a, b) = (children(read), children(planned));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            let ids_agree = match (id(x), id(y)) {
                (Some(i), Some(j)) => i == j,
                _ => true,
            };
            ids_agree && same_nested_ids(x.data_type(), y.data_type())
        })
}

/// The column a scan without columns reads: the oldest fixed-width one,
/// else the oldest of any type.
fn anchor(fields: &[Arc<NestedField>]) -> Option<i32> {
    let fixed = |f: &&Arc<NestedField>| match f.field_type.as_ref() {
        Type::Primitive(p) => !matches!(
            p,
            iceberg::spec::PrimitiveType::String | iceberg::spec::PrimitiveType::Binary
        ),
        _ => false,
    };
    fields
        .iter()
        .filter(fixed)
        .map(|f| f.id)
        .min()
        .or_else(|| fields.iter().map(|f| f.id).min())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::Schema;
    use iceberg::arrow::schema_to_arrow_schema;
    use iceberg::spec::PrimitiveType;

    use super::*;

    fn schema(fields: Vec<(i32, &str, PrimitiveType)>) -> IcebergSchema {
        IcebergSchema::builder()
            .with_fields(
                fields
                    .into_iter()
                    .map(|(id, name, t)| {
                        Arc::new(NestedField::optional(id, name, Type::Primitive(t)))
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
    fn columns_are_asked_for_by_field_id_in_the_planned_order() {
        let current = schema(vec![
            (1, "id", PrimitiveType::Long),
            (4, "email", PrimitiveType::String),
            (7, "pos", PrimitiveType::Long),
        ]);
        let names = ["pos".to_string(), "email".to_string()];
        let map = ColumnMap::new(&current, &names, arrow_of(&current, &["pos", "email"])).unwrap();
        assert_eq!(map.ids(), [7, 4, RESERVED_FIELD_ID_FILE]);
    }

    #[test]
    fn a_scan_without_columns_reads_the_oldest_fixed_width_column_and_drops_it() {
        let current = schema(vec![
            (2, "email", PrimitiveType::String),
            (5, "amount", PrimitiveType::Double),
            (3, "id", PrimitiveType::Long),
        ]);
        let map = ColumnMap::new(&current, &[], Arc::new(Schema::empty())).unwrap();
        assert_eq!(map.ids(), [3, RESERVED_FIELD_ID_FILE]);
        let read = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let out = map.assemble(read).unwrap();
        assert_eq!((out.num_columns(), out.num_rows()), (0, 3));
        let only_text = schema(vec![
            (9, "a", PrimitiveType::String),
            (8, "b", PrimitiveType::String),
        ]);
        let map = ColumnMap::new(&only_text, &[], Arc::new(Schema::empty())).unwrap();
        assert_eq!(map.ids(), [8, RESERVED_FIELD_ID_FILE]);
    }

    #[test]
    fn a_column_of_another_type_than_planned_fails_instead_of_being_converted() {
        let current = schema(vec![(1, "tag", PrimitiveType::String)]);
        let map =
            ColumnMap::new(&current, &["tag".to_string()], arrow_of(&current, &["tag"])).unwrap();
        let read = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("tag", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let err = map.assemble(read).unwrap_err().to_string();
        assert!(err.contains("changed type"), "{err}");
        let ok = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "renamed",
                DataType::Utf8,
                true,
            )])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        let out = map.assemble(ok).unwrap();
        assert_eq!(out.schema(), *map.output());
        assert_eq!(out.column(0).len(), 1);
    }

    #[test]
    fn a_struct_whose_child_has_another_field_id_than_planned_fails() {
        let with_id = |id: &str| {
            Field::new("email", DataType::Utf8, true).with_metadata(HashMap::from([(
                PARQUET_FIELD_ID_META_KEY.to_string(),
                id.to_string(),
            )]))
        };
        let old = DataType::Struct(vec![with_id("5")].into());
        let new = DataType::Struct(vec![with_id("7")].into());
        assert!(old.equals_datatype(&new), "same layout");
        assert!(!same_nested_ids(&old, &new));
        assert!(same_nested_ids(&new, &new));
        let renamed = DataType::Struct(vec![with_id("7").with_name("mail")].into());
        assert!(
            same_nested_ids(&renamed, &new),
            "a renamed child keeps its id"
        );
    }
}
