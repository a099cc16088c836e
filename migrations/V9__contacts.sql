-- Contacts for every customer, domain events for campaign triggers (issue 9).
--
-- 1. Customers without an E.164 phone. Instagram (IGSID), webchat (visitor id) and
--    WhatsApp users who write from a username (Meta's business-scoped user ids) have no
--    phone. A contact is now identified by its phone, or by its channel identity: the
--    platform and the customer key exactly as `conversations.customer_phone` holds it, so a
--    conversation finds its contact by equality. `phone` becomes nullable; campaigns only
--    target contacts with a phone. Both may be set (a person adds the phone of an Instagram
--    contact). A contact whose personal data was erased (`erased_at`) keeps neither.
ALTER TABLE contacts
    ALTER COLUMN phone DROP NOT NULL,
    ADD COLUMN platform    VARCHAR(20)  CHECK (platform IN ('whatsapp', 'instagram', 'webchat')),
    ADD COLUMN customer_id VARCHAR(256),
    ADD COLUMN erased_at   TIMESTAMPTZ,
    ADD CONSTRAINT contacts_channel_identity_complete CHECK ((platform IS NULL) = (customer_id IS NULL)),
    ADD CONSTRAINT contacts_identified CHECK (
        phone IS NOT NULL OR customer_id IS NOT NULL OR erased_at IS NOT NULL
    ),
    ADD CONSTRAINT contacts_user_channel_customer_key UNIQUE (user_id, platform, customer_id);

-- The list's filters: `search` by phone prefix (text_pattern_ops: LIKE 'prefix%' uses it
-- whatever the collation), and the default listing (active contacts, newest first).
CREATE INDEX contacts_user_phone_prefix_idx ON contacts (user_id, phone text_pattern_ops);
CREATE INDEX contacts_user_active_idx ON contacts (user_id, contact_id DESC) WHERE is_active;

-- 2. The phone region a tenant's numbers are written in when they lack a `+` (`0612…` is
--    French for a French business): ISO 3166-1 alpha-2, NULL = only international forms.
ALTER TABLE users
    ADD COLUMN default_phone_region VARCHAR(2) CHECK (default_phone_region ~ '^[A-Z]{2}$');

-- 3. The domain-event outbox: written in the same transaction as the change it reports,
--    published to the events queue by `shared::events` (after the commit, and by a sweep
--    for whatever a crash left unpublished), listed by `GET /events`.
--    `dedup_key` names the real change an event reports (the extraction, the conversation's
--    quiet period), so recording the same change twice writes one row.
CREATE TABLE domain_events (
    event_id        VARCHAR(50)  PRIMARY KEY,
    user_id         VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    event_type      VARCHAR(30)  NOT NULL CHECK (event_type IN (
                        'NEW_EXTRACTION', 'LEAD_HOT', 'LEAD_WARM', 'TAG_ADDED', 'CONVERSATION_ENDED')),
    contact_id      VARCHAR(50)  REFERENCES contacts (contact_id) ON DELETE SET NULL,
    conversation_id VARCHAR(50)  REFERENCES conversations (conversation_id) ON DELETE SET NULL,
    payload         JSONB        NOT NULL DEFAULT '{}',
    dedup_key       VARCHAR(300),
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    published_at    TIMESTAMPTZ
);
-- GET /events: the tenant's events newest first (keyset on the time-sortable id).
CREATE INDEX domain_events_user_id_idx ON domain_events (user_id, event_id DESC);
-- The publisher's sweep: only unpublished rows, oldest first.
CREATE INDEX domain_events_unpublished_idx ON domain_events (event_id) WHERE published_at IS NULL;
CREATE INDEX domain_events_contact_id_idx ON domain_events (contact_id);
CREATE INDEX domain_events_conversation_id_idx ON domain_events (conversation_id);
CREATE UNIQUE INDEX domain_events_dedup_key ON domain_events (user_id, dedup_key)
    WHERE dedup_key IS NOT NULL;

-- 4. CONVERSATION_ENDED once per quiet period: the `last_message_at` the last event was
--    emitted for. The sweep reads only conversations not yet announced for their last
--    message, through this partial index, so ended conversations cost nothing later.
ALTER TABLE conversations
    ADD COLUMN ended_event_for TIMESTAMPTZ;
CREATE INDEX conversations_quiet_unannounced_idx ON conversations (last_message_at)
    WHERE is_active AND ended_event_for IS DISTINCT FROM last_message_at;
