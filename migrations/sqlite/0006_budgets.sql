-- Per-token cost budgets and what each statement cost. Same semantics as
-- ../postgres/0006_budgets.sql.
-- tokens.budget: the token document's budget as a JSON object (NULL: none).
ALTER TABLE tokens ADD COLUMN budget TEXT;
-- audit_log.bytes_scanned: bytes the statement read through its secure
-- views (rows_out is what it returned); budgets are seeded from both.
ALTER TABLE audit_log ADD COLUMN bytes_scanned BIGINT NOT NULL DEFAULT 0;
