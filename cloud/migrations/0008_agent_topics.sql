-- Forum topics: one per agent and chat (a private chat with the bot's topic
-- mode on, or a forum supergroup the owner opted in). Prompts written in
-- `thread_id` go to `agent_id`, and its runs show there. `name` is the name
-- the topic was given, so a renamed agent renames its topic.
CREATE TABLE agent_topics (
    chat_id BIGINT NOT NULL,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    thread_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chat_id, agent_id)
);
CREATE INDEX agent_topics_thread ON agent_topics (chat_id, thread_id);
CREATE INDEX agent_topics_agent ON agent_topics (agent_id)
