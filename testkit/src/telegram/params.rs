//! Reading a Bot API request's parameters the way the Bot API server does:
//! query string, then a JSON, form or multipart body, as one JSON object.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde_json::{Value, json};

use super::rules::{Refusal, RuleId};

/// Files of a multipart request by field name.
pub(crate) type Files = HashMap<String, Vec<u8>>;

/// Reads the request's parameters (JSON, form or multipart; plus the query
/// string) as one JSON object, and the files of a multipart body.
/// A body over the server's limit is answered as Telegram answers it (413).
pub(crate) async fn read_params(req: Request) -> Result<(Value, Files), Refusal> {
    let mut files = Files::new();
    let params = read_params_into(req, &mut files).await?;
    Ok((params, files))
}

async fn read_params_into(req: Request, files: &mut Files) -> Result<Value, Refusal> {
    let mut params = serde_json::Map::new();
    if let Some(query) = req.uri().query() {
        for (k, v) in form_pairs(query.as_bytes()) {
            params.insert(k, Value::String(v));
        }
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| bad_request(format!("bad multipart body: {e}")))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let data = field.bytes().await.map_err(multipart_error)?;
            let value = match file_name {
                Some(file_name) => {
                    let value = json!({"file_name": file_name, "size": data.len()});
                    files.insert(name.clone(), data.to_vec());
                    value
                }
                None => Value::String(String::from_utf8_lossy(&data).into_owned()),
            };
            params.insert(name, value);
        }
        return Ok(Value::Object(params));
    }
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|e| {
            if e.to_string().contains("length limit") {
                Refusal::of(RuleId::FileTooLarge)
            } else {
                bad_request(format!("reading body: {e}"))
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(params));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_pairs(&bytes) {
            params.insert(k, Value::String(v));
        }
        return Ok(Value::Object(params));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => {
            params.extend(map);
            Ok(Value::Object(params))
        }
        Ok(_) => Err(bad_request("request body must be a JSON object".into())),
        Err(e) => Err(bad_request(format!("can't parse JSON body: {e}"))),
    }
}

/// A malformed request: no row of the table, Telegram's usual prefix.
fn bad_request(detail: String) -> Refusal {
    Refusal::unlisted(400, format!("Bad Request: {detail}"))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Refusal {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Refusal::of(RuleId::FileTooLarge)
    } else {
        bad_request(format!("bad multipart body: {e}"))
    }
}

fn form_pairs(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = percent_decode(it.next().unwrap_or_default());
            let v = percent_decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                let hex = std::str::from_utf8(&input[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A string parameter (numbers are read as their text, as the Bot API does).
pub(super) fn string_param(body: &Value, name: &str) -> Option<String> {
    match body.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        assert_eq!(
            form_pairs(b"chat_id=42&text=a+b%26c%"),
            vec![
                ("chat_id".to_string(), "42".to_string()),
                ("text".to_string(), "a b&c%".to_string())
            ]
        );
    }
}
