-- sluice export jobs (sqlite). Same semantics in ../postgres/0002_exports.sql.
-- Timestamps are unix milliseconds (BIGINT).

-- Destination prefixes a token may export to: JSON array of
-- "s3://bucket/prefix" / "file:///path" strings (default: none).
ALTER TABLE tokens ADD COLUMN export_destinations TEXT NOT NULL DEFAULT '[]';

CREATE TABLE export_jobs (
    id               TEXT    PRIMARY KEY NOT NULL,
    token_id         TEXT    NOT NULL REFERENCES tokens (id),
    state            TEXT    NOT NULL
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    statement        TEXT    NOT NULL,
    -- normalised destination URL
    destination      TEXT    NOT NULL,
    compression      TEXT    NOT NULL,
    max_file_bytes   BIGINT  NOT NULL,
    row_limit        BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    -- the gateway instance running the job, and when it last said so
    instance         TEXT,
    heartbeat_at     BIGINT,
    rows_written     BIGINT  NOT NULL DEFAULT 0,
    bytes_written    BIGINT  NOT NULL DEFAULT 0,
    files_written    BIGINT  NOT NULL DEFAULT 0,
    truncated        BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    error            TEXT,
    -- the manifest's JSON once the job succeeded
    manifest         TEXT
);

CREATE INDEX export_jobs_token_idx ON export_jobs (token_id, created_at);
CREATE INDEX export_jobs_state_idx ON export_jobs (state, created_at);
-- At most one live job per destination, even when submitted at once.
CREATE UNIQUE INDEX export_jobs_live_destination_idx ON export_jobs (destination)
    WHERE state IN ('queued', 'running');

-- What a job has put on the object store and must be removed unless it
-- commits: open multipart uploads (upload_id, aborted on cleanup) and
-- objects the job committed (upload_id '', deleted on cleanup). Rows of
-- finished jobs are deleted once cleaned up (or committed).
CREATE TABLE export_leftovers (
    job_id    TEXT NOT NULL REFERENCES export_jobs (id),
    path      TEXT NOT NULL,
    upload_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, path, upload_id)
);
