-- Extractions (issue 9): lead scoring runs as its own job. See docs/architecture.md
-- "Extractions: scoring a conversation".

-- One extraction per message count of a conversation: a redelivered job, or two jobs that
-- saw the same messages, can never store the same count twice. V1 already keeps at most
-- one `is_latest` row per conversation (extractions_one_latest_per_conversation).
CREATE UNIQUE INDEX extractions_conversation_message_count_key
    ON extractions (conversation_id, message_count_at_extraction);

-- The list route filters the tenant's latest extractions by status and score, newest
-- first; the keyset is (extracted_at, extraction_id).
CREATE INDEX extractions_user_latest_idx
    ON extractions (user_id, extracted_at DESC, extraction_id DESC) WHERE is_latest;

-- When the extraction sweep asked for the final extraction of the conversation's quiet
-- period (the conversation had no message for the quiet time, `CONVERSATION_ENDED_AFTER_SECS`,
-- the same setting the CONVERSATION_ENDED sweep of V9 uses). A later message starts a new
-- quiet period: the sweep handles conversations whose `last_message_at` is older than the
-- quiet time and newer than `quiet_extraction_at`, once each. Its own marker rather than
-- V9's `ended_event_for`: the two sweeps run independently, and neither may hide a
-- conversation from the other.
ALTER TABLE conversations ADD COLUMN quiet_extraction_at TIMESTAMPTZ;

-- Conversations that were already quiet when this migration ran are not extracted by the
-- first sweep (it would otherwise ask OpenAI about every old conversation at once).
UPDATE conversations SET quiet_extraction_at = CURRENT_TIMESTAMP
 WHERE last_message_at < CURRENT_TIMESTAMP - INTERVAL '30 minutes';

-- When the sweep last asked for an extraction of this conversation because the customer
-- wrote enough new messages. It asks again only once that request was served (a later
-- `last_extraction_at`) or looks lost (older than the retry interval), so a conversation the
-- model keeps failing on is not sent to OpenAI on every sweep.
ALTER TABLE conversations ADD COLUMN extraction_requested_at TIMESTAMPTZ;

-- The sweep scans active conversations by their last activity.
CREATE INDEX conversations_active_last_message_idx
    ON conversations (last_message_at) WHERE is_active;
