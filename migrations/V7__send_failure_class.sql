-- The class of a message's last failed send, next to its `error_code`: `retryable` (the
-- message stays `pending` and is sent again by whoever owns the retry) or `permanent`
-- (the message is `failed`). Written by `shared::outbound::send_and_record` for the AI's
-- and a person's replies alike; cleared when the message is sent.
ALTER TABLE messages
    ADD COLUMN send_failure VARCHAR(10) CHECK (send_failure IN ('retryable', 'permanent'));
