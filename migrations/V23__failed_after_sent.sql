-- A recipient Meta accepted and then reported `failed` counts in `sent` and in `failed`:
-- the failure rate's denominator (the recipients a send was attempted for) is
-- sent + failed - failed_after_sent, so that number is counted too.
ALTER TABLE campaign_counters ADD COLUMN failed_after_sent INT NOT NULL DEFAULT 0;
INSERT INTO campaign_counters AS k (campaign_id, shard, failed_after_sent)
SELECT campaign_id, 0, count(*) FROM campaign_recipients
WHERE status = 'FAILED' AND sent_at IS NOT NULL
GROUP BY campaign_id
ON CONFLICT (campaign_id, shard) DO UPDATE
SET failed_after_sent = k.failed_after_sent + EXCLUDED.failed_after_sent;
