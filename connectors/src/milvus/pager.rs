//! The keyset pager behind a scan: `query` calls ordered by primary key
//! (`pk > last` with a page limit), so a large collection is never held
//! whole; pages shrink when an answer would exceed the message limit.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::common::{Result as DFResult, ScalarValue};
use datafusion::error::DataFusionError;
use milvus::v2::prelude::QueryRequest;

use super::client::{Shared, is_too_large};
use super::table::MilvusTable;
use super::types::to_arrow;

/// Pages through a query by primary key.
pub(super) struct Pager {
    pub(super) shared: Arc<Shared>,
    pub(super) table: Arc<MilvusTable>,
    pub(super) schema: SchemaRef,
    pub(super) fields: Vec<String>,
    pub(super) filter: Option<String>,
    pub(super) remaining: Option<usize>,
    pub(super) cursor: Option<ScalarValue>,
    pub(super) done: bool,
    /// Page bound learnt from oversized answers.
    pub(super) max_rows: usize,
    /// The trace id of the request, passed to Milvus.
    pub(super) trace: Option<String>,
}

impl Pager {
    pub(super) fn into_stream(self) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
        futures::stream::unfold(self, |mut pager| async move {
            if pager.done {
                return None;
            }
            let started = Instant::now();
            let page = pager.next_page().await;
            tracing::trace!(collection = %pager.table.collection, elapsed_ms = started.elapsed().as_millis() as u64, "milvus page");
            match page {
                Ok(Some(batch)) => Some((Ok(batch), pager)),
                Ok(None) => None,
                Err(e) => {
                    pager.done = true;
                    Some((Err(e), pager))
                }
            }
        })
    }

    async fn next_page(&mut self) -> DFResult<Option<RecordBatch>> {
        let pk = &self.table.primary_key;
        // The primary key always comes back (the cursor needs it).
        let mut fields = self.fields.clone();
        if !fields.contains(pk) {
            fields.push(pk.clone());
        }
        let most = self
            .shared
            .cfg
            .page_size
            .min(self.table.rows_per_message(&fields));
        let page = match self.remaining {
            Some(0) => return Ok(None),
            Some(r) => r.min(most),
            None => most,
        };
        let mut expr = String::new();
        if let Some(f) = &self.filter {
            write!(expr, "({f})").expect("string write");
        }
        if let Some(c) = &self.cursor {
            if !expr.is_empty() {
                expr.push_str(" and ");
            }
            match c {
                // `> i64::MIN` cannot be written; `>= i64::MIN + 1` can.
                ScalarValue::Int64(Some(i64::MIN)) => {
                    write!(expr, "({pk} >= {})", i64::MIN + 1).expect("string write")
                }
                _ => {
                    let lit = MilvusTable::literal(c).ok_or_else(|| {
                        DataFusionError::Internal("unprintable primary key cursor".to_string())
                    })?;
                    write!(expr, "({pk} > {lit})").expect("string write");
                }
            }
        }
        if expr.is_empty() {
            // Milvus needs a condition; this one holds for every row.
            expr = if self.table.pk_is_int {
                format!("({pk} >= {}) or ({pk} < {})", i64::MIN + 1, i64::MIN + 1)
            } else {
                format!("{pk} >= \"\"")
            };
        }
        // A page of rows wider than estimated (long JSON or text) can
        // exceed the message limit: halve it until it fits.
        let mut page = page.min(self.max_rows);
        let response = loop {
            let mut request = QueryRequest::builder()
                .database_name(self.shared.cfg.database.clone())
                .collection_name(self.table.collection.clone())
                .filter(expr.clone())
                .output_fields(fields.clone())
                .limit(page as i64);
            if let Some(level) = self.shared.consistency() {
                request = request.consistency_level(level);
            }
            let request = request
                .build()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            match self
                .shared
                .call_traced("query", self.trace.as_deref(), |c| async move {
                    c.query(request).await
                })
                .await
            {
                Ok(r) => break r,
                Err(e) if is_too_large(&e) && page > 1 => {
                    page /= 2;
                    self.max_rows = page;
                }
                Err(e) if is_too_large(&e) => {
                    return Err(DataFusionError::Execution(format!(
                        "a row of {} is larger than a Milvus answer may be (4 MiB)",
                        self.table.collection
                    )));
                }
                Err(e) => return Err(e),
            }
        };
        let results = response.results();
        let pk_field = self.table.schema.field_with_name(pk)?.clone();
        let keys = match results.get_output_field(pk) {
            Some(d) => to_arrow(d, &pk_field, d.len())?,
            None => {
                return Err(DataFusionError::Execution(
                    "milvus query answered without the primary key".to_string(),
                ));
            }
        };
        let rows = keys.len();
        if rows < page {
            self.done = true;
        }
        if rows == 0 {
            return Ok(None);
        }
        // Paging by `pk > last` is only correct if pages come sorted by
        // primary key; refuse rather than skip rows if they do not.
        let sorted = arrow::compute::kernels::sort::lexsort_to_indices(
            &[arrow::compute::SortColumn {
                values: Arc::clone(&keys),
                options: None,
            }],
            None,
        )?;
        let order: Vec<u32> = sorted.values().to_vec();
        let in_order = order.iter().enumerate().all(|(i, j)| i as u32 == *j);
        self.cursor = Some(ScalarValue::try_from_array(
            &keys,
            order[rows - 1] as usize,
        )?);
        if !in_order && !self.done {
            // An unsorted page can still be paged by its largest key only
            // if it holds the smallest keys of the rest; Milvus returns
            // pages sorted when that holds, so anything else is refused.
            return Err(DataFusionError::Execution(format!(
                "milvus returned a page of {} out of primary-key order; cannot page through it",
                self.table.collection
            )));
        }
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(rows);
        }
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let data = results.get_output_field(field.name()).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "milvus query answered without field \"{}\"",
                    field.name()
                ))
            })?;
            columns.push(to_arrow(data, field, rows)?);
        }
        Ok(Some(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?))
    }
}
