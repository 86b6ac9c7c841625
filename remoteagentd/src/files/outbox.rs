//! The outbox: files the runner leaves in `.remoteagent/outbox/` of the
//! project are sent to the chat when its run ends (Untether's convention).
//!
//! When the runner is gone and its output is in the stream, before `done`:
//! every regular file directly in the folder, in name order, up to
//! [`MAX_FILES`] a run, becomes a blob and a `file` event (origin
//! `outbox`), and is then deleted, unless it changed meanwhile. What is not
//! sent stays in the folder and is said in a notice: files over Telegram's
//! 50 MB, empty files (Telegram refuses them), the files past
//! [`MAX_FILES`] (they go with the next run), subfolders, symlinks and
//! special files (never followed nor read). A `.remoteagent` or `outbox`
//! that is itself a symlink is not read at all: the daemon deletes what it
//! sent, and must only ever delete inside the project.
//!
//! The daemon never creates the folder (it would show up in `git status`);
//! the prompt's hint ([`HINT`], `[outbox] hint`) tells presets where it is.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use remoteagent_proto::events::{NoticePayload, OutputEvent};
use remoteagent_proto::files::{FileOrigin, FilePayload, MAX_UPLOAD_BYTES};
use tokio_util::sync::CancellationToken;

use super::{BlobStore, ReadError, human_size, read_for_chat, shown, upload_limit_text};
use crate::output::{OutputError, OutputWriter};
use crate::session_log::SessionLog;

/// The folder, relative to the project.
pub const OUTBOX_DIR: &str = ".remoteagent/outbox";
/// Files sent per run at most; the rest wait for the next run.
pub const MAX_FILES: usize = 10;
/// The line that tells a runner about the outbox (`[outbox] hint`).
pub const HINT: &str = "To send the user a file, write it into the folder .remoteagent/outbox/ of the project (create the folder if needed); files there are sent to the user's chat when this run ends.";

/// A file to send, as it was when the folder was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    path: PathBuf,
    name: String,
    len: u64,
    modified: Option<SystemTime>,
}

/// What the folder holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    files: Vec<Candidate>,
    /// Notices about what stays.
    notes: Vec<String>,
}

/// Sends what the outbox of `project` holds (see the module doc). Returns
/// an error only when the stream cannot be written.
pub async fn deliver(
    project: &Path,
    blobs: &BlobStore,
    hostname: &str,
    out: &mut OutputWriter,
    log: &mut SessionLog,
    cancel: &CancellationToken,
) -> Result<(), OutputError> {
    let (dir, host) = (project.to_path_buf(), hostname.to_string());
    let scan = match tokio::task::spawn_blocking(move || scan(&dir, &host)).await {
        Ok(scan) => scan,
        Err(e) => Scan {
            files: Vec::new(),
            notes: vec![format!("⚠️ {OUTBOX_DIR}/ could not be read: {e}")],
        },
    };
    for file in scan.files {
        let path = file.path.clone();
        let read = tokio::task::spawn_blocking(move || read_for_chat(&path)).await;
        let bytes = match read {
            Ok(Ok(b)) if b.len() as u64 == file.len => b,
            Ok(Ok(_)) => {
                note(out, log, format!("⚠️ {} changed while it was being sent; it stays in {OUTBOX_DIR}/ for the next run", file.name)).await?;
                continue;
            }
            Ok(Err(ReadError::TooBig(n))) => {
                note(out, log, too_big(&file.name, n, hostname)).await?;
                continue;
            }
            Ok(Err(ReadError::Io(e))) => {
                note(
                    out,
                    log,
                    format!("⚠️ {} in {OUTBOX_DIR}/ could not be read: {e}", file.name),
                )
                .await?;
                continue;
            }
            Err(e) => {
                note(
                    out,
                    log,
                    format!("⚠️ {} in {OUTBOX_DIR}/ could not be read: {e}", file.name),
                )
                .await?;
                continue;
            }
        };
        let attachment = match blobs.put(&file.name, &bytes, cancel).await {
            Ok(a) => a,
            Err(e) => {
                note(
                    out,
                    log,
                    format!(
                        "⚠️ {} could not be handed to the cloud ({e}); it stays in {OUTBOX_DIR}/",
                        file.name
                    ),
                )
                .await?;
                continue;
            }
        };
        drop(bytes);
        out.event(OutputEvent::File(FilePayload {
            file: attachment,
            origin: FileOrigin::Outbox,
        }))
        .await?;
        // In the stream before the file goes: a file is deleted only once
        // its event can no longer be lost.
        out.sync().await?;
        log.note(&format!(
            "sent {} ({}) from {OUTBOX_DIR}/ to the chat",
            file.name,
            human_size(file.len)
        ));
        tracing::info!(name = %file.name, bytes = file.len, "sent a file from the outbox");
        remove_if_unchanged(&file);
    }
    for text in scan.notes {
        note(out, log, text).await?;
    }
    Ok(())
}

async fn note(
    out: &mut OutputWriter,
    log: &mut SessionLog,
    text: String,
) -> Result<(), OutputError> {
    log.note(&text);
    out.event(OutputEvent::Notice(NoticePayload { text })).await
}

fn too_big(name: &str, size: u64, host: &str) -> String {
    format!(
        "⚠️ {name} is {}; {}. It stays in {OUTBOX_DIR}/ on {host}: copy it from there.",
        human_size(size),
        upload_limit_text()
    )
}

/// The file is deleted once sent, unless it is no longer the file that was
/// read (a process left behind still writes it).
fn remove_if_unchanged(file: &Candidate) {
    let now = std::fs::symlink_metadata(&file.path);
    let same = now
        .as_ref()
        .is_ok_and(|m| m.is_file() && m.len() == file.len && m.modified().ok() == file.modified);
    if !same {
        tracing::warn!(name = %file.name, "an outbox file changed after it was read: kept");
        return;
    }
    if let Err(e) = std::fs::remove_file(&file.path) {
        tracing::warn!(name = %file.name, error = %e, "could not remove a sent outbox file");
    }
}

/// Reads the outbox of `project` (blocking).
fn scan(project: &Path, host: &str) -> Scan {
    let mut scan = Scan::default();
    let dir = project.join(OUTBOX_DIR);
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return scan,
        Err(e) => {
            scan.notes
                .push(format!("⚠️ {OUTBOX_DIR}/ could not be read: {e}"));
            return scan;
        }
        Ok(_) => {}
    }
    // Neither `.remoteagent` nor `outbox` may be a symlink: the canonical
    // folder must be exactly the project's own.
    let inside = match (project.canonicalize(), dir.canonicalize()) {
        (Ok(root), Ok(real)) => real == root.join(OUTBOX_DIR),
        _ => false,
    };
    if !inside || !dir.is_dir() {
        scan.notes.push(format!(
            "⚠️ {OUTBOX_DIR} is not a plain folder of the project (a symlink?); nothing in it was sent"
        ));
        return scan;
    }
    let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) => {
            scan.notes
                .push(format!("⚠️ {OUTBOX_DIR}/ could not be read: {e}"));
            return scan;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    let (mut folders, mut links, mut special, mut empty, mut later) = (0, 0, 0, 0, 0);
    for entry in entries {
        let name = shown(&entry.file_name().to_string_lossy());
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            links += 1;
        } else if kind.is_dir() {
            folders += 1;
        } else if !kind.is_file() {
            special += 1;
        } else if meta.len() == 0 {
            empty += 1;
        } else if meta.len() > MAX_UPLOAD_BYTES {
            scan.notes.push(too_big(&name, meta.len(), host));
        } else if scan.files.len() >= MAX_FILES {
            later += 1;
        } else {
            scan.files.push(Candidate {
                path: entry.path(),
                name,
                len: meta.len(),
                modified: meta.modified().ok(),
            });
        }
    }
    let mut stays = |n: usize, one: &str, many: &str, why: &str| {
        if n > 0 {
            let what = if n == 1 {
                one.to_string()
            } else {
                format!("{n} {many}")
            };
            scan.notes
                .push(format!("⚠️ Left in {OUTBOX_DIR}/: {what} ({why})"));
        }
    };
    stays(
        later,
        "one more file",
        "more files",
        &format!("for the next run: at most {MAX_FILES} files are sent per run"),
    );
    stays(
        empty,
        "an empty file",
        "empty files",
        "Telegram does not send empty files",
    );
    stays(
        folders,
        "a folder",
        "folders",
        "only files are sent; zip a folder to send it",
    );
    stays(links, "a symlink", "symlinks", "symlinks are not followed");
    stays(
        special,
        "a special file",
        "special files",
        "only regular files are sent",
    );
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn outbox(project: &Path) -> PathBuf {
        let d = project.join(OUTBOX_DIR);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn no_outbox_is_nothing_to_say() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(scan(dir.path(), "box"), Scan::default());
    }

    #[test]
    fn regular_files_are_taken_in_name_order_and_the_rest_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(dir.path());
        for i in (0..12).rev() {
            std::fs::write(o.join(format!("f{i:02}.txt")), format!("file {i}")).unwrap();
        }
        std::fs::write(o.join("empty"), "").unwrap();
        std::fs::create_dir(o.join("sub")).unwrap();
        std::fs::write(dir.path().join("elsewhere"), "x").unwrap();
        symlink(dir.path().join("elsewhere"), o.join("link")).unwrap();
        let big = std::fs::File::create(o.join("zz.bin")).unwrap();
        big.set_len(MAX_UPLOAD_BYTES + 1).unwrap();
        let s = scan(dir.path(), "box");
        let names: Vec<&str> = s.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            (0..10).map(|i| format!("f{i:02}.txt")).collect::<Vec<_>>()
        );
        assert_eq!(
            s.notes,
            [
                "⚠️ zz.bin is 50.0 MB; Telegram bots can send at most 50 MB. It stays in .remoteagent/outbox/ on box: copy it from there.",
                "⚠️ Left in .remoteagent/outbox/: 2 more files (for the next run: at most 10 files are sent per run)",
                "⚠️ Left in .remoteagent/outbox/: an empty file (Telegram does not send empty files)",
                "⚠️ Left in .remoteagent/outbox/: a folder (only files are sent; zip a folder to send it)",
                "⚠️ Left in .remoteagent/outbox/: a symlink (symlinks are not followed)",
            ]
        );
    }

    #[test]
    fn an_outbox_that_is_a_symlink_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(project.join(".remoteagent")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("precious"), "keep me").unwrap();
        symlink(&elsewhere, project.join(OUTBOX_DIR)).unwrap();
        let s = scan(&project, "box");
        assert!(s.files.is_empty());
        assert_eq!(s.notes.len(), 1);
        assert!(s.notes[0].contains("not a plain folder"), "{:?}", s.notes);
        // And a `.remoteagent` that is a symlink: the same.
        let project2 = dir.path().join("p2");
        std::fs::create_dir_all(&project2).unwrap();
        std::fs::create_dir_all(elsewhere.join("outbox")).unwrap();
        symlink(&elsewhere, project2.join(".remoteagent")).unwrap();
        let s = scan(&project2, "box");
        assert!(s.files.is_empty() && s.notes.len() == 1, "{s:?}");
    }

    #[test]
    fn a_file_that_changed_after_it_was_read_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(dir.path());
        std::fs::write(o.join("a.txt"), "one").unwrap();
        let s = scan(dir.path(), "box");
        let file = &s.files[0];
        std::fs::write(o.join("a.txt"), "one more").unwrap();
        remove_if_unchanged(file);
        assert!(o.join("a.txt").exists());
        let s = scan(dir.path(), "box");
        remove_if_unchanged(&s.files[0]);
        assert!(!o.join("a.txt").exists());
    }
}
