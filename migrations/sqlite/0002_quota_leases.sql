-- Quota counters are taken in blocks (leases) by each node: `last_grant` is
-- how many requests the latest block granted, returned by the same
-- statement that takes it.
ALTER TABLE quota_usage ADD COLUMN last_grant BIGINT NOT NULL DEFAULT 0;
