//! Where `/get PATH` points, decided before anything is read: inside the
//! project folder or refused.
//!
//! The path is the user's, typed on a phone, so it is read as text relative
//! to the project folder and checked twice. First as written: an absolute
//! path (or `~/…`) and any `..` that climbs above the project are refused
//! without touching the disk. Then as the disk has it: the path is
//! canonicalized (every symlink followed) and must still lie under the
//! canonical project folder, so a symlink inside the project that leads
//! out is refused too. What it names must be a regular file or a folder;
//! a FIFO, socket or device is refused (opening a FIFO would block).

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

/// What `/get` will send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A regular file, by its canonical path.
    File(PathBuf),
    /// A folder, by its canonical path (sent zipped).
    Dir(PathBuf),
}

/// Why a path is refused; `Display` gives the words shown after
/// "/get PATH: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no path given; send /get PATH, a path inside the project")]
    Empty,
    #[error("absolute paths are refused; give a path inside the project, like src/main.rs")]
    Absolute,
    #[error("outside the project, refused")]
    Outside,
    #[error("it leads outside the project (through a symlink), refused")]
    SymlinkOutside,
    #[error("no such file or folder in the project")]
    NotFound,
    #[error("not a regular file or folder, refused")]
    Special,
    #[error("cannot be read: {0}")]
    Unreadable(String),
}

/// Resolves `requested` inside `project`.
pub fn resolve(project: &Path, requested: &str) -> Result<Target, Refusal> {
    let requested = requested.trim();
    if requested.is_empty() {
        return Err(Refusal::Empty);
    }
    if requested.contains('\0') {
        return Err(Refusal::NotFound);
    }
    let relative = Path::new(requested);
    // `~` is the shell's, not ours: `~/x` is a home path, not `./~/x`.
    if relative.is_absolute() || requested == "~" || requested.starts_with("~/") {
        return Err(Refusal::Absolute);
    }
    if climbs_out(relative) {
        return Err(Refusal::Outside);
    }
    let root = project
        .canonicalize()
        .map_err(|e| Refusal::Unreadable(format!("the project folder: {e}")))?;
    let canonical = match root.join(relative).canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling symlink is "not found" too; one that points out
            // of the project is named for what it is.
            return Err(dangling_outside(&root, relative).unwrap_or(Refusal::NotFound));
        }
        Err(e) => return Err(Refusal::Unreadable(e.to_string())),
    };
    if !canonical.starts_with(&root) {
        return Err(Refusal::SymlinkOutside);
    }
    let meta = std::fs::metadata(&canonical).map_err(|e| Refusal::Unreadable(e.to_string()))?;
    kind(&meta, canonical)
}

/// Whether `path` climbs above its starting folder as written (`..` past
/// the top), without looking at the disk.
fn climbs_out(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for c in path.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

/// For a path that does not resolve: whether its last part is a symlink
/// whose target lies outside the project (else `None`: not found).
fn dangling_outside(root: &Path, relative: &Path) -> Option<Refusal> {
    let link = root.join(relative);
    let target = std::fs::read_link(&link).ok()?;
    let base = link.parent()?;
    let joined = base.join(target);
    (joined.is_absolute() && !lexically_under(&joined, root)).then_some(Refusal::SymlinkOutside)
}

/// `path` (absolute) is under `root` once `.` and `..` are applied as text.
fn lexically_under(path: &Path, root: &Path) -> bool {
    let mut parts: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir => {}
            other => parts.push(other),
        }
    }
    parts.iter().collect::<PathBuf>().starts_with(root)
}

fn kind(meta: &Metadata, canonical: PathBuf) -> Result<Target, Refusal> {
    if meta.is_file() {
        Ok(Target::File(canonical))
    } else if meta.is_dir() {
        Ok(Target::Dir(canonical))
    } else {
        Err(Refusal::Special)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree {
        _dir: tempfile::TempDir,
        project: PathBuf,
        outside: PathBuf,
    }

    /// `{tmp}/project` with `src/main.rs`, `docs/`, and `{tmp}/secret`
    /// beside it.
    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("src")).unwrap();
        std::fs::create_dir_all(project.join("docs")).unwrap();
        std::fs::write(project.join("src/main.rs"), "fn main() {}\n").unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "top secret").unwrap();
        Tree {
            project,
            outside,
            _dir: dir,
        }
    }

    fn canon(p: &Path) -> PathBuf {
        p.canonicalize().unwrap()
    }

    #[test]
    fn files_and_folders_inside_resolve_to_their_canonical_path() {
        let t = tree();
        let main = canon(&t.project.join("src/main.rs"));
        assert_eq!(
            resolve(&t.project, "src/main.rs"),
            Ok(Target::File(main.clone()))
        );
        assert_eq!(
            resolve(&t.project, " ./src//main.rs "),
            Ok(Target::File(main.clone()))
        );
        // `..` that stays inside is fine.
        assert_eq!(
            resolve(&t.project, "docs/../src/main.rs"),
            Ok(Target::File(main))
        );
        assert_eq!(
            resolve(&t.project, "src"),
            Ok(Target::Dir(canon(&t.project.join("src"))))
        );
        assert_eq!(resolve(&t.project, "."), Ok(Target::Dir(canon(&t.project))));
    }

    #[test]
    fn paths_that_climb_out_or_are_absolute_are_refused_as_written() {
        let t = tree();
        assert_eq!(resolve(&t.project, "../secret"), Err(Refusal::Outside));
        assert_eq!(
            resolve(&t.project, "src/../../secret"),
            Err(Refusal::Outside)
        );
        // Refused even when nothing is there: the disk is not consulted.
        assert_eq!(resolve(&t.project, "../../nothing"), Err(Refusal::Outside));
        let abs = t.outside.display().to_string();
        assert_eq!(resolve(&t.project, &abs), Err(Refusal::Absolute));
        let inside_abs = t.project.join("src/main.rs").display().to_string();
        assert_eq!(resolve(&t.project, &inside_abs), Err(Refusal::Absolute));
        assert_eq!(
            resolve(&t.project, "~/.ssh/id_ed25519"),
            Err(Refusal::Absolute)
        );
        assert_eq!(resolve(&t.project, "  "), Err(Refusal::Empty));
        assert_eq!(resolve(&t.project, "a\0b"), Err(Refusal::NotFound));
    }

    #[test]
    fn symlinks_leading_out_are_refused_and_those_inside_followed() {
        let t = tree();
        symlink(&t.outside, t.project.join("leak")).unwrap();
        symlink(t.outside.parent().unwrap(), t.project.join("up")).unwrap();
        symlink("../../secret", t.project.join("src/rel")).unwrap();
        symlink("main.rs", t.project.join("src/alias.rs")).unwrap();
        symlink(t.outside.with_file_name("gone"), t.project.join("dangling")).unwrap();
        assert_eq!(resolve(&t.project, "leak"), Err(Refusal::SymlinkOutside));
        assert_eq!(resolve(&t.project, "up"), Err(Refusal::SymlinkOutside));
        assert_eq!(
            resolve(&t.project, "up/secret"),
            Err(Refusal::SymlinkOutside)
        );
        assert_eq!(resolve(&t.project, "src/rel"), Err(Refusal::SymlinkOutside));
        assert_eq!(
            resolve(&t.project, "dangling"),
            Err(Refusal::SymlinkOutside)
        );
        assert_eq!(
            resolve(&t.project, "src/alias.rs"),
            Ok(Target::File(canon(&t.project.join("src/main.rs"))))
        );
        assert_eq!(
            resolve(&t.project, "src/nothing.rs"),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn a_project_reached_through_a_symlink_still_contains_its_files() {
        let t = tree();
        let via = t.project.with_file_name("via");
        symlink(&t.project, &via).unwrap();
        assert_eq!(
            resolve(&via, "src/main.rs"),
            Ok(Target::File(canon(&t.project.join("src/main.rs"))))
        );
    }

    #[test]
    fn special_files_are_refused() {
        let t = tree();
        let fifo = t.project.join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(resolve(&t.project, "pipe"), Err(Refusal::Special));
        let sock = t.project.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(resolve(&t.project, "sock"), Err(Refusal::Special));
    }
}
