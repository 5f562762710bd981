-- A token's own run-time limit per statement, in milliseconds (NULL: the
-- gateway's limits.query_timeout). Same semantics as ../sqlite/0005_query_timeout.sql.
ALTER TABLE tokens ADD COLUMN query_timeout_ms BIGINT;
