//! The `ssal run` (or `ssal prepare`) command line of one task, written once for every backend:
//! the local runner starts it as a child process, the Slurm array script renders it as one
//! shell-quoted line whose job directory is a shell variable (the task reads its job from the
//! task list).
use super::{SchedulerError, Work};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a sweep's jobs are run: which ssal binary and how often it checkpoints. The job's
/// directory (its `config.toml` in, `result.json` out) is given where the command is used.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCommand {
    /// The ssal binary (the full build: it trains).
    pub ssal: PathBuf,
    /// `ssal run --checkpoint-every` in seconds.
    pub checkpoint_every: u64,
}

/// One word of the command line: fixed text, or a path inside the job's directory (`None`: the
/// directory itself).
enum Word {
    Text(String),
    InJobDir(Option<&'static str>),
}

impl RunCommand {
    /// How a backend runs its jobs: with the binary `configured` if given, else this one —
    /// unless this one is the analysis-only build, which would fail every job; `hint` says what
    /// to do instead.
    pub fn for_jobs(
        configured: Option<&Path>,
        hint: &'static str,
        checkpoint_every: u64,
    ) -> Result<RunCommand, SchedulerError> {
        let ssal = match configured {
            Some(p) => p.to_path_buf(),
            None if !cfg!(feature = "torch") => return Err(SchedulerError::CannotRun(hint)),
            None => std::env::current_exe().map_err(|e| SchedulerError::Io(format!("cannot locate ssal: {e}")))?,
        };
        Ok(RunCommand { ssal, checkpoint_every })
    }

    /// The argv of `work`, with the task's directory left open.
    fn words(&self, work: Work) -> Vec<Word> {
        let text = |s: &str| Word::Text(s.to_string());
        let ssal = Word::Text(self.ssal.to_string_lossy().into_owned());
        match work {
            Work::Run => vec![
                ssal,
                text("run"),
                text("--config"),
                Word::InJobDir(Some("config.toml")),
                text("--out"),
                Word::InJobDir(None),
                text("--checkpoint-every"),
                Word::Text(self.checkpoint_every.to_string()),
            ],
            Work::Prepare => vec![ssal, text("prepare"), text("--config"), Word::InJobDir(Some("config.toml"))],
        }
    }

    /// The command that does `work` in `job_dir`, ready to spawn (no stdio or environment set).
    pub fn command(&self, work: Work, job_dir: &Path) -> Command {
        let mut cmd = Command::new(&self.ssal);
        for word in self.words(work).into_iter().skip(1) {
            match word {
                Word::Text(t) => cmd.arg(t),
                Word::InJobDir(Some(file)) => cmd.arg(job_dir.join(file)),
                Word::InJobDir(None) => cmd.arg(job_dir),
            };
        }
        cmd
    }

    /// The command of `work` as one shell line for the task whose directory is in the shell variable
    /// `job_dir_var`: fixed words shell-quoted, the directory double-quoted
    /// (`'/opt/ssal bin/ssal' run --config "$job_dir/config.toml" --out "$job_dir" …`). Fails on
    /// a word the shell cannot hold (a NUL character).
    pub fn shell_line(&self, work: Work, job_dir_var: &str) -> Result<String, String> {
        let words: Result<Vec<String>, String> = self
            .words(work)
            .into_iter()
            .map(|word| match word {
                Word::Text(t) => {
                    shlex::try_quote(&t).map(|q| q.into_owned()).map_err(|e| format!("cannot shell-quote {t:?}: {e}"))
                }
                Word::InJobDir(Some(file)) => Ok(format!("\"${job_dir_var}/{file}\"")),
                Word::InJobDir(None) => Ok(format!("\"${job_dir_var}\"")),
            })
            .collect();
        Ok(words?.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunCommand {
        RunCommand { ssal: PathBuf::from("/opt/ssal bin/ssal"), checkpoint_every: 600 }
    }

    #[test]
    fn the_process_and_the_shell_line_run_the_same_argv() {
        let cmd = run().command(Work::Run, Path::new("/r/jobs/ab12"));
        assert_eq!(cmd.get_program(), "/opt/ssal bin/ssal");
        let args: Vec<&std::ffi::OsStr> = cmd.get_args().collect();
        assert_eq!(
            args,
            ["run", "--config", "/r/jobs/ab12/config.toml", "--out", "/r/jobs/ab12", "--checkpoint-every", "600"]
        );
        let line = run().shell_line(Work::Run, "job_dir").unwrap();
        assert_eq!(
            line,
            r#"'/opt/ssal bin/ssal' run --config "$job_dir/config.toml" --out "$job_dir" --checkpoint-every 600"#
        );
        // The shell splits the line into the same words once the variable is set.
        let echo = std::process::Command::new("bash")
            .args(["-c", &format!("job_dir='/r/jobs/ab12'; printf '%s\\n' {line}")])
            .output()
            .unwrap();
        let words: Vec<String> = String::from_utf8(echo.stdout).unwrap().lines().map(String::from).collect();
        let mut expected = vec!["/opt/ssal bin/ssal".to_string()];
        expected.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
        assert_eq!(words, expected);
        let prepare = run().command(Work::Prepare, Path::new("/r/prepare/k1"));
        let args: Vec<&std::ffi::OsStr> = prepare.get_args().collect();
        assert_eq!(args, ["prepare", "--config", "/r/prepare/k1/config.toml"]);
        assert_eq!(
            run().shell_line(Work::Prepare, "job_dir").unwrap(),
            r#"'/opt/ssal bin/ssal' prepare --config "$job_dir/config.toml""#
        );
        let nul = RunCommand { ssal: PathBuf::from("a\0b"), checkpoint_every: 1 };
        assert!(nul.shell_line(Work::Run, "job_dir").unwrap_err().contains("cannot shell-quote"));
    }
}
