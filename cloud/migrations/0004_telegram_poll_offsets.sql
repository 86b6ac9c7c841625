-- Poll mode: the offset of the next getUpdates call per bot (its public
-- numeric id), so that a restarted cloud neither loses nor repeats an update.
CREATE TABLE telegram_poll_offsets (
    bot TEXT PRIMARY KEY NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)
