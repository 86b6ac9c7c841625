//! `remoteagent-cloud`: the Telegram webhook and bot, the pairing API and
//! `/connect` page, the output forwarder, plans and trial reminders.
//!
//! * [`app`]: building the state from [`config`] and serving it.
//! * [`http`]: the routes (the webhook among them); [`poll`]: `getUpdates`
//!   long polling instead of the webhook; [`bot`]: what the bot does with
//!   an update.
//! * [`pairing`], [`unpair`], [`commands`], [`redis_acl`]: the operations
//!   shared by the bot and the HTTP API.
//! * [`db`]: the tables (SQLite or PostgreSQL through sqlx `Any`);
//!   [`updates`]: update claims (in Redis) and the one path into the bot.
//! * [`forwarder`], [`telegram`]: output to Telegram.
//! * [`stt`]: speech to text for voice notes (`bot::voice`).
//! * [`forwarder`], [`telegram`]: output to Telegram; [`blob_fetch`]: the
//!   files daemons send (`/get`, the outbox), fetched and checked.

pub mod answer_stream;
pub mod app;
pub mod blob_fetch;
pub mod bot;
pub mod checkpoint_card;
pub mod client_ip;
pub mod commands;
pub mod config;
pub mod cron;
pub mod data_dir;
pub mod db;
pub mod error;
pub mod forwarder;
pub mod http;
pub mod keys;
pub mod lanes;
pub mod login_widget;
pub mod metrics;
pub mod pairing;
pub mod plans;
pub mod poll;
pub mod rate_limit;
pub mod redis_acl;
pub mod resume_choice;
pub mod state;
pub mod stt;
pub mod telegram;
pub mod topics;
pub mod unpair;
pub mod updates;

pub use app::App;
pub use config::Config;
pub use state::AppState;
