-- POST /templates/{id}/send takes an Idempotency-Key: a retried request (a timeout, a
-- double click) answers the first send instead of messaging the customer again.
ALTER TABLE template_sends ADD COLUMN idempotency_key VARCHAR(255);
CREATE UNIQUE INDEX template_sends_idempotency_key
    ON template_sends (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
