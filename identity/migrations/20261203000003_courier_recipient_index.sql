-- The per-address mail quota counts a recipient's recent messages in the outbox on every send.

CREATE INDEX courier_messages_recipient_idx ON courier_messages (recipient, created_at);
