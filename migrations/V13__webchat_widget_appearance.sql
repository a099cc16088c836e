-- The embeddable webchat widget (issue 12): how a widget looks, set per channel through
-- POST/PATCH /phone-numbers and read by the widget at GET /webchat/{widget_key}/config.
-- See docs/architecture.md "The website chat" and "Schema decisions". NULL on a webchat
-- channel means the widget's default (the channel's display name or "Chat with us", no
-- greeting, the default colour); the columns are NULL on every other platform (CHECK).
ALTER TABLE phone_numbers
    ADD COLUMN webchat_title VARCHAR(60),
    ADD COLUMN webchat_greeting VARCHAR(500),
    ADD COLUMN webchat_color VARCHAR(7) CHECK (webchat_color ~ '^#[0-9a-f]{6}$'),
    ADD CONSTRAINT phone_numbers_webchat_appearance_only_webchat CHECK (
        platform = 'webchat'
        OR (webchat_title IS NULL AND webchat_greeting IS NULL AND webchat_color IS NULL));
