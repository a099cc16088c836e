-- An opt-out outlives the contact row that carried it. A customer who said STOP must not be
-- messaged again because the contact was erased, or its phone edited, or re-imported: the
-- identities of every opted-out contact are kept here, hashed (an erased contact leaves no
-- readable phone behind), and a contact that arrives with a suppressed identity arrives
-- opted out. Triggers keep it, so every path (API, CSV import, extraction, STOP keyword)
-- obeys the same rule; only an opt-in (START, or POST /contacts/{id}/opt-in) lifts it.
CREATE TABLE opt_out_suppressions (
    user_id       VARCHAR(50) NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    customer_hash BYTEA       NOT NULL,
    opted_out_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (user_id, customer_hash)
);

-- SHA-256 of each identity a contact holds: 'phone:<E.164>' and 'channel:<platform>:<id>'.
CREATE FUNCTION contact_identity_hashes(phone TEXT, platform TEXT, customer_id TEXT)
RETURNS BYTEA[] LANGUAGE sql IMMUTABLE AS $$
    SELECT array_remove(ARRAY[
        CASE WHEN phone IS NOT NULL THEN sha256(convert_to('phone:' || phone, 'UTF8')) END,
        CASE WHEN customer_id IS NOT NULL
             THEN sha256(convert_to('channel:' || platform || ':' || customer_id, 'UTF8')) END
    ], NULL)
$$;

-- Before a contact is written with a new identity: a suppressed one arrives opted out.
CREATE FUNCTION contacts_arrive_opted_out() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    since TIMESTAMPTZ;
BEGIN
    IF NOT NEW.opted_out AND (TG_OP = 'INSERT'
            OR NEW.phone IS DISTINCT FROM OLD.phone
            OR NEW.customer_id IS DISTINCT FROM OLD.customer_id
            OR NEW.platform IS DISTINCT FROM OLD.platform) THEN
        SELECT min(s.opted_out_at) INTO since FROM opt_out_suppressions s
         WHERE s.user_id = NEW.user_id
           AND s.customer_hash = ANY (contact_identity_hashes(NEW.phone, NEW.platform, NEW.customer_id));
        IF since IS NOT NULL THEN
            NEW.opted_out := true;
            NEW.opted_out_at := since;
        END IF;
    END IF;
    RETURN NEW;
END $$;

-- After: an opted-out contact's identities are suppressed; an opt-in lifts its own.
CREATE FUNCTION contacts_keep_opt_outs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.opted_out THEN
        INSERT INTO opt_out_suppressions (user_id, customer_hash, opted_out_at)
        SELECT NEW.user_id, h, COALESCE(NEW.opted_out_at, CURRENT_TIMESTAMP)
          FROM unnest(contact_identity_hashes(NEW.phone, NEW.platform, NEW.customer_id)) AS h
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'UPDATE' AND OLD.opted_out THEN
        DELETE FROM opt_out_suppressions
         WHERE user_id = NEW.user_id
           AND customer_hash = ANY (contact_identity_hashes(NEW.phone, NEW.platform, NEW.customer_id));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_arrive_opted_out BEFORE INSERT OR UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_arrive_opted_out();
CREATE TRIGGER contacts_keep_opt_outs AFTER INSERT OR UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_keep_opt_outs();

INSERT INTO opt_out_suppressions (user_id, customer_hash, opted_out_at)
SELECT c.user_id, h, COALESCE(c.opted_out_at, CURRENT_TIMESTAMP)
  FROM contacts c, unnest(contact_identity_hashes(c.phone, c.platform, c.customer_id)) AS h
 WHERE c.opted_out
ON CONFLICT DO NOTHING;
