-- The opt-out triggers (V15) fired on every update of a contact, and every message sent or
-- received updates its counters. They only need the columns they read: the identity
-- (phone, platform, customer_id) and, after the write, `opted_out`.
DROP TRIGGER contacts_arrive_opted_out ON contacts;
DROP TRIGGER contacts_keep_opt_outs ON contacts;
CREATE TRIGGER contacts_arrive_opted_out
    BEFORE INSERT OR UPDATE OF phone, platform, customer_id ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_arrive_opted_out();
CREATE TRIGGER contacts_keep_opt_outs
    AFTER INSERT OR UPDATE OF opted_out, phone, platform, customer_id ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_keep_opt_outs();
