//! The `result.json` contract: what a run leaves behind and everything downstream reads — the
//! sweep runner (is the job done?), the results store, `score-queries`, tests and benches. Plain
//! data with no torch in it; the experiment runner fills it in.
use crate::config::ExperimentConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The name of a run's result file in its output directory.
pub const FILE_NAME: &str = "result.json";

/// A result file that cannot be read or is not a result.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a result ({message})")]
    Parse { path: PathBuf, message: String },
}

/// One training cycle's record: who was labeled, how the EMA model scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleRecord {
    pub cycle: usize,
    pub n_labeled: usize,
    /// Indices added to the labeled set in this cycle, in the order chosen.
    pub selected: Vec<usize>,
    /// Labeled images per class after this cycle's selection (empty in files from ssal
    /// versions before set metrics).
    #[serde(default)]
    pub class_histogram: Vec<usize>,
    /// Eq. 6 distance between the labeled set's class proportions and the training pool's.
    #[serde(default)]
    pub class_distance: Option<f64>,
    /// Mean pairwise L2 distance of this cycle's selection in the selection embedding
    /// (RotNet / imported for the initial set); absent without an embedding.
    #[serde(default)]
    pub diversity: Option<f64>,
    /// Mean consistency (Eq. 3) of this cycle's selection under the previous cycle's model;
    /// absent for the initial set.
    #[serde(default)]
    pub consistency: Option<f64>,
    pub evaluations: Vec<Evaluation>,
    /// Median of the last `train.median_of` evaluations; absent when `train.steps = 0`.
    pub accuracy: Option<f64>,
    /// Seconds spent training this cycle (selection, scoring and test evaluations excluded).
    pub train_seconds: f64,
    /// Seconds spent computing the representation the selection works on: for the initial set,
    /// training RotNet or loading its cache or an imported matrix; later, scoring the pool
    /// (N_a augmented forward passes). 0 in files from ssal versions before this field.
    #[serde(default)]
    pub embed_seconds: f64,
    /// Seconds spent in the selection itself (sampling or the query strategy). 0 in older files.
    #[serde(default)]
    pub query_seconds: f64,
    /// Seconds spent evaluating the EMA model on the test set during training. 0 in older files.
    #[serde(default)]
    pub eval_seconds: f64,
}

/// Everything a run leaves behind: self-describing, so ingest needs no sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub ssal_version: String,
    pub git_commit: String,
    pub config_hash: String,
    pub config: ExperimentConfig,
    pub device: String,
    /// False while the run is still going (the file is rewritten after each cycle).
    pub complete: bool,
    pub labeled_indices: Vec<usize>,
    pub cycles: Vec<CycleRecord>,
    /// Accuracy of the last cycle; absent when `train.steps = 0`.
    pub final_accuracy: Option<f64>,
    pub wall_seconds: f64,
    /// Where the run ran (software, GPU, host, Slurm job); empty in files from ssal versions
    /// before this field.
    #[serde(default)]
    pub environment: Environment,
}

/// The software and machine behind a run's numbers, recorded by the process that last wrote
/// `result.json`; a run resumed elsewhere keeps the earlier ones in `earlier`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    /// Host name.
    pub host: Option<String>,
    /// torch version of the libtorch in use, e.g. "2.11.0+cu130" (read next to the loaded
    /// library; else the version the binary was built against).
    pub torch_version: Option<String>,
    /// CUDA version that libtorch was built for, e.g. "13.0"; absent for CPU-only builds.
    pub torch_cuda: Option<String>,
    /// Directory of the libtorch libraries in use.
    pub libtorch: Option<String>,
    /// Whether libtorch sees a usable GPU, and how many.
    pub cuda_available: bool,
    pub cuda_devices: usize,
    /// `CUDA_VISIBLE_DEVICES`, when set.
    pub cuda_visible_devices: Option<String>,
    /// CUDA runtime and cuDNN versions as libtorch reports them (e.g. 13000, 91300); only when
    /// the run uses a GPU.
    pub cuda_runtime: Option<i64>,
    pub cudnn: Option<i64>,
    /// GPU model of the device the run uses (from `nvidia-smi`, when it answers).
    pub gpu: Option<String>,
    /// `SLURM_JOB_ID`, `SLURM_ARRAY_JOB_ID` and `SLURM_ARRAY_TASK_ID`, when run by Slurm.
    pub slurm_job_id: Option<String>,
    pub slurm_array_job_id: Option<String>,
    pub slurm_array_task_id: Option<String>,
    /// Environments of earlier processes of this run that differ from this one (an interrupted
    /// run resumed on another node or software), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Environment>,
}

impl Environment {
    /// This environment for a run that an earlier process recorded as `previous`: that one
    /// joins `earlier` when it differs.
    pub fn after(mut self, previous: &Environment) -> Self {
        let mut earlier = previous.earlier.clone();
        let last = Environment { earlier: Vec::new(), ..previous.clone() };
        if last != Environment::default() && last != self {
            earlier.push(last);
        }
        self.earlier = earlier;
        self
    }
}

/// One evaluation of the EMA model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub step: usize,
    pub accuracy: f64,
    /// Test images evaluated when fewer than the whole test set (`train.eval_subset`); absent
    /// for a whole-set evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_images: Option<usize>,
}

/// The result file of the run whose output directory is `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Parses the text of a result file.
pub fn parse(text: &str) -> Result<RunResult, serde_json::Error> {
    serde_json::from_str(text)
}

/// Reads and parses the result file at `path`.
pub fn load(path: &Path) -> Result<RunResult, ResultError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ResultError::Read { path: path.to_path_buf(), source })?;
    parse(&text).map_err(|e| ResultError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

/// Whether the result file at `path` exists and says the run is complete. Reads only that flag,
/// so a result written by another ssal version (with config fields this one does not know)
/// still counts.
pub fn is_complete(path: &Path) -> bool {
    #[derive(Deserialize)]
    struct Completion {
        complete: bool,
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Completion>(&t).ok())
        .is_some_and(|c| c.complete)
}

/// Writes `result` to `path` as pretty JSON, atomically (a reader never sees half a file). The
/// Slurm array script tells a complete result by its top-level line `  "complete": true`
/// (`templates/slurm-array.sh.j2`; pinned by the script's tests).
pub fn write(path: &Path, result: &RunResult) -> std::io::Result<()> {
    crate::atomic_file::write(path, serde_json::to_string_pretty(result).expect("a result serialises").as_bytes())
}
