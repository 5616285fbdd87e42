//! Command-line interface: the only place that prints for humans.
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[cfg(feature = "torch")]
mod progress;
mod sweep;
#[cfg(feature = "torch")]
mod torch;

/// The results root, relative to the working directory: sweeps live in `results/<sweep>/`.
const RESULTS_DIR: &str = "results";
/// The results database that `results ingest` writes and reports read.
const RESULTS_DB: &str = "results/ssal.db";
/// Where `ssal run` without `--out` puts its run (under the config's id).
#[cfg(feature = "torch")]
const RUNS_DIR: &str = "results/runs";

/// A command that needs libtorch, asked of a build without it (`--no-default-features`: the
/// analysis-only build for login nodes and laptops).
#[derive(Debug, thiserror::Error)]
#[error(
    "`ssal {0}` needs libtorch, and this ssal is the analysis-only build (built without the `torch` \
     feature): use the full build (`bash scripts/setup.sh`, or `cargo install --path .` with LIBTORCH set)"
)]
pub struct NeedsTorch(pub &'static str);

/// Semi-supervised active learning experiments, sweeps and statistics.
#[derive(Debug, Parser)]
#[command(name = "ssal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one experiment from a TOML config and write DIR/result.json.
    Run {
        /// Experiment config (TOML); omitted keys take their documented defaults.
        #[arg(long)]
        config: PathBuf,
        /// Output directory. Default: results/runs/<config hash>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Save the training state at least this often, in seconds (it is also saved on
        /// SIGTERM/SIGUSR1/SIGINT, after which ssal exits with code 75 and the same command resumes).
        #[arg(long, default_value_t = 600)]
        checkpoint_every: u64,
    },
    /// Do the work that the runs of a config share, once, and exit: train its RotNet embedding
    /// into the cache (or find it there). Sweeps run this as their prepare stage before the
    /// runs that need it; a run does it itself when it is not done.
    Prepare {
        /// Experiment config (TOML), e.g. a sweep job's config.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Choose K rows of an embedding matrix by diversity-based sampling with temperature T
    /// (T = 0: k-center greedy; T = 0.5: k-means++ seeding). Prints the chosen row indices, one
    /// per line, in the order chosen.
    Select {
        /// N × d float32/float64 `.npy` matrix.
        #[arg(long)]
        embeddings: PathBuf,
        /// Number of rows to choose.
        #[arg(long)]
        k: usize,
        /// Temperature T >= 0.
        #[arg(long)]
        temperature: f64,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Already-labeled row indices, one per line; they are the starting centres.
        #[arg(long)]
        labeled: Option<PathBuf>,
        /// Write the indices here (atomically) instead of printing them.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the distance passes run (the picks are the same either way).
        #[arg(long, value_enum, default_value = "cpu")]
        device: crate::config::DeviceChoice,
    },
    /// The paper's Fig. 7 under one model: score the first query (cycle 1) of each RUN under the
    /// cycle-0 model of COMMON, trained again from its config, and print consistency and
    /// diversity of every run's picks next to the values each run recorded under its own model.
    /// With one COMMON per seed, each run is scored under its seed's, and a table over seeds follows.
    ScoreQueries {
        /// Run directory (holding result.json) whose cycle-0 model is the common model. Repeat it
        /// once per seed to score each run under the common run of its seed and get a summary
        /// over seeds (mean ± SE, paired t-tests against the common runs' row).
        #[arg(long, required = true)]
        common: Vec<PathBuf>,
        /// Run directories whose first queries are scored (the common run may be one of them).
        /// Give every run to compare in one call: the augmented views behind the consistency
        /// scores are drawn over the union of the runs' picks, so a run scored with other runs
        /// gets other draws (another sample of the same score) than when scored alone.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
    /// Datasets as a run sees them, for embeddings computed outside ssal.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Sweeps: TOML grids expanded into jobs with content-hash ids.
    Sweep {
        #[command(subcommand)]
        command: SweepCommand,
    },
    /// The results database: ingest result.json files, export rows.
    Results {
        #[command(subcommand)]
        command: ResultsCommand,
    },
    /// Print a comparison table: rows are configurations (by default every config field that
    /// varies among the selected runs, except the seed), columns label budgets plus the area
    /// under the learning curve, cells mean ± SE over seeds; * / ** / *** mark Holm-adjusted
    /// p < 0.05 / 0.01 / 0.001 against the baseline row (paired over seeds when both rows have
    /// the same seeds, else Welch); best per column in bold; the mean rank and the pairwise
    /// penalty matrix follow. Two runs in one (row, seed) are refused, never merged.
    Report {
        #[command(flatten)]
        select: SelectArgs,
        /// Value compared.
        #[arg(long, value_enum, default_value = "accuracy")]
        metric: crate::report::Metric,
        /// Baseline row: comma-separated FIELD=VALUE pairs over the row fields that must match
        /// exactly one row, e.g. "query.strategy=random".
        #[arg(long, value_name = "FIELD=VALUE,...")]
        baseline: Option<String>,
        /// `auto`: paired over seeds when both rows hold the same seeds, else Welch; `welch`:
        /// always Welch (for independent samples, e.g. initial sets drawn per seed).
        #[arg(long, value_enum, default_value = "auto")]
        test: crate::report::TestChoice,
        /// Output format: Markdown, LaTeX (a tabular that `\input` compiles) or CSV (one line per cell).
        #[arg(long, value_enum, default_value = "md")]
        format: crate::report::Format,
    },
    /// Write SVG figures: DIR/learning_curves.svg (accuracy vs labels, mean ± SE per row) and
    /// DIR/distance_vs_diversity.svg (initial sets: class distance vs diversity, per seed).
    Plot {
        #[command(flatten)]
        select: SelectArgs,
        /// Output directory.
        #[arg(long, default_value = "results/plots")]
        out: PathBuf,
    },
    /// Print the torch build and whether CUDA is usable.
    Info,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Print the config's training images in row order, one per line.
    ///
    /// Paths relative to dataset.path for image folders, indices in the training file(s)
    /// otherwise. An imported embedding (init.embedding = "npy") must have one row per line in
    /// this order, which its sidecar FILE.npy.rows.json proves (required for image folders).
    Rows {
        /// Experiment config (TOML): its dataset section, split seed and seed fix the rows.
        #[arg(long)]
        config: PathBuf,
        /// Instead of printing, write the sidecar FILE.npy.rows.json of this embedding, whose
        /// rows you computed in the printed order (its row count is checked).
        #[arg(long, value_name = "FILE.npy")]
        write_sidecar: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ResultsCommand {
    /// Read every result.json under the directories into the database (idempotent; broken
    /// files are reported and skipped).
    Ingest {
        /// Directories searched recursively for result.json files; each directory's name is
        /// the sweep name of its runs.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Results database (created if missing).
        #[arg(long, default_value = RESULTS_DB)]
        db: PathBuf,
    },
    /// Write the selected runs as tidy data: one row per (run, cycle) with the sweep, the run
    /// id, every config field that varies (dotted names), the seed, completeness, wall time, the
    /// cycle's metrics and its time split.
    Export {
        #[command(flatten)]
        select: SelectArgs,
        /// CSV (with a header row) or JSON Lines.
        #[arg(long, value_enum, default_value = "csv")]
        format: crate::analysis::ExportFormat,
        /// Output file (written atomically). Default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Which runs a report, plot or export reads, and how they form rows.
#[derive(Debug, clap::Args)]
struct SelectArgs {
    /// Results database (written by `ssal results ingest`).
    #[arg(long, default_value = RESULTS_DB)]
    db: PathBuf,
    /// Only runs of this sweep (the ingested directory's name).
    #[arg(long)]
    sweep: Option<String>,
    /// Only runs whose config field equals VALUE (numbers compare as numbers, `75` = `75.0`);
    /// repeatable, every filter must hold. FIELD as in --group-by.
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    filters: Vec<crate::analysis::Filter>,
    /// Config fields forming the rows: dotted paths (mixmatch.lambda_u, train.steps,
    /// query.strategy, init.temperature, labeled.size, dataset.name, …) or `sweep`. Default:
    /// every field that varies among the selected runs, except the seed.
    #[arg(long, value_delimiter = ',', value_name = "FIELD,...")]
    group_by: Option<Vec<String>>,
    /// Take runs that did not finish every cycle into the statistics (marked); by default they
    /// are left out and counted.
    #[arg(long)]
    include_incomplete: bool,
}

impl SelectArgs {
    /// Opens the database read-only and selects the runs.
    fn select(&self) -> anyhow::Result<crate::analysis::Selection> {
        let store = open_existing(&self.db)?;
        let query = crate::analysis::SelectionQuery {
            sweep: self.sweep.clone(),
            filters: self.filters.clone(),
            group_by: self.group_by.clone(),
            include_incomplete: self.include_incomplete,
        };
        Ok(crate::analysis::Selection::select(&store, &query)?)
    }
}

#[derive(Debug, Subcommand)]
enum SweepCommand {
    /// Dry run: expand the grid, write one config per job under RESULTS/<sweep>/jobs/<id>/,
    /// print the job count, the count per axis value and the Slurm batch script of the first
    /// array. Touches no scheduler.
    Plan {
        /// Sweep file (TOML: `[base]`, `[grid]`, `[[exclude]]`, `[[include]]`, `[slurm]`).
        file: PathBuf,
        #[command(flatten)]
        at: sweep::SweepAt,
        #[command(flatten)]
        output: sweep::OutputFormat,
        /// Also ask Slurm to validate the first array without submitting it (`sbatch
        /// --test-only`): a partition, account, QOS or resource request it refuses exits 3.
        #[arg(long)]
        check: bool,
    },
    /// Plan and submit every job not yet submitted (exactly once: see docs/design/sweep.md).
    /// Local runs wait until all are done.
    Submit {
        /// Sweep file (TOML).
        file: PathBuf,
        #[command(flatten)]
        at: sweep::SweepAt,
        #[command(flatten)]
        how: sweep::SubmitOptions,
    },
    /// Counts of jobs by state, why queued jobs wait, and the failed jobs with the scheduler's
    /// reason, their log and its last lines, grouped by error. Exit 1 when a job has failed.
    Status {
        /// Sweep file (TOML).
        file: PathBuf,
        #[command(flatten)]
        at: sweep::SweepAt,
        #[command(flatten)]
        output: sweep::OutputFormat,
    },
    /// Resubmit only jobs without a complete result that are not queued or running
    /// (planned, failed, cancelled); running it twice, even at once, submits nothing twice.
    Resume {
        /// Sweep file (TOML).
        file: PathBuf,
        #[command(flatten)]
        at: sweep::SweepAt,
        #[command(flatten)]
        how: sweep::SubmitOptions,
    },
    /// Cancel the sweep's queued and running Slurm tasks (they checkpoint first).
    Cancel {
        /// Sweep file (TOML).
        file: PathBuf,
        #[command(flatten)]
        at: sweep::SweepAt,
        /// If another ssal holds the sweep's lock, exit 3 at once instead of waiting for it.
        #[arg(long)]
        no_wait_lock: bool,
    },
}

/// Exit code when jobs failed (`sweep submit --wait`, `sweep resume --wait`, `sweep status`).
pub const EXIT_JOBS_FAILED: u8 = 1;
/// Exit code for bad input (config, data files, arguments).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when the scheduler is missing, not answering or refusing, or the sweep is locked.
pub const EXIT_SCHEDULER: u8 = 3;

/// The error of a command whose jobs failed: exit 1, not 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobsFailed(pub String);

/// The error of a command that found queued jobs the scheduler will never start: exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchedulerBlocks(pub String);

/// The exit code an error stands for.
fn exit_code(e: &anyhow::Error) -> u8 {
    use crate::scheduler::SchedulerError;
    use crate::sweep::{LockError, RunnerError};
    for cause in e.chain() {
        #[cfg(feature = "torch")]
        if torch::is_interrupted_run(cause) {
            return crate::interrupt::EXIT_INTERRUPTED;
        }
        if cause.is::<JobsFailed>() {
            return EXIT_JOBS_FAILED;
        }
        let scheduler =
            cause.downcast_ref::<SchedulerError>().is_some_and(|s| !matches!(s, SchedulerError::CannotRun(_)))
                || cause.is::<SchedulerBlocks>()
                || cause.downcast_ref::<RunnerError>().is_some_and(|r| matches!(r, RunnerError::Scheduler(_)))
                || cause.downcast_ref::<LockError>().is_some_and(|l| matches!(l, LockError::Busy { .. }));
        if scheduler {
            return EXIT_SCHEDULER;
        }
    }
    EXIT_BAD_INPUT
}

/// Parses arguments, runs the command and maps errors to exit codes (documented in the README).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The error and its causes on one line, each said once (an I/O error's text is often repeated
/// by the context that wraps it).
fn error_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Writes a command's output atomically to `out`, or to stdout; a reader that stops early
/// (`ssal report ... | head`) is not an error.
fn write_output(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(path) = out {
        return crate::atomic_file::write(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()));
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("cannot write to stdout"),
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        #[cfg(feature = "torch")]
        Command::Run { config, out, checkpoint_every } => torch::run(&config, out, checkpoint_every),
        #[cfg(feature = "torch")]
        Command::Prepare { config } => torch::prepare(&config),
        Command::Select { embeddings, k, temperature, seed, labeled, out, device } => {
            use rand::SeedableRng;
            #[cfg(not(feature = "torch"))]
            if !matches!(device, crate::config::DeviceChoice::Cpu) {
                return Err(NeedsTorch("select --device cuda/auto").into());
            }
            if k == 0 {
                bail!("--k 0: the number of rows to choose must be at least 1");
            }
            let (values, dim) = crate::select::read_embeddings_npy(&embeddings)?;
            let emb =
                crate::select::Embeddings::new(&values, dim).with_context(|| format!("{}", embeddings.display()))?;
            let labeled = match labeled {
                Some(path) => read_index_file(&path, values.len() / dim)?,
                None => Vec::new(),
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            #[cfg(feature = "torch")]
            let chosen = torch::diversity_sample_on(device, &emb, k, temperature, &labeled, &mut rng)?;
            #[cfg(not(feature = "torch"))]
            let chosen = crate::select::diversity_sample(&emb, k, temperature, &labeled, &mut rng)?;
            let text: String = chosen.iter().map(|i| format!("{i}\n")).collect();
            write_output(out.as_deref(), &text)
        }
        #[cfg(feature = "torch")]
        Command::ScoreQueries { common, runs } => torch::score_queries(&common, &runs),
        #[cfg(feature = "torch")]
        Command::Data { command: DataCommand::Rows { config, write_sidecar } } => {
            torch::data_rows(&config, write_sidecar.as_deref())
        }
        Command::Sweep { command } => sweep::dispatch(command),
        Command::Results { command: ResultsCommand::Ingest { dirs, db } } => {
            let mut store = crate::store::Store::open(&db)?;
            for dir in dirs {
                if !dir.is_dir() {
                    bail!("{} is not a directory", dir.display());
                }
                let r = store.ingest_dir(&dir)?;
                println!(
                    "{}: {} added, {} replaced, {} unchanged, {} skipped",
                    dir.display(),
                    r.added,
                    r.replaced,
                    r.unchanged,
                    r.skipped.len()
                );
                for (path, why) in &r.skipped {
                    eprintln!("warning: skipped {}: {why}", path.display());
                }
            }
            Ok(())
        }
        Command::Results { command: ResultsCommand::Export { select, format, out } } => {
            let selection = select.select()?;
            let mut buf = Vec::new();
            crate::analysis::write_tidy(&selection, format, &mut buf)?;
            write_output(out.as_deref(), &String::from_utf8(buf)?)
        }
        Command::Plot { select, out } => {
            let selection = select.select()?;
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let curves = out.join("learning_curves.svg");
            let scatter = out.join("distance_vs_diversity.svg");
            let table = crate::report::build_table(
                &selection,
                crate::report::Metric::Accuracy,
                None,
                crate::report::TestChoice::Auto,
            );
            let mut wrote = 0;
            for (path, result) in [
                (&curves, crate::report::plot_learning_curves(&table, &curves)),
                (&scatter, crate::report::plot_distance_vs_diversity(&selection, &scatter)),
            ] {
                match result {
                    Ok(()) => {
                        println!("wrote {}", path.display());
                        wrote += 1;
                    }
                    Err(crate::report::PlotError::Empty(why)) => eprintln!("note: skipped {why}"),
                    Err(e) => return Err(e.into()),
                }
            }
            if wrote == 0 {
                bail!("nothing to plot in {}", select.db.display());
            }
            Ok(())
        }
        Command::Report { select, metric, baseline, test, format } => {
            let selection = select.select()?;
            let baseline = baseline.as_deref().map(|b| selection.find_row(b)).transpose()?;
            let table = crate::report::build_table(&selection, metric, baseline, test);
            write_output(None, &table.render(format))
        }
        #[cfg(feature = "torch")]
        Command::Info => torch::info(),
        #[cfg(not(feature = "torch"))]
        Command::Run { .. } => Err(NeedsTorch("run").into()),
        #[cfg(not(feature = "torch"))]
        Command::Prepare { .. } => Err(NeedsTorch("prepare").into()),
        #[cfg(not(feature = "torch"))]
        Command::ScoreQueries { .. } => Err(NeedsTorch("score-queries").into()),
        #[cfg(not(feature = "torch"))]
        Command::Data { .. } => Err(NeedsTorch("data rows").into()),
        #[cfg(not(feature = "torch"))]
        Command::Info => Err(NeedsTorch("info").into()),
    }
}

/// Reads one row index in `0..rows` per line (blank lines and `#` comments ignored); an index
/// out of range or listed twice is refused with its line.
fn read_index_file(path: &std::path::Path, rows: usize) -> anyhow::Result<Vec<usize>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    let mut first_line = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), n + 1);
        let Ok(i) = line.parse::<usize>() else { bail!("{at}: {line:?} is not a row index") };
        if i >= rows {
            bail!("{at}: row index {i} out of range: the embeddings have {rows} rows");
        }
        if let Some(earlier) = first_line.insert(i, n + 1) {
            bail!("{at}: row index {i} is listed twice (first on line {earlier})");
        }
        out.push(i);
    }
    Ok(out)
}

/// Opens a results database that must already exist (reports never create an empty one).
fn open_existing(db: &std::path::Path) -> anyhow::Result<crate::store::Store> {
    if !db.is_file() {
        bail!("no results database at {} (run `ssal results ingest DIR` first)", db.display());
    }
    Ok(crate::store::Store::open_read_only(db)?)
}
