//! `ssal sweep …`: plan, submit, status, resume, cancel.
use super::SweepCommand;
use crate::scheduler::{LocalScheduler, Scheduler, SlurmScheduler};
use crate::sweep::{plan_file, render_array_script, ArrayScript, JobState, Plan, SweepRunner, Tally};
use anyhow::Context;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where a sweep's files go.
#[derive(Debug, clap::Args)]
pub struct SweepAt {
    /// Results root; the sweep lives in RESULTS/<sweep name>/. Default: results.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

/// Which backend runs the jobs and how.
#[derive(Debug, clap::Args)]
pub struct SubmitOptions {
    /// Where jobs run.
    #[arg(long, value_enum, default_value = "local")]
    backend: Backend,
    /// Slurm: keep polling, submit later chunks as earlier ones finish and retry failures,
    /// until every job has ended (local runs always wait).
    #[arg(long)]
    wait: bool,
    /// Local: GPU ids, one job at a time on each (CUDA_VISIBLE_DEVICES). Default: one job at a
    /// time with the config's device.
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
    /// Seconds between polls while waiting.
    #[arg(long, default_value_t = 30)]
    poll_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Local,
    Slurm,
}

fn planned(file: &Path, at: &SweepAt) -> anyhow::Result<(Plan, SweepRunner)> {
    let plan = plan_file(file)?;
    let runner = SweepRunner::open(&plan, &at.results.join(&plan.name))?;
    Ok((plan, runner))
}

fn scheduler(plan: &Plan, runner: &SweepRunner, how: &SubmitOptions) -> anyhow::Result<Box<dyn Scheduler>> {
    Ok(match how.backend {
        Backend::Local => Box::new(LocalScheduler::new(&how.devices, plan.slurm.checkpoint_every)?),
        Backend::Slurm => Box::new(SlurmScheduler::new(&plan.name, runner.dir.clone(), plan.slurm.clone())?),
    })
}

fn tally_line(t: &Tally) -> String {
    JobState::ALL
        .iter()
        .filter(|s| t.get(**s) > 0)
        .map(|s| format!("{} {}", t.get(*s), s.as_str()))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Submits what `eligible` allows; local runs (and `--wait`) then wait with a progress bar.
fn submit(
    plan: &Plan,
    runner: &mut SweepRunner,
    how: &SubmitOptions,
    eligible: impl Fn(&crate::sweep::TrackedJob) -> bool,
) -> anyhow::Result<()> {
    let mut sched = scheduler(plan, runner, how)?;
    if how.backend == Backend::Local {
        crate::interrupt::install().context("cannot install signal handlers")?;
    }
    runner.refresh(Some(sched.as_mut()))?;
    let max_queued = if how.backend == Backend::Slurm { plan.slurm.max_queued } else { usize::MAX };
    let n = runner.submit(sched.as_mut(), max_queued, eligible)?;
    println!("sweep {}: submitted {n} jobs ({:?})", plan.name, how.backend);
    if how.backend == Backend::Slurm && !how.wait {
        println!("{}", tally_line(&runner.tally()?));
        return Ok(());
    }
    let total = plan.jobs.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} jobs ended ({eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(plan.name.clone());
    let poll = std::time::Duration::from_secs(if how.backend == Backend::Local { 1 } else { how.poll_seconds });
    let tally = runner.wait(sched.as_mut(), max_queued, plan.slurm.max_attempts, poll, |t| {
        let ended = t.get(JobState::Done) + t.get(JobState::Failed) + t.get(JobState::Cancelled);
        bar.set_position(ended as u64);
        bar.set_message(tally_line(t));
        if bar.is_hidden() {
            eprintln!("ssal: sweep {}: {}", plan.name, tally_line(t));
        }
    })?;
    bar.finish_and_clear();
    println!("sweep {}: {}", plan.name, tally_line(&tally));
    if crate::interrupt::requested() {
        anyhow::bail!("stopped by a signal; running jobs saved their state: `ssal sweep resume` goes on");
    }
    Ok(())
}

fn status(plan: &Plan, runner: &mut SweepRunner) -> anyhow::Result<()> {
    let uses_slurm = runner.db.jobs()?.iter().any(|j| j.state.is_active() && j.backend.as_deref() == Some("slurm"));
    if uses_slurm {
        let mut sched = SlurmScheduler::new(&plan.name, runner.dir.clone(), plan.slurm.clone())?;
        runner.refresh(Some(&mut sched))?;
    } else {
        runner.refresh(None)?;
    }
    let tally = runner.tally()?;
    let mut text = format!("sweep {} ({} jobs, {})\n", plan.name, plan.jobs.len(), runner.dir.display());
    text.push_str("| state | jobs |\n|---|---:|\n");
    for s in JobState::ALL {
        writeln!(text, "| {} | {} |", s.as_str(), tally.get(s))?;
    }
    let failed: Vec<_> = runner.db.jobs()?.into_iter().filter(|j| j.state == JobState::Failed).collect();
    if !failed.is_empty() {
        text.push_str("\nfailed jobs:\n");
        for j in failed {
            writeln!(
                text,
                "  {} (attempts {}, {}) log: {}",
                j.job_id,
                j.attempts,
                j.handle.as_deref().unwrap_or("-"),
                j.dir.join("log.txt").display()
            )?;
        }
    }
    super::write_output(None, &text)
}

fn print_plan(plan: &Plan, dir: &Path) -> anyhow::Result<()> {
    let mut text = format!("sweep {}: {} jobs\n", plan.name, plan.jobs.len());
    for (axis, counts) in plan.counts_per_axis() {
        let parts: Vec<String> = counts.iter().map(|(v, n)| format!("{v}: {n}")).collect();
        writeln!(text, "  {axis:<20} {}", parts.join(", "))?;
    }
    writeln!(text, "configs: {}/jobs/<job id>/config.toml; index: {}/plan.tsv", dir.display(), dir.display())?;
    let arrays = dir.join("arrays");
    let chunk = plan.jobs.len().min(plan.slurm.max_queued).min(1001);
    let script = render_array_script(
        &plan.slurm,
        &ArrayScript {
            sweep: &plan.name,
            task_list: &arrays.join("<submission>.tasks"),
            tasks: chunk.max(1),
            jobs_dir: &dir.join("jobs"),
            slurm_log: &arrays.join("logs/%A_%a.out"),
            ssal: &plan.slurm.ssal.clone().unwrap_or_else(|| std::env::current_exe().unwrap_or("ssal".into())),
        },
    )?;
    writeln!(
        text,
        "\nSlurm batch script of the first array ({chunk} tasks; `ssal sweep submit --backend slurm`):\n{script}"
    )?;
    super::write_output(None, &text)
}

/// Runs one `ssal sweep` command.
pub fn dispatch(command: SweepCommand) -> anyhow::Result<()> {
    match command {
        SweepCommand::Plan { file, at } => {
            let plan = plan_file(&file)?;
            let dir = at.results.join(&plan.name);
            plan.write(&dir)?;
            print_plan(&plan, &dir)
        }
        SweepCommand::Submit { file, at, how } => {
            let (plan, mut runner) = planned(&file, &at)?;
            submit(&plan, &mut runner, &how, |j| j.state == JobState::Planned)
        }
        SweepCommand::Resume { file, at, how } => {
            let (plan, mut runner) = planned(&file, &at)?;
            submit(&plan, &mut runner, &how, |_| true)
        }
        SweepCommand::Status { file, at } => {
            let (plan, mut runner) = planned(&file, &at)?;
            status(&plan, &mut runner)
        }
        SweepCommand::Cancel { file, at } => {
            let (plan, mut runner) = planned(&file, &at)?;
            let mut sched = SlurmScheduler::new(&plan.name, runner.dir.clone(), plan.slurm.clone())?;
            let n = runner.cancel(&mut sched)?;
            println!("sweep {}: cancelled {n} jobs", plan.name);
            Ok(())
        }
    }
}
