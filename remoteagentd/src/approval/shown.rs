//! What an approval request shows, so the person approving sees what they
//! approve: paths relative to the project (as the run's output shows
//! them), the working folder of a command, and for the edit tools the
//! change itself as a unified diff, computed here from the file on disk.
//!
//! `Edit`: `old_string` → `new_string` (every occurrence with
//! `replace_all`) inside the file; `Write`: the file now against the new
//! content (a new file is all added lines); `MultiEdit`: its edits applied
//! in order. When the file cannot be read or an `old_string` is not in it,
//! the diff shows the strings alone and says so. A diff is capped at
//! [`MAX_DIFF_BYTES`], and says when it is cut.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use similar::TextDiff;

/// Largest diff carried in an `approval_request`.
pub const MAX_DIFF_BYTES: usize = remoteagent_proto::events::MAX_DIFF_BYTES;
/// The key the hook adds to a tool input it had to cut down to fit a
/// control-socket line: its strings are no longer the real change.
pub const INPUT_CUT: &str = "remoteagentInputCut";
/// Longest command shown (the cloud shows this much in one message).
pub const MAX_COMMAND_CHARS: usize = 3000;
/// Largest file read to compute a diff.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Lines of context around each change.
const CONTEXT_LINES: usize = 3;
/// A diff of huge, very different texts is given up after this and shown
/// coarser (similar's deadline), rather than holding up the request.
const DIFF_DEADLINE: Duration = Duration::from_millis(500);

/// What the request shows besides its summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// The summary, with a path made relative to the project.
    pub summary: String,
    pub diff: Option<String>,
    /// A command's working folder, relative to the project (`.` is the
    /// project folder itself), absolute when outside it.
    pub cwd: Option<String>,
}

/// What to show for `tool` used with `input` in the project at `root`,
/// from `cwd` (the root when unknown); `summary` is the plain summary.
pub fn shown(tool: &str, input: &Value, summary: String, root: &Path, cwd: Option<&Path>) -> Shown {
    let root = canonical(root);
    let cwd = cwd
        .filter(|c| c.is_absolute())
        .map(canonical)
        .unwrap_or_else(|| root.clone());
    let path = ["file_path", "notebook_path"]
        .iter()
        .find_map(|k| input.get(*k).and_then(Value::as_str));
    let mut shown = Shown {
        summary,
        diff: None,
        cwd: None,
    };
    if tool == "Bash" {
        shown.cwd = Some(relative(&cwd, &root));
        // The whole command, not the summary's first 400 characters: what
        // is approved is what runs.
        if let Some(command) = input.get("command").and_then(Value::as_str) {
            shown.summary = super::truncate_chars(command.trim(), MAX_COMMAND_CHARS);
        }
    }
    if let Some(path) = path {
        let absolute = cwd.join(path);
        let rel = relative(&absolute, &root);
        if shown.summary.trim() == path.trim() {
            shown.summary = rel.clone();
        }
        shown.diff = diff(tool, input, &absolute, &rel);
    }
    shown
}

/// `path` relative to `root` when inside it, else as it is.
fn relative(path: &Path, root: &Path) -> String {
    let normal = lexical(path);
    match normal.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => normal.display().to_string(),
    }
}

/// `.` and `..` taken out without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The unified diff of an edit tool's change, capped.
fn diff(tool: &str, input: &Value, path: &Path, rel: &str) -> Option<String> {
    let text = |k: &str| input.get(k).and_then(Value::as_str);
    if input.get(INPUT_CUT).is_some() {
        return Some(format!(
            "# {rel}: the change is larger than RemoteAgent can carry ({} MiB); it is not shown\n",
            remoteagent_proto::control::MAX_LINE_BYTES / (1024 * 1024)
        ));
    }
    let current = read(path);
    let (before, after, note) = match tool {
        "Write" => {
            let content = text("content")?;
            match current {
                Current::Text(old) => (old, content.to_string(), None),
                Current::Missing => (String::new(), content.to_string(), None),
                Current::Unreadable(why) => (
                    String::new(),
                    content.to_string(),
                    Some(format!("{why}; shown as if it were empty")),
                ),
            }
        }
        "Edit" => {
            let edit = Edit::of(input)?;
            apply_all(current, std::slice::from_ref(&edit))
        }
        "MultiEdit" => {
            let edits: Vec<Edit> = input
                .get("edits")?
                .as_array()?
                .iter()
                .filter_map(Edit::of)
                .collect();
            if edits.is_empty() {
                return None;
            }
            apply_all(current, &edits)
        }
        _ => return None,
    };
    let mut out = String::new();
    if let Some(note) = &note {
        out.push_str(&format!("# {note}\n"));
    }
    // `a/src/x.rs`, as git writes it; a path outside stays absolute.
    let name = |side: &str| match rel.starts_with('/') {
        true => rel.to_string(),
        false => format!("{side}/{rel}"),
    };
    let old_name = if before.is_empty() && note.is_none() {
        "/dev/null".to_string()
    } else {
        name("a")
    };
    let unified = TextDiff::configure()
        .timeout(DIFF_DEADLINE)
        .diff_lines(&before, &after)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(&old_name, &name("b"))
        .to_string();
    if unified.is_empty() {
        out.push_str("# no change\n");
    } else {
        out.push_str(&unified);
    }
    Some(cap(out))
}

/// One `old_string` → `new_string` replacement.
#[derive(Debug, Clone)]
struct Edit {
    old: String,
    new: String,
    all: bool,
}

impl Edit {
    fn of(v: &Value) -> Option<Edit> {
        Some(Edit {
            old: v.get("old_string")?.as_str()?.to_string(),
            new: v.get("new_string")?.as_str()?.to_string(),
            all: v
                .get("replace_all")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

enum Current {
    Text(String),
    Missing,
    /// Why not, in words.
    Unreadable(String),
}

fn read(path: &Path) -> Current {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Current::Missing,
        Err(e) => return Current::Unreadable(format!("the file could not be read ({e})")),
        Ok(m) if !m.is_file() => return Current::Unreadable("it is not a regular file".into()),
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return Current::Unreadable(format!(
                "the file is larger than {} MiB",
                MAX_FILE_BYTES / (1024 * 1024)
            ));
        }
        Ok(_) => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Current::Text(text),
            Err(_) => Current::Unreadable("the file is not UTF-8 text".into()),
        },
        Err(e) => Current::Unreadable(format!("the file could not be read ({e})")),
    }
}

/// The file before and after `edits`, in order, and a note when the file
/// could not be used (then the strings alone are compared).
fn apply_all(current: Current, edits: &[Edit]) -> (String, String, Option<String>) {
    let strings_alone = |why: String| {
        let before: String = edits.iter().map(|e| with_newline(&e.old)).collect();
        let after: String = edits.iter().map(|e| with_newline(&e.new)).collect();
        (
            before,
            after,
            Some(format!("{why}: the replaced text alone is shown")),
        )
    };
    let text = match current {
        Current::Text(text) => text,
        Current::Missing => return strings_alone("the file does not exist yet".into()),
        Current::Unreadable(why) => return strings_alone(why),
    };
    let mut after = text.clone();
    for (n, edit) in edits.iter().enumerate() {
        if edit.old.is_empty() || !after.contains(&edit.old) {
            let which = if edits.len() > 1 {
                format!("the text of edit {} is not in the file", n + 1)
            } else {
                "the text to replace is not in the file".to_string()
            };
            return strings_alone(which);
        }
        after = if edit.all {
            after.replace(&edit.old, &edit.new)
        } else {
            after.replacen(&edit.old, &edit.new, 1)
        };
    }
    (text, after, None)
}

fn with_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// `diff` cut at a line end within [`MAX_DIFF_BYTES`], saying so.
fn cap(diff: String) -> String {
    if diff.len() <= MAX_DIFF_BYTES {
        return diff;
    }
    let note_room = 200;
    let mut end = MAX_DIFF_BYTES - note_room;
    while !diff.is_char_boundary(end) {
        end -= 1;
    }
    let end = diff[..end].rfind('\n').map(|at| at + 1).unwrap_or(end);
    let left = diff.len() - end;
    format!(
        "{}# … the diff is cut here: {left} more bytes are not shown (RemoteAgent carries at most {} KiB)\n",
        &diff[..end],
        MAX_DIFF_BYTES / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(
            root.join("src/main.rs"),
            "fn main() {\n    println!(\"hello\");\n}\n",
        )
        .unwrap();
        (dir, root)
    }

    fn show(root: &Path, tool: &str, input: Value) -> Shown {
        let summary = super::super::summary(tool, &input);
        shown(tool, &input, summary, root, None)
    }

    #[test]
    fn edit_shows_the_change_in_its_file() {
        let (_d, root) = project();
        let file = root.join("src/main.rs").display().to_string();
        let s = show(
            &root,
            "Edit",
            json!({"file_path": file, "old_string": "hello", "new_string": "world"}),
        );
        assert_eq!(s.summary, "src/main.rs");
        assert_eq!(
            s.diff.as_deref(),
            Some(
                "--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,3 +1,3 @@\n fn main() {\n-    println!(\"hello\");\n+    println!(\"world\");\n }\n"
            )
        );
        assert_eq!(s.cwd, None);
    }

    #[test]
    fn write_of_a_new_file_is_all_added() {
        let (_d, root) = project();
        let file = root.join("src/new.rs").display().to_string();
        let s = show(
            &root,
            "Write",
            json!({"file_path": file, "content": "a\nb\n"}),
        );
        assert_eq!(s.summary, "src/new.rs");
        assert_eq!(
            s.diff.as_deref(),
            Some("--- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1,2 @@\n+a\n+b\n")
        );
        // Over an existing file: what changes.
        let file = root.join("src/main.rs").display().to_string();
        let s = show(
            &root,
            "Write",
            json!({"file_path": file, "content": "fn main() {}\n"}),
        );
        let diff = s.diff.unwrap();
        assert!(
            diff.starts_with("--- a/src/main.rs\n+++ b/src/main.rs\n"),
            "{diff}"
        );
        assert!(diff.contains("-    println!(\"hello\");\n"), "{diff}");
        assert!(diff.contains("+fn main() {}\n"), "{diff}");
    }

    #[test]
    fn multi_edit_applies_its_edits_in_order() {
        let (_d, root) = project();
        let s = show(
            &root,
            "MultiEdit",
            json!({"file_path": "src/main.rs", "edits": [
                {"old_string": "hello", "new_string": "one"},
                {"old_string": "one", "new_string": "two"},
            ]}),
        );
        let diff = s.diff.unwrap();
        assert!(diff.contains("+    println!(\"two\");\n"), "{diff}");
        assert!(!diff.contains("one"), "{diff}");
        // An edit whose text is missing: the strings alone, said.
        let s = show(
            &root,
            "MultiEdit",
            json!({"file_path": "src/main.rs", "edits": [
                {"old_string": "hello", "new_string": "one"},
                {"old_string": "absent", "new_string": "x"},
            ]}),
        );
        let diff = s.diff.unwrap();
        assert!(
            diff.starts_with(
                "# the text of edit 2 is not in the file: the replaced text alone is shown\n"
            ),
            "{diff}"
        );
    }

    #[test]
    fn replace_all_replaces_every_occurrence() {
        let (_d, root) = project();
        std::fs::write(root.join("x.txt"), "a\nb\na\n").unwrap();
        let s = show(
            &root,
            "Edit",
            json!({"file_path": "x.txt", "old_string": "a", "new_string": "c", "replace_all": true}),
        );
        let diff = s.diff.unwrap();
        assert_eq!(diff.matches("+c\n").count(), 2, "{diff}");
    }

    #[test]
    fn bash_shows_its_working_folder() {
        let (_d, root) = project();
        let input = json!({"command": "ls"});
        let s = shown("Bash", &input, "ls".into(), &root, None);
        assert_eq!(s.cwd.as_deref(), Some("."));
        assert_eq!(s.diff, None);
        let s = shown("Bash", &input, "ls".into(), &root, Some(&root.join("src")));
        assert_eq!(s.cwd.as_deref(), Some("src"));
        let s = shown("Bash", &input, "ls".into(), &root, Some(Path::new("/tmp")));
        assert_eq!(
            s.cwd.as_deref(),
            Some(canonical(Path::new("/tmp")).to_str().unwrap())
        );
    }

    #[test]
    fn paths_outside_stay_absolute() {
        let (_d, root) = project();
        let s = show(
            &root,
            "Write",
            json!({"file_path": "/etc/hostname-x", "content": "x"}),
        );
        assert_eq!(s.summary, "/etc/hostname-x");
        assert!(s.diff.unwrap().contains("+++ /etc/hostname-x"));
    }

    #[test]
    fn long_diffs_are_cut_and_say_so() {
        let (_d, root) = project();
        let content: String = (0..40_000).map(|n| format!("line {n}\n")).collect();
        let s = show(
            &root,
            "Write",
            json!({"file_path": "big.txt", "content": content}),
        );
        let diff = s.diff.unwrap();
        assert!(diff.len() <= MAX_DIFF_BYTES, "{}", diff.len());
        assert!(diff.ends_with("KiB)\n"), "{}", &diff[diff.len() - 200..]);
        assert!(diff.contains("# … the diff is cut here: "));
    }
}
