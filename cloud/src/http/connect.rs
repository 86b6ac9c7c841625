//! `GET /connect`: pairing in a browser. The page shows the Telegram Login
//! Widget and a code field; its script posts the widget's user object and
//! the code to `/api/pair/confirm`, where the signature is checked.
//! `remoteagentctl pair` prints `/connect?code=CODE`, so the field comes
//! filled in; a `code` that is not a well-formed pairing code is ignored.
//!
//! The login widget works only on the domain registered for the bot, so the
//! page needs a public URL: without one (poll mode's default) it answers 404
//! with the two ways that work, `/pair CODE` and the bot's deep link.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/connect", get(page))
}

#[derive(Debug, serde::Deserialize)]
struct ConnectQuery {
    code: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    Query(query): Query<ConnectQuery>,
) -> axum::response::Response {
    if state.config.public_url.is_none() {
        return no_public_url(&state);
    }
    let widget = match &state.bot_username {
        Some(bot) => format!(
            r#"<script async src="https://telegram.org/js/telegram-widget.js?22" data-telegram-login="{}" data-size="large" data-request-access="write" data-onauth="onTelegramAuth(user)"></script>"#,
            html_escape::encode_double_quoted_attribute(bot)
        ),
        None => "<p>The Telegram login is unavailable right now. Send <code>/pair CODE</code> to the bot instead.</p>".to_string(),
    };
    // Only a well-formed code (letters, digits and one dash) reaches the
    // page, so nothing a link carries can be injected into it.
    let code = query
        .code
        .as_deref()
        .and_then(crate::pairing::normalize)
        .unwrap_or_default();
    let html = PAGE
        .replace("{{WIDGET}}", &widget)
        .replace("{{CODE}}", &code);
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(html),
    )
        .into_response()
}

/// The answer without a public URL: why there is no page, and what to do.
fn no_public_url(state: &AppState) -> axum::response::Response {
    let bot = match &state.bot_username {
        Some(bot) => {
            let bot = html_escape::encode_text(bot.trim_start_matches('@')).to_string();
            format!(
                "<a href=\"https://t.me/{bot}\">@{bot}</a> (or open <code>https://t.me/{bot}?start=CODE</code>)"
            )
        }
        None => "the bot".to_string(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>RemoteAgent — connect</title></head>\
<body><h1>No pairing page here</h1><p>This cloud has no public URL (PUBLIC_URL is not set: it polls Telegram), \
so the Telegram login cannot work here. Send <code>/pair CODE</code> with the code \
<code>remoteagentctl pair</code> printed to {bot}.</p></body></html>"
    );
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        Html(html),
    )
        .into_response()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>RemoteAgent — connect</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; padding: 0 1rem; }
input { font-size: 1.4rem; letter-spacing: .2rem; text-transform: uppercase; width: 9rem; }
button { font-size: 1.1rem; }
#result { margin-top: 1rem; }
</style>
</head>
<body>
<h1>Connect an agent</h1>
<p>1. Log in with Telegram:</p>
{{WIDGET}}
<p>2. Enter the code shown by <code>remoteagentctl pair</code>:</p>
<form id="form">
<input id="code" maxlength="8" autocomplete="off" placeholder="XK9-4TZ" value="{{CODE}}" required>
<button type="submit">Connect</button>
</form>
<p id="result"></p>
<script>
let telegramUser = null;
function onTelegramAuth(user) {
  telegramUser = user;
  document.getElementById('result').textContent = 'Logged in as ' + (user.username || user.first_name) + '.';
}
document.getElementById('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const result = document.getElementById('result');
  if (!telegramUser) { result.textContent = 'Log in with Telegram first.'; return; }
  const code = document.getElementById('code').value;
  try {
    const response = await fetch('/api/pair/confirm', {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({code: code, telegram: telegramUser}),
    });
    const body = await response.json();
    result.textContent = response.ok
      ? 'Paired ' + body.name + '. You can now send it prompts from Telegram.'
      : body.error.message;
  } catch (e) {
    result.textContent = 'Could not reach the server: ' + e;
  }
});
</script>
</body>
</html>
"#;
