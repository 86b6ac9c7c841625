//! Photos and documents from the phone into the session, with everything
//! real but Telegram: the fake Bot API serves the files, the real cloud
//! fetches and stores them in Redis, the real daemon checks and saves them,
//! and a shell-script runner (`attached.sh`) reads the paths from its
//! prompt and prints each file's SHA-256, mode and size.

use std::path::{Path, PathBuf};
use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_proto::{AgentId, names};
use remoteagent_testkit::telegram::updates;
use remoteagent_testkit::{RedisServer, wait_for};
use serde_json::Value;
use sha2::{Digest, Sha256};

const OWNER: i64 = 4242;
const WAIT: Duration = Duration::from_secs(60);
const ASK: &str = "Send your answer as a message.";

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    async fn start(cloud_env: &[(&str, &str)]) -> World {
        let stack = Stack::start_with_cloud_env(RedisServer::start().unwrap(), None, "", cloud_env)
            .await
            .unwrap();
        World { stack }
    }

    /// Pairs the project `name` with the `attached.sh` runner; returns the
    /// agent's id.
    async fn pair(&self, name: &str) -> AgentId {
        self.pair_project(OWNER, name, "attached.sh", WAIT).await;
        let out = self.home.ctl(&["list", "--json"]).unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        AgentId::parse(list[0]["id"].as_str().unwrap()).unwrap()
    }

    /// Waits for a message in the owner's chat containing `needle`.
    async fn wait_text(&self, needle: &str) -> String {
        let found = wait_for(WAIT, || {
            let hit = self.texts(OWNER).into_iter().find(|t| t.contains(needle));
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no message containing {needle:?}; messages: {:#?}\n{}",
                self.texts(OWNER),
                self.logs()
            )
        })
    }

    async fn admin(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap()
    }

    /// The owner sends `bytes` as the document `name`.
    async fn document(&self, bytes: Vec<u8>, name: &str, caption: Option<&str>) {
        let file = self.tg.add_file(bytes, "documents", "bin");
        let update = updates::document(
            self.cloud.update_id(),
            OWNER,
            OWNER,
            &file,
            name,
            "text/plain",
            caption,
        );
        self.cloud.deliver(&update).await;
    }

    fn inbox(&self, agent: &AgentId) -> PathBuf {
        self.home
            .path()
            .join("state/remoteagent/inbox")
            .join(agent.as_str())
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn bytes_of(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 7919) % 251) as u8 ^ seed).collect()
}

/// The one file named `name` under `dir` (any session's inbox).
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|session| session.path().join(name))
        .find(|p| p.exists())
}

/// The runner's line for a file of `bytes`, as `attached.sh` prints it.
fn runner_line(bytes: &[u8]) -> String {
    format!("sha256={} mode=600 bytes={}", sha256(bytes), bytes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captioned_photo_reaches_the_runner_as_the_bytes_sent() {
    let mut w = World::start(&[]).await;
    let agent = w.pair("shots").await;

    // As a cloud from before files left the agent's Redis user: without
    // the blob keys and GET (the password and the daemon's connection
    // untouched). The restarted cloud brings the rules up to date.
    let user = names::agent_redis_user(&agent);
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("resetkeys")
        .arg(format!("~{}", names::output_stream_pattern(&agent)))
        .arg(format!("~{}", names::presence_key(&agent)))
        .arg("-get")
        .query_async::<()>(&mut w.admin().await)
        .await
        .unwrap();
    w.stack.cloud.crash_and_restart().await.unwrap();
    let blob_rule = format!("~{}", names::blob_pattern(&agent));
    let upgraded = wait_for(WAIT, || async {
        let users: Vec<String> = redis::cmd("ACL")
            .arg("LIST")
            .query_async(&mut w.admin().await)
            .await
            .ok()?;
        users
            .iter()
            .any(|u| {
                u.starts_with(&format!("user {user} "))
                    && u.contains(&blob_rule)
                    && u.contains("+get")
            })
            .then_some(())
    })
    .await;
    assert!(upgraded.is_some(), "the agent's user kept its old rules");

    let photo = bytes_of(150_000, 0x5a);
    let sizes = w.tg.add_photo(photo.clone());
    let update = updates::photo(
        w.cloud.update_id(),
        OWNER,
        OWNER,
        &sizes,
        Some("what is in this picture?"),
    );
    w.cloud.deliver(&update).await;
    let shown = w.wait_text(&runner_line(&photo)).await;
    assert!(
        shown.contains("prompt=[what is in this picture?"),
        "{shown}"
    );

    // On disk: in the inbox outside the project, the bytes that were sent.
    let name = format!("photo-{}.jpg", &sha256(&photo)[..8]);
    let saved = find_file(&w.inbox(&agent), &name).expect("the photo is not in the inbox");
    assert_eq!(std::fs::read(&saved).unwrap(), photo);
    assert!(!saved.starts_with(w.home.project("shots").unwrap()));
    assert!(
        shown.contains(&format!("file={}", saved.display())),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_and_then_a_text_are_one_prompt() {
    let w = World::start(&[]).await;
    w.pair("docs").await;
    let notes = b"1. buy milk\n2. fix the build\n".to_vec();
    w.document(notes.clone(), "notes.txt", None).await;
    w.wait_text(&format!(
        "📎 Got notes.txt for docs. What should it do with it? {ASK}"
    ))
    .await;
    w.cloud.say(OWNER, "summarize it").await;
    let shown = w.wait_text(&runner_line(&notes)).await;
    assert!(
        shown.contains("prompt=[summarize it\n\nAttached files:\n- "),
        "{shown}"
    );
    assert!(
        shown.contains("notes.txt (text/plain, 29 bytes)]"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_in_redis_is_refused_by_the_daemon_and_nothing_runs() {
    let w = World::start(&[]).await;
    w.pair("safe").await;
    let original = b"rm nothing, please".to_vec();
    w.document(original.clone(), "plan.txt", None).await;
    w.wait_text("📎 Got plan.txt for safe").await;

    // Whoever can write to Redis swaps the bytes (same length) after the
    // cloud stored them; the signed command still names the original hash.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("blob:*")
        .query_async(&mut w.admin().await)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let forged = b"rm -rf ~, at once!".to_vec();
    assert_eq!(forged.len(), original.len());
    redis::cmd("SET")
        .arg(&keys[0])
        .arg(&forged)
        .arg("KEEPTTL")
        .query_async::<()>(&mut w.admin().await)
        .await
        .unwrap();
    w.cloud.say(OWNER, "follow the plan").await;
    w.wait_text(
        "the attached file plan.txt does not match its SHA-256: it was changed after it was sent; nothing ran",
    )
    .await;
    // Its `done` is written just before the daemon frees the agent.
    let idle = wait_for(WAIT, || async {
        let out = w.home.ctl(&["list", "--json"]).ok()?;
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        list[0]["running_session"].is_null().then_some(())
    })
    .await;
    assert!(idle.is_some(), "the agent stayed busy after the refusal");

    // The next prompt runs; the refused one never did.
    w.cloud.say(OWNER, "hello").await;
    w.wait_text("prompt=[hello]").await;
    let ran = std::fs::read_to_string(w.home.project("safe").unwrap().join("ran.txt")).unwrap();
    assert_eq!(ran, "hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_or_too_many_files_are_answered_and_nothing_runs() {
    let w = World::start(&[("ATTACHMENTS_MAX_FILES", "2")]).await;
    w.pair("limits").await;

    w.document(vec![b'x'; 23_400_000], "dump.log", Some("read the dump"))
        .await;
    w.wait_text("That file is 23.4 MB; Telegram lets bots download at most 20 MB. Nothing ran.")
        .await;
    assert!(w.tg.downloads().is_empty());

    let (a, b, c) = (b"first".to_vec(), b"second".to_vec(), b"third".to_vec());
    w.document(a.clone(), "a.txt", None).await;
    w.document(b.clone(), "b.txt", None).await;
    w.document(c.clone(), "c.txt", Some("all three")).await;
    w.wait_text(
        "A prompt can carry at most 2 files, and 2 are already waiting for your message; c.txt \
was not kept. Send your message for them first. Nothing ran.",
    )
    .await;
    w.cloud.say(OWNER, "the two").await;
    let shown = w.wait_text(&runner_line(&b)).await;
    assert!(shown.contains(&runner_line(&a)), "{shown}");
    assert!(!shown.contains(&runner_line(&c)), "{shown}");
    let ran = std::fs::read_to_string(w.home.project("limits").unwrap().join("ran.txt")).unwrap();
    assert_eq!(ran, "the two\n", "a refused prompt ran");
}
