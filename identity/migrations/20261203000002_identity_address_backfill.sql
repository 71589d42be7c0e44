-- Identities written before `identity_addresses` existed have no rows there, so recovery and
-- verification cannot find them. Every existing identity is marked for the start-up backfill,
-- which derives its addresses from its traits through its schema and sets the mark (so does
-- every write of an identity from now on). Rows written by code that predates this column
-- (which does not name it) get the default and are backfilled too.

ALTER TABLE identities ADD COLUMN addresses_indexed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX identities_addresses_indexed_idx ON identities (addresses_indexed, id);
