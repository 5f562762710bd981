//! DataFusion filters as Milvus boolean expressions: only what Milvus
//! evaluates exactly as DataFusion does is translated (comparisons, `IN`,
//! `AND`/`OR`/`NOT`, `LIKE 'prefix%'` on non-nullable scalar fields);
//! everything else stays in DataFusion.

use arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, Operator};

use super::table::MilvusTable;

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

    pub(super) fn literal(v: &ScalarValue) -> Option<String> {
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

    pub(super) fn filter_expression(&self, filters: &[Expr]) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Weak};

    use arrow::datatypes::Schema;
    use datafusion::prelude::{col, lit};

    use super::*;

    fn table() -> MilvusTable {
        MilvusTable {
            shared: Weak::new(),
            collections: Weak::new(),
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
}
