-- API keys, runtime usage plans, quota counters and daily usage.
-- Timestamps are Unix seconds (UTC). Keys are stored only as SHA-256 hashes.
CREATE TABLE plans (
    name TEXT PRIMARY KEY NOT NULL,
    rate REAL,
    burst INTEGER,
    quota_limit INTEGER,
    quota_period TEXT,
    description TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL,
    plan TEXT,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX api_keys_plan ON api_keys (plan);

CREATE TABLE quota_usage (
    key_id TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (key_id, period_start)
);

CREATE TABLE daily_usage (
    key_id TEXT NOT NULL,
    day TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
);
