-- The send worker takes a batch's send slots from a number's limiter in one call
-- (db::campaigns::reserve_slots): `granted` slots `step_ms` apart from `first_slot`, moving
-- `next_slot_at` past them under the row's lock. One round trip per batch instead of one
-- per send, on the same virtual schedule every worker shares.
--
-- Meta's 130429 adapts the rate down multiplicatively and it recovers linearly: each
-- 130429 halves the number's `rate_factor` (from its current effective value, down to
-- 2 %), and the effective factor climbs back by 1 per 120 s since the last one
-- (`slowed_at`): from half to full in a minute, with no cliff. `slowed_until` keeps
-- saying "slowed in the last minute" for operators.
ALTER TABLE send_throttles
    ADD COLUMN rate_factor FLOAT8 NOT NULL DEFAULT 1 CHECK (rate_factor > 0 AND rate_factor <= 1),
    ADD COLUMN slowed_at   TIMESTAMPTZ;

-- The share of its rate a number may use at `at`.
CREATE FUNCTION send_rate_factor(factor float8, slowed timestamptz, at timestamptz)
RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN slowed IS NULL THEN 1.0
                ELSE least(1.0, factor + greatest(0.0, extract(epoch FROM at - slowed)) / 120.0)
           END
$$;

-- `rate` is the sends per second the caller may use (already under the number's cap).
-- Nothing is reserved (`granted = 0`) when the first free slot is more than `max_ahead_ms`
-- away; `first_slot` then says when it is.
CREATE FUNCTION reserve_send_slots(
    phone text, rate float8, wanted int, max_ahead_ms float8,
    OUT first_slot timestamptz, OUT step_ms float8, OUT granted int)
LANGUAGE plpgsql AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    row send_throttles%ROWTYPE;
BEGIN
    SELECT * INTO row FROM send_throttles WHERE phone_number_id = phone FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO send_throttles (phone_number_id) VALUES (phone)
        ON CONFLICT (phone_number_id) DO NOTHING;
        SELECT * INTO row FROM send_throttles WHERE phone_number_id = phone FOR UPDATE;
    END IF;
    step_ms := 1000.0
        / greatest(rate * send_rate_factor(row.rate_factor, row.slowed_at, now_at), 0.001);
    first_slot := greatest(row.next_slot_at, now_at);
    IF first_slot > now_at + make_interval(secs => max_ahead_ms / 1000) THEN
        granted := 0;
        RETURN;
    END IF;
    granted := greatest(wanted, 0);
    UPDATE send_throttles
    SET next_slot_at = first_slot + make_interval(secs => granted * step_ms / 1000)
    WHERE phone_number_id = phone;
END $$;

-- The fan-out writes the eligible recipients QUEUED in the resolution's transaction and
-- publishes their jobs after it commits (no second pass over 100,000 rows to mark them);
-- `fanned_out_at` says the publishing finished. A start job redelivered before it (the
-- first one died half-way) publishes the unclaimed QUEUED ones again: a second job for a
-- recipient claims nothing, so nobody is sent twice.
ALTER TABLE campaigns ADD COLUMN fanned_out_at TIMESTAMPTZ;
UPDATE campaigns SET fanned_out_at = recipients_resolved_at WHERE recipients_resolved_at IS NOT NULL;
