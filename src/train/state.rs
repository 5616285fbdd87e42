//! Checkpoints inside one cycle's training: everything the loop needs to go on exactly as if it
//! had never stopped (both networks, Adam's moments, the EMA's update count, the RNG, the
//! samplers' positions, the evaluations so far), in one file replaced atomically.
use super::{first_line, Adam, Ema};
use crate::data::EpochSampler;
use crate::models::Network;
use crate::result::Evaluation;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tch::{nn::VarStore, Tensor};

/// Why training returned without a trained model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("stopped by a signal at step {step}; the training state is saved")]
    Interrupted { step: usize },
    #[error("training checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("train.warm_start: the previous cycle's weights do not fit this network: {0}")]
    WarmStart(String),
}

/// Where and how often one cycle's training state is saved, and which run and cycle it belongs
/// to (a state saved by another config or cycle is never resumed).
#[derive(Debug, Clone)]
pub struct Checkpointing {
    pub path: PathBuf,
    pub every: Duration,
    pub config_hash: String,
    /// The config's legacy id, also accepted from a saved state (see
    /// [`crate::config::ExperimentConfig::legacy_content_hash`]): a run an older ssal stopped.
    pub legacy_config_hash: Option<String>,
    pub cycle: usize,
}

/// The loop's own position, saved as JSON inside the checkpoint.
#[derive(Serialize, Deserialize)]
pub(super) struct LoopState {
    pub step: usize,
    pub rng: ChaCha8Rng,
    pub labeled: EpochSampler,
    pub unlabeled: Option<EpochSampler>,
    pub evaluations: Vec<Evaluation>,
}

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    config_hash: String,
    cycle: usize,
    labeled_hash: String,
    ema_updates: u64,
    adam_steps: i64,
    #[serde(rename = "loop")]
    loop_state: LoopState,
}

fn labeled_hash(labeled: &[usize]) -> String {
    let bytes: Vec<u8> = labeled.iter().flat_map(|&i| (i as u64).to_le_bytes()).collect();
    blake3::hash(&bytes).to_hex()[..16].to_string()
}

/// Writes a state file: `meta` as JSON plus named tensors, in one file replaced atomically (the
/// format of training checkpoints and of RotNet's).
pub(crate) fn save_state(path: &Path, meta: &impl Serialize, tensors: Vec<(String, Tensor)>) -> Result<(), String> {
    let json = serde_json::to_vec(meta).expect("training state serialises");
    let mut named: Vec<(String, Tensor)> = vec![("meta".into(), Tensor::from_slice(&json))];
    named.extend(tensors);
    crate::atomic_file::replace(path, |tmp| {
        Tensor::save_multi(&named, tmp).map_err(|e| std::io::Error::other(first_line(&e)))
    })
    .map_err(|e| format!("cannot save: {e}"))
}

/// Reads a state file written by [`save_state`]: its meta and the other tensors by name.
pub(crate) fn load_state<M: serde::de::DeserializeOwned>(path: &Path) -> Result<(M, HashMap<String, Tensor>), String> {
    let tensors: HashMap<String, Tensor> =
        Tensor::load_multi(path).map_err(|e| format!("unreadable ({})", first_line(&e)))?.into_iter().collect();
    let meta = tensors
        .get("meta")
        .and_then(|t| Vec::<u8>::try_from(t).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| "no readable state inside".to_string())?;
    Ok((meta, tensors))
}

/// The variables of `vs` as `prefix.name`, for [`save_state`].
pub(crate) fn named_variables(prefix: &str, vs: &VarStore) -> Vec<(String, Tensor)> {
    vs.variables().into_iter().map(|(k, v)| (format!("{prefix}.{k}"), v)).collect()
}

/// Copies the saved `prefix.name` tensors into the variables of `vs`; names the first that is
/// missing or has another shape.
pub(crate) fn restore_variables(saved: &HashMap<String, Tensor>, prefix: &str, vs: &VarStore) -> Result<(), String> {
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let key = format!("{prefix}.{name}");
            let tensor = saved
                .get(&key)
                .filter(|t| t.size() == var.size())
                .ok_or_else(|| format!("{key} is missing or has another shape"))?;
            var.copy_(tensor);
        }
        Ok(())
    })
}

impl Checkpointing {
    fn error(&self, message: impl Into<String>) -> TrainError {
        TrainError::Checkpoint { path: self.path.clone(), message: message.into() }
    }

    /// Saves the state after `state.step` finished steps (written to a temporary file, then
    /// renamed over the previous checkpoint).
    pub(super) fn save(
        &self,
        live: &Network,
        ema_net: &Network,
        ema: &Ema,
        opt: &Adam,
        labeled: &[usize],
        state: &LoopState,
    ) -> Result<(), TrainError> {
        let meta = SavedMeta {
            config_hash: self.config_hash.clone(),
            cycle: self.cycle,
            labeled_hash: labeled_hash(labeled),
            ema_updates: ema.updates(),
            adam_steps: opt.steps(),
            loop_state: LoopState {
                step: state.step,
                rng: state.rng.clone(),
                labeled: state.labeled.clone(),
                unlabeled: state.unlabeled.clone(),
                evaluations: state.evaluations.clone(),
            },
        };
        let mut named = named_variables("live", &live.vs);
        named.extend(named_variables("ema", &ema_net.vs));
        named.extend(opt.named_state());
        save_state(&self.path, &meta, named).map_err(|e| self.error(e))
    }

    /// Loads a saved state into the fresh networks and optimizer; does nothing when no state is
    /// saved. A state of another config or cycle, or one that does not fit, is an error.
    pub(super) fn restore(
        &self,
        live: &Network,
        ema_net: &Network,
        ema: &mut Ema,
        opt: &mut Adam,
        labeled: &[usize],
        state: &mut LoopState,
    ) -> Result<(), TrainError> {
        if !self.path.exists() {
            return Ok(());
        }
        let (meta, tensors): (SavedMeta, _) =
            load_state(&self.path).map_err(|e| self.error(format!("{e}; delete it to restart the cycle")))?;
        if meta.config_hash != self.config_hash && self.legacy_config_hash.as_ref() != Some(&meta.config_hash) {
            return Err(self.error(format!(
                "belongs to another config (hash {}, this config {}); choose another --out",
                meta.config_hash, self.config_hash
            )));
        }
        if meta.cycle != self.cycle || meta.labeled_hash != labeled_hash(labeled) {
            return Err(self.error(format!(
                "was saved in cycle {} with another labeled set than cycle {} has now; delete it to restart the cycle",
                meta.cycle, self.cycle
            )));
        }
        for (prefix, net) in [("live", live), ("ema", ema_net)] {
            restore_variables(&tensors, prefix, &net.vs).map_err(|e| self.error(e))?;
        }
        if !opt.restore(&tensors, meta.adam_steps) {
            return Err(self.error("its optimizer state does not fit this model"));
        }
        ema.set_updates(meta.ema_updates);
        *state = meta.loop_state;
        Ok(())
    }
}
