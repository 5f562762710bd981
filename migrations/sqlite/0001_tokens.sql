-- sluice token store (SQLite). Same semantics as ../postgres/0001_tokens.sql.
-- Timestamps are unix milliseconds (BIGINT); JSON documents are TEXT.

CREATE TABLE tokens (
    id                 TEXT    PRIMARY KEY NOT NULL,
    name               TEXT    NOT NULL,
    -- lower-case hex SHA-256 of the secret; the secret itself is never stored
    secret_hash        TEXT    NOT NULL UNIQUE,
    token_type         TEXT    NOT NULL CHECK (token_type IN ('public', 'share')),
    created_by         TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    expires_at         BIGINT,
    revoked_at         BIGINT,
    provider_base_url  TEXT,
    -- {"cidrs": [...], "orgs": [...]}
    audience           TEXT    NOT NULL DEFAULT '{}',
    -- {"key": value, ...}
    attributes         TEXT    NOT NULL DEFAULT '{}',
    -- [{"table": ..., "columns": ..., "masks": ..., "allow_rules": ..., "deny_rules": ...}]
    grants             TEXT    NOT NULL DEFAULT '[]',
    max_sensitivity    BIGINT  NOT NULL DEFAULT 0,
    row_limit          BIGINT  NOT NULL CHECK (row_limit > 0),
    allow_attachments  BOOLEAN NOT NULL DEFAULT FALSE,
    can_export_vectors BOOLEAN NOT NULL DEFAULT FALSE,
    -- requests per minute; NULL = unlimited
    rate_limit         BIGINT,
    admin              BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX tokens_admin_idx ON tokens (admin, revoked_at);

-- Receiver side of federation: provider tokens imported from share profiles.
CREATE TABLE external_tokens (
    id                TEXT    PRIMARY KEY NOT NULL,
    provider_base_url TEXT    NOT NULL,
    owner_name        TEXT    NOT NULL,
    -- AEAD-sealed provider token (nonce || ciphertext); never plaintext
    sealed_token      BLOB    NOT NULL,
    imported_by       TEXT    NOT NULL,
    imported_at       BIGINT  NOT NULL,
    is_active         BOOLEAN NOT NULL DEFAULT TRUE
);

-- Gateway-wide settings shared by every replica (e.g. the Flight ticket HMAC key).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
