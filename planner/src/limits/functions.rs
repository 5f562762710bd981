//! Functions whose output or work grows with an argument's *value*:
//! `repeat('x', 1e11)` or `array_repeat(1, 1e11)` ask for terabytes in
//! one call, and a failed allocation aborts the process, whether the call
//! runs while executing or while the optimizer folds constants during
//! planning. Each such built-in is replaced, in every session, by a
//! wrapper ([`Bounded`]) that first predicts what the call produces for
//! the batch at hand from its arguments and refuses it beyond
//! `[limits] max_function_output` bytes, then evaluates it in chunks of
//! rows, asking the statement's [`QueryControl`] between chunks whether it
//! was cancelled or ran out of time — so even a function that computes
//! for long per row (`levenshtein`) gives its thread back promptly.
//!
//! Functions whose output is at most the size of their inputs need no
//! bound: their inputs are bounded (by these wrappers, by the storage, by
//! the statement's length). `concat` is bounded because one call may
//! repeat the same large input many times.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, FieldRef, Int64Type, TimeUnit};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

use super::memory::human;
use super::run::QueryControl;
use crate::error::{ErrorKind, Refusal};

/// Character pairs `levenshtein` may compare for one value (two strings
/// of 10,000 characters); about a tenth of a second of one core.
pub const MAX_LEVENSHTEIN_WORK: u128 = 100_000_000;

/// Predicted output (or work) per chunk of rows evaluated between two
/// checks of the statement's control.
const CHUNK_BUDGET: u128 = 8 << 20;

/// What a bounded function costs per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Cost {
    /// `repeat(s, n)`: `len(s) × n` bytes.
    Repeat,
    /// `lpad` / `rpad(s, n [, fill])`: `n` characters.
    Pad,
    /// `array_repeat(e, n)`: `n` elements of `e`'s size.
    ArrayRepeat,
    /// `array_resize(a, n [, v])`: `n` elements.
    ArrayResize,
    /// `range` / `generate_series(start, stop [, step])`: the count of
    /// values between them.
    Series,
    /// `concat(…)` / `concat_ws(sep, …)`: the sum of the inputs (and a
    /// separator per input).
    Concat { separated: bool },
    /// `replace(s, from, to)`: every `from` may become `to`.
    Replace,
    /// `regexp_replace(s, pattern, to [, flags])`: a match may be empty,
    /// so every position may become `to`.
    RegexpReplace,
    /// `levenshtein(a, b)`: `len(a) × len(b)` comparisons.
    Levenshtein,
    /// `encode(s, 'hex' | 'base64')`: at most twice the input.
    Encode,
    /// `array_concat`, `array_append`, `array_prepend`, `make_array`: the
    /// sum of the inputs.
    Sum,
    /// `array_replace…(a, from, to)`: every element may become `to`.
    ArrayReplace,
}

/// A cost that no bound admits: the call cannot be predicted safely.
const UNSAFE: u128 = u128::MAX;

/// The built-ins that are wrapped, and their costs.
const BOUNDED: &[(&str, Cost)] = &[
    ("repeat", Cost::Repeat),
    ("lpad", Cost::Pad),
    ("rpad", Cost::Pad),
    ("array_repeat", Cost::ArrayRepeat),
    ("array_resize", Cost::ArrayResize),
    ("range", Cost::Series),
    ("generate_series", Cost::Series),
    ("concat", Cost::Concat { separated: false }),
    ("concat_ws", Cost::Concat { separated: true }),
    ("replace", Cost::Replace),
    ("regexp_replace", Cost::RegexpReplace),
    ("levenshtein", Cost::Levenshtein),
    ("encode", Cost::Encode),
    ("array_concat", Cost::Sum),
    ("array_append", Cost::Sum),
    ("array_prepend", Cost::Sum),
    ("make_array", Cost::Sum),
    ("array_replace", Cost::ArrayReplace),
    ("array_replace_n", Cost::ArrayReplace),
    ("array_replace_all", Cost::ArrayReplace),
];

/// The wrappers of the built-ins among `functions` (a session's scalar
/// functions), for a statement controlled by `control`, each allowed
/// `max_output` bytes per call.
pub fn bounded(
    functions: &std::collections::HashMap<String, Arc<ScalarUDF>>,
    control: &Arc<QueryControl>,
    max_output: u64,
) -> Vec<ScalarUDF> {
    BOUNDED
        .iter()
        .filter_map(|(name, cost)| {
            let inner = functions.get(*name)?;
            Some(ScalarUDF::new_from_impl(Bounded {
                inner: Arc::clone(inner),
                cost: *cost,
                max_output: u128::from(max_output),
                control: Arc::clone(control),
            }))
        })
        .collect()
}

/// A built-in function behind a bound on what one call may produce, and
/// evaluated in chunks between which the statement may be stopped.
#[derive(Debug)]
pub struct Bounded {
    inner: Arc<ScalarUDF>,
    cost: Cost,
    max_output: u128,
    control: Arc<QueryControl>,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.cost == other.cost && self.max_output == other.max_output
    }
}

impl Eq for Bounded {}

impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.cost.hash(state);
        self.max_output.hash(state);
    }
}

impl ScalarUDFImpl for Bounded {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.control.check()?;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let views: Vec<ArgView> = args.args.iter().map(ArgView::new).collect();
        let costs: Vec<u128> = (0..rows).map(|r| self.row_cost(&views, r)).collect();
        self.refuse_beyond(&costs)?;
        let total: u128 = costs.iter().sum();
        if all_scalar || total <= CHUNK_BUDGET {
            return self.inner.invoke_with_args(args);
        }
        // Chunks of rows of at most CHUNK_BUDGET (at least one row each).
        let mut outputs: Vec<ArrayRef> = Vec::new();
        let mut start = 0;
        while start < rows {
            let mut end = start;
            let mut budget = 0u128;
            while end < rows && (end == start || budget + costs[end] <= CHUNK_BUDGET) {
                budget += costs[end];
                end += 1;
            }
            self.control.check()?;
            let chunk = ScalarFunctionArgs {
                args: args
                    .args
                    .iter()
                    .map(|a| match a {
                        ColumnarValue::Array(arr) => {
                            ColumnarValue::Array(arr.slice(start, end - start))
                        }
                        scalar => scalar.clone(),
                    })
                    .collect(),
                arg_fields: args.arg_fields.clone(),
                number_rows: end - start,
                return_field: Arc::clone(&args.return_field),
                config_options: Arc::clone(&args.config_options),
            };
            outputs.push(
                self.inner
                    .invoke_with_args(chunk)?
                    .into_array(end - start)?,
            );
            start = end;
        }
        let parts: Vec<&dyn Array> = outputs.iter().map(|a| a.as_ref()).collect();
        Ok(ColumnarValue::Array(arrow::compute::concat(&parts)?))
    }
}

impl Bounded {
    /// Bytes (or, for `levenshtein`, comparisons) row `row` costs.
    fn row_cost(&self, a: &[ArgView], row: usize) -> u128 {
        let arg = |i: usize| a.get(i);
        let bytes = |i: usize| arg(i).map_or(0, |v| v.bytes(row));
        let count = |i: usize| arg(i).and_then(|v| v.int(row)).unwrap_or(0).max(0) as u128;
        match self.cost {
            Cost::Repeat => bytes(0).saturating_mul(count(1)),
            Cost::Pad => {
                let wide = a.iter().any(|v| !v.ascii(row));
                count(1).saturating_mul(if wide { 4 } else { 1 })
            }
            Cost::ArrayRepeat => count(1).saturating_mul(bytes(0).max(8)),
            Cost::ArrayResize => count(1).saturating_mul(bytes(2).max(8)),
            Cost::Series => match series_len(a, row) {
                UNSAFE => UNSAFE,
                n => n.saturating_mul(8),
            },
            Cost::Encode => bytes(0).saturating_mul(2),
            Cost::Sum => (0..a.len()).map(bytes).fold(0u128, u128::saturating_add),
            Cost::ArrayReplace => {
                let elements = arg(0).map_or(0, |v| v.elements(row));
                bytes(0).saturating_add(elements.saturating_mul(bytes(2).max(8)))
            }
            Cost::Concat { separated } => {
                let sum: u128 = (0..a.len()).map(bytes).sum();
                if separated {
                    sum.saturating_add(bytes(0).saturating_mul(a.len() as u128))
                } else {
                    sum
                }
            }
            Cost::Replace => {
                let s = bytes(0);
                s.saturating_add((s / bytes(1).max(1)).saturating_mul(bytes(2)))
            }
            Cost::RegexpReplace => {
                let s = bytes(0);
                s.saturating_add((s + 1).saturating_mul(bytes(2)))
            }
            Cost::Levenshtein => {
                let work = bytes(0).saturating_mul(bytes(1));
                if work > MAX_LEVENSHTEIN_WORK {
                    // Marked as over any bound; see refuse_beyond.
                    u128::MAX
                } else {
                    work
                }
            }
        }
    }

    fn refuse_beyond(&self, costs: &[u128]) -> DfResult<()> {
        let name = self.inner.name();
        if self.cost == Cost::Levenshtein {
            if costs.contains(&u128::MAX) {
                return Err(Refusal::new(
                    ErrorKind::FunctionLimit,
                    format!(
                        "levenshtein compares at most {MAX_LEVENSHTEIN_WORK} character pairs per \
                         value (two strings of 10,000 characters); these strings are longer"
                    ),
                )
                .into_datafusion());
            }
            return Ok(());
        }
        if self.cost == Cost::Series && costs.contains(&UNSAFE) {
            return Err(Refusal::new(
                ErrorKind::FunctionLimit,
                format!(
                    "{name} needs a step that moves one way: the parts of this interval point in \
                     different directions or add up to nothing"
                ),
            )
            .into_datafusion());
        }
        let total = costs.iter().fold(0u128, |a, c| a.saturating_add(*c));
        if total > self.max_output {
            let size = u64::try_from(total).map_or_else(|_| "far more".to_string(), human);
            return Err(Refusal::new(
                ErrorKind::FunctionLimit,
                format!(
                    "{name} would produce {size} for these rows; a function may produce at most {} \
                     per batch of rows (limits.max_function_output)",
                    human(u64::try_from(self.max_output).unwrap_or(u64::MAX))
                ),
            )
            .into_datafusion());
        }
        Ok(())
    }
}

/// How many values `range` / `generate_series` would produce for a row:
/// integers directly; dates and timestamps in nanoseconds, stepping by
/// the shortest length their interval may have (a month ≥ 28 days).
fn series_len(a: &[ArgView], row: usize) -> u128 {
    let (start, stop, step) = match a.len() {
        1 => (Some(0), a[0].instant(row), Some(Step::By(1))),
        2 => (a[0].instant(row), a[1].instant(row), Some(Step::By(1))),
        _ => (a[0].instant(row), a[1].instant(row), a[2].step(row)),
    };
    match (start, stop, step) {
        (_, _, Some(Step::Unsafe)) => UNSAFE,
        (Some(start), Some(stop), Some(Step::By(step))) if step != 0 => {
            let span = (stop - start).unsigned_abs();
            span / step.unsigned_abs() + 1
        }
        // NULLs give NULL, a zero integer step an error of the function
        // itself.
        _ => 0,
    }
}

/// A step of `range` / `generate_series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Integers, or the shortest length of an interval in nanoseconds.
    By(i128),
    /// An interval whose parts point different ways (`1 day -24 hours`)
    /// or add up to nothing: the series may never reach its end.
    Unsafe,
}

/// One argument of a call: a scalar or one value per row.
enum ArgView<'a> {
    Scalar(&'a ScalarValue),
    Array {
        array: &'a ArrayRef,
        /// The values cast to Int64 (integers, dates, timestamps).
        ints: Option<ArrayRef>,
    },
}

impl<'a> ArgView<'a> {
    fn new(value: &'a ColumnarValue) -> Self {
        match value {
            ColumnarValue::Scalar(s) => ArgView::Scalar(s),
            ColumnarValue::Array(array) => {
                let ints = (array.data_type().is_integer() || array.data_type().is_temporal())
                    .then(|| arrow::compute::cast(array, &DataType::Int64).ok())
                    .flatten();
                ArgView::Array { array, ints }
            }
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            ArgView::Scalar(s) => s.data_type(),
            ArgView::Array { array, .. } => array.data_type().clone(),
        }
    }

    /// The bytes of the value at `row` (text and binary: their length;
    /// anything else: its size in memory).
    fn bytes(&self, row: usize) -> u128 {
        match self {
            ArgView::Scalar(s) => match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.as_ref().map_or(0, |t| t.len() as u128)
                }
                ScalarValue::Binary(v)
                | ScalarValue::LargeBinary(v)
                | ScalarValue::BinaryView(v) => v.as_ref().map_or(0, |b| b.len() as u128),
                other => other.size() as u128,
            },
            ArgView::Array { array, .. } => {
                if array.is_null(row) {
                    return 0;
                }
                match array.data_type() {
                    DataType::Utf8 => array.as_string::<i32>().value(row).len() as u128,
                    DataType::LargeUtf8 => array.as_string::<i64>().value(row).len() as u128,
                    DataType::Utf8View => array.as_string_view().value(row).len() as u128,
                    DataType::Binary => array.as_binary::<i32>().value(row).len() as u128,
                    DataType::LargeBinary => array.as_binary::<i64>().value(row).len() as u128,
                    DataType::BinaryView => array.as_binary_view().value(row).len() as u128,
                    // This row's own share, not the batch's average: one
                    // huge row among small ones must count in full.
                    _ => array
                        .slice(row, 1)
                        .to_data()
                        .get_slice_memory_size()
                        .map_or(UNSAFE, |n| n.max(1) as u128),
                }
            }
        }
    }

    /// Whether the text at `row` is ASCII (non-text: yes).
    fn ascii(&self, row: usize) -> bool {
        match self {
            ArgView::Scalar(
                ScalarValue::Utf8(Some(t))
                | ScalarValue::LargeUtf8(Some(t))
                | ScalarValue::Utf8View(Some(t)),
            ) => t.is_ascii(),
            ArgView::Scalar(_) => true,
            ArgView::Array { array, .. } => match array.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    !array.is_valid(row) || {
                        let s = ScalarValue::try_from_array(array, row).ok();
                        matches!(
                            s,
                            Some(
                                ScalarValue::Utf8(Some(ref t))
                                    | ScalarValue::LargeUtf8(Some(ref t))
                                    | ScalarValue::Utf8View(Some(ref t))
                            ) if t.is_ascii()
                        )
                    }
                }
                _ => true,
            },
        }
    }

    /// The integer at `row` (integers; `None` for NULL or other types).
    fn int(&self, row: usize) -> Option<i128> {
        match self {
            ArgView::Scalar(s) => scalar_int(s),
            ArgView::Array {
                ints: Some(ints), ..
            } => {
                let ints = ints.as_primitive::<Int64Type>();
                ints.is_valid(row).then(|| i128::from(ints.value(row)))
            }
            ArgView::Array { .. } => None,
        }
    }

    /// The value at `row` as a point on a line: integers as they are,
    /// dates and timestamps in nanoseconds.
    fn instant(&self, row: usize) -> Option<i128> {
        let scale: i128 = match self.data_type() {
            DataType::Date32 => 86_400_000_000_000,
            DataType::Date64 => 1_000_000,
            DataType::Timestamp(unit, _) => match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            },
            _ => 1,
        };
        let v = match self {
            ArgView::Scalar(s) => scalar_int(s),
            ArgView::Array { .. } => self.int(row),
        }?;
        Some(v.saturating_mul(scale))
    }

    /// A step: an integer, or the shortest length of an interval in
    /// nanoseconds (a month at least 28 days, a day at least 23 hours).
    fn step(&self, row: usize) -> Option<Step> {
        let interval = match self {
            ArgView::Scalar(s) => Some((*s).clone()),
            ArgView::Array { array, .. } => matches!(array.data_type(), DataType::Interval(_))
                .then(|| ScalarValue::try_from_array(array, row).ok())
                .flatten(),
        };
        const HOUR: i128 = 3_600_000_000_000;
        let parts: [i128; 3] = match interval {
            Some(ScalarValue::IntervalYearMonth(Some(m))) => [i128::from(m), 0, 0],
            Some(ScalarValue::IntervalDayTime(Some(v))) => [
                0,
                i128::from(v.days),
                i128::from(v.milliseconds) * 1_000_000,
            ],
            Some(ScalarValue::IntervalMonthDayNano(Some(v))) => [
                i128::from(v.months),
                i128::from(v.days),
                i128::from(v.nanoseconds),
            ],
            Some(ScalarValue::IntervalYearMonth(None))
            | Some(ScalarValue::IntervalDayTime(None))
            | Some(ScalarValue::IntervalMonthDayNano(None)) => return None,
            _ => return self.int(row).map(Step::By),
        };
        let forward = parts.iter().all(|p| *p >= 0);
        let backward = parts.iter().all(|p| *p <= 0);
        let [months, days, nanos] = parts.map(i128::abs);
        let shortest = months * 28 * 23 * HOUR + days * 23 * HOUR + nanos;
        if !(forward || backward) || shortest == 0 {
            return Some(Step::Unsafe);
        }
        Some(Step::By(shortest))
    }

    /// Elements of the list at `row` (non-lists: none).
    fn elements(&self, row: usize) -> u128 {
        let list_len = |array: &ArrayRef, row: usize| -> u128 {
            if array.is_null(row) {
                return 0;
            }
            match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value_length(row) as u128,
                DataType::LargeList(_) => array.as_list::<i64>().value_length(row) as u128,
                DataType::FixedSizeList(_, n) => *n as u128,
                _ => 0,
            }
        };
        match self {
            ArgView::Scalar(ScalarValue::List(a)) => list_len(&(Arc::clone(a) as ArrayRef), 0),
            ArgView::Scalar(ScalarValue::LargeList(a)) => list_len(&(Arc::clone(a) as ArrayRef), 0),
            ArgView::Scalar(ScalarValue::FixedSizeList(a)) => {
                list_len(&(Arc::clone(a) as ArrayRef), 0)
            }
            ArgView::Scalar(_) => 0,
            ArgView::Array { array, .. } => list_len(array, row),
        }
    }
}

fn scalar_int(s: &ScalarValue) -> Option<i128> {
    match s {
        ScalarValue::Int8(v) => v.map(i128::from),
        ScalarValue::Int16(v) => v.map(i128::from),
        ScalarValue::Int32(v) | ScalarValue::Date32(v) => v.map(i128::from),
        ScalarValue::Int64(v)
        | ScalarValue::Date64(v)
        | ScalarValue::TimestampSecond(v, _)
        | ScalarValue::TimestampMillisecond(v, _)
        | ScalarValue::TimestampMicrosecond(v, _)
        | ScalarValue::TimestampNanosecond(v, _) => v.map(i128::from),
        ScalarValue::UInt8(v) => v.map(i128::from),
        ScalarValue::UInt16(v) => v.map(i128::from),
        ScalarValue::UInt32(v) => v.map(i128::from),
        ScalarValue::UInt64(v) => v.map(i128::from),
        _ => None,
    }
}
