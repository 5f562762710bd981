-- Federation (issue 7). Same semantics as ../postgres/0004_federation.sql.

-- Provider side: a share token's profile (which carries its secret) can be
-- downloaded once; the secret is generated at that moment and only its hash
-- is kept, like every other secret.
ALTER TABLE tokens ADD COLUMN profile_downloaded_at BIGINT;

-- Receiver side: owner_name is the peer's name (the catalog it is mounted
-- as), unique.
ALTER TABLE external_tokens ADD COLUMN token_id       TEXT NOT NULL DEFAULT '';
ALTER TABLE external_tokens ADD COLUMN remote_catalog TEXT NOT NULL DEFAULT 'lake';
ALTER TABLE external_tokens ADD COLUMN expires_at     BIGINT;
-- PEM of the CA that signed the provider's server certificate (public).
ALTER TABLE external_tokens ADD COLUMN ca_cert        TEXT;
-- PEM client certificate chain presented to the provider (public) and its
-- key, AEAD-sealed like the token (nonce || ciphertext).
ALTER TABLE external_tokens ADD COLUMN client_cert       TEXT;
ALTER TABLE external_tokens ADD COLUMN sealed_client_key BLOB;
-- Set when the provider refused the share token (revoked or expired).
ALTER TABLE external_tokens ADD COLUMN revoked_at     BIGINT;
CREATE UNIQUE INDEX external_tokens_owner_name_idx ON external_tokens (owner_name);
