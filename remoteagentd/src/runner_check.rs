//! Would the runner start? Checked when a folder is paired, because the
//! daemon runs as a login service whose `PATH` is often shorter than the
//! user's shell's: `claude` installed under `~/.local/bin` works in the
//! terminal and then fails on the first prompt from the phone. Saying so at
//! pairing time, with the fix, saves that round trip.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use remoteagent_proto::runner::RunnerSpec;

/// A warning for the user when `runner`'s program cannot be found the way
/// the daemon will look for it: on `path` (the daemon's own `PATH`, which
/// runners inherit), or relative to the project folder for a program
/// given with a `/`. `None` when it is there and executable.
pub fn missing_program(
    runner: &RunnerSpec,
    project: &Path,
    path: Option<&OsStr>,
) -> Option<String> {
    let program = match runner {
        RunnerSpec::Preset(preset) => preset.program().to_string(),
        RunnerSpec::Command(argv) => argv.first()?.clone(),
    };
    if program.contains('/') {
        let full = project.join(&program);
        if is_executable(&full) {
            return None;
        }
        return Some(format!(
            "the runner {program} is not an executable file in {} (it is run from there)",
            project.display()
        ));
    }
    if find_on_path(&program, path).is_some() {
        return None;
    }
    Some(format!(
        "the runner `{program}` is not on remoteagentd's PATH, so prompts will fail to start it. \
         Install it, or pair with `--command /full/path/to/{program}`, or add its folder to the \
         service's PATH (`remoteagentctl service install` records the PATH of the shell it runs in)"
    ))
}

fn find_on_path(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::runner::Preset;

    fn script(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn a_preset_on_the_path_is_fine_and_one_missing_is_named() {
        let bin = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        script(bin.path(), "claude", 0o755);
        let path = std::env::join_paths([Path::new("/nonexistent"), bin.path()]).unwrap();
        let claude = RunnerSpec::Preset(Preset::Claude);
        assert_eq!(missing_program(&claude, project.path(), Some(&path)), None);
        let codex = RunnerSpec::Preset(Preset::Codex);
        let warning = missing_program(&codex, project.path(), Some(&path)).unwrap();
        assert!(
            warning.contains("`codex` is not on remoteagentd's PATH"),
            "{warning}"
        );
        assert!(missing_program(&claude, project.path(), None).is_some());
    }

    #[test]
    fn a_file_without_the_executable_bit_does_not_count() {
        let bin = tempfile::tempdir().unwrap();
        script(bin.path(), "aider", 0o644);
        let aider = RunnerSpec::Preset(Preset::Aider);
        assert!(missing_program(&aider, bin.path(), Some(bin.path().as_os_str())).is_some());
    }

    #[test]
    fn a_relative_command_is_looked_up_in_the_project() {
        let project = tempfile::tempdir().unwrap();
        let run = RunnerSpec::Command(vec!["./run.sh".into(), "--fast".into()]);
        let warning = missing_program(&run, project.path(), None).unwrap();
        assert!(
            warning.contains("./run.sh is not an executable file"),
            "{warning}"
        );
        script(project.path(), "run.sh", 0o700);
        assert_eq!(missing_program(&run, project.path(), None), None);
    }
}
