//! How one scan's files are spread over DataFusion partitions.
//!
//! Each partition reads its share of the files one after another; the
//! partitions run in parallel. Files are dealt out largest first to the
//! partition with the fewest bytes so far. A file larger than one
//! partition's share is cut into byte ranges first: iceberg's reader gives
//! each row group to the one range that holds its midpoint, so the ranges
//! of a file read every row group exactly once, and a file with a single
//! row group simply reads nothing in the ranges that do not own it.
//!
//! A scan always has `target_partitions` partitions, some of them maybe
//! empty: how many files survive pruning depends on rows a token may not
//! see, so the plan's shape (which `EXPLAIN` shows) must not.

use iceberg::scan::FileScanTask;

/// Below this a file is not worth cutting: its ranges would mostly read
/// nothing (Parquet writers' row groups are rarely smaller).
const MIN_SPLIT_BYTES: u64 = 8 << 20;

/// Deals `tasks` out to exactly `partitions` (at least one) groups of
/// about equal bytes. Sizes come from manifests: absurd ones (a range past
/// the end of its file, sums beyond `u64`) neither overflow nor multiply
/// the work; a file is cut into at most `partitions` ranges.
pub(super) fn split_tasks(tasks: Vec<FileScanTask>, partitions: usize) -> Vec<Vec<FileScanTask>> {
    let partitions = partitions.max(1);
    let total = tasks
        .iter()
        .fold(0u64, |sum, t| sum.saturating_add(task_bytes(t)));
    let share = total.div_ceil(partitions as u64).max(MIN_SPLIT_BYTES);
    let mut pieces: Vec<FileScanTask> = Vec::with_capacity(tasks.len());
    for task in tasks {
        pieces.extend(cut(task, share, partitions as u64));
    }
    // Largest first onto the lightest group: within 4/3 of the best
    // balance, and deterministic for equal sizes (stable sort).
    pieces.sort_by_key(|t| std::cmp::Reverse(task_bytes(t)));
    let mut out: Vec<(u64, Vec<FileScanTask>)> = (0..partitions).map(|_| (0, Vec::new())).collect();
    for piece in pieces {
        if let Some(lightest) = out.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            lightest.0 = lightest.0.saturating_add(task_bytes(&piece));
            lightest.1.push(piece);
        }
    }
    out.into_iter().map(|(_, tasks)| tasks).collect()
}

/// The bytes a task reads (a whole file's task may say 0 for "all").
fn task_bytes(task: &FileScanTask) -> u64 {
    if task.length == 0 {
        task.file_size_in_bytes
    } else {
        task.length
    }
}

/// `task` as at most `most` byte ranges of about `share` bytes, covering
/// the same part of the file. A range that does not fit in its file is
/// left whole (the reader reports what is wrong with it).
fn cut(task: FileScanTask, share: u64, most: u64) -> Vec<FileScanTask> {
    let (start, length) = if task.start == 0 && task.length == 0 {
        (0, task.file_size_in_bytes)
    } else {
        (task.start, task.length)
    };
    let Some(end) = start
        .checked_add(length)
        .filter(|end| *end <= task.file_size_in_bytes)
    else {
        return vec![task];
    };
    if length <= share {
        return vec![task];
    }
    let count = length.div_ceil(share).min(most.max(1));
    let step = length.div_ceil(count);
    (0..count)
        .map(|i| {
            let from = start.saturating_add(i.saturating_mul(step)).min(end);
            let to = from.saturating_add(step).min(end);
            let mut piece = task.clone();
            piece.start = from;
            piece.length = to - from;
            // The count is the whole file's; a range's is unknown.
            piece.record_count = None;
            piece
        })
        .filter(|piece| piece.length > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{DataFileFormat, NestedField, PrimitiveType, Schema, Type};

    use super::*;

    fn task(path: &str, size: u64) -> FileScanTask {
        let schema = Schema::builder()
            .with_fields(vec![Arc::new(NestedField::required(
                1,
                "id",
                Type::Primitive(PrimitiveType::Long),
            ))])
            .build()
            .unwrap();
        FileScanTask::builder()
            .with_file_size_in_bytes(size)
            .with_start(0)
            .with_length(size)
            .with_record_count(Some(10))
            .with_data_file_path(path.to_string())
            .with_data_file_format(DataFileFormat::Parquet)
            .with_schema(Arc::new(schema))
            .with_project_field_ids(vec![1])
            .with_case_sensitive(true)
            .build()
    }

    fn bytes(group: &[FileScanTask]) -> u64 {
        group.iter().map(task_bytes).sum()
    }

    #[test]
    fn files_are_balanced_over_partitions_by_bytes() {
        let mb = 1 << 20;
        let tasks = [40, 30, 20, 10, 10, 10]
            .iter()
            .enumerate()
            .map(|(i, s)| task(&format!("f{i}"), s * mb))
            .collect();
        let groups = split_tasks(tasks, 2);
        assert_eq!(groups.len(), 2);
        assert_eq!(bytes(&groups[0]) + bytes(&groups[1]), 120 * mb);
        assert_eq!(bytes(&groups[0]), 60 * mb);
    }

    #[test]
    fn a_large_file_is_cut_into_ranges_that_cover_it_exactly_once() {
        let size = 100 << 20;
        let groups = split_tasks(vec![task("big", size)], 4);
        assert_eq!(groups.len(), 4);
        let mut ranges: Vec<(u64, u64)> = groups
            .iter()
            .flatten()
            .map(|t| (t.start, t.start + t.length))
            .collect();
        ranges.sort();
        assert_eq!(ranges.first().unwrap().0, 0);
        assert_eq!(ranges.last().unwrap().1, size);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0, "ranges touch without overlap");
        }
        assert!(groups.iter().flatten().all(|t| t.record_count.is_none()));
    }

    #[test]
    fn small_files_are_not_cut_and_every_scan_has_all_its_partitions() {
        let groups = split_tasks(vec![task("small", 1 << 20)], 8);
        assert_eq!(
            groups.len(),
            8,
            "the plan's shape does not depend on pruning"
        );
        assert_eq!(groups.iter().flatten().count(), 1);
        assert_eq!(groups[0][0].record_count, Some(10));
        let empty = split_tasks(Vec::new(), 8);
        assert_eq!(empty.len(), 8);
        assert!(empty.iter().all(Vec::is_empty));
    }

    #[test]
    fn absurd_sizes_from_a_manifest_neither_overflow_nor_multiply_the_work() {
        let huge = i64::MAX as u64;
        let groups = split_tasks(vec![task("a", huge), task("b", huge), task("c", 2)], 4);
        assert_eq!(groups.len(), 4);
        assert!(
            groups.iter().flatten().count() <= 9,
            "at most 4 ranges per file"
        );
        let mut past_the_end = task("d", 100);
        past_the_end.start = 90;
        past_the_end.length = u64::MAX;
        let groups = split_tasks(vec![past_the_end], 4);
        assert_eq!(
            groups.iter().flatten().count(),
            1,
            "left whole for the reader to refuse"
        );
    }
}
