-- Inbound messages, conversation ownership and delivery bookkeeping (issue: inbound channels
-- and the AI conversation engine). See docs/architecture.md "Inbound messages".

-- The webhook's inbox: one row per provider message id, written before anything else, so a
-- redelivered webhook finds its row (and re-enqueues the reply job while it is not done).
CREATE TABLE inbound_messages (
    platform_message_id VARCHAR(255) PRIMARY KEY,
    user_id             VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    phone_number_id     VARCHAR(50)  NOT NULL REFERENCES phone_numbers (id) ON DELETE CASCADE,
    customer_id         VARCHAR(100) NOT NULL,
    customer_name       VARCHAR(255),
    message_type        VARCHAR(30)  NOT NULL,
    text                TEXT         NOT NULL,
    metadata            JSONB        NOT NULL DEFAULT '{}',
    sent_at             TIMESTAMPTZ  NOT NULL,
    received_at         TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    -- received: stored here only; enqueued: a reply job was published; done: the worker
    -- finished with it (replied, or decided not to).
    state               VARCHAR(20)  NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'enqueued', 'done')),
    -- The conversation message this became, once the worker stored it.
    message_id          VARCHAR(100) REFERENCES messages (message_id) ON DELETE SET NULL,
    -- How the worker finished with it: replied, or why no reply was made.
    outcome             VARCHAR(30) CHECK (outcome IN ('replied', 'no_agent', 'no_credits', 'human_owner',
                                                       'opted_out', 'opted_in', 'handed_off', 'send_failed', 'no_reply')),
    -- Set once the reply's credit is taken, so a retried job never takes a second one.
    credit_taken_at     TIMESTAMPTZ,
    -- The agent message answering it, once generated, so a retried job never asks OpenAI
    -- again and only (re)sends.
    reply_message_id    VARCHAR(100) REFERENCES messages (message_id) ON DELETE SET NULL,
    attempts            INTEGER      NOT NULL DEFAULT 0,
    updated_at          TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX inbound_messages_user_id_idx ON inbound_messages (user_id);
CREATE INDEX inbound_messages_pending_idx
    ON inbound_messages (phone_number_id, customer_id, sent_at) WHERE state <> 'done';
CREATE INDEX inbound_messages_message_id_idx ON inbound_messages (message_id);
-- Per-visitor rate limit of the webchat, and "messages of this customer" lookups.
CREATE INDEX inbound_messages_customer_received_idx ON inbound_messages (phone_number_id, customer_id, received_at DESC);
CREATE INDEX inbound_messages_reply_message_id_idx ON inbound_messages (reply_message_id);
CREATE TRIGGER inbound_messages_set_updated_at BEFORE UPDATE ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

-- Messages: what kind, what else came with it, and who wrote an agent message.
ALTER TABLE messages
    ADD COLUMN message_type VARCHAR(30) NOT NULL DEFAULT 'text',
    ADD COLUMN metadata     JSONB       NOT NULL DEFAULT '{}',
    ADD COLUMN author       VARCHAR(10) CHECK (author IN ('customer', 'ai', 'human')),
    ADD COLUMN error_code   VARCHAR(50);

-- Conversations: who answers (the AI or a person), the customer's name, the start of the
-- 24-hour customer-service window, and why the AI last did not answer.
ALTER TABLE conversations
    ADD COLUMN owner                    VARCHAR(10) NOT NULL DEFAULT 'ai' CHECK (owner IN ('ai', 'human')),
    ADD COLUMN owner_changed_at         TIMESTAMPTZ,
    ADD COLUMN handoff_reason           TEXT,
    ADD COLUMN customer_name            VARCHAR(255),
    ADD COLUMN last_customer_message_at TIMESTAMPTZ,
    ADD COLUMN reply_blocked_reason     VARCHAR(30) CHECK (reply_blocked_reason IN ('no_credits', 'opted_out', 'human_owner')),
    ADD COLUMN reply_blocked_at         TIMESTAMPTZ;

-- Instagram accounts are reached through graph.instagram.com (Instagram Login) or
-- graph.facebook.com (a Facebook Page); the send call differs.
ALTER TABLE phone_numbers
    ADD COLUMN instagram_api VARCHAR(20) CHECK (instagram_api IN ('instagram_login', 'facebook_page')),
    ADD CONSTRAINT phone_numbers_instagram_api_only_instagram CHECK (platform = 'instagram' OR instagram_api IS NULL);

-- Credit grants: every top-up, recorded.
CREATE TABLE credit_grants (
    grant_id   VARCHAR(50)  PRIMARY KEY,
    user_id    VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    amount     INTEGER      NOT NULL CHECK (amount > 0),
    reason     VARCHAR(255) NOT NULL,
    granted_by VARCHAR(100) NOT NULL,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX credit_grants_user_id_idx ON credit_grants (user_id, created_at DESC);

-- Whether a delivery status may replace another: statuses only move forward
-- (pending/queued < sent < delivered < read), and `failed` only replaces a status that was
-- not yet delivered. Works for both spellings (message_delivery_status is lower case,
-- template_sends and campaign_recipients upper case).
CREATE FUNCTION delivery_status_advances(current_status TEXT, next_status TEXT)
RETURNS BOOLEAN LANGUAGE SQL IMMUTABLE AS $$
    SELECT CASE
        WHEN lower(next_status) = 'failed' THEN lower(current_status) IN ('pending', 'queued', 'sent')
        WHEN lower(current_status) = 'failed' THEN false
        ELSE array_position(ARRAY['pending', 'queued', 'sent', 'delivered', 'read'], lower(next_status))
           > COALESCE(array_position(ARRAY['pending', 'queued', 'sent', 'delivered', 'read'], lower(current_status)), 0)
    END
$$;
