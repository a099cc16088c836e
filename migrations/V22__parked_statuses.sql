-- A status webhook can arrive before its send is recorded: the send worker records a batch's
-- wamids when the batch's transaction commits, after its last send, and Meta may report
-- `sent` or `delivered` sooner (the simulator does, after 50 ms). A status for a wamid no
-- table knows yet is parked here, with the channel that reported it, and applied when the
-- send is recorded (the send worker, after its commit) or by the campaign sweep once the
-- wamid is known; the sweep forgets what stays unknown for a day.
CREATE TABLE parked_statuses (
    parked_id           BIGSERIAL    PRIMARY KEY,
    platform_message_id VARCHAR(512) NOT NULL,
    user_id             VARCHAR(50)  NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    phone_number_id     VARCHAR(50)  NOT NULL REFERENCES phone_numbers (id) ON DELETE CASCADE,
    status              TEXT         NOT NULL
        CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    occurred_at         TIMESTAMPTZ  NOT NULL,
    -- Meta's errors of a `failed` status: [{"code", "title", "details"}].
    errors              JSONB        NOT NULL DEFAULT '[]',
    parked_at           TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX parked_statuses_platform_message_id_idx ON parked_statuses (platform_message_id);
CREATE INDEX parked_statuses_parked_at_idx ON parked_statuses (parked_at);
-- A tenant's or a channel's deletion cascades here.
CREATE INDEX parked_statuses_user_id_idx ON parked_statuses (user_id);
CREATE INDEX parked_statuses_phone_number_id_idx ON parked_statuses (phone_number_id);
