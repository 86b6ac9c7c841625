//! `remoteagent-cloud`: the Telegram webhook and bot, the pairing API and
//! `/connect` page, the output forwarder, plans and trial reminders.

pub mod forwarder;
pub mod telegram;
