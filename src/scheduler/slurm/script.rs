//! Slurm batch scripts: the `[slurm]` table of a sweep file and the job-array script rendered
//! from `templates/slurm-array.sh.j2` (or a site's own template) with every value shell-quoted.
use crate::scheduler::{RunCommand, Work};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The built-in array template, compiled in so the binary needs no files beside it.
const ARRAY_TEMPLATE: &str = include_str!("../../../templates/slurm-array.sh.j2");

/// `[slurm]` in a sweep file: resources of each array task and how the sweep uses the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmSettings {
    /// `--partition`. Default: the cluster's default partition.
    pub partition: Option<String>,
    /// `--account`. Default: the user's default account.
    pub account: Option<String>,
    /// `--qos`. Default: none.
    pub qos: Option<String>,
    /// `--time` of one task (a task near it checkpoints and is requeued). Default: "24:00:00".
    pub time: String,
    /// `--mem`. Default: "16G".
    pub mem: String,
    /// `--cpus-per-task`. Default: 4.
    pub cpus_per_task: u32,
    /// `--gres`, e.g. "gpu:1". Default: none.
    pub gres: Option<String>,
    /// At most this many tasks of one array run at once (`--array=…%N`). Default: no limit.
    pub throttle: Option<usize>,
    /// At most this many of the sweep's tasks queued or running at once; later chunks are
    /// submitted as earlier ones finish (sites cap users at 100–1,000). Default: 500.
    pub max_queued: usize,
    /// Seconds before the time limit at which Slurm sends USR1 (`--signal=B:USR1@N`). Default: 120.
    pub signal_seconds: u32,
    /// Requeue a task that checkpointed before its time limit (`--requeue`). Default: true.
    pub requeue: bool,
    /// Attempts per job before a failed job is left failed. Default: 3.
    pub max_attempts: u32,
    /// Circuit breaker: once this many attempts of the sweep have failed, nothing more is
    /// submitted (`--wait` and `resume` say which error the failures share). Default: 10.
    pub max_failures: u32,
    /// Jobs run one after another inside one array task (packing short jobs: fewer tasks for
    /// the scheduler and the per-user limits). Each keeps its own log, checkpoint and result; a
    /// failed job does not stop the next (the task then exits non-zero); a requeued task skips
    /// the jobs whose result is complete. `time` must cover them all. Slurm only: the local
    /// backend runs one job per slot. Default: 1.
    pub jobs_per_task: usize,
    /// `ssal run --checkpoint-every` in seconds. Default: 600.
    pub checkpoint_every: u64,
    /// Extra `#SBATCH` lines, without the prefix (e.g. "--constraint=a100"). Default: none.
    pub extra: Vec<String>,
    /// Shell lines run before ssal in each task (e.g. "module load cuda"). Default: none.
    pub setup: Vec<String>,
    /// A site's own array template (minijinja), instead of the built-in one. Default: built-in.
    pub template: Option<PathBuf>,
    /// The ssal binary the tasks run. Default: the binary that submits.
    pub ssal: Option<PathBuf>,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            partition: None,
            account: None,
            qos: None,
            time: "24:00:00".into(),
            mem: "16G".into(),
            cpus_per_task: 4,
            gres: None,
            throttle: None,
            max_queued: 500,
            signal_seconds: 120,
            requeue: true,
            max_attempts: 3,
            max_failures: 10,
            jobs_per_task: 1,
            checkpoint_every: 600,
            extra: Vec::new(),
            setup: Vec::new(),
            template: None,
            ssal: None,
        }
    }
}

impl SlurmSettings {
    /// How many array tasks `jobs` jobs take, `jobs_per_task` to a task.
    pub fn array_tasks(&self, jobs: usize) -> usize {
        jobs.div_ceil(self.jobs_per_task.max(1))
    }

    /// Refuses values that cannot be what the user meant: a line break, carriage return or NUL
    /// in any value (it would end its `#SBATCH` line and run the rest as shell), and zero caps.
    pub fn validate(&self) -> Result<(), ScriptError> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        let single: [(&'static str, Option<String>); 8] = [
            ("partition", self.partition.clone()),
            ("account", self.account.clone()),
            ("qos", self.qos.clone()),
            ("time", Some(self.time.clone())),
            ("mem", Some(self.mem.clone())),
            ("gres", self.gres.clone()),
            ("template", path(&self.template)),
            ("ssal", path(&self.ssal)),
        ];
        let lists = [("extra", &self.extra), ("setup", &self.setup)];
        let values = single
            .iter()
            .filter_map(|(f, v)| v.as_ref().map(|v| (*f, v)))
            .chain(lists.iter().flat_map(|(f, l)| l.iter().map(move |v| (*f, v))));
        for (field, value) in values {
            if let Some(c) = value.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
                let what = match c {
                    '\n' => "a line break",
                    '\r' => "a carriage return",
                    _ => "a NUL character",
                };
                return Err(ScriptError::Setting {
                    field,
                    message: format!("{value:?} contains {what}; give one value (lists: one entry per line)"),
                });
            }
        }
        let zero = [
            ("max_queued", self.max_queued == 0),
            ("throttle", self.throttle == Some(0)),
            ("max_attempts", self.max_attempts == 0),
            ("max_failures", self.max_failures == 0),
            ("cpus_per_task", self.cpus_per_task == 0),
            ("jobs_per_task", self.jobs_per_task == 0),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, z)| *z) {
            return Err(ScriptError::Setting { field, message: "must be at least 1".into() });
        }
        Ok(())
    }
}

/// What one array submission needs besides the settings.
#[derive(Debug, Clone)]
pub struct ArrayScript<'a> {
    pub sweep: &'a str,
    /// File with one job id per line; task i runs the `[slurm] jobs_per_task` lines from
    /// i × jobs_per_task + 1 on.
    pub task_list: &'a Path,
    /// Array tasks (not jobs: each runs up to `jobs_per_task` jobs).
    pub tasks: usize,
    /// `results/<sweep>/jobs`, holding `<job id>/config.toml`.
    pub jobs_dir: &'a Path,
    /// Slurm's own output file pattern (the job's output goes to `<job dir>/log.txt`).
    pub slurm_log: &'a Path,
    /// How each job runs (the line is rendered with the job's directory in `$job_dir`).
    pub run: &'a RunCommand,
    /// What each task runs: its jobs (`ssal run`), or a prepare stage (`ssal prepare`).
    pub work: Work,
}

/// Errors of rendering, naming the template.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read template {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
    #[error("[slurm] {field}: {message}")]
    Setting { field: &'static str, message: String },
}

fn quote(value: String) -> Result<String, minijinja::Error> {
    shlex::try_quote(&value).map(|q| q.into_owned()).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("cannot shell-quote {value:?}: {e}"))
    })
}

/// Renders the job-array batch script.
pub fn render_array_script(settings: &SlurmSettings, array: &ArrayScript) -> Result<String, ScriptError> {
    settings.validate()?;
    let (name, source) = match &settings.template {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|source| ScriptError::Read { path: path.clone(), source })?,
        ),
        None => ("templates/slurm-array.sh.j2".to_string(), ARRAY_TEMPLATE.to_string()),
    };
    let render_error = |e: minijinja::Error| ScriptError::Render { name: name.clone(), message: format!("{e:#}") };
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("q", quote);
    env.add_template("array", &source).map_err(render_error)?;
    if settings.jobs_per_task > 1 {
        let used = env.get_template("array").map_err(render_error)?.undeclared_variables(false);
        if !used.contains("jobs_per_task") {
            return Err(ScriptError::Render {
                name,
                message: format!(
                    "[slurm] jobs_per_task = {} needs a template that runs several jobs per task, and this one \
                     never uses `jobs_per_task` (see the loop in templates/slurm-array.sh.j2)",
                    settings.jobs_per_task
                ),
            });
        }
    }
    let path = |p: &Path| p.display().to_string();
    let run_command = array
        .run
        .shell_line(array.work, "job_dir")
        .map_err(|message| ScriptError::Setting { field: "ssal", message })?;
    let context = minijinja::context! {
        sweep => array.sweep,
        job_name => format!("ssal-{}", array.sweep),
        tasks => array.tasks,
        // A prepare stage is one task of its own, never packed.
        jobs_per_task => if array.work == Work::Prepare { 1 } else { settings.jobs_per_task },
        throttle => settings.throttle,
        slurm_log => path(array.slurm_log),
        time => &settings.time,
        mem => &settings.mem,
        cpus_per_task => settings.cpus_per_task,
        partition => &settings.partition,
        account => &settings.account,
        qos => &settings.qos,
        gres => &settings.gres,
        signal_seconds => settings.signal_seconds,
        requeue => settings.requeue,
        extra => &settings.extra,
        setup => &settings.setup,
        task_list => path(array.task_list),
        jobs_dir => path(array.jobs_dir),
        ssal => path(&array.run.ssal),
        checkpoint_every => array.run.checkpoint_every,
        run_command => run_command,
    };
    let mut script = env.get_template("array").and_then(|t| t.render(context)).map_err(render_error)?;
    script.push('\n');
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(settings: &SlurmSettings) -> String {
        let array = ArrayScript {
            sweep: "it's a test",
            task_list: Path::new("/data/my results/tasks-0.txt"),
            tasks: 6,
            jobs_dir: Path::new("/data/my results/jobs"),
            slurm_log: Path::new("/data/my results/logs/%A_%a.out"),
            run: &RunCommand { ssal: "/opt/ssal bin/ssal".into(), checkpoint_every: settings.checkpoint_every },
            work: Work::Run,
        };
        render_array_script(settings, &array).unwrap()
    }

    /// Renders a one-task array with placeholder paths (for errors).
    fn render_one_task(settings: &SlurmSettings) -> Result<String, ScriptError> {
        let run = RunCommand { ssal: "ssal".into(), checkpoint_every: 600 };
        let array = ArrayScript {
            sweep: "s",
            task_list: Path::new("t"),
            tasks: 1,
            jobs_dir: Path::new("j"),
            slurm_log: Path::new("l"),
            run: &run,
            work: Work::Run,
        };
        render_array_script(settings, &array)
    }

    #[test]
    fn defaults_render_the_documented_directives() {
        let s = render(&SlurmSettings::default());
        for line in [
            "#SBATCH --array=0-5\n",
            "#SBATCH --time=24:00:00\n",
            "#SBATCH --mem=16G\n",
            "#SBATCH --cpus-per-task=4\n",
            "#SBATCH --signal=B:USR1@120\n",
            "#SBATCH --requeue\n",
            "--checkpoint-every 600 ",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        assert!(!s.contains("--partition") && !s.contains("--gres") && !s.contains("--qos"), "{s}");
        assert!(s.starts_with("#!/bin/bash\n"));
    }

    #[test]
    fn awkward_values_are_shell_quoted() {
        let settings = SlurmSettings {
            partition: Some("gpu nodes".into()),
            account: Some("o'brien".into()),
            gres: Some("gpu:1".into()),
            throttle: Some(2),
            extra: vec!["--constraint=a100".into()],
            setup: vec!["module load cuda/12".into()],
            ..Default::default()
        };
        let s = render(&settings);
        assert!(s.contains("#SBATCH --array=0-5%2\n"), "{s}");
        assert!(s.contains("#SBATCH --partition='gpu nodes'\n"), "{s}");
        assert!(s.contains(r#"#SBATCH --account="o'brien""#), "{s}");
        assert!(s.contains("#SBATCH --gres=gpu:1\n"), "{s}");
        assert!(s.contains("#SBATCH --constraint=a100\n") && s.contains("\nmodule load cuda/12\n"), "{s}");
        assert!(s.contains("\ntask_list='/data/my results/tasks-0.txt'\n"), "{s}");
        assert!(s.contains("\njobs_dir='/data/my results/jobs'\n"), "{s}");
        assert!(s.contains("'/opt/ssal bin/ssal' run"), "{s}");
        // The quoted script is valid shell.
        let check = std::process::Command::new("bash").args(["-n", "-c", &s]).status().unwrap();
        assert!(check.success());
    }

    #[test]
    fn bad_settings_and_templates_are_named() {
        let multi = SlurmSettings { extra: vec!["--a\n--b".into()], ..Default::default() };
        let e = render_one_task(&multi).unwrap_err().to_string();
        assert!(e.contains("[slurm] extra"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let tpl = dir.path().join("site.j2");
        std::fs::write(&tpl, "#SBATCH --x={{ no_such_value }}\n").unwrap();
        let bad = SlurmSettings { template: Some(tpl.clone()), ..Default::default() };
        let e = render_one_task(&bad).unwrap_err().to_string();
        assert!(e.contains("site.j2") && e.contains("undefined value") && e.contains(":1"), "{e}");
        let e = toml::from_str::<SlurmSettings>("partiton = \"gpu\"").unwrap_err().to_string();
        assert!(e.contains("partiton"), "{e}");
    }

    /// A job directory under `jobs` for `id`, with an optional result written as ssal writes
    /// one (complete or not) and an exit code for the fake ssal.
    fn job(jobs: &Path, id: &str, result: Option<bool>, exit: u8) {
        let dir = jobs.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("exit"), exit.to_string()).unwrap();
        if let Some(complete) = result {
            let r = crate::result::RunResult {
                ssal_version: "0".into(),
                git_commit: "x".into(),
                config_hash: "h".into(),
                config: crate::config::ExperimentConfig::default(),
                device: "cpu".into(),
                complete,
                labeled_indices: vec![],
                cycles: vec![],
                final_accuracy: None,
                wall_seconds: 0.0,
                environment: Default::default(),
            };
            crate::result::write(&crate::result::path_in(&dir), &r).unwrap();
        }
    }

    #[test]
    fn a_prepare_stage_is_one_unpacked_task_running_ssal_prepare() {
        let run = RunCommand { ssal: "/opt/ssal".into(), checkpoint_every: 600 };
        let array = ArrayScript {
            sweep: "s",
            task_list: Path::new("/r/arrays/1.tasks"),
            tasks: 1,
            jobs_dir: Path::new("/r/prepare"),
            slurm_log: Path::new("/r/arrays/logs/%A_%a.out"),
            run: &run,
            work: Work::Prepare,
        };
        let packed = SlurmSettings { jobs_per_task: 2, ..Default::default() };
        let script = render_array_script(&packed, &array).unwrap();
        assert!(script.contains("one array task per job") && !script.contains("up to 2 jobs"), "{script}");
        assert!(script.contains("first=$((SLURM_ARRAY_TASK_ID * 1 + 1))"), "{script}");
        assert!(script.contains("/opt/ssal prepare --config \"$job_dir/config.toml\""), "{script}");
    }

    #[test]
    fn a_packed_task_runs_its_jobs_in_turn_past_failures_and_skips_complete_ones() {
        let t = tempfile::tempdir().unwrap();
        let jobs = t.path().join("jobs");
        // Job a fails, b runs after it; c's result is complete (a requeued task), d's is not.
        for (id, result, exit) in
            [("a", None, 3), ("b", None, 0), ("c", Some(true), 0), ("d", Some(false), 0), ("e", None, 0)]
        {
            job(&jobs, id, result, exit);
        }
        let list = t.path().join("list.tasks");
        std::fs::write(&list, "a\nb\nc\nd\ne\n").unwrap();
        // A fake ssal: notes which job it ran and exits with the job's code.
        let ran = t.path().join("ran");
        let ssal = t.path().join("ssal");
        std::fs::write(
            &ssal,
            format!("#!/bin/bash\necho \"$5\" >> '{}'\necho \"training $5\"\nexit $(cat \"$5/exit\")\n", ran.display()),
        )
        .unwrap();
        std::fs::set_permissions(&ssal, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let settings = SlurmSettings { jobs_per_task: 2, ..Default::default() };
        assert_eq!(settings.array_tasks(5), 3);
        let run = RunCommand { ssal: ssal.clone(), checkpoint_every: 600 };
        let array = ArrayScript {
            sweep: "s",
            task_list: &list,
            tasks: 3,
            jobs_dir: &jobs,
            slurm_log: Path::new("/l/%A_%a.out"),
            run: &run,
            work: Work::Run,
        };
        let script = render_array_script(&settings, &array).unwrap();
        assert!(script.contains("#SBATCH --array=0-2\n") && script.contains("up to 2 jobs per array task"), "{script}");
        let task = |i: u32| {
            let o = std::process::Command::new("bash")
                .args(["-c", &script])
                .env("SLURM_ARRAY_JOB_ID", "7")
                .env("SLURM_ARRAY_TASK_ID", i.to_string())
                .output()
                .unwrap();
            (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let ran_jobs = || -> Vec<String> {
            let text = std::fs::read_to_string(&ran).unwrap_or_default();
            text.lines().map(|l| Path::new(l).file_name().unwrap().to_string_lossy().into_owned()).collect()
        };
        // Task 0: a fails (the task's exit status), b still runs.
        let (code, out) = task(0);
        assert_eq!(code, Some(3), "{out}");
        assert_eq!(ran_jobs(), ["a", "b"]);
        assert!(out.contains("array task 7_0: job a (1 of 2) failed (exit 3)"), "{out}");
        let log = std::fs::read_to_string(jobs.join("b/log.txt")).unwrap();
        assert!(
            log.starts_with("ssal: array task 7_0 runs job b (2 of 2) on ") && log.contains("\ntraining "),
            "{log}"
        );
        assert!(std::fs::read_to_string(jobs.join("a/log.txt")).unwrap().contains("training"));
        // Task 1: c is complete and skipped, d (a result not yet complete) runs.
        let (code, out) = task(1);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(ran_jobs(), ["a", "b", "d"]);
        assert!(out.contains("array task 7_1 skips job c (1 of 2): its result is complete"), "{out}");
        assert!(!jobs.join("c/log.txt").exists());
        // Task 2 holds the last job alone.
        assert_eq!(task(2).0, Some(0));
        assert_eq!(ran_jobs(), ["a", "b", "d", "e"]);
        // One job per task (the default): task 3 runs line 4.
        let single =
            render_array_script(&SlurmSettings::default(), &ArrayScript { tasks: 5, ..array.clone() }).unwrap();
        assert!(single.contains("#SBATCH --array=0-4\n") && single.contains("one array task per job"), "{single}");
        let o = std::process::Command::new("bash")
            .args(["-c", &single])
            .env("SLURM_ARRAY_JOB_ID", "8")
            .env("SLURM_ARRAY_TASK_ID", "3")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(ran_jobs(), ["a", "b", "d", "e", "d"]);
    }

    #[test]
    fn packing_needs_a_template_that_packs() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site.j2");
        std::fs::write(&site, "#!/bin/bash\n#SBATCH --array=0-{{ tasks - 1 }}\n{{ run_command }}\n").unwrap();
        let one = SlurmSettings { template: Some(site.clone()), ..Default::default() };
        let s = render(&one);
        assert!(s.contains("--array=0-5\n"), "a site template without packing still renders: {s}");
        let two = SlurmSettings { jobs_per_task: 2, ..one };
        let e = render_one_task(&two).unwrap_err().to_string();
        assert!(e.contains("site.j2") && e.contains("jobs_per_task = 2") && e.contains("never uses"), "{e}");
        let zero = toml::from_str::<SlurmSettings>("jobs_per_task = 0").unwrap().validate().unwrap_err();
        assert_eq!(zero.to_string(), "[slurm] jobs_per_task: must be at least 1");
    }
}
