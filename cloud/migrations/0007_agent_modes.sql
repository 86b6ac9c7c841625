-- /mode: the mode chosen on the phone for each agent (plan, ask, edits,
-- auto), sent with every prompt: the daemon may run it stricter. No row:
-- none chosen, the computer's approval policy decides.
CREATE TABLE agent_modes (
    agent_id TEXT PRIMARY KEY NOT NULL REFERENCES agents (id),
    mode TEXT NOT NULL,
    updated_at BIGINT NOT NULL
)
