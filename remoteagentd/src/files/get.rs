//! `/get PATH`: one file of the project, or a folder zipped, for the chat.
//!
//! Answered on the output stream of the command's session id, in a task of
//! its own: it only reads, so it neither waits for a running session nor
//! holds one up. The stream gets `started` at once (the cloud then knows
//! this daemon took the command: an older one skips it without a word),
//! then either notices + a `file` event + `done {ok}`, or one notice in
//! words ("/get ../secret: outside the project, refused") + `done`
//! (`rejected` for a refused path, `error` when reading or storing failed).

use std::path::{Path, PathBuf};

use remoteagent_proto::AgentId;
use remoteagent_proto::events::{DoneStatus, NoticePayload, OutputEvent};
use remoteagent_proto::files::{FileOrigin, FilePayload, GetFilePayload, safe_file_name};
use tokio_util::sync::CancellationToken;

use super::resolve::{Target, resolve};
use super::zip::{self, Limits, ZipError, zip_folder};
use super::{BlobStore, ReadError, human_size, read_for_chat, shown, upload_limit_text};
use crate::output::answer;
use crate::redis_conn::SharedConn;

/// `/get`s an agent answers at once; more are refused until one ends.
pub const MAX_AT_ONCE: usize = 2;

/// What answering one `/get` needs.
pub struct GetJob {
    /// The agent's link connection: stream writes are short commands.
    pub conn: SharedConn,
    pub agent: AgentId,
    pub project: PathBuf,
    pub blobs: BlobStore,
    /// This computer's name, for "copy it from the project folder on …".
    pub hostname: String,
    /// Cancelled when the agent stops.
    pub stopping: CancellationToken,
    /// [`MAX_AT_ONCE`] others are being answered: refuse.
    pub busy: bool,
}

/// A file ready for the blob.
struct Ready {
    name: String,
    bytes: Vec<u8>,
    /// Said before the file (what a zip left out).
    notes: Vec<String>,
}

/// A `/get` that sends nothing: the words and the `done` status.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    text: String,
    status: DoneStatus,
}

impl Answer {
    fn rejected(text: String) -> Self {
        Answer {
            text,
            status: DoneStatus::Rejected,
        }
    }

    fn error(text: String) -> Self {
        Answer {
            text,
            status: DoneStatus::Error,
        }
    }
}

impl GetJob {
    pub async fn run(self, get: GetFilePayload) {
        let sid = get.session_id.clone();
        let Some(answer) =
            answer::Answer::start(self.conn.clone(), &self.agent, &sid, "/get").await
        else {
            return;
        };
        let outcome = if self.busy {
            Err(Answer::rejected(format!(
                "/get {}: {MAX_AT_ONCE} other files are still being prepared; try again in a moment",
                shown(&get.path)
            )))
        } else {
            self.prepare(&get.path).await
        };
        match outcome {
            Ok((file, notes)) => {
                tracing::info!(session = %sid, name = %file.name, bytes = file.size, "/get answered with a file");
                let mut events: Vec<OutputEvent> = notes
                    .into_iter()
                    .map(|text| OutputEvent::Notice(NoticePayload { text }))
                    .collect();
                events.push(OutputEvent::File(FilePayload {
                    file,
                    origin: FileOrigin::Get,
                }));
                answer.end(events, DoneStatus::Ok, None).await;
            }
            Err(refused) => {
                tracing::info!(session = %sid, reason = %refused.text, "/get answered without a file");
                answer.fail(refused.status, refused.text).await;
            }
        }
    }

    /// The file in its blob, with the notices that go before it.
    async fn prepare(
        &self,
        path: &str,
    ) -> Result<(remoteagent_proto::files::Attachment, Vec<String>), Answer> {
        let (project, requested, host) = (
            self.project.clone(),
            path.to_string(),
            self.hostname.clone(),
        );
        // Reading and zipping touch the disk: off the async workers.
        let work =
            tokio::task::spawn_blocking(move || prepare_blocking(&project, &requested, &host));
        let ready = tokio::select! {
            r = work => r.map_err(|e| Answer::error(format!("/get {}: {e}", shown(path))))??,
            () = self.stopping.cancelled() => return Err(stopping(path)),
        };
        let file = self
            .blobs
            .put(&ready.name, &ready.bytes, &self.stopping)
            .await
            .map_err(|e| {
                if self.stopping.is_cancelled() {
                    stopping(path)
                } else {
                    Answer::error(format!(
                        "/get {}: could not hand the file to the cloud: {e}",
                        shown(path)
                    ))
                }
            })?;
        Ok((file, ready.notes))
    }
}

fn stopping(path: &str) -> Answer {
    Answer::error(format!(
        "/get {}: the daemon is stopping; send it again once it is back",
        shown(path)
    ))
}

/// Resolves and reads (or zips) what `requested` names in `project`.
fn prepare_blocking(project: &Path, requested: &str, host: &str) -> Result<Ready, Answer> {
    let said = shown(requested);
    let target = resolve(project, requested)
        .map_err(|refusal| Answer::rejected(format!("/get {said}: {refusal}")))?;
    let far = |size: String| {
        Answer::rejected(format!(
            "{said} is {size}; {}. It is in the project folder on {host}: copy it from there.",
            upload_limit_text()
        ))
    };
    match target {
        Target::File(path) => {
            let bytes = read_for_chat(&path).map_err(|e| match e {
                ReadError::TooBig(n) => far(human_size(n)),
                ReadError::Io(e) => Answer::error(format!("/get {said}: cannot be read: {e}")),
            })?;
            if bytes.is_empty() {
                return Err(Answer::rejected(format!(
                    "/get {said}: the file is empty, and Telegram does not send empty files"
                )));
            }
            Ok(Ready {
                name: file_name(requested, &path),
                bytes,
                notes: Vec::new(),
            })
        }
        Target::Dir(dir) => {
            let root = project
                .canonicalize()
                .map_err(|e| Answer::error(format!("/get {said}: the project folder: {e}")))?;
            let top = safe_file_name(&file_name(requested, &dir));
            let limits = Limits {
                max_bytes: remoteagent_proto::files::MAX_UPLOAD_BYTES,
                max_files: zip::MAX_FILES,
                max_input: zip::MAX_INPUT,
            };
            let zipped = zip_folder(&root, &dir, &top, limits).map_err(|e| match e {
                ZipError::TooBig => far("over 50 MB zipped".into()),
                ZipError::TooMuchInput(n) => far(format!("over {} of files", human_size(n))),
                ZipError::TooManyFiles(n) => Answer::rejected(format!(
                    "/get {said}: the folder holds more than {n} files and folders; /get a smaller part of it"
                )),
                ZipError::Io(e) => Answer::error(format!("/get {said}: zipping failed: {e}")),
            })?;
            if zipped.files == 0 {
                return Err(Answer::rejected(format!(
                    "/get {said}: the folder has no files to send{}",
                    zipped
                        .left_out
                        .describe()
                        .map(|l| format!(" (left out: {l})"))
                        .unwrap_or_default()
                )));
            }
            let name = format!("{top}.zip");
            let notes = zipped
                .left_out
                .describe()
                .map(|l| format!("{name}: left out {l}"))
                .into_iter()
                .collect();
            Ok(Ready {
                name,
                bytes: zipped.bytes,
                notes,
            })
        }
    }
}

/// The name the chat shows: the last part of the path as asked (a symlink
/// keeps the name it was asked by); for `.` or `..` ways of writing a
/// folder, its real name.
fn file_name(requested: &str, canonical: &Path) -> String {
    let asked = Path::new(requested.trim())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    match asked {
        Some(n) => n,
        None => canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "project".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hello");
        std::fs::create_dir_all(p.join("src")).unwrap();
        std::fs::write(p.join("src/main.rs"), "fn main() {}\n").unwrap();
        (dir, p)
    }

    #[test]
    fn refusals_are_said_with_the_path() {
        let (_d, p) = project();
        let a = prepare_blocking(&p, "../secret", "box").err().unwrap();
        assert_eq!(
            a,
            Answer::rejected("/get ../secret: outside the project, refused".into())
        );
        let empty = p.join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        let a = prepare_blocking(&p, "empty.txt", "box").err().unwrap();
        assert!(a.text.contains("empty"), "{}", a.text);
        let big = std::fs::File::create(p.join("big.bin")).unwrap();
        big.set_len(73_200_000).unwrap();
        let a = prepare_blocking(&p, "big.bin", "box").err().unwrap();
        assert_eq!(
            a.text,
            "big.bin is 73.2 MB; Telegram bots can send at most 50 MB. It is in the project folder on box: copy it from there."
        );
    }

    #[test]
    fn files_keep_the_name_asked_and_folders_become_zips() {
        let (_d, p) = project();
        let r = prepare_blocking(&p, "src/main.rs", "box").ok().unwrap();
        assert_eq!(
            (r.name.as_str(), r.bytes.as_slice()),
            ("main.rs", &b"fn main() {}\n"[..])
        );
        let r = prepare_blocking(&p, "src", "box").ok().unwrap();
        assert_eq!(r.name, "src.zip");
        assert!(r.notes.is_empty());
        let r = prepare_blocking(&p, ".", "box").ok().unwrap();
        assert_eq!(r.name, "hello.zip");
        let r = prepare_blocking(&p, "src/..", "box").ok().unwrap();
        assert_eq!(r.name, "hello.zip");
    }
}
