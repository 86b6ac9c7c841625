-- Group chats opted in with /allowgroup: prompts from `owner` in `chat_id`
-- go to `agent_id`. No row: the group is not opted in for that user.
CREATE TABLE group_chats (
    chat_id BIGINT NOT NULL,
    owner BIGINT NOT NULL,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (chat_id, owner)
);
CREATE INDEX group_chats_agent ON group_chats (agent_id);
