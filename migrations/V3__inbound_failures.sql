-- Inbox rows that fail for good (issue: hardening the inbound path). A row that cannot be
-- stored (store_failed) or whose AI reply fails permanently (ai_failed, e.g. an unknown
-- prompt id) is finished with its reason instead of being retried into the DLQ, so it never
-- blocks the customer's later messages. A refunded credit is marked so it is refunded once.
ALTER TABLE inbound_messages
    DROP CONSTRAINT inbound_messages_outcome_check,
    ADD CONSTRAINT inbound_messages_outcome_check CHECK (outcome IN (
        'replied', 'no_agent', 'no_credits', 'human_owner', 'opted_out', 'opted_in',
        'handed_off', 'send_failed', 'no_reply', 'store_failed', 'ai_failed')),
    ADD COLUMN failure_reason     TEXT,
    ADD COLUMN credit_refunded_at TIMESTAMPTZ;
