-- Kratos' self-service errors: an error a browser flow ended in, stored so that the error UI
-- (`selfservice.flows.error.ui_url?id=`) can show it through `GET /self-service/errors?id=`.
-- `error` is the JSON error object as the API would answer it (5xx reasons scrubbed, never a
-- secret). Portable SQL for PostgreSQL and SQLite, like the initial migration.

CREATE TABLE selfservice_errors (
    id TEXT PRIMARY KEY,
    error TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX selfservice_errors_created_idx ON selfservice_errors (created_at);
