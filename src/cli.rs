//! Command-line interface: the only place that prints for humans.
use crate::config::ExperimentConfig;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    },
    /// Print the torch build and whether CUDA is usable.
    Info,
}

/// Exit code for bad input (config, data files, arguments).
pub const EXIT_BAD_INPUT: u8 = 2;

/// Parses arguments, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config, out } => {
            let cfg = ExperimentConfig::load(&config)?;
            let out = out.unwrap_or_else(|| PathBuf::from("results/runs").join(cfg.content_hash()));
            let r = crate::experiment::run(&cfg, &out)?;
            println!(
                "accuracy {:.2}% ({} labels, {:?}, {:.1}s on {}) → {}",
                100.0 * r.final_accuracy,
                r.labeled_indices.len(),
                cfg.method,
                r.wall_seconds,
                r.device,
                out.join("result.json").display()
            );
            Ok(())
        }
        Command::Info => {
            println!(
                "ssal {} ({})",
                env!("CARGO_PKG_VERSION"),
                env!("SSAL_GIT_COMMIT")
            );
            println!(
                "cuda available: {} ({} devices)",
                tch::Cuda::is_available(),
                tch::Cuda::device_count()
            );
            println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
            Ok(())
        }
    }
}
