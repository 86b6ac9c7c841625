//! The fake speech-to-text server refuses what OpenAI refuses, with
//! OpenAI's status and error body, records what it was sent, and plays
//! the faults a test scripts.

use std::time::Duration;

use remoteagent_testkit::stt::{DEFAULT_TRANSCRIPT, FakeStt, openai_error_message};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const OGG: &[u8] = b"OggS\0fake opus voice";

fn voice(name: &str) -> Part {
    Part::bytes(OGG.to_vec())
        .file_name(name.to_string())
        .mime_str("audio/ogg")
        .unwrap()
}

async fn post(stt: &FakeStt, key: Option<&str>, form: Form) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/audio/transcriptions", stt.base_url()))
        .multipart(form);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.expect("the fake answers");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn full_form() -> Form {
    Form::new()
        .part("file", voice("file_3.oga"))
        .text("model", "whisper-1")
        .text("response_format", "json")
}

#[tokio::test]
async fn a_good_request_is_transcribed_and_recorded() {
    let stt = FakeStt::start().await;
    let (status, body) = post(&stt, None, full_form()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], DEFAULT_TRANSCRIPT);
    stt.set_transcript("run the benchmarks");
    let form = Form::new()
        .part("file", voice("memo.MP3"))
        .text("model", "Systran/faster-whisper-small")
        .text("response_format", "text");
    let (status, body) = post(&stt, Some("anything"), form).await;
    assert_eq!(status, 200);
    assert_eq!(body, Value::String("run the benchmarks\n".into()));

    let requests = stt.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].file, OGG);
    assert_eq!(requests[0].file_name.as_deref(), Some("file_3.oga"));
    assert_eq!(requests[0].content_type.as_deref(), Some("audio/ogg"));
    assert_eq!(requests[0].model.as_deref(), Some("whisper-1"));
    assert_eq!(requests[0].response_format.as_deref(), Some("json"));
    assert_eq!(requests[0].bearer, None);
    assert_eq!(requests[1].bearer.as_deref(), Some("anything"));
    assert_eq!(requests[1].status, 200);
}

#[tokio::test]
async fn it_refuses_what_openai_refuses() {
    let stt = FakeStt::start().await;
    const KEY: &str = "sk-test-0123456789abcdef";
    stt.require_key(KEY);
    let key = Some(KEY);

    // No key, then a wrong one: 401, the wrong key shown masked.
    let (status, body) = post(&stt, None, full_form()).await;
    assert_eq!(status, 401);
    assert!(
        openai_error_message(&body)
            .unwrap()
            .starts_with("You didn't provide an API key."),
        "{body}"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = post(&stt, Some("sk-wrong-key-000000001234"), full_form()).await;
    assert_eq!(status, 401);
    let message = openai_error_message(&body).unwrap();
    assert!(
        message.starts_with("Incorrect API key provided: sk-"),
        "{message}"
    );
    assert!(message.contains("1234."), "{message}");
    assert!(!message.contains("sk-wrong-key-000000001234"), "{message}");
    assert_eq!(body["error"]["code"], "invalid_api_key");

    // No model.
    let form = Form::new().part("file", voice("a.ogg"));
    let (status, body) = post(&stt, key, form).await;
    assert_eq!(status, 400);
    assert_eq!(
        openai_error_message(&body),
        Some("you must provide a model parameter")
    );
    // No file, or a text field where the file should be.
    for form in [
        Form::new().text("model", "whisper-1"),
        Form::new()
            .text("model", "whisper-1")
            .text("file", "/tmp/a.ogg"),
    ] {
        let (status, body) = post(&stt, key, form).await;
        assert_eq!(status, 400);
        assert_eq!(
            openai_error_message(&body),
            Some(
                "1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)"
            )
        );
    }
    // A name that does not tell a supported format.
    for name in ["voice", "voice.aac"] {
        let form = Form::new()
            .part("file", voice(name))
            .text("model", "whisper-1");
        let (status, body) = post(&stt, key, form).await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(
            openai_error_message(&body),
            Some(
                "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"
            )
        );
    }
    // An unknown response format.
    let form = Form::new()
        .part("file", voice("a.ogg"))
        .text("model", "whisper-1")
        .text("response_format", "xml");
    let (status, body) = post(&stt, key, form).await;
    assert_eq!(status, 400);
    assert!(
        openai_error_message(&body)
            .unwrap()
            .starts_with("'xml' is not one of ['json', 'text'"),
        "{body}"
    );
    // Not a form at all: the first field missing is the model.
    let res = reqwest::Client::new()
        .post(format!("{}/audio/transcriptions", stt.base_url()))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "whisper-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    // And the right request passes.
    let (status, _) = post(&stt, key, full_form()).await;
    assert_eq!(status, 200);
    let statuses: Vec<u16> = stt.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 400, 400, 400, 400, 400, 400, 400, 200]);
}

#[tokio::test]
async fn scripted_failures_and_hangs() {
    let stt = FakeStt::start().await;
    stt.fail_next(
        400,
        "Audio file is too short. Minimum audio length is 0.1 seconds.",
    );
    stt.fail_next(503, "The server is overloaded.");
    let (status, body) = post(&stt, None, full_form()).await;
    assert_eq!(status, 400);
    assert_eq!(
        openai_error_message(&body),
        Some("Audio file is too short. Minimum audio length is 0.1 seconds.")
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = post(&stt, None, full_form()).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["type"], "server_error");
    // A refused request does not use up a scripted fault.
    stt.fail_next(500, "boom");
    let (status, _) = post(&stt, None, Form::new().text("model", "whisper-1")).await;
    assert_eq!(status, 400);
    assert_eq!(post(&stt, None, full_form()).await.0, 500);
    assert_eq!(post(&stt, None, full_form()).await.0, 200);

    stt.hang_next();
    let hung = reqwest::Client::new()
        .post(format!("{}/audio/transcriptions", stt.base_url()))
        .multipart(full_form())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.is_err_and(|e| e.is_timeout()));
    assert_eq!(stt.requests().last().unwrap().status, 0, "still waiting");
    // Only that one hangs.
    assert_eq!(post(&stt, None, full_form()).await.0, 200);
}
