# Module defaults: bundled PostgreSQL, every Secret generated.
