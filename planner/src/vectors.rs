//! Vector distance functions, registered in every governed session:
//! `cosine_distance(a, b)`, `l2_distance(a, b)` and `inner_product(a, b)`
//! over lists or fixed-size lists of numbers and array literals
//! (`[0.1, 0.2]`, `ARRAY[…]`). They return `double`; NULL when either
//! vector is NULL (or, for the cosine, has zero length); vectors of
//! different dimensions are an error naming both dimensions.
//!
//! They are ordinary expressions: they only see what the token's secure
//! view shows, so a vector column the token may not read (no
//! `can_export_vectors`) cannot be an argument — it does not exist.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Float64Builder};
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Two vectors of different dimensions. It says nothing but the two
/// lengths, so a secure view lets it through (`vector_search` computes
/// distances below the barrier, on visible rows only).
#[derive(Debug, Clone)]
pub struct DimensionMismatch {
    /// The function.
    pub function: String,
    /// Dimension of the first vector.
    pub left: usize,
    /// Dimension of the second vector.
    pub right: usize,
}

impl std::fmt::Display for DimensionMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: vectors of different dimensions ({} and {})",
            self.function, self.left, self.right
        )
    }
}

impl std::error::Error for DimensionMismatch {}

impl From<DimensionMismatch> for datafusion::error::DataFusionError {
    fn from(e: DimensionMismatch) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

/// Which distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `1 - cos(a, b)`.
    Cosine,
    /// Euclidean distance.
    L2,
    /// Dot product (a similarity: larger is closer).
    InnerProduct,
}

impl Metric {
    /// The SQL function name.
    pub fn function_name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine_distance",
            Metric::L2 => "l2_distance",
            Metric::InnerProduct => "inner_product",
        }
    }

    fn compute(self, a: &[f64], b: &[f64]) -> Option<f64> {
        match self {
            Metric::L2 => Some(
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f64>()
                    .sqrt(),
            ),
            Metric::InnerProduct => Some(a.iter().zip(b).map(|(x, y)| x * y).sum()),
            Metric::Cosine => {
                let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
                for (x, y) in a.iter().zip(b) {
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                (na > 0.0 && nb > 0.0).then(|| 1.0 - dot / (na.sqrt() * nb.sqrt()))
            }
        }
    }
}

/// The UDF of one metric.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistanceUdf {
    metric: Metric,
    signature: Signature,
}

impl DistanceUdf {
    /// The function for `metric`.
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// All three functions.
pub fn udfs() -> Vec<ScalarUDF> {
    [Metric::Cosine, Metric::L2, Metric::InnerProduct]
        .into_iter()
        .map(|m| ScalarUDF::new_from_impl(DistanceUdf::new(m)))
        .collect()
}

fn is_vector(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().is_numeric() || f.data_type() == &DataType::Null
        }
        DataType::Null => true,
        _ => false,
    }
}

/// `array` as `List(Float64)`.
fn as_f64_lists(array: &ArrayRef) -> Result<ArrayRef> {
    let target = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    Ok(arrow::compute::cast(array, &target)?)
}

impl ScalarUDFImpl for DistanceUdf {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.metric.function_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        for t in arg_types {
            if !is_vector(t) {
                return plan_err!(
                    "{} expects two vectors (arrays of numbers), got {t}",
                    self.name()
                );
            }
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else {
            return exec_err!("{} takes two vectors", self.name());
        };
        let rows = args.number_rows;
        // A scalar (a literal vector) is read once for every row.
        let side = |v: &ColumnarValue| -> Result<(ArrayRef, bool)> {
            Ok(match v {
                ColumnarValue::Scalar(s) => (as_f64_lists(&s.to_array_of_size(1)?)?, true),
                ColumnarValue::Array(a) => (as_f64_lists(a)?, false),
            })
        };
        let (left, left_scalar) = side(a)?;
        let (right, right_scalar) = side(b)?;
        let left = left.as_list::<i32>();
        let right = right.as_list::<i32>();
        // Read the flat value buffers through the offsets: no per-row arrays.
        let (lvals, rvals) = (
            left.values().as_primitive::<Float64Type>(),
            right.values().as_primitive::<Float64Type>(),
        );
        let (loffs, roffs) = (left.value_offsets(), right.value_offsets());
        let has_null = |vals: &arrow::array::Float64Array, start: usize, end: usize| {
            vals.null_count() > 0 && (start..end).any(|j| vals.is_null(j))
        };
        let mut out = Float64Builder::with_capacity(rows);
        for i in 0..rows {
            let li = if left_scalar { 0 } else { i };
            let ri = if right_scalar { 0 } else { i };
            if left.is_null(li) || right.is_null(ri) {
                out.append_null();
                continue;
            }
            let (ls, le) = (loffs[li] as usize, loffs[li + 1] as usize);
            let (rs, re) = (roffs[ri] as usize, roffs[ri + 1] as usize);
            if le - ls != re - rs {
                return Err(DimensionMismatch {
                    function: self.name().to_string(),
                    left: le - ls,
                    right: re - rs,
                }
                .into());
            }
            if has_null(lvals, ls, le) || has_null(rvals, rs, re) {
                out.append_null();
                continue;
            }
            match self
                .metric
                .compute(&lvals.values()[ls..le], &rvals.values()[rs..re])
            {
                Some(d) => out.append_value(d),
                None => out.append_null(),
            }
        }
        let result: Float64Array = out.finish();
        if left_scalar && right_scalar {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics() {
        let a = [1.0, 0.0];
        let b = [0.0, 2.0];
        assert_eq!(Metric::L2.compute(&a, &b), Some(5f64.sqrt()));
        assert_eq!(Metric::InnerProduct.compute(&a, &b), Some(0.0));
        assert_eq!(Metric::Cosine.compute(&a, &b), Some(1.0));
        assert_eq!(Metric::Cosine.compute(&a, &a), Some(0.0));
        assert_eq!(Metric::Cosine.compute(&[0.0, 0.0], &a), None);
    }
}
