//! Checkpoints, end to end (issue 18): a script runner edits two files of
//! a real git project; its run's diff card appears, 🔍 Diff shows both
//! changes, and ↩️ Undo restores the files to their bytes before the run.
//! Needs the daemon's checkpoints (helper "ckpt"'s branch).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::{FakeMessage, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 5005;
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

    /// Waits for a message of the owner's chat containing `needle`.
    async fn message(&self, needle: &str) -> FakeMessage {
        let found = wait_for(WAIT, || {
            let hit = self
                .tg
                .messages(OWNER)
                .into_iter()
                .find(|m| m.text.contains(needle));
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

    async fn press(&self, m: &FakeMessage, button: &str) {
        let data = m.reply_markup.as_ref().and_then(|k| {
            k["inline_keyboard"]
                .as_array()?
                .iter()
                .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                .find(|b| b["text"].as_str() == Some(button))?["callback_data"]
                .as_str()
                .map(str::to_string)
        });
        let data = data.unwrap_or_else(|| panic!("no {button} on {m:#?}"));
        let update = updates::callback(self.cloud.update_id(), OWNER, OWNER, m.message_id, &data);
        assert_eq!(self.cloud.update(&update).await.unwrap(), 200);
    }
}

fn git(project: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(project)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_edits_two_files_is_shown_and_undone() {
    let w = World::start().await;
    let project = w.pair_project(OWNER, "hello", "edits.sh", WAIT).await;
    git(&project, &["init", "-q"]);
    std::fs::write(project.join("README.md"), "original\n").unwrap();
    git(&project, &["add", "README.md"]);
    git(&project, &["commit", "-q", "-m", "first"]);

    w.cloud.say(OWNER, "edit two files").await;
    let card = w.message("📝 hello changed 2 files (+2 −0)").await;
    assert!(card.text.contains("README.md +1 −0"), "{}", card.text);
    assert!(card.text.contains("notes.txt +1 −0 (new)"), "{}", card.text);

    w.press(&card, "🔍 Diff").await;
    let diff = w.message("🔍 hello: the diff of 2 files").await;
    assert!(diff.text.contains("+changed by the run"), "{}", diff.text);
    assert!(diff.text.contains("+new <file> & more"), "{}", diff.text);

    w.press(&card, "↩️ Undo").await;
    w.message("hello restored 2 files to how they were before the run")
        .await;
    assert_eq!(
        std::fs::read_to_string(project.join("README.md")).unwrap(),
        "original\n"
    );
    assert!(!project.join("notes.txt").exists());
    assert!(
        w.tg.refused_calls().is_empty(),
        "{:?}",
        w.tg.refused_calls()
    );
}
