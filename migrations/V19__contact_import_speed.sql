-- Speed of the CSV import (docs/benchmarks.md, "Contacts"): 50,000 rows in at most 2 s.
-- Every index, foreign key and row trigger below was paid once per imported contact or once
-- per TAG_ADDED event (two per contact in the benchmark).

-- 1. domain_events is an outbox and log (rows are added, then only marked published): it keeps
--    no foreign keys. Each one cost a lookup per event (the user and the contact: ~0.5 s each
--    for an import's 100,000 tag events; the conversation, NULL for tag events, still queued
--    a no-op check per row).
--    Nothing they protect can happen: no code deletes users, contacts (an erasure keeps the
--    row), or conversations (archived, never deleted), and every event is written in the
--    transaction of the change it reports, with the ids that change just wrote or read.
--    The indexes stay for GET /events' filters.
ALTER TABLE domain_events
    DROP CONSTRAINT domain_events_user_id_fkey,
    DROP CONSTRAINT domain_events_contact_id_fkey,
    DROP CONSTRAINT domain_events_conversation_id_fkey;

-- 2. contacts: fewer index entries per imported row.
--    a. The foreign keys to extractions and conversations are ON DELETE SET NULL: their
--       lookups only ask for non-null values, and an imported contact has neither.
DROP INDEX contacts_extraction_id_idx;
CREATE INDEX contacts_extraction_id_idx ON contacts (extraction_id)
    WHERE extraction_id IS NOT NULL;
DROP INDEX contacts_conversation_id_idx;
CREATE INDEX contacts_conversation_id_idx ON contacts (conversation_id)
    WHERE conversation_id IS NOT NULL;
--    b. (user_id, contact_id) serves no query: a contact is read by its primary key (with
--       the tenant as a filter), the list by contacts_user_active_list_idx (V16), and a
--       tenant's rows (the inactive list, the foreign key to users) by the phone key below.
DROP INDEX contacts_user_id_idx;
--    c. One index for the phone's uniqueness and the phone-prefix search instead of two:
--       text_pattern_ops compares bytes, and its equality is text equality, so uniqueness is
--       unchanged, `ON CONFLICT (user_id, phone)` still infers it, and `phone LIKE '+1415%'`
--       uses it. It keeps the constraint's name, which the code maps to "phone taken".
ALTER TABLE contacts DROP CONSTRAINT contacts_user_phone_key;
DROP INDEX contacts_user_phone_prefix_idx;
CREATE UNIQUE INDEX contacts_user_phone_key ON contacts (user_id, phone text_pattern_ops);

-- 3. The AFTER trigger that keeps suppressions (V15, V18) only acts on an opted-out row when
--    inserting; with WHEN it is not even queued for the others (every imported contact).
--    Updates keep their column list (V18).
DROP TRIGGER contacts_keep_opt_outs ON contacts;
CREATE TRIGGER contacts_keep_opt_outs_on_insert
    AFTER INSERT ON contacts
    FOR EACH ROW WHEN (NEW.opted_out) EXECUTE FUNCTION contacts_keep_opt_outs();
CREATE TRIGGER contacts_keep_opt_outs
    AFTER UPDATE OF opted_out, phone, platform, customer_id ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_keep_opt_outs();

-- 4. The BEFORE trigger that makes a contact arrive opted out (V15, V16, V18) ran once per
--    imported row: a PL/pgSQL call and an index probe each. Imported rows are checked once
--    per statement instead, by an AFTER INSERT statement trigger over the rows the statement
--    inserted (a transition table): one probe per tenant when it has no suppression, else one
--    join. Every other insert, and every change of an identity, keeps the row trigger, so a
--    contact created through the API answers opted out at once. An imported row is opted out
--    before its statement ends (in the same transaction), so no one sees it otherwise.
DROP TRIGGER contacts_arrive_opted_out ON contacts;
CREATE TRIGGER contacts_arrive_opted_out_on_insert
    BEFORE INSERT ON contacts
    FOR EACH ROW WHEN (NEW.source <> 'IMPORT') EXECUTE FUNCTION contacts_arrive_opted_out();
CREATE TRIGGER contacts_arrive_opted_out
    BEFORE UPDATE OF phone, platform, customer_id ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_arrive_opted_out();

CREATE FUNCTION contacts_imported_arrive_opted_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM (SELECT DISTINCT user_id FROM arrived WHERE source = 'IMPORT') AS t
         WHERE EXISTS (SELECT 1 FROM opt_out_suppressions s WHERE s.user_id = t.user_id)) THEN
        RETURN NULL;
    END IF;
    UPDATE contacts c SET opted_out = true, opted_out_at = hit.since
      FROM (SELECT a.contact_id, min(s.opted_out_at) AS since
              FROM arrived a
              JOIN opt_out_suppressions s
                ON s.user_id = a.user_id
               AND s.customer_hash = ANY (contact_identity_hashes(a.phone, a.platform, a.customer_id))
             WHERE a.source = 'IMPORT' AND NOT a.opted_out
             GROUP BY a.contact_id) AS hit
     WHERE c.contact_id = hit.contact_id;
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_imported_arrive_opted_out
    AFTER INSERT ON contacts REFERENCING NEW TABLE AS arrived
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_imported_arrive_opted_out();

-- 5. An import's TAG_ADDED events carry their contacts in a list: one event per tag and
--    up to 200 contacts that gained it (`contact_ids`, `contact_id` NULL), instead of one row
--    per contact and tag (100,000 rows for the benchmark's file, each with four index
--    entries, ~0.9 s, and as many messages for the publisher). Every other event keeps one
--    `contact_id` (or none). 200 keeps a page of GET /events (at most 200 events) and an
--    events-queue message (256 KB) small. The GIN index serves GET /events?contact_id=.
--    Without fastupdate each import pays its own entries (~0.2 s per 100,000): with a pending
--    list the import that fills it merged two imports' entries (~0.5 s more, every other
--    import of 50,000 rows).
ALTER TABLE domain_events
    ADD COLUMN contact_ids TEXT[],
    ADD CONSTRAINT domain_events_contact_or_contacts CHECK (contact_id IS NULL OR contact_ids IS NULL),
    ADD CONSTRAINT domain_events_contact_ids_count CHECK (cardinality(contact_ids) BETWEEN 1 AND 200);
CREATE INDEX domain_events_contact_ids_idx ON domain_events USING GIN (contact_ids)
    WITH (fastupdate = off);
