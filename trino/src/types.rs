//! Arrow types as Trino types: the type string (`decimal(12,2)`), the
//! client protocol's `typeSignature`, and the JDBC type code of
//! `system.jdbc.columns`.
//!
//! | Arrow | Trino |
//! |---|---|
//! | Int8 / Int16 / Int32 / Int64 | tinyint / smallint / integer / bigint |
//! | UInt8 / UInt16 / UInt32 | smallint / integer / bigint |
//! | UInt64 | decimal(20,0) |
//! | Float16, Float32 / Float64 | real / double |
//! | Boolean | boolean |
//! | Utf8, LargeUtf8, Utf8View | varchar |
//! | Decimal32/64/128(p, s) | decimal(p,s) |
//! | Decimal256(p, s) | decimal(p,s) for p ≤ 38, else varchar |
//! | Date32 / Date64 | date |
//! | Time32 / Time64 (unit) | time(p), p = 0, 3, 6, 9 |
//! | Timestamp(unit, None) | timestamp(p) |
//! | Timestamp(unit, Some(tz)) | timestamp(p) with time zone |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | varbinary |
//! | List / LargeList / FixedSizeList / ListView (T) | array(T) |
//! | Map(K, V) | map(K,V) |
//! | Struct(fields) | row(name T, …) |
//! | Dictionary(_, V) | V's type |
//! | Null | unknown |
//! | Duration, Interval, others | varchar (Arrow's display form) |

use arrow::datatypes::{DataType, TimeUnit};
use serde_json::{Value, json};

/// Largest decimal precision Trino supports.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// Trino's argument of an unbounded `varchar`.
pub const UNBOUNDED_VARCHAR: i64 = 2_147_483_647;

/// How a value of an Arrow type is presented to Trino clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrinoType {
    /// `tinyint`.
    TinyInt,
    /// `smallint`.
    SmallInt,
    /// `integer`.
    Integer,
    /// `bigint`.
    BigInt,
    /// `real`.
    Real,
    /// `double`.
    Double,
    /// `boolean`.
    Boolean,
    /// `varchar` (unbounded).
    Varchar,
    /// `decimal(p,s)`.
    Decimal(u8, i8),
    /// `date`.
    Date,
    /// `time(p)`.
    Time(u8),
    /// `timestamp(p)`.
    Timestamp(u8),
    /// `timestamp(p) with time zone`.
    TimestampTz(u8),
    /// `varbinary`.
    Varbinary,
    /// `array(T)`.
    Array(Box<TrinoType>),
    /// `map(K,V)`.
    Map(Box<TrinoType>, Box<TrinoType>),
    /// `row(name T, …)`.
    Row(Vec<(String, TrinoType)>),
    /// `unknown` (the type of a bare NULL).
    Unknown,
}

fn precision(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

impl TrinoType {
    /// The Trino type of values of Arrow type `t`.
    pub fn of(t: &DataType) -> TrinoType {
        match t {
            DataType::Int8 => TrinoType::TinyInt,
            DataType::Int16 | DataType::UInt8 => TrinoType::SmallInt,
            DataType::Int32 | DataType::UInt16 => TrinoType::Integer,
            DataType::Int64 | DataType::UInt32 => TrinoType::BigInt,
            DataType::UInt64 => TrinoType::Decimal(20, 0),
            DataType::Float16 | DataType::Float32 => TrinoType::Real,
            DataType::Float64 => TrinoType::Double,
            DataType::Boolean => TrinoType::Boolean,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TrinoType::Varchar,
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
                TrinoType::Decimal(*p, *s)
            }
            DataType::Decimal256(p, s) if *p <= MAX_DECIMAL_PRECISION => TrinoType::Decimal(*p, *s),
            DataType::Date32 | DataType::Date64 => TrinoType::Date,
            DataType::Time32(u) | DataType::Time64(u) => TrinoType::Time(precision(u)),
            DataType::Timestamp(u, None) => TrinoType::Timestamp(precision(u)),
            DataType::Timestamp(u, Some(_)) => TrinoType::TimestampTz(precision(u)),
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => TrinoType::Varbinary,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::FixedSizeList(f, _)
            | DataType::ListView(f)
            | DataType::LargeListView(f) => {
                TrinoType::Array(Box::new(TrinoType::of(f.data_type())))
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => TrinoType::Map(
                    Box::new(TrinoType::of(kv[0].data_type())),
                    Box::new(TrinoType::of(kv[1].data_type())),
                ),
                _ => TrinoType::Varchar,
            },
            DataType::Struct(fields) => TrinoType::Row(
                fields
                    .iter()
                    .map(|f| (f.name().clone(), TrinoType::of(f.data_type())))
                    .collect(),
            ),
            DataType::Dictionary(_, v) => TrinoType::of(v),
            DataType::Null => TrinoType::Unknown,
            _ => TrinoType::Varchar,
        }
    }

    /// The type as Trino spells it (`decimal(12,2)`, `array(varchar)`,
    /// `timestamp(6) with time zone`).
    pub fn name(&self) -> String {
        match self {
            TrinoType::TinyInt => "tinyint".into(),
            TrinoType::SmallInt => "smallint".into(),
            TrinoType::Integer => "integer".into(),
            TrinoType::BigInt => "bigint".into(),
            TrinoType::Real => "real".into(),
            TrinoType::Double => "double".into(),
            TrinoType::Boolean => "boolean".into(),
            TrinoType::Varchar => "varchar".into(),
            TrinoType::Decimal(p, s) => format!("decimal({p},{s})"),
            TrinoType::Date => "date".into(),
            TrinoType::Time(p) => format!("time({p})"),
            TrinoType::Timestamp(p) => format!("timestamp({p})"),
            TrinoType::TimestampTz(p) => format!("timestamp({p}) with time zone"),
            TrinoType::Varbinary => "varbinary".into(),
            TrinoType::Array(t) => format!("array({})", t.name()),
            TrinoType::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            TrinoType::Row(fields) => format!(
                "row({})",
                fields
                    .iter()
                    .map(|(n, t)| format!("{} {}", quote_field(n), t.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            TrinoType::Unknown => "unknown".into(),
        }
    }

    /// The client protocol's `typeSignature` object.
    pub fn signature(&self) -> Value {
        let long = |v: i64| json!({"kind": "LONG", "value": v});
        let ty = |t: &TrinoType| json!({"kind": "TYPE", "value": t.signature()});
        let (raw, args): (&str, Vec<Value>) = match self {
            TrinoType::Varchar => ("varchar", vec![long(UNBOUNDED_VARCHAR)]),
            TrinoType::Decimal(p, s) => ("decimal", vec![long(i64::from(*p)), long(i64::from(*s))]),
            TrinoType::Time(p) => ("time", vec![long(i64::from(*p))]),
            TrinoType::Timestamp(p) => ("timestamp", vec![long(i64::from(*p))]),
            TrinoType::TimestampTz(p) => ("timestamp with time zone", vec![long(i64::from(*p))]),
            TrinoType::Array(t) => ("array", vec![ty(t)]),
            TrinoType::Map(k, v) => ("map", vec![ty(k), ty(v)]),
            TrinoType::Row(fields) => (
                "row",
                fields
                    .iter()
                    .map(|(n, t)| {
                        json!({"kind": "NAMED_TYPE", "value": {
                            "fieldName": {"name": n},
                            "typeSignature": t.signature(),
                        }})
                    })
                    .collect(),
            ),
            TrinoType::TinyInt => ("tinyint", vec![]),
            TrinoType::SmallInt => ("smallint", vec![]),
            TrinoType::Integer => ("integer", vec![]),
            TrinoType::BigInt => ("bigint", vec![]),
            TrinoType::Real => ("real", vec![]),
            TrinoType::Double => ("double", vec![]),
            TrinoType::Boolean => ("boolean", vec![]),
            TrinoType::Date => ("date", vec![]),
            TrinoType::Varbinary => ("varbinary", vec![]),
            TrinoType::Unknown => ("unknown", vec![]),
        };
        json!({"rawType": raw, "arguments": args})
    }

    /// The `java.sql.Types` code Trino's JDBC metadata reports.
    pub fn jdbc_type(&self) -> i32 {
        match self {
            TrinoType::TinyInt => -6,
            TrinoType::SmallInt => 5,
            TrinoType::Integer => 4,
            TrinoType::BigInt => -5,
            TrinoType::Real => 7,
            TrinoType::Double => 8,
            TrinoType::Boolean => 16,
            TrinoType::Varchar => 12,
            TrinoType::Decimal(..) => 3,
            TrinoType::Date => 91,
            TrinoType::Time(_) => 92,
            TrinoType::Timestamp(_) => 93,
            TrinoType::TimestampTz(_) => 2014,
            TrinoType::Varbinary => -3,
            TrinoType::Array(_) => 2003,
            TrinoType::Map(..) | TrinoType::Row(_) | TrinoType::Unknown => 2000,
        }
    }

    /// `column_size` / `decimal_digits` of `system.jdbc.columns`.
    pub fn jdbc_size(&self) -> (Option<i64>, Option<i64>) {
        match self {
            TrinoType::TinyInt => (Some(3), Some(0)),
            TrinoType::SmallInt => (Some(5), Some(0)),
            TrinoType::Integer => (Some(10), Some(0)),
            TrinoType::BigInt => (Some(19), Some(0)),
            TrinoType::Real => (Some(24), None),
            TrinoType::Double => (Some(53), None),
            TrinoType::Varchar | TrinoType::Varbinary => (Some(UNBOUNDED_VARCHAR), None),
            TrinoType::Decimal(p, s) => (Some(i64::from(*p)), Some(i64::from(*s))),
            TrinoType::Date => (Some(10), None),
            TrinoType::Time(p) => (
                Some(8 + i64::from(*p) + i64::from(*p > 0)),
                Some(i64::from(*p)),
            ),
            TrinoType::Timestamp(p) => (
                Some(19 + i64::from(*p) + i64::from(*p > 0)),
                Some(i64::from(*p)),
            ),
            TrinoType::TimestampTz(p) => (
                Some(25 + i64::from(*p) + i64::from(*p > 0)),
                Some(i64::from(*p)),
            ),
            _ => (None, None),
        }
    }
}

fn quote_field(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, Fields};

    use super::*;

    #[test]
    fn names() {
        let cases = [
            (DataType::Int64, "bigint"),
            (DataType::Int8, "tinyint"),
            (DataType::Utf8View, "varchar"),
            (DataType::Decimal128(12, 2), "decimal(12,2)"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp(6)",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                "timestamp(6) with time zone",
            ),
            (DataType::Time64(TimeUnit::Nanosecond), "time(9)"),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
                "array(real)",
            ),
            (
                DataType::Struct(Fields::from(vec![
                    Field::new("a", DataType::Int32, true),
                    Field::new("B c", DataType::Utf8, true),
                ])),
                "row(a integer, \"B c\" varchar)",
            ),
            (DataType::Null, "unknown"),
        ];
        for (t, want) in cases {
            assert_eq!(TrinoType::of(&t).name(), want, "{t}");
        }
    }

    #[test]
    fn signatures() {
        assert_eq!(
            TrinoType::Varchar.signature(),
            json!({"rawType":"varchar","arguments":[{"kind":"LONG","value":2147483647}]})
        );
        assert_eq!(
            TrinoType::of(&DataType::Decimal128(10, 2)).signature(),
            json!({"rawType":"decimal","arguments":[{"kind":"LONG","value":10},{"kind":"LONG","value":2}]})
        );
        let row = TrinoType::Row(vec![("x".into(), TrinoType::BigInt)]);
        assert_eq!(
            TrinoType::Array(Box::new(row)).signature(),
            json!({"rawType":"array","arguments":[{"kind":"TYPE","value":{"rawType":"row","arguments":[
                {"kind":"NAMED_TYPE","value":{"fieldName":{"name":"x"},"typeSignature":{"rawType":"bigint","arguments":[]}}}
            ]}}]})
        );
    }
}
