-- The send worker takes a batch's send slots from a number's limiter in one call: `count`
-- slots `step_ms` apart from `first_slot`, moving `next_slot_at` past them under the row's
-- lock. One round trip per batch instead of one per send, and the same virtual schedule
-- every worker shares (db::campaigns::reserve_slots).
--
-- `rate` is the sends per second the caller may use (already under the number's cap); a
-- number slowed after a 130429 takes slots twice as far apart until `slowed_until`.
-- Nothing is reserved (`granted = 0`) when the first free slot is more than `max_ahead_ms`
-- away; `first_slot` then says when it is.
CREATE FUNCTION reserve_send_slots(
    phone text, rate float8, wanted int, max_ahead_ms float8,
    OUT first_slot timestamptz, OUT step_ms float8, OUT granted int)
LANGUAGE plpgsql AS $$
DECLARE
    now_at timestamptz := clock_timestamp();
    next_at timestamptz;
    slowed timestamptz;
BEGIN
    SELECT next_slot_at, slowed_until INTO next_at, slowed
    FROM send_throttles WHERE phone_number_id = phone FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO send_throttles (phone_number_id) VALUES (phone)
        ON CONFLICT (phone_number_id) DO NOTHING;
        SELECT next_slot_at, slowed_until INTO next_at, slowed
        FROM send_throttles WHERE phone_number_id = phone FOR UPDATE;
    END IF;
    step_ms := 1000.0 / greatest(rate, 0.001)
               * CASE WHEN slowed > now_at THEN 2 ELSE 1 END;
    first_slot := greatest(next_at, now_at);
    IF first_slot > now_at + make_interval(secs => max_ahead_ms / 1000) THEN
        granted := 0;
        RETURN;
    END IF;
    granted := greatest(wanted, 0);
    UPDATE send_throttles
    SET next_slot_at = first_slot + make_interval(secs => granted * step_ms / 1000)
    WHERE phone_number_id = phone;
END $$;
