//! What a batch leaving a secure view weighs against a token's
//! bytes-scanned budget.
//!
//! The figure must depend only on the values the token can see. Arrow's
//! own memory sizes do not: after the policy's filter, a dictionary column
//! keeps its whole dictionary and a list view its whole values array, so
//! their size would grow with the hidden rows (their number, their
//! lengths), and string views weigh 16 bytes a row whatever the string.
//! Here every value is counted as its plain layout would hold it: fixed
//! width per value, offsets plus the value bytes for strings and binaries,
//! offsets plus the elements in range for lists, and so on, at any depth.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;

/// The bytes of `batch`'s visible values, at least one per row: a
/// statement that reads no column (`count(*)`) still reads the rows.
pub fn visible_bytes(batch: &arrow::record_batch::RecordBatch) -> u64 {
    let bytes: u64 = batch
        .columns()
        .iter()
        .map(|c| array_bytes(c.as_ref()))
        .fold(0u64, u64::saturating_add);
    bytes.max(batch.num_rows() as u64)
}

/// The bytes of the values of `a` (of a slice, only the slice's) in their
/// plain layout.
fn array_bytes(a: &dyn Array) -> u64 {
    let len = a.len() as u64;
    // The validity bitmap: one bit per value, only when there are nulls.
    let nulls = a.logical_nulls().map_or(0, |_| len.div_ceil(8));
    let values = match a.data_type() {
        // A dictionary holds values of hidden rows too: weigh the keys'
        // values, as if the column were plain.
        DataType::Dictionary(_, value_type) => {
            let dict = a.as_any_dictionary();
            return match arrow::compute::cast(a, value_type) {
                Ok(plain) => array_bytes(plain.as_ref()),
                // Uncastable values: the keys only, never the dictionary.
                Err(_) => array_bytes(dict.keys()),
            };
        }
        DataType::Utf8View => view_bytes(a.as_string_view().lengths(), len),
        DataType::BinaryView => view_bytes(a.as_binary_view().lengths(), len),
        DataType::ListView(_) | DataType::LargeListView(_) => {
            let to = match a.data_type() {
                DataType::ListView(f) => DataType::List(std::sync::Arc::clone(f)),
                DataType::LargeListView(f) => DataType::LargeList(std::sync::Arc::clone(f)),
                _ => unreachable!("matched above"),
            };
            return match arrow::compute::cast(a, &to) {
                Ok(list) => array_bytes(list.as_ref()),
                Err(_) => len.saturating_mul(8).saturating_add(nulls),
            };
        }
        DataType::List(_) => {
            let list = a.as_list::<i32>();
            let (first, last) = span(list.value_offsets());
            4 * (len + 1) + array_bytes(list.values().slice(first, last - first).as_ref())
        }
        DataType::LargeList(_) => {
            let list = a.as_list::<i64>();
            let (first, last) = span(list.value_offsets());
            8 * (len + 1) + array_bytes(list.values().slice(first, last - first).as_ref())
        }
        DataType::Map(_, _) => {
            let map = a.as_map();
            let (first, last) = span(map.value_offsets());
            4 * (len + 1) + array_bytes(&map.entries().slice(first, last - first))
        }
        DataType::FixedSizeList(_, _) => array_bytes(a.as_fixed_size_list().values().as_ref()),
        DataType::Struct(_) => a
            .as_struct()
            .columns()
            .iter()
            .map(|c| array_bytes(c.as_ref()))
            .fold(0u64, u64::saturating_add),
        // Run-end encoded: runs are not merged when rows are filtered out,
        // so their number depends on where hidden rows were. Weigh the
        // plain values.
        DataType::RunEndEncoded(_, values) => {
            return match arrow::compute::cast(a, values.data_type()) {
                Ok(plain) => array_bytes(plain.as_ref()),
                Err(_) => len.saturating_mul(8).saturating_add(nulls),
            };
        }
        // A union's children hold the values of every row, hidden ones
        // included: a fixed weight per value.
        DataType::Union(_, _) => len.saturating_mul(8),
        // Offsets and data of the slice, fixed widths: Arrow's slice size
        // is exactly the plain layout.
        _ => {
            return a
                .to_data()
                .get_slice_memory_size()
                .map_or(len.saturating_mul(8), |n| n as u64);
        }
    };
    values.saturating_add(nulls)
}

/// Strings and binaries held as views weigh what `Utf8` / `Binary` would:
/// a 4-byte offset and the value's bytes.
fn view_bytes(lengths: impl Iterator<Item = u32>, len: u64) -> u64 {
    lengths.map(u64::from).sum::<u64>() + 4 * len
}

/// The element range `offsets` covers.
fn span<O: arrow::array::OffsetSizeTrait>(offsets: &[O]) -> (usize, usize) {
    let first = offsets.first().map_or(0, |o| o.as_usize());
    let last = offsets.last().map_or(first, |o| o.as_usize());
    (first, last.max(first))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, DictionaryArray, Int32Array, ListArray, RecordBatch, StringArray, StringViewArray,
    };
    use arrow::compute::filter_record_batch;
    use arrow::datatypes::{Float32Type, Int32Type};

    use super::*;

    fn batch(column: ArrayRef) -> RecordBatch {
        RecordBatch::try_from_iter([("c", column)]).unwrap()
    }

    /// Keeps the first row only, as a row policy would.
    fn first_row(b: &RecordBatch) -> RecordBatch {
        let keep =
            arrow::array::BooleanArray::from((0..b.num_rows()).map(|i| i == 0).collect::<Vec<_>>());
        filter_record_batch(b, &keep).unwrap()
    }

    #[test]
    fn dictionary_bytes_do_not_depend_on_hidden_rows() {
        let short: DictionaryArray<Int32Type> = vec!["a", "b", "c"].into_iter().collect();
        let long_value = "x".repeat(1_000_000);
        let long: DictionaryArray<Int32Type> = vec!["a", long_value.as_str(), long_value.as_str()]
            .into_iter()
            .collect();
        let seen_short = visible_bytes(&first_row(&batch(Arc::new(short))));
        let seen_long = visible_bytes(&first_row(&batch(Arc::new(long))));
        assert_eq!(seen_short, seen_long);
        let plain = visible_bytes(&batch(Arc::new(StringArray::from(vec!["a"]))));
        assert_eq!(
            seen_short, plain,
            "a dictionary weighs what its plain column does"
        );
    }

    #[test]
    fn list_view_bytes_do_not_depend_on_hidden_rows() {
        let lists = |tail: usize| {
            let l = ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
                Some(vec![Some(1.0), Some(2.0)]),
                Some(vec![Some(3.0); tail]),
            ]);
            let view = arrow::compute::cast(
                &l,
                &DataType::ListView(Arc::new(arrow::datatypes::Field::new_list_field(
                    DataType::Float32,
                    true,
                ))),
            )
            .unwrap();
            visible_bytes(&first_row(&batch(view)))
        };
        assert_eq!(lists(1), lists(100_000));
    }

    #[test]
    fn run_end_encoded_bytes_do_not_depend_on_where_hidden_rows_were() {
        use arrow::array::{BooleanArray, RunArray};
        let weigh = |values: Vec<&str>, keep: Vec<bool>| {
            let runs: RunArray<Int32Type> = values.into_iter().collect();
            let b = batch(Arc::new(runs));
            visible_bytes(&filter_record_batch(&b, &BooleanArray::from(keep)).unwrap())
        };
        // The visible rows are "a", "a" both times; a hidden "b" sat
        // between them in the second (two runs after the filter, not one).
        assert_eq!(
            weigh(vec!["a", "a", "b"], vec![true, true, false]),
            weigh(vec!["a", "b", "a"], vec![true, false, true])
        );
    }

    #[test]
    fn string_views_weigh_their_strings() {
        let short = StringViewArray::from(vec!["a".to_string()]);
        let long = StringViewArray::from(vec!["y".repeat(10_000)]);
        let (s, l) = (
            visible_bytes(&batch(Arc::new(short))),
            visible_bytes(&batch(Arc::new(long))),
        );
        assert!(l >= s + 9_999, "{s} {l}");
        let plain = visible_bytes(&batch(Arc::new(StringArray::from(vec![
            "y".repeat(10_000),
        ]))));
        assert_eq!(l, plain);
    }

    #[test]
    fn a_slice_weighs_only_its_rows() {
        let all: ArrayRef = Arc::new(Int32Array::from_iter_values(0..1000));
        let b = batch(all);
        assert_eq!(visible_bytes(&b.slice(0, 10)), 40);
        assert_eq!(visible_bytes(&RecordBatch::new_empty(b.schema())), 0);
    }
}
