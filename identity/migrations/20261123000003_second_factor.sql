-- Second factors: the highest assurance level an identity can reach (kept with the identity so
-- whoami stays one query), and flow-private state (a TOTP secret being enrolled, encrypted).

ALTER TABLE identities ADD COLUMN available_aal TEXT NOT NULL DEFAULT 'aal1';
ALTER TABLE selfservice_flows ADD COLUMN internal_context TEXT;
