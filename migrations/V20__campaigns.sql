-- Campaigns: what the fan-out and the send worker need beyond the reference's columns
-- (docs/architecture.md, "Campaigns").

-- 1. A campaign's values and options. Variable values map each template variable to a
--    literal or a contact field; quiet hours are local times in the campaign's time zone
--    (the tenant's when NULL); the frequency cap and send rate override the defaults.
ALTER TABLE campaigns
    ADD COLUMN variable_values        JSONB       NOT NULL DEFAULT '{}',
    ADD COLUMN time_zone              VARCHAR(64),
    ADD COLUMN quiet_hours_start      TIME,
    ADD COLUMN quiet_hours_end        TIME,
    ADD COLUMN frequency_cap_hours    INTEGER     CHECK (frequency_cap_hours BETWEEN 0 AND 720),
    ADD COLUMN send_rate_per_second   INTEGER     CHECK (send_rate_per_second BETWEEN 1 AND 1000),
    ADD COLUMN skipped_count          INTEGER     NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
    -- Set in the transaction that wrote every recipient row: a redelivered start job that
    -- finds it set only fans out what is left.
    ADD COLUMN recipients_resolved_at TIMESTAMPTZ,
    ADD CONSTRAINT campaigns_quiet_hours_pair
        CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL));

-- 2. Recipients: the phone sent to, Meta's code of a failure, the claim that makes a send
--    happen once, and when a deferred recipient may go (quiet hours, 131049).
ALTER TABLE campaign_recipients
    ADD COLUMN phone            VARCHAR(20),
    ADD COLUMN error_code       VARCHAR(50),
    ADD COLUMN claimed_at       TIMESTAMPTZ,
    ADD COLUMN not_before       TIMESTAMPTZ,
    ADD COLUMN attempts         INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN first_deferred_at TIMESTAMPTZ;
ALTER TABLE campaign_recipients DROP CONSTRAINT campaign_recipients_skip_reason_check;
ALTER TABLE campaign_recipients ADD CONSTRAINT campaign_recipients_skip_reason_check
    CHECK (skip_reason IN ('OPTED_OUT', 'RATE_LIMITED', 'INVALID_PHONE', 'DUPLICATE',
                           'RECENTLY_CONTACTED', 'CANCELLED', 'MARKETING_OPTED_OUT'));
-- The fan-out reads a campaign's due PENDING recipients; the sweep its stale QUEUED ones.
CREATE INDEX campaign_recipients_fan_out_idx
    ON campaign_recipients (campaign_id, recipient_id) WHERE status IN ('PENDING', 'QUEUED');

-- 3. Live counters, sharded: a running campaign's status webhooks (~3,000/s at 1,000 sends/s)
--    would serialise on one campaign row. Each recipient counts in one of 16 rows (by a hash
--    of its id), moved in the transaction of the recipient's own transition; the API sums
--    them. campaigns.sent_count / delivered_count / read_count / failed_count are no longer
--    written.
CREATE TABLE campaign_counters (
    campaign_id VARCHAR(50) NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    shard       SMALLINT    NOT NULL CHECK (shard BETWEEN 0 AND 15),
    sent        INTEGER     NOT NULL DEFAULT 0,
    delivered   INTEGER     NOT NULL DEFAULT 0,
    read        INTEGER     NOT NULL DEFAULT 0,
    failed      INTEGER     NOT NULL DEFAULT 0,
    skipped     INTEGER     NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, shard)
);

-- 4. Throughput per sending number: Meta's cap (80 messages/s by default, up to 1,000 after
--    Meta's upgrade, 20 for numbers shared with the WhatsApp Business app), and the shared
--    limiter every worker claims its send slots from (virtual scheduling: each send takes
--    the next free slot, 1/rate apart; `slowed_until` halves the rate after a 130429).
ALTER TABLE phone_numbers
    ADD COLUMN messages_per_second INTEGER NOT NULL DEFAULT 80
        CHECK (messages_per_second BETWEEN 1 AND 1000);
CREATE TABLE send_throttles (
    phone_number_id VARCHAR(50) PRIMARY KEY REFERENCES phone_numbers (id) ON DELETE CASCADE,
    next_slot_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    slowed_until    TIMESTAMPTZ
);

-- 5. Meta's 131050: the customer stopped marketing messages. Marketing campaigns skip them
--    (MARKETING_OPTED_OUT); other messages still go.
ALTER TABLE contacts ADD COLUMN marketing_opted_out_at TIMESTAMPTZ;
