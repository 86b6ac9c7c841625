//! The files setup writes, each only when its content differs, so a second
//! run changes nothing that is already right. Writes are atomic (a private
//! temporary file renamed over the old one) and private (0600 files in 0700
//! folders): the token file must never be readable by anyone else, even
//! for a moment.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Created,
    Updated,
}

impl Change {
    pub fn word(self) -> &'static str {
        match self {
            Change::Unchanged => "unchanged",
            Change::Created => "created",
            Change::Updated => "updated",
        }
    }
}

/// Makes `path` hold `content`, mode 0600, in a 0700 folder.
pub fn ensure(path: &Path, content: &str) -> Result<Change> {
    let old = match std::fs::read_to_string(path) {
        Ok(old) => Some(old),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if old.as_deref() == Some(content) {
        // Right content; tighten a mode someone loosened.
        let mode = std::fs::metadata(path)
            .with_context(|| format!("inspecting {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", path.display()))?;
            return Ok(Change::Updated);
        }
        return Ok(Change::Unchanged);
    }
    let dir = path
        .parent()
        .with_context(|| format!("{} has no folder", path.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.setup-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(if old.is_some() {
        Change::Updated
    } else {
        Change::Created
    })
}

/// `text` (a TOML file) with the top-level `key` set to the string `value`,
/// every other line (comments included) kept as it was. A top-level key is
/// one before the first `[table]` header; a new one goes on the first line,
/// so it stays top-level.
pub fn with_top_level_string(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = {}", toml_string(value));
    let mut out = Vec::new();
    let mut done = false;
    let mut in_table = false;
    for l in text.lines() {
        let trimmed = l.trim_start();
        if trimmed.starts_with('[') {
            in_table = true;
        }
        let is_key = !in_table
            && trimmed
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_key && !done {
            out.push(line.clone());
            done = true;
        } else if !is_key {
            out.push(l.to_string());
        }
    }
    if !done {
        out.insert(0, line);
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// A TOML basic string.
pub fn toml_string(value: &str) -> String {
    let mut s = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_set_and_everything_else_kept() {
        let text = "# mine\ncloud_url = \"https://old\"  # a comment\nsecret_store = \"file\"\n\n[logs]\ncloud_url = \"not top level\"\n";
        let new = with_top_level_string(text, "cloud_url", "http://127.0.0.1:8080");
        assert_eq!(
            new,
            "# mine\ncloud_url = \"http://127.0.0.1:8080\"\nsecret_store = \"file\"\n\n[logs]\ncloud_url = \"not top level\"\n"
        );
        // Set again: the same text.
        assert_eq!(
            with_top_level_string(&new, "cloud_url", "http://127.0.0.1:8080"),
            new
        );
        // Absent: first line, before any table.
        assert_eq!(
            with_top_level_string("[logs]\nx = 1\n", "cloud_url", "a\"b"),
            "cloud_url = \"a\\\"b\"\n[logs]\nx = 1\n"
        );
        assert_eq!(with_top_level_string("", "k", "v"), "k = \"v\"\n");
        // A key that only starts like it is another key.
        assert_eq!(
            with_top_level_string("cloud_url_x = 1\n", "cloud_url", "v"),
            "cloud_url = \"v\"\ncloud_url_x = 1\n"
        );
        for text in [new.as_str(), "cloud_url = \"v\"\ncloud_url_x = 1\n"] {
            toml::from_str::<toml::Table>(text).unwrap();
        }
    }

    #[test]
    fn ensure_writes_privately_and_only_when_different() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/token");
        assert_eq!(ensure(&path, "x\n").unwrap(), Change::Created);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(ensure(&path, "x\n").unwrap(), Change::Unchanged);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(ensure(&path, "x\n").unwrap(), Change::Updated);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(ensure(&path, "y\n").unwrap(), Change::Updated);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "y\n");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
