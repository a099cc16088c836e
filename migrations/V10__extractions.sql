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

-- The end of a conversation's quiet period has been handled (CONVERSATION_ENDED recorded,
-- the final extraction asked for) at this time. A later message starts a new quiet period:
-- the sweep handles conversations whose `last_message_at` is older than the quiet time and
-- newer than `quiet_handled_at`, once each.
ALTER TABLE conversations ADD COLUMN quiet_handled_at TIMESTAMPTZ;

-- Conversations that were already quiet when this migration ran are not announced as
-- ended (a first sweep would otherwise fire an event for every old conversation at once).
UPDATE conversations SET quiet_handled_at = CURRENT_TIMESTAMP
 WHERE last_message_at < CURRENT_TIMESTAMP - INTERVAL '30 minutes';

-- When the sweep last asked for an extraction of this conversation because the customer
-- wrote enough new messages. It asks again only once that request was served (a later
-- `last_extraction_at`) or looks lost (older than the retry interval), so a conversation the
-- model keeps failing on is not sent to OpenAI on every sweep.
ALTER TABLE conversations ADD COLUMN extraction_requested_at TIMESTAMPTZ;

-- The sweep scans active conversations by their last activity.
CREATE INDEX conversations_active_last_message_idx
    ON conversations (last_message_at) WHERE is_active;
