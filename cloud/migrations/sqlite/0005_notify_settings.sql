-- /notify: whether a user is also sent a new message when a run ends (the
-- output message is edited either way). No row: the default, on.
CREATE TABLE notify_settings (
    telegram_id BIGINT PRIMARY KEY NOT NULL,
    final_notify BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)
