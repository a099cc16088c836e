-- WhatsApp templates (issue 8): authoring, submission, approval sync, sends and clicks.
-- See docs/architecture.md "Templates" and "Schema decisions".

-- Meta allows one template name in many languages (each its own template with its own id);
-- the reference's UNIQUE (phone_number_id, name) allowed only one language per name.
ALTER TABLE templates DROP CONSTRAINT templates_phone_number_name_key;
ALTER TABLE templates
    ADD CONSTRAINT templates_phone_number_name_language_key UNIQUE (phone_number_id, name, language);

-- How placeholders are written: `{{1}}` (positional) or `{{first_name}}` (named).
ALTER TABLE templates
    ADD COLUMN parameter_format VARCHAR(20) NOT NULL DEFAULT 'positional'
        CHECK (parameter_format IN ('positional', 'named')),
    -- Meta's own last event (APPROVED, PAUSED, FLAGGED, IN_APPEAL, LIMIT_EXCEEDED, an event
    -- not known yet...), kept verbatim next to the six-value `status` it maps onto.
    ADD COLUMN meta_status              VARCHAR(40),
    -- The details of that event (reason, rejection_info, other_info, disable_info...).
    ADD COLUMN meta_status_details      JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN meta_status_at           TIMESTAMPTZ,
    -- message_template_quality_update: GREEN, YELLOW, RED, UNKNOWN.
    ADD COLUMN quality_score            VARCHAR(20),
    ADD COLUMN quality_updated_at       TIMESTAMPTZ,
    -- template_category_update: the last notice or change as Meta sent it.
    ADD COLUMN category_update          JSONB,
    ADD COLUMN category_updated_at      TIMESTAMPTZ,
    -- Meta's error of the last refused submission (code, subcode, message), or NULL.
    ADD COLUMN submission_error         JSONB;

-- The webhook finds a template by Meta's id within the channel's WABA, never across them.
DROP INDEX templates_meta_template_id_idx;
CREATE UNIQUE INDEX templates_waba_meta_template_id_key
    ON templates (waba_id, meta_template_id) WHERE meta_template_id IS NOT NULL;
CREATE INDEX templates_meta_template_id_idx ON templates (meta_template_id);
CREATE INDEX templates_phone_number_id_idx ON templates (phone_number_id);

-- Header and body placeholders both number from {{1}}, and each URL button's suffix is its
-- own variable: a position is unique within its component, not within the template.
ALTER TABLE template_variables DROP CONSTRAINT template_variables_template_position_key;
ALTER TABLE template_variables
    ADD CONSTRAINT template_variables_template_component_position_key
        UNIQUE (template_id, component_type, position);

-- Authentication templates carry Meta's one-time-password button.
ALTER TABLE template_buttons DROP CONSTRAINT template_buttons_button_type_check;
ALTER TABLE template_buttons
    ADD CONSTRAINT template_buttons_button_type_check
        CHECK (button_type IN ('QUICK_REPLY', 'URL', 'PHONE_NUMBER', 'COPY_CODE', 'OTP'));

-- A template send lands in the customer's conversation as an agent-side message.
ALTER TABLE messages DROP CONSTRAINT messages_author_check;
ALTER TABLE messages
    ADD CONSTRAINT messages_author_check CHECK (author IN ('customer', 'ai', 'human', 'template'));

-- Which message of the conversation a send became, and the channel it went out on.
ALTER TABLE template_sends
    ADD COLUMN message_id      VARCHAR(100) REFERENCES messages (message_id) ON DELETE SET NULL,
    ADD COLUMN phone_number_id VARCHAR(50)  REFERENCES phone_numbers (id) ON DELETE SET NULL,
    ADD COLUMN user_id         VARCHAR(50)  REFERENCES users (user_id);
CREATE INDEX template_sends_message_id_idx ON template_sends (message_id);
CREATE INDEX template_sends_phone_number_id_idx ON template_sends (phone_number_id);
CREATE INDEX template_sends_user_id_idx ON template_sends (user_id);

-- unique_clicks counts customers: a button's first click by a customer is the unique one.
CREATE INDEX button_clicks_button_customer_idx ON button_clicks (button_id, customer_phone);
