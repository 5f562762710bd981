//! Iceberg's column resolution for DataFusion's Parquet reader: a file's
//! columns are matched to the table's by field id, never by name.
//!
//! DataFusion adapts each file's schema to the table's by column name
//! (casting types, reading a missing column as NULL). Iceberg tables rename
//! columns and reuse names for new ones, so names in an old file can mean
//! other columns now. [`FieldIdAdapterFactory`] renames, per file, each of
//! the table's columns to the name its field id has in that file (or to a
//! name no file has, when the file predates the column), and lets
//! DataFusion's own adapter do the rest (casts for promoted types, NULL for
//! missing columns). A file without field ids is refused: only a name
//! mapping could say what its columns are, and tables with one are read by
//! iceberg's reader (see `parquet::can_read`), as are nested columns (a
//! struct's children would still be matched by name).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

/// The field id of an Arrow field read from Parquet or converted from an
/// Iceberg schema.
pub(super) fn field_id(field: &Field) -> Option<i32> {
    field
        .metadata()
        .get(PARQUET_FIELD_ID_META_KEY)
        .and_then(|id| id.parse().ok())
}

/// Matches files' columns to the table's by field id.
#[derive(Debug, Default)]
pub(super) struct FieldIdAdapterFactory;

impl PhysicalExprAdapterFactory for FieldIdAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let by_id: HashMap<i32, &String> = physical_file_schema
            .fields()
            .iter()
            .filter_map(|f| field_id(f).map(|id| (id, f.name())))
            .collect();
        if by_id.is_empty() && !physical_file_schema.fields().is_empty() {
            return Err(DataFusionError::NotImplemented(
                "a data file of this table has no Iceberg field ids and the table has no \
                 name mapping (schema.name-mapping.default) saying what its columns are"
                    .to_string(),
            ));
        }
        let mut names = HashMap::with_capacity(logical_file_schema.fields().len());
        let fields: Vec<Field> = logical_file_schema
            .fields()
            .iter()
            .map(|f| {
                // Control characters: no Parquet writer names a column like
                // this, so a field id the file lacks reads as missing.
                let name = match field_id(f).and_then(|id| by_id.get(&id)) {
                    Some(name) => (*name).clone(),
                    None => format!("\u{1}sluice missing field {}", f.name()),
                };
                names.insert(f.name().clone(), name.clone());
                f.as_ref().clone().with_name(name)
            })
            .collect();
        let renamed = Arc::new(Schema::new_with_metadata(
            fields,
            logical_file_schema.metadata().clone(),
        ));
        Ok(Arc::new(FieldIdAdapter {
            names,
            inner: DefaultPhysicalExprAdapterFactory.create(renamed, physical_file_schema)?,
        }))
    }
}

/// One file's adapter: table column names to the file's, then DataFusion's
/// adapter.
#[derive(Debug)]
struct FieldIdAdapter {
    /// Table column name → the name of the same field id in the file.
    names: HashMap<String, String>,
    inner: Arc<dyn PhysicalExprAdapter>,
}

impl PhysicalExprAdapter for FieldIdAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let renamed = expr
            .transform(|e| {
                let Some(column) = e.as_any().downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                Ok(match self.names.get(column.name()) {
                    Some(name) => Transformed::yes(
                        Arc::new(Column::new(name, column.index())) as Arc<dyn PhysicalExpr>
                    ),
                    None => Transformed::no(e),
                })
            })
            .data()?;
        self.inner.rewrite(renamed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use arrow::datatypes::DataType;
    use datafusion::physical_expr::expressions::Literal;

    use super::*;

    fn field(name: &str, id: i32, t: DataType) -> Field {
        Field::new(name, t, true).with_metadata(Map::from([(
            PARQUET_FIELD_ID_META_KEY.to_string(),
            id.to_string(),
        )]))
    }

    fn column(schema: &Schema, name: &str) -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(name, schema.index_of(name).unwrap()))
    }

    fn adapt(table: &SchemaRef, file: &SchemaRef, name: &str) -> Result<Arc<dyn PhysicalExpr>> {
        FieldIdAdapterFactory
            .create(Arc::clone(table), Arc::clone(file))?
            .rewrite(column(table, name))
    }

    fn read_column(expr: &Arc<dyn PhysicalExpr>) -> (String, usize) {
        let c = expr
            .as_any()
            .downcast_ref::<Column>()
            .expect("a plain column");
        (c.name().to_string(), c.index())
    }

    #[test]
    fn swapped_names_read_the_columns_their_field_ids_name() {
        // The table renamed a→b and b→a since the file was written.
        let table = Arc::new(Schema::new(vec![
            field("b", 1, DataType::Int64),
            field("a", 2, DataType::Int64),
        ]));
        let file = Arc::new(Schema::new(vec![
            field("a", 1, DataType::Int64),
            field("b", 2, DataType::Int64),
        ]));
        assert_eq!(
            read_column(&adapt(&table, &file, "b").unwrap()),
            ("a".to_string(), 0)
        );
        assert_eq!(
            read_column(&adapt(&table, &file, "a").unwrap()),
            ("b".to_string(), 1)
        );
    }

    #[test]
    fn a_name_reused_for_a_new_field_id_reads_null_not_the_old_column() {
        let table = Arc::new(Schema::new(vec![field("x", 7, DataType::Int64)]));
        let file = Arc::new(Schema::new(vec![field("x", 3, DataType::Int64)]));
        let expr = adapt(&table, &file, "x").unwrap();
        let literal = expr
            .as_any()
            .downcast_ref::<Literal>()
            .expect("missing column reads as a literal");
        assert!(literal.value().is_null());
    }

    #[test]
    fn a_promoted_type_is_cast_from_the_file_type() {
        let table = Arc::new(Schema::new(vec![field("n", 1, DataType::Int64)]));
        let file = Arc::new(Schema::new(vec![field("n", 1, DataType::Int32)]));
        let expr = adapt(&table, &file, "n").unwrap();
        assert_eq!(expr.data_type(&table).unwrap(), DataType::Int64, "{expr:?}");
        assert!(format!("{expr}").contains("CAST"), "{expr}");
    }

    #[test]
    fn a_file_without_field_ids_is_refused_rather_than_matched_by_name() {
        let table = Arc::new(Schema::new(vec![
            field("a", 1, DataType::Int64),
            field("b", 2, DataType::Int64),
        ]));
        let file = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Int64, true),
            Field::new("a", DataType::Int64, true),
        ]));
        let err = adapt(&table, &file, "a").unwrap_err();
        assert!(err.to_string().contains("no Iceberg field ids"), "{err}");
    }

    #[test]
    fn a_column_added_after_a_file_was_written_reads_null_in_it() {
        // Added, then maybe partitioned by: files written before it lack it.
        let table = Arc::new(Schema::new(vec![
            field("id", 1, DataType::Int64),
            field("region", 2, DataType::Utf8View),
        ]));
        let file = Arc::new(Schema::new(vec![field("id", 1, DataType::Int64)]));
        let expr = adapt(&table, &file, "region").unwrap();
        let literal = expr
            .as_any()
            .downcast_ref::<Literal>()
            .expect("missing column reads as a literal");
        assert!(literal.value().is_null());
        assert_eq!(
            read_column(&adapt(&table, &file, "id").unwrap()),
            ("id".to_string(), 0)
        );
    }
}
