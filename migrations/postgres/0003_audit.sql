-- sluice audit log (postgres). Same semantics in ../sqlite/0003_audit.sql.
-- One row per request; timestamps are unix milliseconds; lists are JSON
-- arrays and maps JSON objects, as TEXT. Statements are stored only as a
-- fingerprint and with their literals removed.
CREATE TABLE audit_log (
    id                    BIGSERIAL PRIMARY KEY,
    time_ms               BIGINT  NOT NULL,
    request_id            TEXT    NOT NULL,
    client_request_id     TEXT,
    trace_id              TEXT,
    token_id              TEXT,
    peer                  TEXT,
    protocol              TEXT    NOT NULL,
    action                TEXT    NOT NULL,
    client_addr           TEXT,
    query_id              TEXT,
    statement_fingerprint TEXT,
    statement             TEXT,
    tables                TEXT    NOT NULL DEFAULT '[]',
    columns               TEXT    NOT NULL DEFAULT '[]',
    rows_out              BIGINT  NOT NULL DEFAULT 0,
    bytes_out             BIGINT  NOT NULL DEFAULT 0,
    truncated             BOOLEAN NOT NULL DEFAULT FALSE,
    columns_blocked       TEXT    NOT NULL DEFAULT '[]',
    columns_masked        TEXT    NOT NULL DEFAULT '[]',
    values_masked         BIGINT  NOT NULL DEFAULT 0,
    row_policy            TEXT    NOT NULL DEFAULT '{}',
    outcome               TEXT    NOT NULL,
    error                 TEXT,
    latency_ms            DOUBLE PRECISION NOT NULL
);

CREATE INDEX audit_log_time_idx ON audit_log (time_ms);
CREATE INDEX audit_log_token_idx ON audit_log (token_id, time_ms);
