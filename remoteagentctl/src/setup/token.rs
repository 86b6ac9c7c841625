//! The bot token: read from a file or stdin (never argv, where every user
//! of the machine could read it in `ps`), checked for its shape, then
//! checked with Telegram's `getMe`, which also tells the bot's @username.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};

/// How long `getMe` may take before setup says Telegram is unreachable.
const GET_ME_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the token comes from.
pub enum Source<'a> {
    File(&'a Path),
    Stdin,
}

/// What the user is told when no token was given.
const HOW_TO_GIVE: &str = "get one from @BotFather in Telegram (/newbot), then pipe it in \
(`remoteagentctl setup < token.txt`) or pass `--bot-token-file FILE`";

/// Reads the token; `None` when none was given but `stored` can be kept
/// (running setup again without a token changes nothing).
pub fn read(source: Source<'_>, stored: bool) -> Result<Option<SecretString>> {
    let text = match source {
        Source::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the bot token from {}", path.display()))?,
        Source::Stdin if std::io::stdin().is_terminal() => prompt(stored)?,
        Source::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut text)
                .context("reading the bot token from stdin")?;
            text
        }
    };
    let token = text.trim();
    if token.is_empty() {
        if stored {
            return Ok(None);
        }
        bail!("no bot token was given: {HOW_TO_GIVE}");
    }
    check_shape(token)?;
    Ok(Some(SecretString::from(token.to_string())))
}

/// Asks on the terminal, without echoing what is typed or pasted.
fn prompt(stored: bool) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let keep = if stored {
        " (Enter keeps the stored one)"
    } else {
        ""
    };
    eprint!("Paste your bot token from @BotFather{keep}: ");
    std::io::stderr().flush().ok();
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning the terminal's echo off")?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    // Echo comes back even when reading failed.
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("reading the bot token")?;
    restored.context("turning the terminal's echo back on")?;
    Ok(line)
}

/// `123456789:AA…`: digits, a colon, then letters, digits, `_` and `-`.
/// The token itself is never repeated in the message.
pub fn check_shape(token: &str) -> Result<()> {
    let ok = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !ok {
        bail!(
            "that is not a bot token (they look like 123456789:AAH…, digits, a colon, then letters): {HOW_TO_GIVE}"
        );
    }
    Ok(())
}

/// The bot, as `getMe` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bot {
    pub username: String,
}

#[derive(serde::Deserialize)]
struct Answer {
    ok: bool,
    result: Option<BotJson>,
    description: Option<String>,
    error_code: Option<u16>,
}

#[derive(serde::Deserialize)]
struct BotJson {
    username: Option<String>,
}

/// Calls `getMe`. The token is part of the URL, so no error may carry the
/// URL (`without_url`).
pub async fn get_me(api_base: &str, token: &SecretString) -> Result<Bot> {
    let client = reqwest::Client::builder()
        .timeout(GET_ME_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let url = format!(
        "{}/bot{}/getMe",
        api_base.trim_end_matches('/'),
        token.expose_secret()
    );
    let response = client.get(url).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            "it did not answer within 10 s".to_string()
        } else {
            e.without_url().to_string()
        };
        anyhow::anyhow!(
            "cannot reach Telegram at {api_base} to check the token ({why}); check this machine's internet connection"
        )
    })?;
    let status = response.status();
    let answer: Answer = response.json().await.map_err(|e| {
        anyhow::anyhow!(
            "{api_base} did not answer getMe like the Telegram Bot API (HTTP {status}: {})",
            e.without_url()
        )
    })?;
    match answer {
        Answer {
            ok: true,
            result: Some(BotJson {
                username: Some(username),
            }),
            ..
        } => Ok(Bot { username }),
        Answer {
            error_code: Some(401 | 404),
            ..
        } => bail!(
            "Telegram refused the token (Unauthorized): copy it again from @BotFather (/mybots → your bot → API Token)"
        ),
        Answer { description, .. } => bail!(
            "Telegram's getMe failed (HTTP {status}): {}",
            description.unwrap_or_else(|| "no description".into())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_is_checked_without_repeating_the_token() {
        assert!(check_shape("123456:AAH-x_9").is_ok());
        for bad in [
            "",
            "98765",
            ":xyz",
            "12a:xyz",
            "987:",
            "987:x y",
            "987:xyz/q",
        ] {
            let err = check_shape(bad).unwrap_err().to_string();
            assert!(err.starts_with("that is not a bot token"), "{bad}: {err}");
            if !bad.is_empty() {
                assert!(!err.contains(bad), "{err}");
            }
        }
    }
}
