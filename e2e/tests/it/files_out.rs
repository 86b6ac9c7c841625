//! Files from the project to the phone, end to end: `/get PATH` and the
//! runner's `.remoteagent/outbox/`, through the real cloud and daemon, real
//! Redis with the agent's ACL user (the blob is written as the agent), and
//! the strict fake Bot API, whose stored documents are compared byte for
//! byte with the files on disk.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::FakeDocument;
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 3003;
const WAIT: Duration = Duration::from_secs(30);

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    async fn start() -> World {
        let stack = Stack::start_on(RedisServer::start().unwrap(), None, "")
            .await
            .unwrap();
        World { stack }
    }

    /// Pairs project `name` run by the fixture `runner`; its folder.
    async fn pair(&self, name: &str, runner: &str) -> PathBuf {
        // `pair` returns once the agent is online.
        self.pair_project(OWNER, name, runner, WAIT).await
    }

    /// Waits for a message in the owner's chat containing `needle`.
    async fn expect(&self, needle: &str) -> String {
        let found = wait_for(WAIT, || {
            let hit = self.texts(OWNER).into_iter().find(|t| t.contains(needle));
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no message with {needle:?}; messages: {:#?}\n{}",
                self.texts(OWNER),
                self.logs()
            )
        })
    }

    /// Waits for the `n`th document of the owner's chat.
    async fn document(&self, n: usize) -> FakeDocument {
        let found = wait_for(WAIT, || {
            let docs = self.tg.documents_in(OWNER);
            async move { docs.into_iter().nth(n - 1) }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no document #{n}; messages: {:#?}\n{}",
                self.texts(OWNER),
                self.logs()
            )
        })
    }

    /// No blob is left in Redis (each was deleted once sent).
    async fn blobs_left(&self) -> Vec<String> {
        let mut conn = redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("KEYS")
            .arg("blob:*")
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

/// A project's files, as `/get` will find them.
fn write(project: &Path, path: &str, bytes: &[u8]) {
    let file = project.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, bytes).unwrap();
}

fn zip_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_sends_project_files_and_folders_and_refuses_what_lies_outside() {
    let w = World::start().await;
    let project = w.pair("hello", "answer.sh").await;
    // Every byte value and invalid UTF-8: the document must be the file.
    let main: Vec<u8> = (0..=255u8)
        .cycle()
        .take(70_000)
        .chain(b"fn main() {}\n".iter().copied())
        .collect();
    write(&project, "src/main.rs", &main);
    write(&project, "src/util/mod.rs", b"pub fn util() {}\n");
    write(&project, "src/.git/HEAD", b"ref: refs/heads/main\n");
    let secret = project.parent().unwrap().join("secret");
    std::fs::write(&secret, "top secret").unwrap();
    std::os::unix::fs::symlink(&secret, project.join("leak")).unwrap();

    // A file: byte-exact, named and captioned.
    w.cloud.say(OWNER, "/get src/main.rs").await;
    let doc = w.document(1).await;
    assert_eq!(doc.file_name, "main.rs");
    assert_eq!(doc.bytes, main, "the document is the file, byte for byte");
    assert_eq!(doc.caption.as_deref(), Some("📎 src/main.rs from hello"));

    // A folder: a zip whose entries are the folder's files (no .git).
    w.cloud.say(OWNER, "/get src").await;
    let zipped = w.document(2).await;
    assert_eq!(zipped.file_name, "src.zip");
    let entries = zip_entries(&zipped.bytes);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["src/", "src/main.rs", "src/util/", "src/util/mod.rs"]
    );
    assert_eq!(entries[1].1, main);
    assert_eq!(entries[3].1, b"pub fn util() {}\n");
    w.expect("src.zip: left out a .git folder").await;

    // Outside the project, in every way: refused in words.
    w.cloud.say(OWNER, "/get ../secret").await;
    w.expect("/get ../secret: outside the project, refused")
        .await;
    w.cloud.say(OWNER, "/get leak").await;
    w.expect("/get leak: it leads outside the project (through a symlink), refused")
        .await;
    let absolute = secret.display().to_string();
    w.cloud.say(OWNER, &format!("/get {absolute}")).await;
    w.expect(&format!("/get {absolute}: absolute paths are refused"))
        .await;
    w.cloud.say(OWNER, "/get src/nothing.rs").await;
    w.expect("/get src/nothing.rs: no such file or folder in the project")
        .await;

    // Over Telegram's 50 MB: said, with where the file is (a sparse file,
    // so the test writes nothing).
    let big = std::fs::File::create(project.join("src/big.bin")).unwrap();
    big.set_len(73_200_000).unwrap();
    w.cloud.say(OWNER, "/get src/big.bin").await;
    let told = w
        .expect("src/big.bin is 73.2 MB; Telegram bots can send at most 50 MB.")
        .await;
    assert!(told.contains("copy it from there"), "{told}");
    assert_eq!(w.tg.documents_in(OWNER).len(), 2, "nothing else was sent");
    assert_eq!(std::fs::read(&secret).unwrap(), b"top secret");
    let left = wait_for(WAIT, || async {
        let left = w.blobs_left().await;
        left.is_empty().then_some(())
    })
    .await;
    assert!(left.is_some(), "blobs left: {:?}", w.blobs_left().await);
    assert!(
        w.tg.refused_calls().is_empty(),
        "{:?}",
        w.tg.refused_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_runner_leaves_in_the_outbox_arrives_after_the_run_and_is_removed() {
    let w = World::start().await;
    let project = w.pair("reports", "outbox.sh").await;
    w.cloud.say(OWNER, "the weekly numbers").await;
    let doc = w.document(1).await;
    assert_eq!(doc.file_name, "report.txt");
    assert_eq!(doc.bytes, b"report for: the weekly numbers\n");
    assert_eq!(doc.caption.as_deref(), Some("📎 from reports"));
    // The run's output came first, the status after the document.
    let status = w.expect("✅ done in").await;
    let messages = w.tg.messages(OWNER);
    let output = messages
        .iter()
        .find(|m| m.text.contains("wrote the report"))
        .expect("the output");
    let last = messages.last().unwrap();
    assert!(output.message_id < doc.message_id, "{messages:#?}");
    assert!(
        last.message_id > doc.message_id && last.text.contains(&status),
        "the status is the last message: {messages:#?}"
    );
    let outbox = project.join(".remoteagent/outbox");
    assert!(
        !outbox.join("report.txt").exists(),
        "a sent file is removed"
    );
    assert!(outbox.is_dir(), "the folder itself stays");
    assert!(
        w.tg.refused_calls().is_empty(),
        "{:?}",
        w.tg.refused_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_answered_while_a_session_runs_and_does_not_disturb_it() {
    let w = World::start().await;
    let project = w.pair("busy", "long.sh").await;
    write(&project, "notes.md", b"# notes\n");
    w.cloud.say(OWNER, "a long job").await;
    w.expect("starting a long job").await;
    w.cloud.say(OWNER, "/get notes.md").await;
    let doc = w.document(1).await;
    assert_eq!(doc.bytes, b"# notes\n");
    assert!(
        !w.texts(OWNER)
            .iter()
            .any(|t| t.contains("long job finished")
                || t.contains("aborted")
                || t.contains("done in")),
        "the session still runs: {:#?}",
        w.texts(OWNER)
    );
    // The session goes on, and ends as usual.
    w.cloud.say(OWNER, "/stop").await;
    w.expect("⏹ aborted").await;
}
