-- A tenant's working hours: the booking tools offer slots and accept meetings only inside
-- them, read in users.time_zone. All three NULL: not configured (slots 09:00-18:00 any day).
ALTER TABLE users
    ADD COLUMN working_hours_start TIME,
    ADD COLUMN working_hours_end TIME,
    ADD COLUMN working_days SMALLINT[];

ALTER TABLE users ADD CONSTRAINT users_working_hours_check CHECK (
    (working_hours_start IS NULL AND working_hours_end IS NULL AND working_days IS NULL)
    OR (working_hours_start IS NOT NULL AND working_hours_end IS NOT NULL
        AND working_days IS NOT NULL
        AND working_hours_start < working_hours_end
        AND cardinality(working_days) BETWEEN 1 AND 7
        AND working_days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::SMALLINT[])
);
