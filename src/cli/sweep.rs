//! `ssal sweep …`: plan, submit, status, resume, cancel.
use super::SweepCommand;
use crate::scheduler::{LocalScheduler, Scheduler, SlurmScheduler};
use crate::sweep::{
    plan_file, JobState, LockError, Plan, PlanSync, SweepLock, SweepRunner, Tally, TrackedJob, TrackedPrepare,
};
use anyhow::Context;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where a sweep's files go.
#[derive(Debug, clap::Args)]
pub struct SweepAt {
    /// Results root; the sweep lives in RESULTS/<sweep name>/. Default: results.
    #[arg(long, default_value = super::RESULTS_DIR)]
    results: PathBuf,
}

/// How a sweep command prints.
#[derive(Debug, clap::Args)]
pub struct OutputFormat {
    /// `text` for people, `json` for scripts (one JSON object on stdout).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Which backend runs the jobs and how.
#[derive(Debug, clap::Args)]
pub struct SubmitOptions {
    /// Where jobs run: `slurm` (job arrays through sbatch) or `local` (child processes on this
    /// machine). Required, so that a login node never starts training by accident.
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Slurm: keep polling, submit later chunks as earlier ones finish and retry failures,
    /// until every job has ended (local runs always wait). Exit 1 if jobs failed.
    #[arg(long)]
    wait: bool,
    /// Local: GPU ids, one job at a time on each (CUDA_VISIBLE_DEVICES). Default: one job at a
    /// time with the config's device.
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
    /// Seconds between polls while waiting.
    #[arg(long, default_value_t = 30)]
    poll_seconds: u64,
    /// If another ssal holds the sweep's lock, exit 3 at once instead of waiting for it.
    #[arg(long)]
    no_wait_lock: bool,
    #[command(flatten)]
    output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Local,
    Slurm,
}

impl SubmitOptions {
    fn backend(&self) -> anyhow::Result<Backend> {
        self.backend.ok_or_else(|| {
            anyhow::anyhow!("--backend is required: `slurm` (submit job arrays) or `local` (run on this machine)")
        })
    }
}

/// The sweep's directory under RESULTS, made absolute so that batch scripts hold absolute paths.
fn sweep_dir(plan: &Plan, at: &SweepAt) -> anyhow::Result<PathBuf> {
    let results = std::path::absolute(&at.results).with_context(|| format!("{}", at.results.display()))?;
    Ok(results.join(&plan.name))
}

/// Writes the plan under the sweep's directory and opens its state (under the lock for
/// commands that submit or cancel), saying on stderr how many jobs opening it re-keyed, retired or
/// restored.
fn open_runner(plan: &Plan, at: &SweepAt) -> anyhow::Result<SweepRunner> {
    let runner = SweepRunner::open(plan, &sweep_dir(plan, at)?)?;
    report_sync(plan, &runner.synced);
    Ok(runner)
}

/// `1 job`, `2 jobs` (with `adjective` between: `1 retired job`).
fn n_jobs(n: usize, adjective: &str) -> String {
    let adjective = if adjective.is_empty() { String::new() } else { format!("{adjective} ") };
    format!("{n} {adjective}job{}", if n == 1 { "" } else { "s" })
}

/// One line when planning re-keyed, retired or restored jobs (nothing when it changed none).
fn report_sync(plan: &Plan, synced: &PlanSync) {
    let mut parts = Vec::new();
    if !synced.rekeyed.is_empty() {
        parts.push(format!(
            "{} re-keyed from an older ssal's ids (results kept where they are, jobs/<new id> links to them; \
             nothing reruns)",
            n_jobs(synced.rekeyed.len(), "")
        ));
    }
    if !synced.retired.is_empty() {
        parts.push(format!(
            "{} retired (no longer in the sweep file: kept with any result, never submitted again)",
            n_jobs(synced.retired.len(), "")
        ));
    }
    if !synced.restored.is_empty() {
        parts.push(format!("{} restored (back in the sweep file)", n_jobs(synced.restored.len(), "retired")));
    }
    if !parts.is_empty() {
        eprintln!("ssal: sweep {}: {}", plan.name, parts.join("; "));
    }
}

/// Takes the sweep's lock, waiting (with a message) unless `no_wait`.
fn lock(plan: &Plan, at: &SweepAt, no_wait: bool) -> anyhow::Result<SweepLock> {
    let dir = sweep_dir(plan, at)?;
    match SweepLock::try_acquire(&dir) {
        Err(LockError::Busy { holder, .. }) if !no_wait => {
            eprintln!("ssal: sweep {} is locked by another ssal (pid {holder}); waiting for it…", plan.name);
            Ok(SweepLock::acquire(&dir)?)
        }
        other => Ok(other?),
    }
}

/// For the commands that only look (`plan`, `status`): the sweep's lock when it is free, so that
/// their re-planning and refreshing never race a submitter (settling its journal while its
/// `sbatch` is in flight would let the next resume submit the jobs twice). `None` when another
/// ssal holds it, said on stderr with what the command does instead (`instead`).
fn lock_if_free(plan: &Plan, dir: &Path, instead: &str) -> anyhow::Result<Option<SweepLock>> {
    match SweepLock::try_acquire(dir) {
        Ok(lock) => Ok(Some(lock)),
        Err(LockError::Busy { holder, .. }) => {
            eprintln!(
                "ssal: sweep {} is held by another ssal (pid {holder}) submitting, running or cancelling it; {instead}",
                plan.name
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn scheduler(
    plan: &Plan,
    runner: &SweepRunner,
    backend: Backend,
    devices: &[String],
) -> anyhow::Result<Box<dyn Scheduler>> {
    Ok(match backend {
        Backend::Local => Box::new(LocalScheduler::new(devices, plan.slurm.checkpoint_every)?),
        Backend::Slurm => Box::new(SlurmScheduler::new(&plan.name, runner.dir.clone(), plan.slurm.clone())?),
    })
}

/// The plan's jobs per state, then the retired ones: `2 done · 1 retired`.
fn tally_line(t: &Tally) -> String {
    let mut parts: Vec<String> =
        JobState::ALL.iter().filter(|s| t.get(**s) > 0).map(|s| format!("{} {}", t.get(*s), s.as_str())).collect();
    if t.retired() > 0 {
        parts.push(format!("{} retired", t.retired()));
    }
    parts.join(" · ")
}

/// The plan's jobs per state (retired jobs are apart: `"retired"` next to it).
fn tally_json(t: &Tally) -> serde_json::Value {
    JobState::ALL.iter().map(|s| (s.as_str().to_string(), serde_json::Value::from(t.get(*s)))).collect()
}

/// Where a retired job's result is, if it has a complete one.
fn retired_result(j: &TrackedJob) -> Option<PathBuf> {
    (j.state == JobState::Done).then(|| crate::result::path_in(&j.dir))
}

/// The hint under `status`'s table: what retired means, by state, and what happens to those
/// still at the scheduler.
fn retired_hint(retired: &[&TrackedJob]) -> String {
    let by_state: Vec<String> = JobState::ALL
        .iter()
        .map(|s| (s, retired.iter().filter(|j| j.state == *s).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let mut hint = format!(
        "retired (values no longer in the sweep file): {}; kept with their results, never submitted again, \
         restored if the values come back",
        by_state.join(", ")
    );
    let active = retired.iter().filter(|j| j.state.is_active()).count();
    if active > 0 {
        let (is, it) = if active == 1 { ("is", "it") } else { ("are", "them") };
        hint.push_str(&format!(
            "; {active} {is} still queued or running: followed until the end (`ssal sweep cancel` stops {it} too)"
        ));
    }
    hint
}

/// Submits what `eligible` allows; local runs (and `--wait`) then wait with a progress bar.
fn submit(
    plan: &Plan,
    at: &SweepAt,
    how: &SubmitOptions,
    eligible: impl Fn(&crate::sweep::TrackedJob) -> bool,
) -> anyhow::Result<()> {
    let backend = how.backend()?;
    let _lock = lock(plan, at, how.no_wait_lock)?;
    let mut runner = open_runner(plan, at)?;
    let mut sched = scheduler(plan, &runner, backend, &how.devices)?;
    if backend == Backend::Local {
        crate::interrupt::install().context("cannot install signal handlers")?;
    }
    let json = how.output.format == Format::Json;
    runner.refresh(Some(sched.as_mut()))?;
    let max_queued = if backend == Backend::Slurm { plan.slurm.max_queued } else { usize::MAX };
    let n = runner.submit(sched.as_mut(), max_queued, eligible)?;
    if !json {
        let backend_name = clap::ValueEnum::to_possible_value(&backend).expect("no variant is skipped");
        println!("sweep {}: submitted {n} jobs (backend {})", plan.name, backend_name.get_name());
    }
    if backend == Backend::Slurm && !how.wait {
        let tally = runner.tally()?;
        if json {
            let v = serde_json::json!({
                "sweep": plan.name, "submitted": n, "states": tally_json(&tally), "retired": tally.retired(),
            });
            return super::write_output(None, &format!("{v}\n"));
        }
        println!("{}", tally_line(&tally));
        return Ok(());
    }
    let total = plan.jobs.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} jobs ended ({eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(plan.name.clone());
    let poll = std::time::Duration::from_secs(if backend == Backend::Local { 1 } else { how.poll_seconds });
    let outcome = runner.wait(
        sched.as_mut(),
        max_queued,
        plan.slurm.max_attempts,
        plan.slurm.max_failures,
        poll,
        |t| {
            let ended = t.get(JobState::Done) + t.get(JobState::Failed) + t.get(JobState::Cancelled);
            bar.set_position(ended as u64);
            bar.set_message(tally_line(t));
            if bar.is_hidden() && !json {
                eprintln!("ssal: sweep {}: {}", plan.name, tally_line(t));
            }
        },
        |warning| bar.suspend(|| eprintln!("ssal: sweep {}: {warning}", plan.name)),
    )?;
    bar.finish_and_clear();
    let tally = &outcome.tally;
    if json {
        let v = serde_json::json!({
            "sweep": plan.name, "submitted": n, "states": tally_json(tally), "retired": tally.retired(),
            "stopped_by_failures": outcome.stopped_by_failures,
        });
        super::write_output(None, &format!("{v}\n"))?;
    } else {
        println!("sweep {}: {}", plan.name, tally_line(tally));
    }
    if crate::interrupt::requested() {
        anyhow::bail!("stopped by a signal; running jobs saved their state: `ssal sweep resume` goes on");
    }
    if let Some(why) = &outcome.stopped_by_failures {
        return Err(super::JobsFailed(format!("sweep {}: stopped submitting: {why}", plan.name)).into());
    }
    if tally.get(JobState::Failed) > 0 {
        return Err(super::JobsFailed(format!(
            "sweep {}: {} jobs failed; `ssal sweep status {}` lists them with their errors",
            plan.name,
            tally.get(JobState::Failed),
            plan.name
        ))
        .into());
    }
    Ok(())
}

/// The newest prepare task of each stage, in the order the stages were first prepared.
fn latest_prepares(prepares: &[TrackedPrepare]) -> Vec<&TrackedPrepare> {
    let mut latest: Vec<&TrackedPrepare> = Vec::new();
    for p in prepares {
        match latest.iter_mut().find(|l| l.key == p.key) {
            Some(l) => *l = p,
            None => latest.push(p),
        }
    }
    latest
}

/// Prints the sweep's states; refreshes them from the scheduler and the result files first when
/// `refresh` (this ssal holds the sweep), else shows what its holder last recorded.
fn status(plan: &Plan, runner: &mut SweepRunner, format: Format, refresh: bool) -> anyhow::Result<()> {
    if refresh {
        let uses_slurm = runner.db.jobs()?.iter().any(|j| j.state.is_active() && j.backend.as_deref() == Some("slurm"));
        if uses_slurm {
            let mut sched = SlurmScheduler::new(&plan.name, runner.dir.clone(), plan.slurm.clone())?;
            runner.refresh(Some(&mut sched))?;
        } else {
            runner.refresh(None)?;
        }
    }
    let tally = runner.tally()?;
    let all = runner.db.jobs()?;
    let (retired, jobs): (Vec<&TrackedJob>, Vec<&TrackedJob>) = all.iter().partition(|j| j.is_retired());
    let failed: Vec<_> = jobs.iter().filter(|j| j.state == JobState::Failed).collect();
    let waiting: Vec<_> =
        jobs.iter().filter(|j| j.state == JobState::Submitted && j.pending_reason.is_some()).collect();
    let groups = runner.failure_groups()?;
    let prepares = runner.db.prepares()?;
    let mut blocked: Vec<(String, &'static str, usize)> = Vec::new();
    for j in &waiting {
        let reason = j.pending_reason.clone().unwrap_or_default();
        if let Some(advice) = crate::scheduler::parse::unresolvable_reason(&reason) {
            match blocked.iter_mut().find(|b| b.0 == reason) {
                Some(b) => b.2 += 1,
                None => blocked.push((reason, advice, 1)),
            }
        }
    }
    if format == Format::Json {
        let failed_json: Vec<serde_json::Value> = failed
            .iter()
            .map(|j| {
                let log = crate::sweep::job_log(&runner.dir, j);
                serde_json::json!({
                    "job_id": j.job_id, "attempts": j.attempts, "handle": j.handle, "detail": j.detail,
                    "log": log.as_ref().map(|l| l.display().to_string()),
                    "last_lines": log.map(|l| crate::sweep::last_lines(&l, 5)).unwrap_or_default(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "sweep": plan.name, "jobs": plan.jobs.len(), "dir": runner.dir.display().to_string(),
            "states": tally_json(&tally),
            "pending_reasons": waiting.iter().map(|j| serde_json::json!({"job_id": j.job_id, "reason": j.pending_reason})).collect::<Vec<_>>(),
            "blocked": blocked.iter().map(|(r, a, n)| serde_json::json!({"reason": r, "jobs": n, "advice": a})).collect::<Vec<_>>(),
            "failed": failed_json,
            "failure_groups": groups.iter().map(|(line, ids)| serde_json::json!({"error": line, "jobs": ids})).collect::<Vec<_>>(),
            "prepares": latest_prepares(&prepares).into_iter().map(|p| serde_json::json!({
                "key": p.key, "state": p.state.as_str(), "handle": p.handle, "detail": p.detail,
                "log": crate::sweep::prepare_log(&runner.dir, p).map(|l| l.display().to_string()),
            })).collect::<Vec<_>>(),
            "retired": retired.len(),
            "retired_jobs": retired.iter().map(|j| serde_json::json!({
                "job_id": j.job_id, "axes": j.axes, "state": j.state.as_str(), "handle": j.handle,
                "attempts": j.attempts, "result": retired_result(j).map(|r| r.display().to_string()),
            })).collect::<Vec<_>>(),
        });
        super::write_output(None, &format!("{v}\n"))?;
    } else {
        let mut text = format!("sweep {} ({} jobs, {})\n", plan.name, plan.jobs.len(), runner.dir.display());
        text.push_str("| state | jobs |\n|---|---:|\n");
        for s in JobState::ALL {
            writeln!(text, "| {} | {} |", s.as_str(), tally.get(s))?;
        }
        writeln!(text, "| retired | {} |", retired.len())?;
        if !retired.is_empty() {
            writeln!(text, "\n{}", retired_hint(&retired))?;
            const SHOWN: usize = 20;
            for j in retired.iter().take(SHOWN) {
                let at = match (retired_result(j), &j.handle) {
                    (Some(result), _) => format!(": {}", result.display()),
                    (None, Some(handle)) => format!(" ({handle})"),
                    (None, None) => String::new(),
                };
                writeln!(text, "  {} {} {}{at}", j.job_id, j.axes.as_deref().unwrap_or("[?]"), j.state.as_str())?;
            }
            if retired.len() > SHOWN {
                writeln!(text, "  … and {} more (`--format json` lists them all)", retired.len() - SHOWN)?;
            }
        }
        for p in latest_prepares(&prepares) {
            let log = crate::sweep::prepare_log(&runner.dir, p);
            writeln!(
                text,
                "\nprepare RotNet embedding {}: {} ({}{}) log: {}",
                p.key,
                p.state.as_str(),
                p.handle,
                p.detail.as_deref().map(|d| format!(", {d}")).unwrap_or_default(),
                log.map_or("none written".into(), |l| l.display().to_string())
            )?;
        }
        for (reason, advice, n) in &blocked {
            writeln!(text, "\nerror: {n} queued jobs can never start (Slurm reason {reason}): {advice}")?;
        }
        if !failed.is_empty() {
            text.push_str("\nfailed jobs:\n");
            for j in &failed {
                let log = crate::sweep::job_log(&runner.dir, j);
                writeln!(
                    text,
                    "  {} (attempts {}, {}{}) log: {}",
                    j.job_id,
                    j.attempts,
                    j.handle.as_deref().unwrap_or("-"),
                    j.detail.as_deref().map(|d| format!(", {d}")).unwrap_or_default(),
                    log.as_ref()
                        .map_or("none written (the task died before ssal started)".into(), |l| l.display().to_string())
                )?;
                for line in log.map(|l| crate::sweep::last_lines(&l, 3)).unwrap_or_default() {
                    writeln!(text, "      | {line}")?;
                }
            }
            text.push_str("\nfailures by error:\n");
            for (line, ids) in &groups {
                writeln!(text, "  {} jobs: {line}", ids.len())?;
            }
        }
        super::write_output(None, &text)?;
    }
    if !failed.is_empty() {
        return Err(super::JobsFailed(format!("sweep {}: {} jobs failed", plan.name, failed.len())).into());
    }
    if !blocked.is_empty() {
        return Err(super::SchedulerBlocks(format!(
            "sweep {}: queued jobs can never start ({})",
            plan.name,
            blocked.iter().map(|b| b.0.clone()).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    Ok(())
}

/// The batch script of the sweep's first array, and how many tasks it holds.
fn first_array_script(plan: &Plan, dir: &Path) -> anyhow::Result<(usize, String)> {
    Ok(crate::scheduler::preview_first_array(&plan.slurm, &plan.name, dir, plan.jobs.len())?)
}

/// The plan's stages for `sweep plan`: the RotNet embeddings its jobs share, each prepared
/// once (unless cached), then the jobs; empty when the jobs share nothing.
fn stages_text(plan: &Plan) -> String {
    if plan.stages.is_empty() {
        return String::new();
    }
    let to_train = plan.stages.iter().filter(|s| !s.is_cached()).count();
    let waiting: usize = plan.stages.iter().filter(|s| !s.is_cached()).map(|s| s.jobs.len()).sum();
    let sharing: usize = plan.stages.iter().map(|s| s.jobs.len()).sum();
    let n = plan.stages.len();
    let mut text = format!(
        "stage 1: prepare {n} RotNet embedding{} for {} (`ssal prepare`; {to_train} to train, {} cached)\n",
        if n == 1 { "" } else { "s" },
        n_jobs(sharing, ""),
        n - to_train
    );
    for stage in &plan.stages {
        let state = if stage.is_cached() { "cached" } else { "to train" };
        text.push_str(&format!(
            "  key {} for {}: {state} ({})\n",
            stage.key,
            n_jobs(stage.jobs.len(), ""),
            stage.entry.display()
        ));
    }
    text.push_str(&format!(
        "stage 2: run {} ({} wait for their embedding: Slurm arrays with --dependency=afterok on its prepare \
         job, locally after it)\n",
        n_jobs(plan.jobs.len(), ""),
        waiting
    ));
    text
}

fn print_plan(plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    let mut text = format!("sweep {}: {} jobs\n", plan.name, plan.jobs.len());
    for (axis, counts) in plan.counts_per_axis() {
        let parts: Vec<String> = counts.iter().map(|(v, n)| format!("{v}: {n}")).collect();
        writeln!(text, "  {axis:<20} {}", parts.join(", "))?;
    }
    writeln!(text, "configs: {}/jobs/<job id>/config.toml; index: {}/plan.tsv", dir.display(), dir.display())?;
    let tasks = plan.slurm.array_tasks(plan.jobs.len());
    writeln!(
        text,
        "slurm: {} in {tasks} array task{} ({} per task, [slurm] jobs_per_task)",
        n_jobs(plan.jobs.len(), ""),
        if tasks == 1 { "" } else { "s" },
        n_jobs(plan.slurm.jobs_per_task, ""),
    )?;
    text.push_str(&stages_text(plan));
    let (chunk, script) = first_array_script(plan, dir)?;
    writeln!(
        text,
        "\nSlurm batch script of the first array ({chunk} tasks; `ssal sweep submit --backend slurm`):\n{script}"
    )?;
    super::write_output(None, &text)
}

/// Asks Slurm to validate the first array without submitting it (`sbatch --test-only`).
fn check_plan(plan: &Plan, dir: &Path) -> anyhow::Result<String> {
    let (_, script) = first_array_script(plan, dir)?;
    let path = dir.join("arrays/check.sh");
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(crate::scheduler::slurm_test_only(&path)?)
}

/// Runs one `ssal sweep` command.
pub fn dispatch(command: SweepCommand) -> anyhow::Result<()> {
    match command {
        SweepCommand::Plan { file, at, output, check } => {
            let plan = plan_file(&file)?;
            let dir = sweep_dir(&plan, &at)?;
            let lock = lock_if_free(&plan, &dir, "showing the plan without writing it")?;
            if lock.is_some() && dir.join("state.db").is_file() {
                // Re-planning a sweep that has run: retire and restore now, and say so.
                report_sync(&plan, &SweepRunner::open(&plan, &dir)?.synced);
            } else if lock.is_some() {
                plan.write(&dir)?;
            }
            let verdict = if check { Some(check_plan(&plan, &dir)?) } else { None };
            if output.format == Format::Json {
                let jobs: Vec<serde_json::Value> = plan
                    .jobs
                    .iter()
                    .map(|j| {
                        let axes: serde_json::Map<String, serde_json::Value> =
                            j.label.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
                        serde_json::json!({ "job_id": j.id, "dir": dir.join("jobs").join(&j.id).display().to_string(), "axes": axes })
                    })
                    .collect();
                let v = serde_json::json!({
                    "sweep": plan.name, "dir": dir.display().to_string(), "jobs": jobs, "slurm_check": verdict,
                    "slurm_tasks": plan.slurm.array_tasks(plan.jobs.len()), "jobs_per_task": plan.slurm.jobs_per_task,
                    "stages": plan.stages.iter().map(|s| serde_json::json!({
                        "key": s.key, "entry": s.entry.display().to_string(), "cached": s.is_cached(), "jobs": s.jobs,
                    })).collect::<Vec<_>>(),
                });
                return super::write_output(None, &format!("{v}\n"));
            }
            print_plan(&plan, &dir)?;
            if let Some(v) = verdict {
                println!("Slurm accepts the first array (sbatch --test-only): {v}");
            }
            Ok(())
        }
        SweepCommand::Submit { file, at, how } => {
            let plan = plan_file(&file)?;
            submit(&plan, &at, &how, |j| j.state == JobState::Planned)
        }
        SweepCommand::Resume { file, at, how } => {
            let plan = plan_file(&file)?;
            submit(&plan, &at, &how, |_| true)
        }
        SweepCommand::Status { file, at, output } => {
            let plan = plan_file(&file)?;
            let dir = sweep_dir(&plan, &at)?;
            match lock_if_free(&plan, &dir, "showing the states it last recorded")? {
                Some(_lock) => status(&plan, &mut open_runner(&plan, &at)?, output.format, true),
                None => status(&plan, &mut SweepRunner::open_recorded(&plan, &dir)?, output.format, false),
            }
        }
        SweepCommand::Cancel { file, at, no_wait_lock } => {
            let plan = plan_file(&file)?;
            let _lock = lock(&plan, &at, no_wait_lock)?;
            let mut runner = open_runner(&plan, &at)?;
            let mut sched = SlurmScheduler::new(&plan.name, runner.dir.clone(), plan.slurm.clone())?;
            let n = runner.cancel(&mut sched)?;
            println!("sweep {}: cancelled {n} jobs", plan.name);
            Ok(())
        }
    }
}
