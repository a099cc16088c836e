-- Provider identifiers wide enough for what providers send (issue: hardening the inbound
-- path). A real Instagram message id is about 164 characters and Meta's business-scoped user
-- ids (BSUIDs) may be up to 256, but the reference gave message ids 100 characters and
-- customer keys 50: a message whose id fitted the inbox (255) could not be copied into
-- `messages`, and a long webchat visitor id could not key a conversation. Every column that
-- holds a provider identifier now has one width per kind, the same in every table, and the
-- edge checks use the same numbers (shared::domain::text; a schema test compares them):
--
--   provider message ids (wamid, Instagram mid, webchat ids): 512 characters
--   customer keys (wa_id/E.164, IGSID, BSUID, webchat visitor id): 256 characters
--
-- Widening a VARCHAR rewrites neither the table nor its indexes in PostgreSQL.

ALTER TABLE inbound_messages
    ALTER COLUMN platform_message_id TYPE VARCHAR(512),
    ALTER COLUMN customer_id         TYPE VARCHAR(256);

ALTER TABLE messages
    ALTER COLUMN platform_message_id TYPE VARCHAR(512);

ALTER TABLE message_delivery_status
    ALTER COLUMN platform_message_id TYPE VARCHAR(512);

ALTER TABLE conversations
    ALTER COLUMN customer_phone TYPE VARCHAR(256);

ALTER TABLE extractions
    ALTER COLUMN customer_phone TYPE VARCHAR(256);

ALTER TABLE template_sends
    ALTER COLUMN platform_message_id TYPE VARCHAR(512),
    ALTER COLUMN customer_phone      TYPE VARCHAR(256);

ALTER TABLE button_clicks
    ALTER COLUMN message_id          TYPE VARCHAR(512),
    ALTER COLUMN original_message_id TYPE VARCHAR(512),
    ALTER COLUMN customer_phone      TYPE VARCHAR(256);
