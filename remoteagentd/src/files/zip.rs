//! A folder as one zip file, for `/get FOLDER`.
//!
//! Entries are named `{folder}/{path}` (unzipping makes the folder), in
//! name order, deflated, with their Unix permissions and modification
//! times. What is left out, and said in the notice that comes with the
//! zip:
//! * `.git` folders: a repository's history is rarely what a phone wants,
//!   and it is often larger than the files themselves (`/get .git` still
//!   zips the repository itself: only `.git` folders *below* the folder
//!   asked for are skipped);
//! * symlinks that lead outside the project (never followed), symlinks to
//!   folders (not followed, so no loop can form), and special files (FIFOs,
//!   sockets, devices: reading one could block);
//! * files that cannot be read.
//!
//! A symlink to a file inside the project is stored as that file's bytes.
//!
//! The zip is built in memory and given up as soon as it would pass its
//! limit (Telegram's 50 MB), or the folder holds more than
//! [`Limits::max_files`] entries or [`Limits::max_input`] bytes, so a
//! `/get .` of a huge project costs at most that much work.

use std::cell::Cell;
use std::fs::File;
use std::io::{Cursor, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Bounds on one zip.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest zip (bytes).
    pub max_bytes: u64,
    /// Most entries (files and folders).
    pub max_files: usize,
    /// Most bytes of files read.
    pub max_input: u64,
}

/// Entries a zip may hold by default.
pub const MAX_FILES: usize = 10_000;
/// Bytes of files read for one zip by default (beyond it, even a zip that
/// would fit takes too long to make).
pub const MAX_INPUT: u64 = 1_000_000_000;

/// What was left out of a zip, by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub git: usize,
    pub links_out: usize,
    pub linked_folders: usize,
    pub special: usize,
    pub unreadable: usize,
}

impl LeftOut {
    /// The words for the notice, `None` when nothing was left out.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        let mut add = |n: usize, one: &str, many: &str| {
            if n == 1 {
                parts.push(one.to_string());
            } else if n > 1 {
                parts.push(format!("{n} {many}"));
            }
        };
        add(self.git, "a .git folder", ".git folders");
        add(
            self.links_out,
            "a symlink leading outside the project",
            "symlinks leading outside the project",
        );
        add(
            self.linked_folders,
            "a symlink to a folder",
            "symlinks to folders",
        );
        add(
            self.special,
            "a special file (FIFO, socket or device)",
            "special files (FIFOs, sockets, devices)",
        );
        add(
            self.unreadable,
            "a file that could not be read",
            "files that could not be read",
        );
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// A finished zip.
#[derive(Debug)]
pub struct Zipped {
    pub bytes: Vec<u8>,
    /// Files stored (folders not counted).
    pub files: usize,
    pub left_out: LeftOut,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZipError {
    /// The zip would pass `max_bytes`.
    #[error("the zip would be larger than the limit")]
    TooBig,
    /// The folder holds more than `max_input` bytes of files.
    #[error("the folder holds more than {0} bytes")]
    TooMuchInput(u64),
    #[error("the folder holds more than {0} files and folders")]
    TooManyFiles(usize),
    #[error("{0}")]
    Io(String),
}

/// Zips `dir` (canonical, inside the canonical project folder `root`) with
/// its entries under `top/`.
pub fn zip_folder(root: &Path, dir: &Path, top: &str, limits: Limits) -> Result<Zipped, ZipError> {
    let over = Rc::new(Cell::new(false));
    let out = Capped {
        inner: Cursor::new(Vec::new()),
        cap: limits.max_bytes,
        over: over.clone(),
    };
    let mut job = Job {
        root,
        zip: ZipWriter::new(out),
        limits,
        over,
        entries: 0,
        input: 0,
        files: 0,
        left_out: LeftOut::default(),
    };
    job.folder(dir, top)?;
    let Job {
        zip,
        over,
        files,
        left_out,
        ..
    } = job;
    let out = zip.finish().map_err(|e| classify(&over, e))?;
    Ok(Zipped {
        bytes: out.inner.into_inner(),
        files,
        left_out,
    })
}

struct Job<'a> {
    root: &'a Path,
    zip: ZipWriter<Capped>,
    limits: Limits,
    over: Rc<Cell<bool>>,
    entries: usize,
    input: u64,
    files: usize,
    left_out: LeftOut,
}

impl Job<'_> {
    /// Adds the folder `dir` as `name/` and everything in it.
    fn folder(&mut self, dir: &Path, name: &str) -> Result<(), ZipError> {
        self.count()?;
        let options = options(std::fs::metadata(dir).ok().as_ref());
        self.zip
            .add_directory(format!("{name}/"), options)
            .map_err(|e| classify(&self.over, e))?;
        let mut children: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(Result::ok).collect(),
            Err(_) => {
                self.left_out.unreadable += 1;
                return Ok(());
            }
        };
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let file_name = child.file_name();
            let child_name = format!("{name}/{}", file_name.to_string_lossy());
            let path = child.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                self.left_out.unreadable += 1;
                continue;
            };
            if meta.file_type().is_symlink() {
                self.symlink(&path, &child_name)?;
            } else if meta.is_dir() {
                if file_name == ".git" {
                    self.left_out.git += 1;
                } else {
                    self.folder(&path, &child_name)?;
                }
            } else if meta.is_file() {
                self.file(&path, &child_name)?;
            } else {
                self.left_out.special += 1;
            }
        }
        Ok(())
    }

    /// A symlink: followed only to a regular file inside the project.
    fn symlink(&mut self, path: &Path, name: &str) -> Result<(), ZipError> {
        let target = match path.canonicalize() {
            Ok(t) if t.starts_with(self.root) => t,
            _ => {
                self.left_out.links_out += 1;
                return Ok(());
            }
        };
        match std::fs::metadata(&target) {
            Ok(m) if m.is_file() => self.file(&target, name),
            Ok(m) if m.is_dir() => {
                self.left_out.linked_folders += 1;
                Ok(())
            }
            Ok(_) => {
                self.left_out.special += 1;
                Ok(())
            }
            Err(_) => {
                self.left_out.unreadable += 1;
                Ok(())
            }
        }
    }

    fn file(&mut self, path: &Path, name: &str) -> Result<(), ZipError> {
        self.count()?;
        let Ok(mut file) = super::open_regular(path) else {
            self.left_out.unreadable += 1;
            return Ok(());
        };
        let meta = file.metadata().ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        self.input = self.input.saturating_add(len);
        if self.input > self.limits.max_input {
            return Err(ZipError::TooMuchInput(self.limits.max_input));
        }
        self.zip
            .start_file(name, options(meta.as_ref()))
            .map_err(|e| classify(&self.over, e))?;
        match copy_capped(&mut file, &mut self.zip, len) {
            Ok(()) => {
                self.files += 1;
                Ok(())
            }
            Err(_) if self.over.get() => Err(ZipError::TooBig),
            Err(_) => {
                // Half an entry is still an entry: it is left in, cut, and
                // counted as unreadable so the notice says so.
                self.left_out.unreadable += 1;
                Ok(())
            }
        }
    }

    fn count(&mut self) -> Result<(), ZipError> {
        self.entries += 1;
        if self.entries > self.limits.max_files {
            return Err(ZipError::TooManyFiles(self.limits.max_files));
        }
        Ok(())
    }
}

/// Copies at most `len` bytes (the size when the file was opened: a file
/// that grows meanwhile does not make the zip lie about the input limit).
fn copy_capped(file: &mut File, zip: &mut ZipWriter<Capped>, len: u64) -> std::io::Result<()> {
    use std::io::Read;
    std::io::copy(&mut file.take(len), zip).map(|_| ())
}

fn options(meta: Option<&std::fs::Metadata>) -> SimpleFileOptions {
    use std::os::unix::fs::MetadataExt;
    let mut options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    if let Some(m) = meta {
        options = options.unix_permissions(m.mode() & 0o777);
        if let Some(t) = m.modified().ok().and_then(zip_time) {
            options = options.last_modified_time(t);
        }
    }
    options
}

/// A modification time as a zip stores it (UTC; zip has no time zone).
fn zip_time(t: std::time::SystemTime) -> Option<DateTime> {
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    // `2026-03-04T10:11:12Z`
    let s = remoteagent_proto::rfc3339::format(ms, false);
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u16>().ok();
    DateTime::from_date_and_time(
        n(0..4)?,
        u8::try_from(n(5..7)?).ok()?,
        u8::try_from(n(8..10)?).ok()?,
        u8::try_from(n(11..13)?).ok()?,
        u8::try_from(n(14..16)?).ok()?,
        u8::try_from(n(17..19)?).ok()?,
    )
    .ok()
}

fn classify(over: &Cell<bool>, e: zip::result::ZipError) -> ZipError {
    if over.get() {
        ZipError::TooBig
    } else {
        ZipError::Io(e.to_string())
    }
}

/// An in-memory zip that refuses to grow past `cap` (and says so in
/// `over`, since the zip writer turns the error into its own).
struct Capped {
    inner: Cursor<Vec<u8>>,
    cap: u64,
    over: Rc<Cell<bool>>,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.inner.position().saturating_add(buf.len() as u64) > self.cap {
            self.over.set(true);
            return Err(std::io::Error::other("the zip is over its size limit"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Capped {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    const ROOMY: Limits = Limits {
        max_bytes: 10_000_000,
        max_files: 100,
        max_input: 10_000_000,
    };

    fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut out = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            out.push((f.name().unwrap().to_string(), data));
        }
        out
    }

    #[test]
    fn a_folder_is_zipped_under_its_name_without_what_leads_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("p")).unwrap();
        let root = dir.path().join("p").canonicalize().unwrap();
        let src = root.join("src");
        std::fs::create_dir_all(src.join("deep")).unwrap();
        std::fs::create_dir_all(src.join(".git/objects")).unwrap();
        std::fs::write(src.join("main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(src.join("deep/lib.rs"), "pub fn x() {}\n").unwrap();
        std::fs::write(src.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        symlink(dir.path().join("secret"), src.join("leak")).unwrap();
        symlink("main.rs", src.join("alias.rs")).unwrap();
        symlink("deep", src.join("loop")).unwrap();
        nix::unistd::mkfifo(&src.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();

        let z = zip_folder(&root, &src, "src", ROOMY).unwrap();
        let got = entries(&z.bytes);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "src/",
                "src/alias.rs",
                "src/deep/",
                "src/deep/lib.rs",
                "src/main.rs"
            ]
        );
        assert_eq!(got[1].1, b"fn main() {}\n");
        assert_eq!(got[3].1, b"pub fn x() {}\n");
        assert_eq!(z.files, 3);
        assert_eq!(
            z.left_out,
            LeftOut {
                git: 1,
                links_out: 1,
                linked_folders: 1,
                special: 1,
                unreadable: 0
            }
        );
        assert_eq!(
            z.left_out.describe().unwrap(),
            "a .git folder, a symlink leading outside the project, a symlink to a folder, a special file (FIFO, socket or device)"
        );
    }

    #[test]
    fn limits_stop_the_zip_early() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for i in 0..5 {
            // Random bytes do not compress.
            let data: Vec<u8> = (0..20_000).map(|_| rand::random::<u8>()).collect();
            std::fs::write(root.join(format!("f{i}")), data).unwrap();
        }
        let small = Limits {
            max_bytes: 50_000,
            ..ROOMY
        };
        assert_eq!(
            zip_folder(&root, &root, "p", small).unwrap_err(),
            ZipError::TooBig
        );
        let few = Limits {
            max_files: 3,
            ..ROOMY
        };
        assert_eq!(
            zip_folder(&root, &root, "p", few).unwrap_err(),
            ZipError::TooManyFiles(3)
        );
        let little_input = Limits {
            max_input: 30_000,
            ..ROOMY
        };
        assert_eq!(
            zip_folder(&root, &root, "p", little_input).unwrap_err(),
            ZipError::TooMuchInput(30_000)
        );
        assert_eq!(zip_folder(&root, &root, "p", ROOMY).unwrap().files, 5);
        assert_eq!(LeftOut::default().describe(), None);
    }
}
