-- Prompts waiting for a busy agent (the queue while busy), in `position`
-- order per agent: the smallest runs next. A row is taken once, by the
-- DELETE that claims it. `message_id`: the bot's "queued" message, edited
-- when the prompt runs or is cancelled (NULL until it was delivered).
CREATE TABLE prompt_queue (
    id TEXT PRIMARY KEY NOT NULL,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    chat_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    private_chat BIGINT NOT NULL,
    prompt TEXT NOT NULL,
    position BIGINT NOT NULL,
    message_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX prompt_queue_agent ON prompt_queue (agent_id, position)
