CREATE TABLE users (
    telegram_id BIGINT PRIMARY KEY NOT NULL,
    plan TEXT NOT NULL DEFAULT 'trial',
    subscription_status TEXT NOT NULL DEFAULT 'none',
    trial_ends_at BIGINT NOT NULL,
    trial_reminder_sent_at BIGINT,
    current_agent TEXT,
    next_new BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY NOT NULL,
    owner BIGINT NOT NULL REFERENCES users (telegram_id),
    name TEXT NOT NULL,
    hostname TEXT NOT NULL DEFAULT '',
    token_hash TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX agents_owner_name_active ON agents (owner, name) WHERE status = 'active';
CREATE INDEX agents_owner ON agents (owner);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    chat_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    prompt_preview TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    exit_code BIGINT,
    duration_ms BIGINT
);
CREATE INDEX sessions_agent_status ON sessions (agent_id, status);

CREATE TABLE pairing_codes (
    code TEXT PRIMARY KEY NOT NULL,
    pairing_id TEXT NOT NULL UNIQUE,
    project_name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by BIGINT,
    agent_id TEXT
);
CREATE INDEX pairing_codes_expires ON pairing_codes (expires_at);

CREATE TABLE pair_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    telegram_id BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL
);
CREATE INDEX pair_attempts_user ON pair_attempts (telegram_id, attempted_at);

CREATE TABLE processed_updates (
    update_id BIGINT PRIMARY KEY NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX processed_updates_received ON processed_updates (received_at);
