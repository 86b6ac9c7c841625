//! `remoteagentctl setup`: from "I have a bot token" to "paired and
//! running", for one person on one machine, with no public URL.
//!
//! 1. Redis answers (the one prerequisite; setup says what to install).
//! 2. The token (stdin or `--bot-token-file`, never argv) passes `getMe`.
//! 3. Three files, each written only when it differs: the token (0600),
//!    the cloud's config (poll mode, SQLite, the local Redis) and the
//!    daemon's `cloud_url`.
//! 4. The cloud and the daemon run: as login services when a service
//!    manager is reachable, else started here in the background (saying
//!    that they will not come back after a reboot). Either is restarted
//!    only when its files changed.
//!
//! So a second run changes nothing that is already right, and `--print`
//! shows all of it without doing any of it.

mod background;
mod files;
mod redis;
mod services;
mod token;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use remoteagent_control::dirs::Dirs;
use secrecy::{ExposeSecret, SecretString};

use background::LocalCloud;
use files::{Change, toml_string};

/// The Bot API, unless a test points setup at a fake one.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

pub struct SetupArgs {
    pub bot_token_file: Option<PathBuf>,
    pub print: bool,
    pub redis_url: String,
    pub bind: SocketAddr,
    pub telegram_api: String,
    pub socket: PathBuf,
}

/// Where setup puts things.
struct Layout {
    token: PathBuf,
    cloud_config: PathBuf,
    daemon_config: PathBuf,
    state: PathBuf,
}

impl Layout {
    fn new(dirs: &Dirs) -> Layout {
        Layout {
            token: dirs.config.join("bot-token"),
            cloud_config: dirs.config.join("cloud.toml"),
            daemon_config: dirs.daemon_config(),
            state: dirs.state.clone(),
        }
    }
}

pub async fn run(args: SetupArgs) -> Result<()> {
    let dirs = Dirs::from_env()?;
    let layout = Layout::new(&dirs);
    let cloud_url = format!("http://{}", args.bind);
    // `Env` finds the programs (beside this one, else on PATH) and the
    // cloud's config path from the same base dirs as `layout`.
    let env = crate::service::Env::detect()?;
    let cloud_bin = env.cloud.clone().context(
        "remoteagent-cloud was not found next to remoteagentctl or on PATH: install it \
         (it is in the remoteagent .deb, and `packaging/install.sh` installs it)",
    )?;
    let platform = crate::service::Platform::current();
    let manager = crate::service::manager(platform);
    let cloud_config = cloud_config_text(&args, &layout.token);
    let old_daemon_config = match std::fs::read_to_string(&layout.daemon_config) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context(format!("reading {}", layout.daemon_config.display())),
    };
    let daemon_config = files::with_top_level_string(&old_daemon_config, "cloud_url", &cloud_url);
    let cloud = LocalCloud {
        binary: cloud_bin,
        config: layout.cloud_config.clone(),
        bind: args.bind,
        state_dir: layout.state.clone(),
    };
    if args.print {
        print_plan(&args, &layout, &cloud_config, &daemon_config);
        match manager.reason() {
            None => print!("{}", services::describe(platform, &env)),
            Some(why) => print_background_plan(why, &args, &cloud, &env.daemon),
        }
        return Ok(());
    }

    let version = redis::check(&args.redis_url).await?;
    say(&format!(
        "Redis {version} answers at {}",
        remoteagent_proto::url::redact_url(&args.redis_url)
    ));

    let stored = layout.token.exists();
    let source = match &args.bot_token_file {
        Some(path) => token::Source::File(path),
        None => token::Source::Stdin,
    };
    let token = match token::read(source, stored)? {
        Some(token) => token,
        None => stored_token(&layout.token)?,
    };
    let bot = token::get_me(&args.telegram_api, &token).await?;
    say(&format!("the token is @{}'s (getMe)", bot.username));

    let token_change = files::ensure(&layout.token, &format!("{}\n", token.expose_secret()))?;
    say(&format!(
        "{}: {} (the bot token, mode 0600)",
        layout.token.display(),
        token_change.word()
    ));
    let cloud_change = files::ensure(&layout.cloud_config, &cloud_config)?;
    say(&format!(
        "{}: {} (the cloud: poll mode, SQLite, Redis at {})",
        layout.cloud_config.display(),
        cloud_change.word(),
        remoteagent_proto::url::redact_url(&args.redis_url)
    ));
    let daemon_change = files::ensure(&layout.daemon_config, &daemon_config)?;
    say(&format!(
        "{}: {} (cloud_url = {cloud_url})",
        layout.daemon_config.display(),
        daemon_change.word()
    ));

    if let Ok(other) = std::env::var("REMOTEAGENT_CLOUD_URL")
        && other.trim_end_matches('/') != cloud_url
    {
        println!(
            "! REMOTEAGENT_CLOUD_URL is set to {other} in this shell, and wins over cloud_url: a daemon started from here would use it. Unset it."
        );
    }
    let cloud_changed = token_change != Change::Unchanged || cloud_change != Change::Unchanged;
    let daemon_changed = daemon_change != Change::Unchanged;
    match manager.reason() {
        None => {
            for want in [
                services::Want {
                    unit: crate::service::Unit::Cloud,
                    config_changed: cloud_changed,
                },
                services::Want {
                    unit: crate::service::Unit::Daemon,
                    config_changed: daemon_changed,
                },
            ] {
                say(&services::ensure(platform, &env, &want)?);
            }
        }
        Some(why) => {
            // Started here, now: say what that means for the next login.
            println!(
                "! no service manager ({why}): starting both in the background; they will not start by themselves after a reboot (run `remoteagentctl setup` again then)"
            );
            say(&background::ensure_cloud(&cloud, cloud_changed).await?);
            say(&background::ensure_daemon(
                &env.daemon,
                &args.socket,
                daemon_changed,
            )?);
        }
    }

    println!();
    println!("Ready: your bot is @{0} (https://t.me/{0}).", bot.username);
    println!("Next, pair a project folder and open the link it prints on your phone:");
    println!("    remoteagentctl pair ./myproject");
    Ok(())
}

fn say(what: &str) {
    println!("✔ {what}");
}

fn stored_token(path: &Path) -> Result<SecretString> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let token = text.trim().to_string();
    token::check_shape(&token)
        .with_context(|| format!("the stored token in {} is damaged", path.display()))?;
    Ok(SecretString::from(token))
}

/// The cloud's config file: every key setup decides, so that the cloud
/// runs the same under a service manager as when started by hand.
fn cloud_config_text(args: &SetupArgs, token_file: &Path) -> String {
    let mut text = String::from(
        "# The RemoteAgent cloud on this machine, written by `remoteagentctl setup`\n\
         # (run it again to change this). Keys: `remoteagent-cloud --help`.\n",
    );
    let mut set = |key: &str, value: &str| {
        text.push_str(&format!("{key} = {}\n", toml_string(value)));
    };
    set("TELEGRAM_MODE", "poll");
    set("TELEGRAM_BOT_TOKEN_FILE", &token_file.to_string_lossy());
    set("REMOTEAGENT_BIND", &args.bind.to_string());
    set("REDIS_URL", &args.redis_url);
    if args.telegram_api != TELEGRAM_API {
        set("TELEGRAM_API_BASE", &args.telegram_api);
    }
    text
}

fn print_plan(args: &SetupArgs, layout: &Layout, cloud_config: &str, daemon_config: &str) {
    let from = match &args.bot_token_file {
        Some(path) => path.display().to_string(),
        None => "stdin".into(),
    };
    println!(
        "# would check that Redis answers at {}",
        remoteagent_proto::url::redact_url(&args.redis_url)
    );
    println!(
        "# would read the bot token from {from} and check it with getMe at {}",
        args.telegram_api
    );
    println!(
        "# would write {} (mode 0600)\n<the bot token>",
        layout.token.display()
    );
    // The Redis URL may carry a password: shown redacted.
    let shown = cloud_config.replace(
        &toml_string(&args.redis_url),
        &toml_string(&remoteagent_proto::url::redact_url(&args.redis_url)),
    );
    println!("# would write {}\n{shown}", layout.cloud_config.display());
    println!(
        "# would write {}\n{daemon_config}",
        layout.daemon_config.display()
    );
}

fn print_background_plan(why: &str, args: &SetupArgs, cloud: &LocalCloud, daemon_bin: &Path) {
    println!("# no service manager ({why}): both would be started in the background");
    println!(
        "# would run, unless a cloud already answers on {}: {} --config {} serve",
        args.bind,
        cloud.binary.display(),
        cloud.config.display()
    );
    println!(
        "# would run, unless the daemon already answers: {} --daemonize",
        daemon_bin.display()
    );
}
