-- Meetings (issue 11): a tenant's Google Calendar connection and the Google Meet meetings the
-- AI agent books from a conversation. Departures from the reference are recorded in
-- docs/architecture.md ("Schema decisions").

-- The tenant's IANA time zone (validated in Rust with chrono-tz): times a customer gives
-- without an offset are read in it, and free slots are offered in it.
ALTER TABLE users
    ADD COLUMN IF NOT EXISTS time_zone VARCHAR(64) NOT NULL DEFAULT 'UTC';

-- The connected Google account and whether its refresh token still works: `invalid_grant`
-- (revoked, expired, password changed) marks it `reconnect_needed` for the dashboard.
ALTER TABLE google_calendar_tokens
    ADD COLUMN google_email VARCHAR(255),
    ADD COLUMN health VARCHAR(20) NOT NULL DEFAULT 'ok'
        CHECK (health IN ('ok', 'reconnect_needed'));

-- One row per consent started: the OAuth `state` (signed, bound to the tenant) names it,
-- the callback deletes it (single use: a replayed state finds nothing), and it keeps the
-- PKCE verifier on our side only. Rows older than ten minutes are refused and swept.
CREATE TABLE google_oauth_states (
    state_id      VARCHAR(64) PRIMARY KEY,
    user_id       VARCHAR(50) NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    pkce_verifier TEXT        NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX google_oauth_states_user_id_idx ON google_oauth_states (user_id);

-- `booking`: our row is written before Google is called (the source of truth for
-- idempotency); it becomes `scheduled` once Google has the event.
ALTER TABLE meetings DROP CONSTRAINT meetings_status_check;
ALTER TABLE meetings
    ADD CONSTRAINT meetings_status_check
        CHECK (status IN ('booking', 'scheduled', 'cancelled', 'completed')),
    ADD COLUMN customer_phone VARCHAR(256),
    ADD COLUMN notes          TEXT;

-- The deterministic client event id: one event per (conversation, start) booking.
CREATE UNIQUE INDEX meetings_user_event_key ON meetings (user_id, google_event_id);
-- The completed sweep reads scheduled meetings by time.
CREATE INDEX meetings_scheduled_time_idx ON meetings (meeting_time) WHERE status = 'scheduled';
