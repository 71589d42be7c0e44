-- Portable SQL for PostgreSQL and SQLite: TEXT uuids, BIGINT unix-millisecond timestamps,
-- JSON documents as TEXT, BIGINT 0/1 for flags.

CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    schema_id TEXT NOT NULL,
    state TEXT NOT NULL,
    traits TEXT NOT NULL,
    verifiable_addresses TEXT NOT NULL,
    recovery_addresses TEXT NOT NULL,
    metadata_public TEXT,
    metadata_admin TEXT,
    external_id TEXT UNIQUE,
    state_changed_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX identities_created_at_idx ON identities (created_at, id);

CREATE TABLE identity_credentials (
    id TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (identity_id, type)
);

CREATE TABLE identity_credential_identifiers (
    id TEXT PRIMARY KEY,
    credential_id TEXT NOT NULL REFERENCES identity_credentials (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    identifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (type, identifier)
);
CREATE INDEX identity_credential_identifiers_credential_idx
    ON identity_credential_identifiers (credential_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    logout_token_hash TEXT UNIQUE,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    active BIGINT NOT NULL,
    aal TEXT NOT NULL,
    authentication_methods TEXT NOT NULL,
    devices TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sessions_identity_idx ON sessions (identity_id, created_at);
CREATE INDEX sessions_created_at_idx ON sessions (created_at, id);

CREATE TABLE selfservice_flows (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    request_url TEXT NOT NULL,
    return_to TEXT,
    csrf_token TEXT NOT NULL,
    ui TEXT NOT NULL,
    identity_id TEXT,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
