//! Milvus types in Arrow: field kinds to Arrow types, `FieldData` to
//! Arrow arrays, primary key lists, and index metrics.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, StringArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field};
use datafusion::common::Result as DFResult;
use datafusion::error::DataFusionError;
use milvus::v2::prelude::{DataType as MilvusType, FieldData, Ids, MetricType};
use sluice_planner::vectors::Metric;

pub(super) fn arrow_type(f: &milvus::v2::prelude::FieldSchema) -> Option<DataType> {
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

pub(super) fn to_arrow(data: &FieldData, field: &Field, rows: usize) -> DFResult<ArrayRef> {
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

pub(super) fn ids_array(ids: &Ids) -> DFResult<ArrayRef> {
    match ids {
        Ids::Int64(v) => Ok(Arc::new(Int64Array::from(v.clone()))),
        Ids::VarChar(v) => Ok(Arc::new(StringArray::from(v.clone()))),
        _ => Err(DataFusionError::Execution(
            "milvus returned primary keys of an unsupported kind".to_string(),
        )),
    }
}

pub(super) fn metric_of(m: MetricType) -> Option<Metric> {
    match m {
        MetricType::L2 => Some(Metric::L2),
        MetricType::Ip => Some(Metric::InnerProduct),
        MetricType::Cosine => Some(Metric::Cosine),
        _ => None,
    }
}

pub(super) fn milvus_metric(m: Metric) -> MetricType {
    match m {
        Metric::L2 => MetricType::L2,
        Metric::InnerProduct => MetricType::Ip,
        Metric::Cosine => MetricType::Cosine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
