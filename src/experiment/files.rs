//! A run's directory: its earlier result (resumed, or refused when it is another config's), and
//! the weights each finished cycle leaves for the next.
use super::RunError;
use crate::config::ExperimentConfig;
use crate::models::Network;
use crate::result::{self, RunResult};
use crate::train::first_line;
use std::path::{Path, PathBuf};
use tch::Device;

/// A finished or interrupted earlier run of the same config in `path`, if any. A result of a
/// different config is never overwritten. A result an older ssal wrote under the config's
/// legacy id ([`ExperimentConfig::legacy_content_hash`]) is the same config's: it is resumed,
/// and takes the current id when it is next written.
pub(super) fn previous_result(path: &Path, config: &ExperimentConfig) -> Result<Option<RunResult>, RunError> {
    let old = match result::load(path) {
        Ok(old) => old,
        Err(result::ResultError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(RunError::Resume(format!("{e}; move it away"))),
    };
    if !is_own_hash(config, &old.config_hash) {
        return Err(RunError::Resume(format!(
            "{} holds a result of another config (hash {}, this config {}); choose another --out",
            path.display(),
            old.config_hash,
            config.content_hash()
        )));
    }
    Ok(Some(old))
}

/// Where `ssal run` without `--out` puts a run: `root/<config id>`, or the run's directory under
/// its legacy id when only that exists (a run an older ssal started there resumes there).
pub fn default_out_dir(config: &ExperimentConfig, root: &Path) -> PathBuf {
    let current = root.join(config.content_hash());
    match config.legacy_content_hash().map(|legacy| root.join(legacy)) {
        Some(legacy) if !current.exists() && legacy.is_dir() => legacy,
        _ => current,
    }
}

/// Whether `hash` is `config`'s id, current or legacy (written by an ssal whose ids hashed the
/// whole config).
fn is_own_hash(config: &ExperimentConfig, hash: &str) -> bool {
    hash == config.content_hash() || config.legacy_content_hash().is_some_and(|legacy| legacy == hash)
}

/// The weights a finished cycle leaves for the next: `checkpoint-<cycle>.ot` (its EMA model, which
/// queries the next cycle) and `warm-start-<cycle>.ot` (its trained network, with
/// `train.warm_start`). Numbered by cycle, so that a stop between saving them and writing
/// `result.json` never pairs a result with the next cycle's weights.
pub(super) fn cycle_weights(out_dir: &Path, stem: &str, cycle: usize) -> PathBuf {
    out_dir.join(format!("{stem}-{cycle}.ot"))
}

/// Where runs stopped by an earlier ssal keep their last EMA model (one unnumbered file).
pub(super) const LEGACY_CHECKPOINT: &str = "checkpoint.ot";

/// A new network with the weights saved in `path`.
pub(super) fn load_weights(
    config: &ExperimentConfig,
    shape: (i64, i64),
    device: Device,
    path: &Path,
) -> Result<Network, RunError> {
    let mut net = Network::new(config.model, shape.0, shape.1, device);
    net.vs
        .load(path)
        .map_err(|e| RunError::Resume(format!("cannot resume from {}: {}", path.display(), first_line(&e))))?;
    Ok(net)
}

/// Writes `net`'s weights to `path` atomically (a stop mid-write leaves the previous file).
pub(super) fn save_checkpoint(net: &Network, path: &Path) -> Result<(), RunError> {
    crate::atomic_file::replace(path, |tmp| net.vs.save(tmp).map_err(|e| std::io::Error::other(first_line(&e))))
        .map_err(|source| RunError::Write { path: path.to_path_buf(), source })
}
