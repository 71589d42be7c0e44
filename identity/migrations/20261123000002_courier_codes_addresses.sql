-- The courier's outbox, one-time codes of recovery and verification flows, and an index of
-- identity addresses for looking an identity up by a verifiable or recovery address.
-- Portable SQL for PostgreSQL and SQLite, like the initial migration.

CREATE TABLE courier_messages (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    template_type TEXT NOT NULL,
    send_count BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX courier_messages_due_idx ON courier_messages (status, next_attempt_at);
CREATE INDEX courier_messages_created_idx ON courier_messages (created_at, id);

CREATE TABLE courier_message_dispatches (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES courier_messages (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX courier_message_dispatches_message_idx
    ON courier_message_dispatches (message_id, created_at);

CREATE TABLE selfservice_codes (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    address TEXT NOT NULL,
    identity_id TEXT,
    used_at BIGINT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX selfservice_codes_flow_idx ON selfservice_codes (flow_id);

ALTER TABLE selfservice_flows ADD COLUMN submit_count BIGINT NOT NULL DEFAULT 0;

CREATE TABLE identity_addresses (
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    via TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX identity_addresses_value_idx ON identity_addresses (kind, via, value);
CREATE INDEX identity_addresses_identity_idx ON identity_addresses (identity_id);
