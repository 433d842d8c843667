-- API keys, runtime usage plans, quota counters and daily usage.
-- Timestamps are Unix seconds (UTC). Keys are stored only as SHA-256 hashes.
CREATE TABLE plans (
    name TEXT PRIMARY KEY,
    rate DOUBLE PRECISION,
    burst BIGINT,
    quota_limit BIGINT,
    quota_period TEXT,
    description TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    plan TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX api_keys_plan ON api_keys (plan);

CREATE TABLE quota_usage (
    key_id TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (key_id, period_start)
);

CREATE TABLE daily_usage (
    key_id TEXT NOT NULL,
    day TEXT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);
