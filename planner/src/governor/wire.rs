//! The Arrow types results have on the wire.
//!
//! Connectors may plan strings and binaries as views (`Utf8View`,
//! `BinaryView`: cheaper to decode, compare and group). Clients receive
//! them as `Utf8` and `Binary`, which every Flight SQL client and JDBC
//! driver reads, whatever a connector chose; result streams are conformed
//! to these types ([`super::conform`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};

use crate::secure_view::map_children;

/// `schema` with view types replaced by their plain forms (nested fields'
/// included).
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| Arc::new(wire_field(f)))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn wire_field(f: &Field) -> Field {
    f.clone().with_data_type(wire_type(f.data_type()))
}

/// `t` with view types replaced by their plain forms.
pub fn wire_type(t: &DataType) -> DataType {
    let field = |f: &FieldRef| Arc::new(wire_field(f));
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::ListView(f) => DataType::List(field(f)),
        DataType::LargeListView(f) => DataType::LargeList(field(f)),
        other => map_children(other, field, wire_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_reach_clients_as_plain_strings_and_binaries_at_any_depth() {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8View, false),
            Field::new("b", DataType::BinaryView, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true))),
                true,
            ),
            Field::new("n", DataType::Int64, false),
        ]);
        let wire = wire_schema(&schema);
        let types: Vec<&DataType> = wire.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types[0], &DataType::Utf8);
        assert_eq!(types[1], &DataType::Binary);
        assert_eq!(
            types[2],
            &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
        assert_eq!(types[3], &DataType::Int64);
        assert!(!wire.field(0).is_nullable(), "nullability is kept");
    }
}
