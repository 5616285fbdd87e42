//! The paper's Fig. 7 under one model: the first queries of several runs scored by a common
//! model, so that their consistency and diversity columns compare the picks and not the models
//! that made them (each run's own record scores its picks under its own model).
//!
//! The common model is the cycle-0 EMA model of one run, trained again from that run's config:
//! on the CPU training is deterministic, so the retrained model reproduces the recorded
//! evaluations exactly, and [`CommonScores::reproduced`] says whether it did.
use crate::config::ExperimentConfig;
use crate::data::DeviceData;
use crate::experiment::{load_for_run, unlabeled_pool, RunError};
use crate::metrics::diversity;
use crate::progress::Silent;
use crate::result::{Evaluation, RunResult};
use crate::select::score_pool;
use crate::train::{train, TrainSetup};

/// One run's first query under the common model.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryScore {
    /// Images the run queried in cycle 1.
    pub picks: usize,
    /// Mean consistency c_i (Eq. 3) of the picks under the common model.
    pub consistency: f64,
    /// Mean pairwise L2 distance of the picks in the common model's penultimate features.
    pub diversity: f64,
    /// The same two values as the run recorded them, under its own model.
    pub own_consistency: Option<f64>,
    pub own_diversity: Option<f64>,
}

/// Every run's score and whether the common model is the one its run had.
#[derive(Debug, Clone)]
pub struct CommonScores {
    pub scores: Vec<QueryScore>,
    /// The common run's recorded cycle-0 evaluations and those of the retrained model.
    pub recorded: Vec<Evaluation>,
    pub retrained: Vec<Evaluation>,
}

impl CommonScores {
    /// Whether the retrained cycle-0 model is the common run's own: its evaluations equal the
    /// recorded ones.
    pub fn reproduced(&self) -> bool {
        self.recorded == self.retrained
    }
}

/// Scores the cycle-1 picks of each of `runs` under the cycle-0 model of `common` (whose config
/// must train: `train.steps > 0`). Every run must use the same data (dataset section) as
/// `common` and have finished cycle 1.
pub fn score_first_queries(common: &RunResult, runs: &[RunResult]) -> Result<CommonScores, RunError> {
    let config: &ExperimentConfig = &common.config;
    if config.train.steps == 0 || common.cycles.is_empty() {
        return Err(RunError::Size("the common run trains no model (train.steps = 0 or no finished cycle)".into()));
    }
    for (i, r) in runs.iter().enumerate() {
        if r.config.dataset != config.dataset {
            return Err(RunError::Size(format!(
                "run {} uses other data than the common run (its [dataset] differs)",
                i + 1
            )));
        }
        if r.cycles.len() < 2 {
            return Err(RunError::Size(format!("run {} has not finished its first query (cycle 1)", i + 1)));
        }
    }
    let (dataset, device, augment) = load_for_run(config)?;
    let data = DeviceData::new(&dataset, device, augment);
    // Cycle 0 exactly as `experiment::run` trains it: the run's seeds, its recorded initial set.
    let labeled = &common.cycles[0].selected;
    let (mut rng, torch_seed) = crate::seeds::cycle(config.seed, 0);
    tch::manual_seed(torch_seed);
    let unlabeled = unlabeled_pool(dataset.train.len(), labeled);
    let setup = TrainSetup::of(config);
    let outcome = train(setup, &data, labeled, &unlabeled, None, &mut rng, &Silent, None).map_err(RunError::Train)?;
    let recorded = common.cycles[0].evaluations.clone();

    let mut candidates: Vec<usize> = runs.iter().flat_map(|r| r.cycles[1].selected.iter().copied()).collect();
    candidates.sort_unstable();
    candidates.dedup();
    let mut score_rng = crate::seeds::Stream::CommonScoring.rng(config.seed);
    let view = score_pool(
        &outcome.ema,
        &data,
        labeled,
        &candidates,
        config.query.augmentations,
        config.train.eval_batch_size,
        &mut score_rng,
    )
    .map_err(|_| RunError::Interrupted { cycle: 1, step: None })?;
    let row_of = |image: usize| view.n_labeled + candidates.binary_search(&image).expect("a candidate");
    let scores = runs
        .iter()
        .map(|r| {
            let cycle = &r.cycles[1];
            let rows: Vec<usize> = cycle.selected.iter().map(|&i| row_of(i)).collect();
            QueryScore {
                picks: rows.len(),
                consistency: rows.iter().map(|&i| view.consistency[i] as f64).sum::<f64>() / rows.len() as f64,
                diversity: diversity(&view.features, view.feature_dim, &rows),
                own_consistency: cycle.consistency,
                own_diversity: cycle.diversity,
            }
        })
        .collect();
    Ok(CommonScores { scores, recorded, retrained: outcome.evaluations })
}
