-- Emails are unique case-insensitively (issue 6): `A@EXAMPLE.TEST` and `a@example.test` are
-- one mailbox, so they are one account. The expression index replaces the case-sensitive
-- constraint (it is stricter, so nothing the old one refused becomes possible). On a
-- database that already holds two spellings of one address this migration fails and names
-- them; a fresh database cannot hold any, because every account so far was provisioned
-- through the same `INSERT … ON CONFLICT DO NOTHING`, which the new index also guards.
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- Operators' credit grants carry an optional `Idempotency-Key` (1–255 visible ASCII): a
-- retried grant with the same key is applied once. The key is unique across all grants
-- (there is one operator credential), so reusing it for another tenant is refused as a
-- different request, never applied twice. `balance_after` is the balance the grant produced,
-- so a replay answers exactly what the first request answered.
ALTER TABLE credit_grants
    ADD COLUMN idempotency_key VARCHAR(255)
        CHECK (idempotency_key ~ '^[\x21-\x7e]{1,255}$'),
    ADD COLUMN balance_after   INTEGER CHECK (balance_after >= 0);
CREATE UNIQUE INDEX credit_grants_idempotency_key_key
    ON credit_grants (idempotency_key) WHERE idempotency_key IS NOT NULL;
