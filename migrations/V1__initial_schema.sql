-- The whole schema of ../shared/schema-reference.md, with the decisions recorded in
-- docs/architecture.md ("Schema decisions"): TIMESTAMPTZ for every timestamp, one *active*
-- conversation per (agent, customer) as a partial unique index, a channel's Meta id unique
-- across tenants, waba_id on channels, and an index for every foreign key.

CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- users: the tenant. user_id is the identity provider's subject (JWT `sub`).
CREATE TABLE users (
    user_id      VARCHAR(50)  PRIMARY KEY,
    email        VARCHAR(255) NOT NULL UNIQUE,
    company_name VARCHAR(255),
    created_at   TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at   TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- phone_numbers: a channel (WhatsApp number, Instagram account, website widget).
CREATE TABLE phone_numbers (
    id                   VARCHAR(50)  PRIMARY KEY,
    user_id              VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    platform             VARCHAR(20)  NOT NULL CHECK (platform IN ('whatsapp', 'instagram', 'webchat')),
    -- WhatsApp: the Cloud API phone-number id (webhooks carry it in metadata.phone_number_id);
    -- Instagram: the account id; webchat: the public widget key.
    meta_phone_number_id VARCHAR(100) NOT NULL CHECK (meta_phone_number_id <> ''),
    -- Sealed (AES-256-GCM, see shared::crypto); never plaintext. Webchat has no provider token.
    access_token         TEXT,
    display_name         VARCHAR(255),
    -- WhatsApp Business Account id: templates are managed per WABA.
    waba_id              VARCHAR(100),
    created_at           TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at           TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT phone_numbers_token_required CHECK (platform = 'webchat' OR access_token IS NOT NULL),
    CONSTRAINT phone_numbers_waba_only_whatsapp CHECK (platform = 'whatsapp' OR waba_id IS NULL),
    -- Webhooks route by this pair, so it identifies one channel across all tenants. This is
    -- stricter than the reference's (user_id, meta_phone_number_id, platform), which it implies.
    CONSTRAINT phone_numbers_platform_meta_id_key UNIQUE (platform, meta_phone_number_id)
);
CREATE INDEX phone_numbers_user_id_idx ON phone_numbers (user_id, id);

-- agents: one AI agent (an OpenAI stored prompt) per channel. The uniqueness is deferrable so
-- that a relink can insert the new agent, move the conversations and delete the old agent in
-- one transaction.
CREATE TABLE agents (
    agent_id        VARCHAR(50)  PRIMARY KEY,
    user_id         VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    phone_number_id VARCHAR(50)  NOT NULL REFERENCES phone_numbers (id),
    prompt_id       VARCHAR(100) NOT NULL,
    name            VARCHAR(255) NOT NULL,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at      TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT agents_phone_number_id_key UNIQUE (phone_number_id) DEFERRABLE INITIALLY IMMEDIATE
);
CREATE INDEX agents_user_id_idx ON agents (user_id, agent_id);

CREATE TABLE conversations (
    conversation_id        VARCHAR(50)  PRIMARY KEY,
    agent_id               VARCHAR(50)  NOT NULL REFERENCES agents (agent_id),
    customer_phone         VARCHAR(50)  NOT NULL,
    openai_conversation_id VARCHAR(100),
    created_at             TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_message_at        TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_extraction_at     TIMESTAMPTZ,
    is_active              BOOLEAN      NOT NULL DEFAULT true
);
-- The reference's UNIQUE (agent_id, customer_phone, is_active) would allow only one archived
-- conversation per customer; what is meant is one *active* conversation.
CREATE UNIQUE INDEX conversations_one_active_per_customer
    ON conversations (agent_id, customer_phone) WHERE is_active;
CREATE INDEX conversations_agent_id_idx ON conversations (agent_id, last_message_at DESC);
CREATE INDEX conversations_customer_phone_idx ON conversations (customer_phone);

CREATE TABLE messages (
    message_id          VARCHAR(100) PRIMARY KEY,
    conversation_id     VARCHAR(50)  NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    sender              VARCHAR(20)  NOT NULL CHECK (sender IN ('user', 'agent')),
    text                TEXT         NOT NULL,
    "timestamp"         TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    status              VARCHAR(20)  NOT NULL DEFAULT 'pending' CHECK (status IN ('sent', 'failed', 'pending')),
    sequence_no         INTEGER      NOT NULL CHECK (sequence_no >= 1),
    platform_message_id VARCHAR(100),
    CONSTRAINT messages_conversation_sequence_key UNIQUE (conversation_id, sequence_no)
);
-- Dedupe key for at-least-once webhook delivery (wamid / Instagram mid are globally unique).
CREATE UNIQUE INDEX messages_platform_message_id_key
    ON messages (platform_message_id) WHERE platform_message_id IS NOT NULL;

CREATE TABLE extractions (
    extraction_id               UUID         PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id             VARCHAR(50)  NOT NULL REFERENCES conversations (conversation_id),
    user_id                     VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    customer_phone              VARCHAR(50)  NOT NULL,
    extracted_at                TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    is_latest                   BOOLEAN      NOT NULL DEFAULT true,
    message_count_at_extraction INTEGER      NOT NULL DEFAULT 0 CHECK (message_count_at_extraction >= 0),
    name                        VARCHAR(255),
    email                       VARCHAR(255),
    company                     VARCHAR(255),
    intent_level                VARCHAR(20)  CHECK (intent_level IN ('Low', 'Medium', 'High')),
    intent_score                INTEGER      CHECK (intent_score BETWEEN 1 AND 3),
    urgency_level               VARCHAR(20)  CHECK (urgency_level IN ('Low', 'Medium', 'High')),
    urgency_score               INTEGER      CHECK (urgency_score BETWEEN 1 AND 3),
    budget_constraint           VARCHAR(20)  CHECK (budget_constraint IN ('Yes', 'No', 'Maybe')),
    budget_score                INTEGER      CHECK (budget_score BETWEEN 1 AND 3),
    fit_alignment               VARCHAR(20)  CHECK (fit_alignment IN ('Low', 'Medium', 'High')),
    fit_score                   INTEGER      CHECK (fit_score BETWEEN 1 AND 3),
    engagement_health           VARCHAR(20)  CHECK (engagement_health IN ('Low', 'Medium', 'High')),
    engagement_score            INTEGER      CHECK (engagement_score BETWEEN 1 AND 3),
    total_score                 INTEGER      CHECK (total_score BETWEEN 5 AND 15),
    lead_status_tag             VARCHAR(20)  CHECK (lead_status_tag IN ('Hot', 'Warm', 'Cold')),
    demo_book_datetime          TIMESTAMPTZ,
    reasoning                   JSONB,
    smart_notification          TEXT,
    requirements                TEXT,
    custom_cta                  TEXT,
    in_detail_summary           TEXT,
    created_at                  TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at                  TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX extractions_conversation_id_idx ON extractions (conversation_id, extracted_at DESC);
CREATE UNIQUE INDEX extractions_one_latest_per_conversation ON extractions (conversation_id) WHERE is_latest;
CREATE INDEX extractions_user_id_idx ON extractions (user_id, extracted_at DESC);
CREATE INDEX extractions_user_lead_status_idx ON extractions (user_id, lead_status_tag) WHERE is_latest;

CREATE TABLE credits (
    user_id           VARCHAR(50) PRIMARY KEY REFERENCES users (user_id),
    remaining_credits INTEGER     NOT NULL DEFAULT 0 CHECK (remaining_credits >= 0),
    total_used        INTEGER     NOT NULL DEFAULT 0 CHECK (total_used >= 0),
    last_updated      TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE google_calendar_tokens (
    user_id       VARCHAR(50) PRIMARY KEY REFERENCES users (user_id),
    access_token  TEXT        NOT NULL,  -- sealed
    refresh_token TEXT        NOT NULL,  -- sealed
    token_expiry  TIMESTAMPTZ NOT NULL,
    scope         TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE meetings (
    meeting_id       VARCHAR(50)  PRIMARY KEY,
    user_id          VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    conversation_id  VARCHAR(50)  NOT NULL REFERENCES conversations (conversation_id),
    google_event_id  VARCHAR(255) NOT NULL,
    title            VARCHAR(255) NOT NULL,
    customer_name    VARCHAR(255),
    customer_email   VARCHAR(255),
    participants     TEXT[]       NOT NULL DEFAULT '{}',
    meeting_time     TIMESTAMPTZ  NOT NULL,
    duration_minutes INTEGER      NOT NULL DEFAULT 30 CHECK (duration_minutes > 0),
    timezone         VARCHAR(100),
    meet_link        TEXT,
    status           VARCHAR(20)  NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'cancelled', 'completed')),
    created_at       TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX meetings_user_id_idx ON meetings (user_id, meeting_time DESC);
CREATE INDEX meetings_conversation_id_idx ON meetings (conversation_id);

CREATE TABLE message_delivery_status (
    message_id          VARCHAR(100) PRIMARY KEY REFERENCES messages (message_id) ON DELETE CASCADE,
    platform_message_id VARCHAR(100),
    status              VARCHAR(20)  NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    error_message       TEXT,
    updated_at          TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX message_delivery_status_platform_message_id_idx ON message_delivery_status (platform_message_id);

-- A record of history: it names agents that no longer exist (the old one is deleted by the
-- relink, the new one may be relinked away later), so neither agent id is a foreign key.
CREATE TABLE conversation_archives (
    archive_id                   VARCHAR(50)  PRIMARY KEY,
    old_agent_id                 VARCHAR(50)  NOT NULL,
    new_agent_id                 VARCHAR(50)  NOT NULL,
    phone_number_id              VARCHAR(50)  NOT NULL REFERENCES phone_numbers (id) ON DELETE CASCADE,
    archived_conversations_count INTEGER      NOT NULL DEFAULT 0 CHECK (archived_conversations_count >= 0),
    archived_at                  TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    reason                       VARCHAR(255) NOT NULL DEFAULT 'Agent relinked'
);
CREATE INDEX conversation_archives_phone_number_id_idx ON conversation_archives (phone_number_id, archive_id DESC);
CREATE INDEX conversation_archives_new_agent_id_idx ON conversation_archives (new_agent_id);

CREATE TABLE contacts (
    contact_id              VARCHAR(50)  PRIMARY KEY,
    user_id                 VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    phone                   VARCHAR(20)  NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    name                    VARCHAR(255),
    email                   VARCHAR(255),
    company                 VARCHAR(255),
    tags                    TEXT[]       NOT NULL DEFAULT '{}',
    source                  VARCHAR(20)  NOT NULL DEFAULT 'MANUAL' CHECK (source IN ('EXTRACTION', 'IMPORT', 'MANUAL')),
    extraction_id           UUID         REFERENCES extractions (extraction_id) ON DELETE SET NULL,
    conversation_id         VARCHAR(50)  REFERENCES conversations (conversation_id) ON DELETE SET NULL,
    is_active               BOOLEAN      NOT NULL DEFAULT true,
    opted_out               BOOLEAN      NOT NULL DEFAULT false,
    opted_out_at            TIMESTAMPTZ,
    last_contacted_at       TIMESTAMPTZ,
    total_messages_sent     INTEGER      NOT NULL DEFAULT 0 CHECK (total_messages_sent >= 0),
    total_messages_received INTEGER      NOT NULL DEFAULT 0 CHECK (total_messages_received >= 0),
    created_at              TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at              TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT contacts_user_phone_key UNIQUE (user_id, phone)
);
CREATE INDEX contacts_tags_idx ON contacts USING GIN (tags);
CREATE INDEX contacts_user_id_idx ON contacts (user_id, contact_id);
CREATE INDEX contacts_extraction_id_idx ON contacts (extraction_id);
CREATE INDEX contacts_conversation_id_idx ON contacts (conversation_id);

CREATE TABLE templates (
    template_id               VARCHAR(50)    PRIMARY KEY,
    user_id                   VARCHAR(50)    NOT NULL REFERENCES users (user_id),
    phone_number_id           VARCHAR(50)    NOT NULL REFERENCES phone_numbers (id),
    name                      VARCHAR(512)   NOT NULL,
    category                  VARCHAR(20)    NOT NULL CHECK (category IN ('MARKETING', 'UTILITY', 'AUTHENTICATION')),
    status                    VARCHAR(20)    NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'PENDING', 'APPROVED', 'REJECTED', 'PAUSED', 'DISABLED')),
    language                  VARCHAR(10)    NOT NULL DEFAULT 'en',
    components                JSONB          NOT NULL DEFAULT '{}',
    header_type               VARCHAR(20)    NOT NULL DEFAULT 'NONE' CHECK (header_type IN ('NONE', 'TEXT', 'IMAGE', 'VIDEO', 'DOCUMENT', 'LOCATION')),
    header_media_url          TEXT,
    header_document_filename  VARCHAR(255),
    header_location_latitude  DECIMAL(10, 8) CHECK (header_location_latitude BETWEEN -90 AND 90),
    header_location_longitude DECIMAL(11, 8) CHECK (header_location_longitude BETWEEN -180 AND 180),
    header_location_name      VARCHAR(255),
    header_location_address   TEXT,
    waba_id                   VARCHAR(100),
    meta_template_id          VARCHAR(100),
    rejection_reason          TEXT,
    submitted_at              TIMESTAMPTZ,
    approved_at               TIMESTAMPTZ,
    created_at                TIMESTAMPTZ    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at                TIMESTAMPTZ    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT templates_phone_number_name_key UNIQUE (phone_number_id, name)
);
CREATE INDEX templates_user_id_idx ON templates (user_id, template_id);
CREATE INDEX templates_meta_template_id_idx ON templates (meta_template_id);

CREATE TABLE template_variables (
    variable_id       VARCHAR(50)  PRIMARY KEY,
    template_id       VARCHAR(50)  NOT NULL REFERENCES templates (template_id) ON DELETE CASCADE,
    variable_name     VARCHAR(100) NOT NULL,
    position          INTEGER      NOT NULL CHECK (position BETWEEN 1 AND 10),
    component_type    VARCHAR(20)  NOT NULL DEFAULT 'BODY' CHECK (component_type IN ('HEADER', 'BODY', 'BUTTON')),
    dashboard_mapping VARCHAR(50),
    default_value     VARCHAR(255),
    sample_value      VARCHAR(255),
    created_at        TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at        TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT template_variables_template_position_key UNIQUE (template_id, position),
    CONSTRAINT template_variables_template_name_key UNIQUE (template_id, variable_name)
);

CREATE TABLE campaigns (
    campaign_id      VARCHAR(50)  PRIMARY KEY,
    user_id          VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    template_id      VARCHAR(50)  NOT NULL REFERENCES templates (template_id),
    phone_number_id  VARCHAR(50)  NOT NULL REFERENCES phone_numbers (id),
    name             VARCHAR(255) NOT NULL,
    description      TEXT,
    status           VARCHAR(20)  NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELLED')),
    recipient_filter JSONB        NOT NULL DEFAULT '{}',
    total_recipients INTEGER      NOT NULL DEFAULT 0 CHECK (total_recipients >= 0),
    sent_count       INTEGER      NOT NULL DEFAULT 0 CHECK (sent_count >= 0),
    delivered_count  INTEGER      NOT NULL DEFAULT 0 CHECK (delivered_count >= 0),
    read_count       INTEGER      NOT NULL DEFAULT 0 CHECK (read_count >= 0),
    failed_count     INTEGER      NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ,
    paused_at        TIMESTAMPTZ,
    last_error       TEXT,
    created_at       TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX campaigns_user_id_idx ON campaigns (user_id, campaign_id);
CREATE INDEX campaigns_template_id_idx ON campaigns (template_id);
CREATE INDEX campaigns_phone_number_id_idx ON campaigns (phone_number_id);
CREATE INDEX campaigns_running_idx ON campaigns (status) WHERE status IN ('RUNNING', 'SCHEDULED');

CREATE TABLE template_sends (
    send_id             VARCHAR(50)  PRIMARY KEY,
    template_id         VARCHAR(50)  NOT NULL REFERENCES templates (template_id),
    conversation_id     VARCHAR(50)  REFERENCES conversations (conversation_id) ON DELETE SET NULL,
    campaign_id         VARCHAR(50)  REFERENCES campaigns (campaign_id) ON DELETE SET NULL,
    customer_phone      VARCHAR(50)  NOT NULL,
    variable_values     JSONB        NOT NULL DEFAULT '{}',
    status              VARCHAR(20)  NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'DELIVERED', 'READ', 'FAILED')),
    platform_message_id VARCHAR(100),
    error_code          VARCHAR(50),
    error_message       TEXT,
    sent_at             TIMESTAMPTZ,
    delivered_at        TIMESTAMPTZ,
    read_at             TIMESTAMPTZ,
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at          TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX template_sends_template_id_idx ON template_sends (template_id, created_at DESC);
CREATE INDEX template_sends_conversation_id_idx ON template_sends (conversation_id);
CREATE INDEX template_sends_campaign_id_idx ON template_sends (campaign_id);
CREATE UNIQUE INDEX template_sends_platform_message_id_key
    ON template_sends (platform_message_id) WHERE platform_message_id IS NOT NULL;

CREATE TABLE template_buttons (
    button_id                  VARCHAR(50)  PRIMARY KEY,
    template_id                VARCHAR(50)  NOT NULL REFERENCES templates (template_id) ON DELETE CASCADE,
    button_type                VARCHAR(20)  NOT NULL CHECK (button_type IN ('QUICK_REPLY', 'URL', 'PHONE_NUMBER', 'COPY_CODE')),
    button_text                VARCHAR(100) NOT NULL,
    button_index               INTEGER      NOT NULL CHECK (button_index >= 0),
    button_url                 TEXT,
    button_url_suffix_variable INTEGER      CHECK (button_url_suffix_variable BETWEEN 1 AND 10),
    button_phone               VARCHAR(30),
    copy_code_example          VARCHAR(15),
    tracking_id                VARCHAR(100),
    total_clicks               INTEGER      NOT NULL DEFAULT 0 CHECK (total_clicks >= 0),
    unique_clicks              INTEGER      NOT NULL DEFAULT 0 CHECK (unique_clicks >= 0),
    created_at                 TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at                 TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT template_buttons_template_index_key UNIQUE (template_id, button_index)
);

CREATE TABLE button_clicks (
    click_id            VARCHAR(50)  PRIMARY KEY,
    template_id         VARCHAR(50)  NOT NULL REFERENCES templates (template_id),
    template_send_id    VARCHAR(50)  REFERENCES template_sends (send_id) ON DELETE SET NULL,
    button_id           VARCHAR(100) NOT NULL,
    button_text         VARCHAR(100) NOT NULL,
    button_index        INTEGER,
    button_payload      TEXT,
    customer_phone      VARCHAR(50)  NOT NULL,
    contact_id          VARCHAR(50)  REFERENCES contacts (contact_id) ON DELETE SET NULL,
    conversation_id     VARCHAR(50)  REFERENCES conversations (conversation_id) ON DELETE SET NULL,
    waba_id             VARCHAR(100),
    phone_number_id     VARCHAR(50)  REFERENCES phone_numbers (id) ON DELETE SET NULL,
    user_id             VARCHAR(50)  NOT NULL REFERENCES users (user_id),
    message_id          VARCHAR(100),
    original_message_id VARCHAR(100),
    clicked_at          TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP,
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX button_clicks_template_id_idx ON button_clicks (template_id);
CREATE INDEX button_clicks_customer_phone_idx ON button_clicks (customer_phone);
CREATE INDEX button_clicks_template_button_idx ON button_clicks (template_id, button_id);
CREATE INDEX button_clicks_clicked_at_idx ON button_clicks (clicked_at);
CREATE INDEX button_clicks_user_id_idx ON button_clicks (user_id);
CREATE INDEX button_clicks_template_send_id_idx ON button_clicks (template_send_id);
CREATE INDEX button_clicks_contact_id_idx ON button_clicks (contact_id);
CREATE INDEX button_clicks_conversation_id_idx ON button_clicks (conversation_id);
CREATE INDEX button_clicks_phone_number_id_idx ON button_clicks (phone_number_id);
-- Meta redelivers webhooks: one click per inbound message id.
CREATE UNIQUE INDEX button_clicks_message_id_key ON button_clicks (message_id) WHERE message_id IS NOT NULL;

CREATE TABLE campaign_triggers (
    trigger_id        VARCHAR(50) PRIMARY KEY,
    campaign_id       VARCHAR(50) NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    trigger_type      VARCHAR(20) NOT NULL CHECK (trigger_type IN ('IMMEDIATE', 'SCHEDULED', 'EVENT')),
    scheduled_at      TIMESTAMPTZ,
    event_type        VARCHAR(30) CHECK (event_type IN ('NEW_EXTRACTION', 'LEAD_HOT', 'LEAD_WARM', 'TAG_ADDED', 'CONVERSATION_ENDED')),
    event_config      JSONB       NOT NULL DEFAULT '{}',
    is_active         BOOLEAN     NOT NULL DEFAULT true,
    last_triggered_at TIMESTAMPTZ,
    trigger_count     INTEGER     NOT NULL DEFAULT 0 CHECK (trigger_count >= 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT campaign_triggers_scheduled_has_time CHECK (trigger_type <> 'SCHEDULED' OR scheduled_at IS NOT NULL),
    CONSTRAINT campaign_triggers_event_has_type CHECK (trigger_type <> 'EVENT' OR event_type IS NOT NULL)
);
CREATE INDEX campaign_triggers_campaign_id_idx ON campaign_triggers (campaign_id);
CREATE INDEX campaign_triggers_active_event_idx ON campaign_triggers (event_type) WHERE is_active AND trigger_type = 'EVENT';

CREATE TABLE campaign_recipients (
    recipient_id     VARCHAR(50) PRIMARY KEY,
    campaign_id      VARCHAR(50) NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    contact_id       VARCHAR(50) NOT NULL REFERENCES contacts (contact_id),
    template_send_id VARCHAR(50) REFERENCES template_sends (send_id) ON DELETE SET NULL,
    status           VARCHAR(20) NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'QUEUED', 'SENT', 'DELIVERED', 'READ', 'FAILED', 'SKIPPED')),
    skip_reason      VARCHAR(50) CHECK (skip_reason IN ('OPTED_OUT', 'RATE_LIMITED', 'INVALID_PHONE', 'DUPLICATE', 'RECENTLY_CONTACTED')),
    error_message    TEXT,
    variable_values  JSONB       NOT NULL DEFAULT '{}',
    queued_at        TIMESTAMPTZ,
    sent_at          TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    read_at          TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT campaign_recipients_campaign_contact_key UNIQUE (campaign_id, contact_id),
    CONSTRAINT campaign_recipients_skip_reason_when_skipped CHECK ((status = 'SKIPPED') = (skip_reason IS NOT NULL))
);
CREATE INDEX campaign_recipients_campaign_status_idx ON campaign_recipients (campaign_id, status);
CREATE INDEX campaign_recipients_contact_id_idx ON campaign_recipients (contact_id);
CREATE INDEX campaign_recipients_template_send_id_idx ON campaign_recipients (template_send_id);

-- updated_at maintenance, on exactly the tables the reference lists.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'users', 'phone_numbers', 'agents', 'google_calendar_tokens', 'meetings', 'contacts',
        'templates', 'template_variables', 'template_sends', 'campaigns', 'campaign_triggers',
        'campaign_recipients'
    ] LOOP
        EXECUTE format(
            'CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()',
            t || '_set_updated_at', t
        );
    END LOOP;
END;
$$;
